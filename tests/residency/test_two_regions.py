"""Acceptance (issue 15): two real PostgreSQL servers side by side stand for two regions, CH and BR.
Telemetry from tenants in DE, JP and US (CH-homed) and BR goes through the real HTTP server; each server is
then queried directly: CH tenants' rows are only on the CH server, the BR tenant's only on the BR one. A
cross-region read is refused and the refusal is in the tenant's home access log."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from overt.home import Home
from overt.residency.config import JurisdictionConfig
from overt.server.log import LOG_LIMITS, create_app, edge_limits
from overt.server.runner import BackgroundServer
from tests.pg import pg_bindir, postgres_server
from tests.residency.world import access_entries, batch, make_world, send

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL server binaries not installed")


def new_database(server_dsn: str) -> str:
    name = "r" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_dsn, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server_dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def regions() -> Iterator[tuple[str, str]]:
    with postgres_server() as ch, postgres_server() as br:
        yield new_database(ch), new_database(br)


def tenants_on(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as db:
        rows = db.execute("SELECT tenant, count(*) FROM residency.events GROUP BY tenant").fetchall()
        batches = db.execute("SELECT count(*) FROM residency.batches").fetchone()
    assert batches is not None
    return {tenant: int(n) for tenant, n in rows}


def test_telemetry_lands_only_in_its_region_and_cross_region_reads_are_refused(
    conveyor: Home, regions: tuple[str, str]
) -> None:
    ch_dsn, br_dsn = regions
    w = make_world(
        conveyor,
        tenants=(("acme", "DE"), ("nippon", "JP"), ("yankee", "US"), ("samba", "BR")),
        configs={
            "CH": JurisdictionConfig(store="postgres", postgres_dsn=ch_dsn),
            "BR": JurisdictionConfig(store="postgres", postgres_dsn=br_dsn),
        },
    )
    ids = {name: t.id for name, t in w.tenants.items()}
    assert {name: t.jurisdiction for name, t in w.tenants.items()} == {
        "acme": "CH",
        "nippon": "CH",
        "yankee": "CH",
        "samba": "BR",
    }
    with BackgroundServer(create_app(w.home), limits=edge_limits(w.home, LOG_LIMITS)) as srv:
        for n, name in enumerate(("acme", "nippon", "yankee", "samba")):
            for b in range(2):
                r = send(srv.url, w.token(name), batch(f"batch-{b:04d}", 1000 + n, salt=name))
                assert r.status_code == 200, r.text
                assert r.json()["jurisdiction"] == w.tenants[name].jurisdiction
        # The same batch sent twice at once, by two connections: one write.
        twice = batch("batch-twice", 500, salt="twice")
        answers: list[httpx.Response] = []
        threads = [
            threading.Thread(target=lambda: answers.append(send(srv.url, w.token("samba"), twice)))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(a.json()["duplicate"] for a in answers) == [False, True]
        # Cross-region reads: the BR tenant asks for CH's data; a CH tenant for BR's.
        for name, other in (("samba", "CH"), ("acme", "BR")):
            r = httpx.get(
                f"{srv.url}/v1/aggregates",
                params={"jurisdiction": other},
                headers={"Authorization": f"Bearer {w.token(name)}"},
            )
            assert r.status_code == 403 and "never read or written in" in r.json()["error"]
        mine = httpx.get(f"{srv.url}/v1/aggregates", headers={"Authorization": f"Bearer {w.token('samba')}"})
        assert mine.json()["jurisdiction"] == "BR"
        assert sum(a["events"] for a in mine.json()["aggregates"]) == 2 * 1003 + 500
    with BackgroundServer(
        create_app(w.home, serving=["BR"]), limits=edge_limits(w.home, LOG_LIMITS, ["BR"])
    ) as br:
        assert send(br.url, w.token("acme"), batch("batch-late", 5)).status_code == 421  # a BR-only process

    # Each server holds its own region's tenants only.
    assert tenants_on(ch_dsn) == {ids["acme"]: 2000, ids["nippon"]: 2002, ids["yankee"]: 2004}
    assert tenants_on(br_dsn) == {ids["samba"]: 2 * 1003 + 500}
    ch_log, br_log = access_entries(w.home, "CH"), access_entries(w.home, "BR")
    assert [(e.reason, e.tenant, e.resource) for e in br_log] == [
        ("cross-jurisdiction", ids["samba"], "telemetry:aggregates")
    ]
    assert [(e.reason, e.tenant) for e in ch_log] == [
        ("cross-jurisdiction", ids["acme"]),
        ("not-served", ids["acme"]),
    ]
