"""The ingestion service: a tenant's telemetry batch from its API token to its home jurisdiction's store,
and the tenant's aggregates back.

:meth:`Ingest.ingest` takes the token and the raw body, and in this order:

1. authenticates the token (:meth:`~overt.residency.tenants.Directory.authenticate`: looked up on every
   request, so a revocation by any process stops the next batch);
2. checks the tenant's status, read again under the tenant's freeze guard
   (:func:`~overt.residency.migration.tenant_guard`, held until the write): a ``migrating`` tenant gets
   :class:`TenantMigrating` (HTTP 503 with ``Retry-After``), and nothing is written while its data moves;
3. takes one batch token of the tenant's rate limit (:mod:`overt.residency.ratelimit`, HTTP 429);
4. parses the batch (:func:`~overt.residency.telemetry.parse_batch`, HTTP 400 naming the first bad field);
5. takes one event token per event;
6. asks the router for the store of the tenant's home (:mod:`overt.residency.router`; refusals are logged
   there);
7. writes the batch, whole or not at all (:meth:`~overt.residency.stores.JurisdictionStore.write_batch`).

It answers where the batch landed (:class:`Landed`). A failure at any step leaves nothing written: the
store's transaction is the only write. :meth:`Ingest.aggregates` answers the tenant's detections per rule
per day, computed by its home store: the only data that leaves through the API. The token decides the
tenant, so no request can name another tenant's data.

Batches of one SQLite jurisdiction are parsed concurrently and written one at a time (the store's write
lock); a write is a few calls into SQLite (:func:`~overt.residency.store_sqlite.insert_events`) that give
up the GIL while the rows go in and while the commit is made durable, so the next batch's parse runs
meanwhile.

Owns the order of the checks. HTTP (status codes, headers, body limits) is :mod:`overt.server.telemetry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from overt.errors import FormatError, PolicyError
from overt.residency.migration import tenant_guard
from overt.residency.ratelimit import IngestLimits, TenantRateLimiter
from overt.residency.router import Router
from overt.residency.tenants import MIGRATING, Directory, Tenant, open_directory
from overt.residency.tokens import parse_token

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from overt.home import Home
    from overt.residency.stores import RuleDay

MIGRATING_RETRY_AFTER = 60  # seconds: a migration copies, verifies, switches and purges


class TenantMigrating(PolicyError):
    """The tenant's data is being migrated: nothing is written or read until it is done (HTTP 503)."""

    status: ClassVar[int] = 503

    def __init__(self, *, tenant_id: str, retry_after: int = MIGRATING_RETRY_AFTER) -> None:
        super().__init__(
            f"tenant {tenant_id} is being migrated to another jurisdiction; nothing was stored, send the batch "
            f"again in {retry_after} s",
            tenant_id=tenant_id,
            retry_after=retry_after,
        )
        self.tenant_id = tenant_id
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True, kw_only=True)
class Landed:
    """Where a batch landed: its tenant, the jurisdiction whose store holds it, and whether it was a resend."""

    tenant: str
    jurisdiction: str
    batch_id: str
    events: int
    duplicate: bool
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "jurisdiction": self.jurisdiction,
            "batch_id": self.batch_id,
            "events": self.events,
            "duplicate": self.duplicate,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Aggregates:
    """A tenant's detections per rule per day, days ``since`` to ``until``, computed in ``jurisdiction``."""

    tenant: str
    jurisdiction: str
    since: date | None
    until: date | None
    rows: tuple[RuleDay, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "jurisdiction": self.jurisdiction,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "aggregates": [r.to_dict() for r in self.rows],
        }


def parse_day(text: str | None, what: str) -> date | None:
    """A ``YYYY-MM-DD`` query parameter, or None when it is absent."""
    if text is None or text == "":
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise FormatError(f"{what} must be a date YYYY-MM-DD, not {text[:20]!r}") from None


def _token_actor(token: str) -> str:
    """How the access log names the caller of a refused request: by its token id (never the secret)."""
    return f"api-token-{parse_token(token)}"


class Ingest:
    """The ingestion API's logic over one home: directory, rate limits and router. Thread-safe."""

    def __init__(
        self,
        home: Home,
        *,
        serving: Iterable[str] | None = None,
        router: Router | None = None,
        directory: Directory | None = None,
        limits: IngestLimits | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.home = home
        self.router = router or Router(home, serving=serving)
        self.directory = directory or open_directory(home)
        self.limits = limits or home.config.section("ingest", IngestLimits)
        self.rates = (
            TenantRateLimiter(self.limits) if clock is None else TenantRateLimiter(self.limits, now=clock)
        )

    def authenticate(self, token: str) -> Tenant:
        """The tenant of ``token`` (AuthenticationError if it authenticates none)."""
        return self.directory.authenticate(token)

    @staticmethod
    def _check_active(tenant: Tenant) -> Tenant:
        if tenant.status == MIGRATING:
            raise TenantMigrating(tenant_id=tenant.id)
        return tenant

    def ingest(self, token: str, raw: bytes) -> Landed:
        """Store the batch ``raw`` for the tenant of ``token`` in its home jurisdiction (steps above).

        Raises:
            AuthenticationError: the token authenticates no tenant.
            TenantMigrating: the tenant is being migrated.
            RateLimited: the tenant is over its rate limit.
            FormatError: the batch is malformed or too large.
            RoutingError: the tenant's home is not served here, or its store is not its own.
            BatchConflict: another body was stored under this batch_id.
            StorageError: nothing was stored; sending the batch again is safe.
        """
        from overt.residency.telemetry import parse_batch

        tenant = self.authenticate(token)
        # The tenant's freeze guard, held shared from the status check to the write: a migration freezes the
        # tenant under the exclusive guard, so no batch that saw it active lands in the source after the freeze.
        # Its status is read again under the guard (the token needs no second check).
        with tenant_guard(self.home, tenant.id, exclusive=False):
            tenant = self._check_active(self.directory.tenant(tenant.id))
            self.rates.take_batch(tenant.id)
            batch = parse_batch(raw)
            self.rates.take_events(tenant.id, len(batch.events))
            store = self.router.store_for(tenant, purpose="ingest", actor=_token_actor(token))
            stored = store.write_batch(tenant.id, batch, raw)
        return Landed(
            tenant=tenant.id,
            jurisdiction=stored.jurisdiction,
            batch_id=stored.batch_id,
            events=stored.events,
            duplicate=stored.duplicate,
            sha256=stored.sha256,
        )

    def aggregates(
        self,
        token: str,
        *,
        since: date | None = None,
        until: date | None = None,
        jurisdiction: str | None = None,
    ) -> Aggregates:
        """The detections per rule per day of the tenant of ``token``, computed by its home store.

        ``jurisdiction``, if the caller names one, must be the tenant's home: naming another is a
        cross-jurisdiction read, refused and logged (:class:`~overt.residency.router.CrossJurisdictionError`).
        """
        if since is not None and until is not None and since > until:
            raise FormatError(f"since ({since}) is after until ({until})")
        tenant = self._check_active(self.authenticate(token))
        self.rates.take_batch(tenant.id)
        store = self.router.store_for(
            tenant, jurisdiction=jurisdiction, purpose="aggregates", actor=_token_actor(token)
        )
        rows = store.aggregates(tenant.id, since, until)
        return Aggregates(
            tenant=tenant.id, jurisdiction=store.jurisdiction, since=since, until=until, rows=tuple(rows)
        )

    def close(self) -> None:
        self.router.close()
        self.directory.close()
