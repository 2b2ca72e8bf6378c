"""The rebuilder's jobs through the queue, all real: the rebuild world of test_rebuild.py (a conveyor, its
witness and log server, an auditor home), a PostgreSQL database of its own, and three ``overt auditor worker``
processes, one of which is killed with SIGKILL in the middle of a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from overt.attest.vsa import VerificationSummary
from overt.auditor.queue import rebuild_queue
from overt.home import Home
from tests.auditor.test_queue import Workers, fresh_database, query, wait_for, wait_for_workers
from tests.auditor.test_rebuild import SIMPLE, RebuildWorld, make_world, overt, rebuild_args

# A build that takes a few seconds, so a worker can be killed while it rebuilds.
SLOW = SIMPLE.replace('steps = ["mkdir -p out",', 'steps = ["sleep 4", "mkdir -p out",')
FAST_WORKER = ("--heartbeat", "0.5", "--stalled-after", "2", "--sweep-every", "1")


@pytest.fixture
def world(conveyor: Home, sandbox: None, tmp_path: Path) -> Iterator[RebuildWorld]:
    yield from make_world(conveyor, tmp_path)


@pytest.fixture
def queue_dsn(postgres_dsn: str) -> Iterator[str]:
    yield from fresh_database(postgres_dsn)


@pytest.mark.slow
def test_a_worker_killed_mid_rebuild_loses_nothing_and_logs_no_verdict_twice(
    world: RebuildWorld, queue_dsn: str, tmp_path: Path
) -> None:
    assert SLOW != SIMPLE
    pubs = [
        world.build({"hello.txt": "hello a\n"}, name="a"),
        world.build({"hello.txt": "hello b\n"}, name="b"),
        world.build({"hello.txt": "hello slow\n"}, recipe=SLOW, name="slow"),
    ]
    digests = [hashlib.sha256(p.signed.entry).hexdigest() for p in pubs]
    home = str(world.auditor.paths.root)
    workers = Workers(tmp_path / "workers", queue_dsn)
    (tmp_path / "workers").mkdir()
    try:
        workers.start(
            3, module="overt", args=("auditor", "worker", "--home", home, "--queue", queue_dsn, *FAST_WORKER)
        )
        wait_for_workers(queue_dsn, 3, workers)
        r = overt(*rebuild_args(world, "--queue", queue_dsn, "--once", "--json"))
        assert r.returncode == 0, r.stderr
        deferred = json.loads(r.stdout)["deferred"]
        assert sorted(d["provenance_sha256"] for d in deferred) == sorted(digests)
        assert {d["follow"]["store"] for d in deferred} == {
            queue_dsn
        }  # the verdict store every worker shares

        slow = digests[2]

        def slow_rebuilding() -> bool:
            return bool(
                query(
                    queue_dsn,
                    "SELECT 1 FROM overt_queue_attempts WHERE provenance_sha256 = %s AND finished_at IS NULL",
                    slow,
                )
            )

        wait_for("the slow rebuild to start", slow_rebuilding, workers)
        [(pid,)] = query(queue_dsn, "SELECT pid FROM overt_queue_attempts WHERE provenance_sha256 = %s", slow)
        killed = next(p for p in workers.procs if p.pid == pid)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        wait_for(
            "3 completions",
            lambda: query(queue_dsn, "SELECT count(*) FROM overt_queue_done")[0][0] == 3,
            workers,
        )

        # The killed attempt never finished; the sweep's retry, on another worker, did.
        attempts = query(
            queue_dsn,
            "SELECT pid, finished_at FROM overt_queue_attempts WHERE provenance_sha256 = %s ORDER BY id",
            slow,
        )
        assert attempts[0] == (pid, None) and len(attempts) == 2
        assert attempts[1][0] != pid and attempts[1][1] is not None
        assert "its worker stopped sending heartbeats" in workers.output()

        # Exactly one verdict per provenance, in the log and in the shared verdict store.
        logged = [VerificationSummary.from_statement(s) for _, s in world.verdicts()]
        assert sorted(v.input_attestations[0].digest["sha256"] for v in logged) == sorted(digests)
        assert all(v.passed for v in logged)
        stored = query(queue_dsn, "SELECT provenance_sha256, verdict FROM overt_rebuild.rebuild_verdicts")
        assert sorted(stored) == sorted((d, "GOOD") for d in digests)
        states = query(
            queue_dsn,
            "SELECT status, count(*) FROM procrastinate_jobs WHERE queue_name = %s GROUP BY status",
            rebuild_queue(world.auditor.key.keyid),
        )
        assert states == [("succeeded", 3)]

        # Discovery again: nothing left to defer; the status says every job is done.
        again = overt(*rebuild_args(world, "--queue", queue_dsn, "--once", "--json"))
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["deferred"] == []
        status = overt("auditor", "queue-status", "--home", home, "--queue", queue_dsn, "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) == {
            "queue": rebuild_queue(world.auditor.key.keyid),
            "todo": 0,
            "doing": 0,
            "succeeded": 3,
            "failed": 0,
            "stalled": 0,
            "done": 3,
        }
    finally:
        workers.stop()
