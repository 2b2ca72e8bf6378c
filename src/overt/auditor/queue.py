"""The auditor's job queue at scale: rebuild jobs in PostgreSQL, pulled by any number of worker processes.

Built on procrastinate (a PostgreSQL task queue), not home-made. This module owns the queue's database and
what the deferring side does; :mod:`overt.auditor.queue_worker` owns the worker processes.

- **Schema.** :func:`apply_schema` installs procrastinate's schema and overt's three tables on first use, under
  a transaction-scoped advisory lock, so two processes starting at once apply it once. procrastinate's
  ``schema.sql`` is not idempotent itself (it creates types); it is applied only when ``procrastinate_jobs``
  is absent from the DSN's search path. Upgrading procrastinate later is done with its own migrations.
- **One job per (auditor, provenance).** :func:`defer_jobs` holds a session advisory lock per auditor key
  while it defers, and records each deferred job in ``overt_queue_deferred`` (primary key auditor keyid,
  provenance sha256). A provenance already recorded is not deferred again, whatever its job's state: a
  discovery run twice defers each job once. procrastinate's queueing lock alone would not do, since it only
  holds while a job is ``todo``. A job that ends without a final verdict (a FAIL below its retry limit), or
  raises, gives its record up, so the next discovery defers it again, as the in-process loop retries it on
  its next pass.
- **At least once.** A worker killed in the middle of a job leaves it ``doing``; the stalled-job sweep (a
  periodic task, :mod:`.queue_worker`) retries it. So a job may run twice: each attempt is a row in
  ``overt_queue_attempts`` (with the worker's host and pid), and the completion is written once, with
  ``INSERT ... ON CONFLICT DO NOTHING`` into ``overt_queue_done``. The verdict itself is kept once per
  (auditor key, provenance) by the rebuilder's verdict store, which workers open on the same PostgreSQL.

The embedded default has no queue at all: without ``--queue``, ``overt auditor rebuild`` runs the jobs it
discovers one after the other in its own process. procrastinate's in-memory connector is for tests only, and a
single process has no other consumer to hand a job to and no worker to lose apart from itself; its restart
resumes from the rebuilder's own store.

Deliberately not here: what a job does (:mod:`overt.auditor.rebuild`), and procrastinate's worker loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from overt.errors import StorageError, UsageError

if TYPE_CHECKING:
    import procrastinate
    import psycopg

REBUILD_TASK = "overt.auditor.rebuild"
SWEEP_TASK = "overt.auditor.retry_stalled_jobs"
MAINTENANCE_QUEUE = "overt-maintenance"  # the sweep's queue; every worker serves it with a slot of its own
REBUILD_PRIORITY = 0
RECOVERED_PRIORITY = 10  # a stalled job, retried, runs before jobs deferred after it (higher runs first)
SWEEP_PRIORITY = 100

DEFAULT_HEARTBEAT_S = 2.0
DEFAULT_STALLED_AFTER_S = 10.0  # five missed heartbeats: a live but busy worker is not taken for dead
DEFAULT_SWEEP_EVERY_S = 2

_SCHEMA_LOCK = 0x6F766572_74710001  # "overtq" + 1: pg_advisory_xact_lock key for schema application
_DSN = re.compile(r"^postgres(ql)?://", re.ASCII)
_KEYID = re.compile(r"^[0-9a-f]{64}$", re.ASCII)
_SHA256 = _KEYID

OVERT_TABLES = """
CREATE TABLE IF NOT EXISTS overt_queue_deferred (
    auditor_keyid text NOT NULL,
    provenance_sha256 text NOT NULL,
    log_index bigint NOT NULL,
    job_id bigint NOT NULL,
    deferred_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (auditor_keyid, provenance_sha256));
CREATE TABLE IF NOT EXISTS overt_queue_attempts (
    id bigserial PRIMARY KEY,
    job_id bigint NOT NULL,
    auditor_keyid text NOT NULL,
    provenance_sha256 text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    error text);
CREATE TABLE IF NOT EXISTS overt_queue_done (
    auditor_keyid text NOT NULL,
    provenance_sha256 text NOT NULL,
    job_id bigint NOT NULL,
    outcome jsonb NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (auditor_keyid, provenance_sha256));
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """Where the queue is and how fast a dead worker is noticed (the same values on every worker).

    Attributes:
        dsn: a PostgreSQL connection URI, ``postgresql://...``.
        heartbeat_s: how often a worker writes its heartbeat.
        stalled_after_s: a worker without a heartbeat for this long is taken for dead and its jobs retried.
        sweep_every_s: how often the stalled-job sweep runs (a divisor of 60, for a cron seconds field).
    """

    dsn: str
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    stalled_after_s: float = DEFAULT_STALLED_AFTER_S
    sweep_every_s: int = DEFAULT_SWEEP_EVERY_S

    def __post_init__(self) -> None:
        if not _DSN.match(self.dsn):
            raise UsageError("--queue must be a PostgreSQL URI, postgresql://[user@]host[:port]/database")
        if not 0 < self.heartbeat_s <= 3600:
            raise UsageError(f"the heartbeat interval must be in (0, 3600] seconds, not {self.heartbeat_s:g}")
        if self.stalled_after_s < 2 * self.heartbeat_s:
            raise UsageError(
                f"the stalled-worker threshold ({self.stalled_after_s:g} s) must be at least twice the "
                f"heartbeat interval ({self.heartbeat_s:g} s), or a live worker is taken for dead"
            )
        if self.sweep_every_s < 1 or 60 % self.sweep_every_s:
            raise UsageError(f"the sweep interval must divide 60 seconds, not {self.sweep_every_s}")


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedJob:
    """One rebuild job as it travels in the queue: whose, which provenance, and the rebuilder's settings.

    ``follow`` is the rebuilder's ``RebuildSettings`` as its ``to_dict()`` gives it; the queue does not read it.
    """

    auditor_keyid: str
    log_index: int
    provenance_sha256: str
    follow: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _KEYID.match(self.auditor_keyid) or not _SHA256.match(self.provenance_sha256):
            raise ValueError("a queued job names a keyid and a provenance by lowercase SHA-256 hex")
        if self.log_index < 0:
            raise ValueError("a log index is not negative")

    @property
    def queueing_lock(self) -> str:
        return f"{self.auditor_keyid}:{self.provenance_sha256}"

    def to_args(self) -> dict[str, Any]:
        """The job's procrastinate arguments (JSON)."""
        return {
            "auditor_keyid": self.auditor_keyid,
            "log_index": self.log_index,
            "provenance_sha256": self.provenance_sha256,
            "follow": dict(self.follow),
        }

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> QueuedJob:
        return cls(
            auditor_keyid=str(args["auditor_keyid"]),
            log_index=int(args["log_index"]),
            provenance_sha256=str(args["provenance_sha256"]),
            follow=dict(args.get("follow") or {}),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeferResult:
    """What :func:`defer_jobs` did: jobs deferred now (by procrastinate job id) and jobs already queued."""

    deferred: tuple[tuple[QueuedJob, int], ...]
    already_queued: tuple[QueuedJob, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "deferred": [{**j.to_args(), "job_id": i} for j, i in self.deferred],
            "already_queued": [
                {"log_index": j.log_index, "provenance_sha256": j.provenance_sha256}
                for j in self.already_queued
            ],
        }


def rebuild_queue(auditor_keyid: str) -> str:
    """The procrastinate queue of one auditor's rebuild jobs: auditors may share a database, never a job.

    Named by the keyid's first 64 bits: procrastinate listens on a channel named after the queue, and
    PostgreSQL cuts identifiers at 63 bytes. A worker still checks each job's full keyid.
    """
    return f"overt-rebuild-{auditor_keyid[:16]}"


@contextmanager
def connect(dsn: str, *, what: str) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection (autocommit) to the queue's database; every database error a :class:`StorageError`."""
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            yield conn
    except psycopg.Error as e:
        raise StorageError(f"cannot {what} in the job queue's database: {one_line(e)}") from e


def apply_schema(dsn: str) -> bool:
    """Install procrastinate's schema and overt's tables unless present; True when procrastinate's was installed."""
    from procrastinate.schema import SchemaManager

    with connect(dsn, what="apply the schema") as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        installed = row is None or row[0] is None
        if installed:
            conn.execute(SchemaManager.get_schema())
        conn.execute(OVERT_TABLES)
    return installed


def require_schema(conn: psycopg.Connection[Any]) -> None:
    """Refuse a database the queue was never set up in (status and reads do not create it)."""
    row = conn.execute("SELECT to_regclass('procrastinate_jobs'), to_regclass('overt_queue_done')").fetchone()
    if row is None or row[0] is None or row[1] is None:
        raise StorageError(
            "no job queue in that database yet: `overt auditor rebuild --queue` or `overt auditor worker` sets it up"
        )


def make_app(dsn: str) -> procrastinate.App:
    """A procrastinate App on ``dsn`` with overt's rebuild task registered for deferring (no job function)."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    app.task(name=REBUILD_TASK, priority=REBUILD_PRIORITY)(_not_run_here)
    return app


def _not_run_here(**_: Any) -> None:
    raise RuntimeError("rebuild jobs run in `overt auditor worker`, not in the deferring process")


def defer_jobs(settings: QueueSettings, jobs: Sequence[QueuedJob]) -> DeferResult:
    """Defer each job not already queued for its (auditor, provenance); safe to run twice or concurrently.

    Applies the schema first. Per auditor, a session advisory lock makes concurrent deferrers take turns; it
    is released with the connection, so a killed deferrer holds nothing.
    """
    import procrastinate.exceptions

    apply_schema(settings.dsn)
    deferred: list[tuple[QueuedJob, int]] = []
    already: list[QueuedJob] = []
    app = make_app(settings.dsn)
    by_auditor: dict[str, list[QueuedJob]] = {}
    for job in jobs:
        by_auditor.setdefault(job.auditor_keyid, []).append(job)
    try:
        with connect(settings.dsn, what="defer rebuild jobs") as conn, app.open():
            for keyid, batch in by_auditor.items():
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"overt-defer:{keyid}",))
                try:
                    known = _known(conn, keyid, [j.provenance_sha256 for j in batch])
                    for job in batch:
                        if job.provenance_sha256 in known:
                            already.append(job)
                            continue
                        known.add(job.provenance_sha256)
                        job_id = _defer_one(app, job)
                        conn.execute(
                            "INSERT INTO overt_queue_deferred (auditor_keyid, provenance_sha256, log_index, job_id)"
                            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            (keyid, job.provenance_sha256, job.log_index, job_id),
                        )
                        deferred.append((job, job_id))
                finally:
                    conn.execute(
                        "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (f"overt-defer:{keyid}",)
                    )
    except procrastinate.exceptions.ConnectorException as e:
        raise StorageError(f"cannot defer rebuild jobs in the job queue's database: {one_line(e)}") from e
    return DeferResult(deferred=tuple(deferred), already_queued=tuple(already))


def _known(conn: psycopg.Connection[Any], keyid: str, digests: list[str]) -> set[str]:
    rows = conn.execute(
        "SELECT provenance_sha256 FROM overt_queue_deferred WHERE auditor_keyid = %s AND provenance_sha256 = ANY(%s)",
        (keyid, digests),
    ).fetchall()
    return {r[0] for r in rows}


def _defer_one(app: procrastinate.App, job: QueuedJob) -> int:
    """Defer one job; if a deferrer killed before it recorded the job left it ``todo``, that job is the one."""
    import procrastinate.exceptions

    task = app.tasks[REBUILD_TASK]
    try:
        return task.configure(queue=rebuild_queue(job.auditor_keyid), queueing_lock=job.queueing_lock).defer(
            **job.to_args()
        )
    except procrastinate.exceptions.AlreadyEnqueued:
        found = [j.id for j in app.job_manager.list_jobs(queueing_lock=job.queueing_lock) if j.id is not None]
        if not found:  # deleted between the two statements: defer it after all
            return _defer_one(app, job)
        return max(found)


def one_line(e: BaseException) -> str:
    """The message of ``e``, or of the psycopg error procrastinate wrapped in it, on one line."""
    cause = e.__cause__ if e.__cause__ is not None and type(e).__module__.startswith("procrastinate") else e
    return " ".join(str(cause).split()) or type(cause).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStatus:
    """One auditor's rebuild queue: jobs by procrastinate state, those of silent workers, completions written."""

    queue: str
    todo: int
    doing: int
    succeeded: int
    failed: int
    stalled: int  # doing, on a worker without a heartbeat for stalled_after_s: the sweep will retry them
    done: int  # completion rows: one per (auditor, provenance), however often a job ran

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "todo": self.todo,
            "doing": self.doing,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "stalled": self.stalled,
            "done": self.done,
        }


def queue_status(settings: QueueSettings, *, auditor_keyid: str) -> QueueStatus:
    """Read the status of ``auditor_keyid``'s queue; never creates the schema."""
    import asyncio

    import procrastinate.exceptions

    queue = rebuild_queue(auditor_keyid)
    with connect(settings.dsn, what="read the queue's status") as conn:
        require_schema(conn)
        row = conn.execute("SELECT count(*) FROM overt_queue_done WHERE auditor_keyid = %s", (auditor_keyid,))
        done = row.fetchone()
    try:
        counts, stalled = asyncio.run(_procrastinate_status(settings, queue))
    except procrastinate.exceptions.ConnectorException as e:
        raise StorageError(
            f"cannot read the queue's status in the job queue's database: {one_line(e)}"
        ) from e
    return QueueStatus(
        queue=queue,
        todo=counts.get("todo", 0),
        doing=counts.get("doing", 0),
        succeeded=counts.get("succeeded", 0),
        failed=counts.get("failed", 0),
        stalled=stalled,
        done=0 if done is None else int(done[0]),
    )


async def _procrastinate_status(settings: QueueSettings, queue: str) -> tuple[dict[str, int], int]:
    app = make_app(settings.dsn)
    async with app.open_async():
        rows = list(await app.job_manager.list_queues_async(queue=queue))
        stalled = await app.job_manager.get_stalled_jobs(
            queue=queue, seconds_since_heartbeat=settings.stalled_after_s
        )
    counts = {k: int(v) for k, v in rows[0].items() if k != "name"} if rows else {}
    return counts, len(list(stalled))
