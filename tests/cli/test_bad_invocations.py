"""Bad invocations as a new user types them: never a traceback, one ``error:`` line, the documented exit code.

README, exit codes: 0 success; 1 a verification or policy failure; 2 a usage or operational error. Each case
runs the real command line in a subprocess (as ``tests/cli/test_cli.py``'s ``overt`` does) against real
homes made once for the module: a conveyor home with a builder key, a signed envelope and log entries, a
witness home, and the odd files users point commands at (a FIFO, a directory, a non-UTF-8 config.toml).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import overt
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement

USAGE, FAILED = 2, 1


def _ok(*args: str) -> str:
    r = overt(*args)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("bad")
    home, other = root / "home", root / "other"
    _ok("init", "--home", str(home))
    _ok("init", "--home", str(other))
    builder = json.loads(_ok("keys", "generate", "--role", "builder", "--home", str(home), "--json"))
    keyfile = home / "public" / "keys" / f"{builder['generated']['keyid']}.json"
    _ok("keys", "generate", "--role", "release", "--home", str(home))
    _ok("keys", "builders", "add", SAMPLE_BUILDER_ID, "--home", str(home))  # the sample provenance's
    statement = root / "statement.json"
    statement.write_bytes(provenance_statement("CH").to_bytes())
    envelope = root / "envelope.json"
    entry = root / "entry"
    entry.write_bytes(b"an entry")
    _ok("log", "add", "--home", str(home), str(entry))
    proof = root / "entry.tlog-proof"
    _ok("log", "proof", "0", "--home", str(home), "--out", str(proof))
    witness = root / "witness"
    _ok("witness", "init", "--home", str(witness), "--name", "w.example/1")
    bad_config = root / "bad-config"
    _ok("init", "--home", str(bad_config))
    (bad_config / "config.toml").write_bytes(b"\xff\xfe[log]\n")
    plain = root / "plain.txt"
    plain.write_text("not a proof, an envelope, a key or a database\n")
    big = root / "big"
    big.write_bytes(b"x" * 70_000)
    fifo = root / "fifo"
    os.mkfifo(fifo)
    empty = root / "empty"
    empty.mkdir()
    yield {
        "H": str(home),
        "OTHER": str(other),
        "W": str(witness),
        "BADCFG": str(bad_config),
        "MISSING": str(root / "missing"),
        "FILE": str(plain),
        "BIG": str(big),
        "FIFO": str(fifo),
        "DIR": str(empty),
        "ENTRY": str(entry),
        "PROOF": str(proof),
        "KEY": str(keyfile),
        "STATEMENT": str(statement),
        "ENVELOPE": str(envelope),
        "POLICY": str(home / "log-policy"),
        "OTHERPOLICY": str(other / "log-policy"),
        "VKEY": (home / "public" / "log" / "vkey").read_text().strip(),
        "LOG": str(home / "public" / "log"),
        "NEW": str(root / "new"),
        "BRACKETS": str(root / "x[/usr/include]"),
    }


# (arguments, exit code); "{NAME}" is a path (or vkey) from the fixture.
CASES: list[tuple[str, int]] = [
    # The parser: unknown commands and options, missing and malformed values.
    ("frobnicate", USAGE),
    ("--bogus", USAGE),
    ("version extra", USAGE),
    ("log frobnicate", USAGE),
    ("log add --bogus", USAGE),
    ("log add --home {H}", USAGE),
    ("log proof", USAGE),
    ("log proof abc --home {H}", USAGE),
    ("log proof -5 --home {H}", USAGE),
    ("log verify --index -1 --home {H}", USAGE),
    ("serve --port http --home {H}", USAGE),
    ("serve --port 99999 --home {H}", USAGE),
    ("serve --max-connections 0 --home {H}", USAGE),
    ("keys generate --home {H}", USAGE),
    ("keys generate --role builder --valid-days 1000000000 --home {H}", USAGE),
    ("keys generate --role builder --valid-days 0 --home {H}", USAGE),
    ("keys frobnicate", USAGE),
    ("keys builders frobnicate", USAGE),
    ("witness init --name w.example/2", USAGE),
    ("witness serve --home {W} --port -1", USAGE),
    ("avdb build {DIR} --home {H}", USAGE),
    ("avdb build {DIR} --version seven --home {H}", USAGE),
    ("scan", USAGE),
    ("scan --jobs 0 {FILE}", USAGE),
    ("verify", USAGE),
    ("verify {FILE} --provenance {ENVELOPE} --policy {POLICY}", USAGE),
    ("verify {FILE} --provenance {ENVELOPE} --key {KEY} --threshold 0 --policy {POLICY}", USAGE),
    ("attest verify", USAGE),
    ("source diff abcdef01 --home {H}", USAGE),
    ("build", USAGE),
    ("init --home {NEW} --log-key floppy", USAGE),
    ("init --home {NEW} --store mongo", USAGE),
    ("init --home {NEW} --origin 'has space'", USAGE),
    ("init --home {NEW} --jurisdiction ch", USAGE),
    # What the command line names does not fit: files, directories, homes.
    ("init --home {FILE}", USAGE),
    ("witness init --home {FILE} --name w.example/2", USAGE),
    ("log add --home {BADCFG} {ENTRY}", USAGE),
    ("log publish --home {BADCFG}", USAGE),
    ("log add --home {MISSING} {ENTRY}", USAGE),
    ("log add --home {H} {FIFO}", USAGE),
    ("log add --home {H} {DIR}", USAGE),
    ("log add --home {H} {MISSING}", USAGE),
    ("log add --home {H} {BIG}", USAGE),
    ("log proof 99 --home {H}", USAGE),
    ("log proof 0 --home {H} --out {MISSING}/sub/p", USAGE),
    ("log verify --home {H}", USAGE),
    ("log verify --home {H} --vkey {VKEY} --policy {POLICY}", USAGE),
    ("log verify --home {H} --vkey {VKEY} --state {FILE}", USAGE),
    ("log verify --home {H} --vkey garbage", USAGE),
    ("log verify --home {H} --policy {FILE}", USAGE),
    ("log verify --home {H} --policy {MISSING}", USAGE),
    ("log verify --home {H} --policy {POLICY} --proof {PROOF}", USAGE),
    ("log verify --home {H} --policy {POLICY} --proof {FILE} --entry {ENTRY}", USAGE),
    ("log verify --log http://127.0.0.1:9/log --vkey {VKEY}", USAGE),
    ("log policy --home {H} --add-witness nonsense", USAGE),
    ("log policy --home {H} --quorum 7", USAGE),
    ("log fsck --home {MISSING}", USAGE),
    ("log recover --home {MISSING}", USAGE),
    ("serve --home {MISSING}", USAGE),
    ("serve --home {BRACKETS}", USAGE),
    ("witness add-log --home {H} {VKEY}", USAGE),
    ("witness add-log --home {W} garbage", USAGE),
    ("witness serve --home {H}", USAGE),
    ("keys list --home {MISSING}", USAGE),
    ("keys generate --home {H} --role nonsense", USAGE),
    ("keys generate --home {H} --role log", USAGE),
    ("keys generate --home {H} --role builder --type rsa", USAGE),
    ("keys import --home {H}", USAGE),
    ("keys import --home {H} --public {MISSING}", USAGE),
    ("keys import --home {H} --public {FILE}", USAGE),
    ("keys import --home {H} --uri ftp:x --role builder", USAGE),
    ("keys rotate --home {H}", USAGE),
    ("keys rotate --home {H} --role auditor", USAGE),
    ("keys audit --home {H} deadbeef --policy {POLICY}", USAGE),
    ("attest sign {STATEMENT} --home {H}", USAGE),
    ("attest verify {FILE} --key {KEY}", USAGE),
    ("attest verify {ENVELOPE} --key {MISSING}", USAGE),
    ("source add --home {H} {MISSING}", USAGE),
    ("source show --home {H} ffff", USAGE),
    ("source show --home {H} {BRACKETS}", USAGE),
    ("build --home {H} ffffffff", USAGE),
    ("avdb install {FILE} --provenance {FILE} --key {KEY} --agent {DIR}", USAGE),
    ("avdb diff {FILE} {FILE}", USAGE),
    ("avdb delta {FILE} {FILE} --out {MISSING}/d", USAGE),
    ("avdb install {FILE} --provenance {FILE} --key {KEY} --policy {POLICY} --agent {DIR}", USAGE),
    ("scan --agent {DIR} {FILE}", USAGE),
    ("demo --home {FILE}", USAGE),
    ("verify {FILE} --provenance {FILE} --key {KEY} --policy {POLICY} --log {LOG}", USAGE),
    ("verify {FILE} --provenance {ENVELOPE} --key {KEY} --log {LOG}", USAGE),
    ("verify {FILE} --provenance {ENVELOPE} --key {MISSING} --policy {POLICY} --log {LOG}", USAGE),
    # Well-formed requests that the evidence refuses.
    ("log verify --home {H} --policy {POLICY} --proof {PROOF} --entry {FILE}", FAILED),
    ("log verify --home {H} --policy {POLICY} --entry {FILE}", FAILED),
    ("log verify --home {H} --policy {OTHERPOLICY}", FAILED),
    ("attest verify {ENVELOPE} --key {KEY} --key {OTHERKEY} --threshold 2", FAILED),
    ("attest verify {ENVELOPE} --key {OTHERKEY}", FAILED),
]


@pytest.fixture(scope="module")
def signed(paths: dict[str, str]) -> dict[str, str]:
    """An envelope signed by the home's builder key, and another home's key that did not sign it."""
    _ok(
        "attest",
        "sign",
        paths["STATEMENT"],
        "--role",
        "builder",
        "--home",
        paths["H"],
        "--out",
        paths["ENVELOPE"],
    )
    other = json.loads(_ok("keys", "generate", "--role", "builder", "--home", paths["OTHER"], "--json"))
    keyid = other["generated"]["keyid"]
    return {**paths, "OTHERKEY": str(Path(paths["OTHER"]) / "public" / "keys" / f"{keyid}.json")}


def test_there_are_at_least_60_cases() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize(("args", "code"), CASES, ids=[a for a, _ in CASES])
def test_a_bad_invocation_is_one_error_line_and_its_exit_code(
    signed: dict[str, str], args: str, code: int
) -> None:
    argv = [word.format(**signed) for word in shlex.split(args)]
    r = overt(*argv)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert lines and lines[0].startswith("error: "), r.stderr
    # One error line; what follows it, if anything, is the error's evidence, one indented line each.
    assert all(line.startswith("  ") for line in lines[1:]), r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
