"""``overt avdb ...`` (import, audit, build, waive, install, diff, delta, update) and ``overt scan``.

Each command calls one function of :mod:`overt.avdb` and prints its result; ``--json`` is that result's
``to_dict()``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from overt.avdb.delta import diff_databases, write_delta
from overt.avdb.findings import BLOCKING, Finding
from overt.avdb.importer import DEFAULTS, import_tree
from overt.avdb.install import default_agent_dir, install, installed, update
from overt.avdb.local import audit_local
from overt.avdb.package import read_database
from overt.avdb.release import AvdbStore, Refused, audit_rules, release, waive
from overt.avdb.scan import scan_paths
from overt.cli.common import (
    HomeOpt,
    JsonOpt,
    PolicyOpt,
    StateOpt,
    TofuOpt,
    Trust,
    VkeyOpt,
    console,
    emit_json,
    log_client_if,
    logged_at,
    progress,
    read_file,
    status,
    styled,
)
from overt.errors import Error, PolicyError, StorageError, UsageError
from overt.home import Home, resolve_home
from overt.keys.registry import load_public_keys
from overt.source.escrow import read_source

app = typer.Typer(
    help="AV databases: audit rules, build and sign databases, waive findings, install.", no_args_is_help=True
)

SCAN_ERROR = 2  # clamscan: an error occurred

NameOpt = Annotated[str, typer.Option(help="database name")]
AgentOpt = Annotated[
    Path | None,
    typer.Option(help="endpoint agent directory (default $OVERT_AGENT_DIR, else $XDG_DATA_HOME/overt/agent)"),
]


def agent_dir(path: Path | None) -> Path:
    return path if path is not None else default_agent_dir()


def _findings_table(findings: tuple[Finding, ...], unwaived: tuple[Finding, ...] | None) -> Table:
    """Findings with their severity and, for a signed audit (``unwaived`` not None), whether each blocking
    one is waived (advisory findings need no waiver)."""
    # The finding id is what 'overt avdb waive' takes: never cut.
    columns = ["rule", "check", "severity", "message"] + ([] if unwaived is None else ["waived"])
    table = Table(Column("finding", no_wrap=True), *columns)
    open_ids = {f.id for f in unwaived or ()}
    for f in findings:
        severity = styled(f.severity, "red" if f.severity == BLOCKING else "yellow")
        row: list[str | Text] = [f.id, f.rule_id, f.check, severity, f.message]
        if unwaived is not None:
            waived = "-" if f.severity != BLOCKING else styled("no", "red") if f.id in open_ids else "yes"
            row.append(waived)
        table.add_row(*row)
    return table


@app.command("import")
def import_cmd(
    src: Annotated[Path, typer.Argument(help="the collection: a directory of .yar/.yara files")],
    dest: Annotated[Path, typer.Argument(help="the rule tree to write (a new or empty directory)")],
    source: Annotated[str, typer.Option(help="the collection's name, used in ids and default metadata")],
    json: JsonOpt = False,
) -> None:
    """Bring a third-party YARA collection into an overt rule tree, mapping its metadata to overt's.

    Each rule is kept verbatim except its meta section, where overt's required fields are added (from the
    collection's own keys, else stated defaults). Files of include lines only are skipped; rules needing a
    module yara-x lacks, rules that do not compile, and second rules of one name are left out: all listed.
    Exit 0: the tree was written (even if rules were left out; see the report); 2: bad input."""
    with progress(json=json) as bar:
        task = bar.add_task("importing", total=None)
        report = import_tree(
            src,
            dest,
            source=source,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if json:
        emit_json(report.to_dict())
        return
    console.print(
        f"imported {report.rules_written} of {report.rules_read} rules from {report.files_read} files "
        f"into {report.dest} ({report.files_written} files)"
    )
    for name, n in sorted(report.defaults.items()):
        console.print(f"  {name}: the default {DEFAULTS[name]} for {n} rule(s)")
    for mapped, n in sorted(report.mapped.items()):
        field, key = mapped.split("<-")
        console.print(f"  {field}: taken from {key} for {n} rule(s)")
    for s in report.skipped:
        console.print(f"  skipped {s.file}: {s.message}")
    for s in report.changed:
        console.print(f"  changed {s.file}: {s.message}")
    for s in report.left_out:
        console.print(
            Text.assemble(
                "  ", ("left out", "yellow"), f" {s.file}{' ' + s.rule if s.rule else ''}: {s.message}"
            )
        )


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _audit_local(tree: Path, markings: Path | None, *, json: bool) -> None:
    """``overt avdb audit --local``: the findings, and nothing signed, logged or written."""
    local = audit_local(tree, markings=markings)
    report = local.report
    if json:
        emit_json(local.to_dict())
    else:
        console.print(
            f"audited {_count(report.rules_audited, 'rule')} of {local.tree} locally with "
            f"{_count(local.marking_count, 'marking')} "
            f"from {local.markings}; nothing was signed, logged or written"
        )
        if report.findings:
            console.print(_findings_table(report.findings, None))
        console.print(
            styled(f"{len(local.blocking)} blocking finding(s)", "red")
            if local.blocking
            else styled(f"no blocking finding ({len(report.findings)} advisory)", "green")
        )
    if local.blocking:
        raise typer.Exit(1)


AuditorKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--auditor-key", help="keyid (or prefix) of the auditor key to sign with, if there are several"
    ),
]


@app.command("audit")
def audit_cmd(
    rules: Annotated[Path | None, typer.Argument(help="rule tree (directory or tarball)")] = None,
    name: NameOpt = "overt",
    home: HomeOpt = None,
    auditor_key: AuditorKeyOpt = None,
    local: Annotated[
        Path | None,
        typer.Option(
            help="audit this rule tree (directory, tarball or .avdb) here: no home, no keys; nothing is "
            "signed, logged or written"
        ),
    ] = None,
    markings: Annotated[
        Path | None,
        typer.Option(
            help="with --local: your own marking list, audited with the packaged one (markings.toml schema, or "
            "one marking per line)"
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Escrow and audit a rule tree; the signed report is logged. Exit 1 if blocking findings are unwaived.

    With --local DIR [--markings FILE]: audit DIR here with the packaged marking list and your own, without a
    home or keys; exit 0 no blocking finding, 1 blocking findings, 2 bad input."""
    if local is not None:
        if rules is not None:
            raise UsageError("give the rule tree either as RULES or as --local DIR, not both")
        if home is not None or auditor_key is not None:
            raise UsageError("--local uses no home and no keys: leave out --home and --auditor-key")
        _audit_local(local, markings, json=json)
        return
    if rules is None:
        raise UsageError("missing the rule tree: overt avdb audit RULES (or --local DIR --markings FILE)")
    if markings is not None:
        raise UsageError("--markings is for --local audits; the signed audit uses the vendor's marking list")
    h = Home(resolve_home(home))
    audited = audit_rules(
        AvdbStore(h.paths.public),
        h.escrow,
        read_source(rules),
        name=name,
        context=h.conveyor_context(auditor=True, auditor_key=auditor_key),
    )
    report = audited.report
    if json:
        emit_json(audited.to_dict())
    else:
        console.print(
            f"audited {_count(report.rules_audited, 'rule')} ({report.new_or_changed} new or changed, "
            f"{_count(report.canaries, 'canary', 'canaries')}); "
            f"report {logged_at(audited.signed.receipt.index)}"
        )
        if report.findings:
            console.print(_findings_table(report.findings, audited.unwaived))
        else:
            console.print(styled("no findings", "green"))
        console.print(
            f"the full report: {h.paths.public / AvdbStore(h.paths.public).report_path(name, audited.source.sha256)}"
        )
    if audited.unwaived:
        raise typer.Exit(1)


@app.command("build")
def build_cmd(
    rules: Annotated[Path, typer.Argument(help="rule tree (directory or tarball)")],
    version: Annotated[int, typer.Option(min=1, help="database version (monotonic, from 1)")],
    name: NameOpt = "overt",
    home: HomeOpt = None,
    auditor_key: AuditorKeyOpt = None,
    json: JsonOpt = False,
) -> None:
    """Audit, then build, sign and publish a database version; refused while findings are unwaived."""
    h = Home(resolve_home(home))
    store = AvdbStore(h.paths.public)
    with status("auditing and building", json=json):
        result = release(
            store,
            h.escrow,
            read_source(rules),
            name=name,
            version=version,
            context=h.conveyor_context(auditor=True, auditor_key=auditor_key),
        )
    if isinstance(result, Refused):
        if not json:
            console.print(_findings_table(result.unwaived, result.unwaived))
        raise PolicyError(
            f"release refused: {len(result.unwaived)} unwaived audit finding(s); the audit report is log entry "
            f"{result.audit_signed.receipt.index}. Fix the rules or 'overt avdb waive FINDING --reason ...'",
            findings=[f.id for f in result.unwaived],
            audit_log_index=result.audit_signed.receipt.index,
        )
    if json:
        emit_json(result.to_dict())
        return
    console.print(f"{result.name} version {result.version}: sha256 {result.digest}")
    console.print(
        f"  audit {logged_at(result.audit_signed.receipt.index)}, provenance "
        f"{logged_at(result.provenance.receipt.index)}"
    )
    console.print(f"  {result.path} (compiled rules {'included' if result.compiled else 'not included'})")


@app.command("waive")
def waive_cmd(
    finding: Annotated[str, typer.Argument(help="finding id from 'overt avdb audit'")],
    reason: Annotated[str, typer.Option(help="why this finding is acceptable; logged")],
    name: NameOpt = "overt",
    home: HomeOpt = None,
    auditor_key: AuditorKeyOpt = None,
    json: JsonOpt = False,
) -> None:
    """Waive one audit finding with a reason: a statement signed by the auditor key and logged."""
    h = Home(resolve_home(home))
    context = h.conveyor_context(auditor=True, auditor_key=auditor_key)
    waived = waive(AvdbStore(h.paths.public), name=name, finding_id=finding, reason=reason, context=context)
    if json:
        emit_json(waived.to_dict())
        return
    console.print(
        f"waiver for {waived.finding_id} signed by auditor key {waived.auditor_keyid[:16]}, "
        f"{logged_at(waived.signed.receipt.index)}"
    )


@app.command("install")
def install_cmd(
    database: Annotated[Path, typer.Argument(help="a .avdb file")],
    provenance: Annotated[Path, typer.Option(help="its provenance envelope (.dsse.json)")],
    key: Annotated[list[Path], typer.Option(help="trusted builder public key file(s)")],
    threshold: Annotated[int, typer.Option(help="distinct trusted keys required")] = 1,
    log: Annotated[
        str | None, typer.Option(help="require the provenance in this log (URL or directory)")
    ] = None,
    policy: PolicyOpt = None,
    vkey: VkeyOpt = None,
    trust_on_first_use: TofuOpt = False,
    state: StateOpt = None,
    agent: AgentOpt = None,
    json: JsonOpt = False,
) -> None:
    """Install a database on this endpoint if its provenance verifies and (with --log) is logged.

    With --log, the log's trust roots are yours, never the log's: --policy, --vkey, or --trust-on-first-use."""
    trust = Trust(policy=policy, vkey=vkey, trust_on_first_use=trust_on_first_use, state=state)
    client = log_client_if(log, trust)
    keys = [r.key for r in load_public_keys(key)]
    result = install(
        agent_dir(agent), read_file(database), read_file(provenance), keys, threshold=threshold, log=client
    )
    if json:
        emit_json(result.to_dict())
        return
    where = f", provenance in the log at index {result.log_index}" if result.log_index is not None else ""
    console.print(f"installed {result.name} version {result.version} (sha256 {result.digest}){where}")


def scan(
    paths: Annotated[list[Path], typer.Argument(help="files and directories to scan")],
    db: Annotated[str | None, typer.Option(help="installed database name (default: the only one)")] = None,
    jobs: Annotated[int | None, typer.Option(min=1, help="worker processes (default: every core)")] = None,
    agent: AgentOpt = None,
    json: JsonOpt = False,
) -> None:
    """Scan with the installed, verified database. Exit 0: clean, 1: found, 2: errors (as clamscan).

    As clamscan, something found is 1 even if another path failed; no database installed or any error before
    scanning is exit 2."""
    try:
        data = installed(agent_dir(agent), db)
        with progress(json=json) as bar:
            task = bar.add_task("scanning", total=None)
            report = scan_paths(
                data,
                paths,
                jobs=jobs,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except Error as failure:
        if failure.exit_code == SCAN_ERROR:
            raise
        # A database that no longer verifies is a damaged stored object: exit 2, never "found" (1).
        raise StorageError(f"cannot scan: {failure}", **failure.evidence) from failure
    if json:
        emit_json(report.to_dict())
    else:
        for d in report.detections:
            typer.echo(f"{d.where}: {d.name} FOUND")
        for p, why in report.errors:
            typer.echo(f"{p}: {why} ERROR")
        typer.echo("\n----------- SCAN SUMMARY -----------")
        typer.echo(f"Scanned files: {report.files}")
        typer.echo(f"Infected files: {len({d.path for d in report.detections})}")
        typer.echo(f"Data scanned: {report.bytes / 2**20:.2f} MiB")
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command("diff")
def diff_cmd(
    old: Annotated[Path, typer.Argument(help="older .avdb")],
    new: Annotated[Path, typer.Argument(help="newer .avdb")],
    json: JsonOpt = False,
) -> None:
    """Rule-level changes between two database versions, with the audit findings of each changed rule."""
    diff = diff_databases(old=read_database(read_file(old)), new=read_database(read_file(new)))
    if json:
        emit_json(diff.to_dict())
        return
    console.print(
        f"{diff.name}: version {diff.from_version} → {diff.to_version}, {len(diff.changes)} rule(s) changed"
    )
    for c in diff.changes:
        colour = {"added": "green", "removed": "red"}.get(c.change, "yellow")
        console.print(
            Text.assemble(
                (c.change, colour), f" {c.rule_id} ({c.old_version or '-'} → {c.new_version or '-'})"
            )
        )
        for f in c.findings:
            console.print(Text.assemble("    ", ("finding", "red"), f" {f.id} {f.check}: {f.message}"))
        for line in c.diff.splitlines()[:60]:
            typer.echo(f"    {line}")


@app.command("delta")
def delta_cmd(
    old: Annotated[Path, typer.Argument(help="version N-1 .avdb")],
    new: Annotated[Path, typer.Argument(help="version N .avdb")],
    out: Annotated[Path, typer.Option(help="where to write the delta")],
    json: JsonOpt = False,
) -> None:
    """Make the transport delta from version N-1 to N (never signed; endpoints check the result's digest)."""
    saved = write_delta(old=read_file(old), new=read_file(new), out=out)
    if json:
        emit_json(saved.to_dict())
        return
    console.print(f"wrote {saved.path}: {saved.size} bytes (the full database is {saved.full_size} bytes)")


@app.command("update")
def update_cmd(
    provenance: Annotated[Path, typer.Option(help="provenance of the target version (.dsse.json)")],
    key: Annotated[list[Path], typer.Option(help="trusted builder public key file(s)")],
    full: Annotated[
        Path, typer.Option(help="the full target database, used when the deltas fail or are missing")
    ],
    delta: Annotated[
        list[Path] | None, typer.Option(help="deltas from the installed version, in order")
    ] = None,
    log: Annotated[
        str | None, typer.Option(help="require the provenance in this log (URL or directory)")
    ] = None,
    policy: PolicyOpt = None,
    vkey: VkeyOpt = None,
    trust_on_first_use: TofuOpt = False,
    state: StateOpt = None,
    agent: AgentOpt = None,
    json: JsonOpt = False,
) -> None:
    """Update the installed database through deltas, falling back to the full database.

    With --log, the log's trust roots are yours, never the log's: --policy, --vkey, or --trust-on-first-use."""
    trust = Trust(policy=policy, vkey=vkey, trust_on_first_use=trust_on_first_use, state=state)
    client = log_client_if(log, trust)
    keys = [r.key for r in load_public_keys(key)]
    result = update(
        agent_dir(agent),
        read_file(provenance),
        keys,
        deltas=[read_file(d) for d in delta or []],
        fetch_full=lambda: read_file(full),
        log=client,
    )
    if json:
        emit_json(result.to_dict())
        return
    how = "through deltas" if result.via_delta else f"from the full database ({result.fallback_reason})"
    console.print(f"updated {result.installed.name} to version {result.installed.version} {how}")
