"""The ingestion service: a tenant's telemetry batch from its API token to its home jurisdiction's store,
and the tenant's aggregates back.

A request is first let in (:meth:`Ingest.admit`), before its body is read, in this order:

1. authenticates the token (:meth:`Ingest.authenticate`): a token id or client address with too many
   failed authentications this minute is refused before any argon2 (HTTP 429,
   :class:`~overt.residency.ratelimit.AuthFailureLimiter`); then the directory looks the token up on every
   request (:meth:`~overt.residency.tenants.Directory.authenticate`), so a revocation by any process
   stops the next batch. An unknown, revoked or wrong token is answered alike (HTTP 401, "the API token is
   not valid") after the same argon2 work (:meth:`~overt.residency.tokens.TokenHasher.verify_dummy` for an
   id without a live hash);
2. routes the tenant (:mod:`overt.residency.router`): a home this process does not serve is refused (HTTP
   421) and the refusal logged there, before the body is read, let alone parsed;
3. checks the tenant's status: a ``migrating`` tenant gets :class:`TenantMigrating` (HTTP 503 with
   ``Retry-After``);
4. takes one batch token of the tenant's rate limit (:mod:`overt.residency.ratelimit`, HTTP 429).

Then the body is read (by the HTTP edge) and :meth:`Ingest.store_batch`, under the tenant's freeze guard
(:func:`~overt.residency.migration.tenant_guard`, held until the write):

5. reads the tenant again (its status and home: a migration may have frozen or moved it meanwhile);
6. parses the batch (:func:`~overt.residency.telemetry.parse_batch`, HTTP 400 naming the first bad field)
   and checks its event times (:func:`~overt.residency.telemetry.check_event_times`);
7. takes one event token per event;
8. routes the tenant again, as read under the guard;
9. writes the batch, whole or not at all (:meth:`~overt.residency.stores.JurisdictionStore.write_batch`).

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
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from overt.errors import FormatError, PolicyError
from overt.residency.migration import tenant_guard
from overt.residency.ratelimit import AuthFailureLimiter, IngestLimits, TenantRateLimiter
from overt.residency.router import Router
from overt.residency.tenants import MIGRATING, Directory, Tenant, open_directory
from overt.residency.tokens import AuthenticationError, not_valid, parse_token

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from overt.home import Home
    from overt.residency.stores import RuleDay

MIGRATING_RETRY_AFTER = 60  # seconds: a migration copies, verifies, switches and purges


class TenantMigrating(PolicyError):
    """The tenant's data is being migrated: nothing is written or read until it is done (HTTP 503).
    ``reading``: the request was a read (its message then speaks of no batch)."""

    status: ClassVar[int] = 503

    def __init__(
        self, *, tenant_id: str, reading: bool = False, retry_after: int = MIGRATING_RETRY_AFTER
    ) -> None:
        what = (
            f"its aggregates cannot be read until it is done, ask again in {retry_after} s"
            if reading
            else f"nothing was stored, send the batch again in {retry_after} s"
        )
        super().__init__(
            f"tenant {tenant_id} is being migrated to another jurisdiction; {what}",
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Admitted:
    """A request let in before its body is read: its tenant (authenticated, homed here, active), and how a
    refusal names the caller (its token id, never the secret). Its store is routed again where it is used
    (cheap: stores are opened once; a PostgreSQL store is one connection per thread)."""

    tenant: Tenant
    actor: str


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


def check_days(since: date | None, until: date | None) -> None:
    """Refuse a range of days that ends before it starts (FormatError)."""
    if since is not None and until is not None and since > until:
        raise FormatError(f"since ({since}) is after until ({until})")


def _token_actor(token: str) -> str:
    """How the access log names the caller of a refused request: by its token id (never the secret)."""
    return f"api-token-{parse_token(token)}"


class Ingest:
    """The ingestion API's logic over one home: directory, rate limits and router. Thread-safe.

    ``clock`` (monotonic seconds) drives the rate limits, ``now`` (UTC) the check of event times."""

    def __init__(
        self,
        home: Home,
        *,
        serving: Iterable[str] | None = None,
        router: Router | None = None,
        directory: Directory | None = None,
        limits: IngestLimits | None = None,
        clock: Callable[[], float] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.home = home
        self.router = router or Router(home, serving=serving)
        self.directory = directory or open_directory(home)
        self.limits = limits or home.config.section("ingest", IngestLimits)
        if clock is None:
            self.rates = TenantRateLimiter(self.limits)
            self.failures = AuthFailureLimiter(self.limits)
        else:
            self.rates = TenantRateLimiter(self.limits, now=clock)
            self.failures = AuthFailureLimiter(self.limits, now=clock)
        self.now = now

    def needs_verification(self, token: str) -> bool:
        """Whether authenticating ``token`` may cost an argon2 verification (it was not verified before)."""
        return not self.directory.hasher.verified_before(token)

    def check_failures(self, token: str, *, client: str | None = None) -> None:
        """Refuse ``token`` unchecked if its id or ``client`` has no failed authentication left this minute.

        Raises:
            AuthenticationError: the token is malformed.
            RateLimited: too many failures for the token id or from ``client``.
        """
        token_id = parse_token(token)
        if self.needs_verification(token):
            self.failures.check(token_id=token_id, client=client)

    def authenticate(self, token: str, *, client: str | None = None) -> Tenant:
        """The tenant of ``token``, sent from ``client`` (its address, if known).

        Raises:
            AuthenticationError: the token authenticates no tenant; unknown, revoked and wrong tokens all
                say "the API token is not valid", after the same argon2 work.
            RateLimited: too many failures for the token id or from ``client`` this minute.
        """
        self.check_failures(token, client=client)
        try:
            return self.directory.authenticate(token)
        except AuthenticationError as e:
            if e.reason == "malformed":
                raise
            if e.reason != "wrong-secret":  # no argon2 was run: run one, as for a wrong secret
                self.directory.hasher.verify_dummy(token)
            self.failures.failed(token_id=parse_token(token), client=client)
            raise not_valid(e) from None

    @staticmethod
    def _check_active(tenant: Tenant, *, reading: bool = False) -> Tenant:
        if tenant.status == MIGRATING:
            raise TenantMigrating(tenant_id=tenant.id, reading=reading)
        return tenant

    def admit(
        self,
        token: str,
        *,
        client: str | None = None,
        purpose: str = "ingest",
        jurisdiction: str | None = None,
    ) -> Admitted:
        """Let a request of ``token`` in, before its body is read: steps 1 to 4 of the module docstring.

        Raises:
            AuthenticationError: the token authenticates no tenant.
            RateLimited: too many failed authentications for the token id or from ``client``.
            RoutingError: the tenant's home is not served here, or ``jurisdiction`` is not its home.
            TenantMigrating: the tenant is being migrated.
            RateLimited: the tenant is over its rate limit of batches.
        """
        tenant = self.authenticate(token, client=client)
        actor = _token_actor(token)
        self.router.store_for(tenant, jurisdiction=jurisdiction, purpose=purpose, actor=actor)
        self._check_active(tenant, reading=purpose != "ingest")
        self.rates.take_batch(tenant.id)
        return Admitted(tenant=tenant, actor=actor)

    def store_batch(self, admitted: Admitted, raw: bytes) -> Landed:
        """Store the batch ``raw`` of an admitted request in its tenant's home: steps 5 to 9.

        Raises:
            TenantMigrating: the tenant is being migrated.
            FormatError: the batch is malformed, too large, or has an event time out of range.
            RateLimited: the tenant is over its rate limit of events.
            RoutingError: the tenant's home is no longer served here.
            BatchConflict: another body was stored under this batch_id.
            StorageError: nothing was stored; sending the batch again is safe.
        """
        from overt.residency.telemetry import check_event_times, parse_batch

        # The tenant's freeze guard, held shared from the status check to the write: a migration freezes the
        # tenant under the exclusive guard, so no batch that saw it active lands in the source after the freeze.
        # Its status and home are read again under the guard (the token needs no second check).
        with tenant_guard(self.home, admitted.tenant.id, exclusive=False):
            tenant = self._check_active(self.directory.tenant(admitted.tenant.id))
            batch = parse_batch(raw)
            check_event_times(batch, received=self.now())
            self.rates.take_events(tenant.id, len(batch.events))
            store = self.router.store_for(tenant, purpose="ingest", actor=admitted.actor)
            stored = store.write_batch(tenant.id, batch, raw)
        return Landed(
            tenant=tenant.id,
            jurisdiction=stored.jurisdiction,
            batch_id=stored.batch_id,
            events=stored.events,
            duplicate=stored.duplicate,
            sha256=stored.sha256,
        )

    def ingest(self, token: str, raw: bytes, *, client: str | None = None) -> Landed:
        """Store the batch ``raw`` for the tenant of ``token`` in its home jurisdiction: :meth:`admit`, then
        :meth:`store_batch` (their errors)."""
        return self.store_batch(self.admit(token, client=client), raw)

    def aggregates(
        self,
        token: str,
        *,
        since: date | None = None,
        until: date | None = None,
        jurisdiction: str | None = None,
        client: str | None = None,
    ) -> Aggregates:
        """The detections per rule per day of the tenant of ``token``, computed by its home store:
        :meth:`admit`, then :meth:`aggregates_of`.

        ``jurisdiction``, if the caller names one, must be the tenant's home: naming another is a
        cross-jurisdiction read, refused and logged (:class:`~overt.residency.router.CrossJurisdictionError`).
        """
        check_days(since, until)
        admitted = self.admit(token, client=client, purpose="aggregates", jurisdiction=jurisdiction)
        return self.aggregates_of(admitted, since=since, until=until)

    def aggregates_of(
        self, admitted: Admitted, *, since: date | None = None, until: date | None = None
    ) -> Aggregates:
        """The detections per rule per day of an admitted request's tenant, days ``since`` to ``until``."""
        check_days(since, until)
        tenant = admitted.tenant
        store = self.router.store_for(tenant, purpose="aggregates", actor=admitted.actor)
        rows = store.aggregates(tenant.id, since, until)
        return Aggregates(
            tenant=tenant.id, jurisdiction=store.jurisdiction, since=since, until=until, rows=tuple(rows)
        )

    def close(self) -> None:
        self.router.close()
        self.directory.close()
