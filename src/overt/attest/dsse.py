"""DSSE v1: the pre-authentication encoding (PAE) and the JSON envelope (specs/dsse).

Owns the envelope wire format and PAE, the one piece of DSSE we write ourselves because it is small and
spec-defined. Signing and signature checks are the key's business (securesystemslib signers and keys); k-of-n
verification lives in :mod:`overt.attest.verify`.

Verification always runs over ``PAE(payload_type, payload)`` built from the decoded payload bytes, never over a
re-serialised statement (envelope.md §Security considerations).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from overt import jsonio
from overt.errors import FormatError

PAYLOAD_TYPE_IN_TOTO = "application/vnd.in-toto+json"
MAX_ENVELOPE = 1 << 20
MAX_SIGNATURES = 64
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def pae(payload_type: str, payload: bytes) -> bytes:
    """PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body (protocol.md §Signature Definition)."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def b64decode(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (envelope.md: either encoding is allowed)."""
    padded = text + "=" * (-len(text) % 4)
    try:
        if _B64.fullmatch(padded):
            return base64.b64decode(padded, validate=True)
        if _B64URL.fullmatch(padded):
            return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"{what} is not valid base64") from e
    raise FormatError(f"{what} is not valid base64")


class RawSigner(Protocol):
    """What signing needs from a key: its ID and raw signature bytes over a message."""

    @property
    def keyid(self) -> str: ...

    def sign_raw(self, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes

    def __post_init__(self) -> None:
        if not self.sig:
            raise FormatError("DSSE signature is empty")

    def to_dict(self) -> dict[str, str]:
        out = {"sig": base64.b64encode(self.sig).decode()}
        if self.keyid:
            out["keyid"] = self.keyid
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A DSSE JSON envelope. ``payload`` holds the exact signed bytes."""

    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...] = ()

    def __post_init__(self) -> None:
        if not self.payload_type:
            raise FormatError("DSSE envelope has an empty payloadType")
        if len(self.signatures) > MAX_SIGNATURES:
            raise FormatError(f"DSSE envelope has more than {MAX_SIGNATURES} signatures")

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Envelope:
        what = "DSSE envelope"
        payload = b64decode(jsonio.req_str(obj, "payload", what, allow_empty=True), "DSSE payload")
        payload_type = jsonio.req_str(obj, "payloadType", what)
        if "signatures" not in obj:
            raise FormatError(f"{what}: missing required field 'signatures'")
        raw = jsonio.opt_list(obj, "signatures", what)
        if len(raw) > MAX_SIGNATURES:
            raise FormatError(f"{what} has more than {MAX_SIGNATURES} signatures")
        sigs = []
        for i, s in enumerate(raw):
            if not isinstance(s, dict):
                raise FormatError(f"{what}: signature {i} must be an object")
            sig = b64decode(jsonio.req_str(s, "sig", f"{what} signature {i}"), f"signature {i}")
            keyid = jsonio.opt_str(s, "keyid", f"{what} signature {i}")
            sigs.append(EnvelopeSignature(keyid=keyid, sig=sig))
        return cls(payload=payload, payload_type=payload_type, signatures=tuple(sigs))

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        return cls.from_dict(jsonio.load_object(data, "DSSE envelope", max_size=MAX_ENVELOPE))

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": [s.to_dict() for s in self.signatures],
        }

    def to_bytes(self) -> bytes:
        return jsonio.dump(self.to_dict())

    def with_signatures(self, *extra: EnvelopeSignature) -> Envelope:
        return Envelope(
            payload=self.payload, payload_type=self.payload_type, signatures=self.signatures + extra
        )


def sign_envelope(payload: bytes, payload_type: str, signers: Sequence[RawSigner]) -> Envelope:
    """An envelope over ``payload`` with one signature per signer, each over the PAE."""
    message = pae(payload_type, payload)
    sigs = tuple(EnvelopeSignature(keyid=s.keyid, sig=s.sign_raw(message)) for s in signers)
    return Envelope(payload=payload, payload_type=payload_type, signatures=sigs)
