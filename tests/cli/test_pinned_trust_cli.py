"""Pinned trust, as a user runs it: ``log verify``, ``keys audit`` and ``avdb install --log`` take the log's
trust roots from the verifier (``--policy``, ``--vkey``, ``--trust-on-first-use``), never from
``<log>/policy``, and keep their state under ``$XDG_STATE_HOME/overt``, never in the current directory.

The log home is built once; each test works on its own copy. Its published checkpoint is cosigned by the
witness its policy requires; the customer's pinned policy is ``<home>/log-policy``, copied out of band.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from overt.errors import ConfigError
from overt.home import Home
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.note import Note
from overt.tlog.policy import Policy, PolicyWitness
from tests.avdb.samples import EICAR_RULE
from tests.cli.test_cli import overt
from tests.tlog.test_pinned_trust import HONEST, OPERATOR, cosign, witnessed_by

ORIGIN = "pinned.overt.example/log"
TRUST_OPTIONS = ("--policy", "--vkey", "--trust-on-first-use")


@dataclass(frozen=True)
class Log:
    """One test's copy of the witnessed log home, the customer's pinned policy, and a clean cwd."""

    home: Path
    pinned: Path
    cwd: Path
    state: Path

    @property
    def public(self) -> Path:
        return self.home / "public" / "log"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return overt(*args, cwd=self.cwd)

    def builder_key(self) -> Path:
        keys = json.loads(self.run("keys", "list", "--home", str(self.home), "--json").stdout)["keys"]
        keyid = next(k["keyid"] for k in keys if k["role"] == "builder")
        return self.home / "public" / "keys" / f"{keyid}.json"

    def drop_witnesses(self) -> None:
        """The operator serves a head no witness cosigned, and a policy that asks for none."""
        signed = SignedCheckpoint.from_bytes((self.public / "checkpoint").read_bytes())
        logged = tuple(s for s in signed.note.signatures if s.name == ORIGIN)  # the witness's is dropped
        (self.public / "checkpoint").write_bytes(Note(text=signed.note.text, signatures=logged).to_bytes())
        pol = Policy.from_bytes(self.pinned.read_bytes())
        (self.public / "policy").write_bytes(Policy(logs=pol.logs, quorum="none").to_bytes())

    def swap_witness(self) -> None:
        """The operator cosigns its head with a witness of its own and names that witness in the policy."""
        self.drop_witnesses()
        cosign(self.public, OPERATOR)
        (self.public / "policy").write_bytes(witnessed_by(Home(self.home), OPERATOR, "w1"))

    def assert_nothing_in_cwd(self) -> None:
        assert list(self.cwd.iterdir()) == []
        assert not (self.home / "client-state").exists()


@pytest.fixture(scope="module")
def witnessed_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pinned")
    home = root / "home"
    H = ("--home", str(home))
    assert overt("init", *H, "--origin", ORIGIN).returncode == 0
    assert overt("keys", "generate", "--role", "builder", *H).returncode == 0
    entry = root / "entry"
    entry.write_bytes(b"an entry of the pinned log\n")
    r = overt("log", "add", str(entry), *H)
    assert r.returncode == 0, r.stderr
    if _sandbox_available():
        assert overt("keys", "generate", "--role", "auditor", "--type", "ecdsa", *H).returncode == 0
        # The release key, which (where a builder registry is kept) registers the home's own builder id.
        assert overt("keys", "generate", "--role", "release", *H).returncode == 0
        rules = root / "rules" / "yara" / "eicar.yar"
        rules.parent.mkdir(parents=True)
        rules.write_text(EICAR_RULE)
        r = overt("avdb", "build", str(rules.parent.parent), "--name", "main", "--version", "1", *H)
        assert r.returncode == 0, r.stderr
    # The witness w1 cosigns the published head; from now on the log's policy requires it.
    h = Home(home)
    cosign(h.log.paths.public, HONEST)
    pol = Policy.from_bytes(witnessed_by(h, HONEST, "w1"))
    w1 = PolicyWitness(name="w1", verifier=HONEST.verifier(), url="http://127.0.0.1:9")
    h.log.save_policy(Policy(logs=pol.logs, witnesses=(w1,), groups=pol.groups, quorum=pol.quorum))
    return home


def _sandbox_available() -> bool:
    from overt.build.sandbox import check_sandbox

    try:
        check_sandbox()
    except ConfigError:
        return False
    return True


@pytest.fixture
def log(witnessed_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Log:
    home = tmp_path / "home"
    shutil.copytree(witnessed_home, home)
    pinned = tmp_path / "customer" / "log.policy"
    pinned.parent.mkdir()
    shutil.copyfile(home / "log-policy", pinned)
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    return Log(home=home, pinned=pinned, cwd=tmp_path / "cwd", state=tmp_path / "xdg-state" / "overt")


def assert_refused_without_trust(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 2, r.stdout  # a usage error: no trust roots given
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert all(option in lines[0] for option in TRUST_OPTIONS), lines[0]


def test_log_verify_needs_pinned_trust_and_keeps_its_state_out_of_the_cwd(log: Log) -> None:
    src = ("--log", str(log.public))
    assert_refused_without_trust(log.run("log", "verify", *src))
    assert_refused_without_trust(log.run("log", "verify", "--home", str(log.home)))
    r = log.run("log", "verify", *src, "--policy", str(log.pinned), "--vkey", "x")
    assert r.returncode == 2 and "exclude each other" in r.stderr and "Traceback" not in r.stderr
    # With a pinned policy the log's own policy is not read at all, not even parsed.
    (log.public / "policy").write_text("not a policy\n")
    r = log.run("log", "verify", *src, "--policy", str(log.pinned), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cosigners"] == ["w1"]
    # The last verified checkpoint is remembered per log (origin and key) under $XDG_STATE_HOME/overt.
    vkey = (log.public / "vkey").read_text().strip()
    remembered = log.state / (hashlib.sha256(f"{ORIGIN}\n{vkey}".encode()).hexdigest() + ".checkpoint")
    assert remembered.read_bytes() == (log.public / "checkpoint").read_bytes()
    r = log.run("log", "verify", *src, "--policy", str(log.pinned), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["previous_size"] is not None, r.stderr
    log.assert_nothing_in_cwd()


@pytest.mark.parametrize("attack", ["drop_witnesses", "swap_witness"])
def test_a_rewritten_log_policy_cannot_make_log_verify_accept(log: Log, attack: str) -> None:
    src = ("--log", str(log.public))
    assert log.run("log", "verify", *src, "--policy", str(log.pinned)).returncode == 0
    getattr(log, attack)()
    assert_refused_without_trust(log.run("log", "verify", *src))
    r = log.run("log", "verify", *src, "--policy", str(log.pinned))
    assert (
        r.returncode == 1
        and "does not meet the quorum" in r.stderr
        and "Traceback" not in r.stderr
        and "[" not in r.stderr
    )
    log.assert_nothing_in_cwd()


def test_a_rewritten_log_policy_cannot_make_keys_audit_accept(log: Log) -> None:
    key = str(log.builder_key())
    src = ("--log", str(log.public))
    r = log.run("keys", "audit", key, *src, "--policy", str(log.pinned), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["log"]["cosigners"] == ["w1"]
    log.drop_witnesses()
    assert_refused_without_trust(log.run("keys", "audit", key, *src))
    assert_refused_without_trust(log.run("keys", "audit", key, "--home", str(log.home)))
    r = log.run("keys", "audit", key, *src, "--policy", str(log.pinned))
    assert r.returncode == 1 and "does not meet the quorum" in r.stderr and "Traceback" not in r.stderr
    log.assert_nothing_in_cwd()


def test_a_rewritten_log_policy_cannot_make_avdb_install_accept(log: Log, sandbox: None) -> None:
    db = log.home / "public" / "avdb" / "main" / "1.avdb"
    args = (
        "avdb",
        "install",
        str(db),
        "--provenance",
        str(db.with_name("1.provenance.dsse.json")),
        "--key",
        str(log.builder_key()),
        "--agent",
        str(log.cwd.parent / "agent"),
        "--log",
        str(log.public),
    )
    assert log.run(*args, "--trust-on-first-use").returncode == 0
    assert log.run(*args, "--policy", str(log.pinned)).returncode == 0
    log.swap_witness()
    assert_refused_without_trust(log.run(*args))
    r = log.run(*args, "--policy", str(log.pinned))
    assert r.returncode == 1 and "does not meet the quorum" in r.stderr and "Traceback" not in r.stderr
    r = log.run(*args, "--trust-on-first-use")
    assert r.returncode == 1 and "changed since it was trusted on first use" in r.stderr
    r = log.run(*args[:-2], "--policy", str(log.pinned))
    assert r.returncode == 2 and "give --log too" in r.stderr
    log.assert_nothing_in_cwd()


def test_trust_on_first_use_pins_the_policy_and_refuses_a_changed_one(log: Log) -> None:
    src = ("--log", str(log.public))
    honest = (log.public / "policy").read_bytes()
    r = log.run("log", "verify", *src, "--trust-on-first-use")
    assert r.returncode == 0, r.stderr
    assert "trusted on first use and pinned now" in r.stdout
    (pinned,) = (log.state / "policies").iterdir()
    assert pinned.read_bytes() == honest
    # The same policy is accepted again, by any command that follows this log.
    r = log.run("log", "verify", *src, "--trust-on-first-use")
    assert r.returncode == 0 and "the same as pinned on first use" in r.stdout, r.stderr
    key = str(log.builder_key())
    assert log.run("keys", "audit", key, *src, "--trust-on-first-use").returncode == 0
    # The operator swaps in a witness of its own: the changed policy is refused, naming both digests.
    log.swap_witness()
    swapped = (log.public / "policy").read_bytes()
    for args in (("log", "verify"), ("keys", "audit", key)):
        r = log.run(*args, *src, "--trust-on-first-use")
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout
        first = r.stderr.splitlines()[0]
        assert hashlib.sha256(honest).hexdigest() in first, first
        assert hashlib.sha256(swapped).hexdigest() in first, first
    assert pinned.read_bytes() == honest and list((log.state / "policies").iterdir()) == [pinned]
    log.assert_nothing_in_cwd()


def test_the_endpoint_agent_defaults_outside_the_current_directory(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from overt.avdb.install import default_agent_dir

    monkeypatch.delenv("OVERT_AGENT_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_agent_dir() == tmp_path / "data" / "overt" / "agent"
    monkeypatch.setenv("XDG_DATA_HOME", "relative")  # ignored, as the XDG spec says
    assert default_agent_dir().is_absolute()
