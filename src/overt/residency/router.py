"""The router: every read or write of a tenant's telemetry goes to the store of its home jurisdiction, or
nowhere.

:meth:`Router.store_for` answers the store of the tenant's home jurisdiction (as the tenant directory
records it) and refuses, at the application layer, whatever would cross a jurisdiction:

- a request naming another jurisdiction than the tenant's home (:class:`CrossJurisdictionError`);
- a tenant whose home this process does not serve, or whose home has no store here
  (:class:`NotServedHere`, HTTP 421: another process or region serves it);
- a store that is stamped for another jurisdiction than the one it is configured as, or not stamped at all
  (:class:`StoreStampError`, HTTP 503: the server's misconfiguration, which the tenant cannot fix; its
  message names no path, the server log has the store's own error).

:meth:`Router.check_stores` opens every store served, so that ``overt serve`` refuses to start with a
store that is missing, unreachable or not its jurisdiction's own, rather than refuse each request.

There is no fallback: a refused request is written nowhere and read from nowhere. Each refusal is recorded
as an :class:`~overt.residency.accesslog.AccessEntry` of kind ``routing-refusal`` in the access log of the
tenant's HOME jurisdiction, so the customer sees it when it verifies its entries.

A flood of refusals does not flood the log (:class:`RefusalLog`): at most one entry per tenant, reason,
resource (``telemetry:ingest``, ``telemetry:aggregates``) and minute (UTC), so an entry never counts
refusals of another reason or resource. The first refusal of a minute is logged at once; later ones in the
same minute are only counted, and the next entry for that tenant, reason and resource (in a later minute,
or when the router closes) carries the count in its ``detail``: ``refusals: N`` is that entry's own
refusal plus the N-1 that were not logged one by one since the previous entry (at close: the N counted
since the previous entry, in words of its own, so that the log never takes it for a copy of that entry). Counts not yet logged live
in the process's memory: a process killed (SIGKILL) before its next entry or its close loses them, though
never the first refusal of each minute. A refusal whose entry cannot be written (the log is unwritable,
its witnesses do not answer) is still refused; it is counted into the next entry and a warning is logged.

Owns routing and refusals. Opening stores and their stamps is :mod:`overt.residency.stores`; who the
tenant is (its token) is the ingest edge's (:mod:`overt.residency.ingest`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from overt.errors import ConfigError, Error, FormatError, PolicyError
from overt.keys.registry import check_jurisdiction
from overt.residency.config import jurisdiction_configs
from overt.residency.stores import JurisdictionStore, open_store

if TYPE_CHECKING:
    from overt.home import Home
    from overt.keys.signing import LogReceipt
    from overt.residency.accesslog import AccessEntry
    from overt.residency.tenants import Tenant

_log = logging.getLogger(__name__)

ROUTER_ACTOR = "overt-router"
CROSS_JURISDICTION = "cross-jurisdiction"
NOT_SERVED = "not-served"
NO_STORE = "no-store"
STAMP_MISMATCH = "stamp-mismatch"
_PURPOSE = re.compile(r"[a-z][a-z0-9-]{0,31}")


class RoutingError(PolicyError):
    """A read or write of a tenant's data that the router refused: it would cross a jurisdiction.

    ``tenant_id`` is the tenant, ``home`` its home jurisdiction, ``asked`` the jurisdiction the request
    would have reached, ``reason`` the refusal's code in the access log.
    """

    reason: ClassVar[str] = CROSS_JURISDICTION

    def __init__(self, message: str, *, tenant_id: str, home: str, asked: str, **evidence: Any) -> None:
        super().__init__(message, tenant_id=tenant_id, home=home, asked=asked, **evidence)
        self.tenant_id = tenant_id
        self.home = home
        self.asked = asked


class CrossJurisdictionError(RoutingError):
    """The request names another jurisdiction than the tenant's home (HTTP 403)."""

    reason: ClassVar[str] = CROSS_JURISDICTION


class NotServedHere(RoutingError):
    """This process does not serve the tenant's home jurisdiction, or has no store for it (HTTP 421)."""

    status: ClassVar[int] = 421
    reason: ClassVar[str] = NOT_SERVED

    def __init__(
        self, message: str, *, tenant_id: str, home: str, asked: str, no_store: bool = False
    ) -> None:
        super().__init__(message, tenant_id=tenant_id, home=home, asked=asked, no_store=no_store)
        self.no_store = no_store

    @property
    def code(self) -> str:
        return NO_STORE if self.no_store else NOT_SERVED


class StoreStampError(RoutingError):
    """The store configured for the tenant's home is stamped for another jurisdiction, or not at all (HTTP
    503: nothing was read or written; the operator must fix the store, the tenant can only try again later)."""

    status: ClassVar[int] = 503
    reason: ClassVar[str] = STAMP_MISMATCH
    retry_after: int = 60


def refusal_code(error: RoutingError) -> str:
    return error.code if isinstance(error, NotServedHere) else error.reason


@dataclass
class _Pending:
    minute: str = ""  # the minute of the last logged entry, YYYY-MM-DDTHH:MM
    unlogged: int = 0  # refusals since that entry that no entry counts yet
    last: RoutingError | None = None
    resource: str = ""
    actor: str = ROUTER_ACTOR


Recorder = Callable[["Home", str, "AccessEntry"], "LogReceipt"]


class RefusalLog:
    """Routing refusals into the tenant's home access log, at most one entry per tenant, reason, resource
    and minute."""

    def __init__(
        self,
        home: Home,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        record: Recorder | None = None,
    ) -> None:
        from overt.residency.accesslog import record as record_entry

        self.home = home
        self.now = now
        self._record: Recorder = record or record_entry
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        self._lock = threading.Lock()

    def refused(self, error: RoutingError, *, resource: str, actor: str = ROUTER_ACTOR) -> None:
        """Count ``error``; log it now if it is the first of its tenant, reason and resource this minute."""
        at = self.now().astimezone(UTC).replace(microsecond=0)
        minute = at.isoformat()[:16]
        key = (error.tenant_id, refusal_code(error), resource)
        with self._lock:
            pending = self._pending.setdefault(key, _Pending())
            pending.unlogged += 1
            pending.last, pending.resource, pending.actor = error, resource, actor
            if pending.minute == minute:
                return
            pending.minute = minute
            count, pending.unlogged = pending.unlogged, 0
        self._write(error, count=count, resource=resource, actor=actor, at=at, key=key)

    def flush(self) -> None:
        """Log the refusals no entry counts yet (one entry per tenant, reason and resource): at shutdown."""
        with self._lock:
            due = [
                (key, p.unlogged, p) for key, p in self._pending.items() if p.unlogged and p.last is not None
            ]
            for _, _, p in due:
                p.unlogged, p.minute = 0, ""
        at = self.now().astimezone(UTC).replace(microsecond=0)
        for key, count, p in due:
            assert p.last is not None
            self._write(p.last, count=count, resource=p.resource, actor=p.actor, at=at, key=key, closing=True)

    def _write(
        self,
        error: RoutingError,
        *,
        count: int,
        resource: str,
        actor: str,
        at: datetime,
        key: tuple[str, str, str],
        closing: bool = False,
    ) -> None:
        from overt.residency.accesslog import REFUSED, ROUTING_REFUSAL, AccessEntry

        # The entry written at close says so: the log keeps one copy of identical entries, and with the same
        # words and second as the entry before it, the refusals it counts would vanish into that one.
        counted = (
            f"{count}, none logged one by one since the previous entry; logged as the router closed"
            if closing
            else f"{count} (this one and {count - 1} not logged one by one since the previous entry)"
        )
        detail = f"asked {error.asked}, home {error.home}; refusals: {counted}"
        try:
            entry = AccessEntry(
                kind=ROUTING_REFUSAL,
                time=at,
                jurisdiction=error.home,
                tenant=error.tenant_id,
                actor=actor,
                actor_country="",
                reason=refusal_code(error),
                resource=resource,
                outcome=REFUSED,
                refusal=error.message[:1024],
                detail=detail,
            )
            self._record(self.home, error.home, entry)
        except Error as e:
            _log.warning("routing refusal of tenant %s not logged: %s", error.tenant_id, e)
            with self._lock:
                pending = self._pending.setdefault(key, _Pending())
                pending.unlogged += count
                pending.minute = ""  # the next refusal tries to log again, with this count


def _cannot_serve(j: str, e: Error) -> ConfigError:
    return ConfigError(f"cannot serve {j}: {' '.join(str(e).split())}")


class Router:
    """Routes each tenant's reads and writes to its home jurisdiction's store, if this process serves it.

    ``serving`` is the set of jurisdictions this process may process (default: every jurisdiction
    configured in the home). Stores are opened on first use (never created here: ``overt residency store
    add`` does that) and shared: one SQLite store per jurisdiction, one PostgreSQL store per jurisdiction
    and thread (see :class:`~overt.residency.stores.JurisdictionStore`). Thread-safe.
    """

    def __init__(
        self, home: Home, *, serving: Iterable[str] | None = None, refusals: RefusalLog | None = None
    ) -> None:
        self.home = home
        self.configs = jurisdiction_configs(home)
        if serving is None:
            chosen = frozenset(self.configs)
        else:
            chosen = frozenset(check_jurisdiction(j) for j in serving)
            missing = sorted(chosen - set(self.configs))
            if missing:
                raise ConfigError(
                    f"cannot serve {', '.join(missing)}: no store is configured for it in this home; add one "
                    "with 'overt residency store add'"
                )
        self.serving = chosen
        self.refusals = refusals or RefusalLog(home)
        self._shared: dict[str, JurisdictionStore] = {}
        self._local = threading.local()
        self._opened: list[JurisdictionStore] = []
        self._lock = threading.Lock()

    def store_for(
        self,
        tenant: Tenant,
        *,
        jurisdiction: str | None = None,
        purpose: str = "ingest",
        actor: str = ROUTER_ACTOR,
    ) -> JurisdictionStore:
        """The store of ``tenant``'s home jurisdiction, for ``purpose`` (``ingest``, ``aggregates`` ...).

        Raises:
            CrossJurisdictionError: ``jurisdiction`` is given and is not the tenant's home.
            NotServedHere: this process does not serve the tenant's home, or has no store for it.
            StoreStampError: the store configured for the home is stamped for another jurisdiction.
            StorageError: the store cannot be reached now (nothing was refused; retrying is safe).
        """
        if not _PURPOSE.fullmatch(purpose):
            raise ValueError(f"not a routing purpose: {purpose!r}")
        home = tenant.jurisdiction
        try:
            return self._route(tenant, home, jurisdiction)
        except RoutingError as e:
            self.refusals.refused(e, resource=f"telemetry:{purpose}", actor=actor)
            raise

    def _route(self, tenant: Tenant, home: str, asked: str | None) -> JurisdictionStore:
        ids = {"tenant_id": tenant.id, "home": home}  # the evidence of every refusal
        if asked is not None:
            try:
                asked = check_jurisdiction(asked)
            except FormatError:
                asked = asked[:8]
            if asked != home:
                raise CrossJurisdictionError(
                    f"tenant {tenant.id} is homed in {home}: its data is never read or written in {asked}",
                    asked=asked,
                    **ids,
                )
        if home not in self.serving:
            served = ", ".join(sorted(self.serving)) or "no jurisdiction"
            raise NotServedHere(
                f"tenant {tenant.id} is homed in {home}, which this server does not serve (it serves "
                f"{served}): send its telemetry to a server of {home}",
                tenant_id=tenant.id,
                home=home,
                asked=home,
            )
        store = self._store(home, ids)
        if store.jurisdiction != home:  # open_store opens by the home's name; never trust it blindly
            raise StoreStampError(
                f"the store opened for {home} is {store.jurisdiction}'s: tenant {tenant.id}'s data is not "
                "routed there",
                asked=store.jurisdiction,
                **ids,
            )
        return store

    def _store(self, j: str, ids: dict[str, str]) -> JurisdictionStore:
        postgres = self.configs[j].store == "postgres"
        cache: dict[str, JurisdictionStore] = (
            self._local.__dict__.setdefault("stores", {}) if postgres else self._shared
        )
        store = cache.get(j)
        if store is not None:
            return store
        with self._lock:
            store = cache.get(j)
            if store is None:
                store = self._open(j, ids)
                cache[j] = store
                self._opened.append(store)
        return store

    def _open(self, j: str, ids: dict[str, str]) -> JurisdictionStore:
        """Open ``j``'s store, or refuse. The refusal's message goes to the tenant's endpoint and its access
        log, so it names no path or server of ours; the store's own error, which does, goes to the server
        log and stays in the refusal's cause and evidence for the operator."""
        try:
            return open_store(self.home, j)
        except ConfigError as e:
            _log.warning("tenant %s refused: jurisdiction %s has no store here: %s", ids["tenant_id"], j, e)
            raise NotServedHere(
                f"jurisdiction {j} has no telemetry store here; nothing is written elsewhere",
                tenant_id=ids["tenant_id"],
                home=j,
                asked=j,
                no_store=True,
            ) from e
        except PolicyError as e:
            _log.warning(
                "tenant %s refused: the store configured for %s is not its own: %s", ids["tenant_id"], j, e
            )
            stamped = e.evidence.get("stamped")
            found = (
                f"stamped for jurisdiction {stamped!r}"
                if stamped is not None
                else "holds data without a jurisdiction stamp"
            )
            raise StoreStampError(
                f"tenant {ids['tenant_id']}'s data is not routed to the store configured for {j}: that store "
                f"is {found}, and a store is never used as another jurisdiction's; nothing was read or written "
                "there, try again later",
                asked="none" if stamped is None else str(stamped),
                store=str(e.evidence.get("store", "")),
                **ids,
            ) from e

    def check_stores(self) -> None:
        """Open the store of every jurisdiction served, each checked to be its own (at startup).

        Raises:
            ConfigError: a store is missing, unreachable, or not its jurisdiction's own; the message (one
                line, for the operator) names the jurisdiction and the store's own error.
        """
        for j in sorted(self.serving):
            if self.configs[j].store == "postgres":  # one store per thread: check it, the threads open theirs
                try:
                    open_store(self.home, j).close()
                except Error as e:
                    raise _cannot_serve(j, e) from e
                continue
            with self._lock:
                if j in self._shared:
                    continue
                try:
                    store = open_store(self.home, j)
                except Error as e:
                    raise _cannot_serve(j, e) from e
                self._shared[j] = store
                self._opened.append(store)
            if store.jurisdiction != j:
                raise ConfigError(f"cannot serve {j}: its store opened as {store.jurisdiction}'s")

    def close(self) -> None:
        """Log pending refusal counts and close every store this router opened."""
        self.refusals.flush()
        with self._lock:
            opened, self._opened = self._opened, []
            self._shared.clear()
        for store in opened:
            store.close()
