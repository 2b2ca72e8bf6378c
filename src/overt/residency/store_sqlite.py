"""The SQLite jurisdiction store: ``<root>/store.db`` and ``<root>/blobs/``, under the jurisdiction's root.

::

    <root>/store.db          SQLite (WAL, synchronous=FULL): the stamp, one row per batch and per event
    <root>/blobs/ab/ab…      each batch's raw bytes, named by their sha256 (mode 0600)

A write takes the database's write lock (``BEGIN IMMEDIATE``) first, so that making or removing a blob and
committing the rows that refer to it happen under one lock. The blob is written and fsynced (file and
folder) on the store's blob thread while the rows go in (:func:`insert_events`: a few multi-row INSERTs),
and the commit waits for it; if the write fails, the rows roll back and its blob is removed again unless a
committed row refers to it. Writers of this process commit in groups (:class:`_GroupCommit`): the batches
that arrive while a commit runs go into the next transaction together and share its fsync of the WAL;
each is answered only once that transaction has committed, and if it fails, each of its batches is
written again alone, so that a bad batch fails by itself and the others are stored. A blob no row refers to (after a crash between the two) is never counted or
exported: every read goes through the rows. A purge records the blobs it frees (``blob_gc``) in its own
transaction and removes them after the commit, so a crash in between is finished by the next purge.

:data:`PRAGMAS`, :data:`SCHEMA` and :func:`insert_events` are also what ``benchmarks/residency.py`` measures
the raw SQLite insert rate with; change them there too by changing them here.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cache
from itertools import chain, islice
from pathlib import Path
from typing import Any, ClassVar

from overt.atomic import atomic_write, fsync_dirs
from overt.errors import ConfigError, StorageError
from overt.residency.stores import (
    EVENT_COLUMNS,
    STAMP_KEY,
    Backup,
    EventRow,
    ExportedBatch,
    JurisdictionStore,
    RuleDay,
    StoredBatch,
    check_empty_target,
    sha256_hex,
    stamp_refusal,
    unstamped_refusal,
)
from overt.residency.tenants import check_tenant_id

# A commit is on disk when it returns (FULL), and a purge overwrites what it deletes (secure_delete). The
# WAL is checkpointed every 4,000 pages (16 MiB) instead of SQLite's 1,000: a 1,000-event batch dirties
# about a thousand pages of the random-hash index once the store holds some, so the default checkpointed
# (copied and fsynced the database) after nearly every commit.
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA secure_delete=ON",
    "PRAGMA wal_autocheckpoint=4000",
)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS batches (tenant TEXT NOT NULL, batch_id TEXT NOT NULL, sha256 TEXT NOT NULL,"
    " events INTEGER NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (tenant, batch_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS batches_sha256 ON batches (sha256)",
    "CREATE TABLE IF NOT EXISTS events (tenant TEXT NOT NULL, batch_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " time TEXT NOT NULL, day TEXT NOT NULL, file_sha256 TEXT NOT NULL, rule_id TEXT NOT NULL,"
    " verdict TEXT NOT NULL CHECK (verdict IN ('malicious', 'suspicious', 'clean')), database TEXT NOT NULL,"
    " database_version INTEGER NOT NULL CHECK (database_version >= 0), endpoint TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_file_sha256 ON events (file_sha256)",
    "CREATE INDEX IF NOT EXISTS events_tenant_day ON events (tenant, day, rule_id)",
    "CREATE TABLE IF NOT EXISTS blob_gc (sha256 TEXT PRIMARY KEY) WITHOUT ROWID",
)
# Event rows go in by multi-row INSERTs of a power of two rows each (at most MAX_ROWS_PER_INSERT): a batch
# is a few statements, each one call into SQLite, so the GIL is given up once per statement rather than
# once per row as executemany does (another thread parsing the next batch would make each row wait for it),
# and only a dozen statements are ever prepared. OR ROLLBACK: a row that breaks a constraint ends the whole
# transaction, which a failed batch does anyway, so SQLite keeps no statement journal (a copy of every page
# a multi-row statement touches first, which would cost more than the rows themselves).
MAX_ROWS_PER_INSERT = 1024
_ROW = f"({', '.join('?' * len(EVENT_COLUMNS))})"


@cache
def insert_statement(rows: int) -> str:
    """The INSERT of ``rows`` event rows, their values bound in :data:`EVENT_COLUMNS` order."""
    if not 1 <= rows <= MAX_ROWS_PER_INSERT:
        raise ValueError(f"an INSERT takes 1 to {MAX_ROWS_PER_INSERT} rows, not {rows}")
    return f"INSERT OR ROLLBACK INTO events ({', '.join(EVENT_COLUMNS)}) VALUES {', '.join([_ROW] * rows)}"


def insert_events(db: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """Insert ``rows`` inside the caller's transaction (which a failure rolls back)."""
    start, end = 0, len(rows)
    while start < end:
        size = min(MAX_ROWS_PER_INSERT, 1 << ((end - start).bit_length() - 1))
        db.execute(insert_statement(size), tuple(chain.from_iterable(rows[start : start + size])))
        start += size


# A group commit holds at most this much: a bound on one transaction's size and on the wait of its last
# writer.
MAX_GROUP_BATCHES = 8
MAX_GROUP_EVENTS = 20_000

_FANOUT = [f"{i:02x}" for i in range(256)]
_WRITERS: dict[Path, threading.Lock] = {}
_WRITERS_GUARD = threading.Lock()


def _writer_lock(path: Path) -> threading.Lock:
    """The lock this process's writers of the database at ``path`` take before SQLite's own."""
    key = path.resolve()
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(key, threading.Lock())


@dataclass(eq=False)
class _Pending:
    """A batch waiting for its group commit, and then its outcome: ``found`` (None: stored now) or ``error``."""

    stored: StoredBatch
    rows: list[EventRow]
    raw: bytes
    done: bool = False
    found: tuple[str, int] | None = None
    error: BaseException | None = None

    def settle(self, *, found: tuple[str, int] | None = None, error: BaseException | None = None) -> None:
        self.found, self.error, self.done = found, error, True


class _GroupCommit:
    """Group commit for one store's writers in this process: a writer queues its batch; the first to find
    no commit running leads one for every batch queued by then (up to :data:`MAX_GROUP_BATCHES` batches and
    :data:`MAX_GROUP_EVENTS` events, oldest first), while the others wait for their outcome. No writer waits
    for company: a batch alone is committed alone, at once. A batch is answered only once the transaction
    holding it is committed (or has failed), so each answer means what it did with one commit per batch;
    the batches that arrive during a commit share the next one, and with it one fsync of the WAL."""

    def __init__(self) -> None:
        self._queue: deque[_Pending] = deque()
        self._changed = threading.Condition()
        self._leading = False
        self.commits = 0  # transactions that committed batches, and how many batches they held
        self.batches = 0

    def write(self, mine: _Pending, commit: Callable[[list[_Pending]], None]) -> tuple[str, int] | None:
        with self._changed:
            self._queue.append(mine)
        try:
            self._until_done(mine, commit)
        except BaseException:
            with self._changed:  # a writer that raises leaves no batch behind for a later commit
                if not mine.done and mine in self._queue:
                    self._queue.remove(mine)
            raise
        if mine.error is not None:
            raise mine.error
        return mine.found

    def _until_done(self, mine: _Pending, commit: Callable[[list[_Pending]], None]) -> None:
        while True:
            with self._changed:
                while self._leading and not mine.done:
                    self._changed.wait()
                if mine.done:
                    return
                self._leading = True
            try:  # whatever happens from here on, the lead is given up and the group answered (commit's part)
                with self._changed:
                    group = self._take()
                commit(group)
            finally:
                with self._changed:
                    self._leading = False
                    self._changed.notify_all()

    def _take(self) -> list[_Pending]:
        """The next group, oldest first; the queue is changed only once the group's list is made, so that a
        failure here (out of memory) leaves every batch queued."""
        size, events = 0, 0
        for pending in self._queue:
            events += len(pending.rows)
            if size == MAX_GROUP_BATCHES or (size and events > MAX_GROUP_EVENTS):
                break
            size += 1
        group = list(islice(self._queue, size))
        for _ in group:
            self._queue.popleft()
        return group

    def committed(self, batches: int) -> None:
        with self._changed:
            self.commits += 1
            self.batches += batches


class SQLiteResidencyStore(JurisdictionStore):
    """The store of one jurisdiction in SQLite and a blob folder under ``root``."""

    backend_errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error, OSError)

    def __init__(self, root: Path, jurisdiction: str, *, create: bool = False) -> None:
        self.root = root
        self.jurisdiction = jurisdiction
        self.path = root / "store.db"
        self.where = str(self.path)
        self.blobs = root / "blobs"
        if not self.path.exists():
            self._check_no_leftovers()
            if not create:
                raise ConfigError(f"jurisdiction {jurisdiction} has no telemetry store at {self.path}")
            self._make_folders()
        self._writers = _writer_lock(self.path)
        self._lock = threading.RLock()  # one statement or transaction on the connection at a time
        self._closed = False
        self._group = _GroupCommit()
        self._db = self._connect(self.path)
        self._blob_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"blobs-{jurisdiction}")
        try:
            self._check_stamp(create)
            if not self.blobs.is_dir():
                raise StorageError(f"the telemetry store {self.path} has lost its blob folder {self.blobs}")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            for pragma in PRAGMAS:
                db.execute(pragma)
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the telemetry store {path}: {e}") from e
        return db

    def _check_no_leftovers(self) -> None:
        """Blobs without a database are a store that lost its rows: never started over silently."""
        if self.blobs.is_dir() and any(p.is_file() for p in self.blobs.rglob("*")):
            raise StorageError(
                f"{self.root} holds telemetry blobs but no store.db: the store's database is lost; restore it "
                "from a backup"
            )

    def _make_folders(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.blobs.mkdir(exist_ok=True, mode=0o700)
        for name in _FANOUT:
            (self.blobs / name).mkdir(exist_ok=True, mode=0o700)
        fsync_dirs([self.root, self.blobs])

    def _read_stamp(self) -> str | None:
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (STAMP_KEY,)).fetchone()
        return None if row is None else str(row[0])

    def _holds_data(self) -> bool:
        tables = [r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return any(self._db.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables if t != "meta")

    def _check_stamp(self, create: bool) -> None:
        try:
            stamp = self._read_stamp()
            if stamp is None:
                if self._holds_data():
                    raise unstamped_refusal(where=str(self.path), requested=self.jurisdiction)
                if not create:
                    raise ConfigError(
                        f"jurisdiction {self.jurisdiction} has no telemetry store at {self.path}"
                    )
                stamp = self._stamp()
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the telemetry store {self.path}: {e}") from e
        if stamp != self.jurisdiction:
            raise stamp_refusal(where=str(self.path), stamped=stamp, requested=self.jurisdiction)

    def _stamp(self) -> str:
        """Make the tables and stamp the store, unless another process did first; the stamp it holds."""
        with self._transaction():
            for statement in SCHEMA:
                self._db.execute(statement)
            stamp = self._read_stamp()
            if stamp is None:
                if self._holds_data():
                    raise unstamped_refusal(where=str(self.path), requested=self.jurisdiction)
                stamp = self.jurisdiction
                self._db.execute("INSERT INTO meta VALUES (?, ?)", (STAMP_KEY, stamp))
        return stamp

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction: committed if the block ends, rolled back if it raises.

        Writers in this process queue on a lock of their own first: SQLite's busy handler would make a
        second thread sleep and retry, which costs more than the write it waits for.
        """
        with self._lock, self._writers:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    # -- writing ---------------------------------------------------------------------------------------

    def _insert_batch(self, stored: StoredBatch, rows: list[EventRow], raw: bytes) -> tuple[str, int] | None:
        """Queue the batch for the next group commit and wait for its outcome (see :class:`_GroupCommit`):
        the first writer to find no commit running leads one, for every batch queued by then."""
        return self._group.write(_Pending(stored, rows, raw), self._commit_group)

    def _commit_group(self, group: list[_Pending]) -> None:
        """Commit ``group`` in one transaction; if that fails, each of its batches again in a transaction of
        its own, so that one bad batch fails alone. Every batch of the group is given its outcome."""
        try:
            if len(group) > 1:
                try:
                    self._write_together(group)
                    return
                except Exception:
                    pass  # nothing of the group was committed: each batch is written again alone
            for pending in group:
                try:
                    self._write_together([pending])
                except Exception as e:
                    pending.settle(error=e)
        finally:
            for pending in group:  # an interrupt (BaseException) leaves no writer waiting forever
                if not pending.done:
                    pending.settle(
                        error=StorageError("the store's writer was interrupted; nothing was stored")
                    )

    def _write_together(self, group: list[_Pending]) -> None:
        """One transaction under the write lock for ``group``. Each new batch's blob is written on the blob
        thread while the rows go in, and every blob is durable before the commit; on any failure the rows
        roll back and a blob no committed row refers to is removed. Settles the group once committed."""
        blobs: list[tuple[str, Future[None]]] = []
        try:
            with self._transaction():
                outcomes = [self._insert_rows(p, blobs) for p in group]
                for _, written in blobs:
                    written.result()  # the blobs are durable before the rows commit
        except BaseException:
            wait([f for _, f in blobs])
            for digest, _ in blobs:
                self._forget_blob(digest)
            raise
        self._group.committed(len(group))
        for pending, found in zip(group, outcomes, strict=True):
            pending.settle(found=found)

    def _insert_rows(
        self, pending: _Pending, blobs: list[tuple[str, Future[None]]]
    ) -> tuple[str, int] | None:
        """Inside the group's transaction: the batch's rows, its blob queued onto ``blobs``, and None; or,
        if its key is taken (also by an earlier batch of the same group), the ``(sha256, events)`` there."""
        stored = pending.stored
        found = self._db.execute(
            "SELECT sha256, events FROM batches WHERE tenant = ? AND batch_id = ?",
            (stored.tenant_id, stored.batch_id),
        ).fetchone()
        if found is not None:
            return str(found[0]), int(found[1])
        blobs.append((stored.sha256, self._blob_thread.submit(self._put_blob, stored.sha256, pending.raw)))
        self._db.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
            (stored.tenant_id, stored.batch_id, stored.sha256, len(pending.rows), len(pending.raw)),
        )
        insert_events(self._db, pending.rows)
        return None

    def _reason(self, e: Exception) -> str:
        # An OSError names the blob's path; the message may reach the tenant's endpoint (the cause keeps it).
        return (e.strerror or type(e).__name__) if isinstance(e, OSError) else str(e)

    def _put_blob(self, digest: str, raw: bytes) -> None:
        """Make the blob durable (file and folder fsynced). A blob already there (the same bytes sent by
        another tenant, or a batch sent again) is kept only if its bytes hash to its name, and is fsynced
        again, file and folder: whoever made it may not have finished making it durable."""
        path = self.blob_path(digest)
        try:
            with path.open("rb") as f:
                if sha256_hex(f.read(len(raw) + 1)) == digest:
                    os.fsync(f.fileno())
                    fsync_dirs([path.parent])
                    return
        except FileNotFoundError:
            pass
        atomic_write(path, raw, mode=0o600)  # a new blob, or one damaged on disk made whole again
        fsync_dirs([path.parent])

    def _forget_blob(self, digest: str) -> None:
        """Remove the blob of a failed write, unless a committed row refers to it (best effort: an orphan
        left behind is never read)."""
        try:
            with self._transaction():
                if not self._db.execute("SELECT 1 FROM batches WHERE sha256 = ?", (digest,)).fetchone():
                    self.blob_path(digest).unlink(missing_ok=True)
        except (sqlite3.Error, OSError):
            pass

    def _delete_tenant(self, tenant_id: str) -> int:
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO blob_gc SELECT DISTINCT sha256 FROM batches WHERE tenant = ?",
                (tenant_id,),
            )
            removed: int = self._db.execute("DELETE FROM batches WHERE tenant = ?", (tenant_id,)).rowcount
            self._db.execute("DELETE FROM events WHERE tenant = ?", (tenant_id,))
        self._collect_blobs()
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the purged pages leave the WAL too
        return removed

    def _collect_blobs(self) -> None:
        """Remove the blobs that purges freed and no row refers to; forget them once the removal is durable."""
        with self._transaction():
            freed = [
                r[0]
                for r in self._db.execute(
                    "SELECT sha256 FROM blob_gc WHERE sha256 NOT IN (SELECT sha256 FROM batches)"
                )
            ]
            for digest in freed:
                self.blob_path(digest).unlink(missing_ok=True)
            fsync_dirs({self.blob_path(d).parent for d in freed})
            self._db.execute("DELETE FROM blob_gc")

    # -- reading ---------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the telemetry store {self.path} is closed")

    def _query(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        try:
            with self._lock:
                self._check_open()
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the telemetry store {self.path}: {e}") from e

    def aggregates(
        self, tenant_id: str, since: date | None = None, until: date | None = None
    ) -> list[RuleDay]:
        check_tenant_id(tenant_id)
        rows = self._query(
            "SELECT day, rule_id, count(*), sum(verdict = 'malicious'), sum(verdict = 'suspicious'),"
            " sum(verdict = 'clean') FROM events WHERE tenant = ? AND day >= ? AND day <= ?"
            " GROUP BY day, rule_id ORDER BY day, rule_id",
            (tenant_id, (since or date.min).isoformat(), (until or date.max).isoformat()),
        )
        return [
            RuleDay(
                day=date.fromisoformat(d),
                rule_id=rule,
                events=int(n),
                malicious=int(m),
                suspicious=int(s),
                clean=int(c),
            )
            for d, rule, n, m, s, c in rows
        ]

    def batch_digests(self, tenant_id: str) -> dict[str, str]:
        check_tenant_id(tenant_id)
        rows = self._query("SELECT batch_id, sha256 FROM batches WHERE tenant = ?", (tenant_id,))
        return {str(b): str(h) for b, h in rows}

    def export_batches(self, tenant_id: str) -> Iterator[ExportedBatch]:
        for batch_id, digest in sorted(self.batch_digests(tenant_id).items()):
            yield ExportedBatch(batch_id, self.read_blob(digest), digest)

    def read_blob(self, digest: str) -> bytes:
        """The raw bytes named ``digest``, checked against it."""
        path = self.blob_path(digest)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise StorageError(f"the telemetry store {self.path} cannot read blob {digest}: {e}") from e
        if sha256_hex(raw) != digest:
            raise StorageError(f"blob {path} is damaged: its bytes do not hash to its name")
        return raw

    def count_events(self, tenant_id: str) -> int:
        check_tenant_id(tenant_id)
        return int(self._query("SELECT count(*) FROM events WHERE tenant = ?", (tenant_id,))[0][0])

    # -- backup ----------------------------------------------------------------------------------------

    def backup_to(self, dest: Path) -> Backup:
        """An online backup of the database (SQLite's backup API) and a copy of every blob it refers to,
        each checked against its hash, into ``dest``: itself a store that opens as this jurisdiction's."""
        check_empty_target(dest)
        partial = dest / ".store.db.partial"
        try:
            copy = sqlite3.connect(partial)
            try:
                with self._lock:
                    self._db.backup(copy)
                digests = [r[0] for r in copy.execute("SELECT DISTINCT sha256 FROM batches")]
                batches, events = copy.execute(
                    "SELECT count(*), coalesce(sum(events), 0) FROM batches"
                ).fetchone()
            finally:
                copy.close()
            _fsync_file(partial)
            for name in _FANOUT:
                (dest / "blobs" / name).mkdir(parents=True, exist_ok=True, mode=0o700)
            for digest in digests:
                atomic_write(dest / "blobs" / digest[:2] / digest, self.read_blob(digest), mode=0o600)
            fsync_dirs([dest / "blobs" / name for name in _FANOUT] + [dest / "blobs"])
            os.replace(partial, dest / "store.db")
            fsync_dirs([dest])
        except (sqlite3.Error, OSError) as e:
            raise StorageError(f"cannot back up {self.path} to {dest}: {e}") from e
        return Backup(jurisdiction=self.jurisdiction, path=dest, batches=batches, events=events)

    def close(self) -> None:
        """Close the store once the statement or transaction running now ends; later calls are refused with
        a StorageError (a write queued meanwhile is answered so, nothing stored)."""
        with self._lock:
            self._closed = True
            self._db.close()
        self._blob_thread.shutdown()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
