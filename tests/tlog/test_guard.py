"""The log never forks, whatever happens to its database: a lost, emptied, restored or half-killed database is
refused on open, and ``recover`` rebuilds it from the published tiles, which stay byte for byte as they were."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from overt.errors import ConfigError, StorageError
from overt.home import Home
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.guard import StaleDatabaseError
from overt.tlog.merkle import verify_consistency


def grow(home: Home, start: int, count: int) -> SignedCheckpoint:
    log = home.log.open()
    try:
        log.add([f"entry {i}".encode() for i in range(start, start + count)])
        result = log.publish()
    finally:
        log.close()
    assert result.published
    return result.checkpoint


def snapshot(home: Home) -> dict[str, bytes]:
    """Every tile and entry bundle of the published tree, by path."""
    root = home.log.paths.public / "tile"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def db_files(home: Home) -> list[Path]:
    return [home.path / f"overt.db{s}" for s in ("", "-wal", "-shm")]


def backup(home: Home, to: Path) -> None:
    to.mkdir()
    for f in db_files(home):
        if f.exists():
            shutil.copy2(f, to / f.name)


def restore(home: Home, frm: Path) -> None:
    for f in db_files(home):
        f.unlink(missing_ok=True)
    for f in frm.iterdir():
        shutil.copy2(f, home.path / f.name)


def lose(home: Home) -> None:
    for f in db_files(home):
        f.unlink(missing_ok=True)


def empty(home: Home) -> None:
    lose(home)
    (home.path / "overt.db").write_bytes(b"")


def drop_rows(home: Home) -> None:
    with sqlite3.connect(home.path / "overt.db") as db:
        db.execute("DELETE FROM log_entries WHERE leaf_index >= 300")


@pytest.fixture
def grown(tmp_path: Path) -> tuple[Home, Path, SignedCheckpoint]:
    home = Home.init(tmp_path / "home", origin="guard.overt.example/log")
    grow(home, 0, 300)
    saved = tmp_path / "backup"
    backup(home, saved)
    head = grow(home, 300, 200)  # crosses no new full tile: 500 entries, tile 0/000 full, 0/001.p/244
    return home, saved, head


@pytest.mark.parametrize("damage", ["lose", "empty", "restore-old-backup", "drop-dedup-rows"])
def test_damaged_database_is_refused_then_recovered(
    grown: tuple[Home, Path, SignedCheckpoint], damage: str
) -> None:
    home, saved, head = grown
    before = snapshot(home)
    published = (home.log.paths.public / "checkpoint").read_bytes()
    {
        "lose": lose,
        "empty": empty,
        "restore-old-backup": lambda h: restore(h, saved),
        "drop-dedup-rows": drop_rows,
    }[damage](home)

    with pytest.raises(StaleDatabaseError) as refused:
        home.log.open()
    if damage != "drop-dedup-rows":
        # The error names both trees.
        message = str(refused.value)
        assert "size 500" in message and "log recover" in message
        assert refused.value.evidence["signed_size"] == 500
    # Nothing was signed, published or overwritten by the refused open.
    assert snapshot(home) == before
    assert (home.log.paths.public / "checkpoint").read_bytes() == published

    result = home.log.recover()
    assert (result.tree_size, result.root_hash) == (500, head.checkpoint.root_hash)
    assert snapshot(home) == before
    log = home.log.open()
    try:
        assert log.tiles.state.root_hash == head.checkpoint.root_hash
        # The deduplication table is back: an old entry keeps its index, nothing is re-sequenced.
        assert log.add([b"entry 7", b"entry 450"]) == [7, 450]
        (index,) = log.add([b"after recovery"])
        assert index == 500
        new = log.publish().checkpoint.checkpoint
    finally:
        log.close()
    proof = home.log.open().tiles
    try:
        verify_consistency(
            500, 501, head.checkpoint.root_hash, new.root_hash, proof.consistency_proof(500, 501)
        )
    finally:
        proof.close()


def test_recover_refuses_when_the_database_agrees(grown: tuple[Home, Path, SignedCheckpoint]) -> None:
    home, _, head = grown
    with pytest.raises(ConfigError, match="nothing to recover"):
        home.log.recover()
    assert home.log.recover(force=True).root_hash == head.checkpoint.root_hash


def test_database_ahead_of_published_is_accepted_but_a_fork_is_not(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "home", origin="guard.overt.example/log")
    grow(home, 0, 10)
    saved = tmp_path / "backup"
    backup(home, saved)
    grow(home, 10, 5)
    # Restore the old database and append different entries behind the guard's back (as today's code did):
    # the tree at size 15 now differs from the one signed.
    restore(home, saved)
    from overt.tlog.sequencer import TileLog

    tiles = TileLog(home.log.paths.public, home.log.open_store())
    tiles.append([b"forked 10", b"forked 11", b"forked 12", b"forked 13", b"forked 14", b"forked 15"])
    tiles.close()
    with pytest.raises(StaleDatabaseError, match="forks from what this log signed"):
        home.log.open()


def test_lost_head_file_still_guarded_by_published_checkpoint(
    grown: tuple[Home, Path, SignedCheckpoint],
) -> None:
    home, saved, _ = grown
    home.log.files.head.unlink()
    restore(home, saved)
    with pytest.raises(StaleDatabaseError):
        home.log.open()


def test_unpublished_head_guards_when_witnesses_never_cosigned(tmp_path: Path) -> None:
    """A checkpoint handed to witnesses but never published still binds the log: the head file keeps it."""
    home = Home.init(tmp_path / "home", origin="guard.overt.example/log")
    saved = tmp_path / "backup"
    backup(home, saved)
    log = home.log.open()
    log.add([b"only signed"])
    log.sign()  # what a witness would have seen
    log.close()
    restore(home, saved)
    with pytest.raises(StaleDatabaseError, match="last signed checkpoint"):
        home.log.open()
    assert home.log.recover().tree_size == 1


def test_origin_and_log_key_cannot_change(grown: tuple[Home, Path, SignedCheckpoint], tmp_path: Path) -> None:
    home, _, _ = grown
    cfg = home.path / "config.toml"
    original = cfg.read_text()
    cfg.write_text(original.replace('origin = "guard.overt.example/log"', 'origin = "other.example/log"'))
    with pytest.raises(ConfigError, match="origin cannot change") as e:
        Home(home.path).log.open()
    assert "guard.overt.example/log" in str(e.value) and "other.example/log" in str(e.value)
    cfg.write_text(original)
    # Swap in another home's log key (same origin): the published checkpoint is not signed by it.
    other = Home.init(tmp_path / "other", origin="guard.overt.example/log")
    mine = home.log_key()
    (home.paths.keys / "registry" / f"{mine.keyid}.json").unlink()
    theirs = other.log_key()
    shutil.copy2(other.paths.keys / "registry" / f"{theirs.keyid}.json", home.paths.keys / "registry")
    for pem in other.paths.keys.glob("*.pem"):
        shutil.copy2(pem, home.paths.keys)
    with pytest.raises(ConfigError, match=f"log key {mine.keyid[:16]} .* is not in keys/registry"):
        Home(home.path).log.open()
    # ... and with config.toml naming the new key too.
    cfg.write_text(original.replace(mine.keyid, theirs.keyid))
    with pytest.raises(ConfigError, match="key cannot change"):
        Home(home.path).log.open()


KILLED_CHILD = r"""
import sys
from pathlib import Path
from overt.home import Home
home = Home(Path(sys.argv[1]))
log = home.log.open()
n = 0
while True:
    log.add([f"killed {n + i}".encode() for i in range(97)])
    n += 97
    log.publish()
    print(n, flush=True)
"""


def test_killed_writer_then_restored_backup_is_refused(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "home", origin="guard.overt.example/log")
    grow(home, 0, 50)
    saved = tmp_path / "backup"
    backup(home, saved)
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, str(home.path)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        while int(child.stdout.readline() or 0) < 500:
            time.sleep(0)
        child.send_signal(signal.SIGKILL)
        child.wait()
    # After the kill the log opens (nothing acknowledged is lost) ...
    home.log.open().close()
    head = SignedCheckpoint.from_bytes(home.log.files.head.read_bytes())
    # ... and a backup from before it is refused, then recovered to the head the killed writer signed.
    restore(home, saved)
    with pytest.raises(StaleDatabaseError):
        home.log.open()
    assert home.log.recover().root_hash == head.checkpoint.root_hash


def test_recover_refuses_damaged_tiles(grown: tuple[Home, Path, SignedCheckpoint]) -> None:
    home, _, _ = grown
    lose(home)
    tile = home.log.paths.public / "tile" / "0" / "000"
    data = bytearray(tile.read_bytes())
    data[100] ^= 1
    tile.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="tile/0/000"):
        home.log.recover()


def test_a_failed_forced_recovery_leaves_the_database_as_it_was(
    grown: tuple[Home, Path, SignedCheckpoint],
) -> None:
    home, _, head = grown
    bundle = home.log.paths.public / "tile" / "entries" / "000"
    bundle.write_bytes(bundle.read_bytes().replace(b"entry 7", b"entry X"))
    with pytest.raises(StorageError, match="tile/entries/000"):
        home.log.recover(force=True)
    assert not list(home.path.glob("overt.db.lost-*"))
    log = home.log.open()  # the sound database is still in place
    try:
        assert log.tiles.state.root_hash == head.checkpoint.root_hash
    finally:
        log.close()


def test_postgres_database_lost_is_refused_then_recovered(tmp_path: Path, postgres_dsn: str) -> None:
    import psycopg

    from overt.home import LogConfig

    def drop() -> None:
        with psycopg.connect(postgres_dsn, autocommit=True) as db:
            db.execute("DROP SCHEMA IF EXISTS overt CASCADE")

    drop()
    try:
        home = Home.init(
            tmp_path / "home",
            config=LogConfig(
                origin="pg.guard.overt.example/log", store="postgres", postgres_dsn=postgres_dsn
            ),
        )
        head = grow(home, 0, 300)
        before = snapshot(home)
        drop()  # the database is lost
        with pytest.raises(StaleDatabaseError, match="size 300"):
            home.log.open()
        assert home.log.recover().root_hash == head.checkpoint.root_hash
        assert snapshot(home) == before
        log = home.log.open()
        try:
            assert log.add([b"entry 3"]) == [3]
        finally:
            log.close()
    finally:
        drop()


def test_with_every_signed_record_deleted_the_tiles_still_bind_the_log(tmp_path: Path) -> None:
    """Delete the database, the published checkpoint and log-head together: the entry bundles are the
    evidence left. Opening refuses, recovery rebuilds the same tree from them, and the witness that
    cosigned it goes on cosigning (no fork)."""
    from overt.server.runner import BackgroundServer
    from overt.server.witness import create_app as witness_app
    from overt.tlog.policy import Group, Policy, PolicyWitness
    from overt.tlog.witness import init_witness, load_witness, trust_log

    home = Home.init(tmp_path / "home", origin="guard.overt.example/log")
    init_witness(tmp_path / "w", "w.test.overt.example")
    trust_log(tmp_path / "w", (home.log.paths.public / "vkey").read_text().strip())
    with load_witness(tmp_path / "w") as witness, BackgroundServer(witness_app(witness)) as srv:
        pw = PolicyWitness(name="w1", verifier=witness.signer.verifier(), url=srv.url)
        policy = Policy(
            logs=home.log.policy().logs,
            witnesses=(pw,),
            groups=(Group(name="q", threshold=1, members=("w1",)),),
            quorum="q",
        )
        home.log.save_policy(policy)
        head = grow(home, 0, 20)
        before = snapshot(home)
        lose(home)
        (home.log.paths.public / "checkpoint").unlink()
        home.log.files.head.unlink()
        with pytest.raises(StaleDatabaseError, match="hold 20 entries"):
            home.log.open()
        result = home.log.recover()
        assert (result.tree_size, result.root_hash) == (20, head.checkpoint.root_hash)
        assert result.notes and "tiles alone" in result.notes[0]
        assert snapshot(home) == before
        after = grow(home, 20, 1)  # published: the witness cosigns a consistent extension
    assert after.checkpoint.tree_size == 21


def test_a_consistent_older_backup_of_database_head_and_checkpoint_is_refused(tmp_path: Path) -> None:
    """The tester's case: all three restored together from an older time, the tiles left newer."""
    home = Home.init(tmp_path / "home", origin="guard.overt.example/log")
    grow(home, 0, 3)
    saved = tmp_path / "backup"
    backup(home, saved)
    shutil.copy2(home.log.files.head, saved / "log-head")
    shutil.copy2(home.log.paths.public / "checkpoint", saved / "checkpoint")
    newest = grow(home, 3, 2)
    before = snapshot(home)
    restore(home, saved)
    (home.path / "log-head").write_bytes((saved / "log-head").read_bytes())
    (home.log.paths.public / "checkpoint").write_bytes((saved / "checkpoint").read_bytes())
    (saved / "log-head").unlink()
    (saved / "checkpoint").unlink()
    with pytest.raises(StaleDatabaseError, match="hold 5 entries but the log database only 3"):
        home.log.open()
    result = home.log.recover()
    assert (result.tree_size, result.root_hash) == (5, newest.checkpoint.root_hash)
    assert "2 committed entries past" in result.notes[0]
    assert snapshot(home) == before and home.log.fsck(full=True).ok


def test_a_crashed_batch_is_not_mistaken_for_lost_entries(tmp_path: Path) -> None:
    """Files past the committed size with the batch's intent still there: a crash, which the next batch
    simply overwrites."""
    home = Home.init(tmp_path / "home", origin="guard.overt.example/log")
    grow(home, 0, 3)
    saved = tmp_path / "backup"
    backup(home, saved)
    log = home.log.open()
    log.add([b"uncommitted 1", b"uncommitted 2"])
    log.close()
    restore(home, saved)  # as if the commit never happened ...
    home.log.files.intent.write_text("3 5\n")  # ... and the intent was left behind by the crash
    log = home.log.open()
    try:
        assert log.add([b"after the crash"]) == [3]
    finally:
        log.close()


def test_config_is_written_by_a_toml_writer(tmp_path: Path) -> None:
    """An origin with a quote used to break config.toml (it was written with f-strings)."""
    home = Home.init(tmp_path / "home", origin='quote"d.overt.example/log')
    assert Home(home.path).log.config.origin == 'quote"d.overt.example/log'


def test_fsck_and_recover_say_what_a_rolled_back_home_holds(tmp_path: Path) -> None:
    """The database, log-head, log-fsck and the published checkpoint all restored from a copy taken at size 3,
    after 3 more entries: fsck must say so (exit 1), and recover which entries a checkpoint verified."""
    from tests.cli.test_cli import overt

    home = Home.init(tmp_path / "home", origin="guard.overt.example/log")
    grow(home, 0, 3)
    assert home.log.fsck(full=True).ok
    saved = tmp_path / "backup"
    backup(home, saved)
    signed = [home.log.files.head, home.log.paths.fsck_mark, home.log.paths.public / "checkpoint"]
    kept = {f: f.read_bytes() for f in signed}
    grow(home, 3, 3)
    assert home.log.fsck(full=True).ok
    restore(home, saved)
    for f, data in kept.items():
        f.write_bytes(data)
    for full in (True, False):
        report = home.log.fsck(full=full)
        assert not report.ok and report.tree_size == 3
        assert any("hold 6 entries but the log database only 3" in p for p in report.database)
    H = ("--home", str(home.path))
    r = overt("log", "fsck", "--full", *H)
    assert r.returncode == 1 and "DATABASE the log's entry bundles hold 6" in r.stdout, r.stdout
    assert r.stdout.splitlines()[-1] == "the log is damaged; see above"
    r = overt("log", "recover", *H)
    assert r.returncode == 0, r.stderr
    said = r.stdout.splitlines()[0]
    assert "size 6" in said and "all verified" not in r.stdout
    assert "its first 3 entries verified against the published checkpoint (size 3)" in said
    assert "no signed checkpoint this log still has covers the other 3" in said
    assert overt("log", "fsck", "--full", *H).returncode == 0
