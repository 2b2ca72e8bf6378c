"""A throwaway PostgreSQL server from Debian's packages, on loopback, in a temp dir.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as ``nobody``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from overt.server.runner import free_port


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres_server() -> Iterator[str]:
    bindir = pg_bindir()
    assert bindir is not None
    base = Path(tempfile.mkdtemp(prefix="overt-pg-"))
    os.chmod(base, 0o755)
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "nobody", "nogroup")
        prefix = ["runuser", "-u", "nobody", "--"]
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=base)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "overt", "--no-sync")
        opts = f"-k {base} -p {port} -c listen_addresses=127.0.0.1"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start")
        try:
            yield f"postgresql://overt@127.0.0.1:{port}/postgres"
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
