"""``overt witness serve`` as a log meets it: one process per home, and the C2SP protocol under a strict client.

The client here is written from tlog-witness alone, modelled on sigsum-go and the transparency-dev witness
client that Tessera logs use: a 409 counts as "the witness is at size N" only if its Content-Type is exactly
``text/x.tlog.size`` and its body is exactly one decimal without leading zeroes and a newline. Anything else
is a refusal, so a witness that gets the header slightly wrong can never be caught up by such a log.
"""

from __future__ import annotations

import base64
import hashlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from overt.errors import ConfigError, StorageError
from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
from overt.tlog.cosignature import parse_cosignature_skey
from overt.tlog.note import Ed25519Signer, Note, verified_by
from overt.tlog.sequencer import TileLog
from overt.tlog.stores import SQLiteStore
from overt.tlog.witness import load_witness

# Test-only keys, fixed so fixtures are reproducible.
LOG = Ed25519Signer.create("serve.test.overt.example/log", b"\x11" * 32)
STRANGER = Ed25519Signer.create("other.test.overt.example/log", b"\x12" * 32)
IMPOSTOR = Ed25519Signer.create(LOG.name, b"\x13" * 32)

CLI = [sys.executable, "-m", "overt"]
SIZE_BODY = re.compile(rb"(0|[1-9][0-9]*)\n")


def overt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str


def start_serve(home: Path) -> Served:
    """Start ``overt witness serve`` and wait until it answers (or has exited)."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "witness", "serve", "--home", str(home), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/{'0' * 64}/checkpoint", timeout=5)
            return Served(proc, url)
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"witness serve did not come up: rc={proc.returncode} {out!r} {err!r}")


def stop(served: Served) -> None:
    if served.proc.returncode is None:
        served.proc.terminate()
        served.proc.communicate(timeout=60)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "witness"
    assert overt("witness", "init", "--home", str(h), "--name", "w.serve.test.overt.example").returncode == 0
    r = overt("witness", "add-log", "--home", str(h), LOG.verifier().vkey())
    assert r.returncode == 0, r.stderr
    return h


@pytest.fixture
def served(home: Path) -> Iterator[Served]:
    s = start_serve(home)
    yield s
    stop(s)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[TileLog]:
    (tmp_path / "log").mkdir()
    t = TileLog(tmp_path / "log", SQLiteStore(tmp_path / "db"), durable=False)
    yield t
    t.close()


# --- The strict client ---------------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"{status} {body[:100]!r}")
        self.status = status


class Conflict(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"witness is at {size}")
        self.size = size


def add_checkpoint(http: httpx.Client, url: str, old: int, proof: list[bytes], cp: bytes) -> bytes:
    """One add-checkpoint call; the body is built from the spec, not from overt's encoder."""
    body = f"old {old}\n".encode() + b"".join(base64.b64encode(p) + b"\n" for p in proof) + b"\n" + cp
    r = http.post(f"{url}/add-checkpoint", content=body)
    if r.status_code == 200:
        return r.content
    if r.status_code == 409 and r.headers.get("Content-Type") == "text/x.tlog.size":
        m = SIZE_BODY.fullmatch(r.content)
        if m:
            raise Conflict(int(m[1]))
    raise Refused(r.status_code, r.content)


def cosign(http: httpx.Client, url: str, log: TileLog, believed: int) -> tuple[bytes, int]:
    """What a log does: try from the size it believes, learn the witness's size from a 409, retry once."""
    cp = checkpoint(log)
    try:
        return add_checkpoint(http, url, believed, proof_from(log, believed), cp), 0
    except Conflict as c:
        return add_checkpoint(http, url, c.size, proof_from(log, c.size), cp), c.size


def proof_from(log: TileLog, old: int) -> list[bytes]:
    size = log.state.tree_size
    return [] if old in (0, size) else log.consistency_proof(old, size)


def checkpoint(log: TileLog, signer: Ed25519Signer = LOG) -> bytes:
    cp = Checkpoint(origin=signer.name, tree_size=log.state.tree_size, root_hash=log.state.root_hash)
    return SignedCheckpoint.sign(cp, signer).to_bytes()


def assert_cosigned(cp: bytes, lines: bytes, home: Path) -> None:
    """Each line is ``— name sig\\n``; concatenated to the checkpoint they verify under the witness key."""
    assert lines.endswith(b"\n") and all(line.startswith("— ".encode()) for line in lines.splitlines())
    witness_key = parse_cosignature_skey((home / "witness.skey").read_text()).verifier()
    note = Note.from_bytes(cp + lines)
    assert verified_by(note, [witness_key]) == [witness_key]
    assert witness_key.timestamp_of(note.text.encode(), note.signatures[-1].signature)


# --- Tests ---------------------------------------------------------------------------------------------


def test_strict_client_catches_up_through_409_and_sees_each_refusal(
    served: Served, home: Path, log: TileLog
) -> None:
    url = served.url
    with httpx.Client(timeout=30) as http:
        # 200: a fresh witness, a client that assumes nothing.
        log.append([b"a", b"b", b"c"])
        lines, learned = cosign(http, url, log, believed=0)
        assert learned == 0
        assert_cosigned(checkpoint(log), lines, home)
        # 409 then 200: the log restarted and forgot the witness's size (Tessera starts from 0).
        log.append([b"d", b"e"])
        lines, learned = cosign(http, url, log, believed=0)
        assert learned == 3
        assert_cosigned(checkpoint(log), lines, home)
        r = http.post(f"{url}/add-checkpoint", content=b"old 0\n\n" + checkpoint(log))
        assert (r.status_code, r.headers.get("Content-Type"), r.content) == (409, "text/x.tlog.size", b"5\n")
        fork = Checkpoint(origin=LOG.name, tree_size=5, root_hash=b"\x05" * 32)  # same size, other root
        # Every other answer is a refusal with its own status, never mistaken for a size.
        refusals = {
            400: b"old 6\n\n" + checkpoint(log),
            403: b"old 5\n\n" + checkpoint(log, IMPOSTOR),
            404: b"old 0\n\n" + checkpoint(log, STRANGER),
            413: b"x" * 70_000,
            422: b"old 5\n\n" + SignedCheckpoint.sign(fork, LOG).to_bytes(),
        }
        for status, body in refusals.items():
            r = http.post(f"{url}/add-checkpoint", content=body)
            assert r.status_code == status, (status, r.text)
            assert r.headers.get("Content-Type") != "text/x.tlog.size"
        # Monitoring: the latest cosigned checkpoint, with the log's and the witness's signatures; 404 otherwise.
        got = http.get(f"{url}/{hashlib.sha256(LOG.name.encode()).hexdigest()}/checkpoint")
        assert got.status_code == 200
        signed = SignedCheckpoint.from_bytes(got.content)
        assert signed.checkpoint.tree_size == 5
        assert verified_by(signed.note, [LOG.verifier()]) == [LOG.verifier()]
        stranger_hash = hashlib.sha256(STRANGER.name.encode()).hexdigest()
        assert http.get(f"{url}/{stranger_hash}/checkpoint").status_code == 404


def test_second_serve_on_one_home_is_refused_until_the_first_dies(home: Path) -> None:
    first = start_serve(home)
    try:
        second = subprocess.Popen(
            [*CLI, "witness", "serve", "--home", str(home), "--port", str(free_port())],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, err = second.communicate(timeout=60)
        finally:
            if second.poll() is None:
                second.kill()
                second.communicate()
        assert second.returncode == 2  # operational: the home is in use
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert f"pid {first.proc.pid}" in err and str(home / "witness.lock") in err
        assert first.proc.poll() is None
        # A crash (no cleanup at all) leaves no stale lock: the kernel drops it with the process.
        first.proc.send_signal(signal.SIGKILL)
        first.proc.communicate(timeout=60)
        third = start_serve(home)
        stop(third)
    finally:
        stop(first)


def test_a_witness_opened_on_a_home_holds_it_until_closed(home: Path) -> None:
    first = load_witness(home)
    with pytest.raises(ConfigError, match=r"witness\.lock"):
        load_witness(home)
    first.close()
    with load_witness(home) as again:
        assert again.logs


@pytest.mark.parametrize(
    "state",
    [
        b"[]",
        b'{"a": {"size": 1, "root": "AA==", "checkpoint": ""}, "a": {}}',
        b'{"serve.test.overt.example/log": {"size": "3", "root": "", "checkpoint": ""}}',
        b'{"serve.test.overt.example/log": {"size": 3, "root": "AAAA", "checkpoint": ""}}',
        b'{"serve.test.overt.example/log": {"size": 3, "checkpoint": ""}}',
    ],
)
def test_corrupt_state_is_a_clean_error_that_releases_the_lock(home: Path, state: bytes) -> None:
    (home / "state.json").write_bytes(state)
    with pytest.raises(StorageError, match=r"state\.json is corrupt"):
        load_witness(home)
    (home / "state.json").unlink()
    load_witness(home).close()


def test_add_log_outside_a_witness_home_is_a_clean_error(tmp_path: Path) -> None:
    for where in (tmp_path / "missing", tmp_path):
        r = overt("witness", "add-log", "--home", str(where), LOG.verifier().vkey())
        assert r.returncode == 2
        assert "Traceback" not in r.stderr
        assert f"{where} is not a witness home" in r.stderr


def test_deleting_the_lock_file_does_not_let_a_second_witness_in(tmp_path: Path) -> None:
    """The tester's split view: rm witness.lock while the first serves, then start a second on the home."""
    from overt.errors import ConfigError
    from overt.tlog.witness import init_witness, load_witness

    init_witness(tmp_path / "w", "w.test.overt.example")
    with load_witness(tmp_path / "w"):
        (tmp_path / "w" / "witness.lock").unlink()
        with pytest.raises(ConfigError, match="in use by another process"):
            load_witness(tmp_path / "w")


def test_deleting_the_log_lock_file_does_not_let_a_second_writer_in(tmp_path: Path) -> None:
    from overt.errors import ConfigError
    from overt.home import Home

    home = Home.init(tmp_path / "home", origin="lock.overt.example/log")
    log = home.log.open()
    try:
        (home.path / "log.lock").unlink()
        with pytest.raises(ConfigError, match="being written by another process"):
            home.log.open(wait=0.2)
    finally:
        log.close()
    home.log.open(wait=0.2).close()
