"""A throwaway PostgreSQL server from Debian's packages, on loopback, in a temp dir.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as ``nobody``. The logic
is :mod:`benchmarks._pgserver`'s, shared with the benchmarks (which import nothing from ``tests/``);
``postgres_server()`` yields the DSN of the server's ``postgres`` database.
"""

from __future__ import annotations

from benchmarks._pgserver import pg_bindir, postgres_server

__all__ = ["pg_bindir", "postgres_server"]
