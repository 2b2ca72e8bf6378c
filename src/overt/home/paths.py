"""Where everything in an overt home lives: the layout, as paths, and nothing else (no I/O).

Layout::

    <home>/config.toml        settings, a registry of sections (:mod:`overt.home.config`)
    <home>/keys/registry/     private key records: role, jurisdiction, validity and signer URI (mode 0600)
    <home>/keys/<keyid>.pem   software private keys (``file2:``), mode 0600
    <home>/builders-scan.json how far the log was scanned for builder-registry versions (lost: full rescan)
    <home>/builders.lock      serialises edits of the builder registry
    <home>/public/keys/       one <keyid>.json per key: TUF key object plus role, jurisdiction, validity
    <home>/public/builders/   the builder registry (exact builder ids -> jurisdiction), signed by the release key
    <home>/public/escrow/     escrowed source snapshots and toolchain inputs
    <home>/public/builds/     published builds, their provenance and kept evidence
    <home>/residency/         tenants (directory.db); the jurisdiction registry's scan mark and edit lock
    <home>/public/residency/registry/  the jurisdiction registry (country -> jurisdiction), signed and logged

and for each log (:class:`LogPaths`). The home's own log, ``main``, keeps the layout homes have always had::

    <home>/log-policy         the log's own tlog-policy: its key, its witnesses (with URLs), the quorum
    <home>/overt.db           SQLite: sequencing and indexes (only an index: the tiles are the truth)
    <home>/log-head           the last checkpoint the log key signed, written before any witness sees it
    <home>/log-fsck           the tree size the last sound fsck reached (incremental checks start there)
    <home>/log-intent         while a batch is written: the tree it extends (a crash leaves it behind)
    <home>/log.lock           the writer lock (an flock; the directory holding it is locked too)
    <home>/log.server         while 'overt serve' runs: its URL, so conveyor commands append through it
    <home>/public/log/        tlog-tiles tree, checkpoint, vkey and policy: serve it as static files

Any other log, named ``N`` (one access-transparency log per jurisdiction, say), has the same files under
``<home>/logs/N/`` (``policy``, ``overt.db``, ``head``, ``fsck``, ``intent``, ``log.lock``, ``server``) and
publishes under ``<home>/public/logs/N/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from overt.errors import ConfigError

MAIN_LOG = "main"
_LOG_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


def check_log_name(name: str) -> str:
    """A log name: lower-case letters, digits, '.', '_' and '-', at most 63, as a directory name."""
    if not _LOG_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"log name {name!r} may hold lower-case letters, digits, '.', '_' and '-' (1-63)")
    return name


@dataclass(frozen=True, slots=True)
class LogPaths:
    """The files of one log in a home."""

    name: str
    public: Path  # the tlog-tiles tree: tiles, checkpoint, vkey, policy
    policy: Path  # the log's own tlog-policy (the published copy is ``public/policy``)
    database: Path  # SQLite, when the log's store is sqlite
    head: Path
    fsck_mark: Path
    intent: Path
    lock: Path
    server: Path

    @property
    def vkey(self) -> Path:
        return self.public / "vkey"

    @property
    def checkpoint(self) -> Path:
        return self.public / "checkpoint"


@dataclass(frozen=True, slots=True)
class KeyedPaths:
    """What every overt home has, a conveyor's or an auditor's: ``config.toml``, its keys and their
    registry, and ``public/`` with its public keys."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def key_registry(self) -> Path:
        return self.keys / "registry"

    @property
    def public(self) -> Path:
        return self.root / "public"

    @property
    def public_keys(self) -> Path:
        return self.public / "keys"


@dataclass(frozen=True, slots=True)
class HomePaths(KeyedPaths):
    """The layout of the conveyor home at ``root``."""

    @property
    def builders(self) -> Path:
        return self.public / "builders"

    @property
    def escrow(self) -> Path:
        return self.public / "escrow"

    @property
    def builds(self) -> Path:
        return self.public / "builds"

    @property
    def residency(self) -> Path:
        return self.root / "residency"

    @property
    def residency_registry(self) -> Path:
        return self.public / "residency" / "registry"

    def log(self, name: str = MAIN_LOG) -> LogPaths:
        """The files of the log called ``name``."""
        check_log_name(name)
        if name == MAIN_LOG:
            state, public, files = self.root, self.public / "log", _MAIN_FILES
        else:
            state, public, files = self.root / "logs" / name, self.public / "logs" / name, _NAMED_FILES
        return LogPaths(name=name, public=public, **{field: state / file for field, file in files.items()})


# The state files of a log, by LogPaths field: the main log's keep the names homes have always had.
_MAIN_FILES = {
    "policy": "log-policy",
    "database": "overt.db",
    "head": "log-head",
    "fsck_mark": "log-fsck",
    "intent": "log-intent",
    "lock": "log.lock",
    "server": "log.server",
}
_NAMED_FILES = {
    "policy": "policy",
    "database": "overt.db",
    "head": "head",
    "fsck_mark": "fsck",
    "intent": "intent",
    "lock": "log.lock",
    "server": "server",
}
