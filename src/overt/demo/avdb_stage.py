"""Demo stage "AV databases": an audited release, a refused document-hunting rule, a rule-level diff for
reviewers, an endpoint that installs only verified, logged databases (v2 through a delta), and a scan.

The scan folder holds a classified-looking memo that the refused rule matches (checked here with yara-x), so
"the installed database does not flag it" is a check that could have failed.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from overt.avdb.audit import audit
from overt.avdb.delta import make_delta, rule_diff
from overt.avdb.install import install, installed, update
from overt.avdb.markings import load_markings
from overt.avdb.package import read_database
from overt.avdb.release import AvdbStore, Refused, Released, release
from overt.avdb.scan import scan_paths
from overt.demo.claims import Claim, Promise, Stage, Status
from overt.demo.context import DemoContext
from overt.errors import VerificationError
from overt.keys.registry import KeyRecord, Role
from overt.keys.signing import Signed
from overt.source.escrow import read_directory
from overt.source.snapshot import SnapshotFile

HUNTING = Promise.NO_DOCUMENT_HUNTING
NAME = "demo"
REGIONAL = "regional"
# The EICAR test file, assembled here (reversed) so that no file of overt contains it whole.
EICAR = "*H+H$!ELIF-TSET-SURIVITNA-DRADNATS-RACIE$}7)CC7)^P(45XZP\\4[PA@%P!O5X"[::-1].encode()
MEMO = b"%PDF-1.4\n1 0 obj << /Title (Memo) >> endobj\nTOP SECRET - for the ministry only\n%%EOF\n"
HASHES_HEADER = (
    "# version: 1\n# author: overt demo\n# date: 2026-11-28\n# description: demo hashes\n"
    "# reference: https://overt.example\n"
)


def _rule(name: str, rule_id: str, strings: str, condition: str, version: int = 1) -> str:
    meta = {
        "id": rule_id,
        "version": str(version),
        "author": "overt demo",
        "date": "2026-11-28",
        "description": f"demo rule {name}",
        "reference": "https://overt.example/rules",
    }
    lines = "\n".join(f'    {k} = "{v}"' for k, v in meta.items())
    return f"rule {name} {{\n  meta:\n{lines}\n  strings:\n{strings}\n  condition:\n    {condition}\n}}\n"


EICAR_RULE = _rule("EICAR_Test_File", "OVT-0001", '    $e = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"', "$e at 28")
DROPPER = _rule("Dropper_Alpha", "OVT-0002", '    $a = "alpha-dropper-config-v1"', "$a")
DROPPER_2 = _rule(
    "Dropper_Alpha",
    "OVT-0002",
    '    $a = "alpha-dropper-config-v1"\n    $b = "alpha-dropper-config-v2"',
    "any of them",
    version=2,
)
BETA = _rule("Dropper_Beta", "OVT-0003", '    $a = "beta-loader-stage2"', "$a")
# Planted in a second database, "regional", under a malware-sounding name: it hunts documents naming a project
# the vendor's marking list does not know. The vendor's audit passes it; a customer's private codename list
# catches it before anyone installs that database.
CODENAME = "BLUE HERON"
PLANTED = _rule("Heron_Loader_Config", "OVT-0004", '    $a = "blue heron" nocase wide ascii', "$a")
HUNTER = _rule(
    "Memo_Classified",
    "OVT-0666",
    '    $pdf = "%PDF"\n    $m = "TOP SECRET"\n    $w = "ministry"',
    "$pdf at 0 and $m and $w",
)
HASHES = HASHES_HEADER + f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Overt.Demo.EICAR\n"


class _Releaser:
    """Releases rule trees of the demo database with the conveyor's current keys."""

    def __init__(self, ctx: DemoContext) -> None:
        now = datetime.now(UTC)
        self.ctx = ctx
        self.builder: KeyRecord = ctx.home.registry.current(Role.BUILDER, now)
        self.auditor: KeyRecord = ctx.home.registry.current(Role.AUDITOR, now)
        self.store = AvdbStore(ctx.home.paths.public)

    def tree(self, name: str, rules: str) -> list[SnapshotFile]:
        d = self.ctx.root / "avdb-rules" / name
        for rel, text in {"yara/main.yar": rules, "hashes/main.hdb": HASHES}.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
        return read_directory(d)

    def release(self, name: str, rules: str, version: int, database: str = NAME) -> Released | Refused:
        h = self.ctx.home
        return release(
            self.store,
            h.escrow,
            self.tree(name, rules),
            name=database,
            version=version,
            context=h.conveyor_context(auditor=True),
        )

    def audit_file(self, signed: Signed) -> Path:
        """The published audit report; it must be the very envelope the log holds."""
        client = self.ctx.client()
        client.verify_inclusion(signed.entry, signed.receipt.index, client.update().checkpoint)
        for path in (self.store.root / NAME / "audits").glob("*.dsse.json"):
            if path.read_bytes() == signed.entry:
                return path
        raise VerificationError(f"the audit report logged at index {signed.receipt.index} is not published")


def _clean(result: Released | Refused, version: int) -> Released:
    if not isinstance(result, Released) or result.audit.blocking:
        raise VerificationError(f"the clean demo database v{version} was refused or has audit findings")
    return result


def _released(r: _Releaser, v1: Released) -> Claim:
    audit = r.audit_file(v1.audit_signed)
    compiled = (
        "two compilations of its rules in separate bubblewrap sandboxes gave the same bytes, so endpoints get "
        "the compiled rules"
        if v1.compiled
        else "two sandboxed compilations of its rules differed, so endpoints compile the rules themselves"
    )
    return Claim(
        id="avdb.released-after-audit",
        promise=HUNTING,
        status=Status.PROVED,
        check=f"AV database {NAME} v1 was released only after its rule sources were escrowed and audited with no "
        f"findings (signed audit report, log entry {v1.audit_signed.receipt.index}); the database, sha256 "
        f"{v1.digest[:16]}, was then signed (provenance, log entry {v1.provenance.receipt.index}); {compiled}",
        evidence=r.ctx.rel(audit),
        recheck=r.ctx.overt("attest", "verify", audit, "--key", r.ctx.public_key(r.auditor.keyid), "--json"),
        facts={
            "version": 1,
            "sha256": v1.digest,
            "audit_log_index": v1.audit_signed.receipt.index,
            "provenance_log_index": v1.provenance.receipt.index,
            "findings": 0,
            "compiled": v1.compiled,
        },
    )


def _hunting_refused(r: _Releaser) -> Claim:
    refused = r.release("v2-hunting", EICAR_RULE + DROPPER + HUNTER, 2)
    if not isinstance(refused, Refused):
        raise VerificationError("a database with a document-hunting rule was released")
    checks = sorted({f.check for f in refused.unwaived})
    rules = sorted({f.rule_id for f in refused.unwaived})
    if rules != ["OVT-0666"]:
        raise VerificationError(f"the audit blamed rules {rules}, not the hunting rule OVT-0666")
    audit = r.audit_file(refused.audit_signed)
    return Claim(
        id="avdb.document-hunting-refused",
        promise=HUNTING,
        status=Status.PROVED,
        check="a database adding rule OVT-0666, which matches PDF files containing 'TOP SECRET' and 'ministry', "
        f"was refused before anything was built or signed: the audit found {', '.join(checks)} "
        f"({len(refused.unwaived)} findings, none waived); the signed audit report is log entry "
        f"{refused.audit_signed.receipt.index}",
        evidence=r.ctx.rel(audit),
        recheck=r.ctx.overt("attest", "verify", audit, "--key", r.ctx.public_key(r.auditor.keyid), "--json"),
        facts={"rule_ids": rules, "checks": checks, "audit_log_index": refused.audit_signed.receipt.index},
    )


def _diffed(r: _Releaser, v1: Released, v2: Released) -> Claim:
    changes = rule_diff(read_database(v1.path.read_bytes()), read_database(v2.path.read_bytes()))
    seen = [(c.change, c.rule_id, len(c.findings)) for c in changes]
    if seen != [("changed", "OVT-0002", 0), ("added", "OVT-0003", 0)]:
        raise VerificationError(f"the v1 → v2 diff shows {seen}")
    return Claim(
        id="avdb.diff-for-reviewers",
        promise=HUNTING,
        status=Status.PROVED,
        check="reviewers see v1 → v2 rule by rule: OVT-0002 changed and OVT-0003 added, neither with an audit "
        "finding, and no other rule touched",
        evidence=r.ctx.rel(v2.path),
        recheck=r.ctx.overt("avdb", "diff", v1.path, v2.path),
        facts={"changes": [{"change": c, "rule_id": i} for c, i, _ in seen]},
    )


def _endpoint(r: _Releaser, v1: Released, v2: Released) -> Claim:
    ctx, agent, keys = r.ctx, r.ctx.root / "agent", [r.builder.key]
    install(agent, v1.path.read_bytes(), v1.provenance.entry, keys, log=ctx.client())
    delta = make_delta(read_database(v1.path.read_bytes()), read_database(v2.path.read_bytes()))
    delta_file = ctx.write_evidence("demo-1-2.delta", delta)
    full = v2.path.read_bytes()
    upd = update(agent, v2.provenance.entry, keys, deltas=[delta], fetch_full=lambda: full, log=ctx.client())
    if not upd.via_delta or installed(agent) != full:
        raise VerificationError(f"the endpoint did not reach v2 through the delta: {upd.fallback_reason}")
    provenance = v2.path.with_name("2.provenance.dsse.json")
    if provenance.read_bytes() != v2.provenance.entry:
        raise VerificationError(f"{provenance} is not the provenance the log holds")
    return Claim(
        id="avdb.endpoint-installs-only-logged",
        promise=Promise.NOTHING_SIGNED_IN_SECRET,
        status=Status.PROVED,
        check=f"the endpoint installed v1, then v2, each only after verifying the database's provenance "
        f"signature and finding the provenance in the log under the pinned policy; v2 arrived as a "
        f"{len(delta)}-byte delta (the full database is {len(full)} bytes) whose result matched the signed sha256",
        evidence=ctx.rel(delta_file),
        recheck=ctx.overt(
            "avdb",
            "install",
            v2.path,
            "--provenance",
            provenance,
            "--key",
            ctx.public_key(r.builder.keyid),
            "--log",
            ctx.home.log.paths.public,
            "--policy",
            ctx.pinned_policy,
            "--agent",
            ctx.root / "recheck-agent",
        ),
        facts={"delta_bytes": len(delta), "full_bytes": len(full), "via_delta": upd.via_delta},
    )


def _scanned(r: _Releaser) -> Claim:
    folder = r.ctx.root / "scan-me"
    (folder / "docs").mkdir(parents=True)
    (folder / "eicar.com").write_bytes(EICAR)
    (folder / "docs" / "notes.txt").write_text("nothing to see here\n")
    (folder / "docs" / "beta.bin").write_bytes(b"..beta-loader-stage2..")
    (folder / "docs" / "memo.pdf").write_bytes(MEMO)
    import yara_x  # here, as in overt.avdb: only the modules that compile or scan rules load the engine

    if not yara_x.compile(HUNTER).scan(MEMO).matching_rules:
        raise VerificationError(
            "the refused rule does not match the demo memo, so its absence proves nothing"
        )
    report = scan_paths(installed(r.ctx.root / "agent"), [folder])
    found = sorted(f"{Path(d.path).name}:{d.name}" for d in report.detections)
    expected = ["beta.bin:Dropper_Beta", "eicar.com:EICAR_Test_File", "eicar.com:Overt.Demo.EICAR"]
    if found != expected or report.exit_code != 1:
        raise VerificationError(f"the scan found {found} (exit code {report.exit_code})")
    return Claim(
        id="avdb.scan-finds-malware-not-documents",
        promise=HUNTING,
        status=Status.PROVED,
        check=f"overt scan with the installed v2 database flagged eicar.com and beta.bin in {report.files} files "
        "(exit code 1, as clamscan), and did not flag docs/memo.pdf, a memo marked TOP SECRET that the refused "
        "rule matches",
        evidence=r.ctx.rel(folder / "docs" / "memo.pdf"),
        recheck=r.ctx.overt("scan", folder, "--agent", r.ctx.root / "agent", exit_code=1),
        facts={"files": report.files, "detections": found, "exit_code": report.exit_code},
    )


def _customer_codenames(r: _Releaser, v2: Released) -> Claim:
    """A customer audits a released database's rule sources against a codename list of their own."""
    regional = _clean(r.release("regional-v1", EICAR_RULE + PLANTED, 1, database=REGIONAL), 1)
    codenames = r.ctx.root / "customer-audit" / "codenames.txt"
    codenames.parent.mkdir(parents=True, exist_ok=True)
    codenames.write_text(f"# the customer's own codenames: never sent to the vendor\n{CODENAME}\n")
    rules = read_database(regional.path.read_bytes()).rules()
    vendor = [f for f in regional.audit.blocking if f.rule_id == "OVT-0004"]
    mine = [f for f in audit(rules, markings=load_markings(codenames)).blocking if f.rule_id == "OVT-0004"]
    if vendor or not any(CODENAME in f.message for f in mine):
        raise VerificationError(
            f"the vendor's audit found {len(vendor)} and the customer's {len(mine)} findings on OVT-0004"
        )
    shown = next((f for f in mine if f.check == "sensitive-marking"), mine[0])
    installed_rules = read_database(v2.path.read_bytes()).rules()
    if audit(installed_rules, markings=load_markings(codenames)).blocking:
        raise VerificationError(f"the customer's codename list flags {NAME} v2 too")
    return Claim(
        id="avdb.customer-codenames",
        promise=HUNTING,
        status=Status.PROVED,
        check=f"the vendor released a second database, {REGIONAL} v1, whose audit with the vendor's marking list "
        f"passed; a customer audited the rule sources inside the published database on their own machine "
        f"against a private codename list (nothing signed, logged or sent) and found that rule OVT-0004 "
        f"'Heron_Loader_Config' hunts their codename ({shown.check}: {shown.message}), so they can refuse "
        f"to install it; the same audit of {NAME} v2, the database endpoints install, finds nothing",
        evidence=r.ctx.rel(regional.path),
        recheck=r.ctx.overt("avdb", "audit", "--local", regional.path, "--markings", codenames, exit_code=1),
        facts={"rule_id": "OVT-0004", "checks": sorted({f.check for f in mine}), "vendor_findings": 0},
    )


def avdb_stage(ctx: DemoContext) -> Stage:
    r = _Releaser(ctx)
    v1 = _clean(r.release("v1", EICAR_RULE + DROPPER, 1), 1)
    released = _released(r, v1)
    refused = _hunting_refused(r)
    v2 = _clean(r.release("v2", EICAR_RULE + DROPPER_2 + BETA, 2), 2)
    return Stage(
        name="avdb",
        title="AV databases",
        setup="YARA rules and ClamAV hash signatures are audited, packed, signed and logged; an endpoint "
        "installs and scans with them",
        claims=(
            released,
            refused,
            _diffed(r, v1, v2),
            _endpoint(r, v1, v2),
            _scanned(r),
            _customer_codenames(r, v2),
        ),
    )
