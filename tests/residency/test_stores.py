"""Jurisdiction stores on real SQLite and real PostgreSQL: writes whole or not at all, resends, conflicts,
aggregates, export/import, purge, stamps, backups and where they may go, and the jurisdictions config."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from overt.errors import ConfigError, PolicyError, StorageError, UsageError, VerificationError
from overt.home import Home
from overt.residency import store_sqlite
from overt.residency.config import (
    JurisdictionConfig,
    add_jurisdiction,
    jurisdiction_configs,
    root_of,
)
from overt.residency.store_postgres import PostgresResidencyStore
from overt.residency.store_sqlite import SCHEMA, SQLiteResidencyStore, insert_events
from overt.residency.stores import (
    EVENT_COLUMNS,
    BatchConflict,
    DigestMismatch,
    JurisdictionStore,
    RuleDay,
    backup_store,
    check_backup_target,
    event_rows,
    open_store,
)
from overt.residency.telemetry import parse_batch
from tests.pg import pg_bindir, postgres_server

ALICE = "t-00000000000000a1"
BOB = "t-00000000000000b0"


def make_raw(batch_id: str, n: int = 3, *, day: str = "2026-12-01", rules: int = 2, salt: str = "") -> bytes:
    events = [
        {
            "time": f"{day}T10:{i % 60:02d}:00Z",
            "file_sha256": hashlib.sha256(f"{batch_id}{salt}{i}".encode()).hexdigest(),
            "rule_id": f"rule-{i % rules}",
            "verdict": ("malicious", "suspicious", "clean")[i % 3],
            "database": "overt-avdb",
            "database_version": 7,
        }
        for i in range(n)
    ]
    return json.dumps({"batch_id": batch_id, "endpoint": "host-1", "events": events}).encode()


def write(store: JurisdictionStore, tenant: str, raw: bytes) -> Any:
    return store.write_batch(tenant, parse_batch(raw), raw)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.init(tmp_path / "home")


def new_database(server_dsn: str) -> str:
    name = "s" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_dsn, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server_dsn.rsplit("/", 1)[0] + "/" + name


@dataclass
class Backend:
    """The store under test and a side door to its database, for what a test does behind its back."""

    kind: str
    home: Home
    dsn: str = ""

    def open(self, j: str = "CH", *, create: bool = True) -> JurisdictionStore:
        return open_store(self.home, j, create=create)

    def sql(self, statement: str) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(root_of(self.home, "CH") / "store.db") as db:
                db.executescript(statement)
            db.close()
        else:
            with psycopg.connect(self.dsn, autocommit=True) as pg:
                pg.execute(statement)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, home: Home) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", home)
    dsn = new_database(request.getfixturevalue("postgres_dsn"))
    add_jurisdiction(home, "CH", JurisdictionConfig(store="postgres", postgres_dsn=dsn))
    return Backend("postgres", home, dsn)


@pytest.fixture
def store(backend: Backend) -> Iterator[JurisdictionStore]:
    with backend.open() as s:
        yield s


def blob_files(home: Home, j: str = "CH") -> list[Path]:
    return sorted(p for p in (root_of(home, j) / "blobs").rglob("*") if p.is_file())


# -- writing and reading -----------------------------------------------------------------------------------


def test_a_batch_is_stored_whole_and_read_back(store: JurisdictionStore) -> None:
    raw = make_raw("batch-0001", 5)
    stored = write(store, ALICE, raw)
    assert (stored.duplicate, stored.events, stored.jurisdiction) == (False, 5, "CH")
    assert stored.sha256 == hashlib.sha256(raw).hexdigest()
    assert store.count_events(ALICE) == 5
    assert store.batch_digests(ALICE) == {"batch-0001": stored.sha256}
    assert list(store.export_batches(ALICE)) == [("batch-0001", raw, stored.sha256)]
    assert store.count_events(BOB) == 0 and store.batch_digests(BOB) == {}


def test_the_same_batch_resent_is_answered_as_stored(store: JurisdictionStore) -> None:
    raw = make_raw("batch-0001", 4)
    first = write(store, ALICE, raw)
    again = write(store, ALICE, raw)
    assert again.duplicate and (again.sha256, again.events) == (first.sha256, 4)
    assert store.count_events(ALICE) == 4
    assert not write(store, BOB, raw).duplicate  # a batch_id is per tenant


def test_another_body_under_a_stored_batch_id_is_a_conflict(store: JurisdictionStore) -> None:
    first = write(store, ALICE, make_raw("batch-0001", 4))
    other = make_raw("batch-0001", 4, salt="x")
    with pytest.raises(BatchConflict) as e:
        write(store, ALICE, other)
    assert isinstance(e.value, PolicyError) and e.value.status == 409
    assert (e.value.stored_sha256, e.value.sent_sha256) == (first.sha256, hashlib.sha256(other).hexdigest())
    assert store.batch_digests(ALICE) == {"batch-0001": first.sha256} and store.count_events(ALICE) == 4


def test_the_same_batch_sent_twice_at_once_is_stored_once(backend: Backend) -> None:
    raw = make_raw("batch-0001", 2000)
    stores = [backend.open(), backend.open()]
    start = threading.Barrier(2)
    answers: list[Any] = []

    def send(store: JurisdictionStore) -> None:
        start.wait()
        answers.append(write(store, ALICE, raw))

    threads = [threading.Thread(target=send, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(a.duplicate for a in answers) == [False, True]
        assert stores[0].count_events(ALICE) == 2000
    finally:
        for s in stores:
            s.close()


def test_aggregates_are_detections_per_rule_per_utc_day(store: JurisdictionStore) -> None:
    write(store, ALICE, make_raw("batch-0001", 6, day="2026-12-01"))
    write(store, ALICE, make_raw("batch-0002", 3, day="2026-12-03", rules=1))
    late = json.loads(make_raw("batch-0003", 1))
    late["events"][0]["time"] = "2026-12-02T23:30:00-02:00"  # 2026-12-03 in UTC
    write(store, ALICE, json.dumps(late).encode())
    write(store, BOB, make_raw("batch-0009", 9))
    rows = store.aggregates(ALICE)
    assert rows == [
        RuleDay(day=date(2026, 12, 1), rule_id="rule-0", events=3, malicious=1, suspicious=1, clean=1),
        RuleDay(day=date(2026, 12, 1), rule_id="rule-1", events=3, malicious=1, suspicious=1, clean=1),
        RuleDay(day=date(2026, 12, 3), rule_id="rule-0", events=4, malicious=2, suspicious=1, clean=1),
    ]
    assert store.aggregates(ALICE, since=date(2026, 12, 2)) == rows[2:]
    assert store.aggregates(ALICE, until=date(2026, 12, 1)) == rows[:2]
    assert store.aggregates(ALICE, since=date(2026, 12, 2), until=date(2026, 12, 2)) == []
    assert rows[0].to_dict()["day"] == "2026-12-01"


def test_a_bad_tenant_id_is_refused(store: JurisdictionStore) -> None:
    raw = make_raw("batch-0001")
    with pytest.raises(Exception, match="tenant id") as e:
        write(store, "t-../../x", raw)
    assert type(e.value).__name__ == "FormatError"


@pytest.mark.parametrize("n", [1, 3, 1023, 1024, 1025, 5000])
def test_sqlite_stores_exactly_the_batchs_rows_in_order(home: Home, n: int) -> None:
    """Rows go in by multi-row INSERTs of up to 1,024 rows: every count, across the chunk edges, gives the
    rows of event_rows, with their types, in seq order."""
    raw = make_raw("batch-0001", n)
    with open_store(home, "CH", create=True) as store:
        write(store, ALICE, raw)
    with sqlite3.connect(root_of(home, "CH") / "store.db") as db:
        stored = db.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY rowid").fetchall()
    db.close()
    assert stored == event_rows(ALICE, parse_batch(raw))


def test_a_row_breaking_a_constraint_rolls_back_the_whole_transaction(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    for statement in SCHEMA:
        db.execute(statement)
    rows = event_rows(ALICE, parse_batch(make_raw("batch-0001", 700)))
    bad = [*rows[:600], (*rows[600][:7], "harmless", *rows[600][8:]), *rows[601:]]  # no such verdict
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO batches VALUES (?, 'batch-0001', 'ab', 700, 1)", (ALICE,))
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        insert_events(db, bad)
    assert not db.in_transaction  # OR ROLLBACK: the batch row went too
    assert db.execute("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM batches)").fetchone() == (
        0,
    )
    db.close()


# -- failures leave nothing ----------------------------------------------------------------------------------


def inject_failure(backend: Backend, at_seq: int) -> None:
    if backend.kind == "sqlite":
        backend.sql(
            f"CREATE TRIGGER fail BEFORE INSERT ON events WHEN NEW.seq = {at_seq} "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        )
    else:
        backend.sql(
            "CREATE FUNCTION residency.fail() RETURNS trigger AS $$ BEGIN IF NEW.seq = "
            f"{at_seq} THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;"
            "CREATE TRIGGER fail BEFORE INSERT ON residency.events FOR EACH ROW EXECUTE FUNCTION residency.fail()"
        )


def test_a_write_failing_half_way_leaves_nothing(backend: Backend, store: JurisdictionStore) -> None:
    raw = make_raw("batch-0001", 1000)
    inject_failure(backend, at_seq=500)
    with pytest.raises(StorageError, match="injected failure; nothing was stored"):
        write(store, ALICE, raw)
    assert store.count_events(ALICE) == 0 and store.batch_digests(ALICE) == {}
    if backend.kind == "sqlite":
        assert blob_files(backend.home) == []
    backend.sql("DROP TRIGGER fail" + (" ON residency.events" if backend.kind == "postgres" else ""))
    assert not write(store, ALICE, raw).duplicate
    assert store.count_events(ALICE) == 1000


def test_a_blob_that_cannot_be_written_leaves_no_rows(home: Home) -> None:
    raw = make_raw("batch-0001", 10)
    digest = hashlib.sha256(raw).hexdigest()
    with open_store(home, "CH", create=True) as store:
        fanout = root_of(home, "CH") / "blobs" / digest[:2]
        fanout.rmdir()
        fanout.write_bytes(b"")  # the blob's folder is a file now: no blob can be made there (even as root)
        with pytest.raises(StorageError, match="nothing was stored"):
            write(store, ALICE, raw)
        assert store.count_events(ALICE) == 0 and store.batch_digests(ALICE) == {}
        fanout.unlink()
        fanout.mkdir()
        assert not write(store, ALICE, raw).duplicate
        assert [p.name for p in blob_files(home)] == [digest]


def test_a_failed_write_keeps_a_blob_another_batch_uses(home: Home) -> None:
    backend = Backend("sqlite", home)
    with backend.open() as store:
        raw = make_raw("batch-0001", 600)
        write(store, BOB, raw)
        inject_failure(backend, at_seq=500)
        with pytest.raises(StorageError):
            write(store, ALICE, raw)  # the same bytes, so the same blob
        assert len(blob_files(backend.home)) == 1
        assert [b.raw for b in store.export_batches(BOB)] == [raw]


# -- group commit (SQLite) -------------------------------------------------------------------------------------


class HeldCommit:
    """Holds the first SQLite writer inside its transaction until released, so that the writers that come
    meanwhile queue for the next group commit, as concurrent requests do while a commit runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: JurisdictionStore) -> None:
        self.store = store
        self.inside, self.release = threading.Event(), threading.Event()
        self.threads: list[threading.Thread] = []
        self.answers: dict[str, Any] = {}
        real = store_sqlite.insert_events

        def held(db: sqlite3.Connection, rows: Any) -> None:
            if not self.inside.is_set():
                self.inside.set()
                assert self.release.wait(30)
            real(db, rows)

        monkeypatch.setattr(store_sqlite, "insert_events", held)

    def send(self, name: str, tenant: str, raw: bytes) -> None:
        def run() -> None:
            try:
                self.answers[name] = write(self.store, tenant, raw)
            except Exception as e:
                self.answers[name] = e

        self.threads.append(threading.Thread(target=run))
        self.threads[-1].start()

    def queue_then_release(self, *sends: tuple[str, str, bytes]) -> None:
        """Send the first batch and hold it in its commit; send the rest, wait until they are all queued,
        then let the commit go and wait for every answer."""
        first, *rest = sends
        self.send(*first)
        assert self.inside.wait(30)
        for s in rest:
            self.send(*s)
        group = self.store._group  # type: ignore[attr-defined]
        for _ in range(3000):
            with group._changed:
                if len(group._queue) == len(rest):
                    break
            threading.Event().wait(0.01)
        else:
            raise AssertionError("the writers never queued")
        self.release.set()
        for t in self.threads:
            t.join(30)

    def commits(self) -> tuple[int, int]:
        group = self.store._group  # type: ignore[attr-defined]
        return group.commits, group.batches


def test_batches_that_arrive_during_a_commit_share_the_next(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(home, "CH", create=True) as store:
        held = HeldCommit(monkeypatch, store)
        raws = {f"batch-000{i}": make_raw(f"batch-000{i}", 300) for i in range(1, 5)}
        held.queue_then_release(*((name, ALICE, raw) for name, raw in raws.items()))
        assert held.commits() == (2, 4)  # the first alone, the three that queued behind it together
        assert all(not held.answers[name].duplicate for name in raws)
        assert store.batch_digests(ALICE) == {n: hashlib.sha256(r).hexdigest() for n, r in raws.items()}
        assert store.count_events(ALICE) == 1200
        assert len(blob_files(home)) == 4


def test_a_failing_batch_fails_alone_and_its_group_is_stored(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = Backend("sqlite", home)
    with backend.open() as store:
        backend.sql(
            "CREATE TRIGGER fail BEFORE INSERT ON events WHEN NEW.batch_id = 'batch-bad1' AND NEW.seq = 250 "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        )
        held = HeldCommit(monkeypatch, store)
        good, bad, after = (
            make_raw("batch-0001", 300),
            make_raw("batch-bad1", 300),
            make_raw("batch-0002", 300),
        )
        held.queue_then_release(
            ("first", ALICE, make_raw("batch-0000", 10)),
            ("good", ALICE, good),
            ("bad", BOB, bad),
            ("after", BOB, after),
        )
        assert isinstance(held.answers["bad"], StorageError)
        assert "injected failure; nothing was stored" in str(held.answers["bad"])
        assert not held.answers["good"].duplicate and not held.answers["after"].duplicate
        assert held.commits() == (3, 3)  # the group failed whole; its good batches were committed alone
        assert sorted(store.batch_digests(ALICE)) == ["batch-0000", "batch-0001"]
        assert sorted(store.batch_digests(BOB)) == ["batch-0002"]
        assert store.count_events(BOB) == 300  # nothing of the bad batch
        assert hashlib.sha256(bad).hexdigest() not in [p.name for p in blob_files(home)]
        assert len(blob_files(home)) == 3


def test_the_same_batch_twice_in_one_group_is_stored_once(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(home, "CH", create=True) as store:
        held = HeldCommit(monkeypatch, store)
        raw, other = make_raw("batch-0001", 200), make_raw("batch-0001", 200, salt="x")
        held.queue_then_release(
            ("first", BOB, raw), ("a", ALICE, raw), ("b", ALICE, raw), ("c", ALICE, other)
        )
        assert held.commits() == (2, 4)
        assert sorted(held.answers[n].duplicate for n in "ab") == [False, True]
        assert isinstance(held.answers["c"], BatchConflict)  # another body under the same batch_id
        assert store.batch_digests(ALICE) == {"batch-0001": hashlib.sha256(raw).hexdigest()}
        assert store.count_events(ALICE) == 200
        assert len(blob_files(home)) == 1  # one blob for the same bytes, whichever tenant sent them


def test_a_group_is_bounded_in_events(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_sqlite, "MAX_GROUP_EVENTS", 500)
    with open_store(home, "CH", create=True) as store:
        held = HeldCommit(monkeypatch, store)
        held.queue_then_release(*((f"b{i}", ALICE, make_raw(f"batch-000{i}", 200)) for i in range(1, 6)))
        assert held.commits() == (3, 5)  # one alone, then two groups of at most 500 events: 2 + 2
        assert store.count_events(ALICE) == 1000


def answered_within(store: JurisdictionStore, tenant: str, raw: bytes, seconds: float = 20) -> Any:
    """The store's answer to ``raw`` (or what it raised), failing the test if the writer hangs."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(write(store, tenant, raw))
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"a writer hung for {seconds} s"
    return box[0]


def test_a_leader_failing_before_its_commit_does_not_wedge_the_store(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store_sqlite._GroupCommit._take
    calls = []

    def out_of_memory_once(self: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("simulated")
        return real(self)

    monkeypatch.setattr(store_sqlite._GroupCommit, "_take", out_of_memory_once)
    with open_store(home, "CH", create=True) as store:
        assert isinstance(answered_within(store, ALICE, make_raw("batch-0001", 5)), MemoryError)
        assert not answered_within(store, ALICE, make_raw("batch-0002", 5)).duplicate
        assert not answered_within(store, ALICE, make_raw("batch-0001", 5)).duplicate  # not left behind: new


CLOSE_UNDER_WRITERS = """
import sys, threading, time
from pathlib import Path
from overt.home import Home
from overt.residency.stores import open_store
from overt.residency.telemetry import parse_batch
from tests.residency.test_stores import make_raw
home = Home.init(Path(sys.argv[1]) / "home")
store = open_store(home, "CH", create=True)
answers = []
def run(t):
    for i in range(40):
        raw = make_raw(f"batch-{t}-{i:04d}", 1500)
        try:
            store.write_batch("t-00000000000000a1", parse_batch(raw), raw)
            answers.append("stored")
        except Exception as e:
            answers.append(type(e).__name__)
threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
for t in threads: t.start()
time.sleep(float(sys.argv[2]))
store.close()
for t in threads: t.join(30)
print("alive", sum(t.is_alive() for t in threads), sorted(set(answers)))
"""


@pytest.mark.parametrize("delay", [0.3, 0.8])
def test_closing_a_store_under_its_writers_answers_them(tmp_path: Path, delay: float) -> None:
    """Closing waits for the transaction running; the writers after it are told StorageError (nothing
    stored), none hangs, and the process lives (a close racing a write once crashed it)."""
    done = subprocess.run(
        [sys.executable, "-c", CLOSE_UNDER_WRITERS, str(tmp_path), str(delay)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("alive 0 ") and "StorageError" in done.stdout, done.stdout
    assert set(done.stdout.split(None, 2)[2].strip("[]\n").replace("'", "").split(", ")) <= {
        "stored",
        "StorageError",
    }, done.stdout


def test_a_conflicting_batch_leaves_no_blob(home: Home) -> None:
    with open_store(home, "CH", create=True) as store:
        first = write(store, ALICE, make_raw("batch-0001", 5))
        with pytest.raises(BatchConflict):
            write(store, ALICE, make_raw("batch-0001", 5, salt="other"))
        assert [p.name for p in blob_files(home)] == [first.sha256]


# -- export, import, purge -----------------------------------------------------------------------------------


def test_export_then_import_moves_every_batch_verified(backend: Backend, store: JurisdictionStore) -> None:
    for i in range(3):
        write(store, ALICE, make_raw(f"batch-000{i}", 4 + i))
    add_jurisdiction(backend.home, "BR", JurisdictionConfig())
    with open_store(backend.home, "BR", create=True) as target:
        for batch_id, raw, sha256 in store.export_batches(ALICE):
            assert not target.import_batch(ALICE, batch_id, raw, sha256).duplicate
        assert target.batch_digests(ALICE) == store.batch_digests(ALICE)
        assert target.count_events(ALICE) == store.count_events(ALICE) == 15
        assert target.aggregates(ALICE) == store.aggregates(ALICE)
        again = [target.import_batch(ALICE, *b) for b in store.export_batches(ALICE)]
        assert all(s.duplicate for s in again) and target.count_events(ALICE) == 15


def test_import_checks_the_hash_and_the_batch_id(store: JurisdictionStore) -> None:
    raw = make_raw("batch-0001", 3)
    good = hashlib.sha256(raw).hexdigest()
    with pytest.raises(DigestMismatch) as e:
        store.import_batch(ALICE, "batch-0001", raw + b" ", good)
    assert e.value.expected == good and isinstance(e.value, VerificationError)
    with pytest.raises(VerificationError, match="hold batch batch-0001"):
        store.import_batch(ALICE, "batch-0002", raw, good)
    assert store.batch_digests(ALICE) == {} and store.count_events(ALICE) == 0


def test_an_export_refuses_a_damaged_blob(home: Home) -> None:
    with open_store(home, "CH", create=True) as store:
        write(store, ALICE, make_raw("batch-0001"))
        blob_files(home)[0].write_bytes(b"tampered")
        with pytest.raises(StorageError, match="damaged"):
            list(store.export_batches(ALICE))


def test_purge_removes_a_tenant_rows_and_blobs(backend: Backend, store: JurisdictionStore) -> None:
    shared = make_raw("batch-0001", 3)
    write(store, ALICE, shared)
    write(store, ALICE, make_raw("batch-0002", 3))
    write(store, BOB, shared)
    assert store.purge_tenant(ALICE) == 2
    assert store.count_events(ALICE) == 0 and store.batch_digests(ALICE) == {}
    assert store.aggregates(ALICE) == []
    assert list(store.export_batches(BOB)) == [("batch-0001", shared, hashlib.sha256(shared).hexdigest())]
    if backend.kind == "sqlite":
        assert len(blob_files(backend.home)) == 1  # Bob's, shared with Alice's first batch
    assert store.purge_tenant(ALICE) == 0
    assert store.purge_tenant(BOB) == 1
    if backend.kind == "sqlite":
        assert blob_files(backend.home) == []


# -- stamps: a store opens only as its own jurisdiction's ---------------------------------------------------


def test_a_missing_store_is_not_made_without_create(home: Home) -> None:
    with pytest.raises(ConfigError, match="has no telemetry store"):
        open_store(home, "CH")
    assert not root_of(home, "CH").exists()


def test_a_sqlite_store_copied_to_another_root_refuses_to_open_there(home: Home) -> None:
    with open_store(home, "CH", create=True) as store:
        write(store, ALICE, make_raw("batch-0001"))
    shutil.copytree(root_of(home, "CH"), root_of(home, "DE"))
    for create in (False, True):
        with pytest.raises(PolicyError, match="belongs to jurisdiction 'CH', not DE") as e:
            open_store(home, "DE", create=create)
        assert (e.value.evidence["stamped"], e.value.evidence["requested"]) == ("CH", "DE")


def test_a_postgres_database_configured_for_two_jurisdictions_opens_as_one(
    home: Home, postgres_dsn: str
) -> None:
    dsn = new_database(postgres_dsn)
    add_jurisdiction(home, "CH", JurisdictionConfig(store="postgres", postgres_dsn=dsn))
    with open_store(home, "CH", create=True) as store:
        write(store, ALICE, make_raw("batch-0001"))
    # The same database under another spelling of its DSN, so that the config check cannot see it.
    same = " ".join(f"{k}={v}" for k, v in psycopg.conninfo.conninfo_to_dict(dsn).items())
    assert same != dsn
    add_jurisdiction(home, "DE", JurisdictionConfig(store="postgres", postgres_dsn=same))
    with pytest.raises(PolicyError, match="belongs to jurisdiction 'CH', not DE") as e:
        open_store(home, "DE", create=True)
    assert "overt@" not in str(e.value)  # names the database, not the DSN


def test_an_edited_stamp_is_refused(backend: Backend) -> None:
    with backend.open() as store:
        write(store, ALICE, make_raw("batch-0001"))
    table = "meta" if backend.kind == "sqlite" else "residency.meta"
    backend.sql(f"UPDATE {table} SET value = 'DE' WHERE key = 'jurisdiction'")
    with pytest.raises(PolicyError, match="belongs to jurisdiction 'DE', not CH"):
        backend.open()
    backend.sql(f"UPDATE {table} SET value = 'ch; drop' WHERE key = 'jurisdiction'")
    with pytest.raises(PolicyError, match="belongs to jurisdiction 'ch; drop', not CH"):
        backend.open()


def test_a_store_with_data_and_no_stamp_is_refused(backend: Backend) -> None:
    with backend.open() as store:
        write(store, ALICE, make_raw("batch-0001"))
    backend.sql("DELETE FROM " + ("meta" if backend.kind == "sqlite" else "residency.meta"))
    for create in (False, True):
        with pytest.raises(PolicyError, match="holds data but no jurisdiction stamp"):
            backend.open(create=create)


def test_blobs_without_a_database_are_not_started_over(home: Home) -> None:
    with open_store(home, "CH", create=True) as store:
        write(store, ALICE, make_raw("batch-0001"))
    for f in root_of(home, "CH").glob("store.db*"):
        f.unlink()
    with pytest.raises(StorageError, match="database is lost"):
        open_store(home, "CH", create=True)


@pytest.mark.slow
def test_two_postgres_servers_each_hold_only_their_jurisdiction(home: Home) -> None:
    if pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed (Debian package postgresql)")
    with postgres_server() as server_ch, postgres_server() as server_br:
        add_jurisdiction(home, "CH", JurisdictionConfig(store="postgres", postgres_dsn=server_ch))
        add_jurisdiction(home, "BR", JurisdictionConfig(store="postgres", postgres_dsn=server_br))
        with open_store(home, "CH", create=True) as ch, open_store(home, "BR", create=True) as br:
            write(ch, ALICE, make_raw("batch-ch-1", 7))
            write(br, BOB, make_raw("batch-br-1", 2))
        for dsn, tenant in ((server_ch, ALICE), (server_br, BOB)):
            with psycopg.connect(dsn) as db:
                tenants = db.execute("SELECT DISTINCT tenant FROM residency.events").fetchall()
                assert tenants == [(tenant,)], (dsn, tenants)
        with pytest.raises(PolicyError, match="belongs to jurisdiction 'CH', not BR"):
            PostgresResidencyStore(server_ch, "BR", root=root_of(home, "BR"), create=True)


# -- backups ------------------------------------------------------------------------------------------------


def test_backup_targets_stay_under_the_jurisdiction_root(home: Home, tmp_path: Path) -> None:
    add_jurisdiction(home, "BR", JurisdictionConfig(root=str(tmp_path / "br-root")))
    ch, de, br = root_of(home, "CH"), root_of(home, "DE"), root_of(home, "BR")
    for root in (ch, de, br):
        root.mkdir(parents=True)
    assert check_backup_target(home, "CH", ch / "backups" / "1") == (ch / "backups" / "1").resolve()
    refused = {
        "the root itself": ch,
        "../other/": ch / ".." / "DE" / "backups",
        "a sibling": ch.parent,
        "outside the home": tmp_path / "elsewhere",
        "another configured root": br / "x",
        "the live blobs": ch / "blobs" / "ab",
        "the live database": ch / "store.db",
    }
    (ch / "to-de").symlink_to(de)
    (ch / "to-br").symlink_to(br / "deep")  # a link to a folder that does not exist yet
    (ch / "to-tmp").symlink_to(tmp_path)
    refused |= {
        "a link into DE": ch / "to-de" / "b",
        "a dangling link": ch / "to-br",
        "a link out": ch / "to-tmp",
    }
    for desc, target in refused.items():
        with pytest.raises(PolicyError) as e:
            check_backup_target(home, "CH", target)
        assert "backup" in str(e.value), desc
    with pytest.raises(PolicyError, match="in the root of jurisdiction DE"):
        check_backup_target(home, "CH", ch / "to-de" / "b")


def test_a_sqlite_backup_is_a_store_of_the_same_jurisdiction(home: Home) -> None:
    with open_store(home, "CH", create=True) as store:
        for i in range(3):
            write(store, ALICE, make_raw(f"batch-000{i}", 5))
        digests = store.batch_digests(ALICE)
        exported = list(store.export_batches(ALICE))
    dest = root_of(home, "CH") / "backups" / "2026-12-01"
    backup = backup_store(home, "CH", dest)
    assert (backup.batches, backup.events, backup.path) == (3, 15, dest.resolve())
    with SQLiteResidencyStore(dest, "CH") as copy:
        assert copy.batch_digests(ALICE) == digests
        assert list(copy.export_batches(ALICE)) == exported
    with pytest.raises(PolicyError):
        SQLiteResidencyStore(dest, "DE")
    with pytest.raises(UsageError, match="new or empty folder"):
        backup_store(home, "CH", dest)
    with pytest.raises(PolicyError):
        backup_store(home, "CH", root_of(home, "CH") / ".." / "DE" / "b")


def test_a_postgres_backup_restores_with_psql(home: Home, postgres_dsn: str) -> None:
    dsn = new_database(postgres_dsn)
    add_jurisdiction(home, "CH", JurisdictionConfig(store="postgres", postgres_dsn=dsn))
    with open_store(home, "CH", create=True) as store:
        write(store, ALICE, make_raw("batch-0001", 4))
        write(store, BOB, make_raw("batch-0002", 2))
        digests = store.batch_digests(ALICE)
    backup = backup_store(home, "CH", root_of(home, "CH") / "backups" / "1")
    assert (backup.batches, backup.events, backup.path.name) == (2, 6, "residency.sql")
    restored = new_database(postgres_dsn)
    bindir = pg_bindir()
    assert bindir is not None
    subprocess.run(
        [str(bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", restored, "-f", str(backup.path)],
        check=True,
        capture_output=True,
    )
    with PostgresResidencyStore(restored, "CH", root=root_of(home, "CH")) as copy:
        assert copy.batch_digests(ALICE) == digests
        assert copy.count_events(BOB) == 2
        assert [b.raw for b in copy.export_batches(ALICE)] == [make_raw("batch-0001", 4)]


# -- the [jurisdictions.J] config -----------------------------------------------------------------------------


def test_a_jurisdiction_config_is_written_and_read_back(home: Home, tmp_path: Path) -> None:
    assert jurisdiction_configs(home) == {}
    assert root_of(home, "CH") == home.paths.root / "jurisdictions" / "CH"
    ch = JurisdictionConfig(store="postgres", postgres_dsn="postgresql://db.ch.internal/overt")
    add_jurisdiction(home, "CH", ch)
    add_jurisdiction(home, "BR", JurisdictionConfig(root="stores/br"))
    add_jurisdiction(home, "CH", ch)  # idempotent
    again = Home(home.paths.root)
    assert "[jurisdictions.CH]" in again.paths.config.read_text()
    assert jurisdiction_configs(again) == {"CH": ch, "BR": JurisdictionConfig(root="stores/br")}
    assert root_of(again, "BR") == home.paths.root / "stores" / "br"
    with pytest.raises(ConfigError, match="already configured"):
        add_jurisdiction(again, "CH", JurisdictionConfig())


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('[jurisdictions.ch]\nstore = "sqlite"\n', "is not a two-letter"),
        ('[jurisdictions.CH]\nstore = "mysql"\n', "must be 'sqlite' or 'postgres'"),
        ('[jurisdictions.CH]\nstore = "postgres"\n', "postgres_dsn is empty"),
        ('[jurisdictions.CH]\npostgres_dsn = "postgresql://x/y"\n', "the store is 'sqlite'"),
        ("[jurisdictions.CH]\nroot = 5\n", "root must be a string"),
        ('[jurisdictions.CH]\nroots = "x"\n', "unknown [jurisdictions.CH] settings roots"),
        ('[jurisdictions.CH]\nroot = "r"\n[jurisdictions.DE]\nroot = "r/de"\n', "overlap"),
        ('[jurisdictions.CH]\nroot = "."\n', "holds"),
        ('[jurisdictions.CH]\nroot = "jurisdictions/DE/x"\n', "default root of jurisdiction DE"),
        (
            '[jurisdictions.CH]\nstore = "postgres"\npostgres_dsn = "postgresql://a/b"\n'
            '[jurisdictions.DE]\nstore = "postgres"\npostgres_dsn = "postgresql://a/b"\n',
            "the same postgres_dsn",
        ),
    ],
)
def test_a_wrong_jurisdictions_table_is_refused(home: Home, table: str, says: str) -> None:
    with home.paths.config.open("a") as f:
        f.write("\n" + table)
    with pytest.raises(ConfigError) as e:
        jurisdiction_configs(Home(home.paths.root))
    assert says in str(e.value)
