"""The access-transparency logs: one per jurisdiction, bound to it, appended only through ``record``, and
verified by the customer: proofs, consistency with what it saw before, and approvals under its own key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.attest.dsse import Envelope
from overt.errors import ConfigError, ConsistencyError, FormatError, InclusionError, PolicyError, UsageError
from overt.home import Home
from overt.residency.accesslog import (
    MIGRATION_STEP,
    AccessEntry,
    access_log_name,
    access_log_origin,
    ensure_access_log,
    origin_jurisdiction,
    record,
)
from overt.residency.accessverify import AccessLogReport, verify_access_log
from overt.residency.adminkeys import AdminSigner
from overt.residency.approvals import Approval, sign_approval
from overt.residency.registry import SELF
from overt.residency.registry_store import RegistryIssuer
from overt.residency.tenants import Tenant, open_directory
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.policy import Policy
from overt.tlog.tiles import decode_bundle, encode_bundle, entries_path
from overt.tlog.trust import policy_from_vkey

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
AT = T0 + timedelta(hours=1)
ANA = "ana@vendor.example"


@dataclass
class World:
    home: Home
    acme: Tenant  # DE: homed in CH
    globex: Tenant  # FR: homed in CH
    samba: Tenant  # BR: homed in BR
    admins: dict[str, AdminSigner]

    @property
    def public(self) -> Path:
        return self.home.path / "public" / "logs" / "access-ch"

    def policy(self) -> Policy:
        return policy_from_vkey((self.public / "vkey").read_text().strip())

    def approval(self, tenant: Tenant, *, signer: AdminSigner | None = None, **changes: object) -> Envelope:
        fields: dict[str, object] = {
            "tenant": tenant.id,
            "actor": ANA,
            "actor_country": "CH",
            "reason": "support-ticket",
            "resource": "telemetry:detections",
            "not_before": T0,
            "not_after": T0 + timedelta(hours=8),
        }
        fields.update(changes)
        return Envelope.from_bytes(sign_approval(Approval.new(**fields), signer or self.admins[tenant.id]))  # type: ignore[arg-type]

    def verify(self, tenant: Tenant, *, source: Path | None = None, **kw: object) -> AccessLogReport:
        return verify_access_log(str(source or self.public), policy=self.policy(), tenant=tenant.id, **kw)  # type: ignore[arg-type]


def entry(about: Tenant, **changes: object) -> AccessEntry:
    fields: dict[str, object] = {
        "time": AT,
        "jurisdiction": about.jurisdiction,
        "tenant": about.id,
        "actor": ANA,
        "actor_country": "CH",
        "reason": "support-ticket",
        "resource": "telemetry:detections",
        "outcome": "granted",
    }
    fields.update(changes)
    return AccessEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def world(conveyor: Home) -> World:
    RegistryIssuer.of_home(conveyor).init(default=SELF, countries={})
    directory = open_directory(conveyor)
    admins = {}
    made = []
    for name, country in (("Acme", "DE"), ("Globex", "FR"), ("Samba", "BR")):
        admin = AdminSigner.of(Ed25519PrivateKey.generate())
        tenant = directory.create_tenant(name, country, admin.public.pem.encode()).tenant
        admins[tenant.id] = admin
        made.append(tenant)
    directory.close()
    assert [t.jurisdiction for t in made] == ["CH", "CH", "BR"]
    return World(home=conveyor, acme=made[0], globex=made[1], samba=made[2], admins=admins)


def published_size(h: Home, jurisdiction: str) -> int:
    checkpoint = ensure_access_log(h, jurisdiction).paths.checkpoint.read_bytes()
    return SignedCheckpoint.from_bytes(checkpoint).checkpoint.tree_size


def granted(w: World, tenant: Tenant, **approval: object) -> AccessEntry:
    return entry(tenant, approval=w.approval(tenant, **approval))


# --- names, the wire type -----------------------------------------------------------------------------------


def test_names_and_origins() -> None:
    assert access_log_name("CH") == "access-ch" and access_log_name("BR") == "access-br"
    assert access_log_origin("conveyor.example/log", "CH") == "conveyor.example/access/CH"
    assert origin_jurisdiction("conveyor.example/access/CH") == "CH"
    assert origin_jurisdiction("conveyor.example/log") is None
    with pytest.raises(FormatError):
        access_log_name("ch")


def test_an_entry_round_trips_and_cannot_be_made_invalid(world: World) -> None:
    e = granted(world, world.acme)
    data = e.to_bytes()
    assert AccessEntry.from_bytes(data) == e and AccessEntry.from_bytes(data).to_bytes() == data
    obj = json.loads(data)
    assert obj["_type"] == "https://overt.example/residency/access/v1" and obj["kind"] == "staff-access"
    assert obj["approval"]["payloadType"] == "application/vnd.overt.access-approval+json"
    refused = entry(world.acme, outcome="refused", refusal="the approval expired")
    assert (
        AccessEntry.from_bytes(refused.to_bytes()) == refused
        and json.loads(refused.to_bytes())["approval"] is None
    )
    step = entry(
        world.acme, kind=MIGRATION_STEP, reason="copy", resource="tenant-data", outcome="done", actor="overt"
    )
    assert AccessEntry.from_bytes(step.to_bytes()) == step
    with pytest.raises(FormatError, match="unknown fields 'x'"):
        AccessEntry.from_bytes(json.dumps({**obj, "x": 1}).encode())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outcome": "refused"}, "says why"),
        ({"refusal": "no"}, "says why"),
        ({"outcome": "done"}, "outcome"),
        ({"kind": "peek"}, "kind"),
        ({"reason": "curiosity"}, "reason"),
        ({"resource": "everything"}, "resource"),
        ({"actor_country": ""}, "officially assigned"),
        ({"time": AT.replace(microsecond=5)}, "to the second"),
        ({"jurisdiction": "ch"}, "jurisdiction"),
        ({"tenant": "acme"}, "tenant id"),
    ],
)
def test_an_invalid_entry_cannot_be_made(world: World, change: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        entry(world.acme, **change)


# --- the vendor's side ---------------------------------------------------------------------------------------


def test_each_jurisdiction_gets_its_own_log_and_key_bound_to_it(world: World) -> None:
    h = world.home
    ch = ensure_access_log(h, "CH")
    br = ensure_access_log(h, "BR")
    assert (ch.name, ch.config.origin) == ("access-ch", "conveyor.example/access/CH")
    assert (br.name, br.config.origin) == ("access-br", "conveyor.example/access/BR")
    keys = {h.registry.get(log.config.key).jurisdiction for log in (ch, br)}
    assert keys == {"CH", "BR"}  # the BR log's key is bound to BR, though the conveyor is in CH
    assert len({ch.config.key, br.config.key, h.log.config.key}) == 3
    assert (world.public / "checkpoint").exists() and (world.public / "vkey").exists()
    # Made once: later calls, and other processes' homes, find the same log.
    assert ensure_access_log(h, "CH").config.key == ch.config.key
    again = Home(h.path)
    assert ensure_access_log(again, "CH").config.key == ch.config.key
    assert again.log_names() == ["main", "access-br", "access-ch"]


def test_record_publishes_and_overt_log_verify_proves_the_entry(world: World, tmp_path: Path) -> None:
    e = granted(world, world.acme)
    receipt = record(world.home, "CH", e)
    assert receipt.published and receipt.tree_size == receipt.index + 1
    entry_file = tmp_path / "entry.json"
    entry_file.write_bytes(e.to_bytes())
    vkey = (world.public / "vkey").read_text().strip()
    r = subprocess.run(
        [
            *(sys.executable, "-m", "overt", "log", "verify", "--log", str(world.public), "--vkey", vkey),
            *("--entry", str(entry_file), "--state", str(tmp_path / "state")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert f"ok  inclusion of {entry_file} at index {receipt.index}" in r.stdout
    assert "origin: conveyor.example/access/CH" in r.stdout


def test_record_keeps_each_entry_in_its_tenants_jurisdiction(world: World) -> None:
    h = world.home
    record(h, "CH", granted(world, world.acme))
    size = published_size(h, "CH")
    with pytest.raises(PolicyError, match="homed in BR"):
        record(h, "CH", entry(world.samba, jurisdiction="CH", approval=world.approval(world.samba)))
    with pytest.raises(PolicyError, match="goes only into the access log of BR"):
        record(h, "CH", granted(world, world.samba))
    with pytest.raises(ValueError, match="with the approval"):
        record(h, "CH", entry(world.acme))
    with pytest.raises(ConfigError, match="no tenant"):
        record(h, "CH", entry(world.acme, tenant="t-0000000000000000", outcome="refused", refusal="unknown"))
    assert published_size(h, "CH") == size  # nothing refused was appended
    record(h, "BR", granted(world, world.samba))  # the BR tenant's entry goes to BR
    assert published_size(h, "BR") == 1


# --- the customer's side -----------------------------------------------------------------------------------


def test_the_customer_sees_its_entries_proven_and_approved(world: World, tmp_path: Path) -> None:
    h = world.home
    record(h, "CH", granted(world, world.acme))
    record(h, "CH", entry(world.globex, approval=world.approval(world.globex)))
    refused = entry(world.acme, outcome="refused", refusal="the approval expired", approval=None)
    record(h, "CH", refused)
    admin = world.admins[world.acme.id].public
    report = world.verify(world.acme, admin_key=admin, state_dir=tmp_path / "state")
    assert report.ok, report.to_dict()
    assert [(e.index, e.entry.outcome) for e in report.entries] == [(0, "granted"), (2, "refused")]
    assert (
        report.entries[0].approval.startswith("verified (a-") and report.entries[1].approval == "none needed"
    )
    assert report.jurisdiction == "CH" and report.tree_size == 3
    assert any("inclusion of each of the tenant's 2 entries" in c for c in report.checks)
    assert any(f"signed by admin key {admin.keyid[:16]}" in c for c in report.checks)
    assert (
        "consistency with an earlier checkpoint (none was remembered; this one is now)" in report.not_checked
    )
    # The next run proves consistency with the checkpoint it remembered.
    again = world.verify(world.acme, admin_key=admin, state_dir=tmp_path / "state")
    assert again.previous_size == 3 and "consistency with trusted size 3" in again.checks
    # Without the admin key, approvals are not checked, and the report says so.
    unchecked = world.verify(world.acme)
    assert unchecked.entries[0].approval == "present, not checked"
    assert any("approvals' signatures" in n for n in unchecked.not_checked)


def test_tenant_b_is_not_shown_tenant_as_entries(world: World) -> None:
    record(world.home, "CH", granted(world, world.acme))
    record(world.home, "CH", granted(world, world.acme, resource="telemetry:aggregates"))
    for_globex = world.verify(world.globex, admin_key=world.admins[world.globex.id].public)
    assert for_globex.ok and for_globex.entries == () and for_globex.tree_size == 2
    assert world.acme.id not in json.dumps(for_globex.to_dict())


def test_an_approval_signed_by_a_key_the_vendor_substituted_is_a_violation(world: World) -> None:
    """The vendor swaps in its own key for the tenant's and approves itself: the customer's own key catches it."""
    vendor = AdminSigner.of(Ed25519PrivateKey.generate())
    record(world.home, "CH", entry(world.acme, approval=world.approval(world.acme, signer=vendor)))
    report = world.verify(world.acme, admin_key=world.admins[world.acme.id].public)
    assert not report.ok and len(report.violations) == 1
    assert "not signed by the tenant's admin key" in (report.violations[0].violation or "")
    assert not any("carries an approval" in c for c in report.checks)  # never claimed as passed


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        ({"not_after": T0 + timedelta(minutes=30)}, "expired at 2026-12-01T10:30:00Z"),
        ({"not_before": AT + timedelta(minutes=1)}, "valid only from"),
        ({"actor": "bob@vendor.example"}, "actor 'bob@vendor.example'"),
        ({"actor_country": "US"}, "actor_country 'US'"),
        ({"resource": "telemetry:aggregates"}, "resource 'telemetry:aggregates'"),
        ({"not_after": T0 + timedelta(days=30)}, "longer than the 7 days"),
    ],
)
def test_a_granted_entry_whose_approval_does_not_cover_it_is_a_violation(
    world: World, approval: dict[str, object], message: str
) -> None:
    record(world.home, "CH", entry(world.acme, approval=world.approval(world.acme, **approval)))
    report = world.verify(world.acme, admin_key=world.admins[world.acme.id].public)
    assert not report.ok and message in (report.violations[0].violation or "")


def test_a_forged_granted_entry_without_approval_is_a_violation(world: World) -> None:
    """The vendor appends by hand, around ``record``: a grant without an approval shows, with or without a key."""
    log = ensure_access_log(world.home, "CH")
    log.append(entry(world.acme).to_bytes())
    for key in (None, world.admins[world.acme.id].public):
        report = world.verify(world.acme, admin_key=key)
        assert [v.violation for v in report.violations] == ["access granted without an approval"]


def test_an_entry_about_another_jurisdiction_in_this_log_is_a_violation(world: World) -> None:
    log = ensure_access_log(world.home, "CH")
    log.append(entry(world.acme, jurisdiction="BR", approval=world.approval(world.acme)).to_bytes())
    report = world.verify(world.acme)
    assert not report.ok and report.violations[0].failed == "jurisdiction"
    assert not any("this log's jurisdiction" in c for c in report.checks)


def test_a_malformed_entry_is_reported_not_a_crash(world: World) -> None:
    log = ensure_access_log(world.home, "CH")
    record(world.home, "CH", granted(world, world.acme))
    log.append(b"\xff not json")
    log.append(json.dumps({"_type": "something/else"}).encode())
    report = world.verify(world.acme, admin_key=world.admins[world.acme.id].public)
    assert not report.ok and len(report.entries) == 1 and not report.violations
    assert [u.index for u in report.unreadable] == [1, 2]
    assert "access log entry" in report.unreadable[1].problem


def test_a_rolled_back_log_is_refused_with_the_state(world: World, tmp_path: Path) -> None:
    record(world.home, "CH", granted(world, world.acme))
    snapshot = tmp_path / "snapshot"
    shutil.copytree(world.public, snapshot)  # the log as it was at size 1
    record(world.home, "CH", granted(world, world.acme, resource="telemetry:aggregates"))
    state = tmp_path / "state"
    assert world.verify(world.acme, state_dir=state).tree_size == 2
    # The vendor serves the old log, hiding the second access: the remembered checkpoint refuses it.
    with pytest.raises(ConsistencyError, match="rolled back from size 2 to 1") as e:
        world.verify(world.acme, source=snapshot, state_dir=state)
    assert e.value.evidence == {"size1": 2, "size2": 1}
    assert world.verify(world.acme, source=snapshot).tree_size == 1  # without a state, nothing to compare


def test_entry_bundles_that_hide_an_entry_are_refused(world: World, tmp_path: Path) -> None:
    record(world.home, "CH", granted(world, world.acme))
    record(world.home, "CH", granted(world, world.globex))
    served = tmp_path / "served"
    shutil.copytree(world.public, served)
    bundle = served / entries_path(0, 2)  # the partial bundle of the tree of size 2
    entries = decode_bundle(bundle.read_bytes())
    bundle.write_bytes(encode_bundle([entries[1], entries[1]]))  # acme's access replaced by globex's
    with pytest.raises(InclusionError, match="do not hash to the root"):
        world.verify(world.acme, source=served)


def test_a_log_that_is_not_an_access_log_is_refused(world: World) -> None:
    main = world.home.log.paths.public
    policy = policy_from_vkey((main / "vkey").read_text().strip())
    with pytest.raises(UsageError, match="not an access log"):
        verify_access_log(str(main), policy=policy, tenant=world.acme.id)
