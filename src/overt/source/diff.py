"""What changed between two source snapshots: the regular files added, removed and changed, with a unified
diff of each changed text file.

A file is changed when its bytes or its mode (0644, or 0755 for an executable) differ; directories and
symlinks are not compared (``dirHash`` covers regular files only, and so does this). Paths are listed
sorted, as the snapshot's tar orders them. A changed file that is not UTF-8 is reported as binary, without a
diff; a text diff is cut after :data:`MAX_DIFF_LINES` lines.

:func:`diff_files` is pure, over :class:`~overt.source.snapshot.SnapshotFile` lists; :func:`diff_snapshots`
reads the two snapshots from the escrow, each checked against its digest.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from overt.errors import UsageError
from overt.source.escrow import SOURCE, Escrow, snapshot_files
from overt.source.snapshot import FILE, SnapshotFile

MAX_DIFF_LINES = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangedFile:
    """A regular file in both snapshots whose bytes or mode differ.

    ``diff`` holds the unified diff lines (``---``/``+++`` headers first, at most :data:`MAX_DIFF_LINES`), or
    is None when either version is not UTF-8 text.
    """

    path: str
    old_mode: int
    new_mode: int
    diff: tuple[str, ...] | None

    @property
    def binary(self) -> bool:
        return self.diff is None


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotDiff:
    """The regular files added, removed and changed from snapshot ``a`` to snapshot ``b`` (their sha256)."""

    a: str
    b: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[ChangedFile, ...]

    @property
    def identical(self) -> bool:
        """No regular file was added, removed or changed."""
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [c.path for c in self.changed],
        }


def _text_diff(path: str, old: bytes, new: bytes) -> tuple[str, ...] | None:
    try:
        before, after = old.decode().splitlines(), new.decode().splitlines()
    except UnicodeDecodeError:
        return None
    lines = difflib.unified_diff(before, after, f"a/{path}", f"b/{path}", lineterm="")
    return tuple(itertools.islice(lines, MAX_DIFF_LINES))


def diff_files(old: Sequence[SnapshotFile], new: Sequence[SnapshotFile], *, a: str, b: str) -> SnapshotDiff:
    """Compare the regular files of two snapshots, ``old`` (called ``a``) and ``new`` (called ``b``)."""
    fa = {f.path: f for f in old if f.kind == FILE}
    fb = {f.path: f for f in new if f.kind == FILE}
    changed = tuple(
        ChangedFile(
            path=p,
            old_mode=fa[p].mode,
            new_mode=fb[p].mode,
            diff=_text_diff(p, fa[p].data, fb[p].data) if fa[p].data != fb[p].data else (),
        )
        for p in sorted(fa.keys() & fb.keys())
        if fa[p].data != fb[p].data or fa[p].mode != fb[p].mode
    )
    return SnapshotDiff(
        a=a,
        b=b,
        added=tuple(sorted(fb.keys() - fa.keys())),
        removed=tuple(sorted(fa.keys() - fb.keys())),
        changed=changed,
    )


def diff_snapshots(escrow: Escrow, older: str, newer: str) -> SnapshotDiff:
    """:func:`diff_files` of two escrowed snapshots, each named by its sha256 or a unique prefix.

    Raises:
        UsageError: one of them is a toolchain input, not a source snapshot.
    """
    ea, eb = escrow.get(older), escrow.get(newer)
    if ea.kind != SOURCE or eb.kind != SOURCE:
        raise UsageError("diff compares two source snapshots, not toolchain inputs")
    return diff_files(
        snapshot_files(escrow.read(ea)), snapshot_files(escrow.read(eb)), a=ea.sha256, b=eb.sha256
    )
