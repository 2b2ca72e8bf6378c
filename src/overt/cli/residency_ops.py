"""``overt residency access`` and ``migrate``: the vendor's operations on tenant data.

``access`` is one approved staff access (:func:`overt.residency.access.access`); ``migrate`` moves the tenants
a newer registry version homes elsewhere (:func:`overt.residency.migration.migrate`). Each command parses its
arguments, calls one domain function and renders the result. Mounted by :mod:`overt.cli.residency`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from overt.atomic import atomic_write
from overt.cli.common import HomeOpt, JsonOpt, console, emit_json, err_console, printable, progress, read_file
from overt.home import Home, resolve_home
from overt.residency.access import StaffAccess, access
from overt.residency.approvals import MAX_APPROVAL, REASONS, RESOURCES
from overt.residency.migration import (
    RUNNING,
    STEPS,
    Job,
    MigrationPlan,
    MigrationReport,
    migrate,
    plan_migrations,
)

app = typer.Typer(no_args_is_help=True)


@app.command("access")
def access_command(
    tenant: Annotated[str, typer.Argument(help="the tenant id (t-...)")],
    actor: Annotated[str, typer.Option(help="who reads: the staff member, as the approval names them")],
    actor_country: Annotated[str, typer.Option(help="the ISO 3166-1 country the actor works from")],
    reason: Annotated[str, typer.Option(help=f"why: {', '.join(REASONS)}")],
    resource: Annotated[
        str, typer.Option(help=f"what: {', '.join(RESOURCES)} or telemetry:batch/<batch id>")
    ],
    approval: Annotated[
        Path | None,
        typer.Option(
            help="the approval the tenant's admin signed ('residency approve'); without one the access is "
            "refused, and the refusal logged"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="write the data here (mode 0600) instead of to stdout")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read a tenant's data under its admin's approval; the access is logged in its jurisdiction's access log
    first. Exit 1 when it is refused (the refusal is logged too); exit 2, with nothing asked or logged, when
    the request is malformed or the approval file cannot be read."""
    h = Home(resolve_home(home))
    granted = access(
        h,
        tenant_id=tenant,
        actor=actor,
        actor_country=actor_country,
        reason=reason,
        resource=resource,
        approval=None if approval is None else read_file(approval, limit=MAX_APPROVAL),
    )
    if out is not None:
        atomic_write(out, granted.data, mode=0o600)
    if as_json:
        data = None if out is not None else json.loads(granted.data)  # JSON whatever the resource
        emit_json({**granted.to_dict(), "out": None if out is None else str(out), "data": data})
        return
    _print_access(granted, out)


def _print_access(granted: StaffAccess, out: Path | None) -> None:
    where = f"written to {out}" if out is not None else "written to stdout"
    err_console.print(
        f"access granted to {printable(granted.actor)} under approval {granted.approval_id}, logged at index "
        f"{granted.log_index} of {granted.log} (tree size {granted.tree_size}); {granted.resource} of "
        f"{granted.tenant_id} from {granted.jurisdiction} ({len(granted.data)} bytes) {where}"
    )
    if out is None:
        sys.stdout.buffer.write(granted.data + b"\n")
        sys.stdout.flush()


@app.command("migrate")
def migrate_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the plan only; change nothing")] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move every tenant the newest registry version homes elsewhere: freeze, copy, verify, switch, purge,
    unfreeze, each step logged. Resumes unfinished jobs. Exit 0 when all finished, 1 on a verification
    mismatch, 2 on errors."""
    h = Home(resolve_home(home))
    if dry_run:
        plan = plan_migrations(h, check_stores=True)
        if as_json:
            emit_json(plan.to_dict())
        else:
            _print_plan(plan)
        return
    with progress(json=as_json) as bar:
        task = bar.add_task("migrating", total=None)

        def on_step(job: Job, step: str, detail: str) -> None:
            bar.update(task, description=f"{job.tenant_id} {step}", advance=1)
            if not as_json and detail.startswith("done: "):
                console.print(
                    f"{job.tenant_id} {job.from_jurisdiction} -> {job.to_jurisdiction}: {step}: {detail[6:]}"
                )

        report = migrate(h, on_step=on_step)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    raise typer.Exit(report.exit_code)


def _print_plan(plan: MigrationPlan) -> None:
    if not plan.moves and not plan.unfinished:
        console.print(
            f"nothing to migrate: every tenant is homed where registry v{plan.registry_version} says"
        )
    for move in plan.moves:
        problem = "" if move.problem is None else f"; cannot start: {printable(move.problem)}"
        console.print(
            f"{move.tenant_id} ({move.country}) moves {move.from_jurisdiction} -> {move.to_jurisdiction} under "
            f"registry v{move.registry_version}{problem}"
        )
    for job in plan.unfinished:
        if job.state == RUNNING and not plan.running:
            state = f"was interrupted at step {job.step} of {', '.join(STEPS)} (no migration runs now)"
        elif job.state == RUNNING:
            state = f"is running at step {job.step} of {', '.join(STEPS)}"
        else:
            state = f"is {job.state} at step {job.step} of {', '.join(STEPS)}"
        console.print(
            f"{job.tenant_id}: job {job.id} ({job.from_jurisdiction} -> {job.to_jurisdiction}, registry "
            f"v{job.registry_version}) {state}; 'overt residency migrate' resumes it"
            + ("" if job.error is None else f"; last error: {printable(job.error)}")
        )


def _print_report(report: MigrationReport) -> None:
    if not report.results:
        console.print(
            f"nothing to migrate: every tenant is homed where registry v{report.registry_version} says"
        )
    for r in report.results:
        head = f"{r.tenant_id} {r.from_jurisdiction} -> {r.to_jurisdiction} (registry v{r.registry_version})"
        if r.outcome == "done":
            console.print(f"{head}: migrated (job {r.job_id})")
        else:
            console.print(f"{head}: {r.outcome.upper()} at step {r.step}: {printable(r.error or '')}")
