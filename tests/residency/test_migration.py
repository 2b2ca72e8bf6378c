"""Migration after a registry change: freeze, copy, verify, switch, purge, unfreeze, every step logged in both
jurisdictions' access logs; refusals that freeze nothing; a mismatch that purges nothing; one run at a time."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import timedelta

import pytest

from overt.home import Home
from overt.residency.access import AccessRefused, access
from overt.residency.accesslog import ensure_access_log
from overt.residency.accessverify import verify_access_log
from overt.residency.adminkeys import AdminSigner
from overt.residency.approvals import Approval, sign_approval
from overt.residency.migration import (
    STEPS,
    Job,
    MigrationBusy,
    job_table,
    migrate,
    migrate_lock,
    plan_migrations,
)
from overt.residency.registry_store import RegistryIssuer
from overt.residency.stores import open_store
from overt.residency.telemetry import parse_batch
from overt.residency.tenants import ACTIVE, MIGRATING, Tenant, open_directory
from overt.tlog.trust import policy_from_vkey
from tests.residency.test_access import ANA, AT, T0, batch_bytes, make_tenants, overt, write_batches

BATCHES = 6
EVENTS = 4


@dataclass
class World:
    home: Home
    samba: Tenant  # BR: homed in BR, moved to CH by registry v2
    acme: Tenant  # DE: homed in CH, never moves
    digests: dict[str, str]
    admins: dict[str, AdminSigner]

    def store(self, j: str) -> object:
        return open_store(self.home, j)

    def tenant(self, tenant_id: str | None = None) -> Tenant:
        with open_directory(self.home) as directory:
            return directory.tenant(tenant_id or self.samba.id)

    def move_br_to(self, j: str) -> None:
        RegistryIssuer.of_home(self.home).change({"BR": j})


def setup_world(home: Home) -> World:
    (samba, acme), admins = make_tenants(home, ("Samba", "BR"), ("Acme", "DE"))
    assert samba.jurisdiction == "BR" and acme.jurisdiction == "CH"
    for j in ("CH", "BR"):
        with open_store(home, j, create=True):
            pass
        ensure_access_log(home, j)
    write_batches(home, samba, BATCHES, events=EVENTS)
    write_batches(home, acme, 2, prefix="acme")
    with open_store(home, "BR") as store:
        digests = store.batch_digests(samba.id)
    return World(home=home, samba=samba, acme=acme, digests=digests, admins=admins)


@pytest.fixture
def world(conveyor: Home) -> World:
    return setup_world(conveyor)


def step_entries(home: Home, j: str, tenant: Tenant, job: Job) -> list[tuple[str, str]]:
    """(step, outcome) of the job's entries in j's access log, as the customer verifies them."""
    public = home.path / "public" / "logs" / f"access-{j.lower()}"
    report = verify_access_log(
        str(public),
        policy=policy_from_vkey((public / "vkey").read_text().strip()),
        tenant=tenant.id,
        state_dir=home.path.parent / f"customer-{j}",
    )
    assert report.ok
    return [
        (e.entry.reason, e.entry.outcome)
        for e in report.entries
        if e.entry.kind == "migration-step" and e.entry.resource == f"migration/{job.id}"
    ]


def check_moved(w: World, *, source: str, destination: str) -> Job:
    """Everything on the destination once, with the same sha256; nothing left on the source; logged."""
    with open_store(w.home, destination) as dest, open_store(w.home, source) as src:
        assert dest.batch_digests(w.samba.id) == w.digests
        assert dest.count_events(w.samba.id) == BATCHES * EVENTS
        assert src.batch_digests(w.samba.id) == {} and src.count_events(w.samba.id) == 0
    tenant = w.tenant()
    assert tenant.jurisdiction == destination and tenant.status == ACTIVE
    job = job_table(w.home).jobs()[-1]
    assert job.state == "done" and (job.from_jurisdiction, job.to_jurisdiction) == (source, destination)
    for j in (source, destination):
        done = {step for step, outcome in step_entries(w.home, j, tenant, job) if outcome == "done"}
        assert done == set(STEPS)
    return job


# --- the normal run -----------------------------------------------------------------------------------------


def test_a_registry_change_moves_the_tenant_and_logs_every_step(world: World) -> None:
    world.move_br_to("CH")
    seen: list[tuple[str, str]] = []
    report = migrate(world.home, on_step=lambda job, step, detail: seen.append((step, detail)))
    assert report.exit_code == 0 and [r.outcome for r in report.results] == ["done"]
    job = check_moved(world, source="BR", destination="CH")
    assert [s for s, d in seen if d == "start"] == list(STEPS)
    assert sum(1 for s, d in seen if s == "copy" and d.endswith("copied")) == BATCHES
    assert step_entries(world.home, "CH", world.samba, job) == [(s, "done") for s in STEPS]
    tenant = world.tenant()
    assert tenant.registry_version == 2  # the switch is in the main log: move_home under v2
    with open_store(world.home, "CH") as ch:
        assert len(ch.batch_digests(world.acme.id)) == 2  # the tenant that did not move is untouched
    assert report.to_dict()["ok"] is True and report.to_dict()["results"][0]["job"] == job.id
    assert migrate(world.home).results == ()  # nothing left to do


def test_the_dry_run_plans_and_changes_nothing(world: World) -> None:
    world.move_br_to("CH")
    plan = plan_migrations(world.home, check_stores=True)
    assert [(m.tenant_id, m.from_jurisdiction, m.to_jurisdiction, m.problem) for m in plan.moves] == [
        (world.samba.id, "BR", "CH", None)
    ]
    code, output = overt("residency", "migrate", "--dry-run", "--home", str(world.home.path))
    assert code == 0 and f"{world.samba.id} (BR) moves BR -> CH under registry v2" in output
    assert world.tenant().status == ACTIVE and job_table(world.home).jobs() == []
    code, output = overt("residency", "migrate", "--home", str(world.home.path), "--json")
    assert code == 0, output
    assert json.loads(output)["results"][0]["outcome"] == "done"
    check_moved(world, source="BR", destination="CH")


def test_an_interrupted_run_is_called_so_and_its_redone_step_says_it_may_be_logged_twice(
    world: World,
) -> None:
    world.move_br_to("CH")

    def die_at_verify(job: Job, step: str, detail: str) -> None:
        if step == "verify" and detail.startswith("done"):
            raise KeyboardInterrupt  # killed after the step was logged, before the job recorded it

    with pytest.raises(KeyboardInterrupt):
        migrate(world.home, on_step=die_at_verify)
    plan = plan_migrations(world.home)
    assert plan.running is False and [j.step for j in plan.unfinished] == ["verify"]
    code, output = overt("residency", "migrate", "--dry-run", "--home", str(world.home.path))
    assert code == 0 and "was interrupted at step verify" in output and "no migration runs now" in output
    with migrate_lock(world.home):
        assert plan_migrations(world.home).running is True
    assert migrate(world.home).exit_code == 0
    job = check_moved(world, source="BR", destination="CH")
    steps = step_entries(world.home, "CH", world.samba, job)
    assert [s for s, _ in steps].count("verify") == 2  # logged by the run that died, and again
    public = world.home.path / "public" / "logs" / "access-ch"
    report = verify_access_log(
        str(public), policy=policy_from_vkey((public / "vkey").read_text().strip()), tenant=world.samba.id
    )
    details = [e.entry.detail for e in report.entries if e.entry.reason == "verify"]
    assert "redone" not in details[0] and "redone: the run before stopped during this step" in details[1]


# --- refusals and failures that freeze nothing forever ------------------------------------------------------


def test_a_missing_destination_store_is_refused_before_anything_is_frozen(world: World) -> None:
    world.move_br_to("AR")  # AR has no store
    plan = plan_migrations(world.home, check_stores=True)
    assert "no telemetry store" in (plan.moves[0].problem or "")
    report = migrate(world.home)
    assert report.exit_code == 2 and report.results[0].job_id is None
    assert "nothing frozen" in (report.results[0].error or "")
    assert world.tenant().status == ACTIVE and world.tenant().jurisdiction == "BR"
    assert job_table(world.home).jobs() == []
    with open_store(world.home, "AR", create=True):
        pass
    assert migrate(world.home).exit_code == 0
    assert world.tenant().jurisdiction == "AR"


def test_a_destination_lost_mid_job_unfreezes_the_tenant_and_the_next_run_finishes(world: World) -> None:
    world.move_br_to("CH")
    store = world.home.paths.root / "jurisdictions" / "CH" / "store.db"
    moved_away = store.with_name("store.db.away")

    def lose_destination(job: Job, step: str, detail: str) -> None:
        if step == "copy" and detail == "start":
            store.rename(moved_away)

    report = migrate(world.home, on_step=lose_destination)
    (result,) = report.results
    assert report.exit_code == 2 and result.outcome == "failed" and result.step == "copy"
    assert "the tenant is unfrozen" in (result.error or "")
    tenant = world.tenant()
    assert tenant.status == ACTIVE and tenant.jurisdiction == "BR"
    with open_store(world.home, "BR") as br:
        assert br.batch_digests(world.samba.id) == world.digests  # nothing purged
    job = job_table(world.home).jobs()[-1]
    assert ("copy", "refused") in step_entries(world.home, "BR", world.samba, job)
    moved_away.rename(store)
    assert migrate(world.home).exit_code == 0
    check_moved(world, source="BR", destination="CH")


def tamper_blob(w: World, batch_id: str) -> None:
    blob = (
        w.home.paths.root / "jurisdictions" / "CH" / "blobs" / w.digests[batch_id][:2] / w.digests[batch_id]
    )
    blob.write_bytes(blob.read_bytes().replace(b"host-1", b"host-2"))


def drop_rows(w: World, batch_id: str) -> None:
    db = sqlite3.connect(w.home.paths.root / "jurisdictions" / "CH" / "store.db")
    with db:
        db.execute("DELETE FROM events WHERE batch_id = ? AND seq > 0", (batch_id,))
    db.close()


def replace_batch(w: World, batch_id: str) -> None:
    """The destination's copies are replaced by other bytes under the same batch ids."""
    with open_store(w.home, "CH") as ch:
        ch.purge_tenant(w.samba.id)
        for n in range(BATCHES):
            raw = batch_bytes(f"batch-{n:04d}", EVENTS, day="2026-12-02")
            ch.write_batch(w.samba.id, parse_batch(raw), raw)


@pytest.mark.parametrize(
    ("tamper", "evidence"),
    [
        (tamper_blob, "cannot be read back intact"),
        (drop_rows, "events in the source"),
        (replace_batch, "differs"),
    ],
)
def test_a_destination_altered_between_copy_and_verify_is_a_mismatch_and_nothing_is_purged(
    world: World, tamper: object, evidence: str
) -> None:
    world.move_br_to("CH")

    def alter(job: Job, step: str, detail: str) -> None:
        if step == "verify" and detail == "start":
            tamper(world, "batch-0000")  # type: ignore[operator]

    report = migrate(world.home, on_step=alter)
    (result,) = report.results
    assert report.exit_code == 1 and result.outcome == "mismatch" and result.step == "verify"
    assert evidence in (result.error or "")
    tenant = world.tenant()
    assert tenant.jurisdiction == "BR" and tenant.status == ACTIVE
    with open_store(world.home, "BR") as br:
        assert br.batch_digests(world.samba.id) == world.digests
        assert br.count_events(world.samba.id) == BATCHES * EVENTS
    job = job_table(world.home).jobs()[-1]
    assert ("verify", "refused") in step_entries(world.home, "CH", world.samba, job)
    assert ("switch", "done") not in step_entries(world.home, "CH", world.samba, job)
    code, output = overt("residency", "migrate", "--home", str(world.home.path))
    assert code == 1 and "MISMATCH" in output  # run again: the same evidence, still nothing purged
    assert world.tenant().jurisdiction == "BR"


# --- concurrency --------------------------------------------------------------------------------------------


def test_a_second_migration_at_once_is_refused(world: World) -> None:
    world.move_br_to("CH")
    with migrate_lock(world.home), pytest.raises(MigrationBusy, match="one migration runs at a time"):
        migrate(world.home)
    assert world.tenant().status == ACTIVE and job_table(world.home).jobs() == []


def test_access_during_migration_is_refused_and_logged_in_the_home_log(world: World) -> None:
    world.move_br_to("CH")
    approval = sign_approval(
        Approval.new(
            tenant=world.samba.id,
            actor=ANA,
            actor_country="CH",
            reason="support-ticket",
            resource="telemetry:detections",
            not_before=T0,
            not_after=T0 + timedelta(hours=8),
        ),
        world.admins[world.samba.id],
    )
    refusals: list[AccessRefused] = []

    def try_access(job: Job, step: str, detail: str) -> None:
        if detail == "start" and step in ("copy", "purge"):
            with pytest.raises(AccessRefused) as caught:
                access(
                    world.home,
                    tenant_id=world.samba.id,
                    actor=ANA,
                    actor_country="CH",
                    reason="support-ticket",
                    resource="telemetry:detections",
                    approval=approval,
                    now=AT,
                )
            refusals.append(caught.value)

    migrate(world.home, on_step=try_access)
    assert [e.log for e in refusals] == ["access-br", "access-ch"]  # its home before and after the switch
    assert all("migrating" in e.refusal and e.log_index is not None for e in refusals)
    check_moved(world, source="BR", destination="CH")
    granted = access(
        world.home,
        tenant_id=world.samba.id,
        actor=ANA,
        actor_country="CH",
        reason="support-ticket",
        resource="telemetry:detections",
        approval=approval,
        now=AT,
    )
    assert granted.jurisdiction == "CH" and len(json.loads(granted.data)["rows"]) == BATCHES * EVENTS


def test_the_freeze_is_what_ingestion_sees(world: World) -> None:
    world.move_br_to("CH")
    statuses: list[str] = []
    migrate(world.home, on_step=lambda job, step, detail: statuses.append(world.tenant().status))
    assert statuses[0] == ACTIVE and set(statuses[1:-1]) == {MIGRATING} and world.tenant().status == ACTIVE
