"""``overt build``: build an escrowed source in the sandbox, optionally check reproducibility, log provenance."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Annotated

import typer

from overt.build.conveyor import build as run_build
from overt.build.conveyor import verdict_text
from overt.cli.common import HomeOpt, JsonOpt, console, emit_json
from overt.errors import ReproducibilityError
from overt.home import Home, resolve_home
from overt.keys.registry import Role


def build(
    source: Annotated[str, typer.Argument(help="sha256 (or prefix) of an escrowed source snapshot")],
    check: Annotated[
        bool, typer.Option("--check", help="build twice with variations; fail if outputs differ")
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Build in the bubblewrap sandbox; sign and log the SLSA provenance of the outputs."""
    h = Home(resolve_home(home))
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    with (
        console.status("building in the sandbox" + (" twice (--check)" if check else ""), spinner="dots")
        if not json
        else nullcontext()
    ):
        try:
            report = run_build(
                h.escrow,
                source,
                service=h.signing_service(),
                builder=builder,
                builder_id=h.conveyor.builder_id,
                jurisdiction=h.conveyor.jurisdiction,
                publish_dir=h.public / "builds",
                check=check,
            )
        except ReproducibilityError as e:
            if not json and "diffoscope" in e.evidence:
                typer.echo(str(e.evidence["diffoscope"]), err=True)
            raise
    if json:
        emit_json(
            {
                "build_id": report.build_id,
                "source": report.source.sha256,
                "verdict": report.verdict.verdict if report.verdict else None,
                "normalised": list(report.verdict.normalised) if report.verdict else [],
                "outputs": [
                    {"name": o.name, "sha256": o.sha256, "size": o.size, "path": str(o.path)}
                    for o in report.outputs
                ],
                "provenance_log_index": report.signed.receipt.index,
                "provenance": str(report.directory / "provenance.dsse.json"),
                "seconds": round(report.seconds, 3),
            }
        )
        return
    console.print(
        f"built {report.source.name} ({report.source.sha256[:16]}) in {report.seconds:.1f} s: {verdict_text(report)}"
    )
    for o in report.outputs:
        console.print(f"  {o.sha256}  {o.name}")
    console.print(
        f"provenance signed by builder key {builder.keyid[:16]} ({builder.jurisdiction}), "
        f"logged at index {report.signed.receipt.index}: {report.directory / 'provenance.dsse.json'}"
    )
