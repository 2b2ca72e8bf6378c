"""The escrow as its commands report it: each object with the file it is stored in, what escrowing one did,
the whole escrow, and the files of one snapshot.

Views over :mod:`overt.source.escrow`, which stores, logs and reads the objects; comparing two snapshots is
:mod:`overt.source.diff`. Each view's ``to_dict()`` is what ``overt source ... --json`` prints: the escrow
metadata (:meth:`EscrowEntry.to_dict`, the format of ``<sha256>.json``) plus the object's ``path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.keys.registry import KeyRecord
from overt.keys.signing import SigningService
from overt.source.escrow import SOURCE, Escrow, EscrowEntry, snapshot_files
from overt.source.snapshot import SnapshotFile


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowedObject:
    """An escrow entry and the file holding the object's bytes."""

    entry: EscrowEntry
    path: Path

    @classmethod
    def of(cls, escrow: Escrow, entry: EscrowEntry) -> EscrowedObject:
        return cls(entry=entry, path=escrow.object_path(entry))

    def to_dict(self) -> dict[str, Any]:
        return {**self.entry.to_dict(), "path": str(self.path)}


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowAddition:
    """What escrowing an object did: ``new`` is False when the same bytes were escrowed before, so nothing
    was stored, signed or logged this time (the entry is the earlier one)."""

    escrowed: EscrowedObject
    new: bool

    def to_dict(self) -> dict[str, Any]:
        return {self.escrowed.entry.kind: self.escrowed.to_dict(), "new": self.new}


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowListing:
    """Every escrowed object, in log order."""

    objects: tuple[EscrowedObject, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"escrow": [o.to_dict() for o in self.objects]}


def _file_dict(f: SnapshotFile) -> dict[str, Any]:
    """One snapshot entry as listed: path, kind, mode (octal, as ``0o644``), mtime and size in bytes."""
    return {"path": f.path, "kind": f.kind, "mode": oct(f.mode), "mtime": f.mtime, "size": len(f.data)}


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowedFiles:
    """One escrowed object and, for a source snapshot, its entries in tar order (none for a toolchain input)."""

    escrowed: EscrowedObject
    files: tuple[SnapshotFile, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.escrowed.to_dict(), "entries": [_file_dict(f) for f in self.files]}


def escrow_source(
    escrow: Escrow, files: list[SnapshotFile], *, name: str, service: SigningService, key: KeyRecord
) -> EscrowAddition:
    """:meth:`Escrow.add_source`, reported."""
    entry, signed = escrow.add_source(files, name=name, service=service, key=key)
    return EscrowAddition(escrowed=EscrowedObject.of(escrow, entry), new=signed is not None)


def escrow_input(
    escrow: Escrow, data: bytes, *, name: str, service: SigningService, key: KeyRecord
) -> EscrowAddition:
    """:meth:`Escrow.add_input`, reported."""
    entry, signed = escrow.add_input(data, name=name, service=service, key=key)
    return EscrowAddition(escrowed=EscrowedObject.of(escrow, entry), new=signed is not None)


def list_escrow(escrow: Escrow) -> EscrowListing:
    return EscrowListing(objects=tuple(EscrowedObject.of(escrow, e) for e in escrow.entries()))


def show_escrowed(escrow: Escrow, ref: str) -> EscrowedFiles:
    """The object ``ref`` names (its sha256 or a prefix) and, for a snapshot, its files, read and checked
    against its digest."""
    entry = escrow.get(ref)
    files = snapshot_files(escrow.read(entry)) if entry.kind == SOURCE else []
    return EscrowedFiles(escrowed=EscrowedObject.of(escrow, entry), files=tuple(files))
