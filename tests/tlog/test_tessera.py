"""The Tessera POSIX test log: verify its checkpoints, recompute its tiles and bundles byte for byte, and
reproduce its checkpoint signatures by appending the same 15 entries with its published test key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
from overt.tlog.client import LogClient, directory_fetcher
from overt.tlog.merkle import leaf_hash
from overt.tlog.note import parse_ed25519_skey, parse_ed25519_vkey
from overt.tlog.policy import Policy
from overt.tlog.sequencer import TileLog
from overt.tlog.stores import SQLiteStore
from overt.tlog.tiles import decode_bundle, decode_tile, entries_path, tile_path

TESSERA = Path(__file__).parent.parent / "vectors" / "tessera-log"
VKEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"
# Tessera's published *test* signer key (testdata only; not a secret).
SKEY = "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg"
WORDS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eit",
    "nain",
    "ten",
    "ileven",
    "twelf",
    "threeten",
    "fourten",
    "fivten",
]


@pytest.mark.parametrize("size", range(16))
def test_checkpoints_verify(size: int) -> None:
    signed = SignedCheckpoint.from_bytes((TESSERA / f"checkpoint.{size}").read_bytes())
    signed.verify([parse_ed25519_vkey(VKEY)])
    assert signed.checkpoint.tree_size == size


@pytest.mark.parametrize("size", range(1, 16))
def test_tiles_and_bundles_recomputed(size: int) -> None:
    tile = decode_tile((TESSERA / tile_path(0, 0, size)).read_bytes(), size)
    assert tile == [leaf_hash(w.encode()) for w in WORDS[:size]]
    bundle = (TESSERA / entries_path(0, size)).read_bytes()
    assert decode_bundle(bundle, size) == [w.encode() for w in WORDS[:size]]


def test_client_verifies_every_entry() -> None:
    policy = Policy.from_bytes(f"log {VKEY}\nquorum none\n".encode())
    client = LogClient(directory_fetcher(TESSERA), policy)
    tree = client.update()
    assert tree.checkpoint.checkpoint.tree_size == 15
    for i, w in enumerate(WORDS):
        client.verify_inclusion(w.encode(), i, tree.checkpoint)
        assert client.find_entry(w.encode(), 15) == i


def test_appending_same_entries_reproduces_log(tmp_path: Path) -> None:
    signer = parse_ed25519_skey(SKEY)
    (tmp_path / "log").mkdir()
    log = TileLog(tmp_path / "log", SQLiteStore(tmp_path / "db"))
    for i, w in enumerate(WORDS, 1):
        log.append([w.encode()])
        cp = Checkpoint(origin=signer.name, tree_size=i, root_hash=log.state.root_hash)
        ours = SignedCheckpoint.sign(cp, signer).to_bytes()
        assert ours == (TESSERA / f"checkpoint.{i}").read_bytes()
    log.close()
    diff = subprocess.run(["diff", "-r", TESSERA / "tile", tmp_path / "log" / "tile"], capture_output=True)
    assert diff.returncode == 0, diff.stdout.decode()
    assert sorted(
        p.relative_to(tmp_path / "log") for p in (tmp_path / "log" / "tile").rglob("*") if p.is_file()
    ) == sorted(p.relative_to(TESSERA) for p in (TESSERA / "tile").rglob("*") if p.is_file())
