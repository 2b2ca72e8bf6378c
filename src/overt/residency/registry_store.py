"""The jurisdiction registry's versions as a home issues, logs, publishes and trusts them.

A version is issued the way the builder registry is (:mod:`overt.keys.builders`): an in-toto Statement
(``residency-registry/v1``, :meth:`~overt.residency.registry.JurisdictionRegistry.statement`) in a DSSE
envelope, signed by the home's release key through its signing service (judged, then appended to the main
log before it is handed back). The envelopes are published under ``public/residency/registry/``:
``registry.dsse.json`` is the current version, ``v<N>.dsse.json`` each version ever issued.

Trust comes from the log, never from those files:

1. The log is scanned for registry envelopes signed by the home's trusted release keys (those it signs with
   in its jurisdiction). Each scanned bundle is checked against its tile and the database against what the
   log signed, as :mod:`overt.keys.registry_scan` does (its entry reader is reused); a mark
   (``<home>/residency/registry-scan.json``) lets later scans start where the last one stopped, and is
   believed only while the tree still has the root it recorded at that size.
2. The trusted version is the highest one found. ``registry.dsse.json`` must be byte-identical to its logged
   envelope, and ``v<N>.dsse.json`` to version N's: a file swapped on disk, a version never logged or an
   older version copied back is refused (:class:`overt.errors.VerificationError`), and so is every command
   that needs the registry.
3. A new version is exactly the trusted version plus one, and newer than any version any release key this
   home holds or published ever signed (so that no version number is issued twice, even by a key the home
   no longer trusts). The check and the signature happen under ``<home>/residency/registry.lock``, so two
   processes cannot issue the same version.

Owns the files, the scan and the issuing step. Does not know the wire format beyond
:class:`~overt.residency.registry.JurisdictionRegistry`, nor which keys a home trusts (the caller passes them;
:func:`registry_store` for a :class:`~overt.home.Home`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key

from overt.atomic import atomic_write
from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.statement import Statement
from overt.attest.verify import verify_statement
from overt.errors import ConfigError, FormatError, VerificationError
from overt.home import Home
from overt.keys.builders import own_release_keys, release_keys
from overt.keys.jurisdiction import RESIDENCY_REGISTRY_V1, Issuer
from overt.keys.registry import KeyRecord, Role, load_public_keys
from overt.keys.registry_scan import _base64_forms, _entries
from overt.keys.signing import LogReceipt, SigningService
from overt.residency.registry import MAX_REGISTRY, JurisdictionRegistry, RegistryDiff, first_registry
from overt.tlog import guard
from overt.tlog.log import LocalLog
from overt.tlog.merkle import EMPTY_ROOT, hash_range

CURRENT = "registry.dsse.json"
MAX_ENVELOPE = 2 * MAX_REGISTRY
_ISSUER = Issuer(RESIDENCY_REGISTRY_V1)
_MARKERS = _base64_forms(RESIDENCY_REGISTRY_V1.rsplit("/attestation/", 1)[1].encode())
_WHAT = "jurisdiction registry"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedVersion:
    """A registry version as the log holds it: its number, its log index and the SHA-256 of the entry."""

    version: int
    index: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "index": self.index, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, doc: Any) -> LoggedVersion:
        """From a scan mark; raises ValueError, KeyError or TypeError for anything else."""
        version, index, sha256 = doc["version"], doc["index"], str(doc["sha256"])
        for value in (version, index):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError("not a count")
        return cls(version=version, index=index, sha256=sha256)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedVersions:
    """What the log holds: every version a trusted key signed (by number; a later entry wins between equal
    numbers), and the newest any of the home's own release keys signed, trusted or not (``own``)."""

    versions: tuple[LoggedVersion, ...] = ()
    own: LoggedVersion | None = None

    @property
    def newest(self) -> LoggedVersion | None:
        return self.versions[-1] if self.versions else None

    def get(self, version: int) -> LoggedVersion | None:
        return next((v for v in self.versions if v.version == version), None)

    def with_entry(self, found: LoggedVersion, *, trusted: bool) -> LoggedVersions:
        own = self.own if self.own is not None and self.own.version > found.version else found
        if not trusted:
            return LoggedVersions(versions=self.versions, own=own)
        kept = [v for v in self.versions if v.version != found.version]
        return LoggedVersions(versions=tuple(sorted((*kept, found), key=lambda v: v.version)), own=own)


@dataclass(frozen=True, slots=True, kw_only=True)
class _ScanMark:
    tree_size: int
    root: bytes
    keys: str  # SHA-256 of the trusted and the own keyids: other keys, another scan
    found: LoggedVersions

    def to_bytes(self) -> bytes:
        doc = {
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "keys": self.keys,
            "versions": [v.to_dict() for v in self.found.versions],
            "own": None if self.found.own is None else self.found.own.to_dict(),
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def read(cls, path: Path) -> _ScanMark | None:
        """The mark at ``path``, or None if it is missing or not a mark (then the whole log is scanned)."""
        try:
            doc = json.loads(path.read_bytes())
            versions = tuple(LoggedVersion.from_dict(v) for v in doc["versions"])
            own = None if doc["own"] is None else LoggedVersion.from_dict(doc["own"])
            mark = cls(
                tree_size=doc["tree_size"],
                root=bytes.fromhex(doc["root"]),
                keys=str(doc["keys"]),
                found=LoggedVersions(versions=versions, own=own),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        ok = isinstance(mark.tree_size, int) and mark.tree_size >= 0 and len(mark.root) == 32
        return mark if ok else None


def logged_version(entry: bytes, keys: Sequence[Key]) -> int | None:
    """The version of the jurisdiction registry ``entry`` carries if one of ``keys`` signed it, else None."""
    if not keys or not any(marker in entry for marker in _MARKERS):
        return None
    try:
        envelope = Envelope.from_bytes(entry)
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO or not envelope.signatures:
            return None
        if Statement.from_bytes(envelope.payload).predicate_type != RESIDENCY_REGISTRY_V1:
            return None
        version = verify_statement(envelope, keys).predicate.get("version")
    except (FormatError, VerificationError):
        return None  # not a registry this home's release keys signed: it counts for nothing
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return None
    return version


def _keys_digest(keys: Sequence[Key], own: Sequence[Key]) -> str:
    text = "\n".join(sorted(k.keyid for k in keys)) + "\n/\n" + "\n".join(sorted(k.keyid for k in own))
    return hashlib.sha256(text.encode()).hexdigest()


def scan_versions(
    log: LocalLog, keys: Sequence[Key], mark_path: Path, *, own: Sequence[Key] = ()
) -> LoggedVersions:
    """Every registry version ``keys`` signed in ``log``, and the newest ``keys`` or ``own`` signed, scanning
    only what the mark has not covered.

    Raises:
        StorageError: the database is behind what the log signed, or a scanned file is damaged.
    """
    state = log.tiles.state
    reader = log.tiles.reader()

    def root_at(size: int) -> bytes:
        return hash_range(0, size, reader.node) if size else EMPTY_ROOT

    guard.check_database(state, log.heads(), root_at)
    every = [*keys, *(k for k in own if k.keyid not in {t.keyid for t in keys})]
    digest = _keys_digest(keys, every)
    mark = _ScanMark.read(mark_path)
    start, found = 0, LoggedVersions()
    if (
        mark is not None
        and mark.keys == digest
        and mark.tree_size <= state.tree_size
        and root_at(mark.tree_size) == mark.root
    ):
        start, found = mark.tree_size, mark.found
    for index, entry in _entries(log, start, state.tree_size):
        version = logged_version(entry, every)
        if version is not None:
            logged = LoggedVersion(version=version, index=index, sha256=hashlib.sha256(entry).hexdigest())
            found = found.with_entry(logged, trusted=logged_version(entry, keys) is not None)
    updated = _ScanMark(tree_size=state.tree_size, root=state.root_hash, keys=digest, found=found)
    if updated != mark:
        atomic_write(mark_path, updated.to_bytes(), durable=False)
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredVersion:
    """One version, verified: the registry, its log entry, its envelope's SHA-256 and its published file.
    ``published`` says, for a version this process issued, whether a published checkpoint covers its entry
    (None for a version read back)."""

    registry: JurisdictionRegistry
    log_index: int
    sha256: str
    path: Path
    published: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            **self.registry.to_dict(),
            "log_index": self.log_index,
            "envelope_sha256": self.sha256,
            "path": str(self.path),
        }
        if self.published is not None:
            out["checkpoint_published"] = self.published
        return out


class RegistryStore:
    """``public/residency/registry/``, trusted only as far as the home's log vouches for each file.

    ``trusted`` gives the keys a version must be signed by (the home's release keys in its jurisdiction);
    ``own`` every release key the home holds or published; ``log`` opens the main log for reading (closed
    after each scan); ``state`` holds the scan mark and the edit lock.
    """

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
        self.mark_path = state / "registry-scan.json"
        self.lock_path = state / "registry.lock"

    @property
    def current_path(self) -> Path:
        return self.directory / CURRENT

    def version_path(self, version: int) -> Path:
        return self.directory / f"v{version}.dsse.json"

    def logged(self) -> LoggedVersions:
        """Every version in the log, as the trusted keys signed them (step 1)."""
        self.mark_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log()
        try:
            return scan_versions(log, self.trusted(), self.mark_path, own=self.own())
        finally:
            log.close()

    def current(self) -> JurisdictionRegistry:
        """The trusted version: the newest logged one, its published file checked against the log.

        Raises:
            ConfigError: no version was ever issued.
            VerificationError: ``registry.dsse.json`` is not the newest logged version's envelope.
        """
        return self.stored().registry

    def version(self, version: int) -> JurisdictionRegistry:
        """Version ``version``, its file ``v<N>.dsse.json`` checked against the log.

        Raises:
            ConfigError: the log holds no such version.
            VerificationError: the file is not that version's logged envelope.
        """
        return self.stored(version).registry

    def stored(self, version: int | None = None) -> StoredVersion:
        """:meth:`current` (or :meth:`version`) with its log entry and file."""
        found = self.logged()
        path = self.current_path if version is None else self.version_path(version)
        target = found.newest if version is None else found.get(version)
        data = _read(path)
        if target is None:
            raise self._not_logged(path, data, found, version)
        if data is None or hashlib.sha256(data).hexdigest() != target.sha256:
            raise self._not_that_version(path, data, target, version)
        try:
            registry = JurisdictionRegistry.from_envelope(data, self.trusted())
        except (FormatError, VerificationError) as e:
            raise VerificationError(f"{path}: {e}", **e.evidence) from e
        return StoredVersion(registry=registry, log_index=target.index, sha256=target.sha256, path=path)

    def diff(self, from_version: int | None = None, to_version: int | None = None) -> RegistryDiff:
        """What moved from ``from_version`` (default: the one before ``to_version``) to ``to_version``
        (default: the current one), both read as :meth:`version` reads them.

        Raises:
            ConfigError: a version that was never issued, or no earlier version to compare with.
        """
        newer = self.current() if to_version is None else self.version(to_version)
        if from_version is None:
            if newer.version == 1:
                raise ConfigError(
                    f"{_WHAT} v1 is the first version: there is no earlier one to compare it with"
                )
            from_version = newer.version - 1
        return self.version(from_version).diff(newer)

    def _not_logged(
        self, path: Path, data: bytes | None, found: LoggedVersions, version: int | None
    ) -> ConfigError | VerificationError:
        newest = found.newest
        if newest is not None:  # a version asked for that was never issued
            return ConfigError(
                f"this home's log holds no {_WHAT} v{version}: its newest version is v{newest.version}",
                newest_version=newest.version,
            )
        if data is None:
            return ConfigError(
                f"this home has no {_WHAT} yet: 'overt residency registry init' issues version 1"
            )
        return VerificationError(
            f"{path} holds {self._held(data)}, but this home's log holds no {_WHAT} signed by its release "
            "keys: a registry is trusted only once it is logged",
            file_sha256=hashlib.sha256(data).hexdigest(),
        )

    def _not_that_version(
        self, path: Path, data: bytes | None, target: LoggedVersion, version: int | None
    ) -> VerificationError:
        which = "the newest" if version is None else "that"
        held = "is missing" if data is None else f"holds {self._held(data)}"
        evidence: dict[str, Any] = {"logged_version": target.version, "logged_index": target.index}
        evidence["logged_sha256"] = target.sha256
        if data is not None:
            evidence["file_sha256"] = hashlib.sha256(data).hexdigest()
        copy = self.version_path(target.version)
        hint = ""
        if path != copy and _sha256(_read(copy)) == target.sha256:
            hint = f"; {copy} is that version: copy it to {path.name}"
        return VerificationError(
            f"{path} {held}, but {which} {_WHAT} version in this home's log is v{target.version} (log index "
            f"{target.index}, envelope sha256 {target.sha256}): a registry file that is not the logged "
            f"envelope is never trusted, so no tenant is placed by it{hint}",
            **evidence,
        )

    def _held(self, data: bytes) -> str:
        try:
            return f"{_WHAT} v{JurisdictionRegistry.from_envelope(data, self.trusted()).version}"
        except (FormatError, VerificationError):
            return f"no {_WHAT} this home's release keys signed"

    @contextmanager
    def editing(self, wait: float = 30.0) -> Iterator[None]:
        """Hold the edit lock: one new version at a time."""
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
                        raise ConfigError(
                            f"another command is issuing a {_WHAT} version; try again when it is done",
                            lock=str(self.lock_path),
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def issue(
        self,
        registry: JurisdictionRegistry,
        *,
        service: SigningService,
        release: KeyRecord,
        wait: float = 30.0,
    ) -> StoredVersion:
        """Sign ``registry`` with ``release`` (judged and logged like every signature), then publish it.

        Raises:
            ConfigError: ``registry`` is not the version after the trusted one, or the log already holds its
                number (or a later one) from one of this home's release keys; nothing was signed.
            VerificationError: the published registry is in doubt (see :meth:`current`).
        """
        with self.editing(wait):
            self._check_next(registry.version)
            signed = service.issue(release, registry.statement(now=service.now()), issuer=_ISSUER)
            atomic_write(self.version_path(registry.version), signed.entry)
            atomic_write(self.current_path, signed.entry)
            return _stored(registry, signed.entry, signed.receipt, self.current_path)

    def _check_next(self, version: int) -> None:
        found = self.logged()
        newest = found.newest
        if newest is not None:
            self.stored()  # the published current version must be the logged one before another follows
        expected = 1 if newest is None else newest.version + 1
        if version != expected:
            raise ConfigError(
                f"{_WHAT} v{version} cannot be issued: the next version is v{expected} (versions go up by one "
                "from the newest in this home's log), so nothing was signed",
                version=version,
                expected_version=expected,
            )
        own = found.own
        if own is not None and own.version >= version:
            raise ConfigError(
                f"{_WHAT} v{version} would not be newer than v{own.version}, which this home's log already "
                f"holds (log index {own.index}) signed by a release key of this home that it does not trust "
                "to sign: a version is issued once, so nothing was signed",
                version=version,
                logged_version=own.version,
                logged_index=own.index,
            )


def _stored(registry: JurisdictionRegistry, entry: bytes, receipt: LogReceipt, path: Path) -> StoredVersion:
    return StoredVersion(
        registry=registry,
        log_index=receipt.index,
        sha256=hashlib.sha256(entry).hexdigest(),
        path=path,
        published=receipt.published,
    )


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_ENVELOPE + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    if len(data) > MAX_ENVELOPE:
        raise FormatError(f"{path} is larger than a {_WHAT} envelope can be")
    return data


# --- a home's registry ------------------------------------------------------------------------------------


def registry_store(home: Home) -> RegistryStore:
    """The jurisdiction registry of ``home``: signed by its release keys, trusted as its main log says."""
    return RegistryStore(
        home.paths.residency_registry,
        trusted=lambda: release_keys(home.registry.records(), home.conveyor.jurisdiction),
        log=home.log.read,
        state=home.paths.residency,
        own=lambda: own_release_keys(
            home.registry.records(), load_public_keys(sorted(home.paths.public_keys.glob("*.json")))
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryIssuer:
    """What issuing a version needs: the store, the signing service and the release key that signs."""

    store: RegistryStore
    service: SigningService
    release: KeyRecord

    @classmethod
    def of_home(
        cls, home: Home, *, service: SigningService | None = None, release_key: str | None = None
    ) -> RegistryIssuer:
        """``home``'s store and service, signing with ``release_key`` (default: its one active release key)."""
        service = service or home.signing_service()
        release = (
            home.registry.get(release_key)
            if release_key is not None
            else home.registry.current(Role.RELEASE, service.now())
        )
        return cls(store=registry_store(home), service=service, release=release)

    def init(self, *, default: str, countries: Mapping[str, str]) -> StoredVersion:
        """Version 1 (:func:`~overt.residency.registry.first_registry`), unless a version was ever issued."""
        newest = self.store.logged().newest
        if newest is not None:
            raise ConfigError(
                f"this home has a {_WHAT} already (v{newest.version}, log index {newest.index}): "
                "'overt residency registry set' issues the next version",
                newest_version=newest.version,
            )
        return self.store.issue(
            first_registry(default=default, countries=countries), service=self.service, release=self.release
        )

    def change(
        self, countries: Mapping[str, str], *, default: str | None = None
    ) -> tuple[StoredVersion, RegistryDiff]:
        """The next version, with ``countries`` set explicitly (and ``default``), and what it moved."""
        current = self.store.current()
        newer = current.with_changes(countries, default=default)
        issued = self.store.issue(newer, service=self.service, release=self.release)
        return issued, current.diff(newer)
