"""The snapshot diff: regular files added, removed and changed (bytes or mode), text diffs and binary files,
the cap on diff lines, and two snapshots read back from a real escrow."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from overt.errors import ConfigError, UsageError
from overt.home import Home
from overt.keys.registry import Role
from overt.source.diff import MAX_DIFF_LINES, SnapshotDiff, diff_files, diff_snapshots
from overt.source.snapshot import DIR, FILE, SYMLINK, SnapshotFile

A, B = "a" * 64, "b" * 64


def f(path: str, data: bytes, *, executable: bool = False) -> SnapshotFile:
    return SnapshotFile(path=path, kind=FILE, data=data, executable=executable)


def test_added_removed_and_changed_files_sorted_by_path() -> None:
    old = [f("z.txt", b"same\n"), f("b.txt", b"one\ntwo\n"), f("gone.txt", b"x"), f("run.sh", b"#!/bin/sh\n")]
    new = [
        f("z.txt", b"same\n"),
        f("b.txt", b"one\nthree\n"),
        f("new/b.txt", b"y"),
        f("new/a.txt", b"y"),
        f("run.sh", b"#!/bin/sh\n", executable=True),
    ]
    d = diff_files(old, new, a=A, b=B)
    assert d.added == ("new/a.txt", "new/b.txt") and d.removed == ("gone.txt",)
    assert [c.path for c in d.changed] == ["b.txt", "run.sh"]
    text, mode = d.changed
    assert text.diff == ("--- a/b.txt", "+++ b/b.txt", "@@ -1,2 +1,2 @@", " one", "-two", "+three")
    assert (text.old_mode, text.new_mode) == (0o644, 0o644)
    assert mode.diff == () and (mode.old_mode, mode.new_mode) == (0o644, 0o755) and not mode.binary
    assert not d.identical
    assert d.to_dict() == {
        "a": A,
        "b": B,
        "added": ["new/a.txt", "new/b.txt"],
        "removed": ["gone.txt"],
        "changed": ["b.txt", "run.sh"],
    }


def test_only_regular_files_are_compared() -> None:
    old = [SnapshotFile(path="d", kind=DIR), SnapshotFile(path="l", kind=SYMLINK, target="x"), f("x", b"1")]
    new = [SnapshotFile(path="e", kind=DIR), SnapshotFile(path="l", kind=SYMLINK, target="y"), f("x", b"1")]
    d = diff_files(old, new, a=A, b=B)
    assert d.identical and d.to_dict() == {"a": A, "b": B, "added": [], "removed": [], "changed": []}


def test_a_file_that_is_not_utf8_is_binary_without_a_diff() -> None:
    (c,) = diff_files([f("img", b"\xff\x00")], [f("img", b"\xff\x01")], a=A, b=B).changed
    assert c.binary and c.diff is None


def test_a_text_diff_is_cut_after_the_cap() -> None:
    old = "".join(f"{i}\n" for i in range(1000)).encode()
    new = "".join(f"{i}!\n" for i in range(1000)).encode()
    (c,) = diff_files([f("big", old)], [f("big", new)], a=A, b=B).changed
    assert c.diff is not None and len(c.diff) == MAX_DIFF_LINES
    assert c.diff[:2] == ("--- a/big", "+++ b/big")


def escrow(h: Home, files: list[SnapshotFile]) -> str:
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    entry, _ = h.escrow.add_source(files, name="src", service=h.signing_service(), key=builder)
    return entry.sha256


def test_two_escrowed_snapshots_by_prefix(home: Home) -> None:
    a = escrow(home, [f("a.txt", b"one\n"), f("keep", b"k")])
    b = escrow(home, [f("a.txt", b"two\n"), f("keep", b"k"), f("c.txt", b"new\n")])
    d = diff_snapshots(home.escrow, a[:12], f"sha256:{b[:10]}")
    assert isinstance(d, SnapshotDiff)
    assert (d.a, d.b, d.added, d.removed) == (a, b, ("c.txt",), ())
    assert [c.path for c in d.changed] == ["a.txt"]
    assert json.loads(json.dumps(d.to_dict()))["changed"] == ["a.txt"]
    assert diff_snapshots(home.escrow, a, a).identical


def test_a_toolchain_input_is_not_a_snapshot(home: Home) -> None:
    a = escrow(home, [f("a.txt", b"one\n")])
    builder = home.registry.current(Role.BUILDER, datetime.now(UTC))
    tool, _ = home.escrow.add_input(b"wheel", name="tool.whl", service=home.signing_service(), key=builder)
    with pytest.raises(UsageError, match="two source snapshots, not toolchain inputs"):
        diff_snapshots(home.escrow, a, tool.sha256)
    with pytest.raises(ConfigError, match="no escrowed objects match"):
        diff_snapshots(home.escrow, a, "0123456789")
