"""Jurisdiction stores: where one jurisdiction's telemetry lives, opened only as that jurisdiction's.

:func:`open_store` opens the store of jurisdiction ``J`` as configured (:mod:`overt.residency.config`): a
SQLite database and blob folder under ``J``'s root (:mod:`overt.residency.store_sqlite`), or a PostgreSQL
database (:mod:`overt.residency.store_postgres`). Both have the same rows and the same rules:

- A store is stamped with its jurisdiction when it is made, and refuses to open as another's
  (:class:`~overt.errors.PolicyError` naming both), or at all when it holds data but no stamp.
- A batch is stored whole or not at all, keyed by ``(tenant, batch_id)``: its raw bytes (content-addressed
  by sha256) and one row per event. The same bytes resent are answered as stored (``duplicate``); other
  bytes under a stored ``batch_id`` are a :class:`BatchConflict`. A failed write leaves no row, and no blob
  that any row refers to.
- Aggregates (detections per rule per day) are computed by the store's own SQL, where the data lives.
- Exports hand out the raw bytes with their sha256 (checked on the way out); an import checks the hash and
  derives the rows again from the bytes (:func:`~overt.residency.telemetry.parse_batch`).
- A backup goes only under the same jurisdiction's root: :func:`check_backup_target` is the rule,
  :func:`backup_store` applies it.

This module does not know tenants' home jurisdictions: refusing a tenant's data in a foreign store is the
router's job (it asks the tenant directory); the stamp is what stops a store from serving as another
jurisdiction's. A stamp is a guard against misconfiguration and copied folders, not against an operator who
rewrites the database: staff access goes through approvals and the access log.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from overt.errors import PolicyError, StorageError, UsageError, VerificationError
from overt.keys.registry import check_jurisdiction
from overt.residency.config import defaults_folder, jurisdiction_config, jurisdiction_configs, root_of
from overt.residency.telemetry import TelemetryBatch, parse_batch
from overt.residency.tenants import check_tenant_id

if TYPE_CHECKING:
    from overt.home import Home

STAMP_KEY = "jurisdiction"
# The columns of an event row, in the order of :func:`event_rows` (and of every INSERT and COPY).
EVENT_COLUMNS = (
    "tenant",
    "batch_id",
    "seq",
    "time",
    "day",
    "file_sha256",
    "rule_id",
    "verdict",
    "database",
    "database_version",
    "endpoint",
)
EventRow = tuple[str, str, int, str, str, str, str, str, str, int, str]


class BatchConflict(PolicyError):
    """Another body was sent under a ``batch_id`` this tenant already stored (HTTP 409)."""

    status: ClassVar[int] = 409

    def __init__(self, *, tenant_id: str, batch_id: str, stored_sha256: str, sent_sha256: str) -> None:
        super().__init__(
            f"batch {batch_id} of tenant {tenant_id} is already stored with other content (sha256 "
            f"{stored_sha256}, this one {sent_sha256}): a batch_id names one batch; send new data under a "
            "new batch_id",
            tenant_id=tenant_id,
            batch_id=batch_id,
            stored_sha256=stored_sha256,
            sent_sha256=sent_sha256,
        )
        self.tenant_id = tenant_id
        self.batch_id = batch_id
        self.stored_sha256 = stored_sha256
        self.sent_sha256 = sent_sha256


class DigestMismatch(VerificationError):
    """Bytes offered for import do not hash to the sha256 they came with."""

    def __init__(self, *, batch_id: str, expected: str, actual: str) -> None:
        super().__init__(
            f"batch {batch_id} does not match its hash: expected sha256 {expected}, got {actual}; "
            "nothing was imported",
            batch_id=batch_id,
            expected=expected,
            actual=actual,
        )
        self.batch_id = batch_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBatch:
    """A batch the store holds: its key, the sha256 of its raw bytes, its size in events, and whether this
    write found it already stored (a resend)."""

    jurisdiction: str
    tenant_id: str
    batch_id: str
    sha256: str
    events: int
    duplicate: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "jurisdiction": self.jurisdiction,
            "tenant": self.tenant_id,
            "batch_id": self.batch_id,
            "sha256": self.sha256,
            "events": self.events,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleDay:
    """Detections of one rule on one day (UTC) for one tenant: all of them, and by verdict."""

    day: date
    rule_id: str
    events: int
    malicious: int
    suspicious: int
    clean: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "rule_id": self.rule_id,
            "events": self.events,
            "malicious": self.malicious,
            "suspicious": self.suspicious,
            "clean": self.clean,
        }


class ExportedBatch(NamedTuple):
    """One stored batch as it leaves the store: its id, its raw bytes, and their sha256 (checked)."""

    batch_id: str
    raw: bytes
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Backup:
    """A finished backup: where it is and what it holds."""

    jurisdiction: str
    path: Path
    batches: int
    events: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "jurisdiction": self.jurisdiction,
            "path": str(self.path),
            "batches": self.batches,
            "events": self.events,
        }


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def event_rows(tenant_id: str, batch: TelemetryBatch) -> list[EventRow]:
    """The rows of ``batch``, in :data:`EVENT_COLUMNS` order: the time in UTC, the day its date."""
    rows: list[EventRow] = []
    append = rows.append
    batch_id, endpoint = batch.batch_id, batch.endpoint
    for seq, e in enumerate(batch.events):
        t = e.time
        append(
            (
                tenant_id,
                batch_id,
                seq,
                t,
                t[:10],
                e.file_sha256,
                e.rule_id,
                e.verdict,
                e.database,
                e.database_version,
                endpoint,
            )
        )
    return rows


def answer_resend(stored: StoredBatch, found_sha256: str, found_events: int) -> StoredBatch:
    """The answer to a batch sent again: as stored (``duplicate``) for the same bytes, else a conflict."""
    if found_sha256 != stored.sha256:
        raise BatchConflict(
            tenant_id=stored.tenant_id,
            batch_id=stored.batch_id,
            stored_sha256=found_sha256,
            sent_sha256=stored.sha256,
        )
    return replace(stored, events=found_events, duplicate=True)


def check_empty_target(dest: Path) -> None:
    """A backup goes into a new or empty folder (made here), never over another backup or a store."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"a backup goes into a new or empty folder; {dest} is not one")
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)


def stamp_refusal(*, where: str, stamped: str, requested: str) -> PolicyError:
    return PolicyError(
        f"the telemetry store at {where} belongs to jurisdiction {stamped!r}, not {requested}: a store is "
        f"never opened as another jurisdiction's; configure {requested}'s own store",
        stamped=stamped,
        requested=requested,
        store=where,
    )


def unstamped_refusal(*, where: str, requested: str) -> PolicyError:
    return PolicyError(
        f"the telemetry store at {where} holds data but no jurisdiction stamp: it is not opened as "
        f"{requested}'s, or anyone's, until it is known whose data it holds",
        requested=requested,
        store=where,
    )


class JurisdictionStore(ABC):
    """One jurisdiction's telemetry. Open with :func:`open_store`; close (or use ``with``) when done.

    A store holds one database connection and is safe to share between threads: its statements and
    transactions take turns. For SQLite share one store (the database takes one writer at a time anyway,
    and each further connection would start its writes with a cold page cache); for PostgreSQL open one
    per thread, so that the server works on several batches at once.

    :meth:`write_batch` and :meth:`purge_tenant` are the steps every backend shares (checks, rows, the
    answer to a resend, the error a caller sees); a backend supplies only its SQL, in
    :meth:`_insert_batch` and :meth:`_delete_tenant`, and says which of its errors mean "the store failed"
    (:attr:`backend_errors`, turned into :class:`~overt.errors.StorageError` here).
    """

    jurisdiction: str
    root: Path  # the jurisdiction's root, where its backups go
    where: str  # the store in operators' messages: its path or its database, never credentials
    backend_errors: ClassVar[tuple[type[Exception], ...]]

    def write_batch(self, tenant_id: str, batch: TelemetryBatch, raw: bytes) -> StoredBatch:
        """Store ``raw`` and the rows of ``batch``, which must be ``parse_batch(raw)``, in one transaction
        (SQLite's may hold other batches committed with it; a batch is answered once it is committed).

        Raises:
            BatchConflict: the tenant stored other bytes under this ``batch_id``.
            StorageError: nothing was stored; sending the batch again is safe.
        """
        check_tenant_id(tenant_id)
        rows = event_rows(tenant_id, batch)
        stored = StoredBatch(
            jurisdiction=self.jurisdiction,
            tenant_id=tenant_id,
            batch_id=batch.batch_id,
            sha256=sha256_hex(raw),
            events=len(rows),
            duplicate=False,
        )
        try:
            found = self._insert_batch(stored, rows, raw)
        except self.backend_errors as e:
            # The message reaches the tenant's endpoint (HTTP 503): it names the jurisdiction, not the
            # store's path or server, which stay in the evidence for the operator.
            raise StorageError(
                f"cannot store batch {batch.batch_id} in {self.jurisdiction}'s telemetry store: "
                f"{self._reason(e)}; nothing was stored, send it again",
                store=self.where,
            ) from e
        return stored if found is None else answer_resend(stored, *found)

    @abstractmethod
    def _insert_batch(self, stored: StoredBatch, rows: list[EventRow], raw: bytes) -> tuple[str, int] | None:
        """In one transaction: ``raw`` and ``rows`` stored under ``stored``'s key, and None; or, if the key
        is taken, nothing written and the ``(sha256, events)`` stored under it."""

    def purge_tenant(self, tenant_id: str) -> int:
        """Remove every batch of ``tenant_id`` (rows and raw bytes); the number of batches removed.

        Raises:
            StorageError: the purge did not finish; purging again finishes it.
        """
        check_tenant_id(tenant_id)
        try:
            return self._delete_tenant(tenant_id)
        except self.backend_errors as e:
            raise StorageError(
                f"cannot purge tenant {tenant_id} from {self.where}: {self._reason(e)}; purge it again"
            ) from e

    @abstractmethod
    def _delete_tenant(self, tenant_id: str) -> int:
        """Delete the tenant's rows (one transaction) and whatever else holds its data; the batches removed."""

    def _reason(self, e: Exception) -> str:
        """The one-line reason of a backend error, as messages quote it."""
        return str(e)

    @abstractmethod
    def aggregates(
        self, tenant_id: str, since: date | None = None, until: date | None = None
    ) -> list[RuleDay]:
        """Detections per rule per day of ``tenant_id``, days ``since`` to ``until`` inclusive."""

    @abstractmethod
    def batch_digests(self, tenant_id: str) -> dict[str, str]:
        """Every stored batch of ``tenant_id``: batch_id -> sha256 of its raw bytes."""

    @abstractmethod
    def export_batches(self, tenant_id: str) -> Iterator[ExportedBatch]:
        """Each stored batch of ``tenant_id`` with its raw bytes, checked against its sha256."""

    @abstractmethod
    def count_events(self, tenant_id: str) -> int:
        """How many event rows ``tenant_id`` has here."""

    @abstractmethod
    def backup_to(self, dest: Path) -> Backup:
        """Copy the store into the new or empty folder ``dest`` (see :func:`backup_store` for the rule)."""

    @abstractmethod
    def close(self) -> None: ...

    def import_batch(self, tenant_id: str, batch_id: str, raw: bytes, sha256: str) -> StoredBatch:
        """Store a batch exported elsewhere: its hash checked, its rows derived again from ``raw``.

        Idempotent: the same batch imported twice is answered as ``duplicate``.

        Raises:
            DigestMismatch: ``raw`` does not hash to ``sha256``.
            VerificationError: ``raw`` holds another batch than ``batch_id``.
            BatchConflict: this store holds other bytes under ``batch_id`` for the tenant.
        """
        actual = sha256_hex(raw)
        if actual != sha256:
            raise DigestMismatch(batch_id=batch_id, expected=sha256, actual=actual)
        batch = parse_batch(raw)
        if batch.batch_id != batch_id:
            raise VerificationError(
                f"the bytes offered as batch {batch_id} hold batch {batch.batch_id}; nothing was imported",
                batch_id=batch_id,
                found=batch.batch_id,
            )
        return self.write_batch(tenant_id, batch, raw)

    def __enter__(self) -> JurisdictionStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_store(home: Home, j: str, *, create: bool = False) -> JurisdictionStore:
    """The telemetry store of jurisdiction ``j`` in ``home``; with ``create``, made and stamped if new.

    Raises:
        ConfigError: no store exists for ``j`` (and ``create`` is false), or the configuration is wrong.
        PolicyError: the store found is stamped for another jurisdiction, or holds data without a stamp.
        StorageError: the store cannot be read.
    """
    check_jurisdiction(j)
    config = jurisdiction_config(home, j)
    root = root_of(home, j)
    if config.store == "postgres":
        from overt.residency.store_postgres import PostgresResidencyStore

        return PostgresResidencyStore(config.postgres_dsn, j, root=root, create=create)
    from overt.residency.store_sqlite import SQLiteResidencyStore

    return SQLiteResidencyStore(root, j, create=create)


def _other_roots(home: Home, j: str) -> dict[str, Path]:
    """The roots of every other jurisdiction this home knows: configured ones, and default ones on disk."""
    others = {k: root_of(home, k) for k in jurisdiction_configs(home) if k != j}
    defaults = defaults_folder(home.paths.root)
    if defaults.is_dir():
        for entry in defaults.iterdir():
            if entry.name != j and entry.name not in others:
                others[entry.name] = entry
    return others


def check_backup_target(home: Home, j: str, dest: Path) -> Path:
    """``dest``, resolved, if a backup of ``j``'s store may go there: strictly under ``j``'s root, not in
    the live store's own files, and not in any other jurisdiction's root. Symbolic links are followed
    first, so a link out of the root counts as what it points to.

    Raises:
        PolicyError: ``dest`` is elsewhere; the message names where it resolved to.
    """
    check_jurisdiction(j)
    root = root_of(home, j).resolve()
    target = Path(dest).expanduser().resolve()
    for k, other in sorted(_other_roots(home, j).items()):
        if target.is_relative_to(other.resolve()):
            raise PolicyError(
                f"a backup of {j}'s telemetry cannot go to {dest}: it resolves to {target}, in the root of "
                f"jurisdiction {k} ({other.resolve()})",
                jurisdiction=j,
                target=str(target),
                other_jurisdiction=k,
            )
    if target == root or not target.is_relative_to(root):
        raise PolicyError(
            f"a backup of {j}'s telemetry goes only into a folder under {j}'s root {root}; {dest} resolves "
            f"to {target}",
            jurisdiction=j,
            target=str(target),
            root=str(root),
        )
    live = target.relative_to(root).parts[0]
    if live == "blobs" or live.startswith("store.db"):
        raise PolicyError(
            f"a backup of {j}'s telemetry cannot go to {target}: that is the live store's own {live}",
            jurisdiction=j,
            target=str(target),
        )
    return target


def backup_store(home: Home, j: str, dest: Path) -> Backup:
    """Back up ``j``'s store into ``dest`` once :func:`check_backup_target` allows it."""
    target = check_backup_target(home, j, dest)
    with open_store(home, j) as store:
        return store.backup_to(target)
