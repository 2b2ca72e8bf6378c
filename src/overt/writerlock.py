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


class WriterLock:
    def __init__(self, path: Path, *, wait: float = 10.0) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def lock_is_held(path: Path) -> bool:
    """Whether another process holds the writer lock at ``path`` right now (False if there is no lock file)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
