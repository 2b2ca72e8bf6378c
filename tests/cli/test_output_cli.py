"""What the CLI prints: text never read as markup, whole lines in a pipe, no Python reprs, ``--json`` everywhere.

Every command here runs in a subprocess with stdout and stderr on pipes, as in a script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import overt
from tests.cli.test_cli import overt as run
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement

CLI = [sys.executable, "-m", "overt"]


def _json(*args: str) -> dict:
    r = run(*args, "--json")
    assert r.returncode == 0, (args, r.stderr)
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("out") / "home"
    assert run("init", "--home", str(h)).returncode == 0
    assert run("keys", "generate", "--role", "builder", "--home", str(h)).returncode == 0
    return h


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout == f"{overt.__version__}\n" and r.stderr == ""
    assert _json("version") == {"version": overt.__version__}


def test_bare_overt_prints_its_usage_and_exits_2() -> None:
    r = run()
    assert r.returncode == 2 and "Usage: overt" in r.stderr and "Traceback" not in r.stderr


def test_help_and_messages_are_text_not_markup(home: Path, tmp_path: Path) -> None:
    r = run("keys", "generate", "--help")
    assert r.returncode == 0 and "the PKCS#11 token of [hsm]" in r.stdout
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a\n")
    r = run("source", "add", str(src), "--name", "[build] tool", "--home", str(home))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("[build] tool: sha256 ")
    where = tmp_path / "x[/usr/include]"
    r = run("serve", "--home", str(where))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr == f"error: {where} is not an overt home (no config.toml); run 'overt init --home {where}'\n"
    )


def test_a_pipe_gets_whole_lines_and_whole_keyids(home: Path) -> None:
    r = run("init", "--home", str(home))
    vkey = (home / "public" / "log" / "vkey").read_text().strip()
    assert f"log vkey:   {vkey}\n" in r.stdout  # longer than 80 columns, on one line
    keys = _json("keys", "list", "--home", str(home))["keys"]
    listing = run("keys", "list", "--home", str(home)).stdout
    for k in keys:
        assert k["keyid"][:16] in listing, listing  # what 'keys rotate --key PREFIX' takes, never cut


def test_attest_verify_spells_the_digest_set_as_in_toto_does(home: Path, tmp_path: Path) -> None:
    assert run("keys", "generate", "--role", "release", "--home", str(home)).returncode == 0
    assert run("keys", "builders", "add", SAMPLE_BUILDER_ID, "--home", str(home)).returncode == 0
    statement, envelope = tmp_path / "st.json", tmp_path / "env.json"
    statement.write_bytes(provenance_statement("CH").to_bytes())
    signed = _json(
        "attest", "sign", str(statement), "--role", "builder", "--out", str(envelope), "--home", str(home)
    )
    key = home / "public" / "keys" / f"{signed['keyid']}.json"
    r = run("attest", "verify", str(envelope), "--key", str(key))
    assert r.returncode == 0, r.stderr
    digest = provenance_statement("CH").subject[0].digest["sha256"]
    assert f"    subject: tomli-2.0.1-py3-none-any.whl sha256:{digest}\n" in r.stdout
    assert "{" not in r.stdout and "[" not in r.stdout


def test_json_on_every_reporting_command(home: Path, tmp_path: Path) -> None:
    created = _json("init", "--home", str(tmp_path / "new"))
    assert created["created"] is True and created["vkey"].startswith("overt.example/log+")
    assert len(created["log_keyid"]) == 64
    assert _json("init", "--home", str(tmp_path / "new"))["created"] is False
    policy = _json("log", "policy", "--home", str(home))
    assert policy["quorum"] == "none" and policy["changed"] is False
    assert policy["policy"] == (home / "log-policy").read_text()
    entry = tmp_path / "entry"
    entry.write_bytes(b"entry")
    index = _json("log", "add", str(entry), "--home", str(home))["entries"][0]["index"]
    proof = _json("log", "proof", str(index), "--home", str(home))
    assert proof["index"] == index and proof["proof"].startswith("c2sp.org/tlog-proof@v1\n")
    witness = tmp_path / "w"
    made = _json("witness", "init", "--home", str(witness), "--name", "w.example/1")
    assert made["name"] == "w.example/1" and made["vkey"].startswith("w.example/1+")
    vkey = (home / "public" / "log" / "vkey").read_text().strip()
    followed = _json("witness", "add-log", "--home", str(witness), vkey)
    assert followed["origin"] == "overt.example/log"
    proc = subprocess.Popen(
        [*CLI, "witness", "serve", "--home", str(witness), "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert started["witness"] == "w.example/1" and started["following"] == ["overt.example/log"]
    assert started["url"].startswith("http://127.0.0.1:") and not started["url"].endswith(":0")


@pytest.mark.parametrize("args", [("init",), ("log", "policy")])
def test_a_reader_that_goes_away_ends_the_command_quietly(home: Path, args: tuple[str, ...]) -> None:
    proc = subprocess.Popen(
        [*CLI, *args, "--home", str(home)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    proc.stdout.close()  # before the interpreter has started: every write the command makes finds no reader
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and err == b"", err


def test_progress_never_reaches_a_pipe(home: Path, tmp_path: Path) -> None:
    """A transient progress display used to leave an empty first line in a pipe (log verify scanning for an
    entry, keys audit reading the log)."""
    entry = tmp_path / "scanned-for"
    entry.write_bytes(b"an entry found by scanning")
    assert run("log", "add", "--home", str(home), str(entry)).returncode == 0
    policy = str(home / "log-policy")
    r = run("log", "verify", "--log", str(home / "public" / "log"), "--policy", policy, "--entry", str(entry))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok  log signature\n") and r.stderr == ""
    keyid = _json("keys", "list", "--home", str(home))["keys"][0]["keyid"]
    r = run("keys", "audit", "--home", str(home), "--policy", policy, keyid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and not r.stdout.startswith("\n") and r.stderr == ""


def test_modes_are_spelled_as_chmod_takes_them(home: Path, tmp_path: Path) -> None:
    tree = tmp_path / "modes"
    tree.mkdir()
    (tree / "run.sh").write_text("#!/bin/sh\n")
    (tree / "run.sh").chmod(0o755)
    (tree / "README").write_text("a\n")
    old = _json("source", "add", str(tree), "--name", "modes", "--home", str(home))["source"]["sha256"]
    shown = run("source", "show", old, "--home", str(home))
    assert shown.returncode == 0, shown.stderr
    assert "  0755        10 run.sh\n" in shown.stdout and "  0644         2 README\n" in shown.stdout
    assert "0o" not in shown.stdout
    (tree / "README").chmod(0o755)
    new = _json("source", "add", str(tree), "--name", "modes", "--home", str(home))["source"]["sha256"]
    diff = run("source", "diff", old, new, "--home", str(home))
    assert diff.returncode == 0, diff.stderr
    assert "~ README\n    mode 0644 → 0755\n" in diff.stdout and "0o" not in diff.stdout


def test_a_file_name_with_a_newline_stays_on_its_line(home: Path, tmp_path: Path) -> None:
    """``log add`` prints one ``index<TAB>name`` line per entry and an error is one line, whatever the file
    is called: control characters in names are escaped as Python writes them."""
    named = tmp_path / "two\nlines\tand a tab"
    named.write_bytes(b"an entry with an odd name")
    r = run("log", "add", str(named), "--home", str(home))
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.split("\t", 1)[1] == str(named).replace("\n", "\\n").replace("\t", "\\t")
    assert _json("log", "add", str(named), "--home", str(home))["entries"][0]["file"] == str(named)
    missing = tmp_path / "gone\nerror: forged\x1b[2J"
    r = run("log", "add", str(missing), "--home", str(home))
    assert r.returncode == 2
    assert (
        r.stderr == f"error: cannot read {tmp_path}/gone\\nerror: forged\\x1b[2J: No such file or directory\n"
    )
