"""Archive members for the scanner: zip, tar and gzip, nested, inside hard limits.

``overt scan`` matches rules and hash signatures against each member of an archive as well as against the
archive itself, as clamscan does. Unpacking runs on untrusted input on every endpoint, so it is bounded:
nesting depth, members per archive, the size of one member and the bytes unpacked from one scanned file
(zip bombs stop at the budget, not at the disk or memory). What lies beyond a limit is not scanned, as with
clamscan's defaults; what cannot be unpacked (damaged, encrypted, truncated) is skipped, the archive itself
having been scanned whole. Only the standard library's zipfile, tarfile and zlib parse anything here.
"""

from __future__ import annotations

import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

SNIFF = 262  # enough bytes to recognise every format below (tar's "ustar" sits at offset 257)
MAX_ARCHIVE = 256 << 20  # larger archives are scanned whole, not unpacked
MAX_DEPTH = 16  # clamscan: --max-recursion 17; gzip and tar count as a level each
MAX_MEMBERS = 10_000
MAX_MEMBER = 64 << 20
MAX_UNPACKED = 128 << 20


@dataclass(slots=True)
class Budget:
    """What one scanned file may still unpack, shared by every archive nested in it."""

    bytes: int = MAX_UNPACKED
    members: int = MAX_MEMBERS
    exceeded: list[str] = field(default_factory=list)

    def take(self, size: int, name: str) -> bool:
        if size > MAX_MEMBER or size > self.bytes or self.members <= 0:
            self.exceeded.append(name)
            return False
        self.bytes -= size
        self.members -= 1
        return True


def kind(head: bytes) -> str | None:
    """The archive format ``head`` (the first SNIFF bytes of a file) starts, if any."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


# What a damaged, truncated, encrypted or unsupported archive makes the standard library's readers raise.
_UNREADABLE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    RuntimeError,
)


def members(data: bytes, budget: Budget, *, prefix: str = "", depth: int = 1) -> Iterator[tuple[str, bytes]]:
    """Every member of the archive ``data`` (members of members too, to MAX_DEPTH), as (name, bytes); names
    of nested members are joined with ``!``. A damaged archive yields the members read before the damage."""
    fmt = kind(data[:SNIFF])
    if fmt is None or depth > MAX_DEPTH:
        return
    reader = _READERS[fmt](data, budget, prefix)
    while True:
        try:
            name, blob = next(reader)
        except StopIteration:
            return
        except _UNREADABLE:
            return  # the archive itself was scanned whole
        yield name, blob
        yield from members(blob, budget, prefix=f"{name}!", depth=depth + 1)


def _zip(data: bytes, budget: Budget, prefix: str) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            name = prefix + info.filename
            # Directories, and encrypted members, which cannot be read. (Not is_dir(): it fails on an empty name.)
            if info.filename.endswith("/") or info.flag_bits & 0x1:
                continue
            if not budget.take(info.file_size, name):
                break
            # zipfile stops at the declared size and checks the CRC, so a member cannot unpack past it.
            with z.open(info) as f:
                yield name, f.read(info.file_size + 1)[: info.file_size]


def _tar(data: bytes, budget: Budget, prefix: str) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        for info in t:
            if not info.isreg():
                continue
            name = prefix + info.name
            if not budget.take(info.size, name):
                break
            f = t.extractfile(info)
            if f is not None:
                yield name, f.read(info.size)


def _gzip(data: bytes, budget: Budget, prefix: str) -> Iterator[tuple[str, bytes]]:
    name = prefix + "(gzip)"
    limit = min(MAX_MEMBER, budget.bytes)
    blob = zlib.decompressobj(wbits=31).decompress(data, limit + 1)  # wbits 31: gzip header and trailer
    if len(blob) > limit:
        budget.exceeded.append(name)
        return
    if budget.take(len(blob), name):
        yield name, blob


_READERS = {"zip": _zip, "tar": _tar, "gzip": _gzip}
