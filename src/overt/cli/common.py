"""Console objects and small CLI helpers shared by the command modules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from overt.errors import ConfigError
from overt.home import Home
from overt.keys.signing import Appender, LogReceipt
from overt.tlog.client import LogClient, fetcher_for, submit_entry
from overt.tlog.policy import Policy

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

HomeOpt = Annotated[Path | None, typer.Option(help="overt home (default $OVERT_HOME or ./overt-home)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
LogUrlOpt = Annotated[
    str | None,
    typer.Option(help="append through this running log server (overt serve) instead of the home's log files"),
]


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e


@contextmanager
def log_appender(home: Home, log_url: str | None) -> Iterator[Appender | None]:
    """None (append to the home's log directly) or an appender through a log server's ``POST /add``."""
    if log_url is None:
        yield None
        return
    policy = home.policy()
    with httpx.Client(timeout=120) as http:

        def append(entry: bytes) -> LogReceipt:
            proof = submit_entry(log_url, entry, policy, http)
            return LogReceipt(
                index=proof.index, tree_size=proof.checkpoint.checkpoint.tree_size, published=True
            )

        yield append


def log_client(source: str, policy: Path | None = None) -> LogClient:
    """A verifying client for the log at ``source`` (URL or directory), trusting ``policy`` or ``<source>/policy``."""
    fetch = fetcher_for(source)
    return LogClient(fetch, Policy.from_bytes(read_file(policy) if policy is not None else fetch("policy")))
