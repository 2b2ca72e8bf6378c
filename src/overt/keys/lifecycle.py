"""A home's keys over their life: generate or import one, choose the key to sign with, rotate, and keep the
builder registry, each with the result its command reports.

The choices live here, not in the command line: a new key's validity (from now, to the second, for at most
:data:`MAX_VALID_DAYS`); that a home holds signing keys only in its conveyor's jurisdiction, checked before any
key material is made or read; that the log key is made by ``overt init`` and never here; that a successor
keeps its predecessor's role, jurisdiction and key type, lives where it did unless told otherwise, and is
introduced by a statement the *old* key signs (:func:`overt.keys.rotation.rotate`); that the first release
key registers the conveyor's own builder id; that builder registry versions are signed by the active release
key unless one is named.

Every result is a frozen view with ``to_dict()``: what ``overt keys ... --json`` prints, and what an HTTP
answer or the portal shows. Statuses are computed at an injected ``now``.

Owns none of the formats: records are :mod:`overt.keys.registry`, key material :mod:`overt.keys.signers`,
the rotation statement :mod:`overt.keys.rotation`, the builder registry :mod:`overt.keys.builders`. Knows
nothing of ``overt.home``: the caller passes a :class:`KeyHome`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import SSlibKey

from overt.attest.statement import format_timestamp
from overt.errors import ConfigError, FormatError
from overt.keys.builders import (
    BuilderRegistry,
    BuilderStore,
    RegisteredBuilder,
    add_builder,
    check_first_builder,
    register_first_builder,
    remove_builder,
)
from overt.keys.registry import KeyRecord, Registry, Role, check_jurisdiction, check_signing_jurisdiction
from overt.keys.rotation import check_rotatable, rotate
from overt.keys.signers import (
    HsmConfig,
    generate_file_key,
    hsm_generate,
    hsm_import,
    import_file_key,
    parse_hsm_uri,
)
from overt.keys.signing import LogReceipt, SigningService

MAX_VALID_DAYS = 36525  # 100 years: later ends are beyond what a datetime (and a reader) should carry
GENERATED = "generated"
IMPORTED = "imported"
_LOG_KEY_BY_INIT = "the log key is created by 'overt init'; a log has exactly one key"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyHome:
    """Where a home makes and keeps its keys, and the conveyor they sign for.

    Attributes:
        registry: the key records (private and published).
        keys_dir: where software keys (``file2:``) are written.
        hsm: the PKCS#11 token keys are generated on with ``on_hsm``.
        jurisdiction: the conveyor's; the only one this home holds signing keys in.
        builder_id: the ``builder.id`` the conveyor's provenance carries, which its first release key registers.
        builders: the builder registry store.
    """

    registry: Registry
    keys_dir: Path
    hsm: HsmConfig
    jurisdiction: str
    builder_id: str
    builders: BuilderStore


# --- views ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyStatus:
    """A key record as a user reads it at ``at``: its public fields, where it is stored, and its status."""

    record: KeyRecord
    at: datetime

    @property
    def status(self) -> str:
        return self.record.status(self.at)

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "keyid": r.keyid,
            "role": r.role.value,
            "jurisdiction": r.jurisdiction,
            "keytype": r.key.keytype,
            "scheme": r.key.scheme,
            "storage": r.storage,
            "status": self.status,
            "valid_from": format_timestamp(r.valid_from),
            "valid_until": None if r.valid_until is None else format_timestamp(r.valid_until),
            "rotated_to": r.rotated_to or None,
            "introduced_by": r.introduced_by,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyListing:
    """Every key of a home, in the registry's order, and the directory their public files are published in."""

    keys: tuple[KeyStatus, ...]
    public_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {"keys": [k.to_dict() for k in self.keys]}


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryVersion:
    """One version of the builder registry as a command reports it.

    ``log_index`` is the log entry of the statement that issued it, when this command issued it (None when it
    was read); ``path`` is the current envelope's file, when it was read from the store.
    """

    registry: BuilderRegistry
    log_index: int | None = None
    path: Path | None = None

    def entry(self, builder_id: str) -> RegisteredBuilder | None:
        return next((b for b in self.registry.builders if b.id == builder_id), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.registry.to_dict(), "log_index": self.log_index}
        if self.path is not None:
            out["path"] = str(self.path)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class NewKey:
    """A key just registered: ``how`` is :data:`GENERATED` or :data:`IMPORTED`; ``builder_registry`` is the
    version a first release key issued for the conveyor's own builder."""

    key: KeyStatus
    how: str
    builder_registry: RegistryVersion | None = None

    @property
    def record(self) -> KeyRecord:
        return self.key.record

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.how: self.key.to_dict()}
        if self.builder_registry is not None:
            out["builder_registry"] = self.builder_registry.to_dict()
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotation:
    """A rotation done: the old key as retired, its successor, and the log receipt of the statement (signed by
    the old key) that introduced the successor. Both statuses are at the rotation's time."""

    old: KeyStatus
    new: KeyStatus
    receipt: LogReceipt

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "rotation_log_index": self.receipt.index,
            "checkpoint_published": self.receipt.published,
        }


# --- choices ----------------------------------------------------------------------------------------------


def validity(now: datetime, days: int | None) -> tuple[datetime, datetime | None]:
    """A new key's validity: from ``now`` (to the second) for ``days`` days, or open-ended without ``days``."""
    start = now.replace(microsecond=0)
    if days is None:
        return start, None
    if not 1 <= days <= MAX_VALID_DAYS:
        raise ConfigError(f"a key is valid for 1 to {MAX_VALID_DAYS} days (100 years), not {days}")
    return start, start + timedelta(days=days)


def list_keys(registry: Registry, *, now: datetime) -> KeyListing:
    return KeyListing(
        keys=tuple(KeyStatus(record=r, at=now) for r in registry.records()), public_dir=registry.public_dir
    )


def choose_key(
    registry: Registry, *, key: str | None = None, role: Role | None = None, now: datetime
) -> KeyRecord:
    """The key ``key`` names (a keyid or a prefix of at least 8 hex digits), or else the one active signing
    key of ``role``."""
    if key is not None:
        return registry.get(key)
    if role is None:
        raise ValueError("choose_key needs a key reference or a role")
    return registry.current(role, now)


def _check_new_signing_key(home: KeyHome, role: Role, jurisdiction: str | None) -> None:
    """Refuse, before any key material is made or read, a log key or one outside the conveyor's jurisdiction."""
    if role is Role.LOG:
        raise ConfigError(_LOG_KEY_BY_INIT)
    if jurisdiction is not None:
        check_signing_jurisdiction(jurisdiction, conveyor=home.jurisdiction)


def _check_no_active_key(home: KeyHome, role: Role, now: datetime) -> None:
    active = [r for r in home.registry.records() if r.role is role and r.uri and r.status(now) == "active"]
    if active:
        ids = ", ".join(r.keyid[:16] for r in active)
        raise ConfigError(
            f"this home already has an active {role.value} key ({ids}), and commands that sign as {role.value} "
            f"use the one active key: replace it with 'overt keys rotate --role {role.value}', or add a second "
            "one with --force (signing then needs --key)",
            role=role.value,
            active=[r.keyid for r in active],
        )


def make_key(home: KeyHome, *, keytype: str, on_hsm: bool, label: str) -> tuple[str, SSlibKey]:
    """New key material: on the token (``label`` names it there) or as a software key in ``keys_dir``."""
    if on_hsm:
        return hsm_generate(home.hsm, keytype, label)
    return generate_file_key(home.keys_dir, keytype)


def _register(
    home: KeyHome, *, uri: str, key: SSlibKey, role: Role, valid_days: int | None, now: datetime
) -> KeyRecord:
    """Register new signing key material, always in the conveyor's jurisdiction."""
    start, until = validity(now, valid_days)
    record = KeyRecord.create(
        key, role=role, jurisdiction=home.jurisdiction, valid_from=start, valid_until=until, uri=uri
    )
    home.registry.add(record, conveyor_jurisdiction=home.jurisdiction)
    return record


def generate_key(
    home: KeyHome,
    service: SigningService,
    *,
    role: Role,
    keytype: str = "ed25519",
    on_hsm: bool = False,
    jurisdiction: str | None = None,
    valid_days: int | None = None,
    force: bool = False,
    now: datetime,
) -> NewKey:
    """Generate and register a signing key of ``role`` in the conveyor's jurisdiction.

    A second active key of a role is refused unless ``force``: commands sign with the one active key of their
    role and refuse to choose between two; ``overt keys rotate`` replaces a key instead.

    A home's first release key then registers the conveyor's own builder id: version 1 of the builder
    registry, signed by that key through ``service`` and logged (nothing, if a registry was ever issued).
    Whether the builder registry allows that is checked before the key is made.
    """
    _check_new_signing_key(home, role, jurisdiction)
    if not force:
        _check_no_active_key(home, role, now)
    if role is Role.RELEASE:
        check_first_builder(home.builders)
    uri, key = make_key(home, keytype=keytype, on_hsm=on_hsm, label=f"overt-{role.value}")
    record = _register(home, uri=uri, key=key, role=role, valid_days=valid_days, now=now)
    first = None
    if role is Role.RELEASE:
        issued = register_first_builder(
            home.builders, service, record, builder_id=home.builder_id, jurisdiction=home.jurisdiction
        )
        if issued is not None:
            first = RegistryVersion(registry=issued[0], log_index=issued[1].receipt.index)
    return NewKey(key=KeyStatus(record=record, at=now), how=GENERATED, builder_registry=first)


def import_signing_key(
    home: KeyHome,
    *,
    uri: str,
    role: Role,
    jurisdiction: str | None = None,
    valid_days: int | None = None,
    now: datetime,
) -> NewKey:
    """Register an existing private key: ``file2:<path>`` (a PEM file) or ``hsm:<id>`` (a token key pair)."""
    _check_new_signing_key(home, role, jurisdiction)
    if uri.startswith("file2:"):
        key_uri, key = import_file_key(Path(uri.removeprefix("file2:")))
    elif uri.startswith("hsm:"):
        hsm_keyid, _ = parse_hsm_uri(uri)
        key_uri, key = hsm_import(home.hsm, hsm_keyid)
    else:
        raise FormatError(f"a signing key URI must start with file2: or hsm:, not {uri[:20]!r}")
    record = _register(home, uri=key_uri, key=key, role=role, valid_days=valid_days, now=now)
    return NewKey(key=KeyStatus(record=record, at=now), how=IMPORTED)


def import_public_key(
    home: KeyHome,
    data: bytes,
    *,
    name: str,
    role: Role | None = None,
    jurisdiction: str | None = None,
    now: datetime,
) -> NewKey:
    """Register a public key file (``<keyid>.json``, called ``name`` in messages) from anywhere, for
    verification only; ``role`` and ``jurisdiction``, if given, must be the file's."""
    record = KeyRecord.from_bytes(data).public()
    if role is not None and role is not record.role:
        raise ConfigError(f"{name} is a {record.role.value} key, not {role.value}")
    if jurisdiction is not None and check_jurisdiction(jurisdiction) != record.jurisdiction:
        raise ConfigError(f"{name} is a key in {record.jurisdiction}, not {jurisdiction}")
    home.registry.add(record, conveyor_jurisdiction=home.jurisdiction)
    return NewKey(key=KeyStatus(record=record, at=now), how=IMPORTED)


def rotate_key(
    home: KeyHome,
    service: SigningService,
    old: KeyRecord,
    *,
    reason: str,
    on_hsm: bool | None = None,
    valid_days: int | None = None,
    now: datetime,
) -> KeyRotation:
    """Replace ``old`` by a new key of its role, jurisdiction and key type, on the token if ``on_hsm`` (by
    default where ``old`` is); ``old`` signs the logged statement introducing it, then is retired."""
    check_rotatable(old)
    hsm = old.storage == "hsm" if on_hsm is None else on_hsm
    _, until = validity(now, valid_days)
    uri, key = make_key(home, keytype=old.key.keytype, on_hsm=hsm, label=f"overt-{old.role.value}")
    draft = KeyRecord.create(
        key, role=old.role, jurisdiction=old.jurisdiction, valid_from=now, valid_until=until, uri=uri
    )
    new, signed = rotate(service, home.registry, old, new_uri=uri, new_key_record=draft, reason=reason)
    at = new.valid_from  # the rotation's time (the service's clock): the successor is active from then
    return KeyRotation(
        old=KeyStatus(record=home.registry.get(old.keyid), at=at),
        new=KeyStatus(record=new, at=at),
        receipt=signed.receipt,
    )


# --- the builder registry ---------------------------------------------------------------------------------


def builder_registry(home: KeyHome) -> RegistryVersion:
    """The current builder registry (version 0 if none was issued), verified as the newest logged version."""
    return RegistryVersion(registry=home.builders.load(), path=home.builders.current_path)


def register_builder(
    home: KeyHome,
    service: SigningService,
    *,
    builder_id: str,
    jurisdiction: str | None = None,
    release_key: str | None = None,
    unsafe_allow_foreign_host: bool = False,
    now: datetime,
) -> RegistryVersion:
    """Register ``builder_id`` as building in ``jurisdiction`` (default: the conveyor's): a new version, signed
    by ``release_key`` (default: the active release key) and logged."""
    registry, signed = add_builder(
        home.builders,
        service,
        choose_key(home.registry, key=release_key, role=Role.RELEASE, now=now),
        builder_id=builder_id,
        jurisdiction=jurisdiction or home.jurisdiction,
        unsafe_allow_foreign_host=unsafe_allow_foreign_host,
    )
    return RegistryVersion(registry=registry, log_index=signed.receipt.index)


def withdraw_builder(
    home: KeyHome,
    service: SigningService,
    *,
    builder_id: str,
    release_key: str | None = None,
    now: datetime,
) -> RegistryVersion:
    """A new version without ``builder_id``, signed by ``release_key`` (default: the active one) and logged."""
    registry, signed = remove_builder(
        home.builders,
        service,
        choose_key(home.registry, key=release_key, role=Role.RELEASE, now=now),
        builder_id=builder_id,
    )
    return RegistryVersion(registry=registry, log_index=signed.receipt.index)
