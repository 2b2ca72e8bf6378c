"""Rebuild benchmark: ``python -m benchmarks.rebuild [--rounds R] [--entries N] [--skip-monitor]``.

Builds the corpus with a conveyor whose log is cosigned by a witness and served by the conveyor's own log
server on loopback (:mod:`overt.auditor.testbed`): the demo's sample agent, tomli 2.0.1 and idna 3.7 from
their sdists, each ``R`` times (default 4; every build is a new provenance), and the demo's AV database,
versions 1 and 2; 14 provenances by default. The vendor's site (``public/``: log tiles, escrow, builds) is
served by Debian's nginx on loopback as in operation (the log server itself where nginx is not installed);
verdicts are submitted to the log server (``POST /add``). Then, on a throwaway PostgreSQL server (tests/pg.py), it
measures rebuild verdicts per minute with 1 and with 2 ``overt auditor worker`` processes: for each count, a
fresh auditor home (its own key, escrow cache and log state), a fresh database (queue and verdict store), the
workers started and registered, then ``rebuild --queue``'s deferring pass
(:func:`overt.auditor.queue_rebuild.defer_pass`: discovery reads and verifies the log, then defers every job)
and the workers' work. The workers' window is timed by the database's clock, from the first attempt's start
to the last completion (``seconds_N``, what ``verdicts_per_min_N`` divides by); the deferring pass
(``defer_seconds_N``, one process, the same for any number of workers) and the wall time around both
(``wall_seconds_N``) are reported beside it. Every verdict must be GOOD (a PASSED VSA in the vendor's log),
or the benchmark stops.

The monitor's throughput comes from ``python -m benchmarks.monitor --entries N`` (default 1,000,000), run
after the rebuilds as a subprocess; its last JSON line gives ``monitor_entries_per_s`` (null when the monitor
read fewer entries than the log holds). (benchmarks.monitor
has no measuring function to import, only its ``main``.)

Progress goes to stderr; the last line of stdout is one JSON object: ``verdicts_per_min_1``,
``verdicts_per_min_2``, ``worker_scaling`` (= per_min_2 / per_min_1; goal at least 1.6 on 2 cores), ``jobs``,
the seconds above, ``monitor_entries_per_s`` and ``monitor_entries``. The PyPI corpus is fetched with
pip into the tests' cache and checked against its published digests (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from tests.conftest import fetch_corpus
from tests.pg import pg_bindir, postgres_server

from overt.auditor.queue import QueueSettings, apply_schema
from overt.auditor.queue_rebuild import defer_pass
from overt.auditor.rebuild import RebuildSettings
from overt.auditor.testbed import (
    CORPUS_CASES,
    RebuildWorld,
    build_corpus_case,
    build_sample_agent,
    rebuild_world,
    release_demo_database,
)
from overt.build.sandbox import check_sandbox
from overt.distribute.testbed import conveyor_home
from overt.errors import ConfigError
from overt.server.nginx import nginx_binary, nginx_server

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 1800.0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build_provenances(world: RebuildWorld, rounds: int) -> int:
    """The corpus, built and logged by the conveyor; how many provenances it made."""
    files = fetch_corpus()
    h, made = world.conveyor, 0
    for i in range(rounds):
        say(f"round {i + 1} of {rounds}: the sample agent, tomli 2.0.1, idna 3.7")
        build_sample_agent(h, world.tmp / "sample-agent-src")
        for case in CORPUS_CASES:
            build_corpus_case(h, case, files)
        made += 1 + len(CORPUS_CASES)
    for version in (1, 2):
        say(f"the demo AV database, version {version}")
        release_demo_database(h, world.tmp / "rules", version=version)
        made += 1
    return made


def query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


@contextmanager
def fresh_database(server_dsn: str, name: str) -> Iterator[str]:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield server_dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def wait_until(what: str, check: Any, procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            said = "".join(p.read_text() for p in sorted(logs.glob("worker-*.log")))
            raise SystemExit(f"gave up waiting for {what}; the workers said:\n{said}")
        time.sleep(0.25)  # the window is timed by the database, not by this poll


@contextmanager
def workers(n: int, home: Path, dsn: str, logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` ``overt auditor worker`` processes, registered with procrastinate; SIGTERM when done."""
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(n):
            argv = [sys.executable, "-m", "overt", "auditor", "worker", "--home", str(home), "--queue", dsn]
            with (logs / f"worker-{i}.log").open("wb") as out:
                procs.append(subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT))
        registered = lambda: query(dsn, "SELECT count(*) FROM procrastinate_workers")[0][0] >= 2 * n  # noqa: E731
        wait_until(f"{n} workers to register", registered, procs, logs)
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@dataclass(frozen=True, slots=True)
class Measured:
    """One measurement: the workers' window (first attempt started to last completion written, both by the
    database's clock), the deferring pass before it, and the wall time around both."""

    workers_s: float
    defer_s: float
    wall_s: float
    job_s: float  # the mean of the attempts' durations


WINDOW = """SELECT extract(epoch FROM (SELECT max(finished_at) FROM overt_queue_done)
                             - (SELECT min(started_at) FROM overt_queue_attempts))"""
BUSY = "SELECT extract(epoch FROM sum(finished_at - started_at)) FROM overt_queue_attempts"


def measure(world: RebuildWorld, server_dsn: str, n: int, jobs: int, *, site: str) -> Measured:
    """``n`` workers rebuild every provenance, reading the vendor's ``site``; every verdict must be GOOD."""
    auditor = world.make_auditor(f"bench{n}.example/rebuilder")
    follow = RebuildSettings.of(f"{site}/log", site=site, submit=world.site, workdir=str(auditor.workdir))
    with fresh_database(server_dsn, f"bench_rebuild_{n}") as dsn:
        apply_schema(dsn)
        with workers(n, auditor.home.paths.root, dsn, world.tmp / f"workers-{n}") as procs:
            say(f"{n} worker(s) registered; deferring {jobs} jobs")
            start = time.perf_counter()
            deferred = defer_pass(auditor.home, follow, QueueSettings(dsn=dsn)).deferred
            defer_s = time.perf_counter() - start
            if len(deferred.deferred) != jobs:
                raise SystemExit(f"deferred {len(deferred.deferred)} jobs, expected {jobs}")
            with psycopg.connect(dsn, autocommit=True) as conn:  # one connection: no backend started per poll
                count = "SELECT count(*) FROM overt_queue_done"
                done = lambda: conn.execute(count).fetchall()[0][0] >= jobs  # noqa: E731
                wait_until(f"{jobs} completions", done, procs, world.tmp / f"workers-{n}")
            wall_s = time.perf_counter() - start
        verdicts = query(dsn, "SELECT outcome->>'verdict', count(*) FROM overt_queue_done GROUP BY 1")
        window = float(query(dsn, WINDOW)[0][0])
        busy = float(query(dsn, BUSY)[0][0])
    if verdicts != [("GOOD", jobs)]:
        raise SystemExit(f"{n} worker(s): the verdicts were {verdicts}, not {jobs} GOOD")
    say(
        f"{n} worker(s): {jobs} GOOD verdicts in {window:.2f} s ({defer_s:.2f} s deferring before); a job took "
        f"{busy / jobs:.3f} s on average, the workers were busy {busy / (n * window):.0%} of the window"
    )
    return Measured(workers_s=window, defer_s=defer_s, wall_s=wall_s, job_s=busy / jobs)


def monitor_figures_by_subprocess(entries: int) -> dict[str, Any]:
    """``python -m benchmarks.monitor --entries N``'s last JSON line (its progress passes through stderr)."""
    say(f"the monitor benchmark over {entries} entries (python -m benchmarks.monitor)")
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.monitor", "--entries", str(entries)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode != 0 or not lines:
        raise SystemExit(f"benchmarks.monitor exited {r.returncode} without a JSON line:\n{r.stdout}")
    figures: dict[str, Any] = json.loads(lines[-1])
    read = figures.get("entries")
    if not isinstance(read, int) or read < entries:
        say(
            f"the monitor read {read} entries of a log of {entries}: its entries/s is not the figure asked for"
        )
        figures["monitor_entries_per_s"] = None
    return figures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4, help="builds of each product (default 4)")
    ap.add_argument("--entries", type=int, default=1_000_000, help="the monitor benchmark's log size")
    ap.add_argument("--skip-monitor", action="store_true", help="measure the rebuilds only")
    args = ap.parse_args()
    try:
        check_sandbox()
    except ConfigError as e:
        raise SystemExit(f"no build sandbox here: {e}") from e
    if pg_bindir() is None:
        raise SystemExit("PostgreSQL server binaries not installed (Debian package postgresql)")
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="overt-bench-rebuild-", dir=base) as where:
        tmp = Path(where)
        conveyor = conveyor_home(tmp / "conveyor", origin="bench.overt.example/log", jurisdiction="CH")
        with ExitStack() as stack:
            server_dsn = stack.enter_context(postgres_server())
            world = stack.enter_context(rebuild_world(conveyor, tmp, name=None))
            jobs = build_provenances(world, args.rounds)
            site, served_by = world.site, "the log server (overt serve's app)"
            if nginx_binary() is not None:
                site, served_by = (
                    stack.enter_context(nginx_server(conveyor.paths.public, tmp / "nginx")).url,
                    "nginx",
                )
            say(f"the vendor's site is served by {served_by}; verdicts are submitted to the log server")
            measured = {n: measure(world, server_dsn, n, jobs, site=site) for n in (1, 2)}
    per_min = {n: jobs / m.workers_s * 60 for n, m in measured.items()}
    monitor = None if args.skip_monitor else monitor_figures_by_subprocess(args.entries)
    figures: dict[str, Any] = {"jobs": jobs, "cores": os.cpu_count(), "site": served_by}
    for n, m in measured.items():
        figures |= {
            f"seconds_{n}": round(m.workers_s, 2),
            f"defer_seconds_{n}": round(m.defer_s, 2),
            f"wall_seconds_{n}": round(m.wall_s, 2),
            f"job_seconds_{n}": round(m.job_s, 3),
            f"verdicts_per_min_{n}": round(per_min[n], 1),
        }
    figures["worker_scaling"] = round(per_min[2] / per_min[1], 3)
    figures["monitor_entries"] = None if monitor is None else monitor.get("entries")
    figures["monitor_entries_per_s"] = None if monitor is None else monitor.get("monitor_entries_per_s")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
