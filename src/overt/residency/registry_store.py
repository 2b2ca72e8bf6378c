"""The jurisdiction registry's versions as a home issues, logs, publishes and trusts them.

A version is issued the way the builder registry is (:mod:`overt.keys.builders`): an in-toto Statement
(``residency-registry/v1``, :meth:`~overt.residency.registry.JurisdictionRegistry.statement`) in a DSSE
envelope, signed by the home's release key through its signing service (judged, then appended to the main
log before it is handed back). The envelopes are published under ``public/residency/registry/``:
``registry.dsse.json`` is the current version, ``v<N>.dsse.json`` each version ever issued.

Trust comes from the log, never from those files:

1. The log is scanned for registry envelopes signed by the home's trusted release keys (those it signs with
   in its jurisdiction). Each scanned bundle is checked against its tile and the database against what the
   log signed (:mod:`overt.keys.registry_scan`, the builder registry's scan too); a mark
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

Owns which file is trusted, what a refusal says, and the issuing step. The paths, the scan with its mark, the
lock and the writes are :class:`overt.keys.versioned.VersionedStore`'s, shared with the builder registry. Does
not know the wire format beyond :class:`~overt.residency.registry.JurisdictionRegistry`, nor which keys a home
trusts (the caller passes them; :func:`registry_store` for a :class:`~overt.home.Home`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.errors import ConfigError, FormatError, VerificationError
from overt.home import Home
from overt.keys.builders import own_release_keys, release_keys
from overt.keys.jurisdiction import RESIDENCY_REGISTRY_V1, Issuer
from overt.keys.registry import KeyRecord, Role, load_public_keys
from overt.keys.registry_scan import LoggedVersion, LoggedVersions, RegistryPredicate
from overt.keys.signing import LogReceipt, SigningService
from overt.keys.versioned import RegistryKind, VersionedStore
from overt.residency.registry import MAX_REGISTRY, JurisdictionRegistry, RegistryDiff, first_registry

_ISSUER = Issuer(RESIDENCY_REGISTRY_V1)
_WHAT = "jurisdiction registry"
_KIND = RegistryKind(
    predicate=RegistryPredicate(RESIDENCY_REGISTRY_V1),
    mark="registry-scan.json",
    lock="registry.lock",
    max_envelope=2 * MAX_REGISTRY,
    envelope=f"a {_WHAT} envelope",
    busy=f"another command is issuing a {_WHAT} version; try again when it is done",
)


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


class RegistryStore(VersionedStore):
    """``public/residency/registry/``, trusted only as far as the home's log vouches for each file
    (:class:`~overt.keys.versioned.VersionedStore`; its :meth:`~overt.keys.versioned.VersionedStore.logged` is
    step 1).

    ``trusted`` gives the keys a version must be signed by (the home's release keys in its jurisdiction);
    ``own`` every release key the home holds or published; ``state`` holds the scan mark and the edit lock.
    """

    kind = _KIND

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
        data = self.read(path)
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
        hint = self.copy_hint(path, target)
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
            self.save(registry.version, signed.entry)
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
