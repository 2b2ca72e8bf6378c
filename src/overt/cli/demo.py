"""``overt demo``: run :func:`overt.demo.run_demo` and print its claims, then the promise table.

Everything the demo checks lives in :mod:`overt.demo`; this command only renders the claims (``--json``: the
same object the demo writes to ``summary.json``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated

import typer

from overt.cli.common import JsonOpt, emit_json

if TYPE_CHECKING:
    from overt.demo import Claim, PromiseRow, Stage

_COLOURS = {"proved": "green", "skipped": "yellow", "not yet": "yellow"}


def _status(word: str, width: int) -> str:
    return typer.style(word.upper().ljust(width), fg=_COLOURS.get(word), bold=True)


def _print_claim(claim: Claim) -> None:
    typer.echo(f"{_status(claim.status.value, 8)} {claim.promise.value}: {claim.check}")
    typer.echo(f"         evidence: {claim.evidence}")
    if claim.recheck is None:
        typer.echo(f"         re-check: none ({claim.recheck_unavailable})")
    elif claim.recheck.exit_code == 0:
        typer.echo(f"         re-check: {claim.recheck.text}")
    else:
        typer.echo(f"         re-check (exits {claim.recheck.exit_code}, the refusal): {claim.recheck.text}")


def _print_stage(stage: Stage) -> None:
    typer.echo(f"\n== {stage.title} ==")
    typer.echo(stage.setup)
    for claim in stage.claims:
        _print_claim(claim)


def _evidence_cell(row: PromiseRow) -> str:
    """The places the evidence is in (each claim names its file; summary.json and README.md list them all)."""
    if not row.evidence:
        return row.note
    dirs = dict.fromkeys(
        e if PurePosixPath(e).parent == PurePosixPath(".") else f"{PurePosixPath(e).parent}/"
        for e in row.evidence
    )
    places = [d for d in dirs if not any(d != o and d.startswith(o) for o in dirs)]
    return f"{row.note}: {', '.join(places)}"


def _print_table(rows: tuple[PromiseRow, ...]) -> None:
    width = max(len(r.promise.value) for r in rows)
    typer.echo("\n== promises ==")
    typer.echo(f"{'promise'.ljust(width)}  {'status'.ljust(8)} evidence")
    for r in rows:
        typer.echo(f"{r.promise.value.ljust(width)}  {_status(r.status, 8)} {_evidence_cell(r)}")


def demo(
    home: Annotated[
        Path | None,
        typer.Option(help="an empty or new directory to leave the demo in (default: a new temporary one)"),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Run the end-to-end demo and print what it proved, promise by promise."""
    # Imported here: the demo pulls in the servers and every stage, which no other command needs.
    from overt.demo import run_demo

    root = home if home is not None else Path(tempfile.mkdtemp(prefix="overt-demo-"))
    printed: list[Stage] = []

    def show(stage: Stage) -> None:
        if not printed:
            typer.echo(f"overt demo in {root.absolute()} (evidence paths below are relative to it)")
        printed.append(stage)
        _print_stage(stage)

    result = run_demo(root, on_stage=None if json else show)
    if json:
        emit_json(result.to_dict())
        return
    _print_table(result.table)
    typer.echo(
        f"\n{result.root / 'README.md'} explains the layout and {result.root / 'summary.json'} holds every "
        "claim as data"
    )
