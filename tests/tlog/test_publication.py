"""What witnesses return is filtered, the size-0 checkpoint is published at init, and a running server follows
policy changes without a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from overt.errors import TransportError
from overt.home import Home
from overt.server.log import create_app
from overt.server.runner import BackgroundServer, free_port
from overt.server.witness import create_app as witness_app
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.client import verify_checkpoint
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.note import Signature, parse_ed25519_vkey
from overt.tlog.policy import Group, Policy, PolicyWitness
from overt.tlog.proof import TlogProof
from overt.tlog.witness import Witness, WitnessClient

ORIGIN = "publish.overt.example/log"
# Test-only witness keys, fixed so runs are reproducible.
W1 = CosignatureSigner.create("w1.test.overt.example", b"\x11" * 32)
W2 = CosignatureSigner.create("w2.test.overt.example", b"\x12" * 32)


def junk_witness(real: Witness, extra: list[str]) -> FastAPI:
    """A witness that answers its real cosignature buried among ``extra`` lines."""
    app = FastAPI()

    @app.post("/add-checkpoint")
    async def add(request: Request) -> Response:
        line = real.add_checkpoint(await request.body()).decode()
        return Response("".join(extra[:1]) + line + "".join(extra[1:]), media_type="text/plain")

    return app


def set_policy(home: Home, witnesses: list[PolicyWitness], quorum: str, k: int = 1) -> None:
    groups = (Group(name="q", threshold=k, members=tuple(w.name for w in witnesses)),) if witnesses else ()
    home.log.save_policy(
        Policy(
            logs=home.log.policy().logs,
            witnesses=tuple(witnesses),
            groups=groups,
            quorum=quorum if groups else "none",
        )
    )


def test_init_publishes_the_size_zero_checkpoint(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "home", origin=ORIGIN)
    cp = SignedCheckpoint.from_bytes((home.log.paths.public / "checkpoint").read_bytes())
    assert cp.checkpoint.tree_size == 0
    verify_checkpoint(cp, Policy.from_bytes((home.log.paths.public / "policy").read_bytes()))


def test_junk_and_unknown_cosignature_lines_are_dropped(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "home", origin=ORIGIN)
    vkey = (home.log.paths.public / "vkey").read_text().strip()
    real = Witness(W1, [parse_ed25519_vkey(vkey)], tmp_path / "w1.json")
    forged = Signature(name=W2.name, key_id=W2.key_id, signature=b"\x00" * 72).to_line()
    unknown = [
        Signature(name=f"stranger{i}.example", key_id=i, signature=bytes([i % 256]) * 72).to_line()
        for i in range(100)
    ]
    port = free_port()
    pws = [
        PolicyWitness(name="w1", verifier=W1.verifier(), url=f"http://127.0.0.1:{port}"),
        PolicyWitness(name="w2", verifier=W2.verifier(), url=f"http://127.0.0.1:{free_port()}"),  # down
    ]
    set_policy(home, pws, "q", k=1)  # 'any'
    with BackgroundServer(junk_witness(real, [forged, *unknown]), port=port):
        log = home.log.open()
        try:
            log.add([b"an entry"])
            result = log.publish()
        finally:
            log.close()
    assert result.published and result.cosigners == {"w1"}
    published = (home.log.paths.public / "checkpoint").read_bytes()
    signed = SignedCheckpoint.from_bytes(published)
    # Exactly the log's line and w1's real cosignature: the forged w2 line and the 100 strangers are gone.
    assert [s.name for s in signed.note.signatures] == [ORIGIN, W1.name]
    assert verify_checkpoint(signed, home.log.policy()) == {"w1"}


def test_witness_answering_only_junk_counts_as_failure(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "home", origin=ORIGIN)
    app = FastAPI()

    @app.post("/add-checkpoint")
    async def add(request: Request) -> Response:
        line = Signature(name=W1.name, key_id=W1.key_id, signature=b"\x01" * 72).to_line()
        return Response(line, media_type="text/plain")

    port = free_port()
    set_policy(home, [PolicyWitness(name="w1", verifier=W1.verifier(), url=f"http://127.0.0.1:{port}")], "q")
    with BackgroundServer(app, port=port):
        log = home.log.open()
        try:
            log.add([b"x"])
            result = log.publish()
        finally:
            log.close()
    assert not result.published and "w1" in result.failures
    assert (
        SignedCheckpoint.from_bytes((home.log.paths.public / "checkpoint").read_bytes()).checkpoint.tree_size
        == 0
    )


def test_a_witness_with_a_malformed_url_fails_with_its_reason() -> None:
    """A witness URL httpx cannot parse (written into a policy by hand) is that witness's failure, with its
    reason: :meth:`LocalLog.cosign` records it and publishes without that witness, never a traceback."""
    client = WitnessClient("w1", "http://[::1")
    with pytest.raises(TransportError, match=r"^witness w1 has an invalid URL http://\[::1/add-checkpoint: "):
        client.add_checkpoint(0, [], b"a checkpoint")


def test_running_server_follows_a_policy_change(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "home", origin=ORIGIN)
    real = Witness(
        W1, [parse_ed25519_vkey((home.log.paths.public / "vkey").read_text().strip())], tmp_path / "w1.json"
    )
    port = free_port()
    with BackgroundServer(create_app(home, wait_timeout=1.0)) as srv, httpx.Client(base_url=srv.url) as http:
        assert http.post("/add", content=b"before", timeout=30).status_code == 200
        # The operator now requires witness w1, which is down: the running server must stop publishing.
        set_policy(
            home, [PolicyWitness(name="w1", verifier=W1.verifier(), url=f"http://127.0.0.1:{port}")], "q"
        )
        r = http.post("/add", content=b"after", timeout=30)
        assert r.status_code == 503, r.text
        with BackgroundServer(witness_app(real), port=port):
            r = http.post("/add", content=b"after", timeout=30)
            assert r.status_code == 200, r.text
        proof = r.json()["proof"]
        cp = TlogProof.from_bytes(proof.encode()).checkpoint
        assert verify_checkpoint(cp, home.log.policy()) == {"w1"}
