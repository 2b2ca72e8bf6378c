"""Corruption is noticed, not served: fsck names the damaged file, proofs are refused, SQLite damage is found."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overt.errors import StorageError
from overt.home import Home
from overt.tlog.fsck import check_tree
from overt.tlog.sequencer import TileLog
from overt.tlog.tiles import entries_path, tile_path, tiles_for_size
from tests.cli.test_cli import overt

SIZE = 600  # two full bundles, a partial one, and a level-1 tile of width 2


def entry(i: int) -> bytes:
    return f"entry {i} ".encode() * (1 + i % 5)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = Home.init(tmp_path_factory.mktemp("fsck") / "home", origin="fsck.overt.example/log")
    log = home.log.open()
    log.add([entry(i) for i in range(SIZE)])
    assert log.publish().published
    log.close()
    return home.path


@pytest.fixture
def home(pristine: Path, tmp_path: Path) -> Home:
    shutil.copytree(pristine, tmp_path / "home")
    return Home(tmp_path / "home")


def tree_files() -> list[str]:
    files = [tile_path(level, index, width) for level, index, width in tiles_for_size(SIZE)]
    files += [entries_path(b, min(256, SIZE - 256 * b)) for b in range(-(-SIZE // 256))]
    return files


def flip(path: Path, offset: int, mask: int = 1) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= mask
    path.write_bytes(bytes(data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(tree_files()), offset=st.integers(0, 1 << 20), mask=st.integers(1, 255))
def test_any_flipped_byte_is_named(pristine: Path, which: str, offset: int, mask: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp) / "log"
        shutil.copytree(pristine / "public" / "log", log_dir)
        flip(log_dir / which, offset, mask)
        home = Home(pristine)
        root = home.log.heads()[0].root_hash
        report = check_tree(TileLog.reader_for(log_dir), SIZE, root)
        assert not report.ok
        assert which in {d.path for d in report.damage}, report.damage


@pytest.mark.parametrize("which", ["tile/0/000", "tile/entries/001"])
def test_truncated_file_is_named(home: Home, which: str) -> None:
    path = home.log.paths.public / which
    path.write_bytes(path.read_bytes()[:-3])
    report = home.log.fsck(full=True)
    assert [d.path for d in report.damage] == [which]


def test_fsck_cli_names_damage_and_proof_is_refused(home: Home) -> None:
    H = ("--home", str(home.path))
    r = overt("log", "fsck", "--full", *H, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True
    good = overt("log", "proof", "5", *H)
    assert good.returncode == 0, good.stderr
    flip(home.log.paths.public / "tile" / "0" / "000", 5 * 32 + 7)
    r = overt("log", "fsck", "--full", *H, "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["damaged_files"] == [
        {"path": "tile/0/000", "problem": "hashes differ from the entries and the signed root"}
    ]
    # Entry 4's proof needs the damaged hash of its neighbour 5: refused, nothing written.
    r = overt("log", "proof", "4", *H)
    assert r.returncode != 0 and r.stdout == ""
    assert "does not verify against the signed root" in r.stderr and "Traceback" not in r.stderr
    # Proofs that do not use the damaged hash still verify, and are given (entry 5's own hash comes from
    # its bundle, not from the tile).
    assert overt("log", "proof", "5", *H).returncode == 0
    assert overt("log", "proof", "590", *H).returncode == 0


def test_truncated_bundles_refused_by_proof_and_open(home: Home) -> None:
    full = home.log.paths.public / "tile" / "entries" / "001"
    full.write_bytes(full.read_bytes()[:-1])
    reader = home.log.read()
    try:
        published = reader.published()
        assert published is not None
        with pytest.raises(StorageError, match="fsck"):
            reader.proof(300, published)
    finally:
        reader.close()
    edge = home.log.paths.public / "tile" / "entries" / "002.p" / str(SIZE - 512)
    edge.write_bytes(edge.read_bytes()[:-1])
    with pytest.raises(StorageError, match=r"entries/002\.p"):
        home.log.read()
    with pytest.raises(StorageError, match=r"entries/002\.p"):
        home.log.open()


def test_incremental_fsck_checks_only_new_files_and_full_checks_all(home: Home) -> None:
    first = home.log.fsck()
    assert first.ok and first.start == 0 and first.bundles == 3
    log = home.log.open()
    log.add([b"one more"])
    log.publish()
    log.close()
    # Change an entry of an old, already checked bundle (same length, so it still parses).
    bundle = home.log.paths.public / "tile" / "entries" / "000"
    bundle.write_bytes(bundle.read_bytes().replace(b"entry 7 ", b"entry X "))
    new = home.log.fsck()
    assert new.ok and new.start == SIZE and new.bundles == 1  # only the right edge was read again
    assert [d.path for d in home.log.fsck(full=True).damage] == ["tile/entries/000"]


def test_incremental_fsck_still_notices_an_old_tile_under_a_new_parent(home: Home) -> None:
    assert home.log.fsck().ok
    log = home.log.open()
    log.add([b"one more"])
    log.publish()
    log.close()
    flip(home.log.paths.public / "tile" / "0" / "000", 1)  # old, but its parent tile/1/000.p/2 is recomputed
    report = home.log.fsck()
    assert report.start == SIZE and [d.path for d in report.damage] == ["tile/0/000"]


def test_sqlite_corruption_is_detected(home: Home) -> None:
    db = home.path / "overt.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(page, len(data), page):  # every b-tree page header after the first page
        data[start : start + 12] = b"\x0d\xff" * 6
    db.write_bytes(bytes(data))
    report = home.log.fsck(full=True)
    assert not report.ok
    assert report.database, report


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_lost_database_is_damage_and_fsck_leaves_it_lost(home: Home, how: str) -> None:
    """fsck used to report a deleted database as sound (and create an empty one); the next append then failed."""
    db = home.path / "overt.db"
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    if how == "emptied":
        home.log.open_store().close()  # a fresh, empty database where the old one was
    report = home.log.fsck(full=True)
    assert not report.ok
    assert any("recover" in p for p in report.database), report.database
    assert db.exists() == (how == "emptied")
    r = overt("log", "fsck", "--home", str(home.path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert home.log.recover().tree_size == SIZE
    assert home.log.fsck(full=True).ok


def test_missing_dedup_row_is_named_and_never_resequenced(home: Home) -> None:
    with sqlite3.connect(home.path / "overt.db") as conn:
        conn.execute("DELETE FROM log_entries WHERE leaf_index = 42")
    report = home.log.fsck(full=True)
    assert "no deduplication row for entry 42" in report.database
    r = overt("log", "add", "--home", str(home.path), "--json", str(_write(home.path.parent, entry(42))))
    assert r.returncode != 0 and "deduplication table" in r.stderr
    with sqlite3.connect(home.path / "overt.db") as conn:
        assert conn.execute("SELECT max(leaf_index) FROM log_entries").fetchone()[0] == SIZE - 1


def _write(directory: Path, data: bytes) -> Path:
    path = directory / "entry.bin"
    path.write_bytes(data)
    return path


def test_tampered_dedup_row_never_hands_out_another_entrys_index(home: Home) -> None:
    """Swap the indices of two rows: re-adding entry 0 must not be answered with index 7."""
    import hashlib

    def leaf(data: bytes) -> bytes:
        return hashlib.sha256(b"\x00" + data).digest()

    with sqlite3.connect(home.path / "overt.db") as conn:
        conn.execute("UPDATE log_entries SET leaf_index = -1 WHERE leaf_hash = ?", (leaf(entry(0)),))
        conn.execute("UPDATE log_entries SET leaf_index = 0 WHERE leaf_hash = ?", (leaf(entry(7)),))
        conn.execute("UPDATE log_entries SET leaf_index = 7 WHERE leaf_hash = ?", (leaf(entry(0)),))
    log = home.log.open()
    try:
        with pytest.raises(StorageError, match="deduplication table places an entry at index 7"):
            log.add([entry(0)])
    finally:
        log.close()


@pytest.mark.parametrize("index", [SIZE + 40, SIZE])  # past the tree; the index the next entry would get
def test_a_dedup_row_past_the_tree_is_refused(home: Home, index: int) -> None:
    import hashlib

    with sqlite3.connect(home.path / "overt.db") as conn:
        conn.execute(
            "UPDATE log_entries SET leaf_index = ? WHERE leaf_hash = ?",
            (index, hashlib.sha256(b"\x00" + entry(3)).digest()),
        )
    log = home.log.open(check=False)  # the row count still matches; the row itself lies
    try:
        with pytest.raises(StorageError, match=f"places an entry at index {index}"):
            log.add([entry(3)])
        assert log.tree_size == SIZE
    finally:
        log.close()
    assert home.log.fsck(full=True).database


def test_damaged_bundle_is_not_blamed_on_the_database(home: Home) -> None:
    bundle = home.log.paths.public / "tile" / "entries" / "001"
    bundle.write_bytes(bundle.read_bytes().replace(b"entry 300 ", b"entry 3X0 "))
    report = home.log.fsck(full=True)
    assert [d.path for d in report.damage] == ["tile/entries/001"]
    assert report.database == ()
