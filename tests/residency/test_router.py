"""The router: a tenant's data goes to its home jurisdiction's store or nowhere; every refusal is logged in
the tenant's home access log, at most once per tenant, reason and minute, with a count."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from overt.errors import ConfigError
from overt.home import Home
from overt.residency.accesslog import ensure_access_log
from overt.residency.config import JurisdictionConfig, add_jurisdiction, root_of
from overt.residency.router import (
    CrossJurisdictionError,
    NotServedHere,
    RefusalLog,
    Router,
    StoreStampError,
)
from overt.residency.telemetry import parse_batch
from tests.residency.world import World, access_entries, batch, make_world, rows_in_sqlite


@pytest.fixture
def world(conveyor: Home) -> World:
    return make_world(conveyor, tenants=(("acme", "DE"), ("samba", "BR"), ("tata", "IN")))


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


def test_each_tenant_gets_its_home_store(world: World) -> None:
    router = Router(world.home)
    try:
        acme, samba = world.tenants["acme"], world.tenants["samba"]
        assert router.serving == {"CH", "BR"}
        ch, br = router.store_for(acme), router.store_for(samba, jurisdiction="BR", purpose="aggregates")
        assert (ch.jurisdiction, br.jurisdiction) == ("CH", "BR")
        assert router.store_for(acme) is ch  # opened once, shared
        raw = batch("batch-0001")
        ch.write_batch(acme.id, parse_batch(raw), raw)
    finally:
        router.close()
    assert rows_in_sqlite(root_of(world.home, "CH")) == 3 and rows_in_sqlite(root_of(world.home, "BR")) == 0
    assert access_entries(world.home, "CH") == [] and access_entries(world.home, "BR") == []


def test_a_cross_jurisdiction_read_is_refused_and_logged_in_the_tenants_home_log(world: World) -> None:
    router = Router(world.home)
    acme = world.tenants["acme"]
    try:
        with pytest.raises(CrossJurisdictionError) as refused:
            router.store_for(
                acme, jurisdiction="BR", purpose="aggregates", actor="api-token-0123456789abcdef"
            )
    finally:
        router.close()
    assert (refused.value.tenant_id, refused.value.home, refused.value.asked) == (acme.id, "CH", "BR")
    (entry,) = access_entries(world.home, "CH")
    assert (entry.kind, entry.tenant, entry.jurisdiction, entry.outcome) == (
        "routing-refusal",
        acme.id,
        "CH",
        "refused",
    )
    assert (entry.reason, entry.resource, entry.actor) == (
        "cross-jurisdiction",
        "telemetry:aggregates",
        "api-token-0123456789abcdef",
    )
    assert "asked BR, home CH; refusals: 1" in entry.detail
    assert access_entries(world.home, "BR") == []  # the refusal is the CH tenant's: never in BR's log


def test_a_tenant_whose_home_is_not_served_here_is_refused_and_nothing_is_written(world: World) -> None:
    router = Router(world.home, serving=["BR"])
    try:
        with pytest.raises(NotServedHere, match="does not serve") as refused:
            router.store_for(world.tenants["acme"])
        assert refused.value.status == 421
        # The IN tenant: no store configured for IN, so no process serves it, and it is never written elsewhere.
        with pytest.raises(NotServedHere):
            Router(world.home).store_for(world.tenants["tata"])
    finally:
        router.close()
    assert [e.reason for e in access_entries(world.home, "CH")] == ["not-served"]
    assert [e.reason for e in access_entries(world.home, "IN")] == ["not-served"]
    assert rows_in_sqlite(root_of(world.home, "CH")) == 0 and rows_in_sqlite(root_of(world.home, "BR")) == 0


def test_serving_a_jurisdiction_without_a_store_is_refused_at_start(world: World) -> None:
    with pytest.raises(ConfigError, match="cannot serve IN"):
        Router(world.home, serving=["CH", "IN"])


def test_a_configured_jurisdiction_whose_store_was_never_made_is_refused(world: World) -> None:
    add_jurisdiction(world.home, "IN", JurisdictionConfig())
    router = Router(world.home)
    try:
        with pytest.raises(NotServedHere, match="no telemetry store") as refused:
            router.store_for(world.tenants["tata"])
    finally:
        router.close()
    assert refused.value.no_store
    assert str(root_of(world.home, "IN")) not in refused.value.message
    assert [e.reason for e in access_entries(world.home, "IN")] == ["no-store"]
    assert not (root_of(world.home, "IN") / "store.db").exists()  # never made on the fly


def test_a_store_stamped_ch_configured_as_brs_root_is_refused(conveyor: Home, tmp_path: Path) -> None:
    w = make_world(
        conveyor,
        tenants=(("acme", "DE"), ("samba", "BR")),
        configs={"CH": JurisdictionConfig()},
    )
    copied = tmp_path / "br-root"
    shutil.copytree(root_of(w.home, "CH"), copied)  # CH's store, copied over as BR's
    add_jurisdiction(w.home, "BR", JurisdictionConfig(root=str(copied)))
    ensure_access_log(w.home, "BR")
    router = Router(w.home)
    try:
        with pytest.raises(StoreStampError, match="stamped") as refused:
            router.store_for(w.tenants["samba"])
    finally:
        router.close()
    assert (refused.value.home, refused.value.asked) == ("BR", "CH")
    entries = access_entries(w.home, "BR")
    assert [e.reason for e in entries] == ["stamp-mismatch"]
    # The refusal reaches the tenant (its endpoint, its access log): it names the stamp, not our paths.
    assert "stamped for jurisdiction 'CH'" in refused.value.message
    for text in (refused.value.message, entries[0].refusal, entries[0].detail):
        assert str(tmp_path) not in text and "store.db" not in text
    assert refused.value.evidence["store"] == str(copied / "store.db")  # the operator's evidence keeps it


def test_a_store_holding_data_without_a_stamp_is_refused_without_its_path(world: World) -> None:
    root = root_of(world.home, "BR")
    with sqlite3.connect(root / "store.db") as db:
        db.execute("INSERT INTO batches VALUES ('t-00000000000000a1', 'batch-0001', ?, 1, 1)", ("ab" * 32,))
        db.execute("DELETE FROM meta")
    db.close()
    router = Router(world.home)
    try:
        with pytest.raises(StoreStampError, match="holds data without a jurisdiction stamp") as refused:
            router.store_for(world.tenants["samba"])
    finally:
        router.close()
    assert refused.value.asked == "none" and str(root) not in refused.value.message


def test_a_flood_of_refusals_is_one_entry_per_tenant_reason_and_minute_with_a_count(world: World) -> None:
    clock = Clock()
    router = Router(world.home, refusals=RefusalLog(world.home, now=clock))
    acme, samba = world.tenants["acme"], world.tenants["samba"]
    try:
        for _ in range(40):
            with pytest.raises(CrossJurisdictionError):
                router.store_for(acme, jurisdiction="BR")
        with pytest.raises(CrossJurisdictionError):
            router.store_for(samba, jurisdiction="CH")  # another tenant: its own entry, in its own log
        clock.at += timedelta(seconds=50)  # 10:00:55, still the same minute
        with pytest.raises(CrossJurisdictionError):
            router.store_for(acme, jurisdiction="BR")
        clock.at += timedelta(seconds=10)  # 10:01:05: a new minute
        with pytest.raises(CrossJurisdictionError):
            router.store_for(acme, jurisdiction="BR")
        for _ in range(3):
            with pytest.raises(CrossJurisdictionError):
                router.store_for(acme, jurisdiction="BR")
    finally:
        router.close()  # logs the 3 refusals no entry counts yet
    details = [e.detail for e in access_entries(world.home, "CH")]
    assert len(details) == 3
    assert "refusals: 1 " in details[0]  # the first of 10:00, at once
    assert "refusals: 41 " in details[1]  # the first of 10:01, counting the 40 of 10:00 not logged one by one
    assert "refusals: 3, none logged one by one" in details[2] and "closed" in details[2]  # at close
    assert [e.tenant for e in access_entries(world.home, "BR")] == [samba.id]


def test_refusals_of_each_resource_are_counted_in_entries_of_their_own(world: World) -> None:
    clock = Clock()
    router = Router(world.home, serving=["BR"], refusals=RefusalLog(world.home, now=clock))
    acme = world.tenants["acme"]
    try:
        for purpose in ("aggregates", "ingest", "ingest", "aggregates", "ingest"):
            with pytest.raises(NotServedHere):
                router.store_for(acme, purpose=purpose)
        clock.at += timedelta(seconds=1)
    finally:
        router.close()
    entries = [(e.resource, e.reason, e.detail.split("; ")[1]) for e in access_entries(world.home, "CH")]
    assert entries == [
        (
            "telemetry:aggregates",
            "not-served",
            "refusals: 1 (this one and 0 not logged one by one since the previous entry)",
        ),
        (
            "telemetry:ingest",
            "not-served",
            "refusals: 1 (this one and 0 not logged one by one since the previous entry)",
        ),
        (
            "telemetry:aggregates",
            "not-served",
            "refusals: 1, none logged one by one since the previous entry",
        ),
        ("telemetry:ingest", "not-served", "refusals: 2, none logged one by one since the previous entry"),
    ]


def test_check_stores_opens_every_store_served_and_refuses_one_not_its_own(
    conveyor: Home, tmp_path: Path
) -> None:
    w = make_world(conveyor, configs={"CH": JurisdictionConfig()})
    Router(w.home).check_stores()  # CH alone, its own
    copied = tmp_path / "br-root"
    shutil.copytree(root_of(w.home, "CH"), copied)  # CH's store, configured as BR's
    add_jurisdiction(w.home, "BR", JurisdictionConfig(root=str(copied)))
    ensure_access_log(w.home, "BR")
    router = Router(w.home)
    try:
        with pytest.raises(ConfigError) as refused:
            router.check_stores()
    finally:
        router.close()
    message = str(refused.value)
    assert (
        message.startswith("cannot serve BR: the telemetry store at ")
        and "belongs to jurisdiction 'CH'" in message
    )
    assert str(copied / "store.db") in message and "\n" not in message  # the operator's: the path helps
    served = Router(w.home, serving=["CH"])
    try:
        served.check_stores()  # a process not serving BR is not held up by BR's store
    finally:
        served.close()
    add_jurisdiction(w.home, "IN", JurisdictionConfig())
    with pytest.raises(ConfigError, match=r"cannot serve IN: .*no telemetry store"):
        Router(w.home, serving=["IN"]).check_stores()
