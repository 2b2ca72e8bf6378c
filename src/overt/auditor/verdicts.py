"""The rebuilder's verdict store: where it is in the log, which provenances wait, and each verdict, once.

Three tables, each keyed by the auditor's keyid so several auditors may share one database::

    rebuild_position  (auditor)                     the log size discovery has read up to
    rebuild_jobs      (auditor, provenance_sha256)  a provenance found in the log: its index, FAIL and BAD
                                                    attempts so far, the last attempt's reason
    rebuild_verdicts  (auditor, provenance_sha256)  the verdict: GOOD/BAD/FAIL, the VSA result and reason, the
                                                    signed envelope (stored before it is submitted), and
                                                    the log index it got (NULL until the log answered)

A verdict row is written with ``INSERT ... ON CONFLICT DO NOTHING`` and read back: whoever inserted first
decided, and every later writer (a retry, a second worker on the same job) gets that row and resubmits its
envelope byte for byte, which the log deduplicates to the same index. So one (auditor, provenance) is never
logged twice. Discovery records the jobs it found and the new position in one transaction, so a rebuilder
killed at any point resumes without losing a job or reading the log again.

Two backends behind one class: SQLite (the embedded default, ``state/rebuild.sqlite`` in the auditor home; WAL,
a busy timeout so several processes share it) and PostgreSQL (psycopg 3) for a DSN ``postgresql://...``, the
tables in schema ``overt_rebuild``, made on first use under an advisory lock. The SQL is the same, written
with ``?`` placeholders; only the DDL's types and ``MAX``/``GREATEST`` differ. As in
:mod:`overt.tlog.stores`, no ORM.

Owns the rows, not what they mean: deciding and signing a verdict is :mod:`overt.auditor.rebuild`'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.errors import StorageError, UsageError

GOOD, BAD, FAIL = "GOOD", "BAD", "FAIL"
SCHEMA = "overt_rebuild"
BUSY_TIMEOUT_S = 60.0
_POSTGRES = ("postgresql://", "postgres://")
_SQLITE = "sqlite:///"

_DDL = """
CREATE TABLE IF NOT EXISTS rebuild_position (
    auditor TEXT PRIMARY KEY, next_index {int} NOT NULL);
CREATE TABLE IF NOT EXISTS rebuild_jobs (
    auditor TEXT NOT NULL, provenance_sha256 TEXT NOT NULL, log_index {int} NOT NULL,
    fail_attempts INTEGER NOT NULL DEFAULT 0, bad_attempts INTEGER NOT NULL DEFAULT 0,
    last_reason TEXT NOT NULL DEFAULT '', PRIMARY KEY (auditor, provenance_sha256));
CREATE TABLE IF NOT EXISTS rebuild_verdicts (
    auditor TEXT NOT NULL, provenance_sha256 TEXT NOT NULL, log_index {int} NOT NULL,
    verdict TEXT NOT NULL, result TEXT NOT NULL, reason TEXT NOT NULL, envelope {blob} NOT NULL,
    vsa_index {int}, decided_at TEXT NOT NULL, PRIMARY KEY (auditor, provenance_sha256));
"""
_VERDICT_COLUMNS = (
    "auditor, provenance_sha256, log_index, verdict, result, reason, envelope, vsa_index, decided_at"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredVerdict:
    """One decided verdict: what was judged, the decision, and the envelope signed for it."""

    auditor: str
    provenance_sha256: str
    log_index: int  # of the provenance
    verdict: str  # GOOD, BAD or FAIL
    result: str  # the VSA's PASSED or FAILED
    reason: str
    envelope: bytes  # the DSSE envelope, byte for byte as it is (to be) logged
    vsa_index: int | None  # where the log put it; None until it answered
    decided_at: str

    def __post_init__(self) -> None:
        if self.verdict not in (GOOD, BAD, FAIL):
            raise ValueError(f"verdict {self.verdict!r} is none of GOOD, BAD, FAIL")

    def row(self) -> tuple[Any, ...]:
        return (
            self.auditor,
            self.provenance_sha256,
            self.log_index,
            self.verdict,
            self.result,
            self.reason,
            self.envelope,
            self.vsa_index,
            self.decided_at,
        )

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> StoredVerdict:
        return cls(
            auditor=row[0],
            provenance_sha256=row[1],
            log_index=int(row[2]),
            verdict=row[3],
            result=row[4],
            reason=row[5],
            envelope=bytes(row[6]),
            vsa_index=None if row[7] is None else int(row[7]),
            decided_at=row[8],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobState:
    """A provenance waiting for (or past) its verdict: where it is and how its attempts went."""

    provenance_sha256: str
    log_index: int
    fail_attempts: int
    bad_attempts: int
    last_reason: str


class VerdictStore:
    """The store at ``dsn`` (a PostgreSQL DSN or ``sqlite:///PATH``), or SQLite at ``default``."""

    def __init__(self, dsn: str | None, *, default: Path) -> None:
        self._pg = dsn is not None and dsn.startswith(_POSTGRES)
        if dsn is None or dsn.startswith(_SQLITE):
            path = default if dsn is None else Path(dsn[len(_SQLITE) - 1 :])
            self.where = str(path)
            self._db: Any = _open_sqlite(path)
            self._error: type[Exception] = sqlite3.Error
        elif self._pg:
            self.where = "PostgreSQL"
            self._db, self._error = _open_postgres(dsn)
        else:
            raise UsageError(
                f"--store {dsn[:60]!r} is neither a PostgreSQL DSN (postgresql://...) nor sqlite:///PATH"
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> VerdictStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- SQL, one spelling for both backends -----------------------------------------------------------

    def _sql(self, sql: str) -> str:
        if self._pg:
            return sql.replace("?", "%s").replace("MAX(rebuild_position", "GREATEST(rebuild_position")
        return sql

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(self._db.execute(self._sql(sql), tuple(params)).fetchall())
        except self._error as e:
            raise StorageError(f"the verdict store ({self.where}) failed: {_one_line(e)}") from e

    def _run(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self._db.execute(self._sql(sql), tuple(params))
        except self._error as e:
            raise StorageError(f"the verdict store ({self.where}) failed: {_one_line(e)}") from e

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            if self._pg:
                with self._db.transaction():
                    yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except self._error as e:
            raise StorageError(f"the verdict store ({self.where}) failed: {_one_line(e)}") from e

    # --- position and jobs -----------------------------------------------------------------------------

    def position(self, auditor: str) -> int:
        """The log size discovery has read up to (0 before the first discovery)."""
        rows = self._rows("SELECT next_index FROM rebuild_position WHERE auditor = ?", (auditor,))
        return int(rows[0][0]) if rows else 0

    def record_discovery(self, auditor: str, jobs: Sequence[tuple[int, str]], *, next_index: int) -> None:
        """Add ``jobs`` ((log index, provenance sha256), those not known yet) and move the position forward
        to ``next_index`` (never back), in one transaction."""
        with self._transaction():
            for index, sha256 in jobs:
                self._run(
                    "INSERT INTO rebuild_jobs (auditor, provenance_sha256, log_index) VALUES (?, ?, ?) "
                    "ON CONFLICT (auditor, provenance_sha256) DO NOTHING",
                    (auditor, sha256, index),
                )
            self._run(
                "INSERT INTO rebuild_position VALUES (?, ?) ON CONFLICT (auditor) DO UPDATE SET "
                "next_index = MAX(rebuild_position.next_index, excluded.next_index)",
                (auditor, next_index),
            )

    def unfinished(self, auditor: str) -> list[JobState]:
        """Jobs without a logged verdict (none yet, or signed but not yet answered by the log), by index."""
        rows = self._rows(
            "SELECT j.provenance_sha256, j.log_index, j.fail_attempts, j.bad_attempts, j.last_reason "
            "FROM rebuild_jobs j LEFT JOIN rebuild_verdicts v "
            "ON v.auditor = j.auditor AND v.provenance_sha256 = j.provenance_sha256 "
            "WHERE j.auditor = ? AND (v.provenance_sha256 IS NULL OR v.vsa_index IS NULL) "
            "ORDER BY j.log_index",
            (auditor,),
        )
        return [_job(r) for r in rows]

    def job(self, auditor: str, provenance_sha256: str) -> JobState | None:
        rows = self._rows(
            "SELECT provenance_sha256, log_index, fail_attempts, bad_attempts, last_reason FROM rebuild_jobs "
            "WHERE auditor = ? AND provenance_sha256 = ?",
            (auditor, provenance_sha256),
        )
        return _job(rows[0]) if rows else None

    def count_attempt(
        self, auditor: str, provenance_sha256: str, *, log_index: int, kind: str, reason: str
    ) -> JobState:
        """Count one FAIL or BAD attempt (``kind``) and its reason; the job's state afterwards."""
        column = {FAIL: "fail_attempts", BAD: "bad_attempts"}[kind]
        with self._transaction():
            self._run(
                f"INSERT INTO rebuild_jobs (auditor, provenance_sha256, log_index, {column}, last_reason) "
                f"VALUES (?, ?, ?, 1, ?) ON CONFLICT (auditor, provenance_sha256) DO UPDATE SET "
                f"{column} = rebuild_jobs.{column} + 1, last_reason = excluded.last_reason",
                (auditor, provenance_sha256, log_index, reason),
            )
        state = self.job(auditor, provenance_sha256)
        assert state is not None
        return state

    # --- verdicts --------------------------------------------------------------------------------------

    def verdict(self, auditor: str, provenance_sha256: str) -> StoredVerdict | None:
        rows = self._rows(
            f"SELECT {_VERDICT_COLUMNS} FROM rebuild_verdicts WHERE auditor = ? AND provenance_sha256 = ?",
            (auditor, provenance_sha256),
        )
        return StoredVerdict.of_row(rows[0]) if rows else None

    def put_verdict(self, verdict: StoredVerdict) -> StoredVerdict:
        """Store ``verdict`` unless one is stored for its (auditor, provenance); the one stored either way."""
        with self._transaction():
            self._run(
                f"INSERT INTO rebuild_verdicts ({_VERDICT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (auditor, provenance_sha256) DO NOTHING",
                verdict.row(),
            )
        stored = self.verdict(verdict.auditor, verdict.provenance_sha256)
        assert stored is not None
        return stored

    def mark_logged(self, auditor: str, provenance_sha256: str, *, vsa_index: int) -> None:
        self._run(
            "UPDATE rebuild_verdicts SET vsa_index = ? WHERE auditor = ? AND provenance_sha256 = ?",
            (vsa_index, auditor, provenance_sha256),
        )

    def verdicts(self, auditor: str) -> list[StoredVerdict]:
        """Every verdict of ``auditor``, by the provenance's log index."""
        rows = self._rows(
            f"SELECT {_VERDICT_COLUMNS} FROM rebuild_verdicts WHERE auditor = ? ORDER BY log_index",
            (auditor,),
        )
        return [StoredVerdict.of_row(r) for r in rows]


def _job(row: Sequence[Any]) -> JobState:
    return JobState(
        provenance_sha256=row[0],
        log_index=int(row[1]),
        fail_attempts=int(row[2]),
        bad_attempts=int(row[3]),
        last_reason=row[4],
    )


def _one_line(e: BaseException) -> str:
    """A database error's message on one line (PostgreSQL's span lines, with tabs)."""
    return " ".join(str(e).split()) or type(e).__name__


def _open_sqlite(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_DDL.format(int="INTEGER", blob="BLOB"))
    except (sqlite3.Error, OSError) as e:
        raise StorageError(f"cannot open the verdict store {path}: {_one_line(e)}") from e
    return db


def _open_postgres(dsn: str) -> tuple[Any, type[Exception]]:
    import psycopg

    try:
        db = psycopg.connect(dsn, autocommit=True)
        with db.transaction():
            # Two workers starting at once would race on CREATE ... IF NOT EXISTS; the lock orders them.
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SCHEMA,))
            db.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            db.execute(f"SET search_path TO {SCHEMA}")
            db.execute(_DDL.format(int="BIGINT", blob="BYTEA"))
    except psycopg.Error as e:
        raise StorageError(f"cannot open the PostgreSQL verdict store: {_one_line(e)}") from e
    return db, psycopg.Error
