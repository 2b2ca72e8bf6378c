"""The log's HTTP write API: batching, deduplication, tlog-proofs, limits, witness quorum and retries."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from overt.home import Home, LogConfig
from overt.server.log import create_app
from overt.server.runner import BackgroundServer, free_port
from overt.server.witness import create_app as witness_app
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.client import LogClient, http_fetcher, verify_tlog_proof
from overt.tlog.policy import Policy, PolicyWitness, quorum_groups
from overt.tlog.proof import TlogProof
from overt.tlog.witness import init_witness, load_witness, trust_log


def make_home(tmp_path: Path, **cfg: object) -> Home:
    return Home.init(tmp_path / "home", config=LogConfig(origin="test.overt.example/log", **cfg))  # type: ignore[arg-type]


def test_add_returns_index_and_verifiable_proof(tmp_path: Path) -> None:
    home = make_home(tmp_path, batch_size=64, batch_interval=0.05)
    with BackgroundServer(create_app(home)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        entries = [f"entry {i}".encode() for i in range(40)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda e: http.post("/add", content=e).json(), entries))
        indices = [a["index"] for a in answers]
        assert sorted(indices) == list(range(40))
        policy = Policy.from_bytes(http.get("/log/policy").content)
        for e, a in zip(entries, answers, strict=True):
            proof = TlogProof.from_bytes(a["proof"].encode())
            assert proof.index == a["index"]
            verify_tlog_proof(proof, e, policy)
        # Deduplication: the same entry keeps its index.
        assert http.post("/add", content=entries[7]).json()["index"] == answers[7]["index"]
        # Static files with the right headers.
        cp = http.get("/log/checkpoint")
        assert cp.headers["cache-control"].startswith("no-cache")
        assert cp.headers["content-type"].startswith("text/plain")
        tile = http.get("/log/tile/0/000.p/40")  # a partial tile: the full one does not exist yet
        assert tile.status_code == 200 and tile.headers["content-type"] == "application/octet-stream"
        assert tile.headers["cache-control"] == "public, max-age=31536000, immutable"
        missing = http.get("/log/tile/0/001")
        assert missing.status_code == 404 and "immutable" not in missing.headers.get("cache-control", "")
        tree = LogClient(http_fetcher(f"{srv.url}/log", http), policy).update()
        assert tree.checkpoint.checkpoint.tree_size == 40


def test_limits(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    with BackgroundServer(create_app(home)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        assert http.post("/add", content=b"").status_code == 400
        r = http.post("/add", content=b"x" * 65_536)
        assert r.status_code == 413
        assert "65535" in r.json()["error"]
        assert http.post("/add", content=b"x" * 65_535).status_code == 200
        assert http.get("/log/tile/0/999").status_code == 404


def test_publishes_only_with_quorum_and_retries_down_witness(tmp_path: Path) -> None:
    home = make_home(tmp_path, batch_interval=0.05)
    wdir = tmp_path / "w1"
    init_witness(wdir, "w1.test.overt.example")
    trust_log(wdir, (home.log.paths.public / "vkey").read_text().strip())
    witness = load_witness(wdir)
    port = free_port()
    pw = PolicyWitness(name="w1", verifier=witness.signer.verifier(), url=f"http://127.0.0.1:{port}")
    groups, quorum = quorum_groups(("w1",), "all")
    home.log.save_policy(Policy(logs=home.log.policy().logs, witnesses=(pw,), groups=groups, quorum=quorum))
    with BackgroundServer(create_app(home, wait_timeout=1.0)) as srv, httpx.Client(base_url=srv.url) as http:
        r = http.post("/add", content=b"first", timeout=30)
        assert r.status_code == 503
        assert "w1" in r.json()["witness_failures"]
        # Nothing beyond the size-0 checkpoint of 'overt init' is published without the quorum.
        assert SignedCheckpoint.from_bytes(http.get("/log/checkpoint").content).checkpoint.tree_size == 0
        with BackgroundServer(witness_app(witness), port=port):
            r = http.post("/add", content=b"first", timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["index"] == 0
            proof = TlogProof.from_bytes(r.json()["proof"].encode())
            assert verify_tlog_proof(proof, b"first", home.log.policy()) == frozenset({"w1"})


@pytest.mark.parametrize("bad", ["postgres", "mysql"])
def test_config_is_validated(tmp_path: Path, bad: str) -> None:
    from overt.errors import ConfigError

    with pytest.raises(ConfigError):
        LogConfig(store=bad)


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make ``directory`` refuse new files: chmod for a user, the immutable attribute for root."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode:
            pytest.skip("running as root without chattr +i: cannot make a directory read-only")
        undo = ["chattr", "-i", str(directory)]
    else:
        directory.chmod(0o555)
        undo = ["chmod", "755", str(directory)]
    try:
        yield
    finally:
        subprocess.run(undo, check=True)


def test_batching_loop_recovers_after_a_storage_fault_clears(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    home = make_home(tmp_path, batch_interval=0.05)
    with (
        BackgroundServer(create_app(home, wait_timeout=20)) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as http,
    ):
        assert http.post("/add", content=b"first").status_code == 200
        with read_only(home.log.paths.public):  # tiles still land in tile/, the checkpoint cannot be replaced
            for entry in (b"second", b"third"):
                r = http.post("/add", content=entry)
                assert r.status_code == 503, r.text
                assert r.json()["reason"] == "storage"
                assert (
                    str(home.log.paths.public) in r.json()["error"]
                )  # the real reason, naming the directory
                assert int(r.headers["retry-after"]) >= 1
        for index, entry in enumerate((b"second", b"third", b"fourth"), start=1):
            r = http.post("/add", content=entry)
            assert r.status_code == 200, r.text
            assert r.json()["index"] == index  # second and third kept the index they were sequenced at
            verify_tlog_proof(TlogProof.from_bytes(r.json()["proof"].encode()), entry, home.log.policy())
        assert SignedCheckpoint.from_bytes(http.get("/log/checkpoint").content).checkpoint.tree_size == 4
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    assert err.count("cannot publish the checkpoint") == 1, err  # logged once, however often it was retried
    assert err.count("log storage works again") == 1, err


def test_unpublished_answer_is_machine_recognisable(tmp_path: Path) -> None:
    home = make_home(tmp_path, batch_interval=0.05)
    dead = PolicyWitness(
        name="w1",
        verifier=init_witness(tmp_path / "w1", "w1.test.overt.example").verifier(),
        url=f"http://127.0.0.1:{free_port()}",
    )
    groups, quorum = quorum_groups(("w1",), "all")
    home.log.save_policy(Policy(logs=home.log.policy().logs, witnesses=(dead,), groups=groups, quorum=quorum))
    with BackgroundServer(create_app(home, wait_timeout=0.5)) as srv, httpx.Client(base_url=srv.url) as http:
        r = http.post("/add", content=b"waits for w1", timeout=30)
    assert r.status_code == 503
    body = r.json()
    assert body["reason"] == "unpublished"
    assert "w1" in body["witness_failures"] and body["error"]
