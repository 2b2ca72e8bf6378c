"""Reading a range of the log fast and checking it against the tree: bundles in order, on every core.

:func:`read_range` yields, bundle by bundle and in log order, the
:class:`~overt.auditor.monitor_entries.BundleFacts` of the entries ``[start, end)``. Past :data:`POOL_MIN`
entries it reads through worker processes (each with its own HTTP client; ``spawn``: a forked worker would
inherit the monitor's SQLite connection, its state lock and the pool's pipes, and outlive a killed monitor
holding the lock), a bounded number of bundles ahead; below that, in this process. A worker ends itself
when the monitor that started it is gone (a thread watching its parent's pid): a monitor killed with SIGKILL
leaves no worker behind, nor, once its workers are gone, multiprocessing's resource tracker.

:class:`PrefixCheck` folds the leaf hashes (a whole bundle's subtree root at once) into the right edge of the
tree (a :class:`~overt.tlog.merkle.CompactRange`, kept in the monitor's state), checks that each bundle holds
exactly the entries the tree of that size has there, and proves, before anything read is committed, that
the tree so far is a prefix of the verified checkpoint (a consistency proof from the log's tiles). Entries
that do not hash to what the tree commits to are a :class:`~overt.errors.ConsistencyError`, never facts.

:func:`checked_entries` is the same check for a reader that wants the entries themselves (the rebuilder's
discovery): nothing a tile server leaves out of a bundle or changes in it gets past it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from overt.auditor.monitor_entries import BundleFacts, Needs, bundle_entries, read_bundle
from overt.auditor.monitor_http import monitor_fetcher
from overt.errors import ConsistencyError
from overt.tlog.client import LogClient
from overt.tlog.merkle import (
    CompactRange,
    consistency_ranges,
    hash_range,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    verify_consistency,
)
from overt.tlog.policy import Policy
from overt.tlog.tiles import TILE_WIDTH

POOL_MIN = 20_000  # below this many entries, worker processes cost more than they save
AHEAD = 16  # bundles in flight per worker (a commit's judging never starves them)
BUNDLE_LEVEL = TILE_WIDTH.bit_length() - 1  # a whole entry bundle is a perfect subtree of this level


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


# --- worker processes ---------------------------------------------------------------------------------

_WORKER: tuple[LogClient, Needs] | None = None
ORPHAN_CHECK = 0.5  # seconds between a worker's looks at its parent


def _exit_when_orphaned(parent: int) -> None:
    """End this process once ``parent`` is no longer its parent (it died; the process was reparented)."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK)
    os._exit(1)


def _init_worker(source: str, policy: bytes, needs: dict[str, object], parent: int) -> None:
    global _WORKER
    if os.getppid() != parent:
        os._exit(1)  # the monitor died before this worker started
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    _WORKER = (LogClient(monitor_fetcher(source), Policy.from_bytes(policy)), Needs.from_wire(needs))


def _work(bundle: int, tree_size: int, start: int) -> BundleFacts:
    assert _WORKER is not None, "worker not initialised"
    client, needs = _WORKER
    return read_bundle(client, bundle, tree_size, needs, start=start)


def read_range(
    client: LogClient, *, source: str, start: int, end: int, needs: Needs, workers: int
) -> Generator[BundleFacts, None, None]:
    """Each bundle of ``[start, end)`` in order (the first one from ``start``), read by ``workers``
    processes when the range is long enough."""
    first, last = start // TILE_WIDTH, (end + TILE_WIDTH - 1) // TILE_WIDTH
    if workers <= 1 or end - start < POOL_MIN:
        for b in range(first, last):
            yield read_bundle(client, b, end, needs, start=start)
        return
    context = multiprocessing.get_context("spawn")
    args = (source, client.policy.to_bytes(), needs.to_wire(), os.getpid())
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=args)
    pending: deque[Future[BundleFacts]] = deque()
    b = first
    try:
        while b < last or pending:
            while b < last and len(pending) < workers * AHEAD:
                pending.append(pool.submit(_work, b, end, start))
                b += 1
            yield pending.popleft().result()
    finally:
        # Not waiting for the workers to exit: every result is in (or none is wanted any more).
        pool.shutdown(wait=False, cancel_futures=True)


# --- the tree ------------------------------------------------------------------------------------------


class PrefixCheck:
    """The leaves read so far, as the right edge of the tree, and proofs that they are the log's."""

    def __init__(self, size: int, peaks: Sequence[bytes]) -> None:
        self.range = CompactRange(size, peaks)

    @classmethod
    def from_tiles(cls, client: LogClient, *, size: int, tree_size: int) -> PrefixCheck:
        """The tree's edge at ``size`` as the tiles of the tree of ``tree_size`` give it: trusted only once
        :meth:`prove` matched a root computed over it (a tile server that lies about it fails there)."""
        if size == 0:
            return cls(0, ())
        reader = client.reader(tree_size)
        return cls(size, [reader.node(level, index) for level, index in perfect_subtrees(0, size)])

    @property
    def size(self) -> int:
        return self.range.size

    @property
    def peaks(self) -> tuple[bytes, ...]:
        return tuple(self.range.peaks)

    def add(
        self,
        *,
        bundle: int,
        first: int,
        count: int,
        tree_size: int,
        leaves: Sequence[bytes] = (),
        root: bytes | None = None,
    ) -> None:
        """Fold bundle ``bundle``'s ``count`` entries from index ``first`` in (their ``leaves``, or the
        ``root`` of a whole bundle): they must start where the range ends and be as many as the tree of
        ``tree_size`` holds in that bundle from there."""
        size = self.range.size
        if first != size or bundle != size // TILE_WIDTH:
            raise ConsistencyError(
                f"the log's entry bundle {bundle} starts at index {first}, not {size}", bundle=bundle
            )
        expected = min(tree_size, (bundle + 1) * TILE_WIDTH) - size
        if count != expected:
            raise ConsistencyError(
                f"the log's entry bundle {bundle} holds {count} entries from index {first}; the tree of size "
                f"{tree_size} has {expected} there",
                bundle=bundle,
            )
        if root is not None:
            if count != TILE_WIDTH or size % TILE_WIDTH:
                raise ValueError("a subtree root stands for a whole, aligned bundle")
            self._append_subtree(root)
            return
        if len(leaves) != count:
            raise ValueError(f"{len(leaves)} leaf hashes for {count} entries")
        for leaf in leaves:
            self.range.append(leaf)

    def _append_subtree(self, root: bytes) -> None:
        """CompactRange.append for a perfect subtree of TILE_WIDTH leaves at an aligned size: merge it with
        its left neighbours while they complete a larger perfect subtree."""
        r = self.range
        index = r.size >> BUNDLE_LEVEL
        acc = root
        while index & 1:
            acc = node_hash(r.peaks.pop(), acc)
            index >>= 1
        r.peaks.append(acc)
        r.size += TILE_WIDTH

    def prove(self, client: LogClient, *, tree_size: int, root: bytes) -> None:
        """Prove the leaves read are the first :attr:`size` of the tree of ``tree_size`` with ``root``
        (RFC 9162 §2.1.4 consistency, its proof taken from the log's tiles); raises ConsistencyError."""
        size = self.range.size
        mine = self.range.root()
        if size == tree_size:
            if mine != root:
                raise ConsistencyError(
                    f"the entries the log serves do not hash to its checkpoint's root at size {tree_size}: the "
                    "entry bundles are not the entries the tree commits to",
                    tree_size=tree_size,
                    checkpoint_root=root.hex(),
                    entries_root=mine.hex(),
                )
            return
        if size == 0:
            return
        reader = client.reader(tree_size)
        proof = [hash_range(a, b, reader.node) for a, b in consistency_ranges(size, tree_size)]
        try:
            verify_consistency(size, tree_size, mine, root, proof)
        except ConsistencyError as e:
            raise ConsistencyError(
                f"the entries the log serves up to index {size} are not the ones its tree of size {tree_size} "
                f"commits to ({e})",
                size=size,
                tree_size=tree_size,
                entries_root=mine.hex(),
            ) from e


def checked_entries(
    client: LogClient, *, start: int, tree_size: int, root: bytes
) -> Iterator[tuple[int, bytes]]:
    """``(index, entry)`` for ``[start, tree_size)`` of the verified tree of ``tree_size`` with ``root``, every
    entry folded into the tree (:class:`PrefixCheck`). A bundle missing entries is refused before any of its
    entries is yielded; entries that are not the tree's are refused once the last one was, when the root is
    compared: a consumer acts on what it read only after the iteration ended without an error.

    Raises:
        ConsistencyError: the entries the log serves are not the ones its tree commits to.
    """
    check = PrefixCheck.from_tiles(client, size=start, tree_size=tree_size)
    for bundle in range(start // TILE_WIDTH, (tree_size + TILE_WIDTH - 1) // TILE_WIDTH):
        entries = [(i, e) for i, e in bundle_entries(client, bundle, tree_size) if i >= start]
        check.add(
            bundle=bundle,
            first=entries[0][0] if entries else max(start, bundle * TILE_WIDTH),
            count=len(entries),
            tree_size=tree_size,
            leaves=[leaf_hash(e) for _, e in entries],
        )
        yield from entries
    check.prove(client, tree_size=tree_size, root=root)
