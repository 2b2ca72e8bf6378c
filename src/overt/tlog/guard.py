"""The log operator's guard against forks: the sequencing database is checked against what the log published.

DESIGN invariant: a lost or restored database is refused and recovered from the tiles, never re-sequenced.
The database (:mod:`overt.tlog.stores`) is only an index; the truth is what the log signed and published:

* ``public/log/checkpoint``, the checkpoint the witness quorum cosigned, and
* the *head*: the last checkpoint the log key signed, kept in a file beside the database (``<home>/log-head``)
  and written before any witness sees it, so a checkpoint a witness cosigned is never forgotten with the
  database.

:func:`check_database` runs on every open for appending: a database that is behind the head, or whose tree
does not extend it, is refused with both sizes and roots. :func:`fsck` checks every tile and bundle
(:mod:`overt.tlog.fsck`), the deduplication rows and SQLite's own pages; it is incremental unless asked for a
full check, remembering in ``<home>/log-fsck`` the size it last found sound. :func:`recover` rebuilds the
database from the published tiles after verifying them against the head.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from overt.atomic import atomic_write
from overt.errors import ConfigError, Error, FormatError, SignatureError, StorageError
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.fsck import Damage, Read, TreeCheck, check_tree
from overt.tlog.merkle import EMPTY_ROOT, CompactRange, hash_range, leaf_hash
from overt.tlog.note import Verifier
from overt.tlog.sequencer import intent_covers, read_log_file, stored_size
from overt.tlog.stores import LogState, SequencerStore
from overt.tlog.tiles import TILE_WIDTH, TileHashReader, decode_bundle, entries_path


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class StaleDatabaseError(StorageError):
    """The sequencing database is behind, or forks from, the tree this log already signed and published."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """The largest checkpoint this log is known to have signed, and where it was found."""

    checkpoint: SignedCheckpoint
    source: str

    @property
    def tree_size(self) -> int:
        return self.checkpoint.checkpoint.tree_size

    @property
    def root_hash(self) -> bytes:
        return self.checkpoint.checkpoint.root_hash


def read_signed(path: Path, verifier: Verifier, what: str) -> SignedCheckpoint | None:
    """The checkpoint at ``path`` (None if absent), which must be this log's: same origin, same key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StorageError(f"cannot read {what} {path}: {e.strerror}") from e
    try:
        signed = SignedCheckpoint.from_bytes(data)
    except FormatError as e:
        raise StorageError(f"{what} {path} is damaged: {e}") from e
    origin = signed.checkpoint.origin
    if origin != verifier.name:
        raise ConfigError(
            f"{what} {path} is for origin {origin!r} but this home's log origin is {verifier.name!r}; "
            "a log's origin cannot change once it has published a checkpoint",
            published_origin=origin,
            configured_origin=verifier.name,
        )
    try:
        signed.verify([verifier])
    except SignatureError as e:
        raise ConfigError(
            f"{what} {path} is not signed by this home's log key ({e}); a log's key cannot change once it "
            "has published a checkpoint",
        ) from e
    return signed


def known_heads(log_dir: Path, head: Path, verifier: Verifier) -> list[Head]:
    """The checkpoints this log signed that live outside its database, each checked to be this log's: the
    published one (``<log_dir>/checkpoint``) and the saved head."""
    sources = [(log_dir / "checkpoint", "published checkpoint"), (head, "last signed checkpoint (log-head)")]
    return [
        Head(checkpoint=cp, source=what)
        for path, what in sources
        if (cp := read_signed(path, verifier, what)) is not None
    ]


def largest(heads: list[Head]) -> Head | None:
    return max(heads, key=lambda h: h.tree_size, default=None)


def save_head(path: Path, signed: SignedCheckpoint) -> None:
    atomic_write(path, signed.to_bytes())


def check_database(state: LogState, heads: list[Head], root_at: Callable[[int], bytes]) -> None:
    """Refuse a database that is behind any of ``heads`` or whose tree is not an extension of each."""
    for head in heads:
        _check_against(state, head, root_at)


def _check_against(state: LogState, head: Head, root_at: Callable[[int], bytes]) -> None:
    evidence = {
        "database_size": state.tree_size,
        "database_root": b64(state.root_hash),
        "signed_size": head.tree_size,
        "signed_root": b64(head.root_hash),
    }
    hint = "run 'overt log recover' to rebuild the database from the published tiles"
    if head.tree_size > state.tree_size:
        raise StaleDatabaseError(
            f"the log database is behind what this log signed: the database holds size {state.tree_size} "
            f"(root {b64(state.root_hash)}) but the {head.source} is at size {head.tree_size} "
            f"(root {b64(head.root_hash)}); appending now would fork the log. {hint}",
            **evidence,
        )
    try:
        if head.tree_size == 0:
            root = EMPTY_ROOT
        elif head.tree_size < state.tree_size:
            root = root_at(head.tree_size)
        else:
            root = state.root_hash
    except Error as e:
        raise StaleDatabaseError(f"cannot compare the database with the {head.source}: {e}. {hint}") from e
    if root != head.root_hash:
        raise StaleDatabaseError(
            f"the log database forks from what this log signed: at size {head.tree_size} the database's tree "
            f"has root {b64(root)} but the {head.source} has root {b64(head.root_hash)}. {hint}",
            **evidence,
        )


def check_open(
    state: LogState, store: SequencerStore, heads: list[Head], *, directory: Path, intent: Path
) -> None:
    """Everything an open for appending checks before it may sign: the database against the heads, its
    deduplication rows, and the entry bundles past its size (raises :class:`StaleDatabaseError`)."""
    reader = TileHashReader(
        state.tree_size, partial(read_log_file, directory)
    )  # current tiles, not stale ones
    check_database(state, heads, lambda n: hash_range(0, n, reader.node))
    check_rows(store, state)
    check_files_beyond(directory, state.tree_size, intent)


def check_files_beyond(directory: Path, committed: int, intent: Path) -> None:
    """Refuse a database whose tree is shorter than the entry bundles a committed batch wrote.

    A crashed batch leaves bundles past the committed size too, but it leaves its intent file as well
    (:class:`overt.tlog.sequencer.TileLog`). Without one, bundles past the committed size were committed by a
    database this one is not: overwriting them would rewrite entries someone was told are in the log.
    """
    stored = stored_size(directory, committed)
    if stored > committed and not intent_covers(intent, committed):
        raise StaleDatabaseError(
            f"the log's entry bundles hold {stored} entries but the log database only {committed}: the "
            "database lost committed entries (restored from an older backup?), and appending would overwrite "
            "them. Run 'overt log recover' to rebuild it from the tiles",
            database_size=committed,
            stored_size=stored,
        )


def check_rows(store: SequencerStore, state: LogState) -> None:
    """The deduplication table must hold exactly one row per entry, or a duplicate would be re-sequenced."""
    count = store.entry_count()
    if count != state.tree_size:
        raise StaleDatabaseError(
            f"the log database's deduplication table holds {count} rows for a tree of {state.tree_size} "
            "entries; run 'overt log fsck --full', then 'overt log recover'",
            rows=count,
            tree_size=state.tree_size,
        )


# -- fsck ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FsckReport:
    tree_size: int
    start: int
    full: bool
    bundles: int
    tiles: int
    damage: tuple[Damage, ...] = ()
    database: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.damage and not self.database

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "tree_size": self.tree_size,
            "checked_from": self.start,
            "full": self.full,
            "bundles_checked": self.bundles,
            "tiles_checked": self.tiles,
            "damaged_files": [d.to_dict() for d in self.damage],
            "database_problems": list(self.database),
        }


def read_mark(path: Path) -> int:
    """The tree size the last sound fsck reached (0 if unknown)."""
    try:
        value = json.loads(path.read_text())["tree_size"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return value if isinstance(value, int) and value >= 0 else 0


def write_mark(path: Path, tree_size: int) -> None:
    atomic_write(path, json.dumps({"tree_size": tree_size}).encode(), durable=False)


class _RowMatcher:
    """Compares the database's (leaf hash, index) rows with the leaf hashes recomputed from the bundles."""

    def __init__(self, rows: Iterator[tuple[bytes, int]]) -> None:
        self.rows = rows
        self.problems: list[str] = []
        self.indices: list[int] = []
        self._pending: tuple[bytes, int] | None = None

    def __call__(self, first: int, hashes: list[bytes]) -> None:
        for offset, h in enumerate(hashes):
            index = first + offset
            row = self._next_at_or_after(index)
            if row is None or row[1] != index:
                self._problem(f"no deduplication row for entry {index}", index)
                self._pending = row
            elif row[0] != h:
                self._problem(f"the deduplication row for entry {index} holds another entry's hash", index)

    def _next_at_or_after(self, index: int) -> tuple[bytes, int] | None:
        row = self._pending or next(self.rows, None)
        self._pending = None
        while row is not None and row[1] < index:
            row = next(self.rows, None)
        return row

    def _problem(self, text: str, index: int) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)
            self.indices.append(index)

    def outside(self, damage: Sequence[Damage]) -> list[str]:
        """The problems not explained by a damaged bundle (its entries hash wrongly, not the rows)."""
        prefix = "tile/entries/"
        bad = {
            int(d.path[len(prefix) :].split(".p")[0].replace("x", "").replace("/", ""))
            for d in damage
            if d.path.startswith(prefix)
        }
        return [p for p, i in zip(self.problems, self.indices, strict=True) if i // TILE_WIDTH not in bad]


def fsck(
    read: Read,
    store: SequencerStore | None,
    *,
    heads: list[Head],
    mark_path: Path,
    full: bool,
    store_error: str | None = None,
    directory: Path | None = None,
    intent: Path | None = None,
) -> FsckReport:
    """Check the log's files (and its database, if it opens) against the head and the database's own state.

    With ``directory`` (the log's files on disk) and its ``intent`` file, entry bundles past the database's
    tree that no crashed batch explains are a problem too (:func:`check_files_beyond`): a database restored
    with its head and checkpoint from an older backup agrees with all three, and only the bundles tell.
    """
    problems: list[str] = [store_error] if store_error else []
    state: LogState | None = None
    if store is not None:
        problems += [f"SQLite: {p}" for p in store.integrity_problems()]
        try:
            state = store.load_state()
        except Error as e:
            problems.append(str(e))
        head = largest(heads)
        if state is None and head is not None and head.tree_size > 0 and not problems:
            problems.append(
                f"the log database holds no tree, but this log signed size {head.tree_size}: it was lost or "
                "emptied; run 'overt log recover'"
            )
    size, root = _tree_to_check(state, heads, read, problems)
    if directory is not None and intent is not None and store is not None and not problems:
        try:
            check_files_beyond(directory, state.tree_size if state is not None else 0, intent)
        except StaleDatabaseError as e:
            problems.append(str(e))
    start = 0 if full else min(read_mark(mark_path), size)
    first = start - start % TILE_WIDTH  # check_tree re-reads the whole bundle that holds ``start``
    matcher = _RowMatcher(store.rows_from(first)) if store is not None and state is not None else None
    check: TreeCheck = check_tree(read, size, root, start=start, on_leaves=matcher)
    if matcher is not None:
        problems += matcher.outside(check.damage)
        if state is not None and not problems:
            try:
                check_rows(store, state)  # type: ignore[arg-type]
            except StaleDatabaseError as e:
                problems.append(str(e))
    report = FsckReport(
        tree_size=size,
        start=start,
        full=full,
        bundles=check.bundles,
        tiles=check.tiles,
        damage=check.damage,
        database=tuple(problems),
    )
    if report.ok:
        write_mark(mark_path, size)
    return report


def _tree_to_check(
    state: LogState | None, heads: list[Head], read: Read, problems: list[str]
) -> tuple[int, bytes]:
    """The database's tree if it extends the heads, else the largest head's (and the database is a problem)."""
    head = largest(heads)
    if state is None and head is None:
        return 0, EMPTY_ROOT
    if state is None:
        assert head is not None
        return head.tree_size, head.root_hash

    reader = TileHashReader(state.tree_size, read)

    def root_at(size: int) -> bytes:
        return hash_range(0, size, reader.node)

    try:
        check_database(state, heads, root_at)
    except StaleDatabaseError as e:
        problems.append(str(e))
        assert head is not None
        return head.tree_size, head.root_hash
    return state.tree_size, state.root_hash


# -- recover ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoverResult:
    """A rebuilt database: its tree, the signed checkpoint (``source``, of ``signed_size``) its first entries
    were verified against ("entry bundles" and 0 when none was left), the files checked, and notes."""

    tree_size: int
    root_hash: bytes
    source: str
    signed_size: int
    bundles: int
    tiles: int
    notes: tuple[str, ...] = field(default=())

    @property
    def message(self) -> str:
        """What was rebuilt and what it was verified against, as a user reads it."""
        built = (
            f"rebuilt the log database from {self.bundles} entry bundles and {self.tiles} tiles: size "
            f"{self.tree_size}, root {b64(self.root_hash)}"
        )
        if self.signed_size == self.tree_size:
            return f"{built}, all verified against the {self.source}"
        if not self.signed_size:
            return (
                f"{built}; no signed checkpoint this log still has covers its entries, which were checked "
                "against the tiles alone"
            )
        return (
            f"{built}; its first {self.signed_size} entries verified against the {self.source} (size "
            f"{self.signed_size}); no signed checkpoint this log still has covers the other "
            f"{self.tree_size - self.signed_size}, which were checked against the tiles alone"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "tree_size": self.tree_size,
            "root_hash": b64(self.root_hash),
            "verified_against": self.source,
            "verified_size": self.signed_size,
            "bundles_checked": self.bundles,
            "tiles_checked": self.tiles,
            "notes": list(self.notes),
        }


def recover(
    read: Read,
    fresh_store: Callable[[], SequencerStore],
    head: Head | None,
    *,
    others: Sequence[Head] = (),
    tree_size: int | None = None,
) -> RecoverResult:
    """Rebuild the store from the published tiles and bundles, after verifying all of them against ``head``.

    ``tree_size`` (default: the head's) may be larger: committed entries the bundles hold past the last
    signed checkpoint. The tree they make must then extend the head (same root at the head's size), and
    every tile must agree with it. Every other known checkpoint (``others``) must be a prefix of the tree.
    ``fresh_store()`` (which moves the old database aside) is called only once everything verified, so a
    failed recovery leaves the database as it was.
    """
    size = tree_size if tree_size is not None else (head.tree_size if head is not None else 0)
    if head is None and size == 0:
        raise StorageError(
            "nothing to recover from: this log has no signed checkpoint (public/log/checkpoint or log-head) "
            "and no entry bundles"
        )
    rows = _leaves(read, size)
    known = [*others, *([head] if head is not None else [])]
    sizes = {k.tree_size for k in known}
    roots: dict[int, bytes] = {0: EMPTY_ROOT}
    rng = CompactRange()
    for h, _ in rows:
        rng.append(h)
        if rng.size in sizes:
            roots[rng.size] = rng.root()
    root = rng.root()
    if head is not None and head.tree_size:
        # The signed root is the referee for the signed prefix; the extension must agree with itself.
        _verified(check_tree(read, head.tree_size, head.root_hash), head.source, head.tree_size)
    check = check_tree(read, size, root)
    _verified(check, "tree its entry bundles make", size)
    for signed in known:
        if roots.get(signed.tree_size) != signed.root_hash:
            raise StorageError(
                f"cannot recover: the {signed.source} (size {signed.tree_size}) is not a prefix of the tree the "
                f"log's files hold (size {size}); the files or the checkpoint are damaged, or this log forked"
            )
    _check_unique(rows)
    state = LogState(tree_size=rng.size, root_hash=root, peaks=tuple(rng.peaks))
    store = fresh_store()
    try:
        store.restore(rows, state, head.checkpoint.to_bytes() if head is not None else None)
    finally:
        store.close()
    notes: list[str] = []
    if head is None:
        notes.append(
            "no signed checkpoint was left to verify against: the database was rebuilt from the tiles alone; "
            "witnesses and clients that kept a checkpoint of this log will tell if it is not the tree they saw"
        )
    elif size > head.tree_size:
        notes.append(
            f"{size - head.tree_size} committed entries past the {head.source} (size {head.tree_size}) were "
            "found in the entry bundles, extend it consistently, and were kept"
        )
    return RecoverResult(
        tree_size=size,
        root_hash=root,
        source=head.source if head is not None else "entry bundles",
        signed_size=head.tree_size if head is not None else 0,
        bundles=check.bundles,
        tiles=check.tiles,
        notes=tuple(notes),
    )


def _verified(check: TreeCheck, against: str, size: int) -> None:
    if not check.ok:
        raise StorageError(
            f"cannot recover: the published log files do not verify against the {against} (size {size}): "
            f"{check.listing()}",
            damaged_files=[d.to_dict() for d in check.damage],
        )


def _leaves(read: Read, size: int) -> list[tuple[bytes, int]]:
    """(leaf hash, index) for ``[0, size)`` from the entry bundles; a bundle that does not parse is an error."""
    rows: list[tuple[bytes, int]] = []
    for bundle in range(-(-size // TILE_WIDTH)):
        width = min(TILE_WIDTH, size - bundle * TILE_WIDTH)
        path = entries_path(bundle, width)
        try:
            entries = decode_bundle(read(path), width)
        except Error as e:
            raise StorageError(f"cannot recover: {path}: {e}") from e
        rows.extend((leaf_hash(e), bundle * TILE_WIDTH + i) for i, e in enumerate(entries))
    return rows


def _check_unique(rows: list[tuple[bytes, int]]) -> None:
    seen: dict[bytes, int] = {}
    for h, index in rows:
        if h in seen:
            raise StorageError(
                f"cannot recover: entry {index} repeats entry {seen[h]}, which strict deduplication never "
                "allows; the log's files were not written by overt"
            )
        seen[h] = index
