"""The ingestion service: token, route, status, rate limits, then parse and write; whole batches or nothing,
even when the process is killed mid-write; aggregates only of the token's own tenant; tokens that are not
valid answered alike, after the same argon2 work, and limited before any."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from overt.errors import ConfigError, FormatError
from overt.home import Home
from overt.residency.config import root_of
from overt.residency.ingest import Ingest, TenantMigrating
from overt.residency.ratelimit import IngestLimits, RateLimited
from overt.residency.router import CrossJurisdictionError, NotServedHere
from overt.residency.tenants import MIGRATING, open_directory
from overt.residency.tokens import NOT_VALID, AuthenticationError, TokenHasher
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
    with pytest.raises(AuthenticationError) as refused:
        ingest.ingest(token, batch("batch-0002"))
    assert refused.value.reason == "revoked" and str(refused.value) == NOT_VALID  # the server knows why
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
    with pytest.raises(TenantMigrating) as reading:
        ingest.aggregates(world.token("acme"))
    assert "aggregates" in str(reading.value) and "batch" not in str(reading.value)
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


class CountingHasher(PasswordHasher):
    """argon2id, cheap, counting its verifications."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verifications += 1
        return super().verify(hash, password)


def counted(world: World, **kwargs: Any) -> tuple[Ingest, CountingHasher]:
    hasher = CountingHasher()
    directory = open_directory(world.home)
    directory.hasher = TokenHasher(hasher)
    return Ingest(world.home, directory=directory, **kwargs), hasher


def test_unknown_revoked_and_wrong_tokens_get_one_answer_after_one_argon2_each(world: World) -> None:
    service, hasher = counted(world)
    acme_id = world.token("acme").split("_")[1]
    directory = open_directory(world.home)
    try:
        revoked = directory.create_token(world.tenants["samba"].id)
        directory.revoke_token(revoked.info.token_id)
    finally:
        directory.close()
    tokens = {
        "unknown": "ovt_0123456789abcdef_" + "A" * 43,
        "wrong-secret": f"ovt_{acme_id}_" + "B" * 43,
        "revoked": revoked.token,  # its right secret: revocation is told to no one
        "revoked, wrong secret": f"ovt_{revoked.info.token_id}_" + "C" * 43,
    }
    try:
        for what, token in tokens.items():
            before = hasher.verifications
            with pytest.raises(AuthenticationError) as refused:
                service.ingest(token, batch("batch-0001"), client=f"client-{what}")
            assert str(refused.value) == NOT_VALID and refused.value.evidence.keys() <= {"reason", "token_id"}
            assert hasher.verifications == before + 1, what  # the same work for each
    finally:
        service.close()
    assert rows(world, "CH") == 0 and rows(world, "BR") == 0


def test_failed_authentications_are_limited_per_token_id_and_client_before_argon2(world: World) -> None:
    tick = Tick()
    service, hasher = counted(world, clock=tick)
    acme = world.token("acme")
    wrong = f"ovt_{acme.split('_')[1]}_" + "B" * 43
    try:
        service.ingest(acme, batch("batch-0001"))  # verified once: remembered
        for i in range(5):
            with pytest.raises(AuthenticationError):
                service.ingest(wrong, batch("batch-0002"), client=f"198.51.100.{i}")
        spent = hasher.verifications
        with pytest.raises(RateLimited, match="API tokens that are not valid") as limited:
            service.ingest(wrong, batch("batch-0002"), client="198.51.100.99")  # another address, same id
        assert limited.value.status == 429 and limited.value.retry_after == 12  # 5 a minute: one per 12 s
        assert hasher.verifications == spent  # refused before any argon2
        # The tenant's own token, verified before, is never held back by failures under its public id.
        assert service.ingest(acme, batch("batch-0003")).jurisdiction == "CH"
        tick.at += 12
        with pytest.raises(AuthenticationError):
            service.ingest(wrong, batch("batch-0002"), client="198.51.100.99")  # checked again, and wrong
        # From one address: 20 failures a minute, whatever the token ids.
        for i in range(20):
            with pytest.raises(AuthenticationError):
                service.ingest(f"ovt_{i:016x}_" + "A" * 43, batch("batch-0002"), client="203.0.113.7")
        with pytest.raises(RateLimited, match="API tokens that are not valid"):
            service.ingest(f"ovt_{99:016x}_" + "A" * 43, batch("batch-0002"), client="203.0.113.7")
        with pytest.raises(AuthenticationError):
            service.ingest(f"ovt_{99:016x}_" + "A" * 43, batch("batch-0002"), client="203.0.113.8")
    finally:
        service.close()
    assert rows(world, "CH") == 6


def test_a_tenant_not_served_here_is_refused_before_its_body_is_parsed(world: World) -> None:
    service = Ingest(world.home, serving=["BR"])
    try:
        with pytest.raises(NotServedHere):
            service.ingest(world.token("acme"), b"{")
    finally:
        service.close()
    assert [(e.reason, e.resource) for e in access_entries(world.home, "CH")] == [
        ("not-served", "telemetry:ingest")
    ]


def test_event_times_are_from_2000_to_a_day_after_receipt(world: World) -> None:
    import json

    received = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    service = Ingest(world.home, now=lambda: received)

    def at(time: str, batch_id: str) -> bytes:
        doc = json.loads(batch(batch_id, 2))
        doc["events"][1]["time"] = time
        return json.dumps(doc).encode()

    try:
        for time_, says in [
            ("0001-01-01T00:00:00Z", "events[1].time 0001-01-01T00:00:00.000000Z is before 2000-01-01"),
            ("1999-12-31T23:59:59Z", "is before 2000-01-01"),
            ("9999-12-31T23:59:59Z", "more than a day after the batch was received"),
            ("2026-12-02T12:00:01Z", "more than a day after"),
        ]:
            with pytest.raises(FormatError, match=re.escape(says)):
                service.ingest(world.token("acme"), at(time_, "batch-0001"))
        service.ingest(world.token("acme"), at("2026-12-02T12:00:00Z", "batch-0002"))
        service.ingest(world.token("acme"), at("2000-01-01T00:00:00Z", "batch-0003"))
    finally:
        service.close()
    assert rows(world, "CH") == 4


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
