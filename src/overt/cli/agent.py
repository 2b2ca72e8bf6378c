"""``overt agent ...`` (the endpoint: init, update, status, run) and ``overt verify ARTIFACT --evidence DIR``
(the agent's checks, offline). The logic is :mod:`overt.distribute`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from overt.attest.statement import format_timestamp
from overt.cli.common import JsonOpt, console, emit_json, emit_json_line, read_file
from overt.distribute.agent import FollowStatus, agent_status, run_agent
from overt.distribute.agentdir import default_layout, pin_policy
from overt.distribute.endpoint import (
    CURRENT,
    INSTALLED,
    NOTHING,
    REFUSED,
    EndpointUpdate,
    FollowOutcome,
    update_endpoint,
)
from overt.distribute.offline import OfflineVerification, verify_offline
from overt.distribute.trust import TrustPolicy
from overt.errors import Error, VerificationError

app = typer.Typer(
    help="The endpoint agent: pin a trust policy, update (TUF, then the log, verdicts and freshness), status.",
    no_args_is_help=True,
)
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="the agent directory (default $OVERT_AGENT_DIR, else $XDG_DATA_HOME/overt/agent)"
    ),
]


@app.command("init")
def agent_init(
    policy: Annotated[Path, typer.Option(help="your trust policy (TOML; see docs/trust-policy.md)")],
    directory: DirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check a trust policy and every file it names, and pin it, self-contained, into the agent directory."""
    pinned = pin_policy(default_layout(directory), policy)
    if json:
        emit_json(pinned.to_dict())
        return
    p = pinned.policy
    console.print(f"pinned {p.source} (sha256 {p.sha256}) as {pinned.path}")
    if pinned.replaced is not None:
        console.print(f"  it replaces the policy pinned before (sha256 {pinned.replaced})")
    console.print(f"  follows: {', '.join(f.label for f in p.follows)}")
    console.print(f"  TUF root: sha256 {p.root_sha256}, from {p.repository_url}")
    console.print(
        f"  log: {p.log_url}, witness quorum {p.log_policy.quorum} of "
        f"{', '.join(w.name for w in p.log_policy.witnesses)}"
    )
    console.print(
        f"  auditors: {p.auditor_threshold} of {len(p.auditor_keys)} distinct keys; newest quorum cosignature "
        f"at most {p.max_cosignature_age.total_seconds() / 3600:g} hours old"
    )


def _print_outcome(o: FollowOutcome) -> None:
    kept = f"kept version {o.record.version}" if o.record is not None else "nothing installed"
    if o.status == INSTALLED and o.record is not None:
        how = " through a delta" if o.record.via_delta else ""
        console.print(f"{o.follow.label}: installed version {o.record.version}{how} ({o.record.installed})")
    elif o.status == CURRENT and o.record is not None:
        console.print(f"{o.follow.label}: version {o.record.version} is current")
    elif o.status == NOTHING:
        console.print(f"{o.follow.label}: nothing released yet; {kept}")
    else:
        offered = f" version {o.offered}" if o.offered else ""
        word = "REFUSED" if o.status == REFUSED else "FAILED"
        console.print(
            f"{o.follow.label}: {word}{offered}, the {o.check or 'update'} check: {o.error}; {kept}"
        )
    for c in o.checks:
        console.print(Text.assemble(("  PASSED", "bold green"), f" {c.check}: {c.detail}"))
    if o.delta and o.delta != "applied":
        console.print(f"  delta: {o.delta}")
    if o.hook is not None:
        console.print(f"  post-install hook: {'ok' if o.hook.ok else 'FAILED'} {o.hook.detail}".rstrip())


def _raise_first(update: EndpointUpdate) -> None:
    """Exit as the run does: the first refusal (1), else the first operational failure (2)."""
    for code in (1, 2):
        for o in update.outcomes:
            if o.error is not None and o.exit_code == code:
                raise o.error


@app.command("update")
def agent_update(directory: DirOpt = None, json: JsonOpt = False) -> None:
    """Update everything the pinned policy follows: the stock TUF client, then the log, the auditors'
    verdicts, the version and the log's freshness; install atomically. On any failure the installed version
    stays; exit 1 if a check refused, 2 if something was unavailable."""
    update = update_endpoint(default_layout(directory).root)
    if json:
        emit_json(update.to_dict())
    else:
        for o in update.outcomes:
            _print_outcome(o)
    _raise_first(update)


@app.command("status")
def agent_status_cmd(directory: DirOpt = None, json: JsonOpt = False) -> None:
    """What is installed and why it was trusted: digest, log entries, checkpoint, auditors. Reads only.
    Exit 1 if an installed file no longer has the digest it was trusted with."""
    status = agent_status(default_layout(directory).root)
    if json:
        emit_json(status.to_dict())
    else:
        console.print(f"policy: {status.policy.source} (sha256 {status.policy.sha256})")
        for item in status.items:
            _print_item(item)
        if status.log_head is not None:
            console.print(
                f"log head verified last: {status.log_head['origin']} at size {status.log_head['tree_size']}"
            )
    changed = [i.follow.label for i in status.items if i.intact is False]
    if changed:
        raise VerificationError(f"installed files changed since they were verified: {', '.join(changed)}")


def _print_item(item: FollowStatus) -> None:
    r = item.record
    if r is None:
        console.print(f"{item.follow.label}: nothing installed by the agent")
        return
    state = "" if item.intact else " (MODIFIED ON DISK since it was verified)"
    console.print(f"{item.follow.label}: version {r.version}, sha256 {r.sha256}, {r.installed}{state}")
    console.print(
        f"  target {r.target}, installed {r.installed_at}{' through a delta' if r.via_delta else ''}"
    )
    console.print(f"  provenance: log entry {r.provenance_index}")
    console.print(f"  metadata logged: {', '.join(f'{n} (entry {i})' for n, i in r.metadata)}")
    cp = r.checkpoint
    console.print(
        f"  checkpoint: {cp.get('origin')} at size {cp.get('tree_size')}, root {cp.get('root_hash')}, "
        f"cosigned by {', '.join(r.cosigners)} (quorum at {r.cosigned_at})"
    )
    console.print(f"  verified by auditors: {', '.join(r.auditors)}")


@app.command("run")
def agent_run(
    interval: Annotated[float, typer.Option(min=0, help="seconds between updates")] = 3600,
    jitter: Annotated[
        float, typer.Option(min=0, help="up to this many seconds more, chosen at random")
    ] = 600,
    runs: Annotated[
        int | None, typer.Option(min=1, help="stop after this many updates (default: never)")
    ] = None,
    directory: DirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Update now, then every --interval seconds plus a random jitter: for machines without cron or a
    systemd timer (docs/operations.md). A failed update never stops the loop; it is reported."""
    last = [0]

    def report(result: EndpointUpdate | Error) -> None:
        at = format_timestamp(datetime.now(UTC))
        if isinstance(result, Error):
            last[0] = result.exit_code
            if json:
                emit_json_line({"at": at, "error": type(result).__name__, "message": str(result)})
            else:
                console.print(f"{at} error: {result}")
            return
        last[0] = result.exit_code
        if json:
            emit_json_line({"at": at, **result.to_dict()})
            return
        console.print(f"{at} update (exit {result.exit_code}):")
        for o in result.outcomes:
            _print_outcome(o)

    run_agent(default_layout(directory).root, interval=interval, jitter=jitter, runs=runs, report=report)
    if last[0]:
        raise typer.Exit(last[0])


def print_offline(result: OfflineVerification) -> None:
    """What ``overt verify --evidence`` proved, one PROVED line per check (called by :mod:`overt.cli.verify`)."""
    for c in result.checks:
        console.print(Text.assemble(("PROVED", "bold green"), f"  {c.check}: {c.detail}"))
    a = result.assurance
    console.print(
        f"{result.artifact} is {a.candidate.path} version {a.candidate.version} (sha256 {a.candidate.sha256})"
    )


def verify_with_evidence(
    file: Path, *, evidence: Path, policy: Path, target: str | None, directory: Path | None, json: bool
) -> None:
    """``overt verify FILE --evidence DIR --policy TRUST-POLICY``: steps 2-5 offline."""
    trust = TrustPolicy.from_file(policy)
    result = verify_offline(
        read_file(file),
        name=str(file),
        evidence=evidence,
        trust=trust,
        now=datetime.now(UTC),
        target=target,
        agent_dir=directory,
    )
    if json:
        emit_json(result.to_dict())
    else:
        print_offline(result)
