"""The key registry: every key overt signs with, its role, its jurisdiction and its validity.

Each key is one JSON file named ``<keyid>.json``: the TUF/securesystemslib key object (``keytype``, ``scheme``,
``keyval``) plus ``role``, ``jurisdiction``, ``valid_from`` and, once set, ``valid_until``, ``rotated_to`` and
``introduced_by``. ``keyid`` is securesystemslib's default key ID (SHA-256 of the canonical JSON of the key
object), as TUF computes it. The public copy lives in ``public/keys/``; the private copy in ``keys/registry/``
adds the signer ``uri`` (``file2:`` or ``hsm:``), which never leaves the home.

A home holds signing keys only in its conveyor's jurisdiction (:meth:`Registry.add`). A key from elsewhere can
be imported for verification only: its record in ``keys/registry/`` has no ``uri`` (so it cannot sign), and it
is not published in ``public/keys/`` (that directory lists this conveyor's own keys).

Owns the record format and the two directories. Loading signers is :mod:`overt.keys.signers`; what a key may
sign is :mod:`overt.keys.jurisdiction`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.signer import SSlibKey
from securesystemslib.signer._utils import compute_default_keyid

from overt import jsonio
from overt.atomic import atomic_write
from overt.attest.statement import check_timestamp, format_timestamp
from overt.errors import ConfigError, FormatError, PolicyError, UsageError
from overt.files import read_regular_file

MAX_KEY_FILE = 1 << 16
SUPPORTED = {("ed25519", "ed25519"), ("ecdsa", "ecdsa-sha2-nistp256")}
_JURISDICTION = re.compile(r"[A-Z]{2}")
_KEYID = re.compile(r"[0-9a-f]{64}")


class Role(StrEnum):
    LOG = "log"
    BUILDER = "builder"
    RELEASE = "release"
    ROOT = "root"
    TARGETS = "targets"
    SNAPSHOT = "snapshot"
    TIMESTAMP = "timestamp"
    AUDITOR = "auditor"
    WITNESS = "witness"


def check_jurisdiction(code: str) -> str:
    """Jurisdictions are ISO 3166-1 alpha-2 codes (``CH``, ``DE``) or ``EU``."""
    if not _JURISDICTION.fullmatch(code):
        raise FormatError(f"jurisdiction {code!r} is not a two-letter ISO 3166-1 code such as CH or DE")
    return code


def check_signing_jurisdiction(jurisdiction: str, *, conveyor: str) -> str:
    """``jurisdiction`` if a home of a ``conveyor``-jurisdiction conveyor may hold a signing key there."""
    check_jurisdiction(jurisdiction)
    if jurisdiction != conveyor:
        raise PolicyError(
            f"this conveyor signs only in {conveyor}: a key in {jurisdiction} is never made or held here to sign; "
            f"import its public key file for verification with 'overt keys import --public'",
            jurisdiction=jurisdiction,
            conveyor_jurisdiction=conveyor,
        )
    return jurisdiction


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as e:
        raise FormatError(f"unknown role {value!r}; roles are {', '.join(r.value for r in Role)}") from e


def check_public_key(keytype: str, scheme: str, keyval: Any) -> None:
    if (keytype, scheme) not in SUPPORTED:
        raise FormatError(f"unsupported key type {keytype}/{scheme}; use ed25519 or ecdsa-sha2-nistp256")
    if not isinstance(keyval, dict) or set(keyval) != {"public"} or not isinstance(keyval["public"], str):
        raise FormatError("keyval must be an object with exactly one string field 'public'")
    public = keyval["public"]
    if keytype == "ed25519":
        if not re.fullmatch(r"[0-9a-f]{64}", public):
            raise FormatError("an ed25519 public key is 64 lowercase hex digits")
        return
    try:
        key = load_pem_public_key(public.encode())
    except (ValueError, TypeError) as e:
        raise FormatError(f"ecdsa public key is not a PEM public key: {e}") from e
    if not isinstance(key, EllipticCurvePublicKey) or not isinstance(key.curve, SECP256R1):
        raise FormatError("ecdsa-sha2-nistp256 public key is not on P-256")


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise FormatError(f"{what} must be a string")
    check_timestamp(value, what)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    key: SSlibKey
    role: Role
    jurisdiction: str
    valid_from: datetime
    valid_until: datetime | None = None
    rotated_to: str = ""
    introduced_by: int | None = None  # log index of the rotation statement that introduced this key
    uri: str = ""  # private: never published

    def __post_init__(self) -> None:
        check_public_key(self.key.keytype, self.key.scheme, self.key.keyval)
        check_jurisdiction(self.jurisdiction)
        if self.key.keyid != compute_default_keyid(self.key.keytype, self.key.scheme, self.key.keyval):
            raise FormatError("keyid is not the SHA-256 of the key object's canonical JSON")
        if self.valid_from.tzinfo is None or (self.valid_until and self.valid_until.tzinfo is None):
            raise ValueError("key validity needs timezone-aware datetimes")
        if self.valid_until is not None and self.valid_until < self.valid_from:
            raise FormatError("key valid_until is before valid_from")
        if self.rotated_to and not _KEYID.fullmatch(self.rotated_to):
            raise FormatError("rotated_to is not a keyid")

    @property
    def keyid(self) -> str:
        return self.key.keyid

    @property
    def storage(self) -> str:
        return self.uri.split(":", 1)[0] if self.uri else "public"

    def valid_at(self, now: datetime) -> bool:
        return self.valid_from <= now and (self.valid_until is None or now < self.valid_until)

    def status(self, now: datetime) -> str:
        if self.rotated_to:
            return "rotated"
        if now < self.valid_from:
            return "not yet valid"
        if self.valid_until is not None and now >= self.valid_until:
            return "expired"
        return "active"

    @classmethod
    def create(
        cls,
        key: SSlibKey,
        *,
        role: Role,
        jurisdiction: str,
        valid_from: datetime,
        valid_until: datetime | None,
        uri: str,
    ) -> KeyRecord:
        plain = SSlibKey(key.keyid, key.keytype, key.scheme, dict(key.keyval))
        return cls(
            key=plain,
            role=role,
            jurisdiction=jurisdiction,
            valid_from=valid_from,
            valid_until=valid_until,
            uri=uri,
        )

    def public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "keytype": self.key.keytype,
            "scheme": self.key.scheme,
            "keyval": dict(self.key.keyval),
            "role": self.role.value,
            "jurisdiction": self.jurisdiction,
            "valid_from": format_timestamp(self.valid_from),
        }
        if self.valid_until is not None:
            out["valid_until"] = format_timestamp(self.valid_until)
        if self.rotated_to:
            out["rotated_to"] = self.rotated_to
        if self.introduced_by is not None:
            out["introduced_by"] = self.introduced_by
        return out

    def private_dict(self) -> dict[str, Any]:
        return {**self.public_dict(), "uri": self.uri}

    @classmethod
    def from_dict(cls, obj: dict[str, Any], *, keyid: str | None = None) -> KeyRecord:
        what = "key file"
        keytype = jsonio.req_str(obj, "keytype", what)
        scheme = jsonio.req_str(obj, "scheme", what)
        keyval = jsonio.req_dict(obj, "keyval", what)
        check_public_key(keytype, scheme, keyval)
        computed = compute_default_keyid(keytype, scheme, keyval)
        if keyid is not None and keyid != computed:
            raise FormatError(f"key file is named {keyid} but its keyid is {computed}")
        introduced = obj.get("introduced_by")
        if introduced is not None and (
            not isinstance(introduced, int) or isinstance(introduced, bool) or introduced < 0
        ):
            raise FormatError(f"{what}: introduced_by must be a log index")
        until = obj.get("valid_until")
        return cls(
            key=SSlibKey(computed, keytype, scheme, keyval),
            role=parse_role(jsonio.req_str(obj, "role", what)),
            jurisdiction=check_jurisdiction(jsonio.req_str(obj, "jurisdiction", what)),
            valid_from=_parse_time(obj.get("valid_from"), f"{what} valid_from"),
            valid_until=None if until is None else _parse_time(until, f"{what} valid_until"),
            rotated_to=jsonio.opt_str(obj, "rotated_to", what),
            introduced_by=introduced,
            uri=jsonio.opt_str(obj, "uri", what),
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, keyid: str | None = None) -> KeyRecord:
        return cls.from_dict(jsonio.load_object(data, "key file", max_size=MAX_KEY_FILE), keyid=keyid)

    def public_bytes(self) -> bytes:
        return jsonio.dump(self.public_dict()) + b"\n"

    def private_bytes(self) -> bytes:
        return jsonio.dump(self.private_dict()) + b"\n"

    def public(self) -> KeyRecord:
        return replace(self, uri="")


class Registry:
    """The keys of one home: private records (with signer URIs) and their published public copies."""

    def __init__(self, private_dir: Path, public_dir: Path) -> None:
        self.private_dir = private_dir
        self.public_dir = public_dir

    def records(self) -> list[KeyRecord]:
        if not self.private_dir.is_dir():
            return []
        out = []
        for path in sorted(self.private_dir.glob("*.json")):
            try:
                out.append(KeyRecord.from_bytes(read_regular_file(path, limit=MAX_KEY_FILE), keyid=path.stem))
            except (FormatError, UsageError) as e:
                raise ConfigError(f"key registry file {path} is broken: {e}") from e
        return sorted(out, key=lambda r: (r.role.value, r.valid_from, r.keyid))

    def get(self, ref: str) -> KeyRecord:
        """A key by keyid or by a unique keyid prefix of at least 8 hex digits."""
        if len(ref) < 8 or not re.fullmatch(r"[0-9a-f]+", ref):
            raise ConfigError(f"{ref!r} is not a keyid or a keyid prefix of at least 8 hex digits")
        found = [r for r in self.records() if r.keyid.startswith(ref)]
        if not found:
            raise ConfigError(f"no key {ref} in this home; see 'overt keys list'")
        if len(found) > 1:
            raise ConfigError(f"keyid prefix {ref} matches {len(found)} keys; give more digits")
        return found[0]

    def current(self, role: Role, now: datetime) -> KeyRecord:
        """The one signing key of ``role`` valid at ``now`` and not rotated away."""
        found = [r for r in self.records() if r.role is role and r.uri and r.status(now) == "active"]
        if not found:
            raise ConfigError(
                f"no active {role.value} key; create one with 'overt keys generate --role {role.value}'"
            )
        if len(found) > 1:
            ids = ", ".join(r.keyid[:16] for r in found)
            raise ConfigError(
                f"{len(found)} active {role.value} keys ({ids}): a command that signs as {role.value} does not "
                f"choose between them; name one with the command's key option ('attest sign --key', "
                f"'avdb audit|build|waive --auditor-key')"
            )
        return found[0]

    def add(self, record: KeyRecord, *, conveyor_jurisdiction: str) -> None:
        """Register a new key: a signing key (with ``uri``) only in the conveyor's jurisdiction, or a key
        without ``uri``, from anywhere, for verification only."""
        if any(r.keyid == record.keyid for r in self.records()):
            raise ConfigError(f"key {record.keyid[:16]} is already in the registry")
        if not record.uri:
            self.private_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.private_dir / f"{record.keyid}.json", record.private_bytes(), mode=0o600)
            return
        check_signing_jurisdiction(record.jurisdiction, conveyor=conveyor_jurisdiction)
        self.save(record)

    def save(self, record: KeyRecord) -> None:
        """Write the private record of a signing key, then its public copy (both atomically)."""
        if not record.uri:
            raise ValueError("a registry record needs its signer URI")
        self.private_dir.mkdir(parents=True, exist_ok=True)
        self.public_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.private_dir / f"{record.keyid}.json", record.private_bytes(), mode=0o600)
        atomic_write(self.public_dir / f"{record.keyid}.json", record.public_bytes())


def load_public_keys(paths: Iterable[Path]) -> list[KeyRecord]:
    """Public key files (``public/keys/<keyid>.json``, or any file of that format) for verification: each a
    regular file of at most :data:`MAX_KEY_FILE` bytes (a FIFO or a device is refused, never read)."""
    out = []
    for path in paths:
        data = read_regular_file(path, limit=MAX_KEY_FILE)
        try:
            out.append(KeyRecord.from_bytes(data).public())
        except FormatError as e:
            raise FormatError(f"{path}: {e}") from e
    return out
