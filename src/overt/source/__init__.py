"""Source escrow: canonical snapshots of audited source and pinned toolchain inputs, by digest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.source.escrow import (
        Escrow,
        EscrowEntry,
        add_recipe,
        extract,
        read_directory,
        read_source,
        snapshot_files,
    )
    from overt.source.snapshot import SnapshotFile, canonical_tar, dir_hash, read_tar

__all__ = [
    "Escrow",
    "EscrowEntry",
    "SnapshotFile",
    "add_recipe",
    "canonical_tar",
    "dir_hash",
    "extract",
    "read_directory",
    "read_source",
    "read_tar",
    "snapshot_files",
]

_EXPORTS = {
    "escrow": (
        "Escrow",
        "EscrowEntry",
        "add_recipe",
        "extract",
        "read_directory",
        "read_source",
        "snapshot_files",
    ),
    "snapshot": ("SnapshotFile", "canonical_tar", "dir_hash", "read_tar"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
