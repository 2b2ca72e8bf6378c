"""C2SP tlog-tiles: tile and entry-bundle paths, widths, codecs, and node lookup from tiles.

Pure: fetching bytes is the caller's job (:class:`TileHashReader` takes a ``fetch(path) -> bytes`` callable).
A tile at level ``L`` holds hashes of tree level ``8 * L``; nodes between those levels are recomputed by
hashing (c2sp.org/tlog-tiles §Merkle Tree).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from overt.errors import FormatError
from overt.tlog.merkle import HASH_SIZE, node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE


def encode_index(n: int) -> str:
    """Tile index as zero-padded 3-digit path elements, all but the last prefixed by ``x``."""
    if n < 0:
        raise ValueError("tile index must be non-negative")
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is outside 1..256")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]``."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"tile level {level} is outside 0..63")
    return f"tile/{level}/{encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]``."""
    return f"tile/entries/{encode_index(index)}{_suffix(width)}"


def tile_width(level: int, index: int, tree_size: int) -> int:
    """Width of tile ``index`` at ``level`` in a tree of ``tree_size``: 256 when full, 0 when it does not exist."""
    span = TILE_WIDTH ** (level + 1)
    if (index + 1) * span <= tree_size:
        return TILE_WIDTH
    if index == tree_size // span:
        return (tree_size >> (TILE_HEIGHT * level)) % TILE_WIDTH
    return 0


def tiles_for_size(tree_size: int) -> Iterator[tuple[int, int, int]]:
    """Every (level, index, width) the tiled log of ``tree_size`` serves, level by level."""
    level = 0
    while count := tree_size // TILE_WIDTH**level:
        for index in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            yield level, index, tile_width(level, index, tree_size)
        level += 1


def decode_tile(data: bytes, width: int) -> list[bytes]:
    """Split a tile into ``width`` hashes, rejecting a wrong length."""
    if len(data) != width * HASH_SIZE:
        raise FormatError(f"tile is {len(data)} bytes, expected {width * HASH_SIZE} for width {width}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_bundle(entries: list[bytes]) -> bytes:
    """Entry bundle: big-endian uint16 length-prefixed entries."""
    out = bytearray()
    for e in entries:
        if len(e) > MAX_ENTRY_SIZE:
            raise ValueError(f"entry of {len(e)} bytes does not fit a uint16 length prefix")
        out += struct.pack(">H", len(e))
        out += e
    return bytes(out)


def decode_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """Parse an entry bundle; if ``width`` is given the bundle must hold exactly that many entries."""
    entries: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise FormatError("entry bundle ends inside a length prefix")
        (n,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if pos + n > len(data):
            raise FormatError("entry bundle ends inside an entry")
        entries.append(data[pos : pos + n])
        pos += n
    if width is not None and len(entries) != width:
        raise FormatError(f"entry bundle holds {len(entries)} entries, expected {width}")
    if len(entries) > TILE_WIDTH:
        raise FormatError(f"entry bundle holds {len(entries)} entries, more than {TILE_WIDTH}")
    return entries


def subtree_root(hashes: list[bytes]) -> bytes:
    """Root of a perfect subtree from its 2^k bottom hashes."""
    level = hashes
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class TileHashReader:
    """Answers ``node(level, index)`` for perfect subtrees of a tree of ``tree_size`` by reading tiles.

    ``fetch(path)`` returns the bytes at a tile path (relative to the log prefix). Tiles are cached for the
    reader's lifetime, so one reader serves many proofs against the same tree size.
    """

    def __init__(self, tree_size: int, fetch: Callable[[str], bytes]) -> None:
        self.tree_size = tree_size
        self._fetch = fetch
        self._cache: dict[tuple[int, int], list[bytes]] = {}

    def tile(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        hashes = self._cache.get(key)
        if hashes is None:
            width = tile_width(level, index, self.tree_size)
            if width == 0:
                raise ValueError(f"tile {level}/{index} does not exist in a tree of size {self.tree_size}")
            hashes = decode_tile(self._fetch(tile_path(level, index, width)), width)
            self._cache[key] = hashes
        return hashes

    def node(self, level: int, index: int) -> bytes:
        if (index + 1) << level > self.tree_size:
            raise ValueError(
                f"node {level}/{index} is not a complete subtree of a tree of size {self.tree_size}"
            )
        tile_level, sub = divmod(level, TILE_HEIGHT)
        first = index << sub
        count = 1 << sub
        tile_index, offset = divmod(first, TILE_WIDTH)
        hashes = self.tile(tile_level, tile_index)[offset : offset + count]
        return subtree_root(hashes)
