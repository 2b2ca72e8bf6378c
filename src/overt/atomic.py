"""Atomic, optionally durable file writes: temp file in the same directory, fsync, ``os.replace``.

Owns nothing else. Directory fsyncs are left to the caller (:func:`fsync_dirs`) so a batch of writes pays
for each directory once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, durable: bool = True, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix; from any
    process or thread (the temp file is named by both, so two writers of one file never share it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def fsync_dirs(dirs: Iterable[Path]) -> None:
    """fsync each directory so that renames into it survive a crash."""
    for d in set(dirs):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
