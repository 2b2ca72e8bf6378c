"""Bad invocations as a new user types them: never a traceback, one ``error:`` line, the documented exit code.

README, exit codes: 0 success; 1 a verification or policy failure; 2 a usage or operational error. Each case
runs the real command line in a subprocess (as ``tests/cli/test_cli.py``'s ``overt`` does) against real
homes made once for the module: a conveyor home with a builder key, a signed envelope and log entries, a
witness home, and the odd files users point commands at (a FIFO, /dev/zero, a directory, a non-UTF-8 or
mistyped config.toml, recipes that could never build). Each case runs bounded in memory and time.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import overt
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement

USAGE, FAILED = 2, 1
# Cases read /dev/zero and FIFOs: a command that reads one without end must fail its case, not exhaust the
# machine's memory or hang the suite, so each runs with its address space and its time bounded.
MEMORY_LIMIT = 2 << 30
TIME_LIMIT = 60


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def bounded_overt(*args: str) -> subprocess.CompletedProcess[str]:
    """``overt`` as :func:`tests.cli.test_cli.overt` runs it, in at most 2 GiB and 60 seconds."""
    return subprocess.run(
        [sys.executable, "-m", "overt", *args],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        preexec_fn=_bounded,
    )


def _config_home(home: Path, where: Path, edit: tuple[str, str]) -> str:
    """A copy of ``home`` whose config.toml has one edit (``(old, new)``, or ``("", text)`` to append)."""
    shutil.copytree(home, where)
    config = where / "config.toml"
    old, new = edit
    text = config.read_text()
    assert not old or old in text, old
    config.write_text(text.replace(old, new) if old else text + new)
    return str(where)


def _recipe(root: Path, name: str, text: str) -> str:
    path = root / f"{name}.toml"
    path.write_text(text)
    return str(path)


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
    source = root / "source"
    source.mkdir()
    (source / "README").write_text("a source tree\n")
    fifo_tree = root / "fifo-tree"
    fifo_tree.mkdir()
    (fifo_tree / "README").write_text("a source tree with a FIFO in it\n")
    os.mkfifo(fifo_tree / "pipe")
    step = '[build]\nsteps = [{step}]\noutputs = ["{output}"]\n'
    recipes = {
        "NULSTEP": step.format(step='"echo a\\u0000b > x"', output="x"),
        "NULARGV": step.format(step='["echo", "a\\u0000b"]', output="x"),
        "NULENV": step.format(step='"true"', output="x") + '[build.env]\nFOO = "a\\u0000b"\n',
        "NULGLOB": step.format(step='"true"', output="x\\u0000"),
        "LOGOUT": step.format(step='"echo a > build.log"', output="build.log"),
        "PROVOUT": step.format(step='"true"', output="./provenance.dsse.json"),
    }
    configs = {
        "CFGBOOL": ("batch_size = 4096", "batch_size = true"),
        "CFGPIN": ('pin_env = "OVERT_HSM_PIN"', "pin_env = 3"),
        "CFGDSN": ('postgres_dsn = ""', "postgres_dsn = 5"),
        "CFGJUR": ('jurisdiction = "CH"', "jurisdiction = 5"),
        "CFGTUF": ("", "\n[tuf]\nx = 1\n"),
    }
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
        "ZERO": "/dev/zero",
        "SOURCE": str(source),
        "FIFOTREE": str(fifo_tree),
        "NEWLINE": str(root / "missing\nsecond line"),
        "WVKEY": (witness / "witness.vkey").read_text().strip(),
        # Homes a case could change if the command did what it must refuse.
        "ROTATE": str(shutil.copytree(home, root / "rotate")),
        "POLICYHOME": str(shutil.copytree(home, root / "policy-home")),
        **{name: _recipe(root, name, text) for name, text in recipes.items()},
        **{name: _config_home(other, root / name, edit) for name, edit in configs.items()},
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
    # Files that are not regular files: refused before a byte is read, never read without end.
    ("keys import --home {H} --role builder --uri file2:{ZERO}", USAGE),
    ("keys import --home {H} --role builder --uri file2:{FIFO}", USAGE),
    ("keys import --home {H} --public {ZERO}", USAGE),
    ("verify {FILE} --provenance {ENVELOPE} --key {ZERO} --policy {POLICY}", USAGE),
    ("verify {FILE} --provenance {ENVELOPE} --key {FIFO} --policy {POLICY}", USAGE),
    ("verify {ZERO} --provenance {ENVELOPE} --key {KEY} --policy {POLICY}", USAGE),
    ("attest verify {ENVELOPE} --key {ZERO}", USAGE),
    ("attest verify {ENVELOPE} --key {FIFO}", USAGE),
    ("avdb install {FILE} --provenance {ENVELOPE} --key {ZERO} --agent {DIR}", USAGE),
    ("avdb install {FILE} --provenance {ENVELOPE} --key {FIFO} --agent {DIR}", USAGE),
    ("source add --home {H} {ZERO}", USAGE),
    ("source add --home {H} {FIFO}", USAGE),
    ("source add --home {H} {FIFOTREE}", USAGE),
    ("source add --home {H} {SOURCE} --recipe {ZERO}", USAGE),
    ("avdb audit --home {H} {ZERO} --name x", USAGE),
    ("avdb audit --home {H} {FIFO} --name x", USAGE),
    # Malformed URLs: a usage error, not a traceback, and before anything is done.
    ("log verify --log http://127.0.0.1:abc/ --vkey {VKEY}", USAGE),
    ("log verify --log http://[::1 --vkey {VKEY}", USAGE),
    ("log verify --log https://[zz]/ --vkey {VKEY}", USAGE),
    ("log verify --log http:// --vkey {VKEY}", USAGE),
    (
        "avdb install {FILE} --provenance {ENVELOPE} --key {KEY} --log http://[::1 --vkey {VKEY} --agent {DIR}",
        USAGE,
    ),
    ("keys audit {KEY} --home {H} --log http://[::1 --vkey {VKEY}", USAGE),
    ("keys rotate --home {ROTATE} --role builder --log-url http://127.0.0.1:abc", USAGE),
    ("log policy --home {POLICYHOME} --add-witness w1={WVKEY}=http://[::1", USAGE),
    # Recipes that could never build: refused by 'source add', before anything is escrowed or logged.
    ("source add --home {H} {SOURCE} --recipe {NULSTEP}", USAGE),
    ("source add --home {H} {SOURCE} --recipe {NULARGV}", USAGE),
    ("source add --home {H} {SOURCE} --recipe {NULENV}", USAGE),
    ("source add --home {H} {SOURCE} --recipe {NULGLOB}", USAGE),
    ("source add --home {H} {SOURCE} --recipe {LOGOUT}", USAGE),
    ("source add --home {H} {SOURCE} --recipe {PROVOUT}", USAGE),
    # Versions that can never be released.
    ("avdb build {DIR} --version 0 --home {H}", USAGE),
    ("avdb build {DIR} --version -3 --home {H}", USAGE),
    # config.toml values of the wrong type.
    ("log publish --home {CFGBOOL}", USAGE),
    ("log publish --home {CFGPIN}", USAGE),
    ("log publish --home {CFGDSN}", USAGE),
    ("log publish --home {CFGJUR}", USAGE),
    ("log publish --home {CFGTUF}", USAGE),
    # A file name with a newline: still one error line.
    ("log add --home {H} {NEWLINE}", USAGE),
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
    r = bounded_overt(*argv)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert lines and lines[0].startswith("error: "), r.stderr
    # One error line; what follows it, if anything, is the error's evidence, one indented line each.
    assert all(line.startswith("  ") for line in lines[1:]), r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
