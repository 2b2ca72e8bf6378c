"""``overt build``: build an escrowed source in the sandbox, optionally check reproducibility, log provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from overt.build.compare import REPORT_TEXT
from overt.build.conveyor import build as run_build
from overt.build.conveyor import variations_text, verdict_text
from overt.cli.common import HomeOpt, JsonOpt, emit_json, logged_at, status
from overt.errors import ReproducibilityError
from overt.home import Home, resolve_home


def build(
    source: Annotated[str, typer.Argument(help="sha256 (or prefix) of an escrowed source snapshot")],
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="build twice, varying what the recipe does not pin; fail if the outputs differ"
        ),
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Build in the bubblewrap sandbox; sign and log the SLSA provenance of the outputs."""
    h = Home(resolve_home(home))
    context = h.conveyor_context()
    with status("building in the sandbox" + (" twice (--check)" if check else ""), json=json):
        try:
            report = run_build(h.escrow, source, context=context, publish_dir=h.paths.builds, check=check)
        except ReproducibilityError as e:
            directory = e.evidence.get("directory")
            kept = Path(directory) / REPORT_TEXT if isinstance(directory, str) else None
            if not json and kept is not None and kept.is_file():
                typer.echo(kept.read_text(errors="replace"), err=True)  # once; the error says where it is
            raise
    if json:
        emit_json(report.to_dict())
        return
    result = report.result
    typer.echo(
        f"built {result.source.name} ({result.source.sha256[:16]}) in {result.seconds:.1f} s: "
        f"{verdict_text(report)}"
    )
    if check:
        typer.echo(f"  the second build varied: {variations_text(result)}")
    for o in report.outputs:
        typer.echo(f"  {o.sha256}  {o.name}{'  (executable)' if o.executable else ''}")
    typer.echo(
        f"provenance signed by builder key {context.builder.keyid[:16]} ({context.builder.jurisdiction}), "
        f"{logged_at(report.signed.receipt.index)}: {report.provenance_path}"
    )
