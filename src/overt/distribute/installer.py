"""Step 6 of an agent update: install what every check passed, atomically, then run the post-install hook.

* A product version goes to ``products/<product>/<channel>/<version>/<file>`` (the verified download,
  synced and renamed into place), then the ``current`` symlink is replaced by a rename, so a reader sees the old version or the
  new one, never a mix. The previous version's directory is kept (a hook may roll back to it); older ones go.
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from overt.atomic import fsync_dirs
from overt.attest.statement import format_timestamp
from overt.avdb.install import installed_record, write_installed
from overt.avdb.package import read_database
from overt.distribute.agentdir import AgentLayout, TrustRecord, file_stat, write_record
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


def _install_product(layout: AgentLayout, follow: Follow, version: str, file_name: str, source: Path) -> Path:
    base = layout.product_dir(follow)
    target = base / version / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(source, target)  # the downloads directory is in the agent directory: same filesystem
    link = base / CURRENT
    previous = os.readlink(link) if link.is_symlink() else None
    tmp = base / f".{CURRENT}.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(version, tmp)
    os.replace(tmp, link)
    fsync_dirs([target.parent, base])
    for child in base.iterdir():
        if child.is_dir() and not child.is_symlink() and child.name not in (version, previous):
            shutil.rmtree(child, ignore_errors=True)
    return link / file_name


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


def install_target(
    layout: AgentLayout,
    trust: TrustPolicy,
    assurance: Assurance,
    *,
    source: Path,
    via_delta: bool,
    now: datetime,
) -> TrustRecord:
    """Install the file ``source`` (the verified target of ``assurance``, moved into place) and record why it
    was trusted."""
    candidate = assurance.candidate
    follow = Follow(kind=candidate.kind, name=candidate.name, channel=candidate.channel)
    try:
        if follow.kind == DATABASE:
            path = _install_database(layout, follow, assurance, source.read_bytes())
        else:
            name = candidate.path.rpartition("/")[2]
            path = _install_product(layout, follow, candidate.version, name, source)
        cp = assurance.checkpoint.checkpoint
        record = TrustRecord(
            follow=follow,
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
        write_record(layout, record)
    except OSError as e:
        raise StorageError(f"cannot install {candidate.path} in {layout.root}: {e.strerror or e}") from e
    return record


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
