"""The builder registry: which exact SLSA ``builder.id`` strings build in which jurisdiction.

A key signs provenance only from a builder this registry maps to the key's jurisdiction
(:mod:`overt.keys.jurisdiction`, step 6). Builder ids are compared as exact strings: the registry is an
allow-list, so no URL parsing, case folding or query reordering can make an unregistered builder pass.

Each version of the registry is an in-toto statement (``builder-registry/v1``; subject: the SHA-256 of the
registry's canonical JSON) in a DSSE envelope signed by the home's release key and appended to the log, like
every signature. The envelopes are published under ``public/builders/`` so outsiders can fetch them:
``registry.dsse.json`` is the current version, ``v<N>.dsse.json`` each version ever issued. The home loads the
current one for judging and verifies it with its own release keys first.

Owns the wire format, the statement, the files and the add/remove steps. Does not judge statements (that is
:mod:`overt.keys.jurisdiction`) and does not decide which keys a home trusts (the caller passes them).
Concurrent edits of one home's registry are not serialised: the last writer's version is current, both are
logged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib import parse

from securesystemslib.signer import Key

from overt import jsonio
from overt.atomic import atomic_write
from overt.attest.dsse import Envelope
from overt.attest.statement import ResourceDescriptor, Statement, check_timestamp, format_timestamp
from overt.attest.verify import verify_statement
from overt.errors import ConfigError, FormatError, VerificationError
from overt.keys.jurisdiction import BUILDER_REGISTRY_V1, Issuer
from overt.keys.registry import KeyRecord, Role, check_jurisdiction
from overt.keys.signing import Signed, SigningService

MAX_REGISTRY = 1 << 20
MAX_BUILDERS = 10_000
# RFC 3986 URIs are printable ASCII without spaces; requiring that keeps look-alike ids out of the registry.
_BUILDER_ID = re.compile(r"[\x21-\x7e]{1,1024}")
_ISSUER = Issuer(BUILDER_REGISTRY_V1)


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

    def __post_init__(self) -> None:
        check_builder_id(self.id)
        check_jurisdiction(self.jurisdiction)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "jurisdiction": self.jurisdiction}


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

    def with_builder(self, builder_id: str, jurisdiction: str) -> BuilderRegistry:
        registered = self.jurisdiction_of(builder_id)
        if registered is not None:
            raise ConfigError(f"builder {builder_id} is already registered (to {registered})")
        entry = RegisteredBuilder(id=builder_id, jurisdiction=jurisdiction)
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
            raise FormatError(f"{what} has exactly the fields 'version' and 'builders', not {sorted(obj)}")
        version = obj["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise FormatError(f"{what}: version must be an integer of at least 1")
        entries = []
        for i, e in enumerate(jsonio.opt_list(obj, "builders", what)):
            if not isinstance(e, dict) or set(e) != {"id", "jurisdiction"}:
                raise FormatError(f"{what}: builders[{i}] has exactly the fields 'id' and 'jurisdiction'")
            entries.append(
                RegisteredBuilder(
                    id=jsonio.req_str(e, "id", f"{what} builders[{i}]"),
                    jurisdiction=jsonio.req_str(e, "jurisdiction", f"{what} builders[{i}]"),
                )
            )
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


class BuilderStore:
    """``public/builders/``: the current registry envelope and every version's, verified on load."""

    def __init__(self, directory: Path, *, trusted: Callable[[], Sequence[Key]]) -> None:
        self.directory = directory
        self.trusted = trusted  # the keys a registry must be signed by (the home's release keys)

    @property
    def current_path(self) -> Path:
        return self.directory / "registry.dsse.json"

    def load(self) -> BuilderRegistry:
        """The current registry (version 0 if none was ever issued), its signature verified."""
        try:
            data = self.current_path.read_bytes()
        except FileNotFoundError:
            return BuilderRegistry()
        except OSError as e:
            raise ConfigError(f"cannot read {self.current_path}: {e.strerror}") from e
        if len(data) > MAX_REGISTRY + (MAX_REGISTRY // 2):
            raise FormatError(f"{self.current_path} is larger than a builder registry can be")
        try:
            return BuilderRegistry.from_envelope(data, self.trusted())
        except (FormatError, VerificationError) as e:
            raise type(e)(f"{self.current_path}: {e}", **e.evidence) from e

    def save(self, registry: BuilderRegistry, signed: Signed) -> None:
        atomic_write(self.directory / f"v{registry.version}.dsse.json", signed.entry)
        atomic_write(self.current_path, signed.entry)


def publish(
    store: BuilderStore, service: SigningService, release: KeyRecord, registry: BuilderRegistry
) -> Signed:
    """Sign ``registry`` with the release key (judged and logged like any signature), then publish it."""
    statement = registry.statement(now=service.now())
    signed = service.issue(release, statement, issuer=_ISSUER)
    store.save(registry, signed)
    return signed


def add_builder(
    store: BuilderStore,
    service: SigningService,
    release: KeyRecord,
    *,
    builder_id: str,
    jurisdiction: str,
) -> tuple[BuilderRegistry, Signed]:
    """Register ``builder_id`` (exactly this string) as building in ``jurisdiction``: a new, logged version."""
    registry = store.load().with_builder(check_builder_id(builder_id), check_jurisdiction(jurisdiction))
    return registry, publish(store, service, release, registry)


def remove_builder(
    store: BuilderStore, service: SigningService, release: KeyRecord, *, builder_id: str
) -> tuple[BuilderRegistry, Signed]:
    registry = store.load().without_builder(builder_id)
    return registry, publish(store, service, release, registry)


def register_first_builder(
    store: BuilderStore,
    service: SigningService,
    release: KeyRecord,
    *,
    builder_id: str,
    jurisdiction: str,
) -> tuple[BuilderRegistry, Signed] | None:
    """With a home's first release key: register the home's own builder, unless a registry was ever issued."""
    if store.load().version:
        return None
    return add_builder(store, service, release, builder_id=builder_id, jurisdiction=jurisdiction)
