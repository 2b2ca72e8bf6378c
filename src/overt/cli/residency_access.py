"""``overt residency admin-key new``, ``approve`` and ``access-log``: the customer's side of access transparency.

``admin-key new`` and ``approve`` are run by the tenant's admin, with no overt home: they make the admin key
(:mod:`overt.residency.adminkeys`) and sign approvals with it (:mod:`overt.residency.approvals`).
``access-log`` is the customer's check of a jurisdiction's access log (:mod:`overt.residency.accessverify`).
Each command parses its arguments, calls one domain function and renders the result. Mounted by
:mod:`overt.cli.residency`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from overt.atomic import atomic_write
from overt.attest.statement import format_timestamp
from overt.cli.common import (
    JsonOpt,
    PolicyOpt,
    StateOpt,
    TofuOpt,
    Trust,
    VkeyOpt,
    console,
    emit_json,
    human,
    pinned_policy,
    printable,
)
from overt.errors import UsageError
from overt.residency.accessverify import AccessLogReport, verify_access_log
from overt.residency.adminkeys import load_admin_key, load_admin_signer, new_admin_key
from overt.residency.approvals import (
    MAX_TIME_BOX,
    REASONS,
    RESOURCES,
    Approval,
    issue_approval,
    parse_time,
)
from overt.tlog.client import fetcher_for

DEFAULT_HOURS = 24.0

app = typer.Typer(no_args_is_help=True)
admin_key_app = typer.Typer(
    help="A tenant admin's Ed25519 key, which signs access approvals (the vendor gets only its public half).",
    no_args_is_help=True,
)
app.add_typer(admin_key_app, name="admin-key")


@admin_key_app.command("new")
def admin_key_new(
    out: Annotated[
        Path, typer.Option(help="write the private key here (mode 0600) and its public half to OUT.pub")
    ],
    json: JsonOpt = False,
) -> None:
    """Make a new admin key; neither file is ever overwritten. Give OUT.pub to the vendor, keep OUT."""
    made = new_admin_key(out)
    if json:
        emit_json(made.to_dict())
        return
    console.print(f"wrote the private key {made.private} (mode 0600) and the public key {made.public}")
    console.print(f"keyid: {made.keyid}")


def _time_box(not_before: str | None, hours: float | None, until: str | None) -> tuple[datetime, datetime]:
    start = (
        datetime.now(UTC).replace(microsecond=0)
        if not_before is None
        else parse_time(not_before, "--not-before")
    )
    if hours is not None and until is not None:
        raise UsageError("--hours and --until exclude each other: give the end of the approval one way")
    if until is not None:
        return start, parse_time(until, "--until")
    most = MAX_TIME_BOX.total_seconds() / 3600
    if hours is not None and not 0 < hours <= most:
        raise UsageError(
            f"--hours must be more than 0 and at most {most:g}: an approval lasts at most {most:g} hours"
        )
    return start, start + timedelta(hours=DEFAULT_HOURS if hours is None else hours)


@app.command()
def approve(
    key: Annotated[Path, typer.Option(help="your admin private key (made by 'admin-key new')")],
    tenant: Annotated[str, typer.Option(help="your tenant id (t-...)")],
    actor: Annotated[
        str, typer.Option(help="the member of the vendor's staff allowed in, as the vendor names them")
    ],
    actor_country: Annotated[str, typer.Option(help="the ISO 3166-1 country the actor works from, e.g. CH")],
    reason: Annotated[str, typer.Option(help=f"why: {', '.join(REASONS)}")],
    resource: Annotated[
        str, typer.Option(help=f"what: {', '.join(RESOURCES)} or telemetry:batch/<batch id>")
    ],
    ticket: Annotated[str, typer.Option(help="free text: a ticket or case number")] = "",
    not_before: Annotated[
        str | None, typer.Option(help="valid from this time, e.g. 2026-12-01T10:00:00Z (default: now)")
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(help=f"valid this many hours (default {DEFAULT_HOURS:g})"),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="valid until (excluded) this time, instead of --hours")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the signed approval here instead of stdout")] = None,
    json: JsonOpt = False,
) -> None:
    """Sign an approval of staff access to your data: one actor, one resource, one reason, for at most 7 days
    (each access under it is logged); needs no overt home."""
    start, end = _time_box(not_before, hours, until)
    signer = load_admin_signer(key)
    approval = Approval.new(
        tenant=tenant,
        actor=actor,
        actor_country=actor_country,
        reason=reason,
        resource=resource,
        not_before=start,
        not_after=end,
        ticket=ticket,
    )
    envelope = issue_approval(approval, signer)
    if out is None and not json:
        typer.echo(envelope.decode())
        return
    if out is not None:
        atomic_write(out, envelope)
    if json:
        emit_json(
            {"approval": approval.to_dict(), "keyid": signer.keyid, "out": None if out is None else str(out)}
        )
        return
    console.print(
        f"wrote {out}: approval {approval.approval_id} lets {approval.actor} ({approval.actor_country}) read "
        f"{approval.resource} of {approval.tenant} for {approval.reason}, from "
        f"{format_timestamp(approval.not_before)} until {format_timestamp(approval.not_after)}; signed by "
        f"admin key {signer.keyid[:16]}"
    )


@app.command("access-log")
def access_log(
    tenant: Annotated[str, typer.Argument(help="your tenant id (t-...)")],
    log: Annotated[
        str, typer.Option(help="the access log's prefix: http(s) URL or directory (public/logs/access-ch)")
    ],
    policy: PolicyOpt = None,
    vkey: VkeyOpt = None,
    trust_on_first_use: TofuOpt = False,
    state: StateOpt = None,
    admin_key: Annotated[
        Path | None,
        typer.Option(
            help="your admin PUBLIC key, as you keep it (never the vendor's copy): checks approvals"
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Verify a jurisdiction's access log as a customer and list the entries about your tenant.

    Exit 0: all verified; 1: a proof fails, or an entry is unreadable or breaks the rules (an access granted
    without a valid approval by your key); 2: bad input."""
    trust = Trust(policy=policy, vkey=vkey, trust_on_first_use=trust_on_first_use, state=state)
    pinned, basis = pinned_policy(log, fetcher_for(log), trust)
    key = None if admin_key is None else load_admin_key(admin_key)
    report = verify_access_log(
        log, policy=pinned, tenant=tenant, state_dir=trust.state_dir, admin_key=key, trust=basis
    )
    if json:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: AccessLogReport) -> None:
    for check in report.checks:
        typer.echo(f"ok  {check}")
    for skipped in report.not_checked:
        typer.echo(f"--  not checked: {skipped}")
    for key, value in (("trust", report.trust), ("origin", report.origin), ("tree_size", report.tree_size)):
        typer.echo(f"    {key}: {human(value)}")
    n = len(report.entries)
    console.print(
        f"{n} {'entry' if n == 1 else 'entries'} about {report.tenant} in the access log of {report.jurisdiction}"
    )
    if report.entries:
        table = Table(
            "index", "time", "kind", "actor", "country", "reason", "resource", "outcome", "approval"
        )
        for logged in report.entries:
            row = logged.to_dict()
            table.add_row(
                *(
                    printable(str(row[k]) or "-")
                    for k in (
                        "index",
                        "time",
                        "kind",
                        "actor",
                        "actor_country",
                        "reason",
                        "resource",
                        "outcome",
                    )
                ),
                logged.approval,
            )
        console.print(table)
    for logged in report.entries:
        if logged.entry.refusal is not None:
            console.print(f"entry {logged.index} refused: {printable(logged.entry.refusal)}")
    for logged in report.violations:
        console.print(f"VIOLATION entry {logged.index}: {printable(logged.violation or '')}")
    for bad in report.unreadable:
        console.print(f"UNREADABLE entry {bad.index}: {printable(bad.problem)}")
    if report.ok and not report.not_checked:
        console.print("all verified")
    elif report.ok:
        n = len(report.not_checked)
        console.print(
            f"verified, except {n} {'check' if n == 1 else 'checks'} not run (the '--' lines above): not all "
            "verified"
        )
    else:
        v, u = len(report.violations), len(report.unreadable)
        console.print(f"NOT all verified: {v} {'violation' if v == 1 else 'violations'}, {u} unreadable")
