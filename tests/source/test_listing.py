"""The escrow views ``overt source ... --json`` prints: each object with its metadata and its file, whether
escrowing it was new, the whole escrow, and a snapshot's files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.source.escrow import EscrowEntry
from overt.source.listing import escrow_input, escrow_source, list_escrow, show_escrowed
from overt.source.snapshot import DIR, FILE, SnapshotFile

METADATA = {"sha256", "kind", "name", "size", "log_index", "escrowed_at"}


def builder(h: Home) -> KeyRecord:
    return h.registry.current(Role.BUILDER, datetime.now(UTC))


FILES = [
    SnapshotFile(path="d", kind=DIR, mtime=7),
    SnapshotFile(path="d/run.sh", kind=FILE, executable=True, mtime=7, data=b"#!/bin/sh\n"),
    SnapshotFile(path="a.txt", kind=FILE, mtime=7, data=b"hello\n"),
]


def test_escrowing_a_source_says_whether_it_was_new(home: Home) -> None:
    first = escrow_source(home.escrow, FILES, name="src", service=home.signing_service(), key=builder(home))
    again = escrow_source(home.escrow, FILES, name="src", service=home.signing_service(), key=builder(home))
    assert first.new and not again.new and again.escrowed.entry == first.escrowed.entry
    entry = first.escrowed.entry
    out = first.to_dict()
    assert set(out) == {"source", "new"} and out["new"] is True
    assert set(out["source"]) == METADATA | {"dirHash", "files", "path"}
    assert out["source"]["path"] == str(home.paths.public / "escrow" / entry.sha256)
    assert Path(out["source"]["path"]).read_bytes() == home.escrow.read(entry)
    assert {k: v for k, v in out["source"].items() if k != "path"} == entry.to_dict()
    assert again.to_dict()["new"] is False


def test_escrowing_an_input_is_listed_under_input(home: Home) -> None:
    added = escrow_input(
        home.escrow, b"wheel", name="t.whl", service=home.signing_service(), key=builder(home)
    )
    out = added.to_dict()
    assert set(out) == {"input", "new"}
    assert set(out["input"]) == METADATA | {"path"}  # no dirHash or file count for an input
    again = escrow_input(
        home.escrow, b"wheel", name="t.whl", service=home.signing_service(), key=builder(home)
    )
    assert again.to_dict() == {**out, "new": False}
    shown = show_escrowed(home.escrow, added.escrowed.entry.sha256[:10]).to_dict()
    assert shown["entries"] == [] and shown["kind"] == "input"


def test_the_listing_and_a_snapshots_files(home: Home) -> None:
    src = escrow_source(home.escrow, FILES, name="src", service=home.signing_service(), key=builder(home))
    tool = escrow_input(home.escrow, b"w", name="t.whl", service=home.signing_service(), key=builder(home))
    listing = list_escrow(home.escrow).to_dict()
    assert list(listing) == ["escrow"]
    assert [o["sha256"] for o in listing["escrow"]] == [src.escrowed.entry.sha256, tool.escrowed.entry.sha256]
    assert all(o["path"].endswith(o["sha256"]) for o in listing["escrow"])
    shown = show_escrowed(home.escrow, src.escrowed.entry.sha256[:12])
    assert isinstance(shown.escrowed.entry, EscrowEntry)
    out = shown.to_dict()
    assert out["sha256"] == src.escrowed.entry.sha256 and out["path"] == src.to_dict()["source"]["path"]
    assert out["entries"] == [
        {"path": "a.txt", "kind": "file", "mode": "0o644", "mtime": 7, "size": 6},
        {"path": "d", "kind": "dir", "mode": "0o755", "mtime": 7, "size": 0},
        {"path": "d/run.sh", "kind": "file", "mode": "0o755", "mtime": 7, "size": 10},
    ]
