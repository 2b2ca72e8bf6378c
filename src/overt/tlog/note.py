"""C2SP signed-note: notes, signature lines, Ed25519 verifier keys (vkey) and signer keys (skey).

Owns the text format and the key ID computation (c2sp.org/signed-note). Verification works on the bytes that
were received: :class:`Note` keeps its ``text`` exactly as parsed and signatures are checked over it.

Does not know what a checkpoint is (see :mod:`overt.tlog.checkpoint`) nor the cosignature message (see
:mod:`overt.tlog.cosignature`, which plugs its own verifier type in here).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from overt.errors import FormatError, SignatureError

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 64
MAX_NOTE_SIZE = 1 << 20
_DASH = "\u2014 "


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """SHA-256(key name || 0x0A || type || public key)[:4], big-endian (signed-note §Signatures)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def check_key_name(name: str) -> None:
    """Key names are non-empty with no Unicode spaces and no '+' (signed-note §Format)."""
    if not name or "+" in name or any(c.isspace() for c in name):
        raise FormatError(f"invalid key name {name!r}: it must be non-empty, without spaces or '+'")


def decode_b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"{what} is not valid base64") from e


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    """One signature line: ``— <name> base64(key ID || signature)``."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not 0 <= self.key_id < 1 << 32:
            raise ValueError("key ID must be a uint32")

    @classmethod
    def from_line(cls, line: str) -> Signature:
        if not line.startswith(_DASH):
            raise FormatError(f"signature line does not start with an em dash and a space: {line[:60]!r}")
        parts = line[len(_DASH) :].split(" ")
        if len(parts) != 2:
            raise FormatError(f"signature line is not '— <name> <base64>': {line[:60]!r}")
        name, b64 = parts
        check_key_name(name)
        raw = decode_b64(b64, f"signature by {name}")
        if len(raw) < 5:
            raise FormatError(f"signature by {name} is too short")
        return cls(name=name, key_id=int.from_bytes(raw[:4], "big"), signature=raw[4:])

    def to_line(self) -> str:
        blob = struct.pack(">I", self.key_id) + self.signature
        return f"{_DASH}{self.name} {base64.b64encode(blob).decode()}\n"


class Verifier(Protocol):
    """A note verifier: identified by (name, key ID), checks a signature over the note text."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


class Signer(Protocol):
    """A note signer: produces the signature bytes (without key ID) over the note text."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, text: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    """A signed note. ``text`` is the signed text exactly as received, including its final newline."""

    text: str
    signatures: tuple[Signature, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.text.endswith("\n"):
            raise FormatError("note text must end with a newline")
        for ch in self.text:
            if ch < " " and ch != "\n":
                raise FormatError(f"note text contains control character {ord(ch):#04x}")

    @classmethod
    def from_bytes(cls, data: bytes) -> Note:
        """Parse a signed note. The text is separated from signatures by the last blank line."""
        if len(data) > MAX_NOTE_SIZE:
            raise FormatError(f"note is {len(data)} bytes, more than the {MAX_NOTE_SIZE} allowed")
        try:
            s = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError("note is not valid UTF-8") from e
        for ch in s:
            if ch < " " and ch != "\n":
                raise FormatError(f"note contains control character {ord(ch):#04x}")
        split = s.rfind("\n\n")
        if split < 0:
            raise FormatError("note has no blank line separating text from signatures")
        text, sigs = s[: split + 1], s[split + 2 :]
        if not sigs.endswith("\n"):
            raise FormatError("note signature block must end with a newline")
        lines = sigs[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise FormatError(f"note has {len(lines)} signatures, more than the {MAX_SIGNATURES} allowed")
        return cls(text=text, signatures=tuple(Signature.from_line(line) for line in lines))

    def to_bytes(self) -> bytes:
        if not self.signatures:
            raise ValueError("a note without signatures cannot be serialised")
        return (self.text + "\n" + "".join(s.to_line() for s in self.signatures)).encode()

    def with_signatures(self, *extra: Signature) -> Note:
        """This note with ``extra`` signature lines appended (duplicates of existing lines dropped)."""
        have = set(self.signatures)
        return Note(text=self.text, signatures=self.signatures + tuple(s for s in extra if s not in have))


def sign_note(text: str, *signers: Signer) -> Note:
    """Sign ``text`` with each signer."""
    body = Note(text=text)
    raw = body.text.encode()
    return Note(
        text=text,
        signatures=tuple(Signature(name=s.name, key_id=s.key_id, signature=s.sign(raw)) for s in signers),
    )


def verified_by(note: Note, verifiers: Sequence[Verifier]) -> list[Verifier]:
    """The known verifiers whose signatures on ``note`` verify. Unknown signatures are ignored.

    Raises :class:`SignatureError` if a signature matching a known key's (name, key ID) fails to verify,
    as the spec recommends rejecting such a note. Returns an empty list if no known key signed.
    """
    known = {(v.name, v.key_id): v for v in verifiers}
    raw = note.text.encode()
    ok: list[Verifier] = []
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        if not v.verify(raw, sig.signature):
            raise SignatureError(
                f"signature by {sig.name} (key ID {sig.key_id:08x}) does not verify", key=sig.name
            )
        if v not in ok:
            ok.append(v)
    return ok


def verify_note(note: Note, verifiers: Sequence[Verifier]) -> list[Verifier]:
    """Like :func:`verified_by`, but raise :class:`SignatureError` unless at least one known key signed."""
    ok = verified_by(note, verifiers)
    if not ok:
        names = ", ".join(sorted({v.name for v in verifiers})) or "(none)"
        raise SignatureError(f"note carries no valid signature from a trusted key ({names})")
    return ok


@dataclass(frozen=True, slots=True)
class Ed25519Verifier:
    """An Ed25519 note verifier (signature type 0x01)."""

    name: str
    public_key: bytes
    key_id: int

    @classmethod
    def create(cls, name: str, public_key: bytes) -> Ed25519Verifier:
        check_key_name(name)
        if len(public_key) != 32:
            raise FormatError("an Ed25519 public key is 32 bytes")
        return cls(name, public_key, key_id(name, ALG_ED25519, public_key))

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True

    def vkey(self) -> str:
        return encode_vkey(self.name, self.key_id, ALG_ED25519, self.public_key)


@dataclass(frozen=True, slots=True)
class Ed25519Signer:
    """An Ed25519 note signer from a 32-byte seed (signature type 0x01)."""

    name: str
    seed: bytes = field(repr=False)
    key_id: int

    @classmethod
    def create(cls, name: str, seed: bytes) -> Ed25519Signer:
        check_key_name(name)
        if len(seed) != 32:
            raise FormatError("an Ed25519 private key seed is 32 bytes")
        return cls(name, seed, key_id(name, ALG_ED25519, public_key_of(seed)))

    def sign(self, text: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(text)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier.create(self.name, public_key_of(self.seed))

    def skey(self) -> str:
        return "PRIVATE+KEY+" + encode_vkey(self.name, self.key_id, ALG_ED25519, self.seed)


def public_key_of(seed: bytes) -> bytes:
    """Raw Ed25519 public key of a 32-byte seed."""
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def encode_vkey(name: str, kid: int, alg: int, key: bytes) -> str:
    """``<name>+<hex key ID>+base64(type || key)``."""
    return f"{name}+{kid:08x}+{base64.b64encode(bytes([alg]) + key).decode()}"


def decode_vkey(text: str) -> tuple[str, int, int, bytes]:
    """Split a vkey into (name, key ID, signature type, key material), checking the key ID is well-formed."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise FormatError(f"verifier key is not '<name>+<id>+<key>': {text[:80]!r}")
    name, hex_id, b64 = parts
    check_key_name(name)
    if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
        raise FormatError(f"verifier key ID {hex_id!r} is not 8 lowercase hex digits")
    raw = decode_b64(b64, "verifier key material")
    if len(raw) < 2:
        raise FormatError("verifier key material is empty")
    return name, int(hex_id, 16), raw[0], raw[1:]


def parse_ed25519_vkey(text: str) -> Ed25519Verifier:
    """Parse an Ed25519 (type 0x01) vkey; the key ID must match the one computed from name and key."""
    name, kid, alg, key = decode_vkey(text)
    if alg != ALG_ED25519:
        raise FormatError(f"verifier key {name} has signature type {alg:#04x}, expected Ed25519 (0x01)")
    v = Ed25519Verifier.create(name, key)
    if v.key_id != kid:
        raise FormatError(f"verifier key {name} has key ID {kid:08x}, but its key hashes to {v.key_id:08x}")
    return v


def parse_ed25519_skey(text: str) -> Ed25519Signer:
    """Parse ``PRIVATE+KEY+<name>+<id>+base64(0x01 || seed)``."""
    text = text.strip()
    if not text.startswith("PRIVATE+KEY+"):
        raise FormatError("signer key does not start with 'PRIVATE+KEY+'")
    name, kid, alg, seed = decode_vkey(text[len("PRIVATE+KEY+") :])
    if alg != ALG_ED25519:
        raise FormatError(f"signer key {name} has signature type {alg:#04x}, expected Ed25519 (0x01)")
    s = Ed25519Signer.create(name, seed)
    if s.key_id != kid:
        raise FormatError(f"signer key {name} has key ID {kid:08x}, but its key hashes to {s.key_id:08x}")
    return s


def generate_ed25519(name: str) -> Ed25519Signer:
    """A fresh Ed25519 note signer."""
    return Ed25519Signer.create(name, secrets.token_bytes(32))
