"""The batcher: collects entries submitted concurrently into batches, integrates and publishes them one batch
at a time on a worker thread, and answers each submitter once a published checkpoint covers its entry.

Owns the batching state machine and its fault handling (any exception, logged once, retried with backoff).
It knows nothing of HTTP: :mod:`overt.server.log` maps its outcomes to answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import ClassVar

from overt.errors import Error, StorageError
from overt.tlog.log import LocalLog

_log = logging.getLogger("overt.server.log")


@dataclass
class _Pending:
    entry: bytes
    future: asyncio.Future[tuple[int, int, str]]


def _describe(e: Exception) -> str:
    if isinstance(e, Error):
        return str(e)
    if isinstance(e, OSError):
        return f"log storage fault: {e}"
    return f"internal error in the batching loop: {type(e).__name__}: {e}"


@dataclass
class Integrator:
    """Collects entries into batches and integrates them on a worker thread, one batch at a time.

    A batch that fails, for whatever reason, fails the requests waiting on it with a :class:`StorageError`
    naming the fault. The loop logs the fault when it starts, retries after a backoff (doubling up to
    ``MAX_BACKOFF``) while entries wait, and logs again once a round succeeds. Entries already sequenced
    stay in ``waiting`` (and are retried) until a checkpoint covering them is published.
    """

    log: LocalLog
    batch_size: int
    interval: float
    queue: list[_Pending] = field(default_factory=list)
    waiting: list[tuple[int, _Pending]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_failures: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    backoff: float = 0.0
    failed_rounds: int = 0

    MAX_BACKOFF: ClassVar[float] = 5.0

    async def submit(self, entry: bytes) -> tuple[int, int, str]:
        fut: asyncio.Future[tuple[int, int, str]] = asyncio.get_running_loop().create_future()
        self.queue.append(_Pending(entry, fut))
        if len(self.queue) >= self.batch_size:
            self.wake.set()
        return await fut

    async def run(self) -> None:
        while True:
            await self._pause()
            if not self.queue and not self.waiting:
                continue
            batch, self.queue = self.queue[: self.batch_size], self.queue[self.batch_size :]
            if self.queue:
                self.wake.set()
            try:
                done = await asyncio.to_thread(self._integrate, [p.entry for p in batch], batch)
            except Exception as e:  # the loop outlives every fault; the requests learn what it was
                self._failed(e, batch)
                continue
            self._recovered()
            for (index, pending), proof in done:
                if not pending.future.done():
                    pending.future.set_result((index, self.log.tree_size, proof))

    async def _pause(self) -> None:
        """Wait for the next round: the backoff after a fault, else the batch interval or a full batch."""
        if self.fault is not None:
            await asyncio.sleep(self.backoff)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=self.interval)
        self.wake.clear()

    def _failed(self, e: Exception, batch: list[_Pending]) -> None:
        message = _describe(e)
        if self.fault is None:  # once per fault: the requests carry the message of every failed round
            unexpected = not isinstance(e, Error | OSError)
            _log.error(
                "%s (retried with backoff while entries wait)", message, exc_info=e if unexpected else None
            )
        self.fault = message
        self.failed_rounds += 1
        self.backoff = min(self.MAX_BACKOFF, self.backoff * 2 if self.backoff else max(self.interval, 0.05))
        for p in [*batch, *(p for _, p in self.waiting)]:
            if not p.future.done():
                error = StorageError(message)
                error.__cause__ = e
                p.future.set_exception(error)

    def _recovered(self) -> None:
        if self.fault is not None:
            _log.warning("log storage works again after %d failed rounds", self.failed_rounds)
        self.fault, self.backoff, self.failed_rounds = None, 0.0, 0

    def _integrate(
        self, entries: list[bytes], batch: list[_Pending]
    ) -> list[tuple[tuple[int, _Pending], str]]:
        if entries:
            indices = self.log.add(entries)
            self.waiting.extend(zip(indices, batch, strict=True))
        result = self.log.publish()
        self.last_failures = result.failures
        if not result.published:
            return []
        done = [
            ((index, p), self.log.proof(index, result.checkpoint, entry=p.entry).to_bytes().decode())
            for index, p in self.waiting
        ]
        self.waiting = []
        return done
