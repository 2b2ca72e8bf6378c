"""A tenant's home is what the main log says, not what ``directory.db`` says: a home edited, forged, or a move
taken back in the directory is refused everywhere (directory, CLI, ingestion over HTTP, migration), and a move
logged just before a crash is recorded when the migration resumes, not logged twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import Key

from overt.attest.dsse import sign_envelope
from overt.attest.statement import ResourceDescriptor, Statement
from overt.home import Home
from overt.keys.jurisdiction import RESIDENCY_TENANT_V1
from overt.residency.adminkeys import AdminSigner
from overt.residency.migration import migrate
from overt.residency.registry_store import RegistryIssuer
from overt.residency.tenant_ledger import TenantLedger, TenantRecordError, logged_tenant
from overt.residency.tenants import MIGRATING, open_directory
from overt.server.log import LOG_LIMITS, create_app, edge_limits
from overt.server.runner import BackgroundServer
from overt.tlog.client import LogClient, directory_fetcher
from tests.cli.test_cli import overt
from tests.residency.world import World, batch, make_world, rows_in_sqlite


def sql(home: Home, statement: str, *args: object) -> None:
    db = sqlite3.connect(home.paths.residency / "directory.db")
    try:
        db.execute(statement, args)
        db.commit()
    finally:
        db.close()


def log_size(home: Home) -> int:
    log = home.log.read()
    try:
        return log.tiles.state.tree_size
    finally:
        log.close()


@pytest.fixture
def world(conveyor: Home) -> World:
    return make_world(conveyor)


def test_a_home_edited_in_the_directory_is_refused_everywhere(world: World, tmp_path: Path) -> None:
    acme = world.tenants["acme"]
    with open_directory(world.home) as d:
        assert d.tenant(acme.id).jurisdiction == "CH"  # as logged
    sql(world.home, "UPDATE tenants SET jurisdiction = 'BR' WHERE id = ?", acme.id)

    with open_directory(world.home) as d, pytest.raises(TenantRecordError) as e:
        d.tenant(acme.id)
    assert "says home BR" in str(e.value) and "says home CH" in str(e.value)
    assert e.value.evidence["logged_home"] == "CH" and e.value.evidence["directory_home"] == "BR"

    shown = overt("residency", "tenant", "show", "acme", "--home", str(world.home.path))
    assert shown.returncode == 1 and "changed outside overt" in shown.stderr
    assert "Traceback" not in shown.stderr

    home = Home(world.home.path)
    with BackgroundServer(create_app(home), limits=edge_limits(home, LOG_LIMITS)) as srv:
        r = httpx.post(
            f"{srv.url}/v1/telemetry",
            content=batch("batch-0001", 5),
            headers={"Authorization": f"Bearer {world.token('acme')}", "Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 503 and "changed outside overt" in r.json()["error"]
        ok = httpx.post(
            f"{srv.url}/v1/telemetry",
            content=batch("batch-0002", 2),
            headers={"Authorization": f"Bearer {world.token('samba')}", "Content-Type": "application/json"},
            timeout=60,
        )
        assert ok.status_code == 200  # the other tenants are served as before
    assert rows_in_sqlite(home.paths.root / "jurisdictions" / "BR") == 2  # none of acme's
    assert rows_in_sqlite(home.paths.root / "jurisdictions" / "CH") == 0

    planned = overt("residency", "migrate", "--dry-run", "--home", str(world.home.path))
    assert planned.returncode == 1 and "changed outside overt" in planned.stderr


@pytest.mark.parametrize(
    ("column", "value"),
    [("registry_version", 2), ("country", "FR"), ("admin_keyid", "0" * 64)],
)
def test_any_logged_field_edited_is_refused(world: World, column: str, value: object) -> None:
    acme = world.tenants["acme"]
    sql(world.home, f"UPDATE tenants SET {column} = ? WHERE id = ?", value, acme.id)
    with open_directory(world.home) as d, pytest.raises(TenantRecordError):
        d.authenticate(world.token("acme"))


def test_a_tenant_the_log_never_held_is_refused(world: World) -> None:
    sql(
        world.home,
        "INSERT INTO tenants SELECT 't-00000000000000aa', 'ghost', 'ghost', country, jurisdiction, "
        "registry_version, admin_key, admin_keyid, status, created, log_index FROM tenants WHERE name = 'acme'",
    )
    with open_directory(world.home) as d, pytest.raises(TenantRecordError) as e:
        d.tenant("t-00000000000000aa")
    assert "holds no record of this tenant" in str(e.value)


def test_a_move_forged_by_a_key_the_home_does_not_trust_counts_for_nothing(world: World) -> None:
    acme = world.tenants["acme"]
    forged = Statement(
        subject=(ResourceDescriptor(name=f"tenant/{acme.id}", digest={"sha256": acme.admin_keyid}),),
        predicate_type=RESIDENCY_TENANT_V1,
        predicate={
            "event": "moved", "tenant": acme.id, "country": acme.country, "home": "BR", "registryVersion": 2,
            "adminKeyid": acme.admin_keyid, "time": "2026-12-01T00:00:00Z", "from": "CH",
        },
    )  # fmt: skip
    signer = AdminSigner.of(Ed25519PrivateKey.generate())
    envelope = sign_envelope(forged.to_bytes(), "application/vnd.in-toto+json", [signer]).to_bytes()
    index = world.home.log.append(envelope).index  # POST /add takes entries from anyone
    assert logged_tenant(index, envelope, _release(world.home)) is None  # not signed by this home's keys
    created = log_entry(world.home, acme.log_index)
    assert logged_tenant(acme.log_index, created, _release(world.home)) is not None  # the real one counts
    sql(world.home, "UPDATE tenants SET jurisdiction = 'BR', registry_version = 2 WHERE id = ?", acme.id)
    with open_directory(world.home) as d, pytest.raises(TenantRecordError):
        d.tenant(acme.id)


def test_a_migration_taken_back_in_the_directory_is_refused(world: World) -> None:
    samba = world.tenants["samba"]
    clock = [0.0]
    # A long-running process (a server) that checked samba before the migration.
    ledger = TenantLedger(world.home.log.read, lambda: _release(world.home), clock=lambda: clock[0])
    with open_directory(world.home) as d:
        before = d.tenant(samba.id)
    assert ledger.check(before) == before
    RegistryIssuer.of_home(world.home).change({"BR": "CH"})
    assert migrate(world.home).exit_code == 0
    with open_directory(world.home) as d:
        assert d.tenant(samba.id).jurisdiction == "CH"
    sql(world.home, "UPDATE tenants SET jurisdiction = 'BR', registry_version = 1 WHERE id = ?", samba.id)
    sql(world.home, "DELETE FROM home_moves WHERE tenant = ?", samba.id)
    with open_directory(world.home) as d, pytest.raises(TenantRecordError) as e:
        d.tenant(samba.id)  # a process that reads the log now
    assert "moved) says home CH" in str(e.value)
    assert ledger.check(before) == before  # within `refresh` of its last look, the old process still agrees
    clock[0] += 1.0
    with pytest.raises(TenantRecordError):
        ledger.check(before)  # at its next look, it sees the move the directory no longer shows


def log_entry(home: Home, index: int) -> bytes:
    client = LogClient(directory_fetcher(home.log.paths.public), home.log.policy())
    return client.entries(index + 1, start=index)[0]


def _release(home: Home) -> list[Key]:
    from overt.keys.builders import release_keys

    return list(release_keys(home.registry.records(), home.conveyor.jurisdiction))


def test_a_move_logged_before_a_crash_is_recorded_once_when_the_migration_resumes(world: World) -> None:
    samba = world.tenants["samba"]
    RegistryIssuer.of_home(world.home).change({"BR": "CH"})
    with open_directory(world.home) as d:
        d.set_status(samba.id, MIGRATING)
        crashing = d.record
        logged: list[int] = []

        def record_then_crash(statement: Statement) -> object:
            logged.append(crashing(statement).index)
            raise KeyboardInterrupt  # killed after the log append, before the directory commits

        d.record = record_then_crash  # type: ignore[assignment]
        with pytest.raises(KeyboardInterrupt):
            d.move_home(samba.id, "CH", registry_version=2)
    size = log_size(world.home)
    with open_directory(world.home) as d:
        pending = d.tenant(samba.id)  # frozen, and what the log says is on its way
        assert (pending.jurisdiction, pending.status) == ("BR", MIGRATING)
        moved = d.move_home(samba.id, "CH", registry_version=2)
    assert moved.log_index == logged[0] and log_size(world.home) == size  # recorded, not logged again
    with open_directory(world.home) as d:
        assert d.tenant(samba.id).jurisdiction == "CH"
