"""A home's logs, opened by name: append, publish, read, fsck and recover one log (:class:`HomeLog`).

A home has its own log, ``main``, and may hold more (one access-transparency log per jurisdiction). Each is
a :class:`HomeLog`: its files (:class:`~overt.home.paths.LogPaths`), its settings
(:class:`~overt.home.config.LogConfig`) and its signer. Every open for appending holds the log's writer lock
and checks the database against what the log signed and published (:mod:`overt.tlog.guard`).

Appends this process made that no published checkpoint covers yet are remembered (:func:`unpublished`): the
CLI exits 2 while any remain.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from overt.atomic import atomic_write
from overt.errors import ConfigError, Error, FormatError, StorageError, TransportError
from overt.home.config import LogConfig
from overt.home.paths import LogPaths
from overt.keys.signers import NoteSigner
from overt.keys.signing import LogReceipt
from overt.tlog.client import submit_entry
from overt.tlog.guard import (
    FsckReport,
    Head,
    RecoverResult,
    check_open,
    fsck,
    known_heads,
    largest,
    recover,
    write_mark,
)
from overt.tlog.log import LocalLog, LogFiles, PublishResult
from overt.tlog.merkle import EMPTY_ROOT
from overt.tlog.policy import Policy, PolicyLog
from overt.tlog.sequencer import TileLog, stored_size
from overt.tlog.stores import LogState, PostgresStore, SequencerStore, SQLiteStore
from overt.writerlock import WriterLock, lock_is_held


@dataclass(frozen=True, slots=True, kw_only=True)
class Unpublished:
    """An entry this process appended that no published checkpoint covers yet, and why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UnpublishedAppends:
    """Appends that no published checkpoint covers yet, as the CLI reports them when it exits 2 for them:
    their indices and the reason the last one stayed unpublished."""

    entries: tuple[Unpublished, ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("UnpublishedAppends needs at least one unpublished entry")

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(u.index for u in self.entries)

    @property
    def message(self) -> str:
        listed = ", ".join(str(i) for i in self.indices)
        one = len(self.indices) == 1
        entries, are, them = ("entry", "is", "it") if one else ("entries", "are", "them")
        return (
            f"not published: log {entries} {listed} {are} appended, but no published checkpoint covers "
            f"{them} yet ({self.entries[-1].reason}); nobody can verify {them} until 'overt log publish' "
            "succeeds"
        )

    def to_dict(self) -> dict[str, Any]:
        """The error object ``--json`` writes on stderr; ``indices`` lists the entries' log indices."""
        return {"error": "UnpublishedError", "message": self.message, "indices": list(self.indices)}


_unpublished: list[Unpublished] = []


def unpublished() -> list[Unpublished]:
    """This process's appends that no published checkpoint covers yet. The CLI exits 2 while any remain:
    their entries are in the log, but nobody can verify them until ``overt log publish`` succeeds."""
    return list(_unpublished)


def is_published(index: int) -> bool:
    return all(u.index != index for u in _unpublished)


def append_through_server(url: str, entry: bytes, policy: Policy) -> LogReceipt:
    """Append through a running log server; its tlog-proof is verified under ``policy`` (the home's own).

    A 503 "unpublished" answer names the index the server gave the entry: the append happened, the
    publication did not (the server keeps retrying it).
    """
    with httpx.Client(timeout=120) as http:
        try:
            proof = submit_entry(url, entry, policy, http)
        except TransportError as e:
            index = e.evidence.get("index")
            if e.evidence.get("reason") == "unpublished" and isinstance(index, int):
                size = e.evidence.get("tree_size")
                _unpublished.append(Unpublished(index=index, reason=f"the log server at {url}: {e}"))
                return LogReceipt(
                    index=index, tree_size=size if isinstance(size, int) else index + 1, published=False
                )
            raise
    return LogReceipt(index=proof.index, tree_size=proof.checkpoint.checkpoint.tree_size, published=True)


class HomeLog:
    """One log of a home, by name."""

    def __init__(self, paths: LogPaths, config: LogConfig, signer: Callable[[], NoteSigner]) -> None:
        self.name = paths.name
        self.paths = paths
        self.config = config
        self._signer = signer

    def signer(self) -> NoteSigner:
        return self._signer()

    @property
    def files(self) -> LogFiles:
        return LogFiles(head=self.paths.head, fsck_mark=self.paths.fsck_mark, intent=self.paths.intent)

    def create(self) -> None:
        """Write a new log's vkey and its own tlog-policy (no witnesses yet). Publishing its size-0 checkpoint
        (:meth:`publish`) comes next, as Tessera does: witnesses and clients start from it."""
        self.paths.public.mkdir(parents=True, exist_ok=True)
        self.paths.lock.parent.mkdir(parents=True, exist_ok=True)
        verifier = self.signer().verifier()
        atomic_write(self.paths.vkey, (verifier.vkey() + "\n").encode())
        self.save_policy(Policy(logs=(PolicyLog(verifier=verifier),), quorum="none"))

    def policy(self) -> Policy:
        try:
            return Policy.from_bytes(self.paths.policy.read_bytes())
        except OSError as e:
            raise ConfigError(f"cannot read {self.paths.policy}: {e}") from e
        except FormatError as e:
            raise ConfigError(f"{self.paths.policy}: {e}") from e

    def save_policy(self, policy: Policy) -> None:
        atomic_write(self.paths.policy, policy.to_bytes())
        atomic_write(self.paths.public / "policy", policy.to_bytes())

    def open_store(self) -> SequencerStore:
        if self.config.store == "postgres":
            return PostgresStore(self.config.postgres_dsn)
        return SQLiteStore(self.paths.database)

    def running_server(self) -> str | None:
        """The URL of the ``overt serve`` that holds this log's writer lock, if one does."""
        try:
            url = self.paths.server.read_text().strip()
        except OSError:
            return None
        if not url.startswith(("http://", "https://")) or not lock_is_held(self.paths.lock):
            return None
        return url

    def heads(self) -> list[Head]:
        """The checkpoints this log signed that live outside its database: published, and the saved head."""
        return known_heads(self.paths.public, self.paths.head, self.signer().verifier())

    def open(self, *, durable: bool = True, wait: float = 10.0, check: bool = True) -> LocalLog:
        """Open the log for appending; holds its writer lock until :meth:`LocalLog.close`.

        With ``check`` (always, except for ``overt log fsck`` and ``recover``) the database is compared with
        what the log signed and published, and refused if it is behind or forks (:mod:`overt.tlog.guard`).
        """
        lock = WriterLock(self.paths.lock, wait=wait)
        try:
            signer = self.signer()
            store = self.open_store()
            try:
                tiles = TileLog(self.paths.public, store, durable=durable, intent=self.paths.intent)
            except (StorageError, FormatError) as e:
                store.close()
                raise StorageError(
                    f"cannot open the log: {e}; run 'overt log fsck' to see what is damaged"
                ) from e
            log = LocalLog(
                tiles,
                signer,
                verifier=signer.verifier(),
                files=self.files,
                load_policy=self.policy,
                on_close=lock.release,
            )
            if check:
                try:
                    log.check()
                except BaseException:
                    log.close()
                    raise
        except BaseException:
            lock.release()
            raise
        return log

    def read(self) -> LocalLog:
        """The log opened for reading proofs, without the writer lock (a running server may hold it)."""
        signer = self.signer()
        tiles = TileLog(self.paths.public, self.open_store(), durable=False)
        return LocalLog(tiles, signer, verifier=signer.verifier(), files=self.files, load_policy=self.policy)

    def publish(self) -> PublishResult:
        """Sign the current tree and publish it if the witness quorum cosigns (``overt log publish``)."""
        log = self.open()
        try:
            return log.publish()
        finally:
            log.close()

    def append(self, entry: bytes) -> LogReceipt:
        """Append one entry durably and publish a checkpoint covering it.

        If the checkpoint cannot be published (witness quorum unmet) the entry stays appended, the receipt
        says ``published=False`` and :func:`unpublished` lists it: the command finishes what it does (so what
        it logged and what it saved agree) and the CLI exits 2.

        While ``overt serve`` holds this log, the entry goes through its ``POST /add`` instead, and the
        tlog-proof it answers is verified under this log's policy.
        """
        url = self.running_server()
        if url is not None:
            return append_through_server(url, entry, self.policy())
        log = self.open()
        try:
            (index,) = log.add([entry])
            result = log.publish()
        finally:
            log.close()
        size = result.checkpoint.checkpoint.tree_size
        if not result.published:
            failures = (
                "; ".join(f"{name}: {why}" for name, why in result.failures.items()) or "no cosignature"
            )
            reason = f"the witness quorum {log.policy.quorum!r} is not met ({failures})"
            _unpublished.append(Unpublished(index=index, reason=reason))
        return LogReceipt(index=index, tree_size=size, published=result.published)

    def fsck(self, *, full: bool = False) -> FsckReport:
        """Check every tile and bundle written since the last sound check (all of them with ``full``)."""
        heads = self.heads()
        store: SequencerStore | None = None
        problem = None
        if self.config.store == "sqlite" and not self.paths.database.exists():
            # Opening would create an empty database: report the lost one instead.
            problem = f"the log database {self.paths.database} is missing; run 'overt log recover'"
        else:
            try:
                store = self.open_store()
            except StorageError as e:
                problem = str(e)
        try:
            read = TileLog.reader_for(self.paths.public)
            return fsck(
                read,
                store,
                heads=heads,
                mark_path=self.paths.fsck_mark,
                full=full,
                store_error=problem,
                directory=self.paths.public,
                intent=self.paths.intent,
            )
        finally:
            if store is not None:
                store.close()

    def recover(self, *, force: bool = False) -> RecoverResult:
        """Rebuild the sequencing database from the published tiles, verified against the log's head."""
        lock = WriterLock(self.paths.lock, wait=0)
        try:
            heads = self.heads()
            read = TileLog.reader_for(self.paths.public)
            if not force and self._database_agrees(heads):
                raise ConfigError(
                    "the log database agrees with what this log signed and published; nothing to recover "
                    "(use --force to rebuild it from the tiles anyway)"
                )
            head = largest(heads)
            size = self._recoverable_size(head.tree_size if head is not None else 0)
            result = recover(read, self._fresh_store, head, others=heads, tree_size=size)
            write_mark(self.paths.fsck_mark, result.tree_size)
            return result
        finally:
            lock.release()

    def _recoverable_size(self, signed: int) -> int:
        """The tree the entry bundles hold from ``signed`` on, less a crashed batch's (named by its intent)."""
        stored = stored_size(self.paths.public, signed)
        try:
            crashed_from = int(self.paths.intent.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return stored
        return max(signed, min(stored, crashed_from))

    def _database_agrees(self, heads: list[Head]) -> bool:
        try:
            store = self.open_store()
        except StorageError:
            return False
        try:
            if store.integrity_problems():
                return False
            state = store.load_state() or LogState(tree_size=0, root_hash=EMPTY_ROOT, peaks=())
            check_open(state, store, heads, directory=self.paths.public, intent=self.paths.intent)
        except Error:
            return False
        finally:
            store.close()
        return True

    def _fresh_store(self) -> SequencerStore:
        """An empty store to recover into; a SQLite database is moved aside (kept for forensics), not deleted."""
        if self.config.store == "sqlite":
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            db = self.paths.database
            for suffix in ("", "-wal", "-shm"):
                old = db.with_name(db.name + suffix)
                if old.exists():
                    os.replace(old, db.with_name(f"{db.name}.lost-{stamp}{suffix}"))
        return self.open_store()
