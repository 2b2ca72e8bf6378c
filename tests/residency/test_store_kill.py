"""SIGKILL while SQLite group commits are in flight: only whole batches remain, each with exactly its rows
and a blob that hashes to its name, and every batch a writer was answered as stored is there."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from overt.home import Home
from overt.residency.config import root_of
from overt.residency.stores import event_rows, open_store, sha256_hex
from overt.residency.telemetry import parse_batch

TENANTS = ("t-00000000000000a1", "t-00000000000000b0", "t-00000000000000c3")

# Six writer threads on one store, batches of mixed sizes, one in ten refused half way by a trigger, one
# in five sent by two tenants at once (a shared blob); each answer printed as it comes.
WRITERS = """
import os, random, sys, threading
from pathlib import Path
from overt.home import Home
from overt.residency.stores import open_store
from overt.residency.telemetry import parse_batch
from tests.residency.test_stores import make_raw
home, round_, threads, per = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tenants = sys.argv[5].split(",")
store = open_store(Home(home), "CH")
def say(line):
    os.write(1, (line + "\\n").encode())
def run(t):
    rng = random.Random(round_ * 100 + t)
    for i in range(per):
        kind = rng.random()
        batch_id = f"r{round_}-t{t}-{i:04d}" + ("-bad" if kind < 0.1 else "")
        raw = make_raw(batch_id, rng.choice([20, 200, 700, 1500]), salt="shared" if kind > 0.8 else "")
        tenant = rng.randrange(3)
        for who in [tenant, (tenant + 1) % 3][: 2 if kind > 0.8 else 1]:
            try:
                stored = store.write_batch(tenants[who], parse_batch(raw), raw)
                say(f"S {tenants[who]} {batch_id} {stored.sha256}")
            except Exception as e:
                say(f"E {tenants[who]} {batch_id} {type(e).__name__}")
workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
say("DONE")
"""


def whole_batches(root: Path) -> dict[tuple[str, str], str]:
    """Every batch of the store read behind its back: whole (its rows are exactly those its blob gives),
    its blob hashing to its name, no event row without its batch; ``{(tenant, batch_id): sha256}``."""
    db = sqlite3.connect(root / "store.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = db.execute(
            "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM batches b"
            " WHERE b.tenant = e.tenant AND b.batch_id = e.batch_id)"
        ).fetchone()[0]
        assert orphans == 0, f"{orphans} event rows without their batch"
        found = {}
        for tenant, batch_id, digest, events in db.execute(
            "SELECT tenant, batch_id, sha256, events FROM batches"
        ):
            raw = (root / "blobs" / digest[:2] / digest).read_bytes()
            assert sha256_hex(raw) == digest, f"the blob of {batch_id} does not hash to its name"
            rows = db.execute(
                "SELECT * FROM events WHERE tenant = ? AND batch_id = ? ORDER BY seq", (tenant, batch_id)
            ).fetchall()
            assert len(rows) == events and rows == event_rows(tenant, parse_batch(raw)), batch_id
            found[(tenant, batch_id)] = digest
        return found
    finally:
        db.close()


def read_answers(child: subprocess.Popen[bytes], lines: list[str], first: threading.Event) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        lines.append(line.decode().rstrip("\n"))
        if line.startswith(b"S "):
            first.set()


@pytest.mark.slow
def test_sigkill_during_group_commits_leaves_whole_batches(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "home")
    open_store(home, "CH", create=True).close()
    root = root_of(home, "CH")
    db = sqlite3.connect(root / "store.db")
    db.executescript(
        "CREATE TRIGGER bad BEFORE INSERT ON events WHEN NEW.batch_id LIKE '%-bad' AND NEW.seq = 5 "
        "BEGIN SELECT RAISE(ABORT, 'injected'); END;"
    )
    db.close()
    rng = random.Random(15)
    answered: dict[tuple[str, str], str] = {}
    killed_mid_run = 0
    for round_ in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITERS, str(home.path), str(round_), "6", "60", ",".join(TENANTS)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        lines: list[str] = []
        first = threading.Event()
        reader = threading.Thread(target=read_answers, args=(child, lines, first), daemon=True)
        reader.start()
        assert first.wait(60), "the writers stored nothing"
        time.sleep(rng.uniform(0.0, 1.0))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        reader.join(30)
        assert child.stdout is not None
        child.stdout.close()
        killed_mid_run += "DONE" not in lines
        for line in lines:
            if line.startswith("S "):
                _, tenant, batch_id, digest = line.split()
                assert not batch_id.endswith("-bad"), f"a refused batch was answered stored: {line}"
                answered[(tenant, batch_id)] = digest
        stored = whole_batches(root)
        assert not [k for k in stored if k[1].endswith("-bad")], "rows of a refused batch"
        lost = {k: v for k, v in answered.items() if stored.get(k) != v}
        assert not lost, f"round {round_}: answered stored, then gone after SIGKILL: {lost}"
        with open_store(home, "CH") as store:  # it reopens; every blob is read back and checked
            for tenant in TENANTS:
                assert len(list(store.export_batches(tenant))) == len(store.batch_digests(tenant))
    assert killed_mid_run >= 3, f"only {killed_mid_run} kills landed while the writers ran"
    assert len(answered) > 40
