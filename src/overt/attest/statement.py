"""in-toto Statement v1 and its ResourceDescriptor and DigestSet field types (specs/in-toto/v1_*.md).

Owns the statement wire format and its validation: ``_type`` is the v1 URI, there is at least one subject,
every subject has a digest, standard digest algorithms carry lowercase hex of the right length. The predicate
stays a JSON object here; typed predicates (:mod:`overt.attest.provenance`, :mod:`overt.attest.vsa`) parse it.

Two readings. By default unknown fields of the statement and of its resource descriptors are ignored, as the
in-toto parsing rules (linked from v1_statement.md) ask of consumers, so other people's statements verify.
``strict=True`` is for a signer: what it signs is the statement re-serialised from the fields it knows, so a
field it does not know would be dropped from the signature without a word; strict parsing refuses it instead.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from overt import jsonio
from overt.attest.dsse import b64decode
from overt.errors import FormatError

STATEMENT_TYPE_V1 = "https://in-toto.io/Statement/v1"
MAX_STATEMENT = 1 << 20
MAX_SUBJECTS = 10_000
STATEMENT_FIELDS = frozenset({"_type", "subject", "predicateType", "predicate"})
DESCRIPTOR_FIELDS = frozenset(
    {"name", "uri", "digest", "content", "downloadLocation", "mediaType", "annotations"}
)

# v1_digest_set.md §Supported algorithms: lowercase hex, with the length each algorithm produces.
_HEX_LENGTHS: dict[str, tuple[int, ...]] = {
    "sha256": (64,),
    "sha224": (56,),
    "sha384": (96,),
    "sha512": (128,),
    "sha512_224": (56,),
    "sha512_256": (64,),
    "sha3_224": (56,),
    "sha3_256": (64,),
    "sha3_384": (96,),
    "sha3_512": (128,),
    "blake2b": (128,),
    "blake2s": (64,),
    "ripemd160": (40,),
    "sm3": (64,),
    "sha1": (40,),
    "md5": (32,),
    "dirHash": (64,),
    "gitCommit": (40, 64),
    "gitTree": (40, 64),
    "gitBlob": (40, 64),
    "gitTag": (40, 64),
}
_LOWER_HEX = re.compile(r"[0-9a-f]+")
# v1_field_types.md §Timestamp: RFC 3339 in UTC or with an offset.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


def check_timestamp(value: str, what: str) -> str:
    if not _TIMESTAMP.fullmatch(value):
        raise FormatError(f"{what}: {value[:40]!r} is not an RFC 3339 timestamp")
    try:
        datetime.fromisoformat(value[:19])
    except ValueError as e:
        raise FormatError(f"{what}: {value[:40]!r} is not a valid date and time") from e
    return value


def format_timestamp(when: datetime) -> str:
    """RFC 3339 in UTC with second precision, as the attestations overt writes carry it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_known_fields(obj: Mapping[str, Any], known: frozenset[str], what: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:8])
        raise FormatError(f"{what} has fields this signer does not know, which it would not sign: {shown}")


def check_digest_set(digest: Mapping[str, str], what: str) -> None:
    for alg, value in digest.items():
        if not alg:
            raise FormatError(f"{what}: empty digest algorithm name")
        if not value:
            raise FormatError(f"{what}: empty {alg} digest")
        lengths = _HEX_LENGTHS.get(alg)
        if lengths is not None and (len(value) not in lengths or not _LOWER_HEX.fullmatch(value)):
            raise FormatError(
                f"{what}: {alg} digest must be {' or '.join(map(str, lengths))} lowercase hex digits"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceDescriptor:
    """v1_resource_descriptor.md: at least one of ``uri``, ``digest``, ``content`` is set."""

    name: str = ""
    uri: str = ""
    digest: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    download_location: str = ""
    media_type: str = ""
    annotations: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.uri or self.digest or self.content):
            raise FormatError(f"resource descriptor {self.name!r} sets none of uri, digest, content")
        check_digest_set(self.digest, f"resource descriptor {self.name!r}")

    @classmethod
    def from_dict(
        cls, obj: Any, what: str = "resource descriptor", *, strict: bool = False
    ) -> ResourceDescriptor:
        if not isinstance(obj, dict):
            raise FormatError(f"{what} must be an object")
        if strict:
            check_known_fields(obj, DESCRIPTOR_FIELDS, what)
        content = jsonio.opt_str(obj, "content", what)
        return cls(
            name=jsonio.opt_str(obj, "name", what),
            uri=jsonio.opt_str(obj, "uri", what),
            digest=jsonio.str_map(jsonio.opt_dict(obj, "digest", what), f"{what} digest"),
            content=b64decode(content, f"{what} content") if content else b"",
            download_location=jsonio.opt_str(obj, "downloadLocation", what),
            media_type=jsonio.opt_str(obj, "mediaType", what),
            annotations=jsonio.opt_dict(obj, "annotations", what),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.uri:
            out["uri"] = self.uri
        if self.digest:
            out["digest"] = dict(self.digest)
        if self.content:
            out["content"] = base64.b64encode(self.content).decode()
        if self.download_location:
            out["downloadLocation"] = self.download_location
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def descriptors(
    obj: Mapping[str, Any], key: str, what: str, *, strict: bool = False
) -> tuple[ResourceDescriptor, ...]:
    return tuple(
        ResourceDescriptor.from_dict(d, f"{what} {key}[{i}]", strict=strict)
        for i, d in enumerate(jsonio.opt_list(obj, key, what))
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    """An in-toto Statement v1: subjects, a predicate type and the predicate as a JSON object."""

    subject: tuple[ResourceDescriptor, ...]
    predicate_type: str
    predicate: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.subject:
            raise FormatError("statement has no subject")
        if len(self.subject) > MAX_SUBJECTS:
            raise FormatError(f"statement has more than {MAX_SUBJECTS} subjects")
        for i, s in enumerate(self.subject):
            if not s.digest:
                raise FormatError(f"statement subject {i} ({s.name!r}) has no digest")
        if not self.predicate_type:
            raise FormatError("statement has an empty predicateType")

    @classmethod
    def from_dict(cls, obj: dict[str, Any], *, strict: bool = False) -> Statement:
        """The statement ``obj`` holds; with ``strict``, refuse fields unknown to in-toto Statement v1."""
        what = "in-toto statement"
        if strict:
            check_known_fields(obj, STATEMENT_FIELDS, what)
        kind = jsonio.req_str(obj, "_type", what)
        if kind != STATEMENT_TYPE_V1:
            raise FormatError(f"{what}: _type is {kind!r}, expected {STATEMENT_TYPE_V1!r}")
        if "subject" not in obj:
            raise FormatError(f"{what}: missing required field 'subject'")
        subjects = jsonio.opt_list(obj, "subject", what)
        if len(subjects) > MAX_SUBJECTS:
            raise FormatError(f"{what} has more than {MAX_SUBJECTS} subjects")
        return cls(
            subject=descriptors(obj, "subject", what, strict=strict),
            predicate_type=jsonio.req_str(obj, "predicateType", what),
            predicate=jsonio.opt_dict(obj, "predicate", what),
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, strict: bool = False) -> Statement:
        """Parse a statement (duplicate keys, NaN and oversize input are always refused; see ``strict``)."""
        obj = jsonio.load_object(data, "in-toto statement", max_size=MAX_STATEMENT)
        return cls.from_dict(obj, strict=strict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE_V1,
            "subject": [s.to_dict() for s in self.subject],
            "predicateType": self.predicate_type,
            "predicate": dict(self.predicate),
        }

    def to_bytes(self) -> bytes:
        return jsonio.dump(self.to_dict())
