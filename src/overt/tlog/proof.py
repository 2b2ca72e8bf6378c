"""C2SP tlog-proof: an offline-verifiable proof that an entry is in a checkpointed, cosigned tree.

Parsing keeps the checkpoint bytes verbatim, so verification reads what the log signed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

from overt.errors import FormatError
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.merkle import HASH_SIZE
from overt.tlog.note import decode_b64

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_LINES = 63


@dataclass(frozen=True, slots=True, kw_only=True)
class TlogProof:
    index: int
    inclusion: tuple[bytes, ...]
    checkpoint: SignedCheckpoint
    extra: bytes | None = field(default=None)

    def __post_init__(self) -> None:
        if self.index < 0:
            raise FormatError("tlog-proof index must be non-negative")
        if len(self.inclusion) > MAX_PROOF_LINES:
            raise FormatError(f"tlog-proof has more than {MAX_PROOF_LINES} inclusion proof lines")
        for h in self.inclusion:
            if len(h) != HASH_SIZE:
                raise FormatError("tlog-proof inclusion proof line is not a 32-byte hash")

    @classmethod
    def from_bytes(cls, data: bytes) -> TlogProof:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError("tlog-proof is not UTF-8") from e
        head, sep, rest = text.partition("\n\n")
        if not sep:
            raise FormatError("tlog-proof has no blank line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise FormatError(f"tlog-proof does not start with {HEADER!r}")
        pos = 1
        extra = None
        if pos < len(lines) and lines[pos].startswith("extra "):
            extra = decode_b64(lines[pos][len("extra ") :], "tlog-proof extra data")
            pos += 1
        if pos >= len(lines) or not lines[pos].startswith("index "):
            raise FormatError("tlog-proof has no 'index' line")
        idx = lines[pos][len("index ") :]
        if not idx.isascii() or not idx.isdigit() or (idx != "0" and idx.startswith("0")):
            raise FormatError(f"tlog-proof index {idx[:30]!r} is not a decimal without leading zeroes")
        hashes = tuple(decode_b64(line, "tlog-proof inclusion proof line") for line in lines[pos + 1 :])
        return cls(
            index=int(idx),
            inclusion=hashes,
            checkpoint=SignedCheckpoint.from_bytes(rest.encode("utf-8")),
            extra=extra,
        )

    @property
    def tree_size(self) -> int:
        return self.checkpoint.checkpoint.tree_size

    def to_dict(self) -> dict[str, object]:
        """The entry index, the size of the tree it is proved in, and the proof in its text form."""
        return {"index": self.index, "tree_size": self.tree_size, "proof": self.to_bytes().decode()}

    def to_bytes(self) -> bytes:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode() for h in self.inclusion]
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint.to_bytes()


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedProof:
    """A proof written to ``path``: its entry index and tree size, and where the file is."""

    proof: TlogProof
    path: Path

    def to_dict(self) -> dict[str, object]:
        return {"index": self.proof.index, "tree_size": self.proof.tree_size, "out": str(self.path)}
