"""The monitor's memory: one SQLite database in its state directory, written one transaction per step.

What it keeps, so a restart never re-reads the log::

    meta       position (entries read), the tree's right edge at that position, the builder registry in force
    keys       key records: pinned, fetched from the vendor's site, or introduced by a logged rotation
    vsa        every VSA read: entry index and leaf hash, subject, result, the keyids it names, who signed it
    tuf        every tuf-metadata/v1 statement read: entry, file name and sha256, role, who signed it
    avdb       (database, version) -> artifact of every AV-database provenance read
    artifacts  every released artifact the repository named, in the order first met (oldest metadata
               version first): its (kind, name, version), path, provenance, when first seen, its status
    metadata   every served metadata file judged (name, sha256)
    vsa_binds  whether a rebuilder's VSA names a release's provenance (decided once, by the endpoint's rule)
    alerts     every alert, once: (kind, index, subject, distinct) is unique, ``distinct`` being what tells two
               alerts about one subject apart (an artifact's or a file's sha256); delivered and reported flags

The position, the tree edge and everything read up to it commit in one transaction with the alerts they
raised (:meth:`MonitorState.transaction`): a monitor killed mid-run re-reads from the last commit, and an alert
raised again is the same row (``INSERT OR IGNORE``), so nothing is skipped and nothing alerted twice. One monitor
per state directory: an exclusive ``flock`` on it (:func:`overt.writerlock.lock_directory`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.errors import ConfigError, StorageError
from overt.tlog.merkle import HASH_SIZE
from overt.writerlock import lock_directory

DATABASE = "monitor.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (keyid TEXT PRIMARY KEY, record BLOB, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vsa (idx INTEGER NOT NULL, leaf TEXT NOT NULL, subject TEXT NOT NULL,
    names TEXT NOT NULL, result TEXT, keyids TEXT NOT NULL, verified TEXT, PRIMARY KEY (idx, subject));
CREATE INDEX IF NOT EXISTS vsa_subject ON vsa (subject);
CREATE TABLE IF NOT EXISTS tuf (idx INTEGER PRIMARY KEY, leaf TEXT NOT NULL, name TEXT NOT NULL,
    digest TEXT NOT NULL, role TEXT, keyids TEXT NOT NULL, verified TEXT);
CREATE INDEX IF NOT EXISTS tuf_name ON tuf (name, digest);
CREATE TABLE IF NOT EXISTS avdb (database TEXT NOT NULL, version TEXT NOT NULL, artifact TEXT NOT NULL,
    idx INTEGER NOT NULL, PRIMARY KEY (database, version));
CREATE TABLE IF NOT EXISTS artifacts (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
    version TEXT NOT NULL, shown TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, provenance TEXT,
    log_index INTEGER, first_seen REAL NOT NULL, status TEXT NOT NULL, listed_in TEXT NOT NULL DEFAULT '',
    UNIQUE (kind, name, version, sha256));
CREATE INDEX IF NOT EXISTS artifacts_sha256 ON artifacts (sha256);
CREATE INDEX IF NOT EXISTS artifacts_path ON artifacts (path);
CREATE TABLE IF NOT EXISTS metadata (name TEXT NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (name, sha256));
CREATE TABLE IF NOT EXISTS vsa_binds (idx INTEGER NOT NULL, subject TEXT NOT NULL, provenance TEXT NOT NULL,
    binds INTEGER NOT NULL, PRIMARY KEY (idx, subject, provenance));
CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, idx INTEGER NOT NULL,
    subject TEXT NOT NULL, message TEXT NOT NULL, created REAL NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
    reported INTEGER NOT NULL DEFAULT 0, distinct_on TEXT NOT NULL DEFAULT '',
    UNIQUE (kind, idx, subject, distinct_on));
"""
# A state written before alerts had ``distinct_on``: its rows move to the table above, unchanged.
_MIGRATE_ALERTS = """
ALTER TABLE alerts RENAME TO alerts_old;
CREATE TABLE alerts (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, idx INTEGER NOT NULL,
    subject TEXT NOT NULL, message TEXT NOT NULL, created REAL NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
    reported INTEGER NOT NULL DEFAULT 0, distinct_on TEXT NOT NULL DEFAULT '',
    UNIQUE (kind, idx, subject, distinct_on));
INSERT INTO alerts (id, kind, idx, subject, message, created, delivered, reported)
    SELECT id, kind, idx, subject, message, created, delivered, reported FROM alerts_old;
DROP TABLE alerts_old;
"""
# A state written when only the first artifact of each (kind, name, version) was kept: its rows move over.
_MIGRATE_RELEASES = """
INSERT OR IGNORE INTO artifacts (kind, name, version, shown, path, sha256, provenance, log_index, first_seen,
    status) SELECT kind, name, version, shown, path, sha256, provenance, log_index, first_seen, status
    FROM releases ORDER BY rowid;
DROP TABLE releases;
"""
NO_INDEX = -1  # an alert about the repository, not about one log entry


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One thing the monitor flags: its kind, the log index it is about (None: the repository), what it is
    about, and why. ``id`` is stable: a webhook receiver that gets one twice can tell."""

    id: int
    kind: str
    index: int | None
    subject: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "index": self.index,
            "subject": self.subject,
            "message": self.message,
        }

    def line(self) -> str:
        """One line for a person: kind, what, log index, why."""
        where = "repository" if self.index is None else f"log index {self.index}"
        return f"{self.kind}: {self.subject} ({where}): {self.message}"


def _unusable(directory: Path) -> str:
    """How the state directory fails: unwritable (a read-only directory or database) or unreadable."""
    database = directory / DATABASE
    writable = os.access(directory, os.W_OK) and (not database.exists() or os.access(database, os.W_OK))
    return "unreadable" if writable else "unwritable"


class MonitorState:
    """The state directory's database, opened (and locked) by one monitor at a time."""

    def __init__(self, directory: Path) -> None:
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"the monitor state {directory} is a file; it must be a directory")
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock = lock_directory(directory)
        except BlockingIOError as e:
            raise ConfigError(f"another monitor is running on the state directory {directory}") from e
        except OSError as e:
            raise StorageError(f"cannot open the monitor state {directory}: {e.strerror}") from e
        self.directory = directory
        try:
            self.db = sqlite3.connect(directory / DATABASE, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(alerts)")}
            if "distinct_on" not in columns:
                self.db.executescript(f"BEGIN IMMEDIATE; {_MIGRATE_ALERTS} COMMIT;")
            tables = {
                row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if "releases" in tables:
                self.db.executescript(f"BEGIN IMMEDIATE; {_MIGRATE_RELEASES} COMMIT;")
        except sqlite3.Error as e:
            os.close(self._lock)
            raise StorageError(
                f"the monitor state {directory / DATABASE} is {_unusable(directory)}: {e}"
            ) from e

    def close(self) -> None:
        self.db.close()
        os.close(self._lock)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Everything in the block commits at once, or not at all."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as e:
            raise StorageError(f"the monitor state {self.directory / DATABASE} cannot be written: {e}") from e

    # --- meta ---------------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    @staticmethod
    def put(db: sqlite3.Connection, key: str, value: Any) -> None:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    def position(self) -> tuple[int, list[bytes]]:
        """Entries read so far and the tree's right edge over them (compact-range peaks)."""
        size = int(self.get("position", 0))
        blob = bytes.fromhex(self.get("peaks", ""))
        peaks = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        if len(peaks) != size.bit_count():
            raise StorageError(
                f"the monitor state {self.directory} is damaged: its tree edge does not fit size {size}"
            )
        return size, peaks

    @classmethod
    def save_position(cls, db: sqlite3.Connection, size: int, peaks: tuple[bytes, ...]) -> None:
        cls.put(db, "position", size)
        cls.put(db, "peaks", b"".join(peaks).hex())

    # --- alerts -------------------------------------------------------------------------------------

    @staticmethod
    def alert(
        db: sqlite3.Connection,
        *,
        kind: str,
        index: int | None,
        subject: str,
        message: str,
        now: float,
        distinct: str = "",
    ) -> None:
        """Record an alert unless this (kind, index, subject, distinct) was alerted before."""
        db.execute(
            "INSERT OR IGNORE INTO alerts (kind, idx, subject, message, created, distinct_on) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (kind, NO_INDEX if index is None else index, subject, message, now, distinct),
        )

    def alerts(self, where: str) -> list[Alert]:
        rows = self.db.execute(
            f"SELECT id, kind, idx, subject, message FROM alerts WHERE {where} ORDER BY id"
        )
        return [
            Alert(id=i, kind=k, index=None if x == NO_INDEX else x, subject=s, message=m)
            for i, k, x, s, m in rows
        ]

    def take_unreported(self) -> list[Alert]:
        """The alerts no run has reported yet (this run's, and any a killed run committed), now reported."""
        with self.transaction() as db:
            found = self.alerts("reported = 0")
            db.execute("UPDATE alerts SET reported = 1 WHERE reported = 0")
        return found

    def mark_delivered(self, alert_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE alerts SET delivered = 1 WHERE id = ?", (alert_id,))
