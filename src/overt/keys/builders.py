"""The builder registry: which exact SLSA ``builder.id`` strings build in which jurisdiction.

A key signs provenance only from a builder this registry maps to the key's jurisdiction
(:mod:`overt.keys.jurisdiction`, step 6). Builder ids are compared as exact strings: the registry is an
allow-list, so no URL parsing, case folding or query reordering can make an unregistered builder pass.

Each version of the registry is an in-toto statement (``builder-registry/v1``; subject: the SHA-256 of the
registry's canonical JSON) in a DSSE envelope signed by the home's release key and appended to the log, like
every signature. The envelopes are published under ``public/builders/`` so outsiders can fetch them:
``registry.dsse.json`` is the current version, ``v<N>.dsse.json`` each version ever issued.

The home trusts the current file only if it is byte-identical to the newest version in its own log, signed by
one of its release keys (:mod:`overt.keys.registry_scan`): an older version copied over it, or one that was
never logged, is refused, and with it every provenance signature. A new version follows the newest logged one,
and edits are serialised by a lock (``<home>/builders.lock``), so no two statements claim one version. A new
version must also be newer than every version in the log that any release key the home holds or published
signed, trusted or not (:meth:`BuilderStore.check_newer`): a home that forgot a logged version (its key's
record moved away) refuses to issue that version again. The files, the scan, the lock and the writes are
:class:`overt.keys.versioned.VersionedStore`'s, shared with the jurisdiction registry.

An entry may say ``unsafeAllowForeignHost``: its builder id's host is under another country's country-code
TLD, and the operator registered it anyway (``--unsafe-allow-foreign-host``); without it the release key
refuses such an entry (:func:`overt.keys.jurisdiction.foreign_host`).

Owns the wire format, the statement, the add/remove steps and what a refusal says. Does not judge statements
(that is :mod:`overt.keys.jurisdiction`) and does not decide which keys a home trusts (the caller passes them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib import parse

from securesystemslib.signer import Key

from overt import jsonio
from overt.attest.dsse import Envelope
from overt.attest.statement import ResourceDescriptor, Statement, check_timestamp, format_timestamp
from overt.attest.verify import verify_statement
from overt.errors import ConfigError, FormatError, VerificationError
from overt.keys.jurisdiction import BUILDER_REGISTRY_V1, Issuer, foreign_host
from overt.keys.registry import KeyRecord, Role, check_jurisdiction
from overt.keys.registry_scan import LoggedVersions, RegistryPredicate
from overt.keys.signing import Signed, SigningService
from overt.keys.versioned import RegistryKind, VersionedStore

MAX_REGISTRY = 1 << 20
MAX_BUILDERS = 10_000
# RFC 3986 URIs are printable ASCII without spaces; requiring that keeps look-alike ids out of the registry.
_BUILDER_ID = re.compile(r"[\x21-\x7e]{1,1024}")
_ISSUER = Issuer(BUILDER_REGISTRY_V1)
_ENTRY_FIELDS = frozenset({"id", "jurisdiction", "unsafeAllowForeignHost"})


def check_builder_id(value: str) -> str:
    if not _BUILDER_ID.fullmatch(value):
        raise FormatError(
            f"builder id {value[:60]!r} must be 1 to 1024 printable ASCII characters without spaces"
        )
    return value


def conveyor_builder_id(builder_id: str, jurisdiction: str) -> str:
    """The ``builder.id`` a conveyor writes into its provenance: its configured id, its jurisdiction as query."""
    return f"{builder_id}?{parse.urlencode({'jurisdiction': jurisdiction})}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisteredBuilder:
    id: str
    jurisdiction: str
    unsafe_allow_foreign_host: bool = False  # the host is under another country's TLD, registered anyway

    def __post_init__(self) -> None:
        check_builder_id(self.id)
        check_jurisdiction(self.jurisdiction)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "jurisdiction": self.jurisdiction}
        if self.unsafe_allow_foreign_host:
            out["unsafeAllowForeignHost"] = True
        return out

    @classmethod
    def from_dict(cls, obj: Any, what: str) -> RegisteredBuilder:
        if not isinstance(obj, dict) or not {"id", "jurisdiction"} <= set(obj) <= _ENTRY_FIELDS:
            raise FormatError(
                f"{what} has exactly the fields 'id' and 'jurisdiction' (and 'unsafeAllowForeignHost' if true)"
            )
        if obj.get("unsafeAllowForeignHost", True) is not True:
            raise FormatError(f"{what}: 'unsafeAllowForeignHost' is written only as true")
        return cls(
            id=jsonio.req_str(obj, "id", what),
            jurisdiction=jsonio.req_str(obj, "jurisdiction", what),
            unsafe_allow_foreign_host="unsafeAllowForeignHost" in obj,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BuilderRegistry:
    """One version of the registry. Version 0 is the empty registry of a home that never issued one."""

    version: int = 0
    builders: tuple[RegisteredBuilder, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            raise FormatError("builder registry version must be a non-negative integer")
        if len(self.builders) > MAX_BUILDERS:
            raise FormatError(f"builder registry holds more than {MAX_BUILDERS} builders")
        ids = [b.id for b in self.builders]
        if ids != sorted(set(ids)):
            raise FormatError("builder registry entries must be sorted by id, each id once")

    def jurisdiction_of(self, builder_id: str) -> str | None:
        return next((b.jurisdiction for b in self.builders if b.id == builder_id), None)

    def mapping(self) -> dict[str, str]:
        """Exact builder id -> jurisdiction, as :class:`overt.keys.jurisdiction.SigningPolicy` takes it."""
        return {b.id: b.jurisdiction for b in self.builders}

    def with_builder(
        self, builder_id: str, jurisdiction: str, *, unsafe_allow_foreign_host: bool = False
    ) -> BuilderRegistry:
        """The next version, with ``builder_id``. ``unsafe_allow_foreign_host`` is recorded only for an id whose
        host is under another country's TLD (elsewhere it allows nothing)."""
        registered = self.jurisdiction_of(builder_id)
        if registered is not None:
            raise ConfigError(f"builder {builder_id} is already registered (to {registered})")
        allowed = unsafe_allow_foreign_host and foreign_host(builder_id, jurisdiction) is not None
        entry = RegisteredBuilder(id=builder_id, jurisdiction=jurisdiction, unsafe_allow_foreign_host=allowed)
        return BuilderRegistry(
            version=self.version + 1, builders=tuple(sorted((*self.builders, entry), key=lambda b: b.id))
        )

    def without_builder(self, builder_id: str) -> BuilderRegistry:
        if self.jurisdiction_of(builder_id) is None:
            raise ConfigError(f"builder {builder_id} is not registered; see 'overt keys builders list'")
        return replace(
            self, version=self.version + 1, builders=tuple(b for b in self.builders if b.id != builder_id)
        )

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "builders": [b.to_dict() for b in self.builders]}

    def to_bytes(self) -> bytes:
        return jsonio.dump(self.to_dict())

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> BuilderRegistry:
        what = "builder registry"
        if set(obj) != {"version", "builders"}:
            raise FormatError(
                f"{what} has exactly the fields 'version' and 'builders', not {', '.join(sorted(obj)) or 'none'}"
            )
        version = obj["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise FormatError(f"{what}: version must be an integer of at least 1")
        entries = [
            RegisteredBuilder.from_dict(e, f"{what}: builders[{i}]")
            for i, e in enumerate(jsonio.opt_list(obj, "builders", what))
        ]
        return cls(version=version, builders=tuple(entries))

    @classmethod
    def from_bytes(cls, data: bytes) -> BuilderRegistry:
        return cls.from_dict(jsonio.load_object(data, "builder registry", max_size=MAX_REGISTRY))

    def statement(self, *, now: datetime) -> Statement:
        digest = {"sha256": hashlib.sha256(self.to_bytes()).hexdigest()}
        return Statement(
            subject=(ResourceDescriptor(name=f"builder-registry/v{self.version}", digest=digest),),
            predicate_type=BUILDER_REGISTRY_V1,
            predicate={**self.to_dict(), "time": format_timestamp(now)},
        )

    @classmethod
    def from_statement(cls, statement: Statement) -> BuilderRegistry:
        if statement.predicate_type != BUILDER_REGISTRY_V1:
            raise VerificationError(f"not a builder registry statement: {statement.predicate_type}")
        predicate = dict(statement.predicate)
        check_timestamp(jsonio.req_str(predicate, "time", "builder registry"), "builder registry time")
        del predicate["time"]
        registry = cls.from_dict(predicate)
        digest = hashlib.sha256(registry.to_bytes()).hexdigest()
        if [dict(s.digest) for s in statement.subject] != [{"sha256": digest}]:
            raise VerificationError("the builder registry statement's subject is not the registry it carries")
        return registry

    @classmethod
    def from_envelope(cls, data: bytes, keys: Sequence[Key]) -> BuilderRegistry:
        """The registry a DSSE envelope carries, if one of ``keys`` signed it; raises otherwise."""
        if not keys:
            raise VerificationError("no release key to verify the builder registry with")
        return cls.from_statement(verify_statement(Envelope.from_bytes(data), keys))


def release_keys(records: Iterable[KeyRecord], jurisdiction: str) -> list[Key]:
    """The keys a home trusts to sign its builder registry: its own release keys in its jurisdiction."""
    return [r.key for r in records if r.role is Role.RELEASE and r.uri and r.jurisdiction == jurisdiction]


def own_release_keys(records: Iterable[KeyRecord], published: Iterable[KeyRecord]) -> list[Key]:
    """Every release key a home holds to sign with (``records`` with a signer) or has published
    (``published``, its ``public/keys/``), in any jurisdiction: a new registry version must be newer than any
    version these signed. Verification-only keys of other conveyors are not among them."""
    held = [r for r in records if r.uri]
    return [r.key for r in (*held, *published) if r.role is Role.RELEASE]


_KIND = RegistryKind(
    predicate=RegistryPredicate(BUILDER_REGISTRY_V1),
    mark="builders-scan.json",
    lock="builders.lock",
    max_envelope=MAX_REGISTRY + (MAX_REGISTRY // 2),
    envelope="a builder registry",
    busy="another command is changing this home's builder registry; try again when it is done",
)


class BuilderStore(VersionedStore):
    """``public/builders/``: the current registry envelope and every version's, trusted only as the newest
    version in the home's log (:class:`~overt.keys.versioned.VersionedStore`).

    ``state`` is the home directory, which holds the scan mark (``builders-scan.json``) and the edit lock
    (``builders.lock``). ``own`` gives every release key the home holds or published, trusted or not
    (:func:`own_release_keys`).
    """

    kind = _KIND

    def check_newer(self, version: int) -> None:
        """Refuse to issue ``version`` unless it is newer than every version in the log that one of this home's
        release keys signed, trusted or not, so that no version is issued twice.

        Raises:
            ConfigError: the log already holds that version or a later one.
        """
        found = self.logged()
        last = found.own
        if last is None or version > last.version:
            return
        signer = (
            "one of the release keys it trusts"
            if found.newest == last
            else "a release key of this home that it does not trust to sign its builder registry"
        )
        raise ConfigError(
            f"builder registry v{version} would not be newer than v{last.version}, which this home's log "
            f"already holds (log index {last.index}, envelope sha256 {last.sha256}), signed by {signer}: a "
            "version is issued once, so nothing was signed. Restore the release key that signed it (keys/"
            "registry/) and public/builders/ before changing the builder registry",
            version=version,
            logged_version=last.version,
            logged_index=last.index,
            logged_sha256=last.sha256,
        )

    def load(self) -> BuilderRegistry:
        """The current registry (version 0 if none was ever logged), its signature verified and the file
        byte-identical to the newest version in the log.

        Raises:
            VerificationError: the file is not the newest logged version (older, altered, missing or never
                logged), or its signature does not verify.
        """
        data = self.read(self.current_path)
        keys = self.trusted()
        found = self.logged(keys)
        newest = found.newest
        if newest is None and data is None:
            return BuilderRegistry()
        if newest is None or data is None or hashlib.sha256(data).hexdigest() != newest.sha256:
            raise self._not_newest(data, keys, found)
        try:
            return BuilderRegistry.from_envelope(data, keys)
        except (FormatError, VerificationError) as e:
            raise type(e)(f"{self.current_path}: {e}", **e.evidence) from e

    def _not_newest(
        self, data: bytes | None, keys: Sequence[Key], found: LoggedVersions
    ) -> VerificationError:
        newest = found.newest
        evidence: dict[str, Any] = {}
        if newest is not None:
            evidence.update(
                logged_version=newest.version, logged_index=newest.index, logged_sha256=newest.sha256
            )
        if data is None:
            held = "is missing"
        else:
            evidence["file_sha256"] = hashlib.sha256(data).hexdigest()
            try:
                version = BuilderRegistry.from_envelope(data, keys).version
            except (FormatError, VerificationError):
                held = "holds no builder registry this home's trusted release keys signed"
            else:
                same = newest is not None and newest.version == version
                held = f"holds builder registry v{version}" + (" in another envelope" if same else "")
        if newest is None and found.own is not None:
            own = found.own
            return VerificationError(
                f"{self.current_path} {held}, and the newest builder registry in this home's log, v{own.version} "
                f"(log index {own.index}), is signed by a release key of this home that it does not trust to "
                "sign its builder registry: no provenance is signed until a trusted release key's version is "
                "the newest in the log",
                **evidence,
                own_version=own.version,
                own_index=own.index,
            )
        if newest is None:
            return VerificationError(
                f"{self.current_path} {held}, but this home's log holds no builder registry signed by its "
                "release keys: a registry is trusted only once it is logged",
                **evidence,
            )
        hint = self.copy_hint(self.current_path, newest)
        return VerificationError(
            f"{self.current_path} {held}, but the newest builder registry in this home's log is "
            f"v{newest.version} (log index {newest.index}, envelope sha256 {newest.sha256}): an older "
            f"or altered registry is never trusted, so no provenance is signed until they agree{hint}",
            **evidence,
        )


def publish(
    store: BuilderStore, service: SigningService, release: KeyRecord, registry: BuilderRegistry
) -> Signed:
    """Sign ``registry`` with the release key (judged and logged like any signature), then publish it.

    Call it holding :meth:`BuilderStore.editing`, with a registry made from :meth:`BuilderStore.load`. A version
    the log already holds (or a later one) is refused before anything is signed (:meth:`BuilderStore.check_newer`).
    """
    store.check_newer(registry.version)
    statement = registry.statement(now=service.now())
    signed = service.issue(release, statement, issuer=_ISSUER)
    store.save(registry.version, signed.entry)
    return signed


def add_builder(
    store: BuilderStore,
    service: SigningService,
    release: KeyRecord,
    *,
    builder_id: str,
    jurisdiction: str,
    unsafe_allow_foreign_host: bool = False,
) -> tuple[BuilderRegistry, Signed]:
    """Register ``builder_id`` (exactly this string) as building in ``jurisdiction``: a new, logged version.

    A builder id whose host is under another country's country-code TLD is refused (and the refusal logged)
    unless ``unsafe_allow_foreign_host``, which the entry then records.
    """
    check_builder_id(builder_id)
    check_jurisdiction(jurisdiction)
    with store.editing():
        registry = store.load().with_builder(
            builder_id, jurisdiction, unsafe_allow_foreign_host=unsafe_allow_foreign_host
        )
        return registry, publish(store, service, release, registry)


def remove_builder(
    store: BuilderStore, service: SigningService, release: KeyRecord, *, builder_id: str
) -> tuple[BuilderRegistry, Signed]:
    with store.editing():
        registry = store.load().without_builder(builder_id)
        return registry, publish(store, service, release, registry)


def check_first_builder(store: BuilderStore) -> None:
    """Raise now what :func:`register_first_builder` would raise for a home's next release key: before the key
    is made, so that a refusal leaves no key behind. (A registry is in doubt, or the log holds a version a
    first registry would repeat.)"""
    if store.load().version:
        return
    try:
        store.check_newer(1)
    except ConfigError as e:
        raise ConfigError(
            f"a new release key would register this conveyor's own builder as builder registry v1, and no key "
            f"was made: {e}",
            **e.evidence,
        ) from e


def register_first_builder(
    store: BuilderStore,
    service: SigningService,
    release: KeyRecord,
    *,
    builder_id: str,
    jurisdiction: str,
) -> tuple[BuilderRegistry, Signed] | None:
    """With a home's first release key: register the home's own builder, unless a registry was ever issued."""
    with store.editing():
        current = store.load()
        if current.version:
            return None
        registry = current.with_builder(check_builder_id(builder_id), check_jurisdiction(jurisdiction))
        return registry, publish(store, service, release, registry)
