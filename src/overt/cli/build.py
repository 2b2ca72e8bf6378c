"""``overt build``: build an escrowed source in the sandbox, optionally check reproducibility, log provenance."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from overt.build.compare import REPORT_TEXT
from overt.build.conveyor import build as run_build
from overt.build.conveyor import variations_text, verdict_text
from overt.build.publish import SigningContext
from overt.cli.common import HomeOpt, JsonOpt, console, emit_json, logged_at
from overt.errors import ReproducibilityError
from overt.home import Home, resolve_home
from overt.keys.registry import Role


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
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    context = SigningContext(
        service=h.signing_service(), key=builder, builder_id=h.conveyor.provenance_builder_id
    )
    with (
        console.status("building in the sandbox" + (" twice (--check)" if check else ""), spinner="dots")
        if not json
        else nullcontext()
    ):
        try:
            report = run_build(
                h.escrow, source, context=context, publish_dir=h.public / "builds", check=check
            )
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
        f"provenance signed by builder key {builder.keyid[:16]} ({builder.jurisdiction}), "
        f"{logged_at(report.signed.receipt.index)}: {report.provenance_path}"
    )
