"""``overt source ...``: escrow source snapshots and toolchain inputs, list them, diff two snapshots.

The escrow and its views are :mod:`overt.source.escrow` and :mod:`overt.source.listing`; the diff is
:mod:`overt.source.diff`. This module parses arguments and prints.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from overt.cli.common import HomeOpt, JsonOpt, console, emit_json, logged_at, printable, read_file, styled
from overt.errors import UsageError
from overt.home import Home, resolve_home
from overt.keys.registry import Role
from overt.source.diff import SnapshotDiff, diff_snapshots
from overt.source.escrow import SOURCE, add_recipe, read_source
from overt.source.listing import (
    EscrowListing,
    escrow_input,
    escrow_source,
    list_escrow,
    show_escrowed,
)

app = typer.Typer(
    help="Source escrow: canonical snapshots and toolchain inputs, by digest.", no_args_is_help=True
)


@app.command()
def add(
    path: Annotated[
        Path, typer.Argument(help="a source directory or tarball (an sdist's top directory is dropped)")
    ],
    recipe: Annotated[Path | None, typer.Option(help="an overt.toml to place at the source root")] = None,
    name: Annotated[str | None, typer.Option(help="a name for the snapshot (default: the file name)")] = None,
    mtime: Annotated[
        int | None,
        typer.Option(help="set every mtime to this (default: keep a tarball's, 1980-01-01 for a directory)"),
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Escrow a canonical snapshot of a source tree; the escrow is logged (signed by the builder key)."""
    h = Home(resolve_home(home))
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    files = read_source(path, mtime=mtime)
    if recipe is not None:
        files = add_recipe(
            files, read_file(recipe), mtime if mtime is not None else max((f.mtime for f in files), default=0)
        )
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    added = escrow_source(h.escrow, files, name=name or path.name, service=h.signing_service(), key=builder)
    if json:
        emit_json(added.to_dict())
        return
    entry = added.escrowed.entry
    state = (
        f"escrowed, {logged_at(entry.log_index)}"
        if added.new
        else f"already escrowed (log index {entry.log_index})"
    )
    console.print(
        f"{entry.name}: sha256 {entry.sha256}  dirHash {entry.dir_hash}  {entry.files} files, {state}"
    )


@app.command("input")
def add_input(
    file: Annotated[Path, typer.Argument(help="a toolchain input, e.g. a build-backend wheel")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Escrow a pinned toolchain input (recipes name it by sha256); the escrow is logged."""
    h = Home(resolve_home(home))
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    added = escrow_input(h.escrow, read_file(file), name=file.name, service=h.signing_service(), key=builder)
    if json:
        emit_json(added.to_dict())
        return
    entry = added.escrowed.entry
    console.print(f"{entry.name}: sha256 {entry.sha256}, {logged_at(entry.log_index)}")


def _print_listing(listing: EscrowListing) -> None:
    # 16 hex digits, never cut: commands take the digest or a prefix of it.
    table = Table(Column("sha256", no_wrap=True, min_width=16), "kind", "name", "size", "files", "log index")
    for o in listing.objects:
        e = o.entry
        table.add_row(
            e.sha256[:16],
            e.kind,
            e.name,
            str(e.size),
            str(e.files) if e.kind == SOURCE else "-",
            str(e.log_index),
        )
    console.print(table)


@app.command()
def show(
    digest: Annotated[str | None, typer.Argument(help="sha256 (or prefix) of one escrowed object")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """List escrowed objects, or the files of one snapshot."""
    h = Home(resolve_home(home))
    if digest is None:
        listing = list_escrow(h.escrow)
        if json:
            emit_json(listing.to_dict())
        else:
            _print_listing(listing)
        return
    shown = show_escrowed(h.escrow, digest)
    if json:
        emit_json(shown.to_dict())
        return
    entry = shown.escrowed.entry
    console.print(f"{entry.name} ({entry.kind}) sha256 {entry.sha256}, {logged_at(entry.log_index)}")
    if entry.kind == SOURCE:
        console.print(f"dirHash {entry.dir_hash}")
        for f in shown.files:
            console.print(f"  {f.mode:04o} {len(f.data):>9} {printable(f.path)}")


def _print_diff(d: SnapshotDiff) -> None:
    for p in d.added:
        console.print(styled(f"+ {p}", "green"))
    for p in d.removed:
        console.print(styled(f"- {p}", "red"))
    for c in d.changed:
        console.print(styled(f"~ {c.path}", "yellow"))
        if c.old_mode != c.new_mode:
            console.print(f"    mode {c.old_mode:04o} → {c.new_mode:04o}")
        if c.diff is None:
            console.print("    (binary)")
            continue
        for line in c.diff:
            typer.echo(f"    {line}")
    if d.identical:
        console.print("no differences in file contents")


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="sha256 (or prefix) of the older snapshot")],
    b: Annotated[str, typer.Argument(help="sha256 (or prefix) of the newer snapshot")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Files added, removed and changed between two snapshots, with a unified diff of changed text files."""
    result = diff_snapshots(Home(resolve_home(home)).escrow, a, b)
    if json:
        emit_json(result.to_dict())
        return
    _print_diff(result)
