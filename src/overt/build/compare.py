"""Comparing two builds' outputs: the verdict, and diffoscope's report when they differ.

The verdict is one of three and they are never blurred: ``identical`` (every output byte for byte, with the same
executable bit), ``equivalent after normalisation`` (some outputs differ only in archive metadata the recipe
allowed to be normalised; the verdict names them), or ``different``. A different verdict is a value, not an
exception: the conveyor keeps the evidence and refuses to sign, a rebuilder records a failed verification.

diffoscope (Debian's diffoscope or diffoscope-minimal, capped in time and size) compares the differing outputs
laid out as two trees, ``reference/`` and ``varied/``, so its text and HTML reports name each file by its
relative path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.build.normalize import normalize
from overt.build.outputs import Output

IDENTICAL = "identical"
EQUIVALENT = "equivalent after normalisation"
DIFFERENT = "different"
DIFFOSCOPE_TIMEOUT = 300
DIFFOSCOPE_MAX_REPORT = 1 << 20
REPORT_TEXT = "diffoscope.txt"
REPORT_HTML = "diffoscope.html"
_FIXED_MTIME = 315_532_800  # the trees diffoscope reads differ only in what the builds wrote


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """How two builds' outputs compare. ``differing`` and ``missing`` are empty unless the verdict is different."""

    verdict: str
    normalised: tuple[str, ...] = ()
    differing: tuple[str, ...] = ()  # in both builds, with other bytes or another executable bit
    missing: tuple[str, ...] = ()  # made by one build only

    @property
    def reproducible(self) -> bool:
        return self.verdict != DIFFERENT

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "normalised": list(self.normalised),
            "differing": list(self.differing),
            "missing": list(self.missing),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffoscopeReport:
    """diffoscope's report on the outputs that differ; ``text`` says why there is none when the paths are None."""

    text: str
    text_path: Path | None = None
    html_path: Path | None = None


def _same(*, a: Output, b: Output, normalize_formats: tuple[str, ...]) -> str | None:
    """None if ``a`` and ``b`` are the same output, IDENTICAL or EQUIVALENT if they may be called so."""
    if a.executable != b.executable:
        return None
    if a.sha256 == b.sha256:
        return IDENTICAL
    if normalize_formats and normalize(a.name, a.path.read_bytes(), normalize_formats) == normalize(
        b.name, b.path.read_bytes(), normalize_formats
    ):
        return EQUIVALENT
    return None


def compare_outputs(
    *, reference: Sequence[Output], varied: Sequence[Output], normalize_formats: tuple[str, ...]
) -> Verdict:
    """Compare two builds' outputs name by name."""
    first, second = {o.name: o for o in reference}, {o.name: o for o in varied}
    missing = tuple(sorted(set(first) ^ set(second)))
    normalised: list[str] = []
    differing: list[str] = []
    for name in sorted(set(first) & set(second)):
        same = _same(a=first[name], b=second[name], normalize_formats=normalize_formats)
        if same is None:
            differing.append(name)
        elif same == EQUIVALENT:
            normalised.append(name)
    if differing or missing:
        return Verdict(
            verdict=DIFFERENT, normalised=tuple(normalised), differing=tuple(differing), missing=missing
        )
    return Verdict(verdict=EQUIVALENT if normalised else IDENTICAL, normalised=tuple(normalised))


def _tree(root: Path, outputs: Sequence[Output], names: set[str]) -> None:
    root.mkdir(parents=True)
    for o in outputs:
        if o.name in names:
            target = root / o.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(o.path, target)
            target.chmod(o.mode)
            os.utime(target, (_FIXED_MTIME, _FIXED_MTIME))
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        os.utime(d, (_FIXED_MTIME, _FIXED_MTIME))
    os.utime(root, (_FIXED_MTIME, _FIXED_MTIME))


def diffoscope_report(
    *, reference: Sequence[Output], varied: Sequence[Output], verdict: Verdict, workdir: Path
) -> DiffoscopeReport:
    """diffoscope's text and HTML reports on the outputs ``verdict`` finds different, written in ``workdir``."""
    tool = shutil.which("diffoscope")
    if tool is None:
        return DiffoscopeReport(
            text="diffoscope is not installed (apt-get install diffoscope-minimal): no report"
        )
    names = {*verdict.differing, *verdict.missing}
    _tree(workdir / "reference", reference, names)
    _tree(workdir / "varied", varied, names)
    text, html = workdir / REPORT_TEXT, workdir / REPORT_HTML
    try:
        subprocess.run(
            [
                tool,
                "--text",
                str(text),
                "--html",
                str(html),
                "--max-report-size",
                str(DIFFOSCOPE_MAX_REPORT),
                "--max-text-report-size",
                str(DIFFOSCOPE_MAX_REPORT),
                "--no-progress",
                "reference",
                "varied",
            ],
            cwd=workdir,
            capture_output=True,
            timeout=DIFFOSCOPE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return DiffoscopeReport(text=f"diffoscope did not finish within {DIFFOSCOPE_TIMEOUT} s: no report")
    if not text.exists():
        return DiffoscopeReport(text="diffoscope wrote no report")
    return DiffoscopeReport(
        text=text.read_text(errors="replace"), text_path=text, html_path=html if html.exists() else None
    )
