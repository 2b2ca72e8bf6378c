"""Migrations: moving a tenant's data to the jurisdiction a newer registry version gives its country.

When the trusted registry's newest version (:meth:`overt.residency.registry_store.RegistryStore.current`)
places a tenant's country elsewhere than the tenant's home, :func:`migrate` moves it, one job per tenant. A
job and its current step live in ``<home>/residency/migrations.db`` (SQLite, WAL, synchronous=FULL), next to
the tenant directory. The steps, each redone in full when a run stops inside it:

1. ``freeze``: both stores must open; then the tenant's status becomes ``migrating`` (ingestion answers 503,
   staff access is refused), under the tenant's freeze guard, so an access in flight finishes first.
2. ``copy``: every batch of the source store is exported (hash-checked) and imported into the destination,
   which derives its rows again from the bytes. A batch already there with the same sha256 is skipped; one
   there with other bytes stops the job (:class:`MigrationMismatch`).
3. ``verify``: every batch is read back on both sides and hashed here; the sets of batch ids, each sha256 and
   the event counts must be equal. A mismatch stops the job with the evidence; nothing is purged.
4. ``switch``: :meth:`overt.residency.tenants.Directory.move_home` under the job's registry version (a
   statement in the main log, then the directory commit). Only after ``verify`` passed in this job.
5. ``purge``: only once the directory homes the tenant in the destination. Batches that reached the source
   after all (a write that raced the freeze) are first copied, then every row and blob of the tenant leaves
   the source.
6. ``unfreeze``: the status is ``active`` again; the job is ``done``.

Every step, once done, is an entry of kind ``migration-step`` in the access logs of both jurisdictions (the
switch is in the main log too); a failed step is logged there as ``refused``, with the reason. A run killed at
any point is resumed by the next :func:`migrate` at the step it was in (the tenant stayed frozen meanwhile).
A job that *failed* (an error or a mismatch, which the run saw) unfreezes its tenant at once, so nothing
stays frozen behind an error; the next run starts it again from ``freeze`` if the switch had not happened,
or resumes it at ``purge`` if it had.

One :func:`migrate` runs at a time per home (``<home>/residency/migration/migrate.lock``); a second one is
refused with :class:`MigrationBusy` (or waits ``wait`` seconds). The stores are opened with
:func:`overt.residency.stores.open_store`, by jurisdiction: a migration is the one reader and writer that
legitimately touches two jurisdictions' stores for one tenant. Owns the jobs, their steps and the guard;
does not decide where a country belongs (the registry) nor how a store keeps its rows.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overt.attest.statement import format_timestamp
from overt.errors import ConfigError, Error, PolicyError, StorageError, VerificationError
from overt.home import Home
from overt.residency.accesslog import DONE, MIGRATION_STEP, REFUSED, AccessEntry, record
from overt.residency.registry_store import registry_store
from overt.residency.stores import BatchConflict, JurisdictionStore, open_store, sha256_hex
from overt.residency.tenants import ACTIVE, MIGRATING, Directory, check_tenant_id, open_directory

STEPS = ("freeze", "copy", "verify", "switch", "purge", "unfreeze")
RUNNING, FAILED, FINISHED = "running", "failed", "done"
MISMATCH = "mismatch"
ACTOR = "overt-migration"
MAX_DETAIL = 1000
OnStep = Callable[["Job", str, str], None]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, from_jurisdiction TEXT NOT NULL, to_jurisdiction TEXT NOT NULL,
    registry_version INTEGER NOT NULL, step TEXT NOT NULL, state TEXT NOT NULL, created TEXT NOT NULL,
    updated TEXT NOT NULL, error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_job ON jobs (tenant) WHERE state != 'done';
"""
_COLUMNS = (
    "id, tenant, from_jurisdiction, to_jurisdiction, registry_version, step, state, created, updated, error"
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- errors -------------------------------------------------------------------------------------------------


class MigrationMismatch(VerificationError):
    """The destination does not hold what the source holds: ``batch_id`` (or the event counts) differ.
    ``source`` and ``destination`` carry the two sides' values."""

    def __init__(
        self, message: str, *, job_id: str, tenant_id: str, batch_id: str, source: str, destination: str
    ) -> None:
        super().__init__(
            message,
            job=job_id,
            tenant=tenant_id,
            batch_id=batch_id,
            source=source,
            destination=destination,
        )
        self.job_id = job_id
        self.tenant_id = tenant_id
        self.batch_id = batch_id
        self.source = source
        self.destination = destination


class MigrationBusy(ConfigError):
    """Another ``overt residency migrate`` holds this home's migration lock."""


# --- the jobs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One tenant's move: from where to where, under which registry version, and the step it is at."""

    id: str
    tenant_id: str
    from_jurisdiction: str
    to_jurisdiction: str
    registry_version: int
    step: str
    state: str
    created: str
    updated: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant_id,
            "from": self.from_jurisdiction,
            "to": self.to_jurisdiction,
            "registry_version": self.registry_version,
            "step": self.step,
            "state": self.state,
            "created": self.created,
            "updated": self.updated,
            "error": self.error,
        }


class JobTable:
    """The jobs of ``<home>/residency/migrations.db``. Every change is one committed transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, isolation_level=None, timeout=30)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    db.rollback()
                    raise
        except sqlite3.Error as e:
            raise StorageError(f"the migration jobs {self.path} failed: {e}") from e

    def _select(self, where: str, args: tuple[Any, ...] = ()) -> list[Job]:
        with self._write() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM jobs {where}", args).fetchall()
        names = (
            "id",
            "tenant_id",
            "from_jurisdiction",
            "to_jurisdiction",
            "registry_version",
            "step",
            "state",
        )
        return [Job(**dict(zip((*names, "created", "updated", "error"), r, strict=True))) for r in rows]

    def create(
        self, *, tenant_id: str, source: str, destination: str, registry_version: int, now: datetime
    ) -> Job:
        at = format_timestamp(now)
        job = Job(
            id=f"m-{secrets.token_hex(8)}",
            tenant_id=check_tenant_id(tenant_id),
            from_jurisdiction=source,
            to_jurisdiction=destination,
            registry_version=registry_version,
            step=STEPS[0],
            state=RUNNING,
            created=at,
            updated=at,
        )
        with self._write() as db:
            db.execute(f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _row(job))
        return job

    def save(self, job: Job) -> Job:
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET step = ?, state = ?, updated = ?, error = ? WHERE id = ?",
                (job.step, job.state, job.updated, job.error, job.id),
            )
        return job

    def open_jobs(self) -> list[Job]:
        """Every job not done, oldest first."""
        return self._select("WHERE state != 'done' ORDER BY created, id")

    def jobs(self) -> list[Job]:
        return self._select("ORDER BY created, rowid")  # rowid: insertion order breaks ties within a second


def _row(job: Job) -> tuple[Any, ...]:
    return (
        job.id, job.tenant_id, job.from_jurisdiction, job.to_jurisdiction, job.registry_version, job.step,
        job.state, job.created, job.updated, job.error,
    )  # fmt: skip


def job_table(home: Home) -> JobTable:
    return JobTable(home.paths.residency / "migrations.db")


# --- guards -------------------------------------------------------------------------------------------------


def _lock_folder(home: Home) -> Path:
    folder = home.paths.residency / "migration"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def _flock(path: Path, *, exclusive: bool, wait: float | None) -> Iterator[int | None]:
    """``flock`` on ``path`` for the block; yields the descriptor, or None if ``wait`` ran out."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    yield None
                    return
                time.sleep(0.05)
        yield fd
    finally:
        os.close(fd)


@contextmanager
def tenant_guard(home: Home, tenant_id: str, *, exclusive: bool) -> Iterator[None]:
    """The tenant's freeze guard: held shared by a staff access for its whole length, and exclusive by a
    migration while it freezes the tenant, so that no access that saw ``active`` is still reading after."""
    path = _lock_folder(home) / f"tenant-{check_tenant_id(tenant_id)}.lock"
    with _flock(path, exclusive=exclusive, wait=None):
        yield


@contextmanager
def migrate_lock(home: Home, *, wait: float = 0.0) -> Iterator[None]:
    """One migration at a time in ``home``; :class:`MigrationBusy` if another holds it after ``wait`` s."""
    path = _lock_folder(home) / "migrate.lock"
    with _flock(path, exclusive=True, wait=wait) as fd:
        if fd is None:
            holder = path.read_text(errors="replace").strip() or "?"
            raise MigrationBusy(
                f"another 'overt residency migrate' is running in this home (pid {holder}): one migration "
                "runs at a time; wait for it, it resumes every unfinished job",
                lock=str(path),
                pid=holder,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield


def migration_running(home: Home) -> bool:
    """Whether an ``overt residency migrate`` holds the home's migration lock now."""
    with _flock(_lock_folder(home) / "migrate.lock", exclusive=True, wait=0.0) as fd:
        return fd is None


# --- the plan -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedMove:
    """A tenant the newest registry version homes elsewhere, and (dry run) what stands in the way."""

    tenant_id: str
    country: str
    from_jurisdiction: str
    to_jurisdiction: str
    registry_version: int
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "country": self.country,
            "from": self.from_jurisdiction,
            "to": self.to_jurisdiction,
            "registry_version": self.registry_version,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationPlan:
    """What :func:`migrate` would do now: new moves under ``registry_version``, and unfinished jobs."""

    registry_version: int
    moves: tuple[PlannedMove, ...]
    unfinished: tuple[Job, ...]
    running: bool = False  # another 'overt residency migrate' holds the home's migration lock now

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry_version": self.registry_version,
            "moves": [m.to_dict() for m in self.moves],
            "unfinished": [j.to_dict() for j in self.unfinished],
            "migration_running": self.running,
        }


def store_problem(home: Home, jurisdiction: str) -> str | None:
    """Why the store of ``jurisdiction`` cannot be opened, or None if it opens."""
    try:
        with open_store(home, jurisdiction):
            return None
    except Error as e:
        return str(e)


def plan_migrations(home: Home, *, check_stores: bool = False) -> MigrationPlan:
    """The tenants to move under the trusted registry's newest version (not those with an unfinished job).
    With ``check_stores``, each move says whether both stores open."""
    registry = registry_store(home).current()
    unfinished = tuple(job_table(home).open_jobs())
    busy = {j.tenant_id for j in unfinished}
    directory = open_directory(home)
    try:
        tenants = directory.tenants()
    finally:
        directory.close()
    moves = []
    for tenant in tenants:
        target = registry.jurisdiction_of(tenant.country)
        if target == tenant.jurisdiction or tenant.id in busy:
            continue
        problem = None
        if check_stores:
            problem = store_problem(home, tenant.jurisdiction) or store_problem(home, target)
        moves.append(
            PlannedMove(
                tenant_id=tenant.id,
                country=tenant.country,
                from_jurisdiction=tenant.jurisdiction,
                to_jurisdiction=target,
                registry_version=registry.version,
                problem=problem,
            )
        )
    return MigrationPlan(
        registry_version=registry.version,
        moves=tuple(moves),
        unfinished=unfinished,
        running=migration_running(home),
    )


# --- the run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOutcome:
    """How one tenant's job ended in this run: ``done``, ``mismatch`` or ``failed`` (``error`` says why;
    ``job_id`` is None when no job was made)."""

    tenant_id: str
    from_jurisdiction: str
    to_jurisdiction: str
    registry_version: int
    job_id: str | None
    outcome: str
    step: str
    error: str | None = None
    evidence: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "from": self.from_jurisdiction,
            "to": self.to_jurisdiction,
            "registry_version": self.registry_version,
            "job": self.job_id,
            "outcome": self.outcome,
            "step": self.step,
            "error": self.error,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationReport:
    """Every job this run touched. ``exit_code``: 1 if one stopped on a mismatch, else 2 if one failed."""

    registry_version: int
    results: tuple[JobOutcome, ...]

    @property
    def exit_code(self) -> int:
        outcomes = {r.outcome for r in self.results}
        return 1 if MISMATCH in outcomes else 2 if FAILED in outcomes else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry_version": self.registry_version,
            "results": [r.to_dict() for r in self.results],
            "ok": self.exit_code == 0,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class _Run:
    home: Home
    directory: Directory
    table: JobTable
    on_step: OnStep
    now: Callable[[], datetime]

    def at(self) -> datetime:
        return self.now().astimezone(UTC).replace(microsecond=0)


def migrate(
    home: Home,
    *,
    on_step: OnStep | None = None,
    now: Callable[[], datetime] | None = None,
    wait: float = 0.0,
) -> MigrationReport:
    """Move every tenant the newest registry version homes elsewhere, and finish every unfinished job.

    ``on_step(job, step, detail)`` hears ``start`` before each step, one ``batch <id> ...`` per batch copied
    or verified, and ``done: ...`` once the step is done and logged (before the job records it).

    Raises:
        MigrationBusy: another migration runs in this home.
        ConfigError, VerificationError: no trusted registry.
    """
    clock = now or _utcnow
    with migrate_lock(home, wait=wait):
        plan = plan_migrations(home)
        table = job_table(home)
        results: list[JobOutcome] = []
        made: set[str] = set()
        for move in plan.moves:
            problem = store_problem(home, move.from_jurisdiction) or store_problem(home, move.to_jurisdiction)
            if problem is not None:  # refused before anything is frozen; no job is left behind
                results.append(_unstarted(move, problem))
                continue
            job = table.create(
                tenant_id=move.tenant_id,
                source=move.from_jurisdiction,
                destination=move.to_jurisdiction,
                registry_version=move.registry_version,
                now=clock(),
            )
            made.add(job.id)
        directory = open_directory(home)
        try:
            run = _Run(home=home, directory=directory, table=table, on_step=on_step or _quiet, now=clock)
            results.extend(_run_job(run, job, resumed=job.id not in made) for job in table.open_jobs())
        finally:
            directory.close()
    return MigrationReport(registry_version=plan.registry_version, results=tuple(results))


def _quiet(job: Job, step: str, detail: str) -> None:
    pass


def _unstarted(move: PlannedMove, problem: str) -> JobOutcome:
    return JobOutcome(
        tenant_id=move.tenant_id,
        from_jurisdiction=move.from_jurisdiction,
        to_jurisdiction=move.to_jurisdiction,
        registry_version=move.registry_version,
        job_id=None,
        outcome=FAILED,
        step="plan",
        error=f"not started, nothing frozen: {problem}",
    )


def _result(job: Job, outcome: str, error: Error | None = None) -> JobOutcome:
    return JobOutcome(
        tenant_id=job.tenant_id,
        from_jurisdiction=job.from_jurisdiction,
        to_jurisdiction=job.to_jurisdiction,
        registry_version=job.registry_version,
        job_id=job.id,
        outcome=outcome,
        step=job.step,
        error=job.error,
        evidence=None if error is None else dict(error.evidence),
    )


def _resume_at(run: _Run, job: Job) -> Job:
    """Where a job goes on. A running job (the last run was killed) stays at its step: its tenant stayed
    frozen. A failed one unfroze its tenant: from ``freeze`` again unless the switch is durable."""
    if job.state != FAILED:
        return job
    if run.directory.tenant(job.tenant_id).jurisdiction == job.to_jurisdiction:
        step = job.step if job.step in ("purge", "unfreeze") else "purge"
    else:
        step = STEPS[0]
    return run.table.save(
        replace(job, step=step, state=RUNNING, error=None, updated=format_timestamp(run.at()))
    )


def _run_job(run: _Run, job: Job, *, resumed: bool = False) -> JobOutcome:
    """Run ``job`` from its step. For a job an earlier run left (``resumed``), the first step it runs is
    redone, and its entries say so: that run may have logged it (in one log or both) before it stopped."""
    interrupted = resumed and job.state == RUNNING
    job = _resume_at(run, job)
    try:
        for step in STEPS[STEPS.index(job.step) :]:
            run.on_step(job, step, "start")
            detail = _STEP[step](run, job)
            if interrupted:
                detail += "; redone: the run before stopped during this step and may have logged it already"
                interrupted = False
            _log_step(run, job, step, detail)
            run.on_step(job, step, f"done: {detail}")
            following = STEPS.index(step) + 1
            finished = following == len(STEPS)
            job = run.table.save(
                replace(
                    job,
                    step=step if finished else STEPS[following],
                    state=FINISHED if finished else RUNNING,
                    updated=format_timestamp(run.at()),
                )
            )
    except MigrationMismatch as e:
        return _result(_fail(run, job, e), MISMATCH, e)
    except Error as e:
        return _result(_fail(run, job, e), FAILED, e)
    return _result(job, FINISHED)


def _fail(run: _Run, job: Job, error: Error) -> Job:
    """Record the failure in both logs (best effort) and in the job, and unfreeze the tenant: its home still
    holds all its data (before the switch, the source; after it, the destination)."""
    with suppress(Error):  # the log may be what failed; the job keeps the reason
        _log_step(run, job, job.step, "", refusal=_short(str(error)))
    note = ""
    try:
        if run.directory.tenant(job.tenant_id).status == MIGRATING:
            run.directory.set_status(job.tenant_id, ACTIVE)
            note = "; the tenant is unfrozen"
            with suppress(Error):
                _log_step(run, job, "unfreeze", f"after step {job.step} failed")
    except Error as e:
        note = f"; the tenant stays frozen (migrating): {e}"
    return run.table.save(
        replace(job, state=FAILED, error=_short(str(error) + note), updated=format_timestamp(run.at()))
    )


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


def _log_step(run: _Run, job: Job, step: str, detail: str, *, refusal: str | None = None) -> None:
    """The step as an access-log entry in the source's and the destination's logs."""
    what = f"{job.from_jurisdiction} -> {job.to_jurisdiction} under registry v{job.registry_version}"
    at = run.at()
    for j in (job.from_jurisdiction, job.to_jurisdiction):
        entry = AccessEntry(
            kind=MIGRATION_STEP,
            time=at,
            jurisdiction=j,
            tenant=job.tenant_id,
            actor=ACTOR,
            actor_country="",
            reason=step,
            resource=f"migration/{job.id}",
            outcome=REFUSED if refusal else DONE,
            refusal=refusal,
            detail=_short(f"{what}: {detail}" if detail else what),
        )
        record(run.home, j, entry)


# --- the steps ----------------------------------------------------------------------------------------------


@contextmanager
def _stores(run: _Run, job: Job) -> Iterator[tuple[JurisdictionStore, JurisdictionStore]]:
    with (
        open_store(run.home, job.from_jurisdiction) as source,
        open_store(run.home, job.to_jurisdiction) as dest,
    ):
        yield source, dest


def _freeze(run: _Run, job: Job) -> str:
    with _stores(run, job):
        pass  # both stores open, or nothing is frozen
    with tenant_guard(run.home, job.tenant_id, exclusive=True):
        run.directory.set_status(job.tenant_id, MIGRATING)
    return "tenant status migrating: ingestion answers 503 and staff access is refused until the end"


def _copy(run: _Run, job: Job) -> str:
    copied = skipped = 0
    with _stores(run, job) as (source, dest):
        present = dest.batch_digests(job.tenant_id)
        for exported in source.export_batches(job.tenant_id):
            there = present.get(exported.batch_id)
            if there == exported.sha256:
                skipped += 1
                run.on_step(job, "copy", f"batch {exported.batch_id} already there")
                continue
            if there is not None:
                raise _conflict(job, exported.batch_id, exported.sha256, there)
            try:
                dest.import_batch(job.tenant_id, exported.batch_id, exported.raw, exported.sha256)
            except BatchConflict as e:
                raise _conflict(job, exported.batch_id, exported.sha256, e.stored_sha256) from e
            copied += 1
            run.on_step(job, "copy", f"batch {exported.batch_id} copied")
    return f"{copied} batches copied, {skipped} already there"


def _conflict(job: Job, batch_id: str, source: str, dest: str) -> MigrationMismatch:
    return MigrationMismatch(
        f"the destination {job.to_jurisdiction} already holds other bytes as batch {batch_id} of tenant "
        f"{job.tenant_id} (sha256 {dest}, the source's {source}); nothing was overwritten or purged",
        job_id=job.id,
        tenant_id=job.tenant_id,
        batch_id=batch_id,
        source=source,
        destination=dest,
    )


def _hashes(store: JurisdictionStore, job: Job, run: _Run, *, side: str) -> dict[str, str]:
    """batch_id -> sha256 of the bytes read back from ``store`` (hashed here). A batch that cannot be read
    back intact while the store answers is a mismatch on the destination."""
    ids = sorted(store.batch_digests(job.tenant_id))
    found: dict[str, str] = {}
    try:
        for exported in store.export_batches(job.tenant_id):
            found[exported.batch_id] = sha256_hex(exported.raw)
            run.on_step(job, "verify", f"batch {exported.batch_id} read on the {side}")
    except StorageError as e:
        if side != "destination" or len(found) >= len(ids):
            raise
        store.batch_digests(job.tenant_id)  # the store answers: the batch itself is damaged
        batch_id = ids[len(found)]
        raise MigrationMismatch(
            f"batch {batch_id} of tenant {job.tenant_id} cannot be read back intact from the destination "
            f"{job.to_jurisdiction} ({e}); nothing was purged",
            job_id=job.id,
            tenant_id=job.tenant_id,
            batch_id=batch_id,
            source="readable",
            destination=str(e),
        ) from e
    return found


def _verify(run: _Run, job: Job) -> str:
    with _stores(run, job) as (source, dest):
        ours = _hashes(source, job, run, side="source")
        theirs = _hashes(dest, job, run, side="destination")
        for batch_id in sorted(ours.keys() | theirs.keys()):
            a, b = ours.get(batch_id, "missing"), theirs.get(batch_id, "missing")
            if a != b:
                raise MigrationMismatch(
                    f"batch {batch_id} of tenant {job.tenant_id} differs: sha256 {a} in the source "
                    f"{job.from_jurisdiction}, {b} in the destination {job.to_jurisdiction}; nothing was purged",
                    job_id=job.id,
                    tenant_id=job.tenant_id,
                    batch_id=batch_id,
                    source=a,
                    destination=b,
                )
        events = source.count_events(job.tenant_id), dest.count_events(job.tenant_id)
    if events[0] != events[1]:
        raise MigrationMismatch(
            f"tenant {job.tenant_id} has {events[0]} events in the source and {events[1]} in the destination; "
            "nothing was purged",
            job_id=job.id,
            tenant_id=job.tenant_id,
            batch_id="",
            source=str(events[0]),
            destination=str(events[1]),
        )
    return f"{len(ours)} batches and {events[0]} events verified by sha256 on both sides"


def _switch(run: _Run, job: Job) -> str:
    tenant = run.directory.tenant(job.tenant_id)
    if tenant.jurisdiction == job.to_jurisdiction and tenant.registry_version == job.registry_version:
        return f"the directory homes the tenant in {job.to_jurisdiction} already"
    if tenant.jurisdiction != job.from_jurisdiction:
        raise PolicyError(
            f"tenant {job.tenant_id} is homed in {tenant.jurisdiction}, neither the source nor the destination "
            f"of migration {job.id}",
            job=job.id,
            tenant=job.tenant_id,
        )
    moved = run.directory.move_home(job.tenant_id, job.to_jurisdiction, registry_version=job.registry_version)
    published = "" if moved.published else " (no published checkpoint covers it yet)"
    return f"home switched to {job.to_jurisdiction}, main log index {moved.log_index}{published}"


def _purge(run: _Run, job: Job) -> str:
    tenant = run.directory.tenant(job.tenant_id)
    if tenant.jurisdiction != job.to_jurisdiction:  # never purge before the switch is durable
        raise PolicyError(
            f"tenant {job.tenant_id} is still homed in {tenant.jurisdiction}: its source data is not purged",
            job=job.id,
            tenant=job.tenant_id,
        )
    with _stores(run, job) as (source, dest):
        present = dest.batch_digests(job.tenant_id)
        late = 0
        for exported in source.export_batches(job.tenant_id):
            there = present.get(exported.batch_id)
            if there is None:
                dest.import_batch(job.tenant_id, exported.batch_id, exported.raw, exported.sha256)
                late += 1
            elif there != exported.sha256:
                raise _conflict(job, exported.batch_id, exported.sha256, there)
        removed = source.purge_tenant(job.tenant_id)
        left = source.count_events(job.tenant_id)
    if left:
        raise StorageError(
            f"{left} events of tenant {job.tenant_id} are still in {job.from_jurisdiction} after the purge"
        )
    extra = f", {late} late batches copied first" if late else ""
    return f"{removed} batches purged from {job.from_jurisdiction}{extra}"


def _unfreeze(run: _Run, job: Job) -> str:
    run.directory.set_status(job.tenant_id, ACTIVE)
    return f"tenant status active, homed in {job.to_jurisdiction}"


_STEP: dict[str, Callable[[_Run, Job], str]] = {
    "freeze": _freeze,
    "copy": _copy,
    "verify": _verify,
    "switch": _switch,
    "purge": _purge,
    "unfreeze": _unfreeze,
}
