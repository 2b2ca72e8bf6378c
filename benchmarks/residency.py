"""Residency storage benchmark: ``python -m benchmarks.residency [--batches N] [--events E] [--dir D]``.

Measures, in one run and on the same rows, two ways of storing telemetry batches of E (default 1,000)
events, one transaction per batch:

- **raw**: the physical limit. The event rows, built before the clock starts, go into the same schema with
  the same settings by plain sqlite3 (``executemany``; the store's PRAGMAS) and psycopg (``COPY``), without
  overt. Only the DDL and pragma strings are taken from overt's store modules, so that the two cannot drift.
- **store**: what overt does per batch: ``parse_batch`` on the raw bytes, then ``write_batch`` into the
  jurisdiction store opened by ``open_store`` (SQLite: the blob written and fsynced, then the rows; PostgreSQL:
  the batch row with its bytes, then the rows by COPY).

Then ``store_events_per_s_<db>_2_threads``: the store path again on fresh batches, by two threads (as
concurrent requests would run; PostgreSQL with a store each, SQLite sharing one), so that one batch's parse
may overlap another's commit. The raw figures stay single-stream: that is the issue's physical limit.

The two are interleaved batch by batch (raw, store, raw, store ...), each into its own empty database on the
same disk or server, so that drift on a shared machine hits both alike. Rates are events over the summed
per-batch times; p50/p99 are per batch. PostgreSQL is a throwaway server started here from Debian's
binaries (the logic of tests/pg.py, copied); without them the postgres figures are left out, with the reason.
The HTTP ingest part (routing, auth) is to be measured on top of these by a later section.

The last line of output is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TENANT = "t-00000000000000be"
THREADS = 2
VERDICTS = ("malicious", "suspicious", "clean")


# -- data ------------------------------------------------------------------------------------------------


def make_batches(count: int, events: int, seed: int = 15, first: int = 0) -> list[bytes]:
    """``count`` distinct batch bodies as a sender would post them (random file hashes: a random index)."""
    rng = hashlib.sha256(seed.to_bytes(8, "big"))
    start = datetime(2026, 12, 1, tzinfo=UTC)
    out = []
    for b in range(first, first + count):
        evs = []
        for i in range(events):
            rng.update(b"x")
            t = start + timedelta(seconds=(b * events + i) * 7)
            evs.append(
                {
                    "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "file_sha256": rng.hexdigest(),
                    "rule_id": f"Win.Trojan.Agent-{(b * 31 + i) % 200}",
                    "verdict": VERDICTS[i % 3],
                    "database": "overt-avdb",
                    "database_version": 20261201 + b,
                }
            )
        body = {"batch_id": str(uuid.UUID(int=b + 1)), "endpoint": f"host-{b % 17}", "events": evs}
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def plain_rows(tenant: str, raw: bytes) -> list[tuple[Any, ...]]:
    """The event rows of one batch, built with the standard library only (outside the clock)."""
    doc = json.loads(raw)
    rows = []
    for seq, e in enumerate(doc["events"]):
        t = datetime.fromisoformat(e["time"]).astimezone(UTC)
        rows.append(
            (
                tenant,
                doc["batch_id"],
                seq,
                t.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                t.date().isoformat(),
                e["file_sha256"],
                e["rule_id"],
                e["verdict"],
                e["database"],
                e["database_version"],
                doc["endpoint"],
            )
        )
    return rows


# -- PostgreSQL server (the logic of tests/pg.py, copied: benchmarks import nothing from tests/) ---------


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def postgres_server(bindir: Path) -> Iterator[str]:
    base = Path(tempfile.mkdtemp(prefix="overt-bench-pg-"))
    os.chmod(base, 0o755)
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(base, "nobody", "nogroup")
        prefix = ["runuser", "-u", "nobody", "--"]
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=base)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "overt", "--no-sync")
        opts = f"-k {base} -p {port} -c listen_addresses=127.0.0.1"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start")
        try:
            yield f"postgresql://overt@127.0.0.1:{port}"
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def new_database(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


# -- the two paths -------------------------------------------------------------------------------------


def raw_sqlite(path: Path) -> Callable[[list[tuple[Any, ...]]], None]:
    from overt.residency.store_sqlite import INSERT_EVENT, PRAGMAS, SCHEMA

    db = sqlite3.connect(path, isolation_level=None)
    for statement in (*PRAGMAS, *SCHEMA):
        db.execute(statement)

    def insert(rows: list[tuple[Any, ...]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(INSERT_EVENT, rows)
        db.execute("COMMIT")

    return insert


def raw_postgres(dsn: str) -> Callable[[list[tuple[Any, ...]]], None]:
    import psycopg

    from overt.residency.store_postgres import COPY_EVENTS, SCHEMA

    db = psycopg.connect(dsn, autocommit=True)
    for statement in SCHEMA:
        db.execute(statement)

    def insert(rows: list[tuple[Any, ...]]) -> None:
        with db.transaction(), db.cursor() as cur, cur.copy(COPY_EVENTS) as copy:
            for row in rows:
                copy.write_row(row)

    return insert


def store_path(home: Any, j: str) -> Callable[[bytes], None]:
    from overt.residency.stores import open_store
    from overt.residency.telemetry import parse_batch

    store = open_store(home, j, create=True)

    def ingest(raw: bytes) -> None:
        stored = store.write_batch(TENANT, parse_batch(raw), raw)
        if stored.duplicate:
            raise RuntimeError("a benchmark batch was already stored")

    return ingest


def interleave(
    bodies: list[bytes], raw: Callable[[list[tuple[Any, ...]]], None], store: Callable[[bytes], None]
) -> dict[str, list[float]]:
    """Per-batch seconds of each path, alternating the two."""
    times: dict[str, list[float]] = {"raw": [], "store": []}
    for body in bodies:
        # Built per batch, not all before: a million live row objects would slow every garbage collection
        # the store path's parse triggers, and a server holds no such heap.
        batch_rows = plain_rows(TENANT, body)
        t0 = time.perf_counter()
        raw(batch_rows)
        t1 = time.perf_counter()
        store(body)
        t2 = time.perf_counter()
        times["raw"].append(t1 - t0)
        times["store"].append(t2 - t1)
    return times


def threaded(bodies: list[bytes], open_path: Callable[[], Callable[[bytes], None]], threads: int) -> float:
    """Events/s of ``threads`` ingesters taking batches in turn, so that the parse of one batch may overlap
    the commit of another (PostgreSQL works in its own process; SQLite's writes hold the GIL for most of
    their time, so there the threads mostly take turns)."""
    paths = [open_path() for _ in range(threads)]
    work = iter(bodies)
    lock = threading.Lock()
    events = len(json.loads(bodies[0])["events"])

    def run(ingest: Callable[[bytes], None]) -> None:
        while True:
            with lock:
                body = next(work, None)
            if body is None:
                return
            ingest(body)

    workers = [threading.Thread(target=run, args=(p,)) for p in paths]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return events * len(bodies) / (time.perf_counter() - t0)


def figures(kind: str, times: dict[str, list[float]], events: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, seconds in times.items():
        ms = sorted(s * 1000 for s in seconds)
        out[f"{path}_events_per_s_{kind}"] = round(events * len(seconds) / sum(seconds))
        out[f"{path}_batch_p50_ms_{kind}"] = round(statistics.median(ms), 2)
        out[f"{path}_batch_p99_ms_{kind}"] = round(ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))], 2)
    out[f"store_vs_raw_ratio_{kind}"] = round(
        out[f"store_events_per_s_{kind}"] / out[f"raw_events_per_s_{kind}"], 3
    )
    return out


def parse_figures(body: bytes, events: int) -> dict[str, Any]:
    from overt.residency.telemetry import parse_batch

    runs = []
    for _ in range(30):
        t0 = time.perf_counter()
        parse_batch(body)
        runs.append(time.perf_counter() - t0)
    return {"parse_batch_p50_ms": round(statistics.median(runs) * 1000, 2), "parse_events": events}


def check_same_rows(body: bytes) -> None:
    """The raw path inserts exactly the rows the store derives from the batch."""
    from overt.residency.stores import event_rows
    from overt.residency.telemetry import parse_batch

    if plain_rows(TENANT, body) != event_rows(TENANT, parse_batch(body)):
        raise RuntimeError("the raw rows differ from the store's rows: the comparison would be unfair")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()

    from overt.home import Home
    from overt.residency.config import JurisdictionConfig, add_jurisdiction

    base = Path(tempfile.mkdtemp(prefix="overt-bench-residency-", dir=args.dir))
    out: dict[str, Any] = {"batches": args.batches, "events_per_batch": args.events}
    try:
        bodies = make_batches(args.batches, args.events)
        check_same_rows(bodies[0])
        out.update(parse_figures(bodies[0], args.events))
        home = Home.init(base / "home", origin="bench.overt.example/log")
        print(f"sqlite: {args.batches} batches of {args.events} events ...", file=sys.stderr)
        times = interleave(bodies, raw_sqlite(base / "raw.db"), store_path(home, "CH"))
        out.update(figures("sqlite", times, args.events))
        more = make_batches(args.batches, args.events, first=args.batches)
        shared = store_path(home, "CH")  # SQLite: one store shared by the threads (see JurisdictionStore)
        rate = threaded(more, lambda: shared, THREADS)
        out[f"store_events_per_s_sqlite_{THREADS}_threads"] = round(rate)
        bindir = pg_bindir()
        if bindir is None:
            out["postgres_skipped"] = "PostgreSQL server binaries not installed (Debian package postgresql)"
        else:
            with postgres_server(bindir) as server:
                raw_dsn, store_dsn = new_database(server, "raw"), new_database(server, "store")
                add_jurisdiction(home, "BR", JurisdictionConfig(store="postgres", postgres_dsn=store_dsn))
                print(f"postgres: {args.batches} batches of {args.events} events ...", file=sys.stderr)
                times = interleave(bodies, raw_postgres(raw_dsn), store_path(home, "BR"))
                out.update(figures("postgres", times, args.events))
                rate = threaded(more, lambda: store_path(home, "BR"), THREADS)
                out[f"store_events_per_s_postgres_{THREADS}_threads"] = round(rate)
        out.update(
            {
                "sqlite_settings": "WAL, synchronous=FULL, one transaction per batch, blobs fsynced",
                "cores": os.cpu_count(),
            }
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
