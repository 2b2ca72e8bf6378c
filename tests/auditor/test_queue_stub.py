"""A real queue worker process whose job function stands in for the rebuilder (no tests in this module).

``python -m tests.auditor.test_queue_stub DSN AUDITOR_KEYID`` runs :func:`overt.auditor.queue_worker.serve_queue`
with fast heartbeats. A job's ``follow`` says how it behaves: ``hold_s`` sleeps that long, ``hold_until`` waits
until that file exists, so a test can see the job ``doing`` and kill its worker; ``final: false`` ends it
without a final result (as a FAIL below its retry limit), ``fail: true`` raises.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from overt.auditor.queue import QueuedJob, QueueSettings
from overt.auditor.queue_worker import JobResult, serve_queue
from overt.errors import FormatError

HEARTBEAT_S = 0.5
STALLED_AFTER_S = 2.0
SWEEP_EVERY_S = 1


def stand_in(job: QueuedJob) -> JobResult:
    hold_until = job.follow.get("hold_until")
    if hold_until is not None:
        while not Path(hold_until).exists():
            time.sleep(0.05)
    time.sleep(float(job.follow.get("hold_s", 0)))
    if job.follow.get("fail"):
        raise FormatError(f"log entry {job.log_index} is not what the job says")
    final = bool(job.follow.get("final", True))
    summary = f"log index {job.log_index}: {'done' if final else 'to be tried again'}"
    return JobResult(summary=summary, outcome={"log_index": job.log_index}, final=final)


def settings(dsn: str) -> QueueSettings:
    return QueueSettings(
        dsn=dsn, heartbeat_s=HEARTBEAT_S, stalled_after_s=STALLED_AFTER_S, sweep_every_s=SWEEP_EVERY_S
    )


if __name__ == "__main__":
    dsn, keyid = sys.argv[1], sys.argv[2]
    serve_queue(settings(dsn), stand_in, auditor_keyid=keyid, echo=lambda line: print(line, flush=True))
