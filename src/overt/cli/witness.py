"""``overt witness ...``: run a tlog-witness that cosigns logs it trusts.

The witness home (key, trusted logs, state, lock) is :mod:`overt.tlog.witness`; this module parses
arguments and prints.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from overt.cli.common import JsonOpt, console, emit_json, emit_json_line
from overt.errors import TransportError, UsageError
from overt.tlog.witness import (
    FollowedLog,
    WitnessEndpoint,
    WitnessIdentity,
    init_witness,
    load_witness,
    trust_log,
)

app = typer.Typer(help="A tlog-witness: cosigns checkpoints of logs it follows.", no_args_is_help=True)

WHome = Annotated[Path, typer.Option(help="witness home directory")]
SHome = Annotated[
    Path, typer.Option("--home", help="witness home directory, or an auditor home (its witness/)")
]


@app.command()
def init(
    home: WHome,
    name: Annotated[str, typer.Option(help="witness name, e.g. witness.example/w1")],
    json: JsonOpt = False,
) -> None:
    """Create a witness home with a fresh cosignature/v1 key (or open the existing one); print its vkey."""
    if home.exists() and not home.is_dir():
        raise UsageError(f"{home} is not a directory: --home names the directory to create the witness in")
    identity = WitnessIdentity.of(home, init_witness(home, name))
    if json:
        emit_json(identity.to_dict())
        return
    typer.echo(identity.vkey)


@app.command("add-log")
def add_log(
    home: WHome,
    vkey: Annotated[str, typer.Argument(help="the log's signed-note vkey")],
    json: JsonOpt = False,
) -> None:
    """Trust a log (by its vkey; its name is the origin)."""
    followed = FollowedLog(home=home, origin=trust_log(home, vkey).name, vkey=vkey)
    if json:
        emit_json(followed.to_dict())
        return
    console.print(
        f"witness at {home} now follows {followed.origin} "
        "(a running 'overt witness serve' takes it up when restarted)"
    )


def _witness_home(home: Path) -> Path:
    """``home``, or the witness inside it when it is an auditor home (``overt auditor init``)."""
    inner = home / "witness"
    if not (home / "witness.skey").exists() and (inner / "witness.skey").is_file():
        return inner
    return home


@app.command()
def serve(
    home: SHome,
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="listen port")] = 8090,
    json: JsonOpt = False,
) -> None:
    """Serve add-checkpoint and the monitoring checkpoint endpoint; one process per witness home.

    The start line (with --json, one JSON object on one line) names the witness, its URL and its logs."""
    from overt.server.runner import EdgeConfig, EdgeLimits, EdgeServer
    from overt.server.witness import create_app
    from overt.tlog.witness import MAX_REQUEST_BYTES

    # The witness holds the home's lock until this process ends, so a second 'serve' on the home is refused.
    with load_witness(_witness_home(home)) as w:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family)
        except OSError as e:
            raise TransportError(f"cannot listen on {host}:{port}: {e.strerror}") from e
        except (OverflowError, ValueError) as e:  # a host that is not an address family's address
            raise TransportError(f"cannot listen on {host}:{port}: {e}") from e
        bound = sock.getsockname()[1]  # the port the system chose for --port 0
        url = f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
        endpoint = WitnessEndpoint.of(w, url)
        if json:
            emit_json_line(endpoint.to_dict())
        else:
            following = ", ".join(endpoint.following) or "no log yet"
            console.print(f"witness {endpoint.witness} on {endpoint.url} following {following}")
        with sock:
            EdgeServer(EdgeConfig(create_app(w), EdgeLimits(max_body=MAX_REQUEST_BYTES)), sock).run()
