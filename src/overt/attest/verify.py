"""k-of-n verification of DSSE envelopes against trusted keys (specs/dsse/protocol.md §Multi-signature).

Counts *distinct keys*: a key listed twice among the trusted keys, or two signatures by one key, count once.
Keys are told apart by their public key material, not by the ``keyid`` string a file happens to carry. The
signature check itself is securesystemslib's (``Key.verify_signature``), over the PAE of the received payload
bytes; the statement handed back is parsed from those same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature

from overt import jsonio
from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.statement import Statement
from overt.errors import ConfigError, FormatError, SignatureError


def key_identity(key: Key) -> bytes:
    """What makes two keys the same key: type and public key material (never the keyid label)."""
    return jsonio.dump([key.keytype, key.keyval.get("public", key.keyval)])


def signature_valid(key: Key, sig: bytes, message: bytes) -> bool:
    try:
        key.verify_signature(Signature(key.keyid, sig.hex()), message)
    except (UnverifiedSignatureError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedPayload:
    payload_type: str
    payload: bytes
    keyids: tuple[str, ...]

    def statement(self) -> Statement | None:
        """The in-toto statement the verified payload carries, parsed from its bytes; None for another type."""
        return Statement.from_bytes(self.payload) if self.payload_type.endswith("in-toto+json") else None

    def to_dict(self) -> dict[str, Any]:
        statement = self.statement()
        return {
            "ok": True,
            "keyids": list(self.keyids),
            "payload_type": self.payload_type,
            "statement": statement.to_dict() if statement is not None else None,
        }


def verify_envelope(envelope: Envelope, keys: Sequence[Key], threshold: int) -> VerifiedPayload:
    """Return the payload if at least ``threshold`` distinct trusted keys signed it; raise SignatureError otherwise.

    Steps (protocol.md §Multi-signature Verification):
      1. decode payload and payload type (done by :meth:`Envelope.from_bytes`);
      2. for each signature, check it against each trusted key whose keyid matches (or every key if the
         signature names none), over PAE(payloadType, payload);
      3. count each key that verified once; reject below the threshold.
    """
    if threshold < 1:
        raise ConfigError(f"threshold must be at least 1, not {threshold}")
    trusted: dict[bytes, Key] = {}
    labels: dict[bytes, set[str]] = {}
    for k in keys:
        ident = key_identity(k)
        trusted.setdefault(ident, k)
        labels.setdefault(ident, set()).add(k.keyid)
    if threshold > len(trusted):
        raise ConfigError(f"threshold {threshold} exceeds the {len(trusted)} distinct trusted keys")
    message = envelope.pae()
    verified: dict[bytes, str] = {}
    for sig in envelope.signatures:
        for ident, key in trusted.items():
            if ident in verified or (sig.keyid and sig.keyid not in labels[ident]):
                continue
            if signature_valid(key, sig.sig, message):
                verified[ident] = key.keyid
                break
    if len(verified) < threshold:
        raise SignatureError(
            f"envelope has {len(verified)} valid signature(s) by distinct trusted keys; {threshold} required",
            verified_keyids=sorted(verified.values()),
            signature_keyids=[s.keyid for s in envelope.signatures],
            threshold=threshold,
        )
    return VerifiedPayload(
        payload_type=envelope.payload_type, payload=envelope.payload, keyids=tuple(sorted(verified.values()))
    )


def verify_statement(envelope: Envelope, keys: Sequence[Key], threshold: int = 1) -> Statement:
    """Verify an in-toto envelope k-of-n and return the Statement parsed from the verified bytes."""
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
        raise FormatError(f"payloadType is {envelope.payload_type!r}, expected {PAYLOAD_TYPE_IN_TOTO!r}")
    verified = verify_envelope(envelope, keys, threshold)
    return Statement.from_bytes(verified.payload)
