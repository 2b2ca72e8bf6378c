"""Shared fixtures. Real components only: a missing one skips the test, or fails it under CI=true."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

VECTORS = Path(__file__).parent / "vectors"


def require(condition: bool, reason: str) -> None:
    """Skip (or, under CI=true, fail) when a real component the test needs is missing."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required component missing under CI: {reason}")
    pytest.skip(reason)


def which(tool: str, *extra_dirs: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *extra_dirs])
    return shutil.which(tool, path=path)


@pytest.fixture(autouse=True)
def _private_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes client state or agent data into the real ~/.local: both XDG homes are temp dirs."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


@pytest.fixture
def vectors() -> Path:
    return VECTORS


@pytest.fixture(scope="session")
def postgres_dsn() -> object:
    from tests.pg import pg_bindir, postgres_server

    require(pg_bindir() is not None, "PostgreSQL server binaries not installed (Debian package postgresql)")
    with postgres_server() as dsn:
        yield dsn


SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
SOFTHSM_PIN = "4711-test-pin"  # TEST PIN of a throwaway SoftHSM2 token created per test session


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A real SoftHSM2 token in a temp dir, for the whole session (PKCS#11 modules initialise once per process)."""
    import subprocess

    from overt.keys.signers import HsmConfig

    module = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    util = which("softhsm2-util")
    require(module is not None and util is not None, "SoftHSM2 not installed (Debian package softhsm2)")
    assert module is not None and util is not None
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ["OVERT_HSM_PIN"] = SOFTHSM_PIN
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            "overt-test",
            "--so-pin",
            "so-" + SOFTHSM_PIN,
            "--pin",
            SOFTHSM_PIN,
        ],
        check=True,
        capture_output=True,
    )
    return HsmConfig(module=module, token="overt-test", pin_env="OVERT_HSM_PIN")


@pytest.fixture
def conveyor(tmp_path: Path) -> object:
    """A home in jurisdiction CH with an active builder key (software) and a release key, whose builder registry
    lists the home's own builder id (log entry 0)."""
    from overt.distribute.testbed import conveyor_home

    return conveyor_home(tmp_path / "conveyor", origin="conveyor.example/log", jurisdiction="CH")


@pytest.fixture(scope="session")
def sandbox() -> None:
    """bubblewrap that can create the build sandbox here."""
    from overt.build.sandbox import check_sandbox
    from overt.errors import ConfigError

    try:
        check_sandbox()
    except ConfigError as e:
        require(False, f"no build sandbox: {e}")


# ../shared/corpus/pypi/README.md: upstream files the tests fetch (never committed) and their published digests.
CORPUS = {
    "flit_core-3.6.0-py3-none-any.whl": "7661029dedadd456c1d94e0a4765222447f00808bb1fcc767e4270a883ba8b4c",
    "flit_core-3.9.0-py3-none-any.whl": "7aada352fb0c7f5538c4fafeddf314d3a6a92ee8e2b1de70482329e42de70301",
    "idna-3.7-py3-none-any.whl": "82fee1fc78add43492d3a1898bfa6d8a904cc97d8427f683ed8e798d07761aa0",
    "idna-3.7.tar.gz": "028ff3aadf0609c1fd278d8ea3089299412a7a8b9bd005dd08b9f8285bcb5cfc",
    "tomli-2.0.1-py3-none-any.whl": "939de3e7a6161af0c887ef91b7d41a53e7c5a1ca976325f429cb46ea9bc30ecc",
    "tomli-2.0.1.tar.gz": "de526c12914f0c550d15924c62d72abc48d6fe7364aa87328337a31007fe8a4f",
}
_CORPUS_SPECS = [
    ("tomli==2.0.1", "--no-binary"),
    ("idna==3.7", "--no-binary"),
    ("tomli==2.0.1", "--only-binary"),
    ("idna==3.7", "--only-binary"),
    ("flit_core==3.6.0", "--only-binary"),
    ("flit_core==3.9.0", "--only-binary"),
]


def corpus_dir() -> Path:
    return Path(os.environ.get("OVERT_CORPUS_CACHE", Path.home() / ".cache" / "overt-test-corpus"))


def fetch_corpus() -> dict[str, Path]:
    """Download the corpus with pip (cached), check every sha256, and return name → path."""
    import hashlib
    import subprocess
    import sys

    cache = corpus_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for spec, mode in _CORPUS_SPECS:
        name = spec.replace("==", "-")
        target = f"{name}.tar.gz" if mode == "--no-binary" else f"{name}-py3-none-any.whl"
        if (cache / target).exists():
            continue
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                mode,
                ":all:",
                spec,
                "-d",
                str(cache),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    out = {}
    for name, digest in CORPUS.items():
        path = cache / name
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != digest:
            path.unlink()
            raise AssertionError(f"{name}: sha256 {got}, expected {digest} (deleted; fetch again)")
        out[name] = path
    return out


@pytest.fixture(scope="session")
def corpus() -> dict[str, Path]:
    try:
        return fetch_corpus()
    except Exception as e:  # no network or no PyPI: skip, or fail under CI
        require(False, f"cannot fetch the PyPI corpus: {e}")
        raise
