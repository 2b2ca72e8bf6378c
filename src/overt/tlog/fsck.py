"""Checking a tiled log against its signed root: every entry bundle and tile, or only what changed.

:func:`check_tree` recomputes the tree bottom-up from the entry bundles (RFC 6962 leaf hashes, then each tile
level from the full tiles below it), compares every stored tile with what it should hold, and compares the
resulting root with the signed one. When they disagree it names the file at fault: a stored tile that differs
from its entries is damaged if the entries lead to the signed root; entries that differ from a tile are damaged
if the stored tiles lead to the signed root instead. With ``start`` it checks only bundles and tiles that cover
indices from ``start`` on, trusting the older ones (checked before, and immutable: tlog-tiles §Full Tiles).

Pure: files come through ``read(path) -> bytes``. The operator side (:mod:`overt.tlog.guard`) adds the sequencing
database and the incremental mark; a client can pass its own fetcher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from overt.errors import Error
from overt.tlog.merkle import EMPTY_ROOT, hash_range, leaf_hash
from overt.tlog.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileHashReader,
    decode_bundle,
    decode_tile,
    entries_path,
    subtree_root,
    tile_path,
    tile_width,
)

Read = Callable[[str], bytes]
LeafSink = Callable[[int, list[bytes]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Damage:
    """One damaged file (``path`` relative to the log prefix) and what is wrong with it."""

    path: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "problem": self.problem}


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeCheck:
    tree_size: int
    start: int
    bundles: int
    tiles: int
    damage: tuple[Damage, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.damage

    def listing(self, most: int = 10) -> str:
        """The first ``most`` damaged files and their problems, for an error message."""
        return "; ".join(f"{d.path}: {d.problem}" for d in self.damage[:most])


class _Walk:
    """State of one check: tiles recomputed from the bundles, stored tiles read, damage found."""

    def __init__(self, read: Read, tree_size: int) -> None:
        self.read = read
        self.size = tree_size
        self.computed: dict[tuple[int, int], list[bytes]] = {}
        self.stored_cache: dict[tuple[int, int], list[bytes] | None] = {}
        self.damage: list[Damage] = []
        self.conflicts: list[tuple[int, int]] = []
        self.bundles = 0
        self.tiles = 0

    def stored(self, level: int, index: int) -> list[bytes] | None:
        key = (level, index)
        if key not in self.stored_cache:
            width = tile_width(level, index, self.size)
            path = tile_path(level, index, width)
            hashes: list[bytes] | None = None
            try:
                hashes = decode_tile(self.read(path), width)
            except Error as e:
                self.damage.append(Damage(path=path, problem=f"unreadable tile: {e}"))
            self.stored_cache[key] = hashes
        return self.stored_cache[key]

    def hashes(self, level: int, index: int) -> list[bytes] | None:
        return self.computed.get((level, index)) or self.stored(level, index)

    def leaves(self, start: int, on_leaves: LeafSink | None) -> None:
        for bundle in range(start // TILE_WIDTH, -(-self.size // TILE_WIDTH)):
            width = tile_width(0, bundle, self.size)
            path = entries_path(bundle, width)
            try:
                entries = decode_bundle(self.read(path), width)
            except Error as e:
                self.damage.append(Damage(path=path, problem=f"unreadable entry bundle: {e}"))
                continue
            self.bundles += 1
            hashes = [leaf_hash(e) for e in entries]
            if on_leaves is not None:
                on_leaves(bundle * TILE_WIDTH, hashes)
            self.computed[(0, bundle)] = hashes

    def level(self, level: int, start: int) -> None:
        count = self.size >> (TILE_HEIGHT * level)
        first = (start >> (TILE_HEIGHT * level)) // TILE_WIDTH
        for index in range(first, -(-count // TILE_WIDTH)):
            if level:
                self._compute_from_below(level, index)
            self.tiles += 1
            got = self.stored(level, index)
            want = self.computed.get((level, index))
            if got is not None and want is not None and got != want:
                self.conflicts.append((level, index))

    def _compute_from_below(self, level: int, index: int) -> None:
        width = tile_width(level, index, self.size)
        out: list[bytes] = []
        for child in range(index * TILE_WIDTH, index * TILE_WIDTH + width):
            below = self.hashes(level - 1, child)
            if below is None or len(below) != TILE_WIDTH:
                return
            out.append(subtree_root(below))
        self.computed[(level, index)] = out

    def root(self, *, prefer_computed: bool) -> bytes | None:
        paths = {
            tile_path(lv, ix, len(h)): b"".join(h) for (lv, ix), h in self.computed.items() if prefer_computed
        }

        def fetch(rel: str) -> bytes:
            data = paths.get(rel)
            return data if data is not None else self.read(rel)

        try:
            return hash_range(0, self.size, TileHashReader(self.size, fetch).node)
        except (Error, ValueError):
            return None


def check_tree(
    read: Read, tree_size: int, root_hash: bytes, *, start: int = 0, on_leaves: LeafSink | None = None
) -> TreeCheck:
    """Check the log's files for ``tree_size`` against ``root_hash``; ``start`` > 0 checks only newer files.

    ``on_leaves(first_index, leaf_hashes)`` is called for every readable bundle checked (recovery uses it).
    """
    if not 0 <= start <= tree_size:
        raise ValueError(f"start {start} is outside 0..{tree_size}")
    if tree_size == 0:
        damage = (
            () if root_hash == EMPTY_ROOT else (Damage(path="checkpoint", problem="size 0, root not empty"),)
        )
        return TreeCheck(tree_size=0, start=0, bundles=0, tiles=0, damage=damage)
    walk = _Walk(read, tree_size)
    walk.leaves(start, on_leaves)
    level = 0
    while tree_size >> (TILE_HEIGHT * level):
        walk.level(level, start)
        level += 1
    _judge(walk, root_hash)
    return TreeCheck(
        tree_size=tree_size, start=start, bundles=walk.bundles, tiles=walk.tiles, damage=tuple(walk.damage)
    )


def _blame_children(walk: _Walk, level: int, index: int) -> None:
    """The stored tile (level, index) agrees with the signed root: name the stored children that do not.

    A child recomputed from newer files is judged by its own conflict; this finds old, trusted children
    (not re-read by an incremental check) whose hash no longer matches their parent's entry.
    """
    parent = walk.stored(level, index)
    if parent is None:
        return
    for pos, child in enumerate(range(index * TILE_WIDTH, index * TILE_WIDTH + len(parent))):
        if (level - 1, child) in walk.computed and level - 1 == 0:
            continue  # a re-read bundle: already judged as a level-0 conflict
        below = walk.stored(level - 1, child)
        if below is not None and len(below) == TILE_WIDTH and subtree_root(below) != parent[pos]:
            path = tile_path(level - 1, child)
            walk.damage.append(
                Damage(
                    path=path, problem=f"does not hash to its entry in {tile_path(level, index, len(parent))}"
                )
            )


def _judge(walk: _Walk, root_hash: bytes) -> None:
    """Decide which side of each disagreement is damaged, using the signed root as the referee."""
    from_entries = walk.root(prefer_computed=True)
    if from_entries == root_hash:
        for level, index in walk.conflicts:
            path = tile_path(level, index, tile_width(level, index, walk.size))
            walk.damage.append(
                Damage(path=path, problem="hashes differ from the entries and the signed root")
            )
        return
    from_tiles = walk.root(prefer_computed=False)
    bottom = [c for c in walk.conflicts if c[0] == 0]
    for _, index in bottom:
        path = entries_path(index, tile_width(0, index, walk.size))
        walk.damage.append(
            Damage(path=path, problem="entries do not hash to their tile or to the signed root")
        )
    if from_tiles == root_hash:
        for level, index in walk.conflicts:
            if level:
                _blame_children(walk, level, index)
    if from_tiles != root_hash:
        walk.damage.append(
            Damage(path="checkpoint", problem="neither the entries nor the tiles hash to the signed root")
        )
    elif not bottom and not walk.damage:
        walk.damage.append(Damage(path="checkpoint", problem="the entries do not hash to the signed root"))
