"""Residency storage benchmark: ``python -m benchmarks.residency [--batches N] [--events E] [--dir D]``.

Measures, in one run and on the same rows, ways of storing telemetry batches of E (default 1,000) events:

- **raw**: the physical limit of committing each batch alone, as the issue measures it. The event rows,
  built before the clock starts, go into the same schema with the same settings (the store's PRAGMAS), one
  transaction per batch, without the rest of overt: by plain sqlite3 with the store's own INSERT statements
  (``store_sqlite.insert_events``: a few multi-row INSERTs per batch, the fastest way we know to put these
  rows in) and by psycopg (``COPY``). Only the DDL, the
  pragmas and the INSERTs are taken from overt's store modules, so that the two cannot drift. For reference,
  ``raw_executemany_*`` is the same rows by ``executemany`` of a single-row INSERT (the raw path before the
  store moved to multi-row INSERTs), into a database of its own, interleaved with the others; and
  ``raw_grouped_*`` is the same rows committed :data:`RAW_GROUP` batches to a transaction (what the
  server's group commit does when batches arrive together: with 4 clients, a counter once put in the server
  found about 1.8 batches a commit; this run does not count them), the physical limit of a writer that
  groups commits in pairs, compared with ingest in
  ``sqlite_vs_raw_grouped_ratio``.
- **store**: what overt does per batch: ``parse_batch`` on the raw bytes, then ``write_batch`` into the
  jurisdiction store opened by ``open_store`` (SQLite: the blob written and fsynced, then the rows; PostgreSQL:
  the batch row with its bytes, then the rows by COPY).

Then ``store_events_per_s_<db>_2_threads``: the store path again on fresh batches, by two threads (as
concurrent requests would run; PostgreSQL with a store each, SQLite sharing one), so that one batch's parse
may overlap another's commit. The raw figures stay single-stream: that is the issue's physical limit.

The paths are interleaved batch by batch (raw, store, raw, store ...), each into its own empty database on
the same disk or server, so that drift on a shared machine hits both alike. Rates are events over the
summed per-batch times; p50/p99 are per batch. PostgreSQL is a throwaway server started here from Debian's
binaries (:mod:`benchmarks._pgserver`, which the tests use too); without them the postgres figures are left
out, with the reason.
**ingest** ("with routing"): the full path a tenant's endpoint meets, in the same run and on the same
batches: ``POST /v1/telemetry`` over loopback HTTP to ``overt serve`` (a separate process, started here on a
conveyor home with jurisdictions CH and IN = SQLite, BR and AR = PostgreSQL), which authenticates the
tenant's API token (argon2id, remembered after the first request; the token is still looked up on every
request), checks its status and rate limits, parses the batch, routes it to its home jurisdiction's store
and writes it. Single-stream, the HTTP batch is interleaved with the raw and store ones (``http_*`` figures:
one client connection, batch by batch; a DE tenant's batches land in CH's SQLite store, a BR tenant's in
BR's PostgreSQL database); ``ingest_events_per_s_<db>`` is then measured with ``CLIENTS`` client
connections sending the same batches at once, over the wall clock (as endpoints send: the batches that
reach an SQLite store while it commits share its next commit; one small warm-up
batch per tenant first, see :meth:`IngestServer.warm_up`), by a tenant homed in IN (SQLite) or AR
(PostgreSQL): an empty store, as the raw path's was, since a store's rate falls as it fills (its random-hash
index touches more pages per batch). The whole is done in rounds of ``--round`` (20) batches, each round's
batches going through the interleaved paths and then through the concurrent run (:func:`in_rounds`), so
that the raw and ingest figures are measured in the same stretches of time and at the same fill.
``batch_p50_ms``/``batch_p99_ms`` are the request latencies of 1,000-event batches in that run (SQLite).
``<db>_vs_raw_ratio`` is ingest over raw. The clients use the standard library's HTTP client
(:class:`HttpClient`), the lightest load generator at hand on a machine whose two cores it shares with the
server.

Event times run 7 s apart from 30 days before the run (wrapping after 29 days): the server refuses times
more than a day ahead.

The last line of output is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks._pgserver import pg_bindir, postgres_server

TENANT = "t-00000000000000be"
THREADS = 2
# Client connections of the concurrent ingest run: enough that a batch is waiting whenever a commit ends, as
# with the many endpoints of a real deployment; few enough that the load generator, on the same two cores,
# leaves the server its share.
CLIENTS = 4
RAW_GROUP = 2
ROUND = 20
VERDICTS = ("malicious", "suspicious", "clean")


# -- data ------------------------------------------------------------------------------------------------


def make_batches(count: int, events: int, seed: int = 15, first: int = 0) -> list[bytes]:
    """``count`` distinct batch bodies as a sender would post them (random file hashes: a random index)."""
    rng = hashlib.sha256(seed.to_bytes(8, "big"))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    out = []
    for b in range(first, first + count):
        evs = []
        for i in range(events):
            rng.update(b"x")
            t = start + timedelta(seconds=((b * events + i) * 7) % (29 * 86400))
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


# -- PostgreSQL databases (the server: benchmarks/_pgserver.py (a helper module, not a benchmark), shared with the tests) -----------------


def new_database(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


# -- the two paths -------------------------------------------------------------------------------------


def raw_sqlite(path: Path, *, executemany: bool = False) -> Callable[[list[tuple[Any, ...]]], None]:
    """The rows into a fresh database by the store's own statements (``insert_events``: a few multi-row
    INSERTs per batch), or with ``executemany`` by one single-row INSERT per row (the reference figure)."""
    from overt.residency.store_sqlite import PRAGMAS, SCHEMA, insert_events
    from overt.residency.stores import EVENT_COLUMNS

    db = sqlite3.connect(path, isolation_level=None)
    for statement in (*PRAGMAS, *SCHEMA):
        db.execute(statement)
    one_row = (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    )

    def insert(rows: list[tuple[Any, ...]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        if executemany:
            db.executemany(one_row, rows)
        else:
            insert_events(db, rows)
        db.execute("COMMIT")

    return insert


def raw_sqlite_grouped(path: Path, group: int) -> Callable[[list[tuple[Any, ...]]], None]:
    """The rows into a fresh database by the store's statements, ``group`` batches to a transaction: the
    call that brings the group's last batch commits it (the batch counts must be multiples of ``group``)."""
    from overt.residency.store_sqlite import PRAGMAS, SCHEMA, insert_events

    db = sqlite3.connect(path, isolation_level=None)
    for statement in (*PRAGMAS, *SCHEMA):
        db.execute(statement)
    pending = 0

    def insert(rows: list[tuple[Any, ...]]) -> None:
        nonlocal pending
        if pending == 0:
            db.execute("BEGIN IMMEDIATE")
        insert_events(db, rows)
        pending += 1
        if pending == group:
            db.execute("COMMIT")
            pending = 0

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


RawPath = Callable[[list[tuple[Any, ...]]], None]


def interleave(
    bodies: list[bytes],
    raw: RawPath,
    store: Callable[[bytes], None],
    http: Callable[[bytes], None] | None = None,
    references: dict[str, RawPath] | None = None,
) -> dict[str, list[float]]:
    """Per-batch seconds of each path, alternating them batch by batch (``references``: further raw paths,
    reported beside the raw one and compared with nothing)."""
    times: dict[str, list[float]] = {"raw": [], "store": [], **({"http": []} if http else {})}
    times.update({name: [] for name in references or {}})
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
        if http is not None:
            http(body)
            times["http"].append(time.perf_counter() - t2)
        for name, reference in (references or {}).items():
            t3 = time.perf_counter()
            reference(batch_rows)
            times[name].append(time.perf_counter() - t3)
    return times


# -- the full ingest path over HTTP ------------------------------------------------------------------------


# The ingest server's jurisdictions and the country of the tenant homed in each: the single-stream HTTP
# batches of each backend go to the first, the concurrent run to the second, so that each starts on an empty
# store as the raw and store paths do (a store that already holds a run's rows takes each new batch slower).
SQLITE_HOMES = {"CH": "DE", "IN": "IN"}
POSTGRES_HOMES = {"BR": "BR", "AR": "AR"}


class IngestServer:
    """``overt serve`` in its own process on a conveyor home with CH and IN (SQLite) and, given two DSNs,
    BR and AR (PostgreSQL); one tenant homed in each (a DE tenant in CH), with their API tokens."""

    def __init__(self, base: Path, postgres_dsns: list[str] | None) -> None:
        from overt.distribute.testbed import conveyor_home
        from overt.residency.config import JurisdictionConfig
        from overt.residency.provision import add_store
        from overt.residency.registry import SELF
        from overt.residency.registry_store import RegistryIssuer
        from overt.residency.tenants import open_directory

        home = conveyor_home(base / "ingest-home", origin="bench.overt.example/log", jurisdiction="CH")
        RegistryIssuer.of_home(home).init(default=SELF, countries={})
        homes = dict(SQLITE_HOMES)
        for j in SQLITE_HOMES:
            add_store(home, j, JurisdictionConfig())
        if postgres_dsns is not None:
            homes.update(POSTGRES_HOMES)
            for j, dsn in zip(POSTGRES_HOMES, postgres_dsns, strict=True):
                add_store(home, j, JurisdictionConfig(store="postgres", postgres_dsn=dsn))
        # Rate limits well above what this machine can send: the benchmark measures the path, not the limit.
        limits = {"events_per_second": 1e9, "event_burst": 1e9, "batches_per_second": 1e6, "batch_burst": 1e6}
        text = home.paths.config.read_text()
        for key, value in limits.items():
            text = "\n".join(
                f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in text.splitlines()
            )
        home.paths.config.write_text(text + "\n")
        directory = open_directory(home)
        self.tokens: dict[str, str] = {}
        try:
            for j, country in homes.items():
                tenant = directory.create_tenant(f"bench-{country.lower()}", country, _admin_pem()).tenant
                if tenant.jurisdiction != j:
                    raise RuntimeError(f"the {country} tenant is homed in {tenant.jurisdiction}, not {j}")
                self.tokens[j] = directory.create_token(tenant.id).token
        finally:
            directory.close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "overt", "serve", "--home", str(home.path), "--port", "0", "--json"],
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self.url: str = json.loads(self.proc.stdout.readline())["url"]

    def warm_up(self) -> None:
        """One small batch per tenant first: the server's first request imports the schema code and checks
        the token with argon2id (about 0.1 s), once per process and token; the figures leave that out."""
        for j, token in self.tokens.items():
            client = HttpClient(self.url, token, j)
            try:
                client(make_batches(1, 10, seed=99, first=10**6)[0])
            finally:
                client.close()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=60)


def _admin_pem() -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


class HttpClient:
    """One keep-alive connection to the ingest server, sending one tenant's batches and checking that each
    landed, new, in ``jurisdiction``. The standard library's client: on this two-core machine the load
    generator shares the CPU with the server it measures, and httpx costs about 1.7 ms of CPU a request
    here against 0.6 ms."""

    def __init__(self, url: str, token: str, jurisdiction: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.jurisdiction = jurisdiction

    def __call__(self, body: bytes) -> None:
        self.connection.request("POST", "/v1/telemetry", body=body, headers=self.headers)
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"ingest answered {response.status}: {answer[:300]!r}")
        landed = json.loads(answer)
        if landed["jurisdiction"] != self.jurisdiction or landed["duplicate"]:
            raise RuntimeError(f"a benchmark batch landed wrongly: {landed}")

    def close(self) -> None:
        self.connection.close()


def in_threads(bodies: list[bytes], workers: list[Callable[[bytes], None]]) -> tuple[float, list[float]]:
    """The wall-clock seconds of ``workers`` (one thread each) taking ``bodies`` in turn, and each body's
    seconds. A worker that raises stops the run: the error is raised here, and no figure is made of it."""
    work = iter(bodies)
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def run(handle: Callable[[bytes], None]) -> None:
        while True:
            with lock:
                body = None if errors else next(work, None)
            if body is None:
                return
            t0 = time.perf_counter()
            try:
                handle(body)
            except BaseException as e:
                with lock:
                    errors.append(e)
                return
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"a benchmark batch failed: {errors[0]!r}") from errors[0]
    if len(latencies) != len(bodies):
        raise RuntimeError(f"{len(bodies) - len(latencies)} benchmark batches were not handled")
    return elapsed, latencies


def concurrent_ingest(bodies: list[bytes], senders: list[HttpClient]) -> tuple[float, list[float]]:
    """The wall-clock seconds of the senders taking ``bodies`` in turn, and each request's seconds; each
    answer checked (200, landed new in the sender's jurisdiction), any failure raised."""
    return in_threads(bodies, list(senders))


def ingest_figures(
    kind: str, events: int, elapsed: float, latencies: list[float], out: dict[str, Any]
) -> None:
    rate = events * len(latencies) / elapsed
    out[f"ingest_events_per_s_{kind}"] = round(rate)
    out[f"{kind}_vs_raw_ratio"] = round(rate / out[f"raw_events_per_s_{kind}"], 3)
    if f"raw_grouped_events_per_s_{kind}" in out:
        out[f"{kind}_vs_raw_grouped_ratio"] = round(rate / out[f"raw_grouped_events_per_s_{kind}"], 3)
    ms = sorted(s * 1000 for s in latencies)
    out[f"ingest_batch_p50_ms_{kind}"] = round(statistics.median(ms), 2)
    out[f"ingest_batch_p99_ms_{kind}"] = round(ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))], 2)


def in_rounds(
    kind: str,
    args: argparse.Namespace,
    bodies: list[bytes],
    paths: tuple[RawPath, Callable[[bytes], None], dict[str, RawPath]],
    server: IngestServer,
    homes: dict[str, str],
) -> dict[str, Any]:
    """The figures of one backend, measured in rounds of ``args.round`` batches: in each round the raw,
    store and single-stream HTTP paths take the round's batches interleaved batch by batch, then the
    concurrent ingest run takes the same batches (into its own empty store), so that drift on a shared
    machine hits the raw and the ingest figures alike. Each round's concurrent run starts and ends with its
    clients idle, which costs it a little overlap: the ratio errs against ingest."""
    raw, store, references = paths
    serial, concurrent = homes  # the jurisdictions of the single-stream and of the concurrent batches
    times: dict[str, list[float]] = {}
    elapsed, latencies = 0.0, []
    for start in range(0, len(bodies), args.round):
        batch_round = bodies[start : start + args.round]
        http = HttpClient(server.url, server.tokens[serial], serial)
        senders = [HttpClient(server.url, server.tokens[concurrent], concurrent) for _ in range(args.clients)]
        try:
            for path, per_batch in interleave(batch_round, raw, store, http, references).items():
                times.setdefault(path, []).extend(per_batch)
            seconds, round_latencies = concurrent_ingest(batch_round, senders)
        finally:
            for client in (http, *senders):
                client.close()
        elapsed += seconds
        latencies += round_latencies
    out = figures(kind, times, args.events)
    ingest_figures(kind, args.events, elapsed, latencies, out)
    return out


def threaded(bodies: list[bytes], open_path: Callable[[], Callable[[bytes], None]], threads: int) -> float:
    """Events/s of ``threads`` ingesters taking batches in turn, so that the parse of one batch may overlap
    the commit of another (PostgreSQL works in its own process; SQLite takes one writer at a time). Any
    failed write is raised (:func:`in_threads`)."""
    events = len(json.loads(bodies[0])["events"])
    elapsed, _ = in_threads(bodies, [open_path() for _ in range(threads)])
    return events * len(bodies) / elapsed


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
    if "http" in times:
        out[f"http_vs_raw_ratio_{kind}"] = round(
            out[f"http_events_per_s_{kind}"] / out[f"raw_events_per_s_{kind}"], 3
        )
    return out


def parse_figures(bodies: list[bytes], events: int) -> dict[str, Any]:
    """The median parse of distinct batches (one batch parsed again and again would find its strings in
    pydantic's caches, as no batch from an endpoint does)."""
    from overt.residency.telemetry import parse_batch

    runs = []
    for body in bodies[:30]:
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


def run_all(args: argparse.Namespace, base: Path, out: dict[str, Any], stack: ExitStack) -> None:
    from overt.home import Home
    from overt.residency.config import JurisdictionConfig, add_jurisdiction

    bodies = make_batches(args.batches, args.events)
    more = make_batches(args.batches, args.events, first=args.batches)
    check_same_rows(bodies[0])
    out.update(parse_figures(bodies, args.events))
    bindir = pg_bindir()
    server = None if bindir is None else stack.enter_context(postgres_server(bindir, database=""))
    ingest_dsns = (
        None if server is None else [new_database(server, f"ingest_{j.lower()}") for j in POSTGRES_HOMES]
    )
    ingest = IngestServer(base, ingest_dsns)
    stack.callback(ingest.close)
    home = Home.init(base / "home", origin="bench.overt.example/log")
    print(f"sqlite: {args.batches} batches of {args.events} events ...", file=sys.stderr)
    ingest.warm_up()
    if args.round % RAW_GROUP or args.batches % args.round:
        raise SystemExit(f"--round must be a multiple of {RAW_GROUP} and divide --batches")
    reference = {
        "raw_executemany": raw_sqlite(base / "raw-executemany.db", executemany=True),
        "raw_grouped": raw_sqlite_grouped(base / "raw-grouped.db", RAW_GROUP),
    }
    paths = (raw_sqlite(base / "raw.db"), store_path(home, "CH"), reference)
    out.update(in_rounds("sqlite", args, bodies, paths, ingest, SQLITE_HOMES))
    shared = store_path(home, "CH")  # SQLite: one store shared by the threads (see JurisdictionStore)
    rate = threaded(more, lambda: shared, THREADS)
    out[f"store_events_per_s_sqlite_{THREADS}_threads"] = round(rate)
    out["batch_p50_ms"] = out["ingest_batch_p50_ms_sqlite"]
    out["batch_p99_ms"] = out["ingest_batch_p99_ms_sqlite"]
    if server is None:
        out["postgres_skipped"] = "PostgreSQL server binaries not installed (Debian package postgresql)"
    else:
        raw_dsn, store_dsn = new_database(server, "raw"), new_database(server, "store")
        add_jurisdiction(home, "BR", JurisdictionConfig(store="postgres", postgres_dsn=store_dsn))
        print(f"postgres: {args.batches} batches of {args.events} events ...", file=sys.stderr)
        paths = (raw_postgres(raw_dsn), store_path(home, "BR"), {})
        out.update(in_rounds("postgres", args, bodies, paths, ingest, POSTGRES_HOMES))
        rate = threaded(more, lambda: store_path(home, "BR"), THREADS)
        out[f"store_events_per_s_postgres_{THREADS}_threads"] = round(rate)
    out.update(
        {
            "sqlite_settings": "WAL, synchronous=FULL, blobs fsynced; raw: one transaction per batch",
            "ingest_clients": args.clients,
            "cores": os.cpu_count(),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--clients", type=int, default=CLIENTS, help="client connections of the ingest run")
    ap.add_argument("--round", type=int, default=ROUND, help="batches per round (see in_rounds)")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="overt-bench-residency-", dir=args.dir))
    out: dict[str, Any] = {"batches": args.batches, "events_per_batch": args.events}
    try:
        with ExitStack() as stack:
            run_all(args, base, out, stack)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
