"""A throwaway PostgreSQL server from Debian's packages, on loopback, in a temp dir. Not a benchmark.

The one copy of this logic: ``benchmarks/residency.py`` measures PostgreSQL on it, and the test suite
starts its servers with it (``tests/pg.py`` imports it, since benchmarks import nothing from ``tests/``).
Both run from the repository root, where ``benchmarks`` is importable.

PostgreSQL refuses to run as root, so when this runs as root the server runs as ``nobody``: its folder is
handed to ``nobody`` and every server command goes through ``runuser``.
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
    """The newest installed PostgreSQL server binaries (Debian's ``/usr/lib/postgresql/N/bin``), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres_server(bindir: Path | None = None, *, database: str = "postgres") -> Iterator[str]:
    """Run a new server for the block; yields the DSN of its ``database`` (user ``overt``, no password),
    or with ``database=""`` the server's URL alone, to append a database name to.

    ``bindir`` defaults to :func:`pg_bindir`; RuntimeError if PostgreSQL is not installed.
    """
    bindir = bindir or pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not installed (Debian package postgresql)")
    base = Path(tempfile.mkdtemp(prefix="overt-pg-"))
    os.chmod(base, 0o755)
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
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
            url = f"postgresql://overt@127.0.0.1:{port}"
            yield f"{url}/{database}" if database else url
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
