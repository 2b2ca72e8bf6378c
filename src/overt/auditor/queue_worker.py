"""``overt auditor worker``: a process that pulls an auditor's rebuild jobs from the queue and runs them.

Start any number, on any machines that reach the database. Each process runs two procrastinate workers in
one event loop, each with its own heartbeat:

- the *rebuild* worker, on the auditor's queue (:func:`overt.auditor.queue.rebuild_queue`), runs up to
  ``concurrency`` jobs at a time, each in a thread (a rebuild is blocking work: a sandbox, downloads);
- the *sweep* worker, on :data:`~overt.auditor.queue.MAINTENANCE_QUEUE` with one slot of its own, runs the
  stalled-job sweep, so the sweep never waits behind long rebuilds.

The sweep is procrastinate's documented recovery: a periodic task (every ``sweep_every_s``; the database
keeps it to one run per tick however many workers there are) that asks for the jobs of workers without a
heartbeat for ``stalled_after_s`` (``get_stalled_jobs``) and puts them back in ``todo`` (``retry_job``) at
:data:`~overt.auditor.queue.RECOVERED_PRIORITY`, ahead of newer jobs. Delivery is therefore at least once:
every attempt is recorded, the completion once (:mod:`overt.auditor.queue`).

A job's function is given as a :data:`Runner`; ``overt auditor worker`` passes the rebuilder's ``run_job``.
Transient failures (:class:`~overt.errors.TransportError`, :class:`~overt.errors.StorageError`) are retried by
procrastinate with a growing wait; any other error fails the job, visible in ``overt auditor queue-status``.
SIGINT or SIGTERM stops a worker after its running jobs end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from overt.auditor.queue import (
    MAINTENANCE_QUEUE,
    REBUILD_PRIORITY,
    REBUILD_TASK,
    RECOVERED_PRIORITY,
    SWEEP_PRIORITY,
    SWEEP_TASK,
    QueuedJob,
    QueueSettings,
    apply_schema,
    connect,
    one_line,
    rebuild_queue,
)
from overt.errors import ConfigError, Error, StorageError, TransportError, UsageError

if TYPE_CHECKING:
    import procrastinate
    from procrastinate.job_context import JobContext

MAX_CONCURRENCY = 64
TRANSIENT_ATTEMPTS = 5  # a job failing with a transient error runs at most this often
TRANSIENT_WAIT_S = 10  # ... waiting 10, 20, 30, 40 s between attempts


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """What a job function returns: one line for the worker's output, a JSON outcome, and whether it is final.

    A result that is not final (a FAIL below its retry limit) completes nothing: the next discovery defers
    the job again, as the in-process loop tries it again on its next pass.
    """

    summary: str
    outcome: Mapping[str, Any]
    final: bool = True


Runner = Callable[[QueuedJob], JobResult]
Echo = Callable[[str], None]


def serve_queue(
    settings: QueueSettings, runner: Runner, *, auditor_keyid: str, concurrency: int = 1, echo: Echo = print
) -> None:
    """Run a worker process for one auditor's queue until SIGINT or SIGTERM; applies the schema first."""
    import procrastinate.exceptions

    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise UsageError(f"--concurrency must be from 1 to {MAX_CONCURRENCY}, not {concurrency}")
    apply_schema(settings.dsn)
    app = make_worker_app(settings, runner, auditor_keyid=auditor_keyid, echo=echo, concurrency=concurrency)
    try:
        asyncio.run(_serve(app, settings, queue=rebuild_queue(auditor_keyid), concurrency=concurrency))
    except procrastinate.exceptions.ConnectorException as e:
        raise StorageError(f"the worker lost the job queue's database: {one_line(e)}") from e


def make_worker_app(
    settings: QueueSettings, runner: Runner, *, auditor_keyid: str, echo: Echo, concurrency: int
) -> procrastinate.App:
    """The App a worker runs: the rebuild task calling ``runner``, and the periodic stalled-job sweep."""
    import procrastinate

    connector = procrastinate.PsycopgConnector(
        conninfo=settings.dsn, min_size=2, max_size=2 * concurrency + 6
    )
    app = procrastinate.App(connector=connector)
    retry = procrastinate.RetryStrategy(
        max_attempts=TRANSIENT_ATTEMPTS,
        wait=TRANSIENT_WAIT_S,
        linear_wait=TRANSIENT_WAIT_S,
        retry_exceptions={TransportError, StorageError},
    )

    @app.task(name=REBUILD_TASK, pass_context=True, priority=REBUILD_PRIORITY, retry=retry)
    def rebuild(context: JobContext, /, **args: Any) -> None:
        job_id = context.job.id
        assert job_id is not None  # a fetched job has an id
        job = QueuedJob.from_args(args)
        if (
            job.auditor_keyid != auditor_keyid
        ):  # the queue's name holds 64 bits of the keyid, the job all of it
            raise ConfigError(
                f"job {job_id} is auditor {job.auditor_keyid}'s, this worker is {auditor_keyid}'s"
            )
        run_one(settings.dsn, runner, job, job_id=job_id, echo=echo)

    @app.periodic(cron=f"* * * * * */{settings.sweep_every_s}", periodic_id="stalled")
    @app.task(name=SWEEP_TASK, queue=MAINTENANCE_QUEUE, queueing_lock=SWEEP_TASK, priority=SWEEP_PRIORITY)
    async def sweep(timestamp: int) -> None:
        for line in await retry_stalled_jobs(app, stalled_after_s=settings.stalled_after_s):
            echo(line)

    del rebuild, sweep  # registered in the app
    return app


async def retry_stalled_jobs(app: procrastinate.App, *, stalled_after_s: float) -> list[str]:
    """Put the jobs of workers silent for ``stalled_after_s`` back in ``todo``; returns a line per job retried."""
    import procrastinate.exceptions

    retried = []
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s):
        recovered = job.task_name == REBUILD_TASK
        try:
            await app.job_manager.retry_job(job, priority=RECOVERED_PRIORITY if recovered else None)
        except procrastinate.exceptions.ConnectorException:
            continue  # another sweep retried it first, or it finished: nothing to do
        if recovered:
            args = job.task_kwargs
            retried.append(
                f"retrying queue job {job.id} (log entry {args.get('log_index')}): its worker stopped sending heartbeats"
            )
    # Sweeps run every few seconds: keep the last hour of them, not every one since the queue began.
    await app.job_manager.delete_old_jobs(nb_hours=1, queue=MAINTENANCE_QUEUE)
    return retried


def run_one(dsn: str, runner: Runner, job: QueuedJob, *, job_id: int, echo: Echo) -> None:
    """One attempt of one job: recorded before it runs, its completion written once (``ON CONFLICT``).

    A job that raises, or ends without a final result, gives up its place in ``overt_queue_deferred``, so the
    next discovery defers it again (procrastinate may also retry it: a retry waiting in ``todo`` is the one
    that discovery finds, by its queueing lock).
    """
    host, pid = socket.gethostname(), os.getpid()
    with connect(dsn, what="record a job attempt") as conn:
        row = conn.execute(
            "INSERT INTO overt_queue_attempts (job_id, auditor_keyid, provenance_sha256, host, pid)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (job_id, job.auditor_keyid, job.provenance_sha256, host, pid),
        ).fetchone()
    assert row is not None
    attempt = row[0]
    try:
        result = runner(job)
    except Exception as e:
        message = e.message if isinstance(e, Error) else f"{type(e).__name__}: {e}"
        _unfinished(dsn, job, job_id=job_id, attempt=attempt, error=message)
        echo(f"{job.log_index}  failed: {message}  (queue job {job_id})")
        raise
    if not result.final:
        _unfinished(dsn, job, job_id=job_id, attempt=attempt, error=None)
        echo(f"{result.summary}  (queue job {job_id})")
        return
    with connect(dsn, what="record a finished job") as conn, conn.transaction():
        first = conn.execute(
            "INSERT INTO overt_queue_done (auditor_keyid, provenance_sha256, job_id, outcome, host, pid)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (auditor_keyid, provenance_sha256) DO NOTHING"
            " RETURNING 1",
            (job.auditor_keyid, job.provenance_sha256, job_id, json.dumps(dict(result.outcome)), host, pid),
        ).fetchone()
        conn.execute("UPDATE overt_queue_attempts SET finished_at = now() WHERE id = %s", (attempt,))
    again = "" if first else ", which an earlier attempt had completed"
    echo(f"{result.summary}  (queue job {job_id}{again})")


def _unfinished(dsn: str, job: QueuedJob, *, job_id: int, attempt: int, error: str | None) -> None:
    """End an attempt that completed nothing, and let the next discovery defer the job again."""
    with connect(dsn, what="record an unfinished job") as conn, conn.transaction():
        conn.execute(
            "UPDATE overt_queue_attempts SET finished_at = now(), error = %s WHERE id = %s", (error, attempt)
        )
        conn.execute(
            "DELETE FROM overt_queue_deferred WHERE auditor_keyid = %s AND provenance_sha256 = %s AND job_id = %s",
            (job.auditor_keyid, job.provenance_sha256, job_id),
        )


async def _serve(app: procrastinate.App, settings: QueueSettings, *, queue: str, concurrency: int) -> None:
    from procrastinate.worker import Worker

    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=concurrency + 2, thread_name_prefix="overt-job"))
    common: dict[str, Any] = {
        "install_signal_handlers": False,  # one handler below stops both workers
        "update_heartbeat_interval": settings.heartbeat_s,
        "stalled_worker_timeout": settings.stalled_after_s,
        "fetch_job_polling_interval": settings.heartbeat_s,  # a retried job is not notified, only polled
    }
    async with app.open_async():
        workers = [
            Worker(app, queues=[queue], concurrency=concurrency, name="rebuild", **common),
            Worker(app, queues=[MAINTENANCE_QUEUE], concurrency=1, name="sweep", **common),
        ]

        def stop() -> None:
            for worker in workers:
                worker.stop()  # type: ignore[no-untyped-call]  # procrastinate leaves it unannotated

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await asyncio.gather(*(worker.run() for worker in workers))  # type: ignore[no-untyped-call]
