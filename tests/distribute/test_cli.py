"""``overt tuf`` and ``overt release`` as a user runs them: keys from 'overt keys generate', exit codes as
the README's table (0, 1 for a refusal, 2 for usage), one-line errors, --json, and '[tuf.ROLE]' settings
that every command of the home accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from overt.home import Home
from overt.keys.signers import generate_file_key
from tests.distribute.conftest import sign_provenance


def overt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "overt", *args], capture_output=True, text=True, timeout=120)


def ok(*args: str) -> subprocess.CompletedProcess[str]:
    r = overt(*args)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home made with the CLI, its keys from 'overt keys generate', and a TUF repository (made once)."""
    root = tmp_path_factory.mktemp("cli-template")
    home = root / "home"
    ok("init", "--home", str(home))
    for role in ("builder", "release", "targets", "snapshot", "timestamp"):
        ok("keys", "generate", "--role", role, "--home", str(home))
    keys = root / "offline-root-keys"
    r = ok(
        "tuf",
        "init",
        "--home",
        str(home),
        "--root-keys-dir",
        str(keys),
        "--root-keys",
        "3",
        "--threshold",
        "2",
        "--json",
    )
    out = json.loads(r.stdout)
    assert out["root_keys"]["threshold"] == 2 and len(out["root_keys"]["keys"]) == 3
    names = [m["name"] for m in out["metadata"]]
    assert names == ["1.root.json", "1.targets.json", "1.release.json", "1.snapshot.json", "1.timestamp.json"]
    return root


@pytest.fixture
def cli_home(template: Path, tmp_path: Path) -> tuple[Path, Path]:
    """This test's copy of the template: (home, root keys directory)."""
    shutil.copytree(template, tmp_path / "t")
    return tmp_path / "t" / "home", tmp_path / "t" / "offline-root-keys"


def test_release_refusals_and_exit_codes(cli_home: tuple[Path, Path], tmp_path: Path) -> None:
    home, _ = cli_home
    artifact = tmp_path / "demo-1.0.tar.gz"
    artifact.write_bytes(b"demo 1.0")
    provenance = tmp_path / "demo.dsse.json"
    provenance.write_bytes(sign_provenance(Home(home), artifact.read_bytes(), artifact.name).entry)
    args = (
        "release",
        str(artifact),
        "--product",
        "demo",
        "--provenance",
        str(provenance),
        "--home",
        str(home),
    )
    r = ok(*args, "--version", "1.0")
    assert r.stdout.startswith("released products/demo/1.0/demo-1.0.tar.gz (channel stable)")
    assert "2.release.json: signed by release key" in r.stdout and "logged at index" in r.stdout
    assert "NOT" not in r.stdout
    # A second artifact for the same version: refused, exit 1, one line, no traceback.
    artifact.write_bytes(b"another 1.0")
    r = overt(*args, "--version", "1.0")
    assert r.returncode == 1 and r.stderr.startswith("error: refused:") and "Traceback" not in r.stderr
    r = overt(*args, "--version", "1.0", "--json")
    assert r.returncode == 1 and json.loads(r.stderr.splitlines()[0])["error"] == "PolicyError"
    # Usage errors exit 2.
    for bad in (("--version", "v1.0"), ("--avdb", "main", "--version", "1")):
        r = overt(*args, *bad)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr, bad
    assert overt("release", "--home", str(home), "--product", "demo").returncode == 2
    status = json.loads(ok("tuf", "status", "--home", str(home), "--json").stdout)
    # The artifact, and the channel index that points at it.
    assert status["targets"] == 2 and status["unlogged"] == [] and status["expired"] == []


def test_the_ceremony_and_the_timestamp_from_the_command_line(
    cli_home: tuple[Path, Path], tmp_path: Path
) -> None:
    home, keys = cli_home
    r = ok("tuf", "prepare-root", "--home", str(home))
    assert "root version 2" in r.stdout and "NOT published" in r.stdout
    files = sorted(keys.glob("*.pem"))
    r = ok("tuf", "sign-root", "--home", str(home), "--key", str(files[0]))
    assert "NOT published: 1 more signature(s)" in r.stdout
    _, key = generate_file_key(tmp_path / "other", "ed25519")
    r = overt("tuf", "sign-root", "--home", str(home), "--key", str(tmp_path / "other" / f"{key.keyid}.pem"))
    assert r.returncode == 1 and "root key of neither version" in r.stderr
    out = json.loads(ok("tuf", "sign-root", "--home", str(home), "--key", str(files[1]), "--json").stdout)
    assert out["published"] and out["version"] == 2
    # [tuf.timestamp] is read by the tuf commands, and every other command still reads the home.
    config = home / "config.toml"
    config.write_text(config.read_text() + "\n[tuf.timestamp]\nexpires_hours = 1\n")
    ok("keys", "list", "--home", str(home))
    out = json.loads(ok("tuf", "timestamp", "--home", str(home), "--json").stdout)
    (ts,) = out["metadata"]
    expires = datetime.fromisoformat(ts["expires"].replace("Z", "+00:00"))
    assert expires - datetime.now(UTC) < timedelta(hours=1, minutes=1)
    r = ok("tuf", "timestamp", "--home", str(home))
    assert r.stdout.startswith("timestamp version 4, expires ") and "logged at index" in r.stdout
    config.write_text(config.read_text() + "\n[tuf.bogus]\nexpires_hours = 1\n")
    r = overt("tuf", "status", "--home", str(home))
    assert r.returncode == 2 and "[tuf.bogus] is not one of root, targets, release" in r.stderr


def test_tuf_status_reports_a_tampered_metadata_file_as_a_finding(cli_home: tuple[Path, Path]) -> None:
    """A served metadata file changed behind the conveyor's back: 'tuf status' exits 1 (evidence that does
    not verify), and commands that would sign on top of it refuse with a storage error (exit 2)."""
    home, _ = cli_home
    listing = home / "public" / "tuf" / "metadata" / "1.release.json"
    listing.write_bytes(listing.read_bytes() + b" ")
    r = overt("tuf", "status", "--home", str(home))
    assert r.returncode == 1 and "does not verify" in r.stderr and "Traceback" not in r.stderr
    r = overt("tuf", "timestamp", "--home", str(home))
    assert r.returncode == 2 and "nothing is signed on top of it" in r.stderr
