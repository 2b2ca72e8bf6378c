"""C2SP tlog-checkpoint: the note body ``origin / tree size / root hash / extensions``.

Owns parsing and formatting of the body and the pairing of a body with its signed note. It does not decide
which keys to trust (callers pass verifiers) nor how a quorum is counted (see :mod:`overt.tlog.policy`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from overt.errors import FormatError
from overt.tlog.merkle import HASH_SIZE
from overt.tlog.note import Note, Signer, Verifier, decode_b64, sign_note, verify_note


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A checkpoint body (c2sp.org/tlog-checkpoint §Note text)."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise FormatError("checkpoint origin must be a non-empty single line")
        if self.tree_size < 0:
            raise FormatError("checkpoint tree size must be non-negative")
        if len(self.root_hash) != HASH_SIZE:
            raise FormatError(f"checkpoint root hash is {len(self.root_hash)} bytes, expected {HASH_SIZE}")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise FormatError("checkpoint extension lines must be non-empty single lines")

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise FormatError("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError(f"checkpoint body has {len(lines)} lines, expected at least 3")
        origin, size, root = lines[0], lines[1], lines[2]
        if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise FormatError(f"checkpoint tree size {size[:30]!r} is not a decimal without leading zeroes")
        return cls(
            origin=origin,
            tree_size=int(size),
            root_hash=decode_b64(root, "checkpoint root hash"),
            extensions=tuple(lines[3:]),
        )

    def to_text(self) -> str:
        lines = [
            self.origin,
            str(self.tree_size),
            base64.b64encode(self.root_hash).decode(),
            *self.extensions,
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedCheckpoint:
    """A checkpoint with its note. ``note.text`` is the body exactly as received."""

    checkpoint: Checkpoint
    note: Note

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedCheckpoint:
        note = Note.from_bytes(data)
        return cls(checkpoint=Checkpoint.from_text(note.text), note=note)

    @classmethod
    def sign(cls, checkpoint: Checkpoint, *signers: Signer) -> SignedCheckpoint:
        return cls(checkpoint=checkpoint, note=sign_note(checkpoint.to_text(), *signers))

    def to_bytes(self) -> bytes:
        return self.note.to_bytes()

    def verify(self, log_verifiers: Sequence[Verifier]) -> None:
        """Check the log signature: at least one trusted log key signed, none of them badly."""
        verify_note(self.note, log_verifiers)
