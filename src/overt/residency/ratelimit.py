"""Rate limits of the ingestion API: per tenant, token buckets on events and on batches per second; before
authentication, failed authentications per token id and per client address.

::

    [ingest]
    events_per_second = 50000     # each tenant's sustained event rate
    event_burst = 100000          # events a tenant may send at once after a quiet spell (>= 5,000, one batch)
    batches_per_second = 100      # each tenant's sustained batch rate
    batch_burst = 200
    auth_failures_per_token = 5   # failed authentications of one token id per minute before it is refused
    auth_failures_per_client = 20 # ... and from one client address

A bucket holds up to its burst and refills at its rate; a batch takes one batch token before it is parsed
and as many event tokens as it has events once it is. A batch a bucket cannot pay for is refused with
:class:`RateLimited`, which says in ``retry_after`` (whole seconds, at least 1) when it would pass; a
refused batch takes nothing from the event bucket. The buckets live in the memory of one process: two
``overt serve`` processes give a tenant twice the rate, which is what a per-process limit can promise.

:class:`AuthFailureLimiter` bounds what a client without a valid token can make the server do: every
token that fails to authenticate (unknown, revoked, wrong secret) costs its token id and its client
address one failure, and a request whose token id or address has used up its failures for the minute
is refused with :class:`RateLimited` (HTTP 429, :meth:`RateLimited.failed_authentications`) before its
token is looked at, so it costs no
argon2. The buckets hold ``auth_failures_per_token`` (``_per_client``) and refill over a minute; a token
already verified by this process is never held back (:meth:`overt.residency.ingest.Ingest.authenticate`),
so failures sent under a tenant's public token id do not lock the tenant out. At most
:data:`MAX_TRACKED` ids and addresses are remembered; the least recently failed are forgotten first.

The section is registered when this module is imported, which :mod:`overt.residency.config` does (and so
every reader of ``config.toml``). Time is injected (``now``, monotonic seconds).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from overt.errors import ConfigError, PolicyError
from overt.home import register_section

SECTION = "ingest"
MAX_EVENTS_PER_BATCH = 5000  # overt.residency.telemetry.MAX_EVENTS, not imported: that would load pydantic
MAX_TRACKED = 65_536  # token ids and client addresses with failed authentications, each
_MINUTE = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestLimits:
    """The ``[ingest]`` table: each tenant's event and batch rates and bursts, and the failed authentications
    allowed per minute to one token id and to one client address."""

    events_per_second: float = 50_000.0
    event_burst: float = 100_000.0
    batches_per_second: float = 100.0
    batch_burst: float = 200.0
    auth_failures_per_token: float = 5.0
    auth_failures_per_client: float = 20.0

    def __post_init__(self) -> None:
        for name in (
            "events_per_second",
            "event_burst",
            "batches_per_second",
            "batch_burst",
            "auth_failures_per_token",
            "auth_failures_per_client",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"[{SECTION}] {name} must be a positive number")
        if self.event_burst < MAX_EVENTS_PER_BATCH:
            raise ConfigError(
                f"[{SECTION}] event_burst must be at least {MAX_EVENTS_PER_BATCH}, the events of one batch: a "
                "smaller bucket could never pay for a full batch"
            )
        for name in ("batch_burst", "auth_failures_per_token", "auth_failures_per_client"):
            if getattr(self, name) < 1:
                raise ConfigError(f"[{SECTION}] {name} must be at least 1")


register_section(
    SECTION,
    IngestLimits,
    "limits of the telemetry API: per tenant events_per_second, event_burst, batches_per_second, "
    "batch_burst; failed authentications per minute auth_failures_per_token, auth_failures_per_client",
)


class RateLimited(PolicyError):
    """A request over a rate limit (HTTP 429), ``retry_after`` seconds until it passes: a tenant's batches or
    events (``tenant_id``), or the failed authentications of a token id or client address
    (:meth:`failed_authentications`)."""

    status: ClassVar[int] = 429

    def __init__(
        self, *, tenant_id: str, what: str, retry_after: int, message: str = "", **evidence: str
    ) -> None:
        super().__init__(
            message or f"tenant {tenant_id} is over its rate limit of {what}; send again in {retry_after} s",
            tenant_id=tenant_id,
            limit=what,
            retry_after=retry_after,
            **evidence,
        )
        self.tenant_id = tenant_id
        self.retry_after = retry_after

    @classmethod
    def failed_authentications(cls, *, retry_after: int, token_id: str, client: str | None) -> RateLimited:
        """Too many failed authentications for ``token_id`` or from ``client``: no token is checked for
        them until ``retry_after`` seconds have passed (the tenant, if any, is unknown: ``tenant_id`` is
        empty)."""
        return cls(
            tenant_id="",
            what="failed authentications per minute",
            retry_after=retry_after,
            message=(
                "too many API tokens that are not valid were sent, for this token id or from this address: "
                f"no token is checked for them for {retry_after} s"
            ),
            token_id=token_id,
            client=client or "",
        )


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


class AuthFailureLimiter:
    """Failed authentications per token id and per client address, checked before a token is verified."""

    def __init__(self, limits: IngestLimits, *, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now
        self._kinds = (
            (limits.auth_failures_per_token, OrderedDict[str, _Bucket]()),
            (limits.auth_failures_per_client, OrderedDict[str, _Bucket]()),
        )
        self._lock = threading.Lock()

    def check(self, *, token_id: str, client: str | None) -> None:
        """Raise :class:`RateLimited` (:meth:`~RateLimited.failed_authentications`) if ``token_id`` or
        ``client`` has no failure left."""
        now = self.now()
        wait = 0.0
        with self._lock:
            for (burst, buckets), key in zip(self._kinds, (token_id, client), strict=True):
                bucket = None if key is None else buckets.get(key)
                if bucket is None:
                    continue
                rate = burst / _MINUTE
                bucket.refill(rate=rate, burst=burst, now=now)
                if bucket.level < 1:
                    wait = max(wait, (1 - bucket.level) / rate)
        if wait:
            raise RateLimited.failed_authentications(
                retry_after=max(1, math.ceil(wait)), token_id=token_id, client=client
            )

    def failed(self, *, token_id: str, client: str | None) -> None:
        """Count one failed authentication of ``token_id`` from ``client``."""
        now = self.now()
        with self._lock:
            for (burst, buckets), key in zip(self._kinds, (token_id, client), strict=True):
                if key is None:
                    continue
                bucket = buckets.get(key)
                if bucket is None:
                    bucket = buckets[key] = _Bucket(burst, now)
                bucket.refill(rate=burst / _MINUTE, burst=burst, now=now)
                bucket.level = max(0.0, bucket.level - 1)
                buckets.move_to_end(key)
                while len(buckets) > MAX_TRACKED:
                    buckets.popitem(last=False)
