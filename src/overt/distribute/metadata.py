"""One TUF metadata version, signed and logged by digest: the ``tuf-metadata/v1`` statement.

Every signature overt makes is a log entry (DESIGN, invariants), TUF's included. A metadata file is signed
with its role's key through python-tuf (``Metadata.sign``), serialised once (compact JSON), and then the
SHA-256 of exactly those bytes is logged in an in-toto statement, signed by the same key through the home's
:class:`~overt.keys.signing.SigningService` (which judges, signs and appends it)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "3.release.json", "digest": {"sha256": "<hex of the file's bytes>"}}],
     "predicateType": "https://overt.dev/attestation/tuf-metadata/v1",
     "predicate": {"role": "release", "version": 3, "expires": "2027-01-01T00:00:00Z", "length": 1234}}

The subject's name is the consistent-snapshot name of the file, also for the timestamp (``7.timestamp.json``,
served as ``timestamp.json``). The statement's type is reserved (:mod:`overt.keys.jurisdiction`): only this
module issues it, so ``overt attest sign`` cannot vouch for a metadata file nobody published.

Owns the statement and the sign-then-log step. Writing the file is the caller's, after the log took the
digest: :mod:`overt.distribute.repository` writes nothing a snapshot or timestamp references before it is logged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer

from overt import jsonio
from overt.attest.statement import ResourceDescriptor, Statement, format_timestamp
from overt.distribute.layout import metadata_name
from overt.errors import ConfigError, FormatError
from overt.keys.jurisdiction import TUF_METADATA_V1, Issuer
from overt.keys.registry import KeyRecord
from overt.keys.signing import Signed, SigningService

# Issued here only, never signed on request (overt.keys.jurisdiction, RESERVED).
_ISSUER = Issuer(TUF_METADATA_V1)
# Compact: a release role with thousands of targets is fetched by every endpoint on every change.
SERIALIZER = JSONSerializer(compact=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataStatement:
    """What the log records about one metadata file."""

    name: str  # the consistent-snapshot name, e.g. 3.release.json
    sha256: str
    length: int
    role: str
    version: int
    expires: str  # RFC 3339, UTC, seconds

    def __post_init__(self) -> None:
        if self.name != metadata_name(self.role, self.version):
            raise FormatError(
                f"tuf-metadata statement names {self.name!r} for {self.role} version {self.version}"
            )
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise FormatError("tuf-metadata statement: sha256 is not 64 lowercase hex digits")
        if self.length < 0 or self.version < 1:
            raise FormatError("tuf-metadata statement: length and version must be positive")

    @classmethod
    def of(cls, role: str, md: Metadata[Any], data: bytes) -> MetadataStatement:
        version = md.signed.version
        return cls(
            name=metadata_name(role, version),
            sha256=hashlib.sha256(data).hexdigest(),
            length=len(data),
            role=role,
            version=version,
            expires=format_timestamp(md.signed.expires),
        )

    def to_statement(self) -> Statement:
        return Statement(
            subject=(ResourceDescriptor(name=self.name, digest={"sha256": self.sha256}),),
            predicate_type=TUF_METADATA_V1,
            predicate={
                "role": self.role,
                "version": self.version,
                "expires": self.expires,
                "length": self.length,
            },
        )

    @classmethod
    def from_statement(cls, statement: Statement) -> MetadataStatement:
        what = "tuf-metadata statement"
        if statement.predicate_type != TUF_METADATA_V1:
            raise FormatError(f"{what}: predicateType is {statement.predicate_type!r}, not {TUF_METADATA_V1}")
        if len(statement.subject) != 1:
            raise FormatError(f"{what}: names {len(statement.subject)} subjects, not one metadata file")
        subject = statement.subject[0]
        p = statement.predicate
        version, length = p.get("version"), p.get("length")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (version, length)):
            raise FormatError(f"{what}: version and length must be integers")
        assert isinstance(version, int) and isinstance(length, int)
        return cls(
            name=subject.name,
            sha256=subject.digest.get("sha256", ""),
            length=length,
            role=jsonio.req_str(p, "role", what),
            version=version,
            expires=jsonio.req_str(p, "expires", what),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedMetadata:
    """A metadata version signed, serialised and logged. ``data`` is what gets written, byte for byte."""

    role: str
    keyid: str  # the key that signed the metadata and the statement
    md: Metadata[Any]
    data: bytes
    statement: MetadataStatement
    signed: Signed

    @property
    def name(self) -> str:
        return self.statement.name

    @property
    def version(self) -> int:
        return self.statement.version

    @property
    def index(self) -> int:
        return self.signed.receipt.index

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "keyid": self.keyid,
            "version": self.version,
            "sha256": self.statement.sha256,
            "expires": self.statement.expires,
            "log_index": self.index,
            "checkpoint_published": self.signed.receipt.published,
        }


def log_metadata(
    md: Metadata[Any], *, role: str, record: KeyRecord, service: SigningService
) -> LoggedMetadata:
    """Serialise ``md`` (already signed) and log its digest in a statement ``record``'s key signs."""
    data = md.to_bytes(SERIALIZER)
    statement = MetadataStatement.of(role, md, data)
    signed = service.issue(record, statement.to_statement(), issuer=_ISSUER)
    return LoggedMetadata(role=role, keyid=record.keyid, md=md, data=data, statement=statement, signed=signed)


def sign_and_log(
    md: Metadata[Any], *, role: str, record: KeyRecord, signer: Signer, service: SigningService
) -> LoggedMetadata:
    """Sign ``md`` with ``signer`` (replacing older signatures), then :func:`log_metadata`."""
    if signer.public_key.keyid != record.keyid:
        raise ValueError("the signer is not the key of the record")
    try:
        md.sign(signer)
    except Exception as e:  # python-tuf wraps any signer failure in UnsignedMetadataError
        raise ConfigError(f"key {record.keyid[:16]} failed to sign {role} metadata: {e}") from e
    return log_metadata(md, role=role, record=record, service=service)


def expiry(now: datetime, lifetime: timedelta) -> datetime:
    """``now + lifetime`` in UTC, as python-tuf wants it."""
    return (now + lifetime).astimezone(UTC)
