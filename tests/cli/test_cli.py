"""The CLI as a user runs it: init, add, proof, verify, policy, and clean errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def overt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overt", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_init_add_proof_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    home = tmp_path / "home"
    r = overt("init", "--home", str(home), "--origin", "cli.overt.example/log")
    assert r.returncode == 0, r.stderr
    assert "cli.overt.example/log+" in r.stdout
    files = []
    for i in range(3):
        f = tmp_path / f"e{i}"
        f.write_bytes(f"entry {i}".encode())
        files.append(str(f))
    r = overt("log", "add", "--home", str(home), "--json", *files)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [e["index"] for e in out["entries"]] == [0, 1, 2]
    assert out["published"] is True
    r = overt("log", "add", "--home", str(home), files[1])
    assert r.stdout.startswith("1\t")
    proof = tmp_path / "p.tlog-proof"
    assert overt("log", "proof", "2", "--home", str(home), "--out", str(proof)).returncode == 0
    # The verifier's pinned policy: the home's own, as a customer would receive it out of band.
    pinned = ("--policy", str(home / "log-policy"))
    r = overt(
        "log", "verify", "--home", str(home), *pinned, "--proof", str(proof), "--entry", files[2], "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["index"] == 2
    r = overt("log", "verify", "--home", str(home), *pinned, "--entry", files[0], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["index"] == 0
    # The proof does not verify for another entry.
    r = overt("log", "verify", "--home", str(home), *pinned, "--proof", str(proof), "--entry", files[0])
    assert r.returncode == 1
    assert "inclusion proof" in r.stderr
    assert "Traceback" not in r.stderr


def test_errors_are_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    r = overt("log", "add", "--home", str(tmp_path / "nope"), "x")
    assert r.returncode == 2
    assert "not an overt home" in r.stderr
    assert "Traceback" not in r.stderr
    home = tmp_path / "home"
    overt("init", "--home", str(home))
    big = tmp_path / "big"
    big.write_bytes(b"x" * 70_000)
    r = overt("log", "add", "--home", str(home), str(big))
    assert r.returncode == 2
    assert "65535" in r.stderr
    assert "Traceback" not in r.stderr
    bad = tmp_path / "bad.tlog-proof"
    bad.write_text("not a proof")
    pinned = ("--policy", str(home / "log-policy"))
    r = overt(
        "log", "verify", "--home", str(home), *pinned, "--proof", str(bad), "--entry", str(big), "--json"
    )
    assert r.returncode == 2
    assert json.loads(r.stderr)["error"] == "FormatError"
    r = overt("log", "verify", "--log", "http://127.0.0.1:9/log", "--vkey", "a+00000000+AQ==")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_witness_policy_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    overt("init", "--home", str(home))
    r = overt("witness", "init", "--home", str(tmp_path / "w"), "--name", "w.example/1")
    assert r.returncode == 0, r.stderr
    vkey = r.stdout.strip()
    r = overt(
        "log",
        "policy",
        "--home",
        str(home),
        "--add-witness",
        f"w1={vkey}=http://127.0.0.1:1",
        "--quorum",
        "1",
    )
    assert r.returncode == 0, r.stderr
    assert "witness w1 " in r.stdout and "quorum witnesses" in r.stdout
    assert (home / "public" / "log" / "policy").read_text() == r.stdout
    # With the witness down, entries are sequenced but the checkpoint is not published (exit 2).
    f = tmp_path / "e"
    f.write_bytes(b"e")
    r = overt("log", "add", "--home", str(home), str(f))
    assert r.returncode == 2
    assert "NOT published" in r.stdout


def test_the_console_script_stays_light_for_spawned_workers() -> None:
    """multiprocessing's spawn re-imports the console script in every scan worker: importing it must not load
    the command line, and the command line must not load the servers (FastAPI) it does not run."""
    probe = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "(script,) = entry_points(group='console_scripts', name='overt')\n"
        "script.load()\n"
        "assert 'typer' not in sys.modules, 'the console script imports the command line'\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # The command line itself, run as 'python -X importtime': FastAPI is never among the imports.
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "overt", "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "typer" in r.stderr and "fastapi" not in r.stderr
