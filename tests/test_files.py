"""Reading a named file: regular files only, never more than the limit, a FIFO or a device refused unread."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from overt.errors import UsageError
from overt.files import read_regular_file


@contextmanager
def fifo_with_a_writer(path: Path, data: bytes) -> Iterator[Path]:
    """A FIFO whose writer sends ``data`` to whoever opens it, so a reader that wrongly opens it gets an
    answer (and the test fails) instead of blocking; released at the end whether or not anybody read it."""
    os.mkfifo(path)

    def write() -> None:
        with path.open("wb") as f:  # blocks until a reader opens the FIFO
            f.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield path
    finally:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer's open return
        writer.join()
        os.close(fd)


def test_a_regular_file_is_read_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, limit=100) == b"x" * 100
    with pytest.raises(UsageError, match="is larger than 99 bytes"):
        read_regular_file(path, limit=99)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_regular_file(empty, limit=0) == b""


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    (tmp_path / "link").symlink_to("f")
    assert read_regular_file(tmp_path / "link", limit=10) == b"data"


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    with (
        fifo_with_a_writer(tmp_path / "fifo", b"what a reader would get") as fifo,
        pytest.raises(UsageError, match=r"fifo is not a regular file \(it is a FIFO\)"),
    ):
        read_regular_file(fifo, limit=1 << 20)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused(device: str) -> None:
    with pytest.raises(UsageError, match=rf"^{device} is not a regular file \(it is a character device\)$"):
        read_regular_file(Path(device), limit=1 << 20)


def test_a_symlink_to_a_device_and_a_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(UsageError, match="character device"):
        read_regular_file(tmp_path / "zero", limit=1 << 20)
    with pytest.raises(UsageError, match=r"is not a regular file \(it is a directory\)"):
        read_regular_file(tmp_path, limit=1 << 20)


def test_a_missing_or_unreadable_file_says_what_the_system_said(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read .*missing: No such file or directory"):
        read_regular_file(tmp_path / "missing", limit=10)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UsageError, match="Not a directory"):
        read_regular_file(tmp_path / "file" / "below", limit=10)


def test_a_path_with_a_nul_byte_is_a_usage_error(tmp_path: Path) -> None:
    """os.stat raises ValueError on a NUL byte; it must be the typed error every other bad path gets."""
    with pytest.raises(UsageError, match=r"a\\0b is not a valid path"):
        read_regular_file(tmp_path / "a\0b", limit=10)
