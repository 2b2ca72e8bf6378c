"""A failed --check keeps its evidence: both builds' outputs, their logs and diffoscope's report, signing nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from overt.errors import ReproducibilityError
from tests.build.helpers import escrow_tree, log_size, run
from tests.conftest import require

EMBEDS_TIME = """
[build]
steps = ["mkdir -p out", "echo version 1.0 > out/info.txt", "date -u +built-at-%s.%N >> out/info.txt", "echo same > out/same.txt"]
outputs = ["out/*.txt"]
"""


def test_a_failed_check_keeps_both_outputs_and_the_report(conveyor, sandbox, tmp_path):
    require(
        shutil.which("diffoscope") is not None, "diffoscope not installed (Debian package diffoscope-minimal)"
    )
    entry = escrow_tree(conveyor, tmp_path, {"README": "r\n"}, EMBEDS_TIME)
    before = log_size(conveyor)
    with pytest.raises(ReproducibilityError) as e:
        run(conveyor, entry, check=True)
    kept = Path(e.value.evidence["directory"])
    assert kept.parent == conveyor.paths.public / "builds" and str(kept) in str(e.value)
    ref, var = (
        (kept / "reference" / "out" / "info.txt").read_text(),
        (kept / "varied" / "out" / "info.txt").read_text(),
    )
    assert (
        ref.startswith("version 1.0\nbuilt-at-") and var.startswith("version 1.0\nbuilt-at-") and ref != var
    )
    assert (kept / "reference" / "out" / "same.txt").read_text() == (
        kept / "varied" / "out" / "same.txt"
    ).read_text()
    text = (kept / "diffoscope.txt").read_text()
    assert "reference/out/info.txt" in text and "same.txt" not in text
    assert "info.txt" in (kept / "diffoscope.html").read_text()
    assert e.value.evidence["report"] == [str(kept / "diffoscope.txt"), str(kept / "diffoscope.html")]
    result = json.loads((kept / "result.json").read_text())
    assert result["verdict"]["verdict"] == "different" and result["verdict"]["differing"] == ["out/info.txt"]
    assert [r["variation"]["name"] for r in result["runs"]] == ["reference", "varied"]
    assert (kept / "reference.log").is_file() and (kept / "varied.log").is_file()
    assert not (kept / "provenance.dsse.json").exists()
    assert log_size(conveyor) == before  # nothing signed, nothing logged
