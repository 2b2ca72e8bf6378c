"""Installing a database on an endpoint: only a database whose signed provenance verifies, names its exact
digest and is in the transparency log; never an older version than the one installed.

The agent directory holds ``avdb/<name>.avdb``, its provenance, and ``avdb/<name>.installed.json`` (digest,
version, provenance log index). The scanner loads only through :func:`installed`, which re-checks the digest, so a database swapped on
disk is refused, not scanned with. The log client's policy is the endpoint's own, pinned out of band or on
first use (:mod:`overt.tlog.trust`), never read from the log that is asked whether the provenance is logged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key

from overt import jsonio
from overt.atomic import atomic_write
from overt.attest.dsse import Envelope
from overt.attest.provenance import Provenance
from overt.attest.statement import Statement
from overt.attest.verify import verify_statement
from overt.avdb.delta import apply_delta
from overt.avdb.package import Database, read_database
from overt.avdb.release import BUILD_TYPE
from overt.errors import ConfigError, Error, FormatError, InclusionError, PolicyError, VerificationError
from overt.tlog.client import LogClient


@dataclass(frozen=True, slots=True, kw_only=True)
class Installed:
    name: str
    version: int
    digest: str
    log_index: int | None

    def to_dict(self) -> dict[str, Any]:
        """What ``overt avdb install --json`` prints (``provenance_log_index`` is None without ``--log``)."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.digest,
            "provenance_log_index": self.log_index,
        }


def verify_database(
    data: bytes, provenance: bytes, keys: Sequence[Key], *, threshold: int = 1, log: LogClient | None = None
) -> tuple[Database, int | None]:
    """The database, once its provenance verifies (k-of-n keys), names its digest, and (with ``log``) is logged."""
    envelope = Envelope.from_bytes(provenance)
    statement = verify_statement(envelope, keys, threshold)
    prov = Provenance.from_statement(statement)
    if prov.build_definition.build_type != BUILD_TYPE:
        raise VerificationError(
            f"provenance is for a {prov.build_definition.build_type} build, not an AV database"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest not in {s.digest.get("sha256") for s in statement.subject}:
        raise VerificationError("the database is not the one its provenance names", digest=digest)
    index = None
    if log is not None:
        tree = log.update()
        index = log.find_entry(provenance, tree.checkpoint.checkpoint.tree_size)
        if index is None:
            raise InclusionError("the database's provenance is not in the transparency log")
        log.verify_inclusion(provenance, index, tree.checkpoint)
    db = read_database(data)
    return db, index


def install(
    agent_dir: Path,
    data: bytes,
    provenance: bytes,
    keys: Sequence[Key],
    *,
    threshold: int = 1,
    log: LogClient | None = None,
) -> Installed:
    db, index = verify_database(data, provenance, keys, threshold=threshold, log=log)
    current = _record(agent_dir, db.name)
    if current is not None and current.version >= db.version and current.digest != db.digest:
        raise PolicyError(
            f"refusing to go from {db.name} version {current.version} to version {db.version}: versions only move forward"
        )
    return write_installed(agent_dir, db, data, provenance, index)


def write_installed(
    agent_dir: Path, db: Database, data: bytes, provenance: bytes, index: int | None
) -> Installed:
    """Install the verified database ``db`` (parsed from ``data``): the file the scanner loads, then its
    record, each replaced atomically. Shared with the endpoint agent (:mod:`overt.distribute.installer`)."""
    d = agent_dir / "avdb"
    atomic_write(d / f"{db.name}.avdb", data)
    record = {"name": db.name, "version": db.version, "sha256": db.digest, "provenanceLogIndex": index}
    atomic_write(d / f"{db.name}.installed.json", jsonio.dump(record) + b"\n")
    atomic_write(d / f"{db.name}.provenance.dsse.json", provenance)
    return Installed(name=db.name, version=db.version, digest=db.digest, log_index=index)


def installed_record(agent_dir: Path, name: str) -> Installed | None:
    """What is installed of database ``name`` (its version and digest), or None."""
    return _record(agent_dir, name)


def _record(agent_dir: Path, name: str) -> Installed | None:
    path = agent_dir / "avdb" / f"{name}.installed.json"
    if not path.exists():
        return None
    obj = jsonio.load_object(path.read_bytes(), "installed database record")
    return Installed(
        name=name,
        version=int(obj["version"]),
        digest=str(obj["sha256"]),
        log_index=obj.get("provenanceLogIndex"),
    )


def installed(agent_dir: Path, name: str | None = None) -> bytes:
    """The bytes of the installed database (the only one if ``name`` is None), digest re-checked."""
    d = agent_dir / "avdb"
    names = (
        sorted(p.name.removesuffix(".installed.json") for p in d.glob("*.installed.json"))
        if d.is_dir()
        else []
    )
    if name is None:
        if len(names) != 1:
            raise ConfigError(
                "no verified database is installed; run 'overt avdb install'"
                if not names
                else f"several databases are installed ({', '.join(names)}); name one with --db"
            )
        name = names[0]
    record = _record(agent_dir, name)
    if record is None:
        raise ConfigError(f"database {name} is not installed; run 'overt avdb install'")
    data = (d / f"{name}.avdb").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.digest:
        raise VerificationError(
            f"the installed {name} database does not match the digest it was verified with"
        )
    # The provenance kept at install must name these bytes too: a database swapped in together with an edited
    # record is refused. (The agent directory is the endpoint's own state, as trusted as the overt it runs.)
    try:
        stored = Envelope.from_bytes((d / f"{name}.provenance.dsse.json").read_bytes())
        subjects = {s.digest.get("sha256") for s in Statement.from_bytes(stored.payload).subject}
    except (OSError, Error) as e:
        raise VerificationError(f"the installed {name} database has no readable provenance: {e}") from e
    if digest not in subjects:
        raise VerificationError(f"the installed {name} database is not the one its stored provenance names")
    return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    installed: Installed
    via_delta: bool
    fallback_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """What ``overt avdb update --json`` prints: the version now installed and how it got there."""
        return {
            "version": self.installed.version,
            "sha256": self.installed.digest,
            "via_delta": self.via_delta,
            "fallback_reason": self.fallback_reason,
        }


def update(
    agent_dir: Path,
    provenance: bytes,
    keys: Sequence[Key],
    *,
    deltas: Sequence[bytes],
    fetch_full: Callable[[], bytes],
    threshold: int = 1,
    log: LogClient | None = None,
) -> Update:
    """Move the installed database to the version ``provenance`` names: through ``deltas`` applied in sequence
    if they lead exactly there, else (failed or missing delta) by fetching the full database."""
    statement = verify_statement(Envelope.from_bytes(provenance), keys, threshold)
    targets = {s.digest["sha256"] for s in statement.subject if "sha256" in s.digest}
    reason = "no delta offered"
    if deltas:
        try:
            current = installed(agent_dir)
            for i, delta in enumerate(deltas):
                last = i == len(deltas) - 1
                if last and len(targets) == 1:
                    current = apply_delta(current, delta, next(iter(targets)))
                else:  # an intermediate step: only the chain's final result is checked against a signed digest
                    current = apply_delta(current, delta, "", check=False)
            result = install(agent_dir, current, provenance, keys, threshold=threshold, log=log)
            return Update(installed=result, via_delta=True)
        except (FormatError, VerificationError, ConfigError) as e:
            reason = f"delta failed: {e}"
    result = install(agent_dir, fetch_full(), provenance, keys, threshold=threshold, log=log)
    return Update(installed=result, via_delta=False, fallback_reason=reason)


def default_agent_dir() -> Path:
    """$OVERT_AGENT_DIR, else $XDG_DATA_HOME/overt/agent (``~/.local/share/overt/agent``): never the cwd."""
    if env := os.environ.get("OVERT_AGENT_DIR"):
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data) if data and Path(data).is_absolute() else Path.home() / ".local" / "share"
    return base / "overt" / "agent"
