"""Sequencing stores: the durable record of which entry has which index, and the tree's right edge.

Two implementations of one small protocol: :class:`SQLiteStore` (the embedded default) and
:class:`PostgresStore` (at scale). Both commit a batch of new (leaf hash, index) rows together with the new tree
state in one transaction; that commit is the moment an entry is acknowledged.

Entries themselves live in the tile tree's entry bundles (written and fsynced before the commit), not here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from overt.errors import StorageError
from overt.tlog.merkle import HASH_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class LogState:
    """The committed tree: its size, root and compact-range peaks (left to right)."""

    tree_size: int
    root_hash: bytes
    peaks: tuple[bytes, ...]

    def peaks_blob(self) -> bytes:
        return b"".join(self.peaks)

    @classmethod
    def from_row(cls, size: int, root: bytes, blob: bytes) -> LogState:
        if len(blob) % HASH_SIZE or len(blob) // HASH_SIZE != size.bit_count():
            raise StorageError(f"stored log state is corrupt: {len(blob)} bytes of peaks for size {size}")
        peaks = tuple(blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE))
        return cls(tree_size=size, root_hash=bytes(root), peaks=peaks)


class SequencerStore(Protocol):
    """What the sequencer needs from a database."""

    def load_state(self) -> LogState | None: ...

    def lookup(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]: ...

    def commit(self, rows: Sequence[tuple[bytes, int]], state: LogState) -> None: ...

    def load_signed_checkpoint(self) -> bytes | None: ...

    def save_signed_checkpoint(self, data: bytes) -> None: ...

    def entry_count(self) -> int: ...

    def rows_from(self, start: int) -> Iterator[tuple[bytes, int]]: ...

    def integrity_problems(self) -> list[str]: ...

    def restore(self, rows: Sequence[tuple[bytes, int]], state: LogState, signed: bytes | None) -> None: ...

    def close(self) -> None: ...


_LOOKUP_CHUNK = 500


class SQLiteStore:
    """SQLite in WAL mode with ``synchronous=FULL``: a commit is on disk when :meth:`commit` returns."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS log_entries (
                    leaf_hash BLOB PRIMARY KEY, leaf_index INTEGER NOT NULL UNIQUE) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS log_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1), tree_size INTEGER NOT NULL,
                    root_hash BLOB NOT NULL, peaks BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS log_signed (
                    id INTEGER PRIMARY KEY CHECK (id = 1), checkpoint BLOB NOT NULL);
                """
            )
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the log database {path}: {e}") from e

    def load_state(self) -> LogState | None:
        try:
            row = self._db.execute(
                "SELECT tree_size, root_hash, peaks FROM log_state WHERE id = 1"
            ).fetchone()
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the log database: {e}") from e
        return None if row is None else LogState.from_row(row[0], row[1], row[2])

    def lookup(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        for i in range(0, len(leaf_hashes), _LOOKUP_CHUNK):
            chunk = leaf_hashes[i : i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT leaf_hash, leaf_index FROM log_entries WHERE leaf_hash IN ({marks})"
            try:
                found.update((bytes(h), idx) for h, idx in self._db.execute(q, chunk))
            except sqlite3.Error as e:
                raise StorageError(f"cannot read the log database: {e}") from e
        return found

    def commit(self, rows: Sequence[tuple[bytes, int]], state: LogState) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO log_entries VALUES (?, ?)", rows)
                self._db.execute(
                    "INSERT OR REPLACE INTO log_state VALUES (1, ?, ?, ?)",
                    (state.tree_size, state.root_hash, state.peaks_blob()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StorageError(f"cannot commit to the log database: {e}") from e

    def load_signed_checkpoint(self) -> bytes | None:
        try:
            row = self._db.execute("SELECT checkpoint FROM log_signed WHERE id = 1").fetchone()
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the log database: {e}") from e
        return None if row is None else bytes(row[0])

    def save_signed_checkpoint(self, data: bytes) -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO log_signed VALUES (1, ?)", (data,))
        except sqlite3.Error as e:
            raise StorageError(f"cannot save the signed checkpoint: {e}") from e

    def entry_count(self) -> int:
        return self._query("SELECT count(*) FROM log_entries")[0][0]  # type: ignore[no-any-return]

    def rows_from(self, start: int) -> Iterator[tuple[bytes, int]]:
        """(leaf hash, index) rows from ``start`` on, in index order."""
        q = "SELECT leaf_hash, leaf_index FROM log_entries WHERE leaf_index >= ? ORDER BY leaf_index"
        try:
            for h, idx in self._db.execute(q, (start,)):
                yield bytes(h), idx
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the log database: {e}") from e

    def integrity_problems(self) -> list[str]:
        """What ``PRAGMA quick_check`` reports (empty when the database is sound)."""
        try:
            rows = self._db.execute("PRAGMA quick_check").fetchall()
        except sqlite3.Error as e:
            return [str(e)]
        return [] if [r[0] for r in rows] == ["ok"] else [str(r[0]) for r in rows]

    def restore(self, rows: Sequence[tuple[bytes, int]], state: LogState, signed: bytes | None) -> None:
        """Replace everything with ``rows``, ``state`` and ``signed`` in one transaction (``overt log recover``)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for table in ("log_entries", "log_state", "log_signed"):
                    self._db.execute(f"DELETE FROM {table}")
                self._db.executemany("INSERT INTO log_entries VALUES (?, ?)", rows)
                self._db.execute(
                    "INSERT INTO log_state VALUES (1, ?, ?, ?)",
                    (state.tree_size, state.root_hash, state.peaks_blob()),
                )
                if signed is not None:
                    self._db.execute("INSERT INTO log_signed VALUES (1, ?)", (signed,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StorageError(f"cannot restore the log database: {e}") from e

    def _query(self, sql: str) -> list[Any]:
        try:
            return self._db.execute(sql).fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the log database: {e}") from e

    def close(self) -> None:
        self._db.close()


class PostgresStore:
    """PostgreSQL (psycopg 3). One connection; the sequencer is the only writer of a log."""

    def __init__(self, dsn: str, *, schema: str = "overt") -> None:
        import psycopg

        if not schema.isidentifier():
            raise StorageError(f"invalid PostgreSQL schema name {schema!r}")
        try:
            self._db: Any = psycopg.connect(dsn, autocommit=True)
            with self._db.transaction():
                self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                self._db.execute(f"SET search_path TO {schema}")
                self._db.execute(
                    """
                    CREATE TABLE IF NOT EXISTS log_entries (
                        leaf_hash BYTEA PRIMARY KEY, leaf_index BIGINT NOT NULL UNIQUE);
                    CREATE TABLE IF NOT EXISTS log_state (
                        id INTEGER PRIMARY KEY CHECK (id = 1), tree_size BIGINT NOT NULL,
                        root_hash BYTEA NOT NULL, peaks BYTEA NOT NULL);
                    CREATE TABLE IF NOT EXISTS log_signed (
                        id INTEGER PRIMARY KEY CHECK (id = 1), checkpoint BYTEA NOT NULL);
                    """
                )
        except psycopg.Error as e:
            raise StorageError(f"cannot open the PostgreSQL log store: {e}") from e
        self._psycopg = psycopg

    def load_state(self) -> LogState | None:
        row = self._db.execute("SELECT tree_size, root_hash, peaks FROM log_state WHERE id = 1").fetchone()
        return None if row is None else LogState.from_row(row[0], row[1], row[2])

    def lookup(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        if not leaf_hashes:
            return {}
        rows = self._db.execute(
            "SELECT leaf_hash, leaf_index FROM log_entries WHERE leaf_hash = ANY(%s)", (list(leaf_hashes),)
        ).fetchall()
        return {bytes(h): idx for h, idx in rows}

    def commit(self, rows: Sequence[tuple[bytes, int]], state: LogState) -> None:
        try:
            with self._db.transaction(), self._db.cursor() as cur:
                if rows:
                    with cur.copy("COPY log_entries (leaf_hash, leaf_index) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                cur.execute(
                    "INSERT INTO log_state VALUES (1, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                    "tree_size = EXCLUDED.tree_size, root_hash = EXCLUDED.root_hash, peaks = EXCLUDED.peaks",
                    (state.tree_size, state.root_hash, state.peaks_blob()),
                )
        except self._psycopg.Error as e:
            raise StorageError(f"cannot commit to the PostgreSQL log store: {e}") from e

    def load_signed_checkpoint(self) -> bytes | None:
        row = self._db.execute("SELECT checkpoint FROM log_signed WHERE id = 1").fetchone()
        return None if row is None else bytes(row[0])

    def save_signed_checkpoint(self, data: bytes) -> None:
        self._db.execute(
            "INSERT INTO log_signed VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET checkpoint = EXCLUDED.checkpoint",
            (data,),
        )

    def entry_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM log_entries").fetchone()[0])

    def rows_from(self, start: int) -> Iterator[tuple[bytes, int]]:
        q = "SELECT leaf_hash, leaf_index FROM log_entries WHERE leaf_index >= %s ORDER BY leaf_index"
        with self._db.cursor() as cur:
            for h, idx in cur.stream(q, (start,)):
                yield bytes(h), idx

    def integrity_problems(self) -> list[str]:
        """PostgreSQL checks its own pages; here only that the tables answer."""
        try:
            self._db.execute("SELECT count(*) FROM log_state").fetchone()
        except self._psycopg.Error as e:
            return [str(e)]
        return []

    def restore(self, rows: Sequence[tuple[bytes, int]], state: LogState, signed: bytes | None) -> None:
        try:
            with self._db.transaction(), self._db.cursor() as cur:
                cur.execute("TRUNCATE log_entries, log_state, log_signed")
                with cur.copy("COPY log_entries (leaf_hash, leaf_index) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(
                    "INSERT INTO log_state VALUES (1, %s, %s, %s)",
                    (state.tree_size, state.root_hash, state.peaks_blob()),
                )
                if signed is not None:
                    cur.execute("INSERT INTO log_signed VALUES (1, %s)", (signed,))
        except self._psycopg.Error as e:
            raise StorageError(f"cannot restore the PostgreSQL log store: {e}") from e

    def close(self) -> None:
        self._db.close()
