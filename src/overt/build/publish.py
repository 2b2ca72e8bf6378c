"""Sign and publish: turn a reproducible :class:`~overt.build.run.RunResult` into signed, logged SLSA provenance
and published outputs; keep the evidence of one that is not.

A signed build, under ``public/builds/<build-id>/``::

    <output path>             each output at its path relative to the build directory, executable bit kept
    provenance.dsse.json      the DSSE envelope of the in-toto statement (subjects named by relative path)
    build.log                 the reference run's log (its sha256 is a provenance byproduct)
    environment.json          the installed Debian packages the build saw (its sha256 is the digest of the
                              ``environment:debian`` resolved dependency; none on a host without dpkg)

A failed check, under the same directory, with nothing signed::

    reference/<output path>   the first run's outputs
    varied/<output path>      the second run's outputs
    diffoscope.txt, .html     diffoscope's report on the outputs that differ
    reference.log, varied.log the two runs' logs
    environment.json          the environment both runs saw
    result.json               the run result (variations applied, verdict, digests)

The provenance records the variations each run actually had (``internalParameters.variations``). The
:class:`~overt.keys.context.ConveyorContext` names the key, the signing service and the builder id, so an
independent rebuilder signs with its own.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.atomic import atomic_write
from overt.attest.provenance import BuildDefinition, Builder, BuildMetadata, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor, format_timestamp
from overt.build.compare import REPORT_HTML, REPORT_TEXT, Verdict
from overt.build.environment import ENVIRONMENT_FILE
from overt.build.outputs import PUBLISHED_BESIDE, Output
from overt.build.run import RunResult
from overt.keys.context import ConveyorContext
from overt.keys.signing import Signed
from overt.source.escrow import EscrowEntry

BUILD_TYPE = "https://overt.dev/build/bwrap/v1"
PROVENANCE_FILE, LOG_FILE, _ = PUBLISHED_BESIDE
RESULT_FILE = "result.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Publication:
    """A signed, logged and published build."""

    result: RunResult
    outputs: tuple[Output, ...]  # as published: paths under ``directory``
    signed: Signed
    directory: Path

    @property
    def build_id(self) -> str:
        return self.result.build_id

    @property
    def verdict(self) -> Verdict | None:
        return self.result.verdict

    @property
    def provenance_path(self) -> Path:
        return self.directory / PROVENANCE_FILE

    def to_dict(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "build_id": self.build_id,
            "source": self.result.source.sha256,
            "verdict": verdict.verdict if verdict else None,
            "normalised": list(verdict.normalised) if verdict else [],
            "variations": self.result.variations(),
            "outputs": [o.to_dict() | {"path": str(o.path)} for o in self.outputs],
            "provenance_log_index": self.signed.receipt.index,
            "provenance": str(self.provenance_path),
            "environment": env.sha256 if (env := self.result.environment) is not None else None,
            "directory": str(self.directory),
            "seconds": round(self.result.seconds, 3),
        }


def _descriptor(entry: EscrowEntry) -> ResourceDescriptor:
    digest = {"sha256": entry.sha256} | ({"dirHash": entry.dir_hash} if entry.dir_hash else {})
    return ResourceDescriptor(
        name=entry.name,
        uri=f"escrow/{entry.sha256}",
        digest=digest,
        annotations={"escrowLogIndex": entry.log_index},
    )


def provenance_for(result: RunResult, *, builder_id: str, jurisdiction: str) -> Provenance:
    """The SLSA Provenance v1 predicate for ``result`` built by ``builder_id`` in ``jurisdiction``."""
    internal: dict[str, Any] = {
        "jurisdiction": jurisdiction,
        "sandbox": "bubblewrap",
        "checked": result.verdict is not None,
        "variations": result.variations(),
    }
    if result.verdict is not None:
        internal["reproducibility"] = result.verdict.verdict
        if result.verdict.normalised:
            internal["normalised"] = list(result.verdict.normalised)
    source = result.source
    return Provenance(
        build_definition=BuildDefinition(
            build_type=BUILD_TYPE,
            external_parameters={
                "source": {
                    "name": source.name,
                    "uri": f"escrow/{source.sha256}",
                    "digest": {"sha256": source.sha256, "dirHash": source.dir_hash},
                },
                "recipe": result.recipe.to_dict(),
            },
            internal_parameters=internal,
            resolved_dependencies=(
                _descriptor(source),
                *(_descriptor(t) for t in result.toolchain),
                *((result.environment.descriptor(),) if result.environment is not None else ()),
            ),
        ),
        run_details=RunDetails(
            builder=Builder(id=builder_id),
            metadata=BuildMetadata(
                invocation_id=result.invocation_id,
                started_on=format_timestamp(result.started),
                finished_on=format_timestamp(result.finished),
            ),
            byproducts=(ResourceDescriptor(name=LOG_FILE, digest={"sha256": result.reference.log_sha256}),),
        ),
    )


def _copy_outputs(outputs: tuple[Output, ...], dest: Path) -> tuple[Output, ...]:
    published = []
    for o in outputs:
        target = dest / o.name
        atomic_write(target, o.path.read_bytes(), mode=o.mode)
        target.chmod(o.mode)  # atomic_write's mode passes through this process's umask
        published.append(
            Output(name=o.name, sha256=o.sha256, size=o.size, executable=o.executable, path=target)
        )
    return tuple(published)


def sign_and_publish(result: RunResult, context: ConveyorContext, *, publish_dir: Path) -> Publication:
    """Sign (and so log) the provenance of a reproducible ``result``, then publish it with the outputs."""
    if not result.reproducible:
        raise ValueError("a build whose check found different outputs is never signed")
    prov = provenance_for(result, builder_id=context.builder_id, jurisdiction=context.jurisdiction)
    subject = tuple(
        ResourceDescriptor(name=o.name, digest={"sha256": o.sha256}) for o in result.reference.outputs
    )
    signed = context.service.sign(context.builder, prov.statement(subject))
    dest = publish_dir / result.build_id
    outputs = _copy_outputs(result.reference.outputs, dest)
    atomic_write(dest / PROVENANCE_FILE, signed.entry)
    shutil.copyfile(result.reference.log_path, dest / LOG_FILE)
    _write_environment(result, dest)
    return Publication(result=result, outputs=outputs, signed=signed, directory=dest)


def _write_environment(result: RunResult, dest: Path) -> None:
    if result.environment is not None:
        atomic_write(dest / ENVIRONMENT_FILE, result.environment.to_bytes())


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptFailure:
    """Where a failed check's evidence was kept, and diffoscope's text report (or why there is none)."""

    directory: Path
    report_text: str
    report_paths: tuple[Path, ...]  # diffoscope.txt and diffoscope.html, those that were written


def keep_failure(result: RunResult, *, publish_dir: Path) -> KeptFailure:
    """Keep both runs' outputs, their logs and diffoscope's report under ``publish_dir/<build-id>/``."""
    if result.reproducible or result.report is None:
        raise ValueError("only a check that found different outputs leaves a failure to keep")
    dest = publish_dir / result.build_id
    for run in result.runs:
        name = run.variation.name
        _copy_outputs(run.outputs, dest / name)
        shutil.copyfile(run.log_path, dest / f"{name}.log")
    kept = []
    for src, file in ((result.report.text_path, REPORT_TEXT), (result.report.html_path, REPORT_HTML)):
        if src is not None:
            shutil.copyfile(src, dest / file)
            kept.append(dest / file)
    _write_environment(result, dest)
    atomic_write(dest / RESULT_FILE, (json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n").encode())
    return KeptFailure(directory=dest, report_text=result.report.text, report_paths=tuple(kept))
