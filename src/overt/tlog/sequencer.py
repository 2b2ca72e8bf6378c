"""The sequencer: integrates batches of entries into a tlog-tiles tree on disk, with strict deduplication.

Order of a batch, which is what makes it crash-safe (DESIGN invariant: no acknowledged entry is lost):

1. hash the entries and look up duplicates in the store;
2. extend the compact range, collecting completed tile hashes and entries (no re-reading of the tree);
3. write every new or grown tile and entry bundle atomically and fsync them and their directories;
4. commit the (leaf hash, index) rows and the new tree state in one store transaction: the acknowledgement.

A crash before 4 leaves files for sizes never committed; they are rewritten by the next batch. Nothing is
signed here (see :mod:`overt.tlog.log`), so no checkpoint can cover an uncommitted entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from overt.atomic import atomic_write, fsync_dirs
from overt.errors import FormatError, StorageError
from overt.tlog.merkle import EMPTY_ROOT, CompactRange, consistency_ranges, hash_range, inclusion_ranges
from overt.tlog.stores import LogState, SequencerStore
from overt.tlog.tiles import (
    MAX_ENTRY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileHashReader,
    decode_bundle,
    decode_tile,
    encode_bundle,
    entries_path,
    tile_path,
)


def read_log_file(directory: Path, rel: str) -> bytes:
    try:
        return (directory / rel).read_bytes()
    except FileNotFoundError as e:
        raise StorageError(f"log file {rel} is missing from {directory}") from e
    except OSError as e:
        raise StorageError(f"cannot read log file {rel} in {directory}: {e.strerror}") from e


def stored_size(directory: Path, committed: int) -> int:
    """The largest tree size the entry bundles under ``directory`` hold, looking from ``committed`` on."""
    bundle = committed // TILE_WIDTH
    while (directory / entries_path(bundle)).is_file():
        bundle += 1
    widths = [0]
    partials = directory / (entries_path(bundle) + ".p")
    if partials.is_dir():
        widths += [
            int(p.name) for p in partials.iterdir() if p.name.isdigit() and 0 < int(p.name) < TILE_WIDTH
        ]
    return max(committed, bundle * TILE_WIDTH + max(widths))


def intent_covers(intent: Path, committed: int) -> bool:
    """Whether a crashed batch's intent explains files past ``committed`` (it started at that size)."""
    try:
        start = int(intent.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return start == committed


class TileLog:
    """A tiled log rooted at ``directory`` (the ``public/log`` folder), sequenced through ``store``."""

    def __init__(
        self, directory: Path, store: SequencerStore, *, durable: bool = True, intent: Path | None = None
    ) -> None:
        self.directory = directory
        self.store = store
        self.durable = durable
        # Written (durably) before a batch's files and removed once it is committed: files past the committed
        # size are then either a crashed batch (the intent is there) or evidence of a lost database.
        self.intent = intent
        state = store.load_state() or LogState(tree_size=0, root_hash=EMPTY_ROOT, peaks=())
        self.state = state
        self._range = CompactRange(state.tree_size, state.peaks)
        if self._range.root() != state.root_hash:
            raise StorageError("stored log state is corrupt: its peaks do not hash to its root")
        # Right edge of the tile tree: hashes of the rightmost, incomplete tile at each level, and the
        # entries of the rightmost incomplete bundle. Everything left of it is immutable on disk.
        self._edge: dict[int, list[bytes]] = {}
        self._bundle: list[bytes] = []
        self._load_edge()

    def close(self) -> None:
        self.store.close()

    # -- reading -------------------------------------------------------------------------------------

    def read(self, rel: str) -> bytes:
        return read_log_file(self.directory, rel)

    @staticmethod
    def reader_for(directory: Path) -> Callable[[str], bytes]:
        """``read(rel)`` for the log files under ``directory``, without opening a database."""
        return lambda rel: read_log_file(directory, rel)

    def reader(self, tree_size: int | None = None) -> TileHashReader:
        return TileHashReader(self.state.tree_size if tree_size is None else tree_size, self.read)

    def _load_edge(self) -> None:
        size = self.state.tree_size
        level = 0
        while size >> (TILE_HEIGHT * level):
            count = size >> (TILE_HEIGHT * level)
            width = count % TILE_WIDTH
            if width:
                path = tile_path(level, count // TILE_WIDTH, width)
                self._edge[level] = self._decode(path, partial(decode_tile, width=width))
            level += 1
        width = size % TILE_WIDTH
        if width:
            path = entries_path(size // TILE_WIDTH, width)
            self._bundle = self._decode(path, partial(decode_bundle, width=width))
        if size and self.reader().node(0, size - 1) != self._leaf_at_edge():
            raise StorageError("log tiles on disk disagree with the committed state")
        if size and hash_range(0, size, self.reader().node) != self.state.root_hash:
            raise StorageError("log tiles on disk do not hash to the committed root")

    def _decode(self, path: str, decode: Callable[[bytes], list[bytes]]) -> list[bytes]:
        try:
            return decode(self.read(path))
        except FormatError as e:
            raise StorageError(f"log file {path} in {self.directory} is damaged: {e}") from e

    def _leaf_at_edge(self) -> bytes:
        size = self.state.tree_size
        return self.reader().tile(0, (size - 1) // TILE_WIDTH)[(size - 1) % TILE_WIDTH]

    def entry(self, index: int) -> bytes:
        size = self.state.tree_size
        if not 0 <= index < size:
            raise ValueError(f"entry {index} is outside a log of size {size}")
        bundle = index // TILE_WIDTH
        width = min(TILE_WIDTH, size - bundle * TILE_WIDTH)
        return decode_bundle(self.read(entries_path(bundle, width)), width)[index % TILE_WIDTH]

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        reader = self.reader(tree_size)
        return [hash_range(a, b, reader.node) for a, b in inclusion_ranges(index, tree_size)]

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        if size1 == 0 or size1 == size2:
            return []
        reader = self.reader(size2)
        return [hash_range(a, b, reader.node) for a, b in consistency_ranges(size1, size2)]

    def root_at(self, tree_size: int) -> bytes:
        return hash_range(0, tree_size, self.reader(tree_size).node) if tree_size else EMPTY_ROOT

    # -- appending -----------------------------------------------------------------------------------

    def append(self, entries: Sequence[bytes]) -> list[int]:
        """Integrate ``entries`` durably; return each entry's index (an existing one for a duplicate)."""
        for e in entries:
            if len(e) > MAX_ENTRY_SIZE:
                raise FormatError(f"entry of {len(e)} bytes exceeds the {MAX_ENTRY_SIZE}-byte maximum")
        hashes = [hashlib.sha256(b"\x00" + e).digest() for e in entries]
        known = self.store.lookup(list(set(hashes)))
        if known:
            self._check_known(known)
        full: list[tuple[str, bytes]] = []
        dirty: set[int] = set()
        edge = self._edge

        def on_node(level: int, index: int, h: bytes) -> None:
            tile_level, sub = divmod(level, TILE_HEIGHT)
            if sub:
                return
            buf = edge.setdefault(tile_level, [])
            buf.append(h)
            dirty.add(tile_level)
            if len(buf) == TILE_WIDTH:
                full.append((tile_path(tile_level, index // TILE_WIDTH), b"".join(buf)))
                edge[tile_level] = []

        rng = CompactRange(self._range.size, self._range.peaks, on_node)
        new_rows: list[tuple[bytes, int]] = []
        indices: list[int] = []
        bundle = list(self._bundle)
        for e, h in zip(entries, hashes, strict=True):
            idx = known.get(h)
            if idx is None:
                idx = rng.size
                known[h] = idx
                new_rows.append((h, idx))
                rng.append(h)
                bundle.append(e)
                if len(bundle) == TILE_WIDTH:
                    full.append((entries_path(idx // TILE_WIDTH), encode_bundle(bundle)))
                    bundle = []
            indices.append(idx)
        if not new_rows:
            return indices
        size = rng.size
        writes = full
        for level in dirty:
            buf = edge[level]
            if buf:
                writes.append(
                    (tile_path(level, (size >> (TILE_HEIGHT * level)) // TILE_WIDTH, len(buf)), b"".join(buf))
                )
        if bundle:
            writes.append((entries_path(size // TILE_WIDTH, len(bundle)), encode_bundle(bundle)))
        try:
            if self.intent is not None:
                # Not fsynced: a SIGKILL keeps it (the kernel has it); only a power loss can drop it, and then
                # the open refuses and 'overt log recover' keeps the crashed batch (consistent, never acked).
                atomic_write(self.intent, f"{self.state.tree_size} {size}\n".encode(), durable=False)
            for rel, data in writes:
                atomic_write(self.directory / rel, data, durable=self.durable)
            if self.durable:
                fsync_dirs((self.directory / rel).parent for rel, _ in writes)
        except OSError as e:
            self._load_edge_after_failure()
            raise StorageError(f"cannot write log tiles under {self.directory}: {e}") from e
        new_state = LogState(tree_size=size, root_hash=rng.root(), peaks=tuple(rng.peaks))
        try:
            self.store.commit(new_rows, new_state)
        except StorageError:
            self._load_edge_after_failure()
            raise
        self.state = new_state
        self._range = CompactRange(size, rng.peaks)
        self._bundle = bundle
        if self.intent is not None:
            self.intent.unlink(missing_ok=True)  # not fsynced: a left-over intent only allows a rewrite
        return indices

    def _check_known(self, known: dict[bytes, int]) -> None:
        """A deduplication hit must name an index of the committed tree whose leaf is that entry's hash.

        The table is only an index: a damaged or tampered row must not hand out another entry's index, an
        index past the tree, or one a later entry will get.
        """
        size = self.state.tree_size
        reader = self.reader()
        for h, index in known.items():
            if not 0 <= index < size or reader.tile(0, index // TILE_WIDTH)[index % TILE_WIDTH] != h:
                raise StorageError(
                    f"the deduplication table places an entry at index {index}, but the committed tree of size "
                    f"{size} holds another entry there; the database is damaged: 'overt log fsck --full' "
                    "names its rows, 'overt log recover' rebuilds it from the tiles",
                    index=index,
                )

    def _load_edge_after_failure(self) -> None:
        """Forget the half-integrated batch: reload the right edge of the committed tree from disk."""
        self._edge = {}
        self._bundle = []
        self._load_edge()
