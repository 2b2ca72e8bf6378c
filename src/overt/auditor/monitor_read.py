"""Reading a range of the log fast and checking it against the tree: bundles in order, on every core.

:func:`read_range` yields, bundle by bundle and in log order, the leaf hashes and
:class:`~overt.auditor.monitor_entries.Facts` of the entries ``[start, end)``. Past :data:`POOL_MIN` entries it
reads through worker processes (each with its own HTTP client; ``spawn``, so no lock or thread of the
monitor is copied into them), a bounded number of bundles ahead; below that, in this process.

:class:`PrefixCheck` folds the leaf hashes into the right edge of the tree (a
:class:`~overt.tlog.merkle.CompactRange`, kept in the monitor's state) and proves, before anything read is
committed, that the tree so far is a prefix of the verified checkpoint (a consistency proof from the log's
tiles). Entries that do not hash to what the tree commits to are a :class:`~overt.errors.ConsistencyError`,
never facts.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from overt.auditor.monitor_entries import Facts, Needs, read_bundle
from overt.errors import ConsistencyError
from overt.tlog.client import LogClient, fetcher_for
from overt.tlog.merkle import CompactRange, consistency_ranges, hash_range, verify_consistency
from overt.tlog.policy import Policy
from overt.tlog.tiles import TILE_WIDTH

POOL_MIN = 20_000  # below this many entries, worker processes cost more than they save
AHEAD = 4  # bundles in flight per worker


@dataclass(frozen=True, slots=True)
class Bundle:
    number: int
    leaves: list[bytes]
    facts: list[Facts]


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


# --- worker processes ---------------------------------------------------------------------------------

_WORKER: tuple[LogClient, Needs] | None = None


def _init_worker(source: str, policy: bytes, needs: dict[str, object]) -> None:
    global _WORKER
    _WORKER = (LogClient(fetcher_for(source), Policy.from_bytes(policy)), Needs.from_wire(needs))


def _work(bundle: int, tree_size: int, start: int) -> tuple[list[bytes], list[Facts]]:
    assert _WORKER is not None, "worker not initialised"
    client, needs = _WORKER
    return read_bundle(client, bundle, tree_size, needs, start=start)


def read_range(
    client: LogClient, *, source: str, start: int, end: int, needs: Needs, workers: int
) -> Iterator[Bundle]:
    """Each bundle of ``[start, end)`` in order (the first one from ``start``), read by ``workers``
    processes when the range is long enough."""
    first, last = start // TILE_WIDTH, (end + TILE_WIDTH - 1) // TILE_WIDTH
    if workers <= 1 or end - start < POOL_MIN:
        for b in range(first, last):
            leaves, facts = read_bundle(client, b, end, needs, start=start)
            yield Bundle(b, leaves, facts)
        return
    context = multiprocessing.get_context("spawn")
    args = (source, client.policy.to_bytes(), needs.to_wire())
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=args) as pool:
        pending: deque[tuple[int, Future[tuple[list[bytes], list[Facts]]]]] = deque()
        b = first
        try:
            while b < last or pending:
                while b < last and len(pending) < workers * AHEAD:
                    pending.append((b, pool.submit(_work, b, end, start)))
                    b += 1
                number, future = pending.popleft()
                leaves, facts = future.result()
                yield Bundle(number, leaves, facts)
        finally:
            for _, future in pending:
                future.cancel()


# --- the tree ------------------------------------------------------------------------------------------


class PrefixCheck:
    """The leaves read so far, as the right edge of the tree, and proofs that they are the log's."""

    def __init__(self, size: int, peaks: Sequence[bytes]) -> None:
        self.range = CompactRange(size, peaks)

    @property
    def size(self) -> int:
        return self.range.size

    @property
    def peaks(self) -> tuple[bytes, ...]:
        return tuple(self.range.peaks)

    def add(self, bundle: Bundle, expected_first: int) -> None:
        """Fold ``bundle``'s leaves in; it must start where the range ends and be as long as the log says."""
        if bundle.facts and bundle.facts[0].log_index != expected_first:
            raise ConsistencyError(
                f"the log's entry bundle {bundle.number} starts at index {bundle.facts[0].log_index}, not "
                f"{expected_first}",
                bundle=bundle.number,
            )
        for leaf in bundle.leaves:
            self.range.append(leaf)

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
