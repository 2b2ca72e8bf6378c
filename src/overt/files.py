"""Reading a file that a user or a home names: a regular file only, and at most a given number of bytes.

A FIFO, a device or a socket is refused before a byte is read: ``/dev/zero`` would be read until memory
runs out, and a FIFO without a writer blocks its reader forever. The file is opened without blocking
(``O_NONBLOCK``, which a regular file ignores) and checked again on the open descriptor, so a path swapped
for a FIFO between the two checks is refused too. A file over the limit is refused after reading one byte
more than the limit, never read whole.

Owns only that. Walking a tree (a source tree, a rule tree) is the caller's: it reads each regular file of the
tree through :func:`read_regular_file` and refuses the special files it meets itself. Which error family a
refusal belongs to is the caller's too when the file is not one the user named: the errors here are
:class:`~overt.errors.UsageError`, a path on the command line to fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from overt.errors import UsageError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(path: Path, mode: int) -> UsageError:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return UsageError(f"{path} is not a regular file (it is {kind})")


def _too_large(path: Path, limit: int) -> UsageError:
    return UsageError(f"{path} is larger than {limit} bytes, the limit for this file")


def read_regular_file(path: Path, *, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit`` of them.

    Raises:
        UsageError: ``path`` is missing or unreadable, is not a regular file, or holds more than ``limit``
            bytes.
    """
    if limit < 0:
        raise ValueError("a read limit cannot be negative")
    if "\0" in str(path):
        shown = str(path).replace("\0", "\\0")
        raise UsageError(f"{shown} is not a valid path (it holds a NUL byte)")
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        if st.st_size > limit:
            raise _too_large(path, limit)
        chunks: list[bytes] = []
        got = 0
        while got <= limit:
            chunk = os.read(fd, min(limit + 1 - got, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from e
    finally:
        os.close(fd)
    if got > limit:
        raise _too_large(path, limit)
    return b"".join(chunks)
