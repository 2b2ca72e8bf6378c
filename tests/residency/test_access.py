"""Staff access: approved by the tenant's admin, logged in the tenant's home access log before any data is
read, read from the home store only; every refusal is logged with its reason."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import ConfigError, Error, FormatError
from overt.home import Home
from overt.residency.access import AccessRefused, access
from overt.residency.accesslog import ensure_access_log
from overt.residency.accessverify import AccessLogReport, verify_access_log
from overt.residency.adminkeys import AdminSigner
from overt.residency.approvals import Approval, sign_approval
from overt.residency.registry import SELF
from overt.residency.registry_store import RegistryIssuer
from overt.residency.stores import open_store
from overt.residency.telemetry import parse_batch
from overt.residency.tenants import MIGRATING, Tenant, open_directory
from overt.tlog.trust import policy_from_vkey

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
AT = T0 + timedelta(hours=1)
ANA = "ana@vendor.example"


def batch_bytes(batch_id: str, events: int, *, day: str = "2026-12-01") -> bytes:
    """A telemetry batch as an endpoint would send it."""
    return json.dumps(
        {
            "batch_id": batch_id,
            "endpoint": "host-1",
            "events": [
                {
                    "time": f"{day}T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
                    "file_sha256": hashlib.sha256(f"{batch_id}/{i}".encode()).hexdigest(),
                    "rule_id": f"rule-{i % 3}",
                    "verdict": ("malicious", "suspicious", "clean")[i % 3],
                    "database": "avdb",
                    "database_version": 7,
                }
                for i in range(events)
            ],
        }
    ).encode()


def write_batches(home: Home, tenant: Tenant, count: int, *, events: int = 5, prefix: str = "batch") -> None:
    with open_store(home, tenant.jurisdiction) as store:
        for n in range(count):
            raw = batch_bytes(f"{prefix}-{n:04d}", events)
            store.write_batch(tenant.id, parse_batch(raw), raw)


def make_tenants(home: Home, *specs: tuple[str, str]) -> tuple[list[Tenant], dict[str, AdminSigner]]:
    """Tenants (name, country) with fresh admin keys; the registry's first version if there is none."""
    if not (home.paths.residency_registry / "registry.dsse.json").exists():
        RegistryIssuer.of_home(home).init(default=SELF, countries={})
    admins: dict[str, AdminSigner] = {}
    made = []
    with open_directory(home) as directory:
        for name, country in specs:
            admin = AdminSigner.of(Ed25519PrivateKey.generate())
            tenant = directory.create_tenant(name, country, admin.public.pem.encode()).tenant
            admins[tenant.id] = admin
            made.append(tenant)
    return made, admins


@dataclass
class World:
    home: Home
    acme: Tenant  # DE: homed in CH
    globex: Tenant  # FR: homed in CH
    admins: dict[str, AdminSigner]

    def approval(self, tenant: Tenant, *, signer: AdminSigner | None = None, **changes: object) -> bytes:
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
        return sign_approval(Approval.new(**fields), signer or self.admins[tenant.id])  # type: ignore[arg-type]

    def access(self, tenant: Tenant, approval: bytes | None, **changes: object) -> object:
        fields: dict[str, object] = {
            "tenant_id": tenant.id,
            "actor": ANA,
            "actor_country": "CH",
            "reason": "support-ticket",
            "resource": "telemetry:detections",
            "approval": approval,
            "now": AT,
        }
        fields.update(changes)
        return access(self.home, **fields)  # type: ignore[arg-type]

    def report(self, tenant: Tenant) -> AccessLogReport:
        public = self.home.path / "public" / "logs" / "access-ch"
        policy = policy_from_vkey((public / "vkey").read_text().strip())
        return verify_access_log(
            str(public),
            policy=policy,
            tenant=tenant.id,
            admin_key=self.admins[tenant.id].public,
            state_dir=self.home.path.parent / "customer-state",
        )


@pytest.fixture
def world(conveyor: Home) -> World:
    (acme, globex), admins = make_tenants(conveyor, ("Acme", "DE"), ("Globex", "FR"))
    assert acme.jurisdiction == globex.jurisdiction == "CH"
    with open_store(conveyor, "CH", create=True):
        pass
    ensure_access_log(conveyor, "CH")
    write_batches(conveyor, acme, 3)
    write_batches(conveyor, globex, 1, prefix="globex")
    return World(home=conveyor, acme=acme, globex=globex, admins=admins)


# --- granted ------------------------------------------------------------------------------------------------


def test_an_approved_access_is_logged_then_served_from_the_home_store(world: World) -> None:
    granted = world.access(world.acme, world.approval(world.acme))
    assert granted.jurisdiction == "CH" and granted.log == "access-ch"  # type: ignore[attr-defined]
    data = json.loads(granted.data)  # type: ignore[attr-defined]
    assert data["resource"] == "telemetry:detections" and len(data["rows"]) == 15
    assert {r["tenant"] for r in data["rows"]} == {world.acme.id}  # only this tenant's rows
    report = world.report(world.acme)
    assert report.ok
    (logged,) = report.entries
    assert logged.index == granted.log_index  # type: ignore[attr-defined]
    assert logged.entry.outcome == "granted" and logged.entry.actor == ANA
    assert logged.approval.startswith("verified")  # the customer's own key checks the approval


def test_aggregates_and_one_batch(world: World) -> None:
    approval = world.approval(world.acme, resource="telemetry:aggregates")
    aggregates = json.loads(world.access(world.acme, approval, resource="telemetry:aggregates").data)  # type: ignore[attr-defined]
    assert sum(r["events"] for r in aggregates["rows"]) == 15
    approval = world.approval(world.acme, resource="telemetry:batch/batch-0001")
    raw = world.access(world.acme, approval, resource="telemetry:batch/batch-0001").data  # type: ignore[attr-defined]
    assert raw == batch_bytes("batch-0001", 5)


# --- refused, and the refusal logged ------------------------------------------------------------------------


def refused(w: World, tenant: Tenant, approval: bytes | None, **changes: object) -> AccessRefused:
    with pytest.raises(AccessRefused) as caught:
        w.access(tenant, approval, **changes)
    e = caught.value
    assert e.log_index is not None and f"logged at index {e.log_index} of access-ch" in str(e)
    entries = {x.index: x for x in w.report(tenant).entries}
    entry = entries[e.log_index].entry
    assert entry.outcome == "refused" and entry.refusal == e.refusal
    assert all(x.entry.outcome == "refused" for x in entries.values())  # nothing was granted
    return e


def test_without_an_approval_it_is_refused_and_logged(world: World) -> None:
    e = refused(world, world.acme, None)
    assert "no approval" in e.refusal


def test_an_expired_or_not_yet_valid_approval_is_refused(world: World) -> None:
    approval = world.approval(world.acme)
    assert "expired" in refused(world, world.acme, approval, now=T0 + timedelta(hours=9)).refusal
    assert "valid only from" in refused(world, world.acme, approval, now=T0 - timedelta(seconds=1)).refusal


def test_an_approval_reused_for_another_resource_is_refused(world: World) -> None:
    approval = world.approval(world.acme, resource="telemetry:aggregates")
    e = refused(world, world.acme, approval, resource="telemetry:detections")
    assert "resource" in e.refusal


def test_an_approval_for_tenant_a_used_on_b_is_refused(world: World) -> None:
    # A's admin signed it for A: B's admin key does not verify it.
    e = refused(world, world.globex, world.approval(world.acme))
    assert "not signed by the tenant's admin key" in e.refusal
    # B's admin signed one naming A: the scope does not match.
    naming_a = world.approval(world.acme, signer=world.admins[world.globex.id])
    assert "tenant" in refused(world, world.globex, naming_a).refusal


def test_staff_naming_another_country_or_reason_is_refused(world: World) -> None:
    approval = world.approval(world.acme)  # for CH and support-ticket
    assert "actor_country" in refused(world, world.acme, approval, actor_country="US").refusal
    assert "reason" in refused(world, world.acme, approval, reason="legal-order").refusal
    assert "actor" in refused(world, world.acme, approval, actor="bob@vendor.example").refusal


def test_a_tampered_or_foreign_approval_is_refused(world: World) -> None:
    envelope = json.loads(world.approval(world.acme))
    payload = json.loads(__import__("base64").b64decode(envelope["payload"]))
    payload["not_after"] = "2026-12-08T10:00:00Z"  # a longer time box, the signature kept
    envelope["payload"] = __import__("base64").b64encode(json.dumps(payload).encode()).decode()
    assert "not signed" in refused(world, world.acme, json.dumps(envelope).encode()).refusal
    stranger = AdminSigner.of(Ed25519PrivateKey.generate())
    assert "not signed" in refused(world, world.acme, world.approval(world.acme, signer=stranger)).refusal
    e = refused(world, world.acme, b"not an envelope")
    entry = {x.index: x for x in world.report(world.acme).entries}[e.log_index].entry  # type: ignore[index]
    assert entry.approval is None and entry.detail == "the approval presented is not a DSSE envelope"


def test_access_during_migration_is_refused_and_logged(world: World) -> None:
    approval = world.approval(world.acme)
    with open_directory(world.home) as directory:
        directory.set_status(world.acme.id, MIGRATING)
    assert "migrating" in refused(world, world.acme, approval).refusal


def test_a_malformed_request_or_unknown_tenant_is_an_error_not_an_access(world: World) -> None:
    approval = world.approval(world.acme)
    with pytest.raises(FormatError):
        world.access(world.acme, approval, actor="no spaces allowed")
    with pytest.raises(FormatError):
        world.access(world.acme, approval, resource="telemetry:everything")
    with pytest.raises(ConfigError, match="no tenant t-0123456789abcdef"):
        access(
            world.home,
            tenant_id="t-0123456789abcdef",
            actor=ANA,
            actor_country="CH",
            reason="support-ticket",
            resource="telemetry:detections",
            approval=approval,
            now=AT,
        )
    assert not world.report(world.acme).entries


def test_when_the_access_log_cannot_take_the_entry_no_data_is_returned(world: World) -> None:
    world.access(world.acme, world.approval(world.acme))  # entry 0, published
    database = ensure_access_log(world.home, "CH").paths.database
    for path in database.parent.glob(database.name + "*"):
        path.unlink()  # the log's database is lost: it is behind what it published, and refuses to append
    with pytest.raises(Error) as caught:
        world.access(world.acme, world.approval(world.acme))
    assert not isinstance(caught.value, AccessRefused)


def test_the_granted_entry_is_logged_before_the_read(world: World) -> None:
    approval = world.approval(world.acme, resource="telemetry:batch/batch-9999")
    with pytest.raises(Error, match="no batch batch-9999"):
        world.access(world.acme, approval, resource="telemetry:batch/batch-9999")
    (entry,) = world.report(world.acme).entries
    assert entry.entry.outcome == "granted" and entry.entry.resource == "telemetry:batch/batch-9999"


# --- the command --------------------------------------------------------------------------------------------


def overt(*args: str) -> tuple[int, str]:
    """Run the overt command line as a process: its exit status and what it wrote (stdout, then stderr)."""
    done = subprocess.run([sys.executable, "-m", "overt", *args], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_the_access_command(world: World, tmp_path: Path) -> None:
    approval_file = tmp_path / "approval.json"
    now = datetime.now(UTC)
    start, end = now - timedelta(minutes=1), now + timedelta(hours=1)
    approval_file.write_bytes(world.approval(world.acme, not_before=start, not_after=end))
    out = tmp_path / "data.json"
    args = ["residency", "access", world.acme.id, "--home", str(world.home.path), "--actor", ANA]
    args += ["--actor-country", "CH", "--reason", "support-ticket", "--resource", "telemetry:detections"]
    code, output = overt(*args, "--approval", str(approval_file), "--out", str(out))
    assert code == 0, output
    assert "logged at index 0 of access-ch" in output and str(out) in output
    assert len(json.loads(out.read_bytes())["rows"]) == 15
    code, output = overt(*args, "--approval", str(tmp_path / "missing.json"))
    assert code == 2, output  # an unreadable file is bad input: not an access, not logged
    other = tmp_path / "other.json"
    other.write_bytes(world.approval(world.globex, not_before=start, not_after=end))
    code, output = overt(*args, "--approval", str(other), "--json")
    assert code == 1, output
    assert "the refusal is logged at index 1 of access-ch" in output
    code, output = overt(*args, "--approval", str(approval_file), "--json")
    assert code == 0, output
    assert json.loads(output)["log_index"] == 2 and len(json.loads(output)["data"]["rows"]) == 15
    code, output = overt(*args)  # no approval at all: refused, and the refusal logged
    assert code == 1 and "no approval was presented" in output, output
    assert "the refusal is logged at index 3 of access-ch" in output


# --- a witnessed access log ---------------------------------------------------------------------------------


def test_a_witnessed_access_log_logs_only_what_its_witness_cosigned(world: World, tmp_path: Path) -> None:
    """The operator gives the access log of CH a witness (``overt log policy --name access-ch``); the customer
    keeps its own copy of that policy. While the witness is down an approved access is not served; once it
    answers, it is. An operator who then drops the witness from the log's policy to grant unwitnessed
    accesses is caught by the customer's check under its copy."""
    from overt.server.runner import BackgroundServer, free_port
    from overt.server.witness import create_app as witness_app
    from overt.tlog.witness import init_witness, load_witness, trust_log

    public = world.home.path / "public" / "logs" / "access-ch"
    wdir = tmp_path / "w1"
    init_witness(wdir, "w1.test.overt.example")
    trust_log(wdir, (public / "vkey").read_text().strip())
    port = free_port()
    witness = f"w1={(wdir / 'witness.vkey').read_text().strip()}=http://127.0.0.1:{port}"
    H = ("--home", str(world.home.path))
    code, output = overt(
        "log", "policy", "--name", "access-ch", "--add-witness", witness, "--quorum", "all", *H
    )
    assert code == 0, output
    customer_policy = tmp_path / "customer-policy"
    customer_policy.write_bytes((public / "policy").read_bytes())  # as the customer obtained it
    assert b"witness w1" in customer_policy.read_bytes()
    code, output = overt("log", "policy", "--name", "access-nowhere", *H)
    assert code != 0 and "no log 'access-nowhere'" in output and "Traceback" not in output

    approval = tmp_path / "approval.json"
    now = datetime.now(UTC)
    approval.write_bytes(
        world.approval(world.acme, not_before=now - timedelta(minutes=1), not_after=now + timedelta(hours=1))
    )
    out = tmp_path / "data.json"
    args = ["residency", "access", world.acme.id, *H, "--actor", ANA, "--actor-country", "CH"]
    args += ["--reason", "support-ticket", "--resource", "telemetry:detections", "--approval", str(approval)]
    code, output = overt(*args, "--out", str(out))
    assert code == 2, output  # the witness is down: the grant is appended but not logged, and nothing is read
    assert "not" in output and "publish" in output and not out.exists()

    with load_witness(wdir) as w, BackgroundServer(witness_app(w), port=port):
        code, output = overt("log", "publish", "--name", "access-ch", *H, "--json")
        assert code == 0 and json.loads(output)["cosigners"] == ["w1"], output
        code, output = overt(*args, "--out", str(out))
        assert code == 0 and out.exists(), output
    check = ["residency", "access-log", world.acme.id, "--log", str(public), "--policy", str(customer_policy)]
    check += ["--state", str(tmp_path / "customer-state")]
    code, output = overt(*check)
    assert code == 0 and "ok  witness quorum" in output, output

    # The operator drops the witness to serve accesses it will not cosign: the customer's copy still needs it.
    code, output = overt(
        "log", "policy", "--name", "access-ch", "--remove-witness", "w1", "--quorum", "none", *H
    )
    assert code == 0, output
    out.unlink()
    code, output = overt(*args, "--out", str(out))
    assert code == 0 and out.exists(), output
    code, output = overt(*check)
    assert code == 1 and "cosigned by no known witness, which does not meet the quorum" in output, output
