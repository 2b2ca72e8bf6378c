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
