"""Step 6 of an agent update: install what every check passed, atomically, then run the post-install hook.

* A product version goes to ``products/<product>/<channel>/<version>/<file>`` (the verified download,
  synced and renamed into place), then the ``current`` symlink is replaced by a rename, so a reader sees the
  old version or the new one, never a mix. The previous version's directory is kept (a hook may roll back to
  it); older ones go.
* Durability, in the order a crash can rely on: the download's own fsync (:func:`sync_file`, started as soon
  as it is downloaded; its result decides) and the trust record's, written to a temporary name meanwhile,
  come before any rename; then the renames (the file, ``current``, the record), then an fsync of each
  directory they changed.
* An AV database is installed as ``overt avdb install`` installs it (:func:`overt.avdb.install.write_installed`),
  so ``overt scan`` uses it; the package must be the database and version its target says.
* Then the trust record (:class:`~overt.distribute.agentdir.TrustRecord`) says why it was trusted.
* The hook, if the policy names one, runs with the installed file in ``OVERT_INSTALLED`` (and
  ``OVERT_KIND``, ``OVERT_NAME``, ``OVERT_CHANNEL``, ``OVERT_VERSION``, ``OVERT_SHA256``), no shell, with the
  policy's timeout. A hook that fails leaves the installed version installed and is reported.

Owns writing; deciding what may be written is :mod:`overt.distribute.assurance`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from overt.atomic import fsync_dirs
from overt.attest.statement import format_timestamp
from overt.avdb.install import installed_record, write_installed
from overt.avdb.package import read_database
from overt.distribute.agentdir import (
    AgentLayout,
    TrustRecord,
    file_stat,
    stage_record,
    write_record,
)
from overt.distribute.assurance import Assurance
from overt.distribute.evidence import refused
from overt.distribute.trust import DATABASE, Follow, TrustPolicy
from overt.errors import ConfigError, Error, StorageError

CURRENT = "current"


def installed_version(
    layout: AgentLayout, follow: Follow, record: TrustRecord | None
) -> tuple[str, str] | None:
    """(version, sha256) installed now and verified by this agent: for a database, what ``overt scan`` loads
    if the agent's record names those very bytes; for a product, the agent's record. A database installed by
    another tool (``overt avdb install``) is not taken as current: the next update checks the offered one
    in full under this policy, as if nothing were installed."""
    if follow.kind == DATABASE:
        db = installed_record(layout.root, follow.name)
        if db is None or record is None or record.sha256 != db.digest:
            return None
        return str(db.version), db.digest
    return None if record is None else (record.version, record.sha256)


def product_intact(record: TrustRecord) -> bool:
    """The installed product file is the one ``record`` trusted: unchanged since the install (size, mtime and
    inode), or else hashed again and found to have its sha256. A changed or missing file is not current: the
    update checks the offered version and installs it again."""
    path = Path(record.installed)
    try:
        if record.file_stat is not None and file_stat(path) == record.file_stat:
            return True
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == record.sha256


def sync_file(path: Path, started: threading.Event | None = None) -> OSError | None:
    """fsync the downloaded file at ``path`` (``started`` is set as the fsync begins, or fails to). Its
    result decides whether the file is durable: a second fsync after a failed one may succeed without the
    data being written, so the install raises this one's error rather than trying again."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return e
    finally:
        if started is not None:
            started.set()
    try:
        os.fsync(fd)
    except OSError as e:
        return e
    finally:
        os.close(fd)
    return None


def start_sync(pool: Executor, path: Path, *, wait: float = 0.05) -> Future[OSError | None]:
    """:func:`sync_file` of ``path`` on ``pool``, so that its data reaches the disk while its evidence is
    checked; returned once the fsync is under way (or after ``wait`` seconds). Waiting here matters: a
    worker woken while this thread runs Python (the checks) waits for the interpreter's lock, up to its
    switch interval, before it can start the fsync that the install will wait for."""
    started = threading.Event()
    synced = pool.submit(sync_file, path, started)
    started.wait(wait)
    return synced


def _installed_path(layout: AgentLayout, follow: Follow, file_name: str) -> Path:
    return layout.product_dir(follow) / CURRENT / file_name


def _install_product(
    layout: AgentLayout,
    record: TrustRecord,
    *,
    source: Path,
    synced: Future[OSError | None] | None,
) -> TrustRecord:
    """The verified download ``source`` moved into place under ``current``, and ``record`` (which names it
    there, with the file's stat: a rename keeps its inode and times) made what the agent trusts."""
    base = layout.product_dir(record.follow)
    target = base / record.version / Path(record.installed).name
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = stage_record(layout, record)  # while the file syncs, if it was started earlier
    try:
        failed = sync_file(source) if synced is None else synced.result()
        if failed is not None:
            raise failed
        os.replace(source, target)  # the downloads directory is in the agent directory: same filesystem
        link = base / CURRENT
        previous = os.readlink(link) if link.is_symlink() else None
        tmp = base / f".{CURRENT}.{os.getpid()}.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(record.version, tmp)
        os.replace(tmp, link)
        if file_stat(target) != record.file_stat:  # not expected of a rename; the record must say what holds
            staged.discard()
            staged = stage_record(layout, replace(record, file_stat=file_stat(target)))
        staged.commit()
    finally:
        staged.discard()  # left only if a step above failed
    fsync_dirs([target.parent, base, staged.path.parent])
    for child in base.iterdir():
        if child.is_dir() and not child.is_symlink() and child.name not in (record.version, previous):
            shutil.rmtree(child, ignore_errors=True)
    return staged.record


def _install_database(layout: AgentLayout, follow: Follow, assurance: Assurance, data: bytes) -> Path:
    db = read_database(data)
    candidate = assurance.candidate
    if db.name != follow.name or str(db.version) != candidate.version:
        raise refused(
            "install",
            f"{candidate.path} is database {db.name} version {db.version}, not {follow.name} version "
            f"{candidate.version} as its target says",
        )
    write_installed(layout.root, db, data, assurance.provenance, assurance.provenance_index)
    return layout.root / "avdb" / f"{db.name}.avdb"


def _record(
    trust: TrustPolicy, assurance: Assurance, path: Path, *, via_delta: bool, now: datetime
) -> TrustRecord:
    """Why the agent trusts ``assurance``'s target, installed at ``path`` (whose stat it records)."""
    candidate = assurance.candidate
    cp = assurance.checkpoint.checkpoint
    return TrustRecord(
        follow=Follow(kind=candidate.kind, name=candidate.name, channel=candidate.channel),
        version=candidate.version,
        target=candidate.path,
        sha256=candidate.sha256,
        length=candidate.length,
        installed=str(path),
        provenance_index=assurance.provenance_index,
        metadata=assurance.metadata,
        auditors=assurance.auditors,
        checkpoint={"origin": cp.origin, "tree_size": cp.tree_size, "root_hash": cp.root_hash.hex()},
        cosigners=assurance.cosigners,
        cosigned_at=format_timestamp(assurance.cosigned_at),
        installed_at=format_timestamp(now),
        policy_sha256=trust.sha256,
        via_delta=via_delta,
        file_stat=file_stat(path),
    )


def install_target(
    layout: AgentLayout,
    trust: TrustPolicy,
    assurance: Assurance,
    *,
    source: Path,
    via_delta: bool,
    now: datetime,
    synced: Future[OSError | None] | None = None,
) -> TrustRecord:
    """Install the file ``source`` (the verified target of ``assurance``, moved into place) and record why it
    was trusted. ``synced`` is :func:`sync_file` of ``source`` started earlier (:func:`start_sync`), whose
    result the install waits for; without it, the install syncs the file itself."""
    candidate = assurance.candidate
    follow = Follow(kind=candidate.kind, name=candidate.name, channel=candidate.channel)
    try:
        if follow.kind == DATABASE:
            path = _install_database(layout, follow, assurance, source.read_bytes())
            record = _record(trust, assurance, path, via_delta=via_delta, now=now)
            write_record(layout, record)
            return record
        name = candidate.path.rpartition("/")[2]
        installed = _installed_path(layout, follow, name)
        record = replace(
            _record(trust, assurance, source, via_delta=via_delta, now=now), installed=str(installed)
        )
        return _install_product(layout, record, source=source, synced=synced)
    except OSError as e:
        raise StorageError(f"cannot install {candidate.path} in {layout.root}: {e.strerror or e}") from e


@dataclass(frozen=True, slots=True, kw_only=True)
class HookResult:
    """How the post-install hook ended: its exit status (None: it could not run or timed out) and why."""

    argv: tuple[str, ...]
    returncode: int | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def to_dict(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "returncode": self.returncode, "ok": self.ok, "detail": self.detail}


def run_hook(trust: TrustPolicy, record: TrustRecord) -> HookResult | None:
    """Run the policy's post-install hook for ``record`` (None without a hook)."""
    if not trust.hook:
        return None
    env = {
        **os.environ,
        "OVERT_INSTALLED": record.installed,
        "OVERT_KIND": record.follow.kind,
        "OVERT_NAME": record.follow.name,
        "OVERT_CHANNEL": record.follow.channel,
        "OVERT_VERSION": record.version,
        "OVERT_SHA256": record.sha256,
    }
    try:
        done = subprocess.run(
            list(trust.hook), env=env, capture_output=True, timeout=trust.hook_timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return HookResult(argv=trust.hook, returncode=None, detail=f"timed out after {trust.hook_timeout} s")
    except OSError as e:
        return HookResult(argv=trust.hook, returncode=None, detail=f"could not run: {e.strerror or e}")
    tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
    return HookResult(argv=trust.hook, returncode=done.returncode, detail=" / ".join(tail))


def hook_error(result: HookResult) -> Error:
    """The operational error a failed hook is reported as (exit 2: the update itself is installed)."""
    how = f"exited {result.returncode}" if result.returncode is not None else result.detail
    extra = f": {result.detail}" if result.detail and result.returncode is not None else ""
    return ConfigError(f"installed, but the post-install hook {result.argv[0]} {how}{extra}", check="hook")
