"""The rebuilder's loop: one pass (discover, then each job in turn), and passes until a signal.

:func:`rebuild_pass` runs what :func:`overt.auditor.rebuild.discover` finds, one job after the other, in this
process and in one :class:`~overt.auditor.rebuild.RebuildSession`: the embedded default, which needs no queue
(a queue, :mod:`overt.auditor.queue`, runs the same :func:`~overt.auditor.rebuild.run_job` in workers
instead). A job that cannot be finished right now (the site or the log unreachable or unreadable, a
submission the log did not verifiably take, a key that may not sign) stays pending, uses no attempt, and is
reported; the pass goes on with the next job and exits 2. :func:`follow_log` repeats the pass every
``interval`` seconds until ``stop`` is set, finishing the job at hand first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from overt.auditor.home import AuditorHome
from overt.auditor.rebuild import (
    Discovery,
    Outcome,
    RebuildJob,
    RebuildSettings,
    open_session,
    run_job,
    scan_log,
)
from overt.auditor.verdicts import BAD, FAIL, GOOD
from overt.errors import Error, PolicyError, TransportError, UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class JobError:
    """A job a pass could not finish for a reason outside it (the site or the log unreachable, a submission
    not taken): it stays pending."""

    job: RebuildJob
    error: Error

    def to_dict(self) -> dict[str, Any]:
        return {**self.job.to_dict(), "error": type(self.error).__name__, "message": str(self.error)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Pass:
    """One pass of the rebuilder: what it discovered and what became of each job."""

    discovery: Discovery
    outcomes: tuple[Outcome, ...]
    errors: tuple[JobError, ...] = ()

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for o in self.outcomes if o.verdict == v) for v in (GOOD, BAD, FAIL)}

    @property
    def exit_code(self) -> int:
        """0 every verdict GOOD (or none), 1 some BAD or FAIL, 2 a job could not be finished (transport)."""
        if self.errors:
            return 2
        return 1 if any(o.verdict != GOOD for o in self.outcomes) else 0

    def to_dict(self) -> dict[str, Any]:
        d = self.discovery
        return {
            "log": {"from": d.start, "tree_size": d.tree_size, "new_provenances": d.new},
            "verdicts": [o.to_dict() for o in self.outcomes],
            "counts": self.counts(),
            "skipped": [k.to_dict() for k in d.skipped],
            "errors": [e.to_dict() for e in self.errors],
            "exit_code": self.exit_code,
        }


def rebuild_pass(
    home: AuditorHome,
    follow: RebuildSettings,
    *,
    on_job: Callable[[RebuildJob, bool], None] | None = None,
    stop: threading.Event | None = None,
) -> Pass:
    """Discover, then run each job in turn (stopping early once ``stop`` is set); ``on_job(job, decided)``
    before each, ``decided`` when a verdict on it is stored already (only its submission is left)."""
    discovery = scan_log(home, follow)
    outcomes: list[Outcome] = []
    errors: list[JobError] = []
    session = open_session(home, follow)
    try:
        for job in discovery.jobs:
            if stop is not None and stop.is_set():
                break
            if on_job is not None:
                on_job(job, session.decided(home.key.keyid, job))
            try:
                outcomes.append(run_job(home, follow, job, session=session))
            except (TransportError, PolicyError) as e:
                errors.append(JobError(job=job, error=e))
    finally:
        session.close()
    return Pass(discovery=discovery, outcomes=tuple(outcomes), errors=tuple(errors))


def follow_log(
    home: AuditorHome,
    follow: RebuildSettings,
    *,
    interval: float,
    stop: threading.Event,
    report: Callable[[Pass | TransportError], None],
    on_job: Callable[[RebuildJob, bool], None] | None = None,
) -> None:
    """A pass every ``interval`` seconds until ``stop`` is set; a log that cannot be reached is reported and
    tried again next time. A log that does not verify (a rollback, a fork, no quorum) ends the loop."""
    if interval < 0:
        raise UsageError("the interval is seconds, zero or more")
    while not stop.is_set():
        try:
            report(rebuild_pass(home, follow, on_job=on_job, stop=stop))
        except TransportError as e:
            report(e)
        stop.wait(interval)
