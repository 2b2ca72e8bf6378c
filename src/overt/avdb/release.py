"""Releasing an AV database: escrow the rule tree, audit it, refuse unwaived findings, build, sign, publish.

In order:
1. the rule tree is escrowed as a canonical snapshot (the escrow is logged, signed by the builder key);
2. the auditor (:mod:`overt.avdb.audit`) runs over it, canaries on rules new or changed since the last
   released version. The full report (every finding) is a canonical JSON file published beside the
   ``avdb-audit/v1`` statement signed by the auditor key and logged; the statement carries it by digest (its
   subjects are the rule source and the report file, its predicate only counts), so a tree with thousands of
   findings still fits the log's entry limit. Whoever reads the findings checks the file against the signed
   digest first (:func:`read_report`);
3. every *blocking* finding needs a waiver: an ``avdb-waiver/v1`` statement signed by the auditor key, logged,
   naming the finding id and the reason (``overt avdb waive``). Otherwise the release is refused. Advisory
   findings (compiler notices, ``self-name``) are reported and need none;
4. versions are monotonic per database name;
5. the database archive (:mod:`overt.avdb.package`) gets SLSA provenance signed by the builder key and
   logged, whose subject is the archive's SHA-256 (the only thing endpoints trust);
6. ``public/avdb/<name>/<version>.avdb`` and its provenance, audit and manifest are published.

Layout under ``public/avdb/``::

    <name>/<version>.avdb                 the database
    <name>/<version>.provenance.dsse.json SLSA provenance (builder key), logged
    <name>/audits/<source-sha256>.dsse.json   audit statement (auditor key), logged
    <name>/audits/<source-sha256>.report.json the full audit report, named by digest in that statement
    <name>/index.json                     released versions: version, digest, provenance log index
    waivers/<finding-id>.dsse.json        waivers (auditor key), logged
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt import jsonio
from overt.atomic import atomic_write
from overt.attest.dsse import Envelope
from overt.attest.provenance import BuildDefinition, Builder, BuildMetadata, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor, Statement, format_timestamp
from overt.avdb.audit import SOURCE_PROBLEMS, RuleAuditReport, audit
from overt.avdb.compile import compiled_if_deterministic
from overt.avdb.findings import BLOCKING, Finding
from overt.avdb.markings import Markings
from overt.avdb.package import build_database, read_database, yara_x_version
from overt.avdb.rules import load_rules
from overt.errors import ConfigError, FormatError, PolicyError, StorageError, UsageError, VerificationError
from overt.keys.context import ConveyorContext
from overt.keys.jurisdiction import AVDB_AUDIT_V1, AVDB_WAIVER_V1, Issuer
from overt.keys.signing import Signed
from overt.source.escrow import Escrow, EscrowEntry
from overt.source.snapshot import SnapshotFile

BUILD_TYPE = "https://overt.dev/avdb/build/v1"
# Audit reports and waivers are issued here only, never signed on request (overt.keys.jurisdiction).
_AUDIT_ISSUER = Issuer(AVDB_AUDIT_V1)
_WAIVER_ISSUER = Issuer(AVDB_WAIVER_V1)
MAX_REPORT = 256 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Released:
    name: str
    version: int
    digest: str
    path: Path
    source: EscrowEntry
    audit: RuleAuditReport
    audit_signed: Signed
    provenance: Signed
    waived: tuple[str, ...]
    compiled: bool

    def to_dict(self) -> dict[str, Any]:
        """What ``overt avdb build --json`` prints."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.digest,
            "path": str(self.path),
            "provenance_log_index": self.provenance.receipt.index,
            "audit_log_index": self.audit_signed.receipt.index,
            "waived": list(self.waived),
            "compiled_rules": self.compiled,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Audited:
    """An escrowed, audited rule tree: its escrow entry, the report, the logged report statement and the
    blocking findings no waiver covers yet (a release is refused while any remain)."""

    source: EscrowEntry
    report: RuleAuditReport
    signed: Signed
    unwaived: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        """What ``overt avdb audit --json`` prints: the report's predicate fields beside the source digest,
        the report's log index and the unwaived finding ids."""
        return {
            "source": self.source.sha256,
            "audit_log_index": self.signed.receipt.index,
            **self.report.to_predicate(),
            "blocking": sum(f.severity == BLOCKING for f in self.report.findings),
            "unwaived": [f.id for f in self.unwaived],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Waived:
    """A waiver signed by the auditor key and logged."""

    finding_id: str
    auditor_keyid: str
    signed: Signed

    def to_dict(self) -> dict[str, Any]:
        return {"finding": self.finding_id, "log_index": self.signed.receipt.index}


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    audit: RuleAuditReport
    audit_signed: Signed
    unwaived: tuple[Finding, ...]


class AvdbStore:
    def __init__(self, public: Path) -> None:
        self.root = public / "avdb"

    def index(self, name: str) -> list[dict[str, Any]]:
        path = self.root / name / "index.json"
        if not path.exists():
            return []
        versions = jsonio.load_object(path.read_bytes(), "avdb index").get("versions", [])
        if not isinstance(versions, list):
            raise ConfigError(f"{path} is broken")
        return versions

    def latest(self, name: str) -> dict[str, Any] | None:
        versions = self.index(name)
        return max(versions, key=lambda v: v["version"]) if versions else None

    def database_path(self, name: str, version: int) -> Path:
        return self.root / name / f"{version}.avdb"

    def waiver_ids(self) -> set[str]:
        d = self.root / "waivers"
        return {p.name.removesuffix(".dsse.json") for p in d.glob("*.dsse.json")} if d.is_dir() else set()

    def report_path(self, name: str, source_sha256: str) -> str:
        """Where the full report of an audit of the rule tree ``source_sha256`` is, relative to ``public/``."""
        return f"avdb/{name}/audits/{source_sha256}.report.json"

    def findings(self, name: str) -> dict[str, dict[str, Any]]:
        """Every finding of every stored audit report of ``name``, by id (each report checked against the
        digest its stored statement names)."""
        out: dict[str, dict[str, Any]] = {}
        d = self.root / name / "audits"
        for p in sorted(d.glob("*.dsse.json")) if d.is_dir() else []:
            st = Statement.from_bytes(Envelope.from_bytes(p.read_bytes()).payload)
            for f in read_report(self, name, st):
                out[f["id"]] = f
        return out


def report_bytes(report: RuleAuditReport, *, name: str, source: EscrowEntry) -> bytes:
    """The full audit report as published: canonical JSON, the same bytes for the same audit."""
    document = {
        "database": name,
        "source": {"name": source.name, "sha256": source.sha256, "dirHash": source.dir_hash},
        **report.to_predicate(),
        "blocking": sum(f.severity == BLOCKING for f in report.findings),
    }
    return jsonio.dump(document) + b"\n"


def read_report(store: AvdbStore, name: str, statement: Statement) -> tuple[dict[str, Any], ...]:
    """The findings of the report an audit statement names, after checking the file against it.

    1. the statement names the report file of its own rule source as a subject, with a SHA-256;
    2. the published file has that SHA-256 (VerificationError otherwise: it was altered after signing);
    3. its findings are a list of objects, and their numbers are the statement's counts.
    """
    p = statement.predicate
    sources = [s.digest.get("sha256", "") for s in statement.subject if not s.name.endswith(".report.json")]
    expected = {store.report_path(name, sha) for sha in sources if sha}
    named = [s for s in statement.subject if s.name in expected and p.get("report") == s.name]
    if len(named) != 1 or "sha256" not in named[0].digest:
        raise VerificationError(f"the audit statement of {name} names no report file of its rule source")
    subject = named[0]
    path = store.root.parent / subject.name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StorageError(f"the audit report {path} cannot be read ({e.strerror})") from e
    if hashlib.sha256(data).hexdigest() != subject.digest["sha256"]:
        raise VerificationError(
            f"the audit report {path} is not the one its signed statement names: it was altered after signing",
            expected=subject.digest["sha256"],
            got=hashlib.sha256(data).hexdigest(),
        )
    findings = jsonio.load_object(data, "audit report", max_size=MAX_REPORT).get("findings")
    if not isinstance(findings, list) or not all(isinstance(f, dict) and "id" in f for f in findings):
        raise VerificationError(f"the audit report {path} holds no list of findings")
    blocking = sum(f.get("severity", BLOCKING) == BLOCKING for f in findings)
    if (p.get("findings"), p.get("blocking")) != (len(findings), blocking):
        raise VerificationError(f"the audit report {path} does not hold the findings its statement counts")
    return tuple(findings)


def _check_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ConfigError(f"database name {name!r} may hold letters, digits, '-', '_' and '.'")
    return name


def _check_version(store: AvdbStore, *, name: str, version: int) -> None:
    if version < 1:
        raise UsageError(f"database version {version} is not a positive integer")
    latest = store.latest(name)
    if latest is not None and version <= latest["version"]:
        raise PolicyError(
            f"database versions are monotonic: {name} is already at version {latest['version']}"
        )


def audit_rules(
    store: AvdbStore,
    escrow: Escrow,
    files: list[SnapshotFile],
    *,
    name: str,
    context: ConveyorContext,
    markings: Markings | None = None,
) -> Audited:
    """Escrow the rule tree (builder key), audit it against the last released version, sign and log the
    report (auditor key); the findings no stored waiver covers are ``unwaived``."""
    _check_name(name)
    auditor = context.auditor_key()
    service = context.service
    source, _ = escrow.add_source(files, name=f"avdb-{name}-rules", service=service, key=context.builder)
    rules = load_rules(files, strict=False)
    previous = None
    latest = store.latest(name)
    if latest is not None:
        previous = read_database(store.database_path(name, latest["version"]).read_bytes()).rules()
    report = audit(rules, previous=previous, markings=markings)
    full = report_bytes(report, name=name, source=source)
    report_path = store.report_path(name, source.sha256)
    statement = Statement(
        subject=(
            ResourceDescriptor(
                name=source.name, digest={"sha256": source.sha256, "dirHash": source.dir_hash}
            ),
            ResourceDescriptor(name=report_path, digest={"sha256": hashlib.sha256(full).hexdigest()}),
        ),
        predicate_type=AVDB_AUDIT_V1,
        predicate={
            "database": name,
            "jurisdiction": context.jurisdiction,
            "escrowLogIndex": source.log_index,
            "time": format_timestamp(service.now()),
            "rulesAudited": report.rules_audited,
            "newOrChanged": report.new_or_changed,
            "canaries": report.canaries,
            "findings": len(report.findings),
            "blocking": sum(f.severity == BLOCKING for f in report.findings),
            "report": report_path,
        },
    )
    signed = service.issue(auditor, statement, issuer=_AUDIT_ISSUER)
    # The report before its statement: a reader never finds a statement whose report is not there yet.
    atomic_write(store.root.parent / report_path, full)
    atomic_write(store.root / name / "audits" / f"{source.sha256}.dsse.json", signed.entry)
    waivers = store.waiver_ids()
    unwaived = tuple(f for f in report.findings if f.severity == BLOCKING and f.id not in waivers)
    return Audited(source=source, report=report, signed=signed, unwaived=unwaived)


def build_archive(files: list[SnapshotFile], *, name: str, version: int) -> tuple[bytes, bool]:
    """The database archive a rule tree gives, and whether it carries compiled rules (two sandboxed
    compilations agreed): what a release signs, and what an independent rebuilder makes again from escrow."""
    rules = load_rules(files, strict=True)
    compiled = compiled_if_deterministic(dict(rules.yara_files))
    return build_database(rules, name=name, version=version, compiled=compiled), compiled is not None


def release(
    store: AvdbStore,
    escrow: Escrow,
    files: list[SnapshotFile],
    *,
    name: str,
    version: int,
    context: ConveyorContext,
    markings: Markings | None = None,
) -> Released | Refused:
    """Audit, refuse unwaived findings, then build, sign (builder key), log and publish version ``version``.

    The version is checked first (a positive integer, above the latest released one): the audit escrows the
    rule tree and logs its report, which a version that can never be released must not leave behind.
    """
    _check_version(store, name=_check_name(name), version=version)
    audited = audit_rules(store, escrow, files, name=name, context=context, markings=markings)
    source, report, audit_signed = audited.source, audited.report, audited.signed
    if audited.unwaived:
        return Refused(audit=report, audit_signed=audit_signed, unwaived=audited.unwaived)
    _check_version(store, name=name, version=version)  # a release made meanwhile moved the latest version
    data, compiled = build_archive(files, name=name, version=version)
    digest = hashlib.sha256(data).hexdigest()
    waived = tuple(f.id for f in report.findings if f.severity == BLOCKING)
    service = context.service
    now = service.now()
    prov = Provenance(
        build_definition=BuildDefinition(
            build_type=BUILD_TYPE,
            external_parameters={
                "source": {
                    "uri": f"escrow/{source.sha256}",
                    "digest": {"sha256": source.sha256, "dirHash": source.dir_hash},
                },
                "database": name,
                "version": version,
            },
            internal_parameters={
                "jurisdiction": context.jurisdiction,
                "auditLogIndex": audit_signed.receipt.index,
                "waivedFindings": list(waived),
                "compiledRules": compiled,
                # Compiled twice at once, each in its own build sandbox (overt.avdb.compile).
                "compiler": {"yaraX": yara_x_version(), "sandbox": "bubblewrap", "runs": 2},
            },
            resolved_dependencies=(
                ResourceDescriptor(
                    name=source.name,
                    uri=f"escrow/{source.sha256}",
                    digest={"sha256": source.sha256, "dirHash": source.dir_hash},
                ),
            ),
        ),
        run_details=RunDetails(
            builder=Builder(id=context.builder_id),
            metadata=BuildMetadata(
                started_on=format_timestamp(now), finished_on=format_timestamp(service.now())
            ),
        ),
    )
    file_name = f"{name}-{version}.avdb"
    signed = service.sign(
        context.builder, prov.statement((ResourceDescriptor(name=file_name, digest={"sha256": digest}),))
    )
    target = store.database_path(name, version)
    atomic_write(target, data)
    atomic_write(target.with_name(f"{version}.provenance.dsse.json"), signed.entry)
    versions = [
        *store.index(name),
        {"version": version, "sha256": digest, "provenanceLogIndex": signed.receipt.index},
    ]
    atomic_write(store.root / name / "index.json", jsonio.dump({"name": name, "versions": versions}) + b"\n")
    return Released(
        name=name,
        version=version,
        digest=digest,
        path=target,
        source=source,
        audit=report,
        audit_signed=audit_signed,
        provenance=signed,
        waived=waived,
        compiled=compiled,
    )


def waive(
    store: AvdbStore,
    *,
    name: str,
    finding_id: str,
    reason: str,
    context: ConveyorContext,
) -> Waived:
    """Sign and log a waiver for one finding of a stored audit of ``name``."""
    finding = store.findings(name).get(finding_id)
    if finding is None:
        raise ConfigError(f"no finding {finding_id} in the audits of {name}; see 'overt avdb audit'")
    if finding["check"] in SOURCE_PROBLEMS:
        raise PolicyError(
            f"finding {finding_id} is a source problem ({finding['check']}: {finding['message']}): a database "
            "cannot be built from that rule, so no waiver lifts it; fix the rule"
        )
    if not reason.strip():
        raise FormatError("a waiver needs a reason")
    statement = Statement(
        subject=(
            ResourceDescriptor(
                name=f"finding:{finding_id}",
                digest={"sha256": hashlib.sha256(finding_id.encode()).hexdigest()},
            ),
        ),
        predicate_type=AVDB_WAIVER_V1,
        predicate={
            "database": name,
            "findingId": finding_id,
            "ruleId": finding["ruleId"],
            "check": finding["check"],
            "message": finding["message"],
            "reason": reason,
            "jurisdiction": context.jurisdiction,
            "time": format_timestamp(context.service.now()),
        },
    )
    auditor = context.auditor_key()
    signed = context.service.issue(auditor, statement, issuer=_WAIVER_ISSUER)
    atomic_write(store.root / "waivers" / f"{finding_id}.dsse.json", signed.entry)
    return Waived(finding_id=finding_id, auditor_keyid=auditor.keyid, signed=signed)
