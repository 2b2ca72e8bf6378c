"""Crash safety with real SIGKILLs: no acknowledged entry is lost, and after restart the log never signs a
checkpoint inconsistent with one it signed before."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from overt.home import Home
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.merkle import verify_consistency

# The child appends batches forever; after each batch is committed it prints "ack <index> <entry hex>" for
# every entry, then signs and publishes and prints the checkpoint. It is killed at a random moment.
CHILD = r"""
import os, sys
from pathlib import Path
from overt.home import Home
home = Home(Path(sys.argv[1]))
log = home.log.open()
rnd = int(sys.argv[2])
n = 0
while True:
    batch = [os.urandom(8) + f"{rnd}-{n + i}".encode() for i in range(1 + (n * 7919) % 300)]
    n += len(batch)
    indices = log.add(batch)
    sys.stdout.write("".join(f"ack {i} {e.hex()}\n" for i, e in zip(indices, batch)))
    sys.stdout.flush()
    result = log.publish()
    sys.stdout.write("cp " + result.checkpoint.to_bytes().hex() + "\n")
    sys.stdout.flush()
"""


def test_sigkill_loses_nothing_and_stays_consistent(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "home", origin="crash.overt.example/log")
    acked: dict[int, bytes] = {}
    signed: list[SignedCheckpoint] = []
    rng = random.Random(1234)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for round_ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home.path), str(round_)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert child.stdout is not None
        want = rng.randrange(50, 1500)
        seen = 0
        while seen < want:
            line = child.stdout.readline()
            assert line, "child exited early"
            seen += 1
            kind, *rest = line.split()
            if kind == "ack":
                acked[int(rest[0])] = bytes.fromhex(rest[1])
            else:
                signed.append(SignedCheckpoint.from_bytes(bytes.fromhex(rest[0])))
        time.sleep(rng.random() * 0.03)  # let it run into the middle of some write
        child.send_signal(signal.SIGKILL)
        child.wait()
        # Anything it printed before dying was acknowledged too.
        for line in child.stdout.read().splitlines():
            kind, *rest = line.split()
            if kind == "ack" and len(rest) == 2 and len(rest[1]) % 2 == 0:
                acked[int(rest[0])] = bytes.fromhex(rest[1])
            elif kind == "cp" and len(rest) == 1:
                with contextlib.suppress(ValueError):  # a line cut by the kill
                    signed.append(SignedCheckpoint.from_bytes(bytes.fromhex(rest[0])))
        child.stdout.close()
        # Restart: every acknowledged entry is where it was acknowledged, and a new signature is consistent
        # with every checkpoint signed so far.
        log = home.log.open()
        try:
            assert log.tree_size >= max(acked) + 1
            for index, entry in acked.items():
                assert log.tiles.entry(index) == entry
            now = log.sign().checkpoint
            for old in (s.checkpoint for s in signed):
                assert old.tree_size <= now.tree_size
                if 0 < old.tree_size < now.tree_size:
                    proof = log.tiles.consistency_proof(old.tree_size, now.tree_size)
                    verify_consistency(old.tree_size, now.tree_size, old.root_hash, now.root_hash, proof)
                elif old.tree_size == now.tree_size:
                    assert old.root_hash == now.root_hash
        finally:
            log.close()
    assert len(acked) > 400
