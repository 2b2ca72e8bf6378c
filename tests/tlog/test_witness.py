"""tlog-witness add-checkpoint over real HTTP: every status code of the spec, persistence, monitoring."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import httpx
import pytest

from overt.server.runner import BackgroundServer
from overt.server.witness import create_app
from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.merkle import EMPTY_ROOT
from overt.tlog.note import Ed25519Signer, Note, verified_by
from overt.tlog.sequencer import TileLog
from overt.tlog.stores import SQLiteStore
from overt.tlog.witness import AddCheckpointRequest, Witness

# Test-only keys, fixed so fixtures are reproducible.
LOG = Ed25519Signer.create("test.overt.example/log", b"\x01" * 32)
WIT = CosignatureSigner.create("witness.test.overt.example", b"\x02" * 32, now=lambda: 1_700_000_000)


@pytest.fixture
def log(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "log").mkdir()
    t = TileLog(tmp_path / "log", SQLiteStore(tmp_path / "db"), durable=False)
    yield t
    t.close()


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = Witness(WIT, [LOG.verifier()], tmp_path / "witness.json")
    with BackgroundServer(create_app(w)) as srv, httpx.Client(base_url=srv.url) as http:
        yield w, http


def checkpoint(log: TileLog, signer: Ed25519Signer = LOG) -> bytes:
    cp = Checkpoint(origin=LOG.name, tree_size=log.state.tree_size, root_hash=log.state.root_hash)
    return SignedCheckpoint.sign(cp, signer).to_bytes()


def post(http: httpx.Client, old: int, proof: list[bytes], cp: bytes) -> httpx.Response:
    body = AddCheckpointRequest(old_size=old, proof=tuple(proof), checkpoint=cp).to_bytes()
    return http.post("/add-checkpoint", content=body)


def test_cosigns_and_advances(server, log: TileLog) -> None:  # type: ignore[no-untyped-def]
    w, http = server
    log.append([b"a", b"b", b"c"])
    cp3 = checkpoint(log)
    r = post(http, 0, [], cp3)
    assert r.status_code == 200, r.text
    note = Note.from_bytes(cp3).with_signatures(*Note.from_bytes(b"x\n\n" + r.content).signatures)
    assert verified_by(note, [WIT.verifier()]) == [WIT.verifier()]
    ts = WIT.verifier().timestamp_of(note.text.encode(), note.signatures[-1].signature)
    assert ts == 1_700_000_000
    # Persisted before answering: a new witness on the same state file knows size 3.
    assert Witness(WIT, [LOG.verifier()], w.state_path).latest(LOG.name) is not None
    log.append([b"d", b"e"])
    r = post(http, 3, log.consistency_proof(3, 5), checkpoint(log))
    assert r.status_code == 200, r.text
    origin_hash = hashlib.sha256(LOG.name.encode()).hexdigest()
    got = http.get(f"/{origin_hash}/checkpoint")
    assert got.status_code == 200
    assert SignedCheckpoint.from_bytes(got.content).checkpoint.tree_size == 5
    assert http.get(f"/{'0' * 64}/checkpoint").status_code == 404


def test_conflict_returns_latest_size(server, log: TileLog) -> None:  # type: ignore[no-untyped-def]
    _, http = server
    log.append([b"a", b"b"])
    assert post(http, 0, [], checkpoint(log)).status_code == 200
    log.append([b"c"])
    r = post(http, 0, [], checkpoint(log))
    assert r.status_code == 409
    assert r.headers["content-type"] == "text/x.tlog.size"
    assert r.text == "2\n"


def test_unknown_origin_is_404(server, log: TileLog) -> None:  # type: ignore[no-untyped-def]
    _, http = server
    log.append([b"a"])
    stranger = Ed25519Signer.create("other.example/log", b"\x03" * 32)
    cp = SignedCheckpoint.sign(
        Checkpoint(origin=stranger.name, tree_size=1, root_hash=log.state.root_hash), stranger
    )
    assert post(http, 0, [], cp.to_bytes()).status_code == 404


def test_untrusted_or_bad_signature_is_403(server, log: TileLog) -> None:  # type: ignore[no-untyped-def]
    _, http = server
    log.append([b"a"])
    impostor = Ed25519Signer.create(LOG.name, b"\x04" * 32)
    assert post(http, 0, [], checkpoint(log, impostor)).status_code == 403
    good = checkpoint(log)
    sig_start = good.index("— ".encode())
    line = good[sig_start:]
    raw = bytearray(base64.b64decode(line.split(b" ")[2]))
    raw[10] ^= 1
    bad = (
        good[:sig_start]
        + line.split(b" ")[0]
        + b" "
        + line.split(b" ")[1]
        + b" "
        + base64.b64encode(raw)
        + b"\n"
    )
    assert post(http, 0, [], bad).status_code == 403


def test_malformed_and_old_size_too_big_are_400(server, log: TileLog) -> None:  # type: ignore[no-untyped-def]
    _, http = server
    log.append([b"a"])
    assert http.post("/add-checkpoint", content=b"garbage").status_code == 400
    assert http.post("/add-checkpoint", content=b"old 01\n\n" + checkpoint(log)).status_code == 400
    assert post(http, 2, [], checkpoint(log)).status_code == 400


def test_unprocessable_is_422(server, log: TileLog) -> None:  # type: ignore[no-untyped-def]
    _, http = server
    # Size 0 with a root that is not the empty-tree root.
    cp0 = SignedCheckpoint.sign(Checkpoint(origin=LOG.name, tree_size=0, root_hash=b"\x00" * 32), LOG)
    assert post(http, 0, [], cp0.to_bytes()).status_code == 422
    # Non-empty proof from size 0.
    log.append([b"a", b"b"])
    assert post(http, 0, [EMPTY_ROOT], checkpoint(log)).status_code == 422
    assert post(http, 0, [], checkpoint(log)).status_code == 200
    # A proof that does not verify.
    log.append([b"c", b"d"])
    assert post(http, 2, [b"\x00" * 32], checkpoint(log)).status_code == 422
    # Same size, different root: a fork.
    fork = SignedCheckpoint.sign(Checkpoint(origin=LOG.name, tree_size=2, root_hash=b"\x05" * 32), LOG)
    assert post(http, 2, [], fork.to_bytes()).status_code == 422


def test_oversized_request_is_413(server) -> None:  # type: ignore[no-untyped-def]
    _, http = server
    assert http.post("/add-checkpoint", content=b"x" * 70_000).status_code == 413
