"""Sequencing stores, SQLite and a real PostgreSQL server: deduplication, restart, agreement."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from overt.errors import FormatError, StorageError
from overt.home import Home, LogConfig
from overt.tlog.sequencer import TileLog
from overt.tlog.stores import PostgresStore, SequencerStore, SQLiteStore


def _stores(tmp_path: Path, dsn: str | None) -> SequencerStore:
    if dsn is None:
        return SQLiteStore(tmp_path / "db")
    return PostgresStore(dsn, schema="t" + uuid.uuid4().hex[:12])


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    schema = "t" + uuid.uuid4().hex[:12]

    def make() -> SequencerStore:
        return SQLiteStore(tmp_path / "db") if dsn is None else PostgresStore(dsn, schema=schema)

    return make


def test_dedup_restart_and_roots(tmp_path: Path, store_factory) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "log"
    d.mkdir()
    log = TileLog(d, store_factory(), durable=False)
    first = log.append([f"e{i}".encode() for i in range(300)])
    assert first == list(range(300))
    # Duplicates, within a batch and against the store, keep their index.
    again = log.append([b"e5", b"new", b"new", b"e299"])
    assert again == [5, 300, 300, 299]
    root = log.state.root_hash
    log.store.close()
    reopened = TileLog(d, store_factory(), durable=False)
    assert reopened.state.tree_size == 301
    assert reopened.state.root_hash == root
    assert reopened.entry(300) == b"new"
    assert reopened.append([b"e0"]) == [0]
    assert reopened.append([b"more"]) == [301]
    assert reopened.root_at(301) == root
    reopened.close()


def test_entry_size_limit(tmp_path: Path) -> None:
    d = tmp_path / "log"
    d.mkdir()
    log = TileLog(d, SQLiteStore(tmp_path / "db"))
    with pytest.raises(FormatError):
        log.append([b"x" * 65_536])
    assert log.state.tree_size == 0
    log.close()


def test_missing_tile_is_detected_on_open(tmp_path: Path) -> None:
    d = tmp_path / "log"
    d.mkdir()
    log = TileLog(d, SQLiteStore(tmp_path / "db"))
    log.append([b"a", b"b", b"c"])
    log.store.close()
    (d / "tile" / "0" / "000.p" / "3").unlink()
    store = SQLiteStore(tmp_path / "db")
    with pytest.raises(StorageError):
        TileLog(d, store)
    store.close()


def test_postgres_home_end_to_end(tmp_path: Path, postgres_dsn: str) -> None:
    home = Home.init(tmp_path / "home", config=LogConfig(store="postgres", postgres_dsn=postgres_dsn))
    log = home.log.open()
    assert log.add([b"one", b"two"]) == [0, 1]
    result = log.publish()
    assert result.published
    assert log.published() == result.checkpoint
    log.close()
