"""One writer per log: an exclusive ``flock`` on ``<home>/log.lock`` held while a process appends.

The sequencer keeps the tree state in memory, so two processes appending to one home (``overt serve`` and an
``overt attest sign``, say) would each extend a stale tree. Whoever opens the log for writing takes this lock;
the others wait a little and then fail with a message naming the holder. The kernel drops the lock when the
holder dies, so a crash never leaves it stale. It guards one machine; a PostgreSQL-backed sequencer shared by
several machines still needs a single writer process.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from overt.errors import ConfigError


def lock_directory(directory: Path) -> int:
    """An exclusive, non-blocking ``flock`` on the directory itself; raises BlockingIOError if held.

    The lock files name the holder's pid, but a file can be deleted and re-created while its holder runs,
    and a new process would then lock the new inode. The directory holding the home cannot be swapped that
    way without moving everything in it, so the lock that counts is on the directory.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


class WriterLock:
    def __init__(self, path: Path, *, wait: float = 10.0) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                try:
                    self._dir_fd = lock_directory(path.parent)
                except BlockingIOError:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    raise
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise ConfigError(
                        f"the log of this home is being written by another process (pid {holder}, "
                        "probably 'overt serve'); stop it, or send entries through its HTTP API",
                        lock=str(path),
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptors releases the flocks
            os.close(self._dir_fd)
            self._fd = None


def lock_is_held(path: Path) -> bool:
    """Whether another process holds the writer lock at ``path`` (on its file or its directory) right now."""
    try:
        fd = lock_directory(path.parent)
    except BlockingIOError:
        return True
    except OSError:
        return False
    os.close(fd)
    return False
