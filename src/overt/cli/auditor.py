"""``overt auditor ...``: an independent auditor's home, apart from any conveyor's.

The home (keys, witness, pins, config) is :mod:`overt.auditor.home`; this module parses arguments and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from overt.auditor.home import DEFAULT_JURISDICTION, MAX_POLICY_FILE, AuditorHome
from overt.cli.common import JsonOpt, console, emit_json, emit_json_line, print_error, read_file

app = typer.Typer(
    help="An independent auditor: its own keys and witness, and the vendor's log and keys it pinned.",
    no_args_is_help=True,
)

AHome = Annotated[Path, typer.Option(help="auditor home directory (never a conveyor's home)")]
QueueOpt = Annotated[
    str | None, typer.Option(help="the job queue: a PostgreSQL database, postgresql://[user@]host[:port]/db")
]


@app.command()
def init(
    home: AHome,
    name: Annotated[
        str, typer.Option(help="the auditor's name, e.g. auditor.example/a1 (also its witness's)")
    ],
    log_url: Annotated[str, typer.Option(help="the vendor's log, http(s)")],
    log_policy: Annotated[
        Path, typer.Option(help="the vendor's tlog-policy for that log, obtained out of band; copied in")
    ],
    vendor_key: Annotated[
        list[Path],
        typer.Option(help="a vendor public key file (public/keys/<keyid>.json); repeat; copied in"),
    ],
    jurisdiction: Annotated[
        str, typer.Option(help="where the auditor signs (ISO 3166-1)")
    ] = DEFAULT_JURISDICTION,
    unsafe_no_witness_quorum: Annotated[
        bool,
        typer.Option(
            "--unsafe-no-witness-quorum",
            help="pin a policy without witnesses: the log alone vouches for itself",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Make an auditor home in a new or empty directory: its own keys, and the vendor's policy and keys pinned."""
    made = AuditorHome.init(
        home,
        name=name,
        log_url=log_url,
        log_policy=read_file(log_policy, limit=MAX_POLICY_FILE),
        vendor_keys=vendor_key,
        jurisdiction=jurisdiction,
        unsafe_no_witness_quorum=unsafe_no_witness_quorum,
    )
    _render(made, f"auditor home created at {made.paths.root}", json=json)


@app.command()
def show(home: AHome, json: JsonOpt = False) -> None:
    """Show an auditor home: its keys, its witness, and what it pinned."""
    found = AuditorHome.open(home)
    _render(found, f"auditor home at {found.paths.root}", json=json)


MONITOR_HELP = """Follow a vendor's log and TUF repository, and alert on what a customer must know.

Checks every checkpoint (log signature, witness quorum, consistency with the last one trusted) and every entry
against the tree, then flags: a release without k PASSED VSAs by distinct trusted auditor keys within
--verdict-deadline hours (a younger one is pending), a FAILED verdict, two artifacts for one version, a target
path listed with other bytes, a version no release could have, a served
metadata file no statement by its role's key logs, AV-database audit findings and waivers, keys signing
outside their jurisdiction or the builder registry, rotations not signed by the old key, forged entries.
Its position is kept (in the auditor home's state/, --state, or $XDG_STATE_HOME/overt/monitor): a restart
reads only new entries, and an alert is raised once.

Exit codes, the highest that applies: 3 the log itself is inconsistent (fork, rollback, entries not those
its tree commits to, checkpoint signature or witness quorum missing) or unreachable; 2 a usage,
configuration or state error, the vendor's site failing to serve the repository or a key record (the log is
still checked; the position stops before what needed the key), or alerts the webhook did not take (kept and
resent next run); 1 alerts; 0 none. Every HTTP response must arrive whole within 60 s."""


@app.command(help=MONITOR_HELP)
def monitor(
    log_url: Annotated[
        str, typer.Argument(help="the log's tlog-tiles prefix, e.g. https://vendor.example/log")
    ],
    policy: Annotated[
        Path, typer.Option(help="the customer's trust policy (docs/trust-policy.md): log policy, auditors, k")
    ],
    home: Annotated[
        Path | None,
        typer.Option(help="auditor home: its pinned vendor keys, and its state/ for the position"),
    ] = None,
    state: Annotated[Path | None, typer.Option(help="state directory (default: see above)")] = None,
    once: Annotated[
        bool, typer.Option("--once", help="one run, then exit with its code (for cron and CI)")
    ] = False,
    interval: Annotated[
        str, typer.Option(metavar="SECONDS", help="seconds between runs without --once")
    ] = "300",
    webhook: Annotated[str | None, typer.Option(help="POST each new alert here as JSON")] = None,
    verdict_deadline: Annotated[
        str, typer.Option(metavar="HOURS", help="hours a release may wait for k PASSED VSAs")
    ] = "24",
    repository: Annotated[str | None, typer.Option(help="the TUF repository (default: the policy's)")] = None,
    workers: Annotated[
        str | None, typer.Option(metavar="N", help="processes reading the log (default: 2 at most)")
    ] = None,
    json: JsonOpt = False,
) -> None:
    from overt.auditor.monitor import (
        MAX_HOURS,
        MonitorReport,
        follow,
        monitor_config,
        monitor_once,
        number_option,
    )
    from overt.errors import Error

    try:
        seconds = number_option(interval, "--interval", 1.0, MAX_HOURS * 3600, " seconds")
        hours = number_option(verdict_deadline, "--verdict-deadline", 0.0, MAX_HOURS, " hours (ten years)")
        count = None if workers is None else int(number_option(workers, "--workers", 1, 64, "", integer=True))
        config = monitor_config(
            log_url,
            policy=policy,
            home=home,
            state=state,
            repository=repository,
            webhook=webhook,
            verdict_deadline_hours=hours,
            workers=count,
        )
        report = monitor_once(config) if once else None
    except Error as e:
        if not json:
            raise
        _render_report(MonitorReport.failed(log_url, e), json=True)  # --json: one object, with the error
        raise typer.Exit(e.exit_code) from e
    if report is not None:
        _render_report(report, json=json)
        raise typer.Exit(report.exit_code)
    last = follow(
        config,
        interval=seconds,
        on_report=lambda r: _render_report(r, json=json),
        on_error=lambda e: print_error(e, json),
    )
    raise typer.Exit(0 if last is None else last.exit_code)


def _render_report(report: Any, *, json: bool) -> None:
    for error in (report.log_error, report.error):
        if error is not None:
            print_error(error, json)
    if json:
        emit_json_line(report.to_dict())
        return
    for alert in report.alerts:
        console.print(alert.line())
    for p in report.pending:
        console.print(
            f"pending: {p.path} has {p.passed} of {p.required} PASSED verdicts; deadline {p.to_dict()['deadline']}"
        )
    if report.webhook is not None and report.webhook.error is not None:
        console.print(
            f"webhook: {report.webhook.undelivered} alert(s) not delivered, kept for the next run: "
            f"{report.webhook.error}"
        )
    if report.unknown_signers:
        console.print(
            f"unknown signers: {report.unknown_signers} new entries are signed by no key this monitor knows "
            "(not pinned, not published on the vendor's site, not introduced by a logged rotation, not in the "
            "trust policy): they were hashed into the tree but not judged"
        )
    console.print(_summary_line(report))


def _summary_line(report: Any) -> str:
    """What the run did, truly: a run the log or the site stopped says where it stopped."""
    counts = f"{len(report.alerts)} alert(s), {len(report.pending)} release(s) pending"
    if report.log_error is None and report.error is None:
        return (
            f"checked {report.log} up to size {report.tree_size}: {report.entries_read} new entries, {counts}"
        )
    checkpoint = (
        "no checkpoint verified"
        if report.tree_size is None
        else f"checkpoint of size {report.tree_size} verified"
    )
    what = "the log" if report.log_error is not None else "the vendor's site"
    return (
        f"stopped: {what} failed (error above); {checkpoint}; {report.entries_read} new entries read and "
        f"committed before that (position {report.position}, where the next run starts), {counts}"
    )


def _render(home: AuditorHome, title: str, *, json: bool) -> None:
    view: dict[str, Any] = home.to_dict()
    if json:
        emit_json(view)
        return
    log = view["log"]
    console.print(title)
    console.print(f"auditor:      {view['name']} ({view['jurisdiction']})")
    console.print(f"auditor key:  {view['auditor_key']['keyid']} ({view['auditor_key']['keytype']})")
    console.print(f"witness vkey: {view['witness']['vkey']}")
    console.print(f"log:          {log['url']} ({', '.join(log['origins'])}; quorum {log['quorum']})")
    console.print(f"log policy:   sha256:{log['policy_sha256']}")
    for key in view["vendor_keys"]:
        console.print(f"vendor key:   {key['keyid']} ({key['role']}, {key['jurisdiction']})")


# --- overt auditor rebuild -------------------------------------------------------------------------------


@app.command()
def rebuild(
    home: AHome,
    follow: Annotated[
        str | None,
        typer.Option(
            help="the log's tlog-tiles prefix, e.g. https://vendor.example/log (default: the pinned one)"
        ),
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(help="the vendor's site (escrow/, builds/, avdb/); default: --follow minus /log"),
    ] = None,
    submit: Annotated[
        str | None, typer.Option(help="the log server VSAs are submitted to (POST /add); default: --site")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="process what is in the log now, then exit")] = False,
    interval: Annotated[float, typer.Option(min=0, help="seconds between passes without --once")] = 60.0,
    store: Annotated[
        str | None,
        typer.Option(help="verdict store: postgresql://... or sqlite:///PATH (default: the home's state/)"),
    ] = None,
    max_fail_attempts: Annotated[
        int, typer.Option(min=1, help="builds that fail (or inputs that do not verify) are tried this often")
    ] = 3,
    max_bad_attempts: Annotated[
        int, typer.Option(min=1, help="mismatches are rebuilt this often before a FAILED VSA")
    ] = 2,
    workdir: Annotated[
        Path | None,
        typer.Option(help="where scratch build directories go (default: tmpfs, else the temp dir)"),
    ] = None,
    queue: QueueOpt = None,
    json: JsonOpt = False,
) -> None:
    """Tail the vendor's log; rebuild each new provenance from the escrow; sign and log a VSA on it.

    With --queue postgresql://..., rebuild nothing here: defer one job per provenance to the queue, for
    `overt auditor worker` processes to run (the verdict store then lives in that database, shared by all).

    One line per verdict: log index, artifact, GOOD (rebuilt bit for bit, PASSED VSA), BAD (a subject
    differs, or the provenance is not the build rebuilt: FAILED VSA, a diffoscope report on a mismatch), FAIL
    (the build failed, or the site served bytes that do not match: retried, a FAILED VSA past
    --max-fail-attempts), the reason and the VSA's log index. A site or log that cannot be reached or read
    uses no attempt: the job stays pending. Without --once it runs until SIGINT or SIGTERM, finishing the job
    at hand. Exit status: 0 every verdict GOOD, 1 some BAD or FAIL, 2 a usage, configuration or transport
    error, or a job left pending (docs/operations.md, Independent auditors).
    """
    import signal
    import threading

    from overt.auditor.rebuild import RebuildJob, RebuildSettings
    from overt.auditor.rebuild_loop import Pass, follow_log, rebuild_pass
    from overt.cli.common import emit_json_line, err_console
    from overt.errors import TransportError

    found = AuditorHome.open(home)
    settings = RebuildSettings.of(
        found.config.log.url if follow is None else follow,  # an empty --follow is refused, not defaulted
        site=site,
        submit=submit,
        store=store,
        max_fail_attempts=max_fail_attempts,
        max_bad_attempts=max_bad_attempts,
        workdir=None if workdir is None else str(workdir),
    )

    def started(job: RebuildJob, decided: bool) -> None:
        if decided:
            err_console.print(
                f"log entry {job.log_index} (provenance sha256 {job.provenance_sha256}): already decided, "
                "submitting its stored verdict"
            )
            return
        err_console.print(f"rebuilding log entry {job.log_index} (provenance sha256 {job.provenance_sha256})")

    worst = [0]

    def report(done: Pass | TransportError) -> None:
        if isinstance(done, TransportError):
            worst[0] = max(worst[0], 2)
            err_console.print(f"error: {done}")
            return
        worst[0] = max(worst[0], done.exit_code)
        if json and once:
            emit_json(done.to_dict())
        elif json:
            emit_json_line(done.to_dict())
        else:
            _print_pass(done)

    stop = threading.Event()
    if queue is not None:
        worst[0] = _defer_to_queue(found, settings, queue, once=once, interval=interval, json=json)
    elif once:
        report(rebuild_pass(found, settings, on_job=started, stop=stop))
    else:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        follow_log(found, settings, interval=interval, stop=stop, report=report, on_job=started)
    if worst[0]:
        raise typer.Exit(worst[0])


def _print_pass(done: Any) -> None:
    from overt.cli.common import err_console, printable

    for skipped in done.discovery.skipped:
        err_console.print(f"skipped log entry {skipped.index}: {printable(skipped.reason)}")
    for o in done.outcomes:
        if o.final:
            tail = f"{o.vsa_result} VSA at log index {o.vsa_index}" + (
                " (decided before)" if o.decided_before else ""
            )
        else:
            tail = f"attempt {o.attempts} of {o.limit}, tried again on the next pass; no VSA yet"
        console.print(
            f"{o.job.log_index}  {printable(o.artifact)}  {o.verdict}  {printable(o.reason)}  {tail}"
        )
    for e in done.errors:
        err_console.print(
            f"log entry {e.job.log_index} not finished, tried again on the next pass: {e.error}"
        )
    d, counts = done.discovery, done.counts()
    err_console.print(
        f"read the log from index {d.start} to size {d.tree_size}: {d.new} new provenance(s); "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
    )


# --- the job queue: overt auditor rebuild --queue, worker, queue-status ------------------------------------


def _defer_to_queue(
    home: AuditorHome, follow: Any, dsn: str, *, once: bool, interval: float, json: bool
) -> int:
    """``rebuild --queue``: defer instead of rebuilding; the exit status (2 when the log could not be read)."""
    import signal
    import threading

    from overt.auditor.queue import QueueSettings
    from overt.auditor.queue_rebuild import DeferPass, defer_pass, follow_queue
    from overt.cli.common import emit_json_line, err_console, printable
    from overt.errors import TransportError

    settings = QueueSettings(dsn=dsn)
    worst = [0]

    def report(done: DeferPass | TransportError) -> None:
        if isinstance(done, TransportError):
            worst[0] = 2
            err_console.print(f"error: {done}")
            return
        if json:
            (emit_json if once else emit_json_line)(done.to_dict())
            return
        for skipped in done.discovery.skipped:
            err_console.print(f"skipped log entry {skipped.index}: {printable(skipped.reason)}")
        for job, job_id in done.deferred.deferred:
            console.print(
                f"{job.log_index}  deferred as job {job_id}  provenance sha256 {job.provenance_sha256}"
            )
        d, waiting = done.discovery, len(done.deferred.already_queued)
        console.print(
            f"read the log up to size {d.tree_size}: {d.new} new provenance(s), "
            f"{len(done.deferred.deferred)} job(s) deferred, {waiting} already queued"
        )

    if once:
        report(defer_pass(home, follow, settings))
        return worst[0]
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    follow_queue(home, follow, settings, interval=interval, stop=stop, report=report)
    return worst[0]


HeartbeatOpt = Annotated[float, typer.Option(help="seconds between a worker's heartbeats")]
StalledOpt = Annotated[
    float, typer.Option(help="a worker silent this many seconds is taken for dead; its jobs are retried")
]


@app.command()
def worker(
    home: AHome,
    queue: Annotated[str, typer.Option(help="the job queue: postgresql://[user@]host[:port]/db")],
    concurrency: Annotated[int, typer.Option(help="rebuild jobs this process runs at once")] = 1,
    heartbeat: HeartbeatOpt = 2.0,
    stalled_after: StalledOpt = 10.0,
    sweep_every: Annotated[
        int, typer.Option(help="seconds between sweeps for stalled jobs (a divisor of 60)")
    ] = 2,
) -> None:
    """Run the auditor's rebuild jobs from the queue until SIGINT or SIGTERM (start any number, anywhere).

    Sets the queue's database up on first use. One line per job done, as `rebuild` prints a verdict. A job
    whose worker stopped sending heartbeats is retried by the sweep; its verdict is still logged once.
    Exit status: 0 stopped by a signal, 2 a usage, configuration or database error.
    """
    from overt.auditor.queue import QueueSettings
    from overt.auditor.queue_rebuild import serve_rebuilds
    from overt.cli.common import printable

    found = AuditorHome.open(home)
    settings = QueueSettings(
        dsn=queue, heartbeat_s=heartbeat, stalled_after_s=stalled_after, sweep_every_s=sweep_every
    )
    serve_rebuilds(found, settings, concurrency=concurrency, echo=lambda line: console.print(printable(line)))


@app.command(name="queue-status")
def show_queue_status(
    home: AHome,
    queue: Annotated[str, typer.Option(help="the job queue: postgresql://[user@]host[:port]/db")],
    stalled_after: StalledOpt = 10.0,
    json: JsonOpt = False,
) -> None:
    """How the auditor's rebuild jobs stand: todo, doing, succeeded, failed, stalled, and completions written."""
    from overt.auditor.queue import QueueSettings, queue_status

    found = AuditorHome.open(home)
    settings = QueueSettings(dsn=queue, heartbeat_s=stalled_after / 2, stalled_after_s=stalled_after)
    status = queue_status(settings, auditor_keyid=found.key.keyid)
    if json:
        emit_json(status.to_dict())
        return
    view = status.to_dict()
    console.print(f"queue {view.pop('queue')} of auditor key {found.key.keyid}")
    for name, count in view.items():
        console.print(f"{name + ':':11} {count}")
