"""A signed, logged, versioned registry file as a home publishes it: the paths, the scan, the lock, the writes.

The builder registry (:mod:`overt.keys.builders`) and the jurisdiction registry
(:mod:`overt.residency.registry_store`) are published the same way, each in its own directory:
``registry.dsse.json`` is the current version's DSSE envelope, ``v<N>.dsse.json`` each version ever issued.
Every version is a statement signed by the home's release key and appended to its log, and a file is trusted
only if it is byte-identical to the envelope the log holds for that version (:mod:`overt.keys.registry_scan`
finds them): a file swapped on disk, a version never logged, or an older version copied back is refused.

:class:`VersionedStore` owns what the two registries share: the paths, the scan with its mark, reading a file
(no larger than an envelope can be), the edit lock under which a new version is checked, signed and saved,
and the atomic writes of a new version. Each registry's store subclasses it with its :class:`RegistryKind`
and keeps what differs: the statement it parses, when a new version may be issued, and how a refusal is worded
(what it means for builds, or for tenants). Does not sign (each registry's module holds its
:class:`~overt.keys.jurisdiction.Issuer`) and parses no registry.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from securesystemslib.signer import Key

from overt.atomic import atomic_write
from overt.errors import ConfigError, FormatError
from overt.keys.registry_scan import LoggedVersion, LoggedVersions, RegistryPredicate, scan
from overt.tlog.log import LocalLog

CURRENT = "registry.dsse.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryKind:
    """What the shared code needs to know of one registry: its statements' type, its state files' names, how
    large an envelope may be, and the words of the two refusals it makes itself."""

    predicate: RegistryPredicate
    mark: str  # the scan mark's file name, in the store's state directory
    lock: str  # the edit lock's file name, in the same directory
    max_envelope: int
    envelope: str  # what a refused oversized file is "larger than", e.g. "a builder registry"
    busy: str  # why a command that waited for the edit lock in vain gives up


class VersionedStore:
    """One registry's directory, trusted only as far as the home's log vouches for each file.

    ``trusted`` gives the keys a version must be signed by (the home's release keys in its jurisdiction);
    ``own`` every release key the home holds or published, trusted or not (a new version must be newer than
    any of theirs); ``log`` opens the home's log for reading (closed after each scan); ``state`` is the
    directory of the scan mark and the edit lock. Each subclass sets :attr:`kind`.
    """

    kind: ClassVar[RegistryKind]

    def __init__(
        self,
        directory: Path,
        *,
        trusted: Callable[[], Sequence[Key]],
        log: Callable[[], LocalLog],
        state: Path,
        own: Callable[[], Sequence[Key]] = lambda: (),
    ) -> None:
        self.directory = directory
        self.trusted = trusted
        self.own = own
        self.log = log
        self.mark_path = state / self.kind.mark
        self.lock_path = state / self.kind.lock

    @property
    def current_path(self) -> Path:
        return self.directory / CURRENT

    def version_path(self, version: int) -> Path:
        return self.directory / f"v{version}.dsse.json"

    def logged(self, keys: Sequence[Key] | None = None) -> LoggedVersions:
        """Every version in the log that ``keys`` (default: :attr:`trusted`) signed, and the newest any of
        :attr:`own` signed.

        Raises:
            StorageError: the log's database is behind what the log signed, or a log file is damaged.
        """
        self.mark_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log()
        try:
            keys = self.trusted() if keys is None else keys
            return scan(log, self.kind.predicate, keys, self.mark_path, own=self.own())
        finally:
            log.close()

    def read(self, path: Path) -> bytes | None:
        """The bytes of ``path``, or None if there is no such file.

        Raises:
            ConfigError: the file cannot be read.
            FormatError: it is larger than an envelope can be.
        """
        limit = self.kind.max_envelope
        try:
            with path.open("rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from e
        if len(data) > limit:
            raise FormatError(f"{path} is larger than {self.kind.envelope} can be")
        return data

    def copy_hint(self, path: Path, logged: LoggedVersion) -> str:
        """For a refusal of ``path``: where the logged version's envelope still is, if its own file is intact
        (``"; <dir>/v<N>.dsse.json is that version: copy it to <name>"``), else nothing."""
        copy = self.version_path(logged.version)
        if path == copy:
            return ""
        try:
            data = self.read(copy)
        except (ConfigError, FormatError):
            return ""  # the refusal at hand matters more than why the copy is unreadable
        if data is None or hashlib.sha256(data).hexdigest() != logged.sha256:
            return ""
        return f"; {copy} is that version: copy it to {path.name}"

    @contextmanager
    def editing(self, wait: float = 30.0) -> Iterator[None]:
        """Hold the edit lock: one new version at a time, each following the newest logged one.

        Raises:
            ConfigError: another process held the lock for ``wait`` seconds.
        """
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ConfigError(self.kind.busy, lock=str(self.lock_path)) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def save(self, version: int, entry: bytes) -> None:
        """Publish version ``version``, whose logged envelope is ``entry``: as ``v<N>.dsse.json``, then as
        the current version, each written atomically. Call it holding :meth:`editing`."""
        atomic_write(self.version_path(version), entry)
        atomic_write(self.current_path, entry)
