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
