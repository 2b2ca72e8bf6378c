"""The rebuilder's jobs through the queue: what ``rebuild --queue`` defers and what ``auditor worker`` runs.

- :func:`defer_pass` is one pass of ``overt auditor rebuild --queue DSN``: the rebuilder's discovery
  (:func:`overt.auditor.rebuild.scan_log`), then each job without a logged verdict deferred once
  (:func:`overt.auditor.queue.defer_jobs`). :func:`follow_queue` repeats it every ``interval`` seconds.
- :func:`serve_rebuilds` is ``overt auditor worker``: a worker process (:mod:`.queue_worker`) whose job
  function is the rebuilder's :func:`~overt.auditor.rebuild.run_job`.

With a queue, the verdict store must be one every worker shares, or two machines could each log a verdict on
one provenance: :func:`queued_follow` puts it on the queue's PostgreSQL database unless another PostgreSQL
DSN is given, and refuses a SQLite one. The rebuilder's settings travel with each job (``RebuildSettings.to_dict()``);
a worker refuses a job whose verdict store is not PostgreSQL. Every worker machine holds a copy of the
auditor home (its key signs the verdicts; its log state and escrow cache stay per machine).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from overt.auditor.home import AuditorHome
from overt.auditor.queue import DeferResult, QueuedJob, QueueSettings, defer_jobs
from overt.auditor.queue_worker import Echo, JobResult, Runner, serve_queue
from overt.auditor.rebuild import (
    Discovery,
    Outcome,
    RebuildJob,
    RebuildSession,
    RebuildSettings,
    open_session,
    run_job,
    scan_log,
)
from overt.errors import ConfigError, TransportError, UsageError

_POSTGRES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeferPass:
    """One pass of ``rebuild --queue``: what discovery read, and which jobs it deferred."""

    discovery: Discovery
    deferred: DeferResult

    def to_dict(self) -> dict[str, Any]:
        d = self.discovery
        return {
            "log": {"from": d.start, "tree_size": d.tree_size, "new_provenances": d.new},
            **self.deferred.to_dict(),
            "skipped": [k.to_dict() for k in d.skipped],
        }


def queued_follow(follow: RebuildSettings, settings: QueueSettings) -> RebuildSettings:
    """``follow`` with its verdict store on a PostgreSQL database every worker shares (module doc)."""
    if follow.store is None:
        return dataclasses.replace(follow, store=settings.dsn)
    if not follow.store.startswith(_POSTGRES):
        raise UsageError(
            "with --queue the verdict store must be a PostgreSQL database every worker shares, not "
            f"{follow.store}: leave --store out to keep verdicts in the queue's database"
        )
    return follow


def defer_pass(home: AuditorHome, follow: RebuildSettings, settings: QueueSettings) -> DeferPass:
    """Discover, then defer each job without a logged verdict, once per (auditor, provenance)."""
    follow = queued_follow(follow, settings)
    discovery = scan_log(home, follow)
    jobs = [
        QueuedJob(
            auditor_keyid=home.key.keyid,
            log_index=j.log_index,
            provenance_sha256=j.provenance_sha256,
            follow=follow.to_dict(),
        )
        for j in discovery.jobs
    ]
    return DeferPass(discovery=discovery, deferred=defer_jobs(settings, jobs))


def follow_queue(
    home: AuditorHome,
    follow: RebuildSettings,
    settings: QueueSettings,
    *,
    interval: float,
    stop: threading.Event,
    report: Callable[[DeferPass | TransportError], None],
) -> None:
    """A deferring pass every ``interval`` seconds until ``stop`` is set; an unreachable log is reported and
    tried again next time. A log that does not verify ends the loop."""
    if interval < 0:
        raise UsageError("the interval is seconds, zero or more")
    while not stop.is_set():
        try:
            report(defer_pass(home, follow, settings))
        except TransportError as e:
            report(e)
        stop.wait(interval)


class _Sessions(threading.local):
    """Each worker thread's :class:`~overt.auditor.rebuild.RebuildSession`, kept across its jobs while they
    carry the same settings (one HTTP client, one store connection, the checkpoint verified once per size);
    dropped after a job that raised, so a broken connection is not reused."""

    session: RebuildSession | None = None

    def get(self, home: AuditorHome, follow: RebuildSettings) -> RebuildSession:
        if self.session is not None and self.session.follow != follow:
            self.drop()
        if self.session is None:
            self.session = open_session(home, follow)
        return self.session

    def drop(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()


def rebuild_runner(home: AuditorHome) -> Runner:
    """The worker's job function: the rebuilder's ``run_job`` with the settings the job carries, in the
    thread's session."""
    sessions = _Sessions()

    def run(job: QueuedJob) -> JobResult:
        follow = RebuildSettings.from_dict(dict(job.follow))
        if follow.store is None or not follow.store.startswith(_POSTGRES):
            raise ConfigError(
                f"job for log entry {job.log_index} keeps verdicts in {follow.store or 'the home'}, not in a "
                "PostgreSQL database every worker shares: it is not run"
            )
        session = sessions.get(home, follow)
        try:
            outcome = run_job(home, follow, RebuildJob(job.log_index, job.provenance_sha256), session=session)
        except BaseException:
            sessions.drop()
            raise
        return JobResult(summary=describe(outcome), outcome=outcome.to_dict(), final=outcome.final)

    return run


def describe(o: Outcome) -> str:
    """One line per verdict, as ``overt auditor rebuild`` prints it (the CLI makes it printable)."""
    if o.final:
        tail = f"{o.vsa_result} VSA at log index {o.vsa_index}" + (
            " (decided before)" if o.decided_before else ""
        )
    else:
        tail = f"attempt {o.attempts} of {o.limit}, deferred again by the next discovery; no VSA yet"
    return f"{o.job.log_index}  {o.artifact}  {o.verdict}  {o.reason}  {tail}"


def serve_rebuilds(home: AuditorHome, settings: QueueSettings, *, concurrency: int, echo: Echo) -> None:
    """``overt auditor worker``: run this auditor's rebuild jobs until SIGINT or SIGTERM."""
    serve_queue(
        settings, rebuild_runner(home), auditor_keyid=home.key.keyid, concurrency=concurrency, echo=echo
    )
