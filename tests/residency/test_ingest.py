"""The ingestion service: token, status, rate limits, parse, route, write; whole batches or nothing, even
when the process is killed mid-write; aggregates only of the token's own tenant."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from overt.errors import ConfigError, FormatError
from overt.home import Home
from overt.residency.config import root_of
from overt.residency.ingest import Ingest, TenantMigrating
from overt.residency.ratelimit import IngestLimits, RateLimited
from overt.residency.router import CrossJurisdictionError
from overt.residency.tenants import MIGRATING, open_directory
from overt.residency.tokens import AuthenticationError
from tests.residency.world import World, access_entries, batch, make_world, rows_in_sqlite


@pytest.fixture
def world(conveyor: Home) -> World:
    return make_world(conveyor)


@pytest.fixture
def ingest(world: World) -> Iterator[Ingest]:
    service = Ingest(world.home)
    yield service
    service.close()


def rows(w: World, j: str) -> int:
    return rows_in_sqlite(root_of(w.home, j))


def test_each_batch_lands_in_its_tenants_home_and_says_where(world: World, ingest: Ingest) -> None:
    de = ingest.ingest(world.token("acme"), batch("batch-0001", 4))
    br = ingest.ingest(world.token("samba"), batch("batch-0001", 2))
    assert (de.jurisdiction, de.events, de.duplicate, de.tenant) == ("CH", 4, False, world.tenants["acme"].id)
    assert (br.jurisdiction, br.events, br.duplicate) == ("BR", 2, False)
    assert ingest.ingest(world.token("acme"), batch("batch-0001", 4)).duplicate
    assert (rows(world, "CH"), rows(world, "BR")) == (4, 2)


def test_a_token_decides_the_tenant_whose_aggregates_are_read(world: World, ingest: Ingest) -> None:
    ingest.ingest(world.token("acme"), batch("batch-0001", 6, rules=1))
    ingest.ingest(world.token("samba"), batch("batch-0002", 9, rules=3))
    mine = ingest.aggregates(world.token("samba"))
    assert (mine.tenant, mine.jurisdiction) == (world.tenants["samba"].id, "BR")
    assert sorted(r.rule_id for r in mine.rows) == ["rule-0", "rule-1", "rule-2"]  # only samba's own rules
    assert sum(r.events for r in mine.rows) == 9
    # Naming the other tenant's jurisdiction reaches no data of anyone: it is a refused cross-region read.
    with pytest.raises(CrossJurisdictionError):
        ingest.aggregates(world.token("samba"), jurisdiction="CH")
    assert [e.tenant for e in access_entries(world.home, "BR")] == [world.tenants["samba"].id]
    with pytest.raises(FormatError, match="after until"):
        ingest.aggregates(
            world.token("acme"), since=mine.rows[0].day, until=mine.rows[0].day.replace(year=2025)
        )


def test_a_token_revoked_mid_stream_stops_the_next_batch(world: World, ingest: Ingest) -> None:
    token = world.token("acme")
    ingest.ingest(token, batch("batch-0001"))
    other = open_directory(Home(world.home.path))  # another process's view
    try:
        other.revoke_token(token.split("_")[1])
    finally:
        other.close()
    with pytest.raises(AuthenticationError, match="revoked"):
        ingest.ingest(token, batch("batch-0002"))
    assert rows(world, "CH") == 3


def test_a_migrating_tenant_is_asked_to_retry_and_nothing_is_written(world: World, ingest: Ingest) -> None:
    directory = open_directory(world.home)
    try:
        directory.set_status(world.tenants["acme"].id, MIGRATING)
    finally:
        directory.close()
    with pytest.raises(TenantMigrating) as busy:
        ingest.ingest(world.token("acme"), batch("batch-0001"))
    assert busy.value.status == 503 and busy.value.retry_after > 0
    with pytest.raises(TenantMigrating):
        ingest.aggregates(world.token("acme"))
    assert rows(world, "CH") == 0


class Tick:
    def __init__(self) -> None:
        self.at = 1000.0

    def __call__(self) -> float:
        return self.at


def test_rate_limits_apply_per_tenant_on_batches_and_events(world: World) -> None:
    tick = Tick()
    limits = IngestLimits(events_per_second=1000, event_burst=5000, batches_per_second=1, batch_burst=2)
    service = Ingest(world.home, limits=limits, clock=tick)
    try:
        acme = world.token("acme")
        service.ingest(acme, batch("batch-0001", 4000))
        with pytest.raises(RateLimited, match="events") as over:  # 1,000 left in the bucket, 1,500 asked
            service.ingest(acme, batch("batch-0002", 1500))
        assert over.value.retry_after == 1
        service.ingest(world.token("samba"), batch("batch-0003", 1500))  # another tenant has its own buckets
        tick.at += 1.0  # +1,000 events, +1 batch
        service.ingest(acme, batch("batch-0002", 1500))
        with pytest.raises(
            RateLimited, match="batches"
        ) as over:  # 2 batches taken, 1 refilled, 3 + 1 refused
            service.ingest(acme, batch("batch-0004", 1))
        assert over.value.retry_after >= 1
    finally:
        service.close()
    assert (rows(world, "CH"), rows(world, "BR")) == (5500, 1500)


def test_limits_come_from_the_homes_config(world: World) -> None:
    path = world.home.paths.config
    world.home.config.replace("ingest", IngestLimits(batches_per_second=2, batch_burst=1)).write(path)
    service = Ingest(Home(world.home.path))
    try:
        assert service.limits.batch_burst == 1
        service.ingest(world.token("acme"), batch("batch-0001"))
        with pytest.raises(RateLimited):
            service.ingest(world.token("acme"), batch("batch-0002"))
    finally:
        service.close()
    path.write_text(path.read_text().replace("event_burst = 100000.0", "event_burst = 10"))
    with pytest.raises(ConfigError, match="event_burst must be at least 5000"):
        Home(world.home.path)


@pytest.mark.parametrize("bad", ["a bad 4,999th event", "5,001 events"])
def test_a_rejected_batch_leaves_nothing_written(world: World, ingest: Ingest, bad: str) -> None:
    import json

    doc = json.loads(batch("batch-0001", 5001 if bad == "5,001 events" else 5000))
    if bad == "a bad 4,999th event":
        doc["events"][4998]["file_sha256"] = "NOT-HEX"
    with pytest.raises(FormatError, match=r"events\[4998\].file_sha256|1 to 5000 events"):
        ingest.ingest(world.token("acme"), json.dumps(doc).encode())
    assert rows(world, "CH") == 0 and not any(
        p.is_file() for p in (root_of(world.home, "CH") / "blobs").rglob("*")
    )


def test_the_same_batch_sent_twice_at_once_is_written_once(world: World, ingest: Ingest) -> None:
    raw = batch("batch-0001", 3000)
    results = []

    def send() -> None:
        results.append(ingest.ingest(world.token("acme"), raw))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.duplicate for r in results) == [False, True]
    assert rows(world, "CH") == 3000


_WRITER = """
import sys
from pathlib import Path
from overt.home import Home
from overt.residency.ingest import Ingest
from tests.residency.world import batch
service = Ingest(Home(Path(sys.argv[1])))
print("ready", flush=True)
for i in range(10_000):
    service.ingest(sys.argv[2], batch(f"batch-{i:05d}", 2000, salt=str(i)))
"""


def test_a_process_killed_mid_write_leaves_whole_batches_only(world: World) -> None:
    """SIGKILL at five points of a stream of 2,000-event batches: every stored batch has all its rows, and no
    row belongs to a batch that is not stored."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    for delay in (0.05, 0.13, 0.21, 0.34, 0.55):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(world.home.path), world.token("acme")],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    db = sqlite3.connect(root_of(world.home, "CH") / "store.db")
    try:
        per_batch = db.execute(
            "SELECT b.batch_id, b.events, count(e.seq) FROM batches b LEFT JOIN events e"
            " ON e.tenant = b.tenant AND e.batch_id = b.batch_id GROUP BY b.batch_id, b.events"
        ).fetchall()
        orphans = db.execute(
            "SELECT count(*) FROM events e WHERE NOT EXISTS"
            " (SELECT 1 FROM batches b WHERE b.tenant = e.tenant AND b.batch_id = e.batch_id)"
        ).fetchone()[0]
    finally:
        db.close()
    assert per_batch and all(events == found == 2000 for _, events, found in per_batch)
    assert orphans == 0
