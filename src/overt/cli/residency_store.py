"""``overt residency store add|list``, ``backup``, ``aggregates`` and ``send``: jurisdiction stores, their
backups, and the tenant's side of the telemetry API.

Each command parses its arguments, calls one function of :mod:`overt.residency.provision`,
:mod:`overt.residency.stores` or :mod:`overt.residency.client`, and renders the result (``to_dict()`` for
``--json``). Mounted by :mod:`overt.cli.residency`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from overt.cli.common import HomeOpt, JsonOpt, console, emit_json, read_file
from overt.errors import FormatError, UsageError
from overt.home import Home, resolve_home

app = typer.Typer(no_args_is_help=True)
store_app = typer.Typer(
    help="Jurisdiction stores: where each jurisdiction's telemetry lives (SQLite or PostgreSQL).",
    no_args_is_help=True,
)
app.add_typer(store_app, name="store")

UrlOpt = Annotated[
    str, typer.Option("--url", help="base URL of the overt server, e.g. https://ch.vendor.example")
]
TokenFileOpt = Annotated[
    Path, typer.Option("--token-file", help="file holding the tenant's API token (ovt_...)")
]


def _token(path: Path) -> str:
    from overt.residency.client import read_token

    return read_token(read_file(path, limit=4096).decode("utf-8", "replace"))


@store_app.command("add")
def store_add(
    jurisdiction: Annotated[str, typer.Argument(help="jurisdiction code, e.g. CH")],
    store: Annotated[str, typer.Option("--store", help="sqlite (default) or postgres")] = "sqlite",
    root: Annotated[
        Path | None, typer.Option(help="the jurisdiction's root folder (default <home>/jurisdictions/<J>)")
    ] = None,
    dsn: Annotated[
        str | None, typer.Option("--dsn", help="PostgreSQL DSN of the jurisdiction's database")
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Configure a jurisdiction, make its stamped store and its access log (idempotent)."""
    from overt.residency.config import JurisdictionConfig
    from overt.residency.provision import add_store

    h = Home(resolve_home(home))
    config = JurisdictionConfig(store=store, root=str(root) if root else "", postgres_dsn=dsn or "")
    setup = add_store(h, jurisdiction, config)
    if json:
        emit_json(setup.to_dict())
        return
    console.print(
        f"jurisdiction {setup.jurisdiction}: {setup.store} store at {setup.location}, stamped "
        f"{setup.jurisdiction}; root {setup.root}; access log {setup.access_log}"
    )


@store_app.command("list")
def store_list(
    home: HomeOpt = None,
    events: Annotated[
        bool,
        typer.Option("--events", help="count the events each store holds per tenant (reads every store)"),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """List the configured jurisdictions, their stores and whether each opens as its own."""
    from overt.residency.provision import list_stores

    setups = list_stores(Home(resolve_home(home)), events=events)
    if json:
        emit_json({"jurisdictions": [s.to_dict() for s in setups]})
        return
    if not setups:
        console.print("no jurisdiction has a store yet: 'overt residency store add J' makes one")
        return
    table = Table("jurisdiction", "store", "where", "root", "access log", "status", *(["events"] * events))
    for s in setups:
        counts = [] if not events else ["-" if s.events is None else _counts(s.events)]
        table.add_row(s.jurisdiction, s.store, s.location, str(s.root), s.access_log, s.status, *counts)
    console.print(table)


def _counts(events: Mapping[str, int]) -> str:
    return ", ".join(f"{tenant}: {n}" for tenant, n in events.items()) or "none"


@app.command("backup")
def backup(
    jurisdiction: Annotated[str, typer.Argument(help="jurisdiction code, e.g. CH")],
    to: Annotated[Path, typer.Option("--to", help="a new or empty folder under the jurisdiction's own root")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Back up a jurisdiction's store, only into a folder under that jurisdiction's own root."""
    from overt.residency.config import configured_jurisdiction
    from overt.residency.stores import backup_store

    h = Home(resolve_home(home))
    configured_jurisdiction(h, jurisdiction)  # a code that names no country, or no store, says so first
    done = backup_store(h, jurisdiction, to)
    if json:
        emit_json(done.to_dict())
        return
    console.print(
        f"backed up {done.jurisdiction}'s store ({done.batches} batches, {done.events} events) to {done.path}"
    )


@app.command("aggregates")
def aggregates(
    url: UrlOpt,
    token_file: TokenFileOpt,
    since: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD")] = None,
    json: JsonOpt = False,
) -> None:
    """Read your tenant's detections per rule per day, computed in its home jurisdiction."""
    from overt.residency.client import fetch_aggregates
    from overt.residency.ingest import parse_day

    try:
        first, last = parse_day(since, "--since"), parse_day(until, "--until")
    except FormatError as e:
        raise UsageError(str(e)) from e
    found = fetch_aggregates(url, _token(token_file), since=first, until=last)
    if json:
        emit_json(found)
        return
    rows: list[dict[str, Any]] = found["aggregates"]
    console.print(
        f"tenant {found.get('tenant')}, computed in {found.get('jurisdiction')}: {len(rows)} rule-days"
    )
    if rows:
        table = Table("day", "rule", "events", "malicious", "suspicious", "clean")
        for r in rows:
            table.add_row(
                *(str(r.get(k)) for k in ("day", "rule_id", "events", "malicious", "suspicious", "clean"))
            )
        console.print(table)


@app.command("send")
def send(
    batch: Annotated[Path, typer.Argument(help="a telemetry batch (JSON) to send")],
    url: UrlOpt,
    token_file: TokenFileOpt,
    json: JsonOpt = False,
) -> None:
    """Send a telemetry batch as an endpoint does, and say where it landed."""
    from overt.residency.client import send_batch
    from overt.residency.telemetry import MAX_BATCH_BYTES

    landed = send_batch(url, _token(token_file), read_file(batch, limit=MAX_BATCH_BYTES + 1))
    if json:
        emit_json(landed.to_dict())
        return
    again = " (sent before: stored once)" if landed.duplicate else ""
    console.print(
        f"batch {landed.batch_id}: {landed.events} {'event' if landed.events == 1 else 'events'} stored in "
        f"{landed.jurisdiction} for tenant "
        f"{landed.tenant}{again}"
    )
