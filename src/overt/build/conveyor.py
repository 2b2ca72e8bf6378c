"""The conveyor's ``overt build``: run and compare (:mod:`overt.build.run`), then sign and publish
(:mod:`overt.build.publish`), in a scratch directory that is removed afterwards.

A build that fails raises before anything is signed, so no failure is ever logged as a success. A check that
finds different outputs signs nothing either: it keeps both runs' outputs and diffoscope's report under
``public/builds/<build-id>/`` and raises :class:`ReproducibilityError` naming that directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from overt.build.compare import IDENTICAL
from overt.build.publish import KeptFailure, Publication, keep_failure, sign_and_publish
from overt.build.run import LABELS, RunResult, run_and_compare
from overt.errors import ReproducibilityError
from overt.keys.context import ConveyorContext
from overt.source.escrow import Escrow

TMPFS = Path("/dev/shm")


def scratch_directory(prefix: str) -> Path:
    """A fresh directory for a build's runs, on tmpfs when there is one (faster, and its directory order
    follows creation order, which ``--check`` varies)."""
    base = TMPFS if TMPFS.is_dir() and os.access(TMPFS, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def build(
    escrow: Escrow,
    source_ref: str,
    *,
    context: ConveyorContext,
    publish_dir: Path,
    check: bool = False,
    workdir: Path | None = None,
) -> Publication:
    """Build ``source_ref`` once (or twice with variations when ``check``), sign, log and publish."""
    root = workdir or scratch_directory("overt-build-")
    try:
        result = run_and_compare(escrow, source_ref, workdir=root, check=check, now=context.service.now)
        if not result.reproducible:
            raise not_reproducible(result, keep_failure(result, publish_dir=publish_dir))
        return sign_and_publish(result, context, publish_dir=publish_dir)
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def not_reproducible(result: RunResult, kept: KeptFailure) -> ReproducibilityError:
    """The error for a check that found different outputs; it names them, the variations, and the evidence."""
    assert result.verdict is not None
    names = [*result.verdict.differing, *(f"{n} (made by one run only)" for n in result.verdict.missing)]
    files = ", ".join(p.name for p in kept.report_paths) or f"no diffoscope report: {kept.report_text}"
    verb = "differs" if len(names) == 1 else "differ"
    varied = ", ".join(LABELS[k] for k in result.varied) or "nothing"
    evidence: dict[str, object] = {"differing": list(result.verdict.differing)}
    if result.verdict.missing:
        evidence["missing"] = list(result.verdict.missing)
    return ReproducibilityError(
        f"not reproducible: {', '.join(names)} {verb} between two builds varying {varied}; nothing was "
        f"signed. Both builds' outputs and logs are kept in {kept.directory} (reference/, varied/, {files})",
        **evidence,
        directory=str(kept.directory),
        report=[str(p) for p in kept.report_paths],
    )


def verdict_text(publication: Publication) -> str:
    verdict = publication.result.verdict
    if verdict is None:
        return "built once (not checked)"
    if verdict.verdict == IDENTICAL:
        return "identical"
    return f"equivalent after normalisation ({', '.join(verdict.normalised)})"


def variations_text(result: RunResult) -> str:
    """What the second run of a check had that the first did not, as a user reads it."""
    if len(result.runs) < 2:
        return "no second build"
    ref, var = (r.variation.aspects() for r in result.runs)
    return ", ".join(f"{LABELS[k]} ({ref[k]} → {var[k]})" for k in result.varied) or "nothing"
