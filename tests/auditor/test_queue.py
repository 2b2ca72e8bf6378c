"""The auditor's job queue on a real PostgreSQL, with real worker processes (overt.auditor.queue, queue_worker).

Each test gets a database of its own on the session's server, so no test sees another's jobs. Workers are
``python -m tests.auditor.test_queue_stub`` processes (the queue's real worker, with a stand-in job function);
the rebuilder's own job is tested through ``overt auditor worker`` in test_queue_rebuild.py.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from overt.auditor.queue import (
    DeferResult,
    QueuedJob,
    QueueSettings,
    apply_schema,
    defer_jobs,
    queue_status,
    rebuild_queue,
)
from overt.auditor.queue_worker import JobResult, run_one
from overt.errors import StorageError, UsageError
from tests.auditor.test_queue_stub import settings

REPO = Path(__file__).resolve().parents[2]
KEYID = hashlib.sha256(b"auditor a1").hexdigest()
DEADLINE_S = 90.0


def fresh_database(server_dsn: str) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server, dropped afterwards."""
    name = f"q_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield server_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def queue_dsn(postgres_dsn: str) -> Iterator[str]:
    yield from fresh_database(postgres_dsn)


class Workers:
    """Worker processes started with subprocess; stopped (SIGTERM, then SIGKILL) at the end of the test."""

    def __init__(self, tmp: Path, dsn: str) -> None:
        self.tmp, self.dsn = tmp, dsn
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, n: int, *, module: str = "tests.auditor.test_queue_stub", args: tuple[str, ...] = ()
    ) -> None:
        for _ in range(n):
            argv = [sys.executable, "-m", module, *(args or (self.dsn, KEYID))]
            with (self.tmp / f"worker-{len(self.procs)}.log").open("wb") as out:
                self.procs.append(subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT))

    def output(self) -> str:
        return "".join(p.read_text() for p in sorted(self.tmp.glob("worker-*.log")))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def workers(tmp_path: Path, queue_dsn: str) -> Iterator[Workers]:
    running = Workers(tmp_path, queue_dsn)
    yield running
    running.stop()


def job(index: int, **follow: Any) -> QueuedJob:
    digest = hashlib.sha256(f"provenance {index}".encode()).hexdigest()
    return QueuedJob(auditor_keyid=KEYID, log_index=index, provenance_sha256=digest, follow=follow)


def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for(what: str, check: Callable[[], bool], workers: Workers) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; workers said:\n{workers.output()}")
        for p in workers.procs:
            assert p.poll() is None or p.returncode == -signal.SIGKILL, workers.output()
        time.sleep(0.1)


def wait_for_workers(dsn: str, n: int, workers: Workers) -> None:
    """Each worker process registers two procrastinate workers (rebuild and sweep), once it set the schema up."""

    def registered() -> bool:
        if query(dsn, "SELECT to_regclass('procrastinate_workers')") == [(None,)]:
            return False
        return int(query(dsn, "SELECT count(*) FROM procrastinate_workers")[0][0]) >= 2 * n

    wait_for(f"{n} workers", registered, workers)


def done_count(dsn: str) -> int:
    return int(query(dsn, "SELECT count(*) FROM overt_queue_done")[0][0])


def test_three_workers_do_every_job_exactly_once(queue_dsn: str, workers: Workers) -> None:
    n = 12
    apply_schema(queue_dsn)
    workers.start(3)
    wait_for_workers(queue_dsn, 3, workers)
    result = defer_jobs(settings(queue_dsn), [job(i, hold_s=0.2) for i in range(n)])
    assert len(result.deferred) == n and not result.already_queued
    wait_for(f"{n} completions", lambda: done_count(queue_dsn) == n, workers)

    done = query(
        queue_dsn, "SELECT provenance_sha256, outcome FROM overt_queue_done ORDER BY provenance_sha256"
    )
    assert sorted(d for d, _ in done) == sorted(job(i).provenance_sha256 for i in range(n))
    assert sorted(o["log_index"] for _, o in done) == list(range(n))
    attempts = query(queue_dsn, "SELECT provenance_sha256, pid, finished_at FROM overt_queue_attempts")
    assert len(attempts) == n  # no job ran twice
    assert all(finished is not None for _, _, finished in attempts)
    assert len({pid for _, pid, _ in attempts}) >= 2  # more than one process pulled jobs
    workers.stop()
    assert [p.returncode for p in workers.procs] == [0, 0, 0]  # SIGTERM: a clean stop
    status = queue_status(settings(queue_dsn), auditor_keyid=KEYID)
    assert (status.todo, status.doing, status.succeeded, status.failed, status.stalled, status.done) == (
        0,
        0,
        n,
        0,
        0,
        n,
    )


def test_a_killed_workers_job_is_retried_by_the_sweep_and_completes_once(
    queue_dsn: str, workers: Workers, tmp_path: Path
) -> None:
    n = 6
    release = tmp_path / "release"
    victim = job(0, hold_until=str(release))
    apply_schema(queue_dsn)
    workers.start(3)
    wait_for_workers(queue_dsn, 3, workers)
    defer_jobs(settings(queue_dsn), [victim, *(job(i, hold_s=0.3) for i in range(1, n))])

    def victim_running() -> bool:
        rows = query(
            queue_dsn,
            "SELECT a.pid FROM overt_queue_attempts a JOIN procrastinate_jobs j ON j.id = a.job_id"
            " WHERE a.provenance_sha256 = %s AND j.status = 'doing' AND a.finished_at IS NULL",
            victim.provenance_sha256,
        )
        return bool(rows)

    wait_for("the held job to be doing", victim_running, workers)
    [(pid,)] = query(
        queue_dsn,
        "SELECT pid FROM overt_queue_attempts WHERE provenance_sha256 = %s",
        victim.provenance_sha256,
    )
    killed = next(p for p in workers.procs if p.pid == pid)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    release.touch()  # the retried attempt, on another worker, goes through
    wait_for(f"{n} completions", lambda: done_count(queue_dsn) == n, workers)

    attempts = query(
        queue_dsn,
        "SELECT pid, finished_at FROM overt_queue_attempts WHERE provenance_sha256 = %s ORDER BY id",
        victim.provenance_sha256,
    )
    assert len(attempts) == 2
    assert attempts[0] == (pid, None)  # the killed attempt never finished
    assert attempts[1][0] != pid and attempts[1][1] is not None
    done = query(queue_dsn, "SELECT provenance_sha256 FROM overt_queue_done")
    assert len(done) == len({d for (d,) in done}) == n
    states = query(
        queue_dsn,
        "SELECT status, count(*) FROM procrastinate_jobs WHERE queue_name = %s GROUP BY status",
        rebuild_queue(KEYID),
    )
    assert states == [("succeeded", n)]
    assert "its worker stopped sending heartbeats" in workers.output()


def test_deferring_twice_defers_each_job_once(queue_dsn: str, workers: Workers) -> None:
    first = [job(i) for i in range(5)]
    s = settings(queue_dsn)
    assert len(defer_jobs(s, first).deferred) == 5
    again = defer_jobs(s, first)  # discovery ran again before any worker took a job
    assert not again.deferred and len(again.already_queued) == 5

    workers.start(1)
    wait_for("5 completions", lambda: done_count(queue_dsn) == 5, workers)
    later = defer_jobs(s, [*first, job(5), job(5)])  # after the jobs ran, and a duplicate within one batch
    assert [j.log_index for j, _ in later.deferred] == [5]
    assert len(later.already_queued) == 6
    wait_for("6 completions", lambda: done_count(queue_dsn) == 6, workers)
    rows = query(
        queue_dsn, "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = %s", rebuild_queue(KEYID)
    )
    assert rows == [(6,)]


def test_concurrent_deferrers_defer_each_job_once(queue_dsn: str) -> None:
    jobs = [job(i) for i in range(20)]
    s = settings(queue_dsn)
    apply_schema(queue_dsn)
    results: list[DeferResult] = []
    threads = [threading.Thread(target=lambda: results.append(defer_jobs(s, jobs))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.deferred) for r in results) == 20
    assert query(queue_dsn, "SELECT count(*) FROM procrastinate_jobs")[0][0] == 20


def test_schema_is_applied_once_and_status_needs_it(queue_dsn: str) -> None:
    s = settings(queue_dsn)
    with pytest.raises(StorageError, match="no job queue in that database yet"):
        queue_status(s, auditor_keyid=KEYID)
    assert apply_schema(queue_dsn) is True
    assert apply_schema(queue_dsn) is False  # the second time changes nothing, and does not fail
    assert queue_status(s, auditor_keyid=KEYID).to_dict()["todo"] == 0


def test_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="PostgreSQL URI"):
        QueueSettings(dsn="/var/lib/auditor/verdicts.sqlite")
    with pytest.raises(UsageError, match="twice the heartbeat"):
        QueueSettings(dsn="postgresql://db/q", heartbeat_s=5, stalled_after_s=6)
    with pytest.raises(UsageError, match="divide 60"):
        QueueSettings(dsn="postgresql://db/q", sweep_every_s=7)


def test_an_unreachable_queue_is_a_storage_error() -> None:
    port = 1  # nothing listens there
    s = QueueSettings(dsn=f"postgresql://overt@127.0.0.1:{port}/q")
    with pytest.raises(StorageError, match="job queue's database"):
        defer_jobs(s, [job(0)])


def test_a_job_run_twice_completes_once(queue_dsn: str) -> None:
    """At least once: a worker taken for dead may finish the job after its retry did; one completion stays."""
    apply_schema(queue_dsn)
    lines: list[str] = []
    for attempt in ("first", "second"):
        done = JobResult(summary=f"{attempt} attempt", outcome={"attempt": attempt})
        run_one(queue_dsn, lambda _, r=done: r, job(7), job_id=1, echo=lines.append)
    assert query(queue_dsn, "SELECT outcome FROM overt_queue_done") == [({"attempt": "first"},)]
    assert query(queue_dsn, "SELECT count(*) FROM overt_queue_attempts WHERE finished_at IS NOT NULL") == [
        (2,)
    ]
    assert lines == [
        "first attempt  (queue job 1)",
        "second attempt  (queue job 1, which an earlier attempt had completed)",
    ]


def test_a_job_without_a_final_result_or_that_raised_is_deferred_again(
    queue_dsn: str, workers: Workers
) -> None:
    s = settings(queue_dsn)
    jobs = [job(0, final=False), job(1, fail=True), job(2)]
    assert len(defer_jobs(s, jobs).deferred) == 3
    workers.start(1)

    def ended() -> bool:
        return query(
            queue_dsn, "SELECT count(*) FROM overt_queue_attempts WHERE finished_at IS NOT NULL"
        ) == [(3,)]

    wait_for("3 attempts to end", ended, workers)
    assert query(queue_dsn, "SELECT error FROM overt_queue_attempts ORDER BY job_id") == [
        (None,),
        ("log entry 1 is not what the job says",),
        (None,),
    ]
    assert [d for (d,) in query(queue_dsn, "SELECT provenance_sha256 FROM overt_queue_done")] == [
        job(2).provenance_sha256
    ]
    again = defer_jobs(s, jobs)  # the next discovery: both come back, the completed one does not
    assert sorted(j.log_index for j, _ in again.deferred) == [0, 1]
    assert [j.log_index for j in again.already_queued] == [2]
    output = workers.output()
    assert (
        "log index 0: to be tried again" in output
        and "1  failed: log entry 1 is not what the job says" in output
    )
