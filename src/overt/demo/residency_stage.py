"""Demo stage "telemetry kept in its jurisdiction": the jurisdiction registry, three jurisdiction stores, four
customers (tenants) whose endpoints send telemetry to two ``overt serve`` processes, one serving Switzerland
and one serving the rest, staff access under the customer's approval, the customer's own check of the access
log, and a migration after a registry change.

Everything is the real code the commands run: ``overt residency registry init|set``
(:class:`~overt.residency.registry_store.RegistryIssuer`), ``store add``, ``tenant create``, ``token create``,
the telemetry API of ``overt serve --jurisdiction`` over loopback HTTP, ``overt residency approve``, ``access``,
``access-log`` and ``migrate``. Each tenant keeps its own files under ``tenants/<name>/``: its admin key pair
(the public half registered with the vendor), its API token, its approvals, the access-log keys it pinned when
it signed up, and its verifier state.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from overt.attest.dsse import Envelope
from overt.demo.claims import Claim, Command, Promise, Stage, Status
from overt.demo.context import DemoContext
from overt.errors import PolicyError, VerificationError
from overt.home import Home
from overt.residency.access import AccessRefused, StaffAccess, access
from overt.residency.accesslog import access_log_name, ensure_access_log
from overt.residency.accessverify import AccessLogReport, verify_access_log
from overt.residency.adminkeys import AdminSigner, load_admin_key, load_admin_signer, new_admin_key
from overt.residency.approvals import Approval, issue_approval
from overt.residency.client import send_batch
from overt.residency.config import JurisdictionConfig
from overt.residency.ingest import Landed
from overt.residency.migration import migrate
from overt.residency.provision import add_store
from overt.residency.registry import SELF
from overt.residency.registry_store import RegistryIssuer, StoredVersion, registry_store
from overt.residency.stores import open_store
from overt.residency.tenants import Tenant, open_directory
from overt.server.log import LOG_LIMITS, create_telemetry_app, edge_limits
from overt.server.runner import BackgroundServer
from overt.tlog.client import LogClient, directory_fetcher
from overt.tlog.trust import policy_from_vkey

RESIDENT = Promise.TELEMETRY_IN_JURISDICTION
CH = "CH"
STORES = ("BR", "CA", CH)  # CA's store is where the migrated tenant starts
# name -> country. The first three are the "three countries"; maple's country moves to CH later.
TENANTS: Mapping[str, str] = {"alpen": "DE", "sakura": "JP", "samba": "BR", "maple": "CA"}
LANDING = ("alpen", "sakura", "samba")
MIGRATED = "maple"
STAFF, STAFF_COUNTRY, REASON = "ana@vendor.example", CH, "support-ticket"
RESOURCE = "telemetry:aggregates"
DAY = "2026-12-01"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Customer:
    """A tenant as the vendor's directory has it, and the customer's own folder."""

    tenant: Tenant
    folder: Path
    token: str

    @property
    def admin_key(self) -> Path:
        return self.folder / "admin.pem"

    @property
    def admin_public(self) -> Path:
        return self.folder / "admin.pem.pub"

    @property
    def state(self) -> Path:
        return self.folder / "access-state"

    def vkey(self, j: str) -> str:
        """The access log key of ``j`` as this customer pinned it at sign-up."""
        return (self.folder / f"{access_log_name(j)}.vkey").read_text().strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Servers:
    ch: str  # the URL of the process serving CH
    rest: str  # the URL of the process serving every other jurisdiction with a store

    def url(self, j: str) -> str:
        return self.ch if j == CH else self.rest


def _batch(name: str, n: int, *, round_: int = 1) -> bytes:
    """A batch of ``n`` detections from ``name``'s endpoint, as the endpoint agent sends them."""
    batch_id = f"{name}-{round_:04d}"
    events = [
        {
            "time": f"{DAY}T09:{i % 60:02d}:00Z",
            "file_sha256": hashlib.sha256(f"{batch_id}/{i}".encode()).hexdigest(),
            "rule_id": ("Demo_Eicar", "Demo_Dropper", "Demo_Macro")[i % 3],
            "verdict": ("malicious", "suspicious")[i % 2],
            "database": "demo",
            "database_version": 2,
        }
        for i in range(n)
    ]
    return json.dumps({"batch_id": batch_id, "endpoint": f"{name}-host-1", "events": events}).encode()


def _registry(ctx: DemoContext) -> StoredVersion:
    """``overt residency registry init``: version 1, the vendor's promise; every other country its own."""
    v1 = RegistryIssuer.of_home(ctx.home).init(default=SELF, countries={})
    wanted = {"US": CH, "DE": CH, "GB": CH, "JP": CH, "KR": CH, "SG": CH, "AU": CH, "BR": "BR", "CA": "CA"}
    found = {c: v1.registry.jurisdiction_of(c) for c in wanted}
    if found != wanted:
        raise VerificationError(f"registry v1 does not keep the promise: {found}")
    return v1


def _customers(ctx: DemoContext) -> dict[str, _Customer]:
    """``overt residency admin-key new`` on each customer's side, then ``tenant create`` and ``token create``
    on the vendor's; each customer pins every access log's key it is shown at sign-up."""
    out = {}
    with open_directory(ctx.home) as directory:
        for name, country in TENANTS.items():
            folder = ctx.root / "tenants" / name
            folder.mkdir(parents=True)
            key = new_admin_key(folder / "admin.pem")
            tenant = directory.create_tenant(name, country, key.public.read_bytes()).tenant
            token = directory.create_token(tenant.id).token
            (folder / "token").write_text(token + "\n")
            (folder / "token").chmod(0o600)
            for j in STORES:
                log = ensure_access_log(ctx.home, j)
                (folder / f"{log.name}.vkey").write_bytes(log.paths.vkey.read_bytes())
            out[name] = _Customer(tenant=tenant, folder=folder, token=token)
    return out


@contextmanager
def _serving(home: Home) -> Iterator[_Servers]:
    """Two ``overt serve --telemetry-only`` apps on loopback: ``--jurisdiction CH``, and one for the others."""
    rest = [j for j in STORES if j != CH]
    with ExitStack() as stack:
        urls = [
            stack.enter_context(
                BackgroundServer(
                    create_telemetry_app(home, serving=serving), limits=edge_limits(home, LOG_LIMITS, serving)
                )
            ).url
            for serving in ([CH], rest)
        ]
        yield _Servers(ch=urls[0], rest=urls[1])


def _events_by_store(home: Home, customers: Mapping[str, _Customer]) -> dict[str, dict[str, int]]:
    """What each store holds, read directly: events per tenant name (tenants with none left out)."""
    out = {}
    for j in STORES:
        with open_store(home, j) as store:
            counts = {n: store.count_events(c.tenant.id) for n, c in customers.items()}
        out[j] = {n: k for n, k in counts.items() if k}
    return out


def _misrouted(url: str, customer: _Customer, raw: bytes) -> PolicyError:
    """The batch sent to a process that does not serve the tenant's home: refused with 421, or raise."""
    try:
        landed = send_batch(url, customer.token, raw)
    except PolicyError as e:
        if e.evidence.get("status") != 421:
            raise
        return e
    raise VerificationError(f"{customer.tenant.name}'s batch landed in {landed.jurisdiction} at {url}")


def _landing_claims(
    ctx: DemoContext, servers: _Servers, customers: Mapping[str, _Customer]
) -> tuple[Claim, Claim]:
    landed: dict[str, Landed] = {}
    for n, name in enumerate(LANDING, 1):
        c = customers[name]
        landed[name] = send_batch(servers.url(c.tenant.jurisdiction), c.token, _batch(name, 100 * n))
        if landed[name].jurisdiction != c.tenant.jurisdiction:
            raise VerificationError(f"{name}'s batch landed in {landed[name].jurisdiction}")
    before = _events_by_store(ctx.home, customers)
    expected = {
        j: {name: landed[name].events for name in LANDING if customers[name].tenant.jurisdiction == j}
        for j in STORES
    }
    if before != expected:
        raise VerificationError(f"the stores hold {before}, not {expected}")
    samba = customers["samba"]
    refused = _misrouted(servers.ch, samba, _batch("samba", 50, round_=2))
    after = _events_by_store(ctx.home, customers)
    if after != before:
        raise VerificationError(f"the refused batch changed the stores: {after}")
    routing = _customer_check(ctx, samba, samba.tenant.jurisdiction)
    refusals = [e for e in routing.entries if e.entry.kind == "routing-refusal"]
    if len(refusals) != 1:
        raise VerificationError(f"{len(refusals)} routing refusals about samba in its access log")
    evidence = ctx.write_evidence(
        "residency-landing.json",
        json.dumps(
            {
                "answers": {name: a.to_dict() for name, a in landed.items()},
                "stores": before,
                "misrouted": {"status": 421, "error": str(refused)},
            },
            indent=2,
            sort_keys=True,
        ).encode()
        + b"\n",
    )
    where = "; ".join(
        f"{name} ({customers[name].tenant.country}) -> {a.jurisdiction}, {a.events} events"
        for name, a in landed.items()
    )
    landing = Claim(
        id="residency.landed-in-home",
        promise=RESIDENT,
        status=Status.PROVED,
        check=f"three customers' endpoints sent a batch each over HTTP; the registry homed each tenant when it "
        f"was created, and each batch landed in its home's store and nowhere else: {where}. Read directly, "
        f"each store held exactly its own tenants' events. The re-check lists what each store holds now",
        evidence=ctx.rel(evidence),
        recheck=ctx.overt("residency", "store", "list", "--home", ctx.home.path, "--events", "--json"),
        facts={"landed": {n: a.to_dict() for n, a in landed.items()}, "stores": before},
    )
    misroute = Claim(
        id="residency.misrouted-refused",
        promise=RESIDENT,
        status=Status.PROVED,
        check=f"a batch from samba (homed in {samba.tenant.jurisdiction}) sent to the process serving only CH "
        f"was refused (421: that process does not serve the tenant's home, and there is no fallback); no "
        f"store changed, and the refusal is entry {refusals[0].index} of {samba.tenant.jurisdiction}'s access "
        f"log, which samba verified under the key it pinned",
        evidence=ctx.rel(evidence),
        recheck=_access_log_command(ctx, samba, samba.tenant.jurisdiction),
        facts={"refusal_index": refusals[0].index, "jurisdiction": samba.tenant.jurisdiction},
    )
    return landing, misroute


def _access_log_command(ctx: DemoContext, c: _Customer, j: str) -> Command:
    return ctx.overt(
        "residency",
        "access-log",
        c.tenant.id,
        "--log",
        ensure_access_log(ctx.home, j).paths.public,
        "--vkey",
        c.vkey(j),
        "--state",
        c.state,
        "--admin-key",
        c.admin_public,
        "--json",
    )


def _customer_check(ctx: DemoContext, c: _Customer, j: str) -> AccessLogReport:
    """``overt residency access-log`` as the customer runs it: pinned key, own state, own admin key."""
    report = verify_access_log(
        str(ensure_access_log(ctx.home, j).paths.public),
        policy=policy_from_vkey(c.vkey(j)),
        tenant=c.tenant.id,
        state_dir=c.state,
        admin_key=load_admin_key(c.admin_public),
        trust="the key pinned at sign-up",
    )
    if not report.ok:
        raise VerificationError(
            f"{c.tenant.name}'s check of the access log of {j} failed: {report.to_dict()}"
        )
    return report


def _approval(c: _Customer, signer: AdminSigner, *, start: datetime, hours: int, name: str) -> bytes:
    """``overt residency approve``: the customer's admin lets STAFF read RESOURCE for ``hours``."""
    approval = Approval.new(
        tenant=c.tenant.id,
        actor=STAFF,
        actor_country=STAFF_COUNTRY,
        reason=REASON,
        resource=RESOURCE,
        not_before=start,
        not_after=start + timedelta(hours=hours),
    )
    data = issue_approval(approval, signer)
    (c.folder / name).write_bytes(data)
    return data


def _staff_access(home: Home, c: _Customer, approval: bytes | None) -> StaffAccess:
    """``overt residency access TENANT --actor ... --approval FILE``."""
    return access(
        home,
        tenant_id=c.tenant.id,
        actor=STAFF,
        actor_country=STAFF_COUNTRY,
        reason=REASON,
        resource=RESOURCE,
        approval=approval,
    )


def _refused(home: Home, c: _Customer, approval: bytes | None, why: str) -> int:
    """The access refused and the refusal logged: its index in the access log; else raise."""
    try:
        granted = _staff_access(home, c, approval)
    except AccessRefused as e:
        if e.log_index is None:
            raise VerificationError(f"the refusal ({why}) was not logged: {e}") from e
        return e.log_index
    raise VerificationError(f"staff read {granted.resource} of {c.tenant.name} with {why}")


def _entry_bytes(home: Home, j: str, index: int) -> bytes:
    log = ensure_access_log(home, j)
    client = LogClient(directory_fetcher(log.paths.public), log.policy())
    size = client.update().checkpoint.checkpoint.tree_size
    return client.entries(size)[index]


def _access_claims(ctx: DemoContext, customers: Mapping[str, _Customer]) -> tuple[Claim, Claim]:
    alpen = customers["alpen"]
    home_j = alpen.tenant.jurisdiction
    signer = load_admin_signer(alpen.admin_key)
    now = datetime.now(UTC)
    good = _approval(alpen, signer, start=now - timedelta(minutes=1), hours=4, name="approval.json")
    stale = _approval(alpen, signer, start=now - timedelta(hours=5), hours=4, name="approval-expired.json")
    forged_folder = ctx.root / "tenants" / "forged-by-vendor"
    forged_folder.mkdir()
    forger = load_admin_signer(new_admin_key(forged_folder / "admin.pem").private)
    forged = _approval(
        _Customer(tenant=alpen.tenant, folder=forged_folder, token=""),
        forger,
        start=now - timedelta(minutes=1),
        hours=4,
        name="approval.json",
    )
    granted = _staff_access(ctx.home, alpen, good)
    rows = json.loads(granted.data)["rows"]
    refusals = {
        "no approval": _refused(ctx.home, alpen, None, "no approval"),
        "an expired approval": _refused(ctx.home, alpen, stale, "an expired approval"),
        "an approval signed by a key the vendor made": _refused(ctx.home, alpen, forged, "a forged approval"),
    }
    report = _customer_check(ctx, alpen, home_j)
    by_index = {e.index: e for e in report.entries}
    if by_index.get(granted.log_index) is None or by_index[granted.log_index].entry.outcome != "granted":
        raise VerificationError("the granted access is not among alpen's verified entries")
    if any(by_index.get(i) is None for i in refusals.values()):
        raise VerificationError("a refused access is not among alpen's verified entries")
    entry = ctx.write_evidence("access-granted.json", _entry_bytes(ctx.home, home_j, granted.log_index))
    log_dir = ensure_access_log(ctx.home, home_j).paths.public
    approved = Claim(
        id="residency.approved-access-logged",
        promise=RESIDENT,
        status=Status.PROVED,
        check=f"{STAFF} ({STAFF_COUNTRY}) read alpen's {RESOURCE} ({len(rows)} rows) under an approval "
        f"alpen's admin signed for 4 hours; the access, with that approval, was logged as entry "
        f"{granted.log_index} of {home_j}'s own access log, and that entry is proved included under the access "
        f"log's key as alpen pinned it",
        evidence=ctx.rel(entry),
        recheck=ctx.overt(
            "log",
            "verify",
            "--log",
            log_dir,
            "--vkey",
            alpen.vkey(home_j),
            "--entry",
            entry,
            "--index",
            granted.log_index,
        ),
        facts={"access": granted.to_dict()},
    )
    said = "; ".join(f"with {why}: entry {i}" for why, i in refusals.items())
    verified = Claim(
        id="residency.customer-verified-access-log",
        promise=RESIDENT,
        status=Status.PROVED,
        check=f"the same staff member was refused and each refusal logged ({said}); alpen then checked "
        f"{home_j}'s access log itself, under the key it pinned and with its own copy of its admin key: the "
        f"checkpoint, each of its {len(report.entries)} entries' inclusion, and that the one granted access "
        f"carries an approval its own key signed",
        evidence=ctx.rel(alpen.folder / "approval.json"),
        recheck=_access_log_command(ctx, alpen, home_j),
        facts={"refusals": dict(refusals), "report": report.to_dict()},
    )
    return approved, verified


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _switch_in_main_log(ctx: DemoContext, c: _Customer, report: AccessLogReport) -> int:
    """The main-log index the switch step names, checked: the entry there, read under the pinned policy, is a
    signed statement naming the tenant and CH."""
    switched = [
        e.entry.detail
        for e in report.entries
        if e.entry.kind == "migration-step" and "main log index" in e.entry.detail
    ]
    found = re.search(r"main log index (\d+)", switched[-1]) if switched else None
    if found is None:
        raise VerificationError(f"no logged switch step names a main-log entry: {switched}")
    index = int(found.group(1))
    client = ctx.client()
    tree = client.update().checkpoint
    size = tree.checkpoint.tree_size
    entry = client.entries(index + 1, start=index)[0]
    client.verify_inclusion(entry, index, tree)
    payload = Envelope.from_bytes(entry).payload.decode()
    if c.tenant.id not in payload or f'"{CH}"' not in payload:
        raise VerificationError(
            f"main log entry {index} (of {size}) does not record {c.tenant.id} moving to CH"
        )
    return index


def _digests(home: Home, j: str, c: _Customer) -> dict[str, str]:
    with open_store(home, j) as store:
        return store.batch_digests(c.tenant.id)


def _migration_claims(
    ctx: DemoContext, servers: _Servers, customers: Mapping[str, _Customer], v1: StoredVersion
) -> tuple[Claim, Claim]:
    maple = customers[MIGRATED]
    source = maple.tenant.jurisdiction
    first = send_batch(servers.url(source), maple.token, _batch(MIGRATED, 120))
    if first.jurisdiction != source:
        raise VerificationError(f"maple's batch landed in {first.jurisdiction}")
    held = _digests(ctx.home, source, maple)
    v2, diff = RegistryIssuer.of_home(ctx.home).change({maple.tenant.country: CH})
    moved = [(m.country, m.from_jurisdiction, m.to_jurisdiction) for m in diff.moved]
    if moved != [(maple.tenant.country, source, CH)]:
        raise VerificationError(f"registry v2 moved {moved}")
    report = migrate(ctx.home)
    if report.exit_code != 0 or [r.tenant_id for r in report.results] != [maple.tenant.id]:
        raise VerificationError(f"the migration did not move exactly maple: {report.to_dict()}")
    with open_directory(ctx.home) as directory:
        now_home = directory.tenant(maple.tenant.id).jurisdiction
    arrived, left = _digests(ctx.home, CH, maple), _digests(ctx.home, source, maple)
    if now_home != CH or arrived != held or left:
        raise VerificationError(f"maple is homed in {now_home}; CH holds {arrived}, {source} still {left}")
    after = send_batch(servers.ch, maple.token, _batch(MIGRATED, 30, round_=2))
    refused = _misrouted(servers.rest, maple, _batch(MIGRATED, 30, round_=3))
    steps = {j: _customer_check(ctx, maple, j) for j in (source, CH)}
    switch_index = _switch_in_main_log(ctx, maple, steps[CH])
    logged = {
        j: [e.entry.reason for e in r.entries if e.entry.kind == "migration-step"] for j, r in steps.items()
    }
    if any(not s for s in logged.values()):
        raise VerificationError(f"the migration steps are not in both access logs: {logged}")
    versions = registry_store(ctx.home)
    registry = Claim(
        id="residency.registry-logged",
        promise=RESIDENT,
        status=Status.PROVED,
        check=f"the jurisdiction registry is signed by the release key and logged: v1 (log entry {v1.log_index}) "
        f"keeps the promise (US, the EU/EEA, GB, JP, KR, SG and AU, and CH, to CH; every other country its "
        f"own jurisdiction); v2 (log entry {v2.log_index}) moves "
        + ", ".join(f"{c} from {a} to {b}" for c, a, b in moved)
        + " and nothing else, as overt residency registry diff shows",
        evidence=ctx.rel(versions.version_path(2)),
        recheck=ctx.log_verify("--entry", versions.version_path(2), "--index", v2.log_index),
        facts={"diff": diff.to_dict(), "v1_index": v1.log_index, "v2_index": v2.log_index},
    )
    migration = Claim(
        id="residency.migrated-after-registry-change",
        promise=RESIDENT,
        status=Status.PROVED,
        check=f"overt residency migrate moved maple from {source} to CH: froze it, copied its "
        f"{_count(len(held), 'batch', 'batches')}, verified each by SHA-256 in CH, switched its home (main log "
        f"entry {switch_index}, proved included under the pinned policy and naming maple's tenant id and CH), "
        f"purged {source}'s copy and unfroze it; each step is in both access logs "
        f"({source}: {len(logged[source])} entries, CH: {len(logged[CH])}), which maple verified. Its next "
        f"batch landed in CH ({after.events} events); the process for {source} refused the one after (421)",
        evidence=ctx.rel(maple.folder),
        recheck=_access_log_command(ctx, maple, CH),
        facts={
            "migration": report.to_dict(),
            "batches": held,
            "steps": logged,
            "refused": str(refused),
        },
    )
    return registry, migration


def residency_stage(ctx: DemoContext) -> Stage:
    v1 = _registry(ctx)
    for j in STORES:
        add_store(ctx.home, j, JurisdictionConfig())
    customers = _customers(ctx)
    with _serving(ctx.home) as servers:
        landing = _landing_claims(ctx, servers, customers)
        accesses = _access_claims(ctx, customers)
        migration = _migration_claims(ctx, servers, customers, v1)
    return Stage(
        name="residency",
        title="telemetry kept in its jurisdiction",
        setup="the vendor issues the jurisdiction registry (v1), sets up SQLite stores and access logs for "
        f"{', '.join(STORES)}, and signs up four customers ("
        + ", ".join(f"{n} in {c}" for n, c in TENANTS.items())
        + "), each with its own admin key; two overt serve --telemetry-only processes take telemetry on loopback, one serving "
        "CH and one the other jurisdictions",
        claims=(migration[0], *landing, *accesses, migration[1]),
    )
