"""Comparing two builds' outputs: the verdict, and diffoscope's report when they differ.

The verdict is one of three and they are never blurred: ``identical`` (every output byte for byte),
``equivalent after normalisation`` (some outputs differ only in archive metadata the recipe allowed to be
normalised; the report names them), or different, which raises :class:`ReproducibilityError` with
diffoscope's text report (Debian's diffoscope or diffoscope-minimal, capped in time and size).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from overt.build.normalize import normalize
from overt.errors import ReproducibilityError

IDENTICAL = "identical"
EQUIVALENT = "equivalent after normalisation"
DIFFOSCOPE_TIMEOUT = 300
DIFFOSCOPE_MAX_REPORT = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    verdict: str
    normalised: tuple[str, ...] = ()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def diffoscope_report(a: Path, b: Path, report: Path) -> str:
    """diffoscope's text report for ``a`` vs ``b`` (written to ``report``), or why there is none."""
    tool = shutil.which("diffoscope")
    if tool is None:
        return "diffoscope is not installed (apt-get install diffoscope-minimal): no report"
    try:
        subprocess.run(
            [
                tool,
                "--text",
                str(report),
                "--max-report-size",
                str(DIFFOSCOPE_MAX_REPORT),
                "--max-text-report-size",
                str(DIFFOSCOPE_MAX_REPORT),
                "--no-progress",
                str(a),
                str(b),
            ],
            capture_output=True,
            timeout=DIFFOSCOPE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"diffoscope did not finish within {DIFFOSCOPE_TIMEOUT} s"
    return report.read_text(errors="replace") if report.exists() else "diffoscope wrote no report"


def compare_outputs(
    first: Mapping[str, Path],
    second: Mapping[str, Path],
    *,
    normalize_formats: tuple[str, ...],
    workdir: Path,
) -> Verdict:
    """Compare two builds' outputs by name; raise ReproducibilityError with a diffoscope report if they differ."""
    if set(first) != set(second):
        raise ReproducibilityError(
            "the two builds produced different sets of outputs",
            only_first=sorted(set(first) - set(second)),
            only_second=sorted(set(second) - set(first)),
        )
    normalised: list[str] = []
    differing: list[str] = []
    for name in sorted(first):
        if _sha(first[name]) == _sha(second[name]):
            continue
        if normalize_formats:
            a = normalize(name, first[name].read_bytes(), normalize_formats)
            b = normalize(name, second[name].read_bytes(), normalize_formats)
            if a == b:
                normalised.append(name)
                continue
        differing.append(name)
    if differing:
        reports = []
        for i, name in enumerate(differing):
            reports.append(diffoscope_report(first[name], second[name], workdir / f"diffoscope-{i}.txt"))
        raise ReproducibilityError(
            f"not reproducible: {', '.join(differing)} differ between two builds",
            differing=differing,
            diffoscope="\n".join(reports)[:DIFFOSCOPE_MAX_REPORT],
        )
    return Verdict(verdict=EQUIVALENT if normalised else IDENTICAL, normalised=tuple(normalised))
