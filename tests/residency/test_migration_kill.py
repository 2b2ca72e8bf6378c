"""Acceptance: a migration killed with SIGKILL at each step in turn loses nothing and duplicates nothing.

A child process runs ``migrate`` and prints every ``on_step`` event; the test kills it on the Nth one
(held there, so the kill lands exactly between two events; or let run on, so it lands inside whatever write
comes next), then runs ``migrate`` again to the end and checks: every batch on the destination once with
the same sha256, none on the source, equal event counts, the tenant homed in the destination, and both
access logs holding every step. Each round moves the tenant back the other way under a new registry
version. Two real PostgreSQL servers stand for the two jurisdictions; a SQLite variant runs by default.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from overt.home import Home
from overt.residency.config import JurisdictionConfig, add_jurisdiction
from overt.residency.migration import MigrationBusy, job_table, migrate
from tests.conftest import require
from tests.residency.test_migration import BATCHES, World, check_moved, setup_world

CHILD = r"""
import sys, time
from pathlib import Path
from overt.home import Home
from overt.residency.migration import migrate
stop, hold = int(sys.argv[2]), sys.argv[3] == "hold"
seen = 0
def on_step(job, step, detail):
    global seen
    seen += 1
    print(f"{seen} {step} {detail}", flush=True)
    if seen == stop and hold:
        time.sleep(600)
migrate(Home(Path(sys.argv[1])), on_step=on_step)
print("finished", flush=True)
"""

# The events of one run with B batches: freeze (start, done); copy (start, B batches, done); verify (start,
# B source reads, B destination reads, done); switch, purge, unfreeze (start, done each).
B = BATCHES
KILL_POINTS = [
    (1, "hold"),  # freeze start: nothing done yet
    (2, "hold"),  # freeze done, not yet recorded in the job
    (3, "hold"),  # copy start
    (3 + B // 2, "hold"),  # mid-copy, after some batches
    (4 + B, "hold"),  # copy done
    (6 + B + B, "hold"),  # mid-verify, the destination being read
    (6 + 3 * B, "hold"),  # verify done
    (8 + 3 * B, "hold"),  # switch done: the home moved, the job not yet told
    (10 + 3 * B, "hold"),  # purge done
    (12 + 3 * B, "hold"),  # unfreeze done
    (3 + B // 2, "run"),  # somewhere inside the copy's writes
    (7 + 3 * B, "run"),  # somewhere inside the switch
]


def kill_at(home: Home, stop: int, how: str) -> list[str]:
    """Run migrate in a child until its ``stop``-th event, SIGKILL it, and return the events it printed."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home.path), str(stop), how],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert child.stdout is not None
    lines: list[str] = []
    try:
        while len(lines) < stop:
            line = child.stdout.readline()
            assert line and line != "finished\n", f"the child ended before event {stop}: {lines}"
            lines.append(line.strip())
        if how == "hold":
            with pytest.raises(MigrationBusy):  # while it runs, a second migration is refused
                migrate(home)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    return lines


def run_kill_matrix(w: World, points: list[tuple[int, str]]) -> None:
    here = "BR"
    for stop, how in points:
        there = "CH" if here == "BR" else "BR"
        w.move_br_to(there)
        events = kill_at(w.home, stop, how)
        assert events[-1].startswith(f"{stop} ")
        report = migrate(w.home)  # resumes the killed job and finishes it
        assert report.exit_code == 0, report.to_dict()
        assert [r.outcome for r in report.results] == ["done"]
        check_moved(w, source=here, destination=there)
        here = there
    jobs = job_table(w.home).jobs()
    assert len(jobs) == len(points) and {j.state for j in jobs} == {"done"}


def test_sigkill_at_each_step_sqlite(conveyor: Home) -> None:
    w = setup_world(conveyor)
    run_kill_matrix(w, KILL_POINTS)


def test_sigkill_at_each_step_two_postgres_servers(conveyor: Home) -> None:
    from tests.pg import pg_bindir, postgres_server

    require(pg_bindir() is not None, "PostgreSQL server binaries not installed (Debian package postgresql)")
    with postgres_server() as ch_dsn, postgres_server() as br_dsn:
        add_jurisdiction(conveyor, "CH", JurisdictionConfig(store="postgres", postgres_dsn=ch_dsn))
        add_jurisdiction(conveyor, "BR", JurisdictionConfig(store="postgres", postgres_dsn=br_dsn))
        w = setup_world(conveyor)
        run_kill_matrix(w, KILL_POINTS)
        for j in ("CH", "BR"):
            assert not (conveyor.path / "jurisdictions" / j / "store.db").exists()  # all of it in PostgreSQL
