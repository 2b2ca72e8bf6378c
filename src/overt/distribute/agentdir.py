"""The endpoint agent's directory: its pinned trust policy, its lock, and what it trusted and why.

Default ``$OVERT_AGENT_DIR``, else ``$XDG_DATA_HOME/overt/agent`` (:func:`overt.avdb.install.default_agent_dir`,
the directory ``overt scan`` reads its databases from)::

    policy.toml                       the customer's trust policy, pinned self-contained ('overt agent init')
    agent.lock                        one agent at a time (an exclusive flock on the directory)
    tuf/metadata/                     the stock ngclient's trusted metadata (root_history/, timestamp.json, ...)
                                      as of the last update whose metadata was proved logged
    tuf/metadata.next/                the client's metadata during an update; it replaces tuf/metadata only
                                      once every followed item's metadata is proved logged
    tuf/downloads/                    targets being downloaded (removed once installed or refused)
    log/                              the last log checkpoint the agent verified (tlog.client.LogClient state)
    trusted/<follow>.json             per product channel or database: what is installed and why it was trusted
    products/<product>/<channel>/     <version>/<file> for the installed version (and the one before), and
                                      ``current``, a symlink to the installed version's directory
    avdb/<name>.avdb, ...             installed AV databases, as overt.avdb.install writes them

Owns the paths, pinning, the lock and the trust records; installing is :mod:`overt.distribute.installer`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt import jsonio
from overt.atomic import atomic_write
from overt.avdb.install import default_agent_dir
from overt.distribute.trust import PRODUCT, Follow, TrustPolicy
from overt.errors import ConfigError, Error, FormatError, StorageError
from overt.writerlock import lock_directory

MAX_RECORD_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class AgentLayout:
    """The agent directory at ``root``."""

    root: Path

    @property
    def policy(self) -> Path:
        return self.root / "policy.toml"

    @property
    def lock(self) -> Path:
        return self.root / "agent.lock"

    @property
    def tuf_metadata(self) -> Path:
        return self.root / "tuf" / "metadata"

    @property
    def tuf_next(self) -> Path:
        return self.root / "tuf" / "metadata.next"

    @property
    def tuf_previous(self) -> Path:
        return self.root / "tuf" / "metadata.prev"

    @property
    def downloads(self) -> Path:
        return self.root / "tuf" / "downloads"

    @property
    def log_state(self) -> Path:
        return self.root / "log"

    @property
    def records(self) -> Path:
        return self.root / "trusted"

    def record(self, follow: Follow) -> Path:
        return self.records / f"{follow.key}.json"

    def product_dir(self, follow: Follow) -> Path:
        return self.root / "products" / follow.name / follow.channel


@dataclass(frozen=True, slots=True, kw_only=True)
class PinnedTrust:
    """A policy pinned into an agent directory: its file there, and the digest of any policy it replaced."""

    policy: TrustPolicy
    path: Path
    replaced: str | None  # the sha256 of the customer's file pinned before, if it was another one

    def to_dict(self) -> dict[str, Any]:
        return {"pinned": str(self.path), "replaced_sha256": self.replaced, **self.policy.to_dict()}


def load_pinned(layout: AgentLayout) -> TrustPolicy:
    """The policy pinned in the agent directory; a ConfigError naming 'overt agent init' if there is none."""
    try:
        data = layout.policy.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(
            f"no trust policy is pinned in {layout.root}; pin yours with 'overt agent init --policy FILE'"
        ) from e
    except OSError as e:
        raise StorageError(f"cannot read the pinned policy {layout.policy}: {e.strerror}") from e
    return TrustPolicy.from_toml(data, source=str(layout.policy), base=None)


def pin_policy(layout: AgentLayout, source: Path) -> PinnedTrust:
    """``overt agent init``: check the customer's policy file and every file it names, then pin it."""
    policy = TrustPolicy.from_file(source)
    with agent_lock(layout):
        replaced = None
        if layout.policy.exists():
            try:
                before = load_pinned(layout).sha256
            except Error:
                before = "unreadable"
            replaced = before if before != policy.sha256 else None
        atomic_write(layout.policy, policy.to_pinned_bytes())
        make_directories(layout, policy)
    return PinnedTrust(policy=policy, path=layout.policy, replaced=replaced)


def make_directories(layout: AgentLayout, policy: TrustPolicy) -> None:
    """The directories an update writes in, made when the policy is pinned rather than during the first
    update (an update still makes any that are missing)."""
    try:
        for directory in (layout.downloads, layout.log_state, layout.records):
            directory.mkdir(parents=True, exist_ok=True)
        for follow in policy.follows:
            if follow.kind == PRODUCT:
                layout.product_dir(follow).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot make the agent's directories in {layout.root}: {e.strerror or e}") from e


# The holder's pid is written over the same bytes every time, never after truncating the file: on ext4,
# truncating a file written a moment ago (by 'overt agent init', or by the last run) waits on its delayed
# allocation and the journal, milliseconds at the start of every update. Linux pids have at most 7 digits.
_PID_WIDTH = 16


@contextmanager
def agent_lock(layout: AgentLayout) -> Iterator[None]:
    """One agent at a time in one directory: a second is refused at once, naming the first. The lock is an
    exclusive flock on ``agent.lock`` and on the directory itself (:func:`overt.writerlock.lock_directory`:
    a lock file deleted under a running agent does not let a second one in); the kernel drops both when
    the holder exits, however it exits."""
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
    dir_fd: int | None = None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            dir_fd = lock_directory(layout.root)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            raise ConfigError(
                f"another overt agent is working in {layout.root} (pid {holder or 'unknown'}); "
                "one agent at a time: try again when it is done",
                lock=str(layout.lock),
            ) from None
        if os.fstat(fd).st_size > _PID_WIDTH:  # not written by this code: shorten it once
            os.ftruncate(fd, _PID_WIDTH)
        os.pwrite(fd, str(os.getpid()).ljust(_PID_WIDTH - 1).encode() + b"\n", 0)
        yield
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
        os.close(fd)  # closing the descriptors releases the flocks


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustRecord:
    """What the agent installed for one followed product channel or database, and why it trusted it."""

    follow: Follow
    version: str
    target: str
    sha256: str
    length: int
    installed: str  # the installed file
    provenance_index: int
    metadata: tuple[tuple[str, int], ...]  # each metadata file the update used, and its log index
    auditors: tuple[str, ...]  # keyids of the trusted auditors whose logged PASSED verdicts counted
    checkpoint: dict[str, Any]  # origin, tree_size, root_hash (hex) of the head the checks rested on
    cosigners: tuple[str, ...]
    cosigned_at: str
    installed_at: str
    policy_sha256: str
    via_delta: bool = False
    # (size, mtime_ns, inode) of the installed file when it was installed: while they hold, the file is taken
    # to be the one installed; when they change, it is hashed again. None in records written before them.
    file_stat: tuple[int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "follow": self.follow.to_dict(),
            "version": self.version,
            "target": self.target,
            "sha256": self.sha256,
            "length": self.length,
            "installed": self.installed,
            "provenance_log_index": self.provenance_index,
            "metadata": [{"name": n, "log_index": i} for n, i in self.metadata],
            "auditors": list(self.auditors),
            "checkpoint": dict(self.checkpoint),
            "cosigners": list(self.cosigners),
            "cosigned_at": self.cosigned_at,
            "installed_at": self.installed_at,
            "policy_sha256": self.policy_sha256,
            "via_delta": self.via_delta,
            "file_stat": None if self.file_stat is None else list(self.file_stat),
        }

    def to_bytes(self) -> bytes:
        return jsonio.dump(self.to_dict()) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, follow: Follow) -> TrustRecord:
        what = "agent trust record"
        obj = jsonio.load_object(data, what, max_size=MAX_RECORD_BYTES)
        try:
            return cls(
                follow=follow,
                version=jsonio.req_str(obj, "version", what),
                target=jsonio.req_str(obj, "target", what),
                sha256=jsonio.req_str(obj, "sha256", what),
                length=int(obj["length"]),
                installed=jsonio.req_str(obj, "installed", what),
                provenance_index=int(obj["provenance_log_index"]),
                metadata=tuple((str(m["name"]), int(m["log_index"])) for m in obj["metadata"]),
                auditors=tuple(str(a) for a in obj["auditors"]),
                checkpoint=jsonio.req_dict(obj, "checkpoint", what),
                cosigners=tuple(str(c) for c in obj["cosigners"]),
                cosigned_at=jsonio.req_str(obj, "cosigned_at", what),
                installed_at=jsonio.req_str(obj, "installed_at", what),
                policy_sha256=jsonio.req_str(obj, "policy_sha256", what),
                via_delta=bool(obj.get("via_delta", False)),
                file_stat=_file_stat(obj.get("file_stat")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{what}: a field is missing or mistyped ({e})") from e


def _file_stat(value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    size, mtime_ns, inode = (int(v) for v in value)
    return size, mtime_ns, inode


def file_stat(path: Path) -> tuple[int, int, int]:
    """What :attr:`TrustRecord.file_stat` records of ``path`` (symlinks followed)."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def read_record(layout: AgentLayout, follow: Follow) -> TrustRecord | None:
    path = layout.record(follow)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror}") from e
    try:
        return TrustRecord.from_bytes(data, follow)
    except FormatError as e:
        raise StorageError(f"the agent's record {path} is damaged: {e}") from e


def write_record(layout: AgentLayout, record: TrustRecord) -> None:
    atomic_write(layout.record(record.follow), record.to_bytes())


@dataclass(frozen=True, slots=True)
class StagedRecord:
    """A trust record written and synced under a temporary name beside its own (:func:`stage_record`): an
    install writes it while the installed file syncs, and renames it into place once the file is there."""

    record: TrustRecord
    path: Path
    tmp: Path

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        """Remove the temporary file, if it was not committed."""
        remove_quietly(self.tmp)


def stage_record(layout: AgentLayout, record: TrustRecord) -> StagedRecord:
    """``record`` written and fsynced to a temporary name in ``trusted/``; nothing reads it until committed."""
    path = layout.record(record.follow)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(record.to_bytes())
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        remove_quietly(tmp)
        raise
    finally:
        os.close(fd)
    return StagedRecord(record=record, path=path, tmp=tmp)


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of the file at ``path``, or None if there is none."""
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def default_layout(directory: Path | None) -> AgentLayout:
    """The agent directory given, or the default one ``overt scan`` reads."""
    return AgentLayout(directory if directory is not None else default_agent_dir())


def remove_quietly(path: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)
