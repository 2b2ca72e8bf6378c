"""``overt witness ...``: run a tlog-witness that cosigns logs it trusts.

The witness home (key, trusted logs, state, lock) is :mod:`overt.tlog.witness`; this module parses
arguments and prints. ``init_witness``, ``load_witness`` and ``trust_log`` are re-exported for the demo.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from overt.cli.common import console
from overt.errors import TransportError
from overt.tlog.witness import init_witness, load_witness, trust_log

__all__ = ["app", "init_witness", "load_witness", "trust_log"]

app = typer.Typer(help="A tlog-witness: cosigns checkpoints of logs it follows.", no_args_is_help=True)

WHome = Annotated[Path, typer.Option(help="witness home directory")]


@app.command()
def init(
    home: WHome, name: Annotated[str, typer.Option(help="witness name, e.g. witness.example/w1")]
) -> None:
    """Create a witness home with a fresh cosignature/v1 key; print its vkey."""
    signer = init_witness(home, name)
    console.print(signer.verifier().vkey())


@app.command("add-log")
def add_log(home: WHome, vkey: Annotated[str, typer.Argument(help="the log's signed-note vkey")]) -> None:
    """Trust a log (by its vkey; its name is the origin)."""
    log = trust_log(home, vkey)
    console.print(
        f"witness at {home} now follows {log.name} (a running 'overt witness serve' takes it up when restarted)",
        soft_wrap=True,
    )


@app.command()
def serve(
    home: WHome,
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="listen port")] = 8090,
) -> None:
    """Serve add-checkpoint and the monitoring checkpoint endpoint; one process per witness home."""
    from overt.server.runner import EdgeConfig, EdgeLimits, EdgeServer
    from overt.server.witness import create_app
    from overt.tlog.witness import MAX_REQUEST_BYTES

    # The witness holds the home's lock until this process ends, so a second 'serve' on the home is refused.
    with load_witness(home) as w:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family)
        except OSError as e:
            raise TransportError(f"cannot listen on {host}:{port}: {e.strerror}") from e
        following = ", ".join(sorted(w.logs)) or "no log yet"
        console.print(
            f"witness {w.signer.name} on http://{host}:{port} following {following}", soft_wrap=True
        )
        with sock:
            EdgeServer(EdgeConfig(create_app(w), EdgeLimits(max_body=MAX_REQUEST_BYTES)), sock).run()
