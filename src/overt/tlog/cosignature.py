"""C2SP tlog-cosignature/v1 (Ed25519, signature type 0x04).

A cosignature signs ``cosignature/v1\\ntime <t>\\n`` followed by the checkpoint body, and its signature bytes are
``u64 timestamp || Ed25519 signature``. This module provides a note signer and verifier for that type, so
cosignatures travel as ordinary signed-note lines.

ML-DSA-44 subtree cosignatures are not implemented: no library in our dependency set provides ML-DSA yet.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from overt.errors import FormatError
from overt.tlog.note import (
    ALG_COSIGNATURE_V1,
    check_key_name,
    decode_vkey,
    encode_vkey,
    key_id,
    public_key_of,
)

MAX_TIMESTAMP = (1 << 63) - 1


def cosigned_message(timestamp: int, checkpoint_text: bytes) -> bytes:
    """The Ed25519 signed message of tlog-cosignature §Ed25519 signed message."""
    return b"cosignature/v1\ntime %d\n" % timestamp + checkpoint_text


@dataclass(frozen=True, slots=True)
class CosignatureVerifier:
    """Verifies cosignature/v1 lines of one witness. ``verify`` takes the checkpoint text."""

    name: str
    public_key: bytes
    key_id: int

    @classmethod
    def create(cls, name: str, public_key: bytes) -> CosignatureVerifier:
        check_key_name(name)
        if len(public_key) != 32:
            raise FormatError("an Ed25519 public key is 32 bytes")
        return cls(name, public_key, key_id(name, ALG_COSIGNATURE_V1, public_key))

    def verify(self, text: bytes, signature: bytes) -> bool:
        return self.timestamp_of(text, signature) is not None

    def timestamp_of(self, text: bytes, signature: bytes) -> int | None:
        """The cosignature's timestamp if it verifies over ``text``, else None."""
        if len(signature) != 8 + 64:
            return None
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            return None
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature[8:], cosigned_message(timestamp, text)
            )
        except InvalidSignature:
            return None
        return int(timestamp)

    def vkey(self) -> str:
        return encode_vkey(self.name, self.key_id, ALG_COSIGNATURE_V1, self.public_key)


@dataclass(frozen=True, slots=True)
class CosignatureSigner:
    """Produces cosignature/v1 signatures. The clock is injected so tests are reproducible."""

    name: str
    seed: bytes = field(repr=False)
    key_id: int
    now: Callable[[], float] | None = field(default=None, compare=False)

    @classmethod
    def create(cls, name: str, seed: bytes, now: Callable[[], float] | None = None) -> CosignatureSigner:
        check_key_name(name)
        if len(seed) != 32:
            raise FormatError("an Ed25519 private key seed is 32 bytes")
        return cls(name, seed, key_id(name, ALG_COSIGNATURE_V1, public_key_of(seed)), now)

    def sign_at(self, text: bytes, timestamp: int) -> bytes:
        if not 0 < timestamp <= MAX_TIMESTAMP:
            raise ValueError("cosignature timestamp must be positive and below 2^63")
        sig = Ed25519PrivateKey.from_private_bytes(self.seed).sign(cosigned_message(timestamp, text))
        return struct.pack(">Q", timestamp) + sig

    def sign(self, text: bytes) -> bytes:
        clock = self.now or time.time
        return self.sign_at(text, int(clock()))

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier.create(self.name, public_key_of(self.seed))

    def skey(self) -> str:
        return "PRIVATE+KEY+" + encode_vkey(self.name, self.key_id, ALG_COSIGNATURE_V1, self.seed)


def parse_cosignature_vkey(text: str) -> CosignatureVerifier:
    """Parse a type-0x04 vkey."""
    name, kid, alg, key = decode_vkey(text)
    if alg != ALG_COSIGNATURE_V1:
        raise FormatError(f"witness key {name} has signature type {alg:#04x}, expected cosignature/v1 (0x04)")
    v = CosignatureVerifier.create(name, key)
    if v.key_id != kid:
        raise FormatError(f"witness key {name} has key ID {kid:08x}, but its key hashes to {v.key_id:08x}")
    return v


def parse_cosignature_skey(text: str, now: Callable[[], float] | None = None) -> CosignatureSigner:
    text = text.strip()
    if not text.startswith("PRIVATE+KEY+"):
        raise FormatError("signer key does not start with 'PRIVATE+KEY+'")
    name, kid, alg, seed = decode_vkey(text[len("PRIVATE+KEY+") :])
    if alg != ALG_COSIGNATURE_V1:
        raise FormatError(f"witness signer key {name} has type {alg:#04x}, expected 0x04")
    s = CosignatureSigner.create(name, seed, now)
    if s.key_id != kid:
        raise FormatError(
            f"witness signer key {name} has key ID {kid:08x}, but its key hashes to {s.key_id:08x}"
        )
    return s
