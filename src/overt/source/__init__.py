"""Source escrow: canonical snapshots of audited source and pinned toolchain inputs, by digest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.source.diff import MAX_DIFF_LINES, ChangedFile, SnapshotDiff, diff_files, diff_snapshots
    from overt.source.escrow import (
        Escrow,
        EscrowEntry,
        add_recipe,
        extract,
        read_directory,
        read_source,
        snapshot_files,
    )
    from overt.source.listing import (
        EscrowAddition,
        EscrowedFiles,
        EscrowedObject,
        EscrowListing,
        escrow_input,
        escrow_source,
        list_escrow,
        show_escrowed,
    )
    from overt.source.snapshot import SnapshotFile, canonical_tar, dir_hash, read_tar

__all__ = [
    "MAX_DIFF_LINES",
    "ChangedFile",
    "Escrow",
    "EscrowAddition",
    "EscrowEntry",
    "EscrowListing",
    "EscrowedFiles",
    "EscrowedObject",
    "SnapshotDiff",
    "SnapshotFile",
    "add_recipe",
    "canonical_tar",
    "diff_files",
    "diff_snapshots",
    "dir_hash",
    "escrow_input",
    "escrow_source",
    "extract",
    "list_escrow",
    "read_directory",
    "read_source",
    "read_tar",
    "show_escrowed",
    "snapshot_files",
]

_EXPORTS = {
    "diff": ("MAX_DIFF_LINES", "ChangedFile", "SnapshotDiff", "diff_files", "diff_snapshots"),
    "escrow": (
        "Escrow",
        "EscrowEntry",
        "add_recipe",
        "extract",
        "read_directory",
        "read_source",
        "snapshot_files",
    ),
    "listing": (
        "EscrowAddition",
        "EscrowListing",
        "EscrowedFiles",
        "EscrowedObject",
        "escrow_input",
        "escrow_source",
        "list_escrow",
        "show_escrowed",
    ),
    "snapshot": ("SnapshotFile", "canonical_tar", "dir_hash", "read_tar"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
