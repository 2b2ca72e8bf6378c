"""``overt serve``: the log's write API and its public/ tree over HTTP.

A server that cannot start (the address is taken, the log refuses to open, a jurisdiction it would serve has
a store that is missing, unreachable or not that jurisdiction's own) prints one ``error:`` line and exits
with status 2, so a supervisor can tell it from a server that ran and stopped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from overt.cli.common import HomeOpt, JsonOpt, console, emit_json_line, print_error
from overt.errors import Error, UsageError
from overt.home import Home, resolve_home
from overt.tlog.log import LogEndpoint

STARTUP_FAILED = 2


def serve(
    home: HomeOpt = None,
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="listen port (0: any free port; see <home>/log.server)")
    ] = 8080,
    max_connections: Annotated[
        int | None,
        typer.Option(min=1, help="connections served at once (default: from the open-file limit)"),
    ] = None,
    jurisdiction: Annotated[
        list[str] | None,
        typer.Option(
            "--jurisdiction",
            help="serve the telemetry of this jurisdiction only (repeatable; default: every configured one)",
        ),
    ] = None,
    telemetry_only: Annotated[
        bool,
        typer.Option(
            "--telemetry-only",
            help="serve the telemetry API alone (no log, no static files), beside the process serving the log",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Serve the log: POST /add, and public/ as static files; with jurisdictions configured, the telemetry
    API too (POST /v1/telemetry, GET /v1/aggregates). With --telemetry-only, the telemetry API alone: one
    such process per region can run beside the one serving the log.

    The start line (with --json, one JSON object on one line) names what is served and the URL."""
    from overt.server.log import LOG_LIMITS, serve_home, telemetry_api

    def started(url: str) -> None:
        endpoint = LogEndpoint(public=h.paths.public, url=url)
        served = sorted(serving) if serving is not None else None
        if telemetry_only:
            if json:
                emit_json_line({"url": url, "telemetry": served})
            else:
                console.print(f"serving the telemetry API of {', '.join(served or [])} on {url}")
        elif json:
            emit_json_line({**endpoint.to_dict(), **({"telemetry": served} if served is not None else {})})
        elif served is not None:
            console.print(
                f"serving {endpoint.public}, the write API and the telemetry API of {', '.join(served)} on "
                f"{endpoint.url}"
            )
        else:
            console.print(f"serving {endpoint.public} and the write API on {endpoint.url}")

    try:
        h = Home(resolve_home(home))
        api = telemetry_api(h, jurisdiction or None)
        if telemetry_only and api is None:
            raise UsageError(
                "--telemetry-only: no jurisdiction has a store, so there is no telemetry to serve "
                "('overt residency store add J' sets one up)"
            )
        serving = None if api is None else api.served()
        serve_home(
            h,
            host=host,
            port=port,
            limits=replace(LOG_LIMITS, max_connections=max_connections),
            on_started=started,
            serving=jurisdiction or None,
            telemetry_only=telemetry_only,
        )
    except Error as e:
        print_error(e, json)
        raise typer.Exit(STARTUP_FAILED) from e
