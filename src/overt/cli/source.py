"""``overt source ...``: escrow source snapshots and toolchain inputs, list them, diff two snapshots."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from overt.cli.common import HomeOpt, JsonOpt, console, emit_json, logged_at, read_file, styled
from overt.errors import UsageError
from overt.home import Home, resolve_home
from overt.keys.registry import Role
from overt.source.escrow import SOURCE, EscrowEntry, add_recipe, read_source, snapshot_files
from overt.source.snapshot import FILE

app = typer.Typer(
    help="Source escrow: canonical snapshots and toolchain inputs, by digest.", no_args_is_help=True
)


def _entry_dict(e: EscrowEntry, h: Home) -> dict[str, object]:
    return {**e.to_dict(), "path": str(h.escrow.directory / e.sha256)}


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
    entry, signed = h.escrow.add_source(
        files, name=name or path.name, service=h.signing_service(), key=builder
    )
    if json:
        emit_json({"source": _entry_dict(entry, h), "new": signed is not None})
        return
    state = (
        f"escrowed, {logged_at(entry.log_index)}"
        if signed
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
    entry, signed = h.escrow.add_input(
        read_file(file), name=file.name, service=h.signing_service(), key=builder
    )
    if json:
        emit_json({"input": _entry_dict(entry, h), "new": signed is not None})
        return
    console.print(f"{entry.name}: sha256 {entry.sha256}, {logged_at(entry.log_index)}")


@app.command()
def show(
    digest: Annotated[str | None, typer.Argument(help="sha256 (or prefix) of one escrowed object")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """List escrowed objects, or the files of one snapshot."""
    h = Home(resolve_home(home))
    if digest is None:
        entries = h.escrow.entries()
        if json:
            emit_json({"escrow": [_entry_dict(e, h) for e in entries]})
            return
        # 16 hex digits, never cut: commands take the digest or a prefix of it.
        table = Table(
            Column("sha256", no_wrap=True, min_width=16), "kind", "name", "size", "files", "log index"
        )
        for e in entries:
            table.add_row(
                e.sha256[:16],
                e.kind,
                e.name,
                str(e.size),
                str(e.files) if e.kind == SOURCE else "-",
                str(e.log_index),
            )
        console.print(table)
        return
    entry = h.escrow.get(digest)
    files = snapshot_files(h.escrow.read(entry)) if entry.kind == SOURCE else []
    listing = [
        {"path": f.path, "kind": f.kind, "mode": oct(f.mode), "mtime": f.mtime, "size": len(f.data)}
        for f in files
    ]
    if json:
        emit_json({**_entry_dict(entry, h), "entries": listing})
        return
    console.print(f"{entry.name} ({entry.kind}) sha256 {entry.sha256}, {logged_at(entry.log_index)}")
    if entry.kind == SOURCE:
        console.print(f"dirHash {entry.dir_hash}")
        for item in listing:
            console.print(f"  {item['mode']} {item['size']:>9} {item['path']}")


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="sha256 (or prefix) of the older snapshot")],
    b: Annotated[str, typer.Argument(help="sha256 (or prefix) of the newer snapshot")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Files added, removed and changed between two snapshots, with a unified diff of changed text files."""
    h = Home(resolve_home(home))
    ea, eb = h.escrow.get(a), h.escrow.get(b)
    if ea.kind != SOURCE or eb.kind != SOURCE:
        raise UsageError("diff compares two source snapshots, not toolchain inputs")
    fa = {f.path: f for f in snapshot_files(h.escrow.read(ea)) if f.kind == FILE}
    fb = {f.path: f for f in snapshot_files(h.escrow.read(eb)) if f.kind == FILE}
    added = sorted(set(fb) - set(fa))
    removed = sorted(set(fa) - set(fb))
    changed = sorted(p for p in set(fa) & set(fb) if fa[p].data != fb[p].data or fa[p].mode != fb[p].mode)
    if json:
        emit_json({"a": ea.sha256, "b": eb.sha256, "added": added, "removed": removed, "changed": changed})
        return
    for p in added:
        console.print(styled(f"+ {p}", "green"))
    for p in removed:
        console.print(styled(f"- {p}", "red"))
    for p in changed:
        console.print(styled(f"~ {p}", "yellow"))
        try:
            old, new = fa[p].data.decode().splitlines(), fb[p].data.decode().splitlines()
        except UnicodeDecodeError:
            console.print("    (binary)")
            continue
        for line in list(difflib.unified_diff(old, new, f"a/{p}", f"b/{p}", lineterm=""))[:200]:
            typer.echo(f"    {line}")
    if not (added or removed or changed):
        console.print("no differences in file contents")
