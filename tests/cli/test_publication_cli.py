""" "Logged" means anyone can verify it: conveyor commands exit 2 while no published checkpoint covers their
entry, ``overt log publish`` retries, and a running ``overt serve`` does not block the conveyor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from overt.server.runner import BackgroundServer, free_port
from overt.server.witness import create_app as witness_app
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.witness import init_witness, load_witness, trust_log
from tests.cli.test_cli import overt

STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "x", "digest": {"sha256": "ab" * 32}}],
    "predicateType": "https://example.com/custom/v1",
    "predicate": {},
}


def conveyor_home(tmp_path: Path) -> tuple[str, ...]:
    home = str(tmp_path / "home")
    assert overt("init", "--home", home, "--origin", "pub.overt.example/log").returncode == 0
    assert overt("keys", "generate", "--role", "builder", "--home", home).returncode == 0
    return ("--home", home)


def source_tree(tmp_path: Path, text: str) -> Path:
    src = tmp_path / f"src-{text}"
    src.mkdir()
    (src / "hello.txt").write_text(text)
    return src


def test_unpublished_entry_exits_2_and_log_publish_retries(tmp_path: Path) -> None:
    H = conveyor_home(tmp_path)
    wdir = tmp_path / "w1"
    init_witness(wdir, "w1.test.overt.example")
    trust_log(wdir, (tmp_path / "home" / "public" / "log" / "vkey").read_text().strip())
    port = free_port()
    wvkey = (wdir / "witness.vkey").read_text().strip()
    r = overt("log", "policy", "--add-witness", f"w1={wvkey}=http://127.0.0.1:{port}", "--quorum", "all", *H)
    assert r.returncode == 0, r.stderr

    # The witness is down: the escrow is appended but not published. No "logged", exit 2, and why.
    r = overt("source", "add", str(source_tree(tmp_path, "one")), "--name", "one", *H)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "logged" not in r.stdout
    assert "not published" in r.stderr and "log publish" in r.stderr and "Traceback" not in r.stderr
    r = overt("log", "publish", *H, "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["published"] is False

    with load_witness(wdir) as witness, BackgroundServer(witness_app(witness), port=port):
        r = overt("log", "publish", *H, "--json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["published"] is True and out["cosigners"] == ["w1"] and out["tree_size"] == 1
    cp = SignedCheckpoint.from_bytes((tmp_path / "home" / "public" / "log" / "checkpoint").read_bytes())
    assert cp.checkpoint.tree_size == 1


def test_refusal_while_unpublished_also_exits_2(tmp_path: Path) -> None:
    H = conveyor_home(tmp_path)
    r = overt(
        "log", "policy", "--add-witness", f"w1={_any_vkey(tmp_path)}=http://127.0.0.1:{free_port()}", *H
    )
    assert r.returncode == 0, r.stderr
    assert overt("log", "policy", "--quorum", "all", *H).returncode == 0
    statement = tmp_path / "st.json"
    statement.write_text(json.dumps(STATEMENT))
    r = overt("attest", "sign", str(statement), "--role", "builder", *H)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "not published" in r.stderr


def _any_vkey(tmp_path: Path) -> str:
    init_witness(tmp_path / "wx", "wx.test.overt.example")
    return (tmp_path / "wx" / "witness.vkey").read_text().strip()


def test_conveyor_commands_go_through_a_running_server(tmp_path: Path) -> None:
    H = conveyor_home(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen(
        [sys.executable, "-m", "overt", "serve", *H, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as server:
        try:
            deadline = time.monotonic() + 30
            while not (tmp_path / "home" / "log.server").exists():
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "overt serve did not start"
                time.sleep(0.05)
            r = overt("source", "add", str(source_tree(tmp_path, "beside")), "--name", "beside", *H, "--json")
            assert r.returncode == 0, r.stderr
            index = json.loads(r.stdout)["source"]["log_index"]
            # A refused request is logged through the server too (and exits 1, a policy failure).
            statement = tmp_path / "st.json"
            statement.write_text(json.dumps(STATEMENT))
            r = overt("attest", "sign", str(statement), "--role", "builder", *H, "--json")
            assert r.returncode == 1, r.stderr
            assert json.loads(r.stderr)["evidence"]["refusal_logged_at"] == index + 1
            cp = SignedCheckpoint.from_bytes(httpx.get(f"{url}/log/checkpoint").content)
            assert cp.checkpoint.tree_size == index + 2
            # 'log add' goes through the server too; 'log publish' says the server publishes by itself.
            (tmp_path / "plain").write_text("plain entry\n")
            r = overt("log", "add", str(tmp_path / "plain"), *H, "--json")
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["entries"][0]["index"] == index + 2
            r = overt("log", "publish", *H)
            assert r.returncode == 2 and "retries publication itself" in r.stderr
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert not (tmp_path / "home" / "log.server").exists()


def test_a_command_that_exits_2_still_does_what_it_logged(tmp_path: Path) -> None:
    """An appended-but-unpublished statement is the command's outcome: saved locally too, so a retry never
    logs a second, conflicting statement (two registry v2s, two rotations of one key)."""
    H = conveyor_home(tmp_path)
    assert overt("keys", "generate", "--role", "release", *H).returncode == 0
    r = overt(
        "log", "policy", "--add-witness", f"w1={_any_vkey(tmp_path)}=http://127.0.0.1:{free_port()}", *H
    )
    assert r.returncode == 0 and overt("log", "policy", "--quorum", "all", *H).returncode == 0
    before = json.loads(overt("keys", "list", *H, "--json").stdout)["keys"]
    old = next(k for k in before if k["role"] == "builder")
    r = overt("keys", "rotate", "--role", "builder", *H)
    assert r.returncode == 2 and "not published" in r.stderr, (r.stdout, r.stderr)
    after = {k["keyid"]: k for k in json.loads(overt("keys", "list", *H, "--json").stdout)["keys"]}
    assert after[old["keyid"]]["status"] == "rotated"
    r = overt("keys", "builders", "add", "https://b2.example/builder", *H, "--json")
    assert r.returncode == 2, (r.stdout, r.stderr)
    r = overt("keys", "builders", "add", "https://b3.example/builder", *H, "--json")
    assert r.returncode == 2, (r.stdout, r.stderr)
    listing = json.loads(overt("keys", "builders", "list", *H, "--json").stdout)
    assert listing["version"] == 3, listing


def test_attest_sign_withholds_an_envelope_nobody_can_verify_yet(tmp_path: Path) -> None:
    from tests.samples import SAMPLE_BUILDER_ID, provenance_statement

    H = conveyor_home(tmp_path)
    assert overt("keys", "generate", "--role", "release", *H).returncode == 0
    assert overt("keys", "builders", "add", SAMPLE_BUILDER_ID, *H).returncode == 0
    r = overt(
        "log", "policy", "--add-witness", f"w1={_any_vkey(tmp_path)}=http://127.0.0.1:{free_port()}", *H
    )
    assert r.returncode == 0 and overt("log", "policy", "--quorum", "all", *H).returncode == 0

    statement = tmp_path / "prov.json"
    statement.write_bytes(provenance_statement("CH").to_bytes())
    out = tmp_path / "prov.dsse.json"
    r = overt("attest", "sign", str(statement), "--role", "builder", "--out", str(out), *H)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "withheld" in r.stderr and not out.exists()
