"""How the monitor fetches over HTTP: overt's bounded GET, plus a deadline on each whole response.

httpx's timeouts bound each read, not a response: a server that trickles a byte a second keeps one request
alive for ever, and a ``--once`` run with it. :func:`monitor_fetcher` measures the wall time of each
response while it streams and gives up past :data:`REQUEST_DEADLINE` seconds (a
:class:`~overt.errors.TransportError` saying so), as it gives up past the size limits overt's own fetcher
has (:data:`~overt.tlog.client.MAX_CHECKPOINT_BYTES`, :data:`~overt.tlog.client.MAX_BUNDLE_BYTES`).

It also keeps what a partial tile's failure was: :class:`~overt.tlog.client.LogClient` falls back to the full
tile when a partial one fails (tlog-tiles allows a partial tile to be gone once the full one exists), and the
full tile's 404 would hide why the partial one failed (cut short, say). The full tile's failure then names
both. :func:`not_found` tells a 404 (the resource does not exist) from every other failure.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from overt.errors import TransportError
from overt.tlog.client import (
    MAX_BUNDLE_BYTES,
    MAX_CHECKPOINT_BYTES,
    RESPONSE_DEADLINE,
    Fetch,
    directory_fetcher,
    get_bounded,
)

REQUEST_DEADLINE = RESPONSE_DEADLINE  # seconds one response may take, first byte to last
READ_TIMEOUT = 30.0


def not_found(error: TransportError) -> bool:
    """Whether the server answered 404 (or the directory has no such file): the resource does not exist."""
    return error.evidence.get("status") == 404 or (
        "path" in error.evidence and str(error).endswith("does not exist")
    )


def monitor_fetcher(source: str, *, deadline: float = REQUEST_DEADLINE) -> Fetch:
    """A fetcher for ``source`` (an http(s) prefix, or a directory) with the module docstring's deadline."""
    if not source.startswith(("http://", "https://")):
        return directory_fetcher(Path(source))
    timeout = httpx.Timeout(min(READ_TIMEOUT, deadline), connect=min(10.0, deadline))
    http = httpx.Client(timeout=timeout, headers={"Accept-Encoding": "gzip, identity"})
    base = source.rstrip("/") + "/"
    partial_failures: dict[str, TransportError] = {}  # full tile path -> why its partial tile failed

    def fetch(rel: str) -> bytes:
        limit = MAX_CHECKPOINT_BYTES if rel == "checkpoint" else MAX_BUNDLE_BYTES
        try:
            data = get_bounded(http, base + rel, limit=limit, deadline=deadline)
        except TransportError as e:
            partial = partial_failures.pop(rel, None)
            if ".p/" in rel and not not_found(e):
                partial_failures[rel.split(".p/")[0]] = e
            if partial is not None:
                raise TransportError(
                    f"{partial}; and the full tile it may stand for is not served either ({e})",
                    url=base + rel,
                ) from e
            raise
        partial_failures.pop(rel, None)
        return data

    return fetch
