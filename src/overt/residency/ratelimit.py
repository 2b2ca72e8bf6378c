"""Per-tenant rate limits of the ingestion API: token buckets on events and on batches per second.

::

    [ingest]
    events_per_second = 50000     # each tenant's sustained event rate
    event_burst = 100000          # events a tenant may send at once after a quiet spell (>= 5,000, one batch)
    batches_per_second = 100      # each tenant's sustained batch rate
    batch_burst = 200

A bucket holds up to its burst and refills at its rate; a batch takes one batch token before it is parsed
and as many event tokens as it has events once it is. A batch a bucket cannot pay for is refused with
:class:`RateLimited`, which says in ``retry_after`` (whole seconds, at least 1) when it would pass; a
refused batch takes nothing from the event bucket. The buckets live in the memory of one process: two
``overt serve`` processes give a tenant twice the rate, which is what a per-process limit can promise.

The section is registered when this module is imported, which :mod:`overt.residency.config` does (and so
every reader of ``config.toml``). Time is injected (``now``, monotonic seconds).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from overt.errors import ConfigError, PolicyError
from overt.home import register_section

SECTION = "ingest"
MAX_EVENTS_PER_BATCH = 5000  # overt.residency.telemetry.MAX_EVENTS, not imported: that would load pydantic


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestLimits:
    """The ``[ingest]`` table: each tenant's event and batch rates and bursts."""

    events_per_second: float = 50_000.0
    event_burst: float = 100_000.0
    batches_per_second: float = 100.0
    batch_burst: float = 200.0

    def __post_init__(self) -> None:
        for name in ("events_per_second", "event_burst", "batches_per_second", "batch_burst"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"[{SECTION}] {name} must be a positive number")
        if self.event_burst < MAX_EVENTS_PER_BATCH:
            raise ConfigError(
                f"[{SECTION}] event_burst must be at least {MAX_EVENTS_PER_BATCH}, the events of one batch: a "
                "smaller bucket could never pay for a full batch"
            )
        if self.batch_burst < 1:
            raise ConfigError(f"[{SECTION}] batch_burst must be at least 1")


register_section(
    SECTION,
    IngestLimits,
    "per-tenant limits of POST /v1/telemetry: events_per_second, event_burst, batches_per_second, batch_burst",
)


class RateLimited(PolicyError):
    """A tenant sent more than its rate limit allows (HTTP 429); ``retry_after`` seconds until it passes."""

    status: ClassVar[int] = 429

    def __init__(self, *, tenant_id: str, what: str, retry_after: int) -> None:
        super().__init__(
            f"tenant {tenant_id} is over its rate limit of {what}; send again in {retry_after} s",
            tenant_id=tenant_id,
            limit=what,
            retry_after=retry_after,
        )
        self.tenant_id = tenant_id
        self.retry_after = retry_after


class _Bucket:
    __slots__ = ("level", "stamp")

    def __init__(self, level: float, stamp: float) -> None:
        self.level = level
        self.stamp = stamp

    def refill(self, *, rate: float, burst: float, now: float) -> None:
        self.level = min(burst, self.level + (now - self.stamp) * rate)
        self.stamp = now


class TenantRateLimiter:
    """Token buckets per tenant (thread-safe): :meth:`take_batch` before a parse, :meth:`take_events` after."""

    def __init__(self, limits: IngestLimits, *, now: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.now = now
        self._batches: dict[str, _Bucket] = {}
        self._events: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take_batch(self, tenant_id: str) -> None:
        """Take one batch token of ``tenant_id``, or raise :class:`RateLimited`."""
        lim = self.limits
        self._take(
            self._batches, tenant_id, 1, rate=lim.batches_per_second, burst=lim.batch_burst, what="batches"
        )

    def take_events(self, tenant_id: str, events: int) -> None:
        """Take ``events`` event tokens of ``tenant_id``, or raise :class:`RateLimited` (taking none)."""
        lim = self.limits
        self._take(
            self._events, tenant_id, events, rate=lim.events_per_second, burst=lim.event_burst, what="events"
        )

    def _take(
        self, buckets: dict[str, _Bucket], tenant_id: str, cost: int, *, rate: float, burst: float, what: str
    ) -> None:
        now = self.now()
        with self._lock:
            bucket = buckets.get(tenant_id)
            if bucket is None:
                bucket = buckets[tenant_id] = _Bucket(burst, now)
            bucket.refill(rate=rate, burst=burst, now=now)
            if bucket.level >= cost:
                bucket.level -= cost
                return
            wait = (cost - bucket.level) / rate
        raise RateLimited(
            tenant_id=tenant_id, what=f"{rate:g} {what} per second", retry_after=max(1, math.ceil(wait))
        )
