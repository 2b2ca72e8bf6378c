"""Setting up a jurisdiction for telemetry: its ``[jurisdictions.J]`` table, its stamped store and its
access log, in that order (``overt residency store add``), and the list of what is set up.

:func:`add_store` is idempotent: run again with the same settings, it finds the config, opens the store
(checking its stamp) and the access log. Different settings for a configured jurisdiction are refused by
:func:`~overt.residency.config.add_jurisdiction` (moving data is a migration). If the store cannot be made
(PostgreSQL unreachable) the configuration stays and the next run completes it; until then the router
refuses the jurisdiction's tenants (no store), never writes them elsewhere.

Owns this sequence only; the config, the stores and the access logs are their own modules'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overt.errors import Error
from overt.residency.config import JurisdictionConfig, add_jurisdiction, jurisdiction_configs, root_of
from overt.residency.stores import open_store

if TYPE_CHECKING:
    from overt.home import Home


@dataclass(frozen=True, slots=True, kw_only=True)
class JurisdictionSetup:
    """One jurisdiction as set up: its store kind, root, where its store is, and its access log."""

    jurisdiction: str
    store: str
    root: Path
    location: str  # the SQLite file, or the PostgreSQL database by host, port and name (no credentials)
    access_log: str
    status: str  # "ready", or why not (the store cannot be opened)
    events: Mapping[str, int] | None = None  # events stored per tenant id (only tenants with any), if counted

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "jurisdiction": self.jurisdiction,
            "store": self.store,
            "root": str(self.root),
            "location": self.location,
            "access_log": self.access_log,
            "status": self.status,
        }
        if self.events is not None:
            out["events"] = dict(self.events)
        return out


def _location(home: Home, j: str, config: JurisdictionConfig) -> str:
    if config.store == "postgres":
        from overt.residency.store_postgres import describe_dsn

        return describe_dsn(config.postgres_dsn)
    return str(root_of(home, j) / "store.db")


def add_store(home: Home, j: str, config: JurisdictionConfig) -> JurisdictionSetup:
    """Configure ``j``, make and stamp its store, and make its access log.

    Raises:
        ConfigError: ``j`` is configured otherwise, or the settings are wrong.
        PolicyError: the store found there is stamped for another jurisdiction.
        StorageError: the store cannot be made now (the configuration is kept; run again).
    """
    from overt.residency.accesslog import ensure_access_log

    add_jurisdiction(home, j, config)
    open_store(home, j, create=True).close()
    log = ensure_access_log(home, j)
    return JurisdictionSetup(
        jurisdiction=j,
        store=config.store,
        root=root_of(home, j),
        location=_location(home, j, config),
        access_log=log.name,
        status="ready",
    )


def list_stores(home: Home, *, events: bool = False) -> list[JurisdictionSetup]:
    """Every configured jurisdiction, each store opened (read-only use) to check it; with ``events``, the
    events each store holds for each tenant of the directory, wherever the directory homes it (so a tenant's
    data found outside its home shows)."""
    from overt.residency.accesslog import access_log_name

    tenant_ids = _tenant_ids(home) if events else []
    out = []
    for j, config in sorted(jurisdiction_configs(home).items()):
        status, counts = "ready", None
        try:
            with open_store(home, j) as store:
                if events:
                    counts = {t: n for t in tenant_ids if (n := store.count_events(t))}
        except Error as e:
            status = f"not ready: {e}"
        name = access_log_name(j)
        if name not in home.log_names():
            status = status if status != "ready" else f"not ready: no access log {name}"
        out.append(
            JurisdictionSetup(
                jurisdiction=j,
                store=config.store,
                root=root_of(home, j),
                location=_location(home, j, config),
                access_log=name,
                status=status,
                events=counts,
            )
        )
    return out


def _tenant_ids(home: Home) -> list[str]:
    from overt.residency.tenants import open_directory

    with open_directory(home) as directory:
        return [t.id for t in directory.tenants()]
