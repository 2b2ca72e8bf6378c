"""The PostgreSQL jurisdiction store: one database per jurisdiction (its DSN), tables in schema ``residency``.

Raw batches are ``bytea`` in the batch's own row, so a batch and its events commit in one transaction and
a failed write leaves nothing at all. Event rows go in with ``COPY``. The stamp is a row of
``residency.meta``, written with the tables under an advisory lock, so two processes creating the store at
once make one. A backup is a plain SQL dump (``residency.sql``, the tables' DDL and one ``COPY`` block per
table, read in one REPEATABLE READ snapshot) that ``psql -f`` restores; it is written under the
jurisdiction's root like a SQLite backup.

Messages name the database by host, port and name only (a DSN may hold a password), and carry the server's
one-line reason without its CONTEXT lines (they can quote a row). A purge deletes the rows in one
transaction; PostgreSQL reuses their space after VACUUM but does not overwrite it at once.

:data:`SCHEMA` is also what ``benchmarks/residency.py`` measures the raw COPY rate with.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg import conninfo

from overt.atomic import fsync_dirs
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

SCHEMA = (
    "CREATE SCHEMA IF NOT EXISTS residency",
    "CREATE TABLE IF NOT EXISTS residency.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS residency.batches (tenant TEXT NOT NULL, batch_id TEXT NOT NULL,"
    " sha256 TEXT NOT NULL, events INTEGER NOT NULL, raw BYTEA NOT NULL, PRIMARY KEY (tenant, batch_id))",
    "CREATE TABLE IF NOT EXISTS residency.events (tenant TEXT NOT NULL, batch_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL, time TIMESTAMPTZ NOT NULL, day DATE NOT NULL, file_sha256 TEXT NOT NULL,"
    " rule_id TEXT NOT NULL, verdict TEXT NOT NULL CHECK (verdict IN ('malicious', 'suspicious', 'clean')),"
    " database TEXT NOT NULL, database_version BIGINT NOT NULL CHECK (database_version >= 0),"
    " endpoint TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_file_sha256 ON residency.events (file_sha256)",
    "CREATE INDEX IF NOT EXISTS events_tenant_day ON residency.events (tenant, day, rule_id)",
)
# lz4 compresses a raw batch about three times faster than the default pglz (PostgreSQL 14+, built with lz4).
FAST_COMPRESSION = "ALTER TABLE residency.batches ALTER COLUMN raw SET COMPRESSION lz4"
COPY_EVENTS = f"COPY residency.events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
_TABLES = {
    "meta": "key, value",
    "batches": "tenant, batch_id, sha256, events, raw",
    "events": ", ".join(EVENT_COLUMNS),
}
_CREATE_LOCK = 0x6F76_7274_7265_7331  # pg_advisory_xact_lock key of the store's creation ("ovrtres1")


def reason(e: psycopg.Error | OSError) -> str:
    """The server's one-line reason, without the CONTEXT lines (they can quote a row of telemetry)."""
    primary = e.diag.message_primary if isinstance(e, psycopg.Error) and e.diag else None
    return primary or (str(e).splitlines() or [type(e).__name__])[0]


def describe_dsn(dsn: str) -> str:
    """``database D on host:port``, without the credentials a DSN may carry."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "a PostgreSQL database (its DSN does not parse)"
    host = parts.get("host") or parts.get("hostaddr") or "localhost"
    return f"database {parts.get('dbname') or parts.get('user') or '?'} on {host}:{parts.get('port') or 5432}"


class PostgresResidencyStore(JurisdictionStore):
    """The store of one jurisdiction in its own PostgreSQL database."""

    backend_errors: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error,)

    def __init__(self, dsn: str, jurisdiction: str, *, root: Path, create: bool = False) -> None:
        self.jurisdiction = jurisdiction
        self.root = root
        self.where = describe_dsn(dsn)
        self._lock = threading.RLock()  # one statement or transaction on the connection at a time
        try:
            self._db: psycopg.Connection[Any] = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as e:
            raise StorageError(
                f"cannot connect to {jurisdiction}'s telemetry store, {self.where}: {reason(e)}"
            ) from e
        try:
            self._check_stamp(create)
        except psycopg.Error as e:
            self._db.close()
            raise StorageError(
                f"cannot read {jurisdiction}'s telemetry store, {self.where}: {reason(e)}"
            ) from e
        except BaseException:
            self._db.close()
            raise

    def _read_stamp(self) -> str | None:
        if self._one("SELECT to_regclass('residency.meta')")[0] is None:
            return None
        row = self._db.execute("SELECT value FROM residency.meta WHERE key = %s", (STAMP_KEY,)).fetchone()
        return None if row is None else str(row[0])

    def _holds_data(self) -> bool:
        tables = [
            r[0]
            for r in self._db.execute(
                "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'residency' AND tablename <> 'meta'"
            )
        ]
        return any(self._db.execute(f"SELECT 1 FROM residency.{t} LIMIT 1").fetchone() for t in tables)

    def _check_stamp(self, create: bool) -> None:
        stamp = self._read_stamp()
        if stamp is None:
            if self._holds_data():
                raise unstamped_refusal(where=self.where, requested=self.jurisdiction)
            if not create:
                raise ConfigError(f"jurisdiction {self.jurisdiction} has no telemetry store in {self.where}")
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                for statement in SCHEMA:
                    self._db.execute(statement)
                self._try(FAST_COMPRESSION)
                stamp = self._read_stamp()
                if stamp is None:
                    if self._holds_data():
                        raise unstamped_refusal(where=self.where, requested=self.jurisdiction)
                    stamp = self.jurisdiction
                    self._db.execute("INSERT INTO residency.meta VALUES (%s, %s)", (STAMP_KEY, stamp))
        if stamp != self.jurisdiction:
            raise stamp_refusal(where=self.where, stamped=stamp, requested=self.jurisdiction)

    def _try(self, sql: str) -> None:
        """Run ``sql`` if this server supports it (in a savepoint, so a refusal changes nothing)."""
        try:
            with self._db.transaction():
                self._db.execute(sql)
        except (psycopg.errors.FeatureNotSupported, psycopg.errors.SyntaxError):
            pass

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> Any:
        return self._db.execute(sql, args).fetchone()

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except psycopg.Error as e:
            raise StorageError(
                f"cannot read {self.jurisdiction}'s telemetry store, {self.where}: {reason(e)}"
            ) from e

    # -- writing ---------------------------------------------------------------------------------------

    def _insert_batch(self, stored: StoredBatch, rows: list[EventRow], raw: bytes) -> tuple[str, int] | None:
        with self._lock, self._db.transaction(), self._db.cursor() as cur:
            cur.execute(
                "INSERT INTO residency.batches VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (stored.tenant_id, stored.batch_id, stored.sha256, len(rows), raw),
            )
            if cur.rowcount == 1:
                with cur.copy(COPY_EVENTS) as copy:
                    for row in rows:
                        copy.write_row(row)
                return None
            found = cur.execute(
                "SELECT sha256, events FROM residency.batches WHERE tenant = %s AND batch_id = %s",
                (stored.tenant_id, stored.batch_id),
            ).fetchone()
        if found is None:  # purged between the two statements
            raise StorageError(
                f"batch {stored.batch_id} was removed while it was stored again; send it again"
            )
        return str(found[0]), int(found[1])

    def _delete_tenant(self, tenant_id: str) -> int:
        with self._lock, self._db.transaction():
            self._db.execute("DELETE FROM residency.events WHERE tenant = %s", (tenant_id,))
            return self._db.execute("DELETE FROM residency.batches WHERE tenant = %s", (tenant_id,)).rowcount

    def _reason(self, e: Exception) -> str:
        return reason(e) if isinstance(e, psycopg.Error | OSError) else str(e)

    # -- reading ---------------------------------------------------------------------------------------

    def aggregates(
        self, tenant_id: str, since: date | None = None, until: date | None = None
    ) -> list[RuleDay]:
        check_tenant_id(tenant_id)
        rows = self._rows(
            "SELECT day, rule_id, count(*), count(*) FILTER (WHERE verdict = 'malicious'),"
            " count(*) FILTER (WHERE verdict = 'suspicious'), count(*) FILTER (WHERE verdict = 'clean')"
            " FROM residency.events WHERE tenant = %s AND day >= %s AND day <= %s"
            " GROUP BY day, rule_id ORDER BY day, rule_id",
            (tenant_id, since or date.min, until or date.max),
        )
        return [
            RuleDay(day=d, rule_id=rule, events=n, malicious=m, suspicious=s, clean=c)
            for d, rule, n, m, s, c in rows
        ]

    def batch_digests(self, tenant_id: str) -> dict[str, str]:
        check_tenant_id(tenant_id)
        rows = self._rows("SELECT batch_id, sha256 FROM residency.batches WHERE tenant = %s", (tenant_id,))
        return {b: h for b, h in rows}

    def export_batches(self, tenant_id: str) -> Iterator[ExportedBatch]:
        for batch_id, digest in sorted(self.batch_digests(tenant_id).items()):
            found = self._rows(
                "SELECT raw FROM residency.batches WHERE tenant = %s AND batch_id = %s", (tenant_id, batch_id)
            )
            if not found:
                raise StorageError(f"batch {batch_id} of tenant {tenant_id} was removed during the export")
            raw = bytes(found[0][0])
            if sha256_hex(raw) != digest:
                raise StorageError(
                    f"batch {batch_id} in {self.where} is damaged: it does not hash to {digest}"
                )
            yield ExportedBatch(batch_id, raw, digest)

    def count_events(self, tenant_id: str) -> int:
        check_tenant_id(tenant_id)
        return int(self._rows("SELECT count(*) FROM residency.events WHERE tenant = %s", (tenant_id,))[0][0])

    # -- backup ----------------------------------------------------------------------------------------

    def backup_to(self, dest: Path) -> Backup:
        """A plain SQL dump of the store's tables, ``dest/residency.sql``, from one consistent snapshot."""
        check_empty_target(dest)
        partial, final = dest / ".residency.sql.partial", dest / "residency.sql"
        try:
            with open(partial, "wb") as out, self._lock, self._db.transaction(), self._db.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                batches, events = cur.execute(
                    "SELECT count(*), coalesce(sum(events), 0) FROM residency.batches"
                ).fetchone() or (0, 0)
                out.write(f"-- overt telemetry store of jurisdiction {self.jurisdiction}\nBEGIN;\n".encode())
                out.write(b"".join(f"{s};\n".encode() for s in SCHEMA))
                for table, columns in _TABLES.items():
                    out.write(f"COPY residency.{table} ({columns}) FROM stdin;\n".encode())
                    with cur.copy(f"COPY residency.{table} ({columns}) TO STDOUT") as copy:
                        for data in copy:
                            out.write(data)
                    out.write(b"\\.\n")
                out.write(b"COMMIT;\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
            fsync_dirs([dest])
        except (psycopg.Error, OSError) as e:
            raise StorageError(f"cannot back up {self.where} to {dest}: {reason(e)}") from e
        return Backup(jurisdiction=self.jurisdiction, path=final, batches=int(batches), events=int(events))

    def close(self) -> None:
        self._db.close()
