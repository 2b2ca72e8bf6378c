"""--check varies, inside the sandbox where the build sees it, everything the recipe does not pin, and records
what it varied; run-and-compare needs no key, and its result is signed by whoever the caller chooses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from overt.attest.provenance import Provenance
from overt.attest.verify import verify_statement
from overt.build.compare import DIFFERENT, IDENTICAL
from overt.build.publish import sign_and_publish
from overt.build.run import LABELS, run_and_compare
from overt.errors import BuildError, ReproducibilityError
from tests.build.helpers import current_builder, escrow_tree, log_size, run
from tests.conftest import require

# aspect: (the step that writes what the build sees of it, the output, what pins it in the recipe)
PROBES = {
    "TZ": ("date +%z > out/tz.txt", "out/tz.txt", '[build.env]\nTZ = "UTC"\n'),
    "locale": (
        'echo "LANG=$LANG LC_ALL=$LC_ALL" > out/locale.txt',
        "out/locale.txt",
        '[build.env]\nLC_ALL = "C.UTF-8"\n',
    ),
    "umask": ("umask > out/umask.txt", "out/umask.txt", ""),
    "buildPath": ("pwd > out/pwd.txt", "out/pwd.txt", ""),
}


def _recipe(step: str, output: str, *, pinned: str, extra_build: str) -> str:
    return f'[build]\nsteps = ["mkdir -p out", {json.dumps(step)}]\noutputs = ["{output}"]\n{extra_build}{pinned}'


@pytest.mark.parametrize("aspect", PROBES)
def test_each_unpinned_variation_is_visible_inside_the_sandbox(conveyor, sandbox, tmp_path, aspect):
    require(
        shutil.which("diffoscope") is not None, "diffoscope not installed (Debian package diffoscope-minimal)"
    )
    step, output, pin = PROBES[aspect]
    # The build path varies only where the recipe allows it; the umask is pinned by [build] umask.
    open_build = "vary_build_path = true\n" if aspect == "buildPath" else ""
    recipe = _recipe(step, output, pinned="", extra_build=open_build)
    entry = escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe, name=f"open-{aspect}")
    before = log_size(conveyor)
    with pytest.raises(ReproducibilityError, match=f"{output} differs") as e:
        run(conveyor, entry, check=True)
    assert f"varying {LABELS[aspect]}" in str(e.value) or f", {LABELS[aspect]}" in str(e.value)
    report = (Path(e.value.evidence["directory"]) / "diffoscope.txt").read_text()
    assert f"reference/{output}" in report and f"varied/{output}" in report
    assert log_size(conveyor) == before

    pinned_build = 'umask = "0022"\n' if aspect == "umask" else ""
    pinned = _recipe(step, output, pinned=pin, extra_build=pinned_build)
    report = run(
        conveyor,
        escrow_tree(conveyor, tmp_path, {"README": "r\n"}, pinned, name=f"pinned-{aspect}"),
        check=True,
    )
    assert report.verdict is not None and report.verdict.verdict == IDENTICAL
    assert aspect in report.result.recipe.pinned and aspect not in report.result.varied


def test_variations_applied_are_recorded_in_result_and_provenance(conveyor, sandbox, tmp_path):
    recipe = '[build]\nsteps = ["mkdir -p out", "echo same > out/a.txt"]\noutputs = ["out/a.txt"]\n[build.env]\nTZ = "Europe/Zurich"\n'
    report = run(conveyor, escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe), check=True)
    prov = Provenance.from_statement(
        verify_statement(report.signed.envelope, [current_builder(conveyor).key])
    )
    recorded = prov.build_definition.internal_parameters["variations"]
    assert recorded == report.result.variations() == report.to_dict()["variations"]
    reference, varied = recorded["runs"]
    assert recorded["pinned"] == ["TZ", "buildPath"]
    assert reference["TZ"] == varied["TZ"] == "Europe/Zurich"
    assert reference["buildPath"] == varied["buildPath"] == "/build"
    assert (reference["umask"], varied["umask"]) == ("0022", "0077")
    assert reference["locale"] == "C.UTF-8" and varied["locale"] != "C.UTF-8"
    assert varied["directoryOrder"] == "reverse creation order"
    assert {"locale", "umask", "directoryOrder"} <= set(recorded["varied"])
    assert "TZ" not in recorded["varied"] and "buildPath" not in recorded["varied"]
    assert set(recorded["varied"]) == {k for k in reference if k != "name" and reference[k] != varied[k]}


def test_a_single_build_records_its_one_run(conveyor, sandbox, tmp_path):
    recipe = '[build]\nsteps = ["echo x > a.txt"]\noutputs = ["a.txt"]\numask = "0027"\n'
    report = run(conveyor, escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe))
    prov = Provenance.from_statement(
        verify_statement(report.signed.envelope, [current_builder(conveyor).key])
    )
    recorded = prov.build_definition.internal_parameters["variations"]
    assert recorded["varied"] == [] and len(recorded["runs"]) == 1
    assert recorded["runs"][0]["umask"] == "0027" and recorded["runs"][0]["TZ"] == "UTC"


def test_run_and_compare_signs_nothing_and_its_result_is_signed_by_the_caller(conveyor, sandbox, tmp_path):
    recipe = '[build]\nsteps = ["date -u +%N > stamp.txt"]\noutputs = ["stamp.txt"]\n'
    entry = escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe)
    before = log_size(conveyor)
    work = tmp_path / "work"
    work.mkdir()
    result = run_and_compare(conveyor.escrow, entry.sha256, workdir=work, check=True)
    assert log_size(conveyor) == before
    assert result.verdict is not None and result.verdict.verdict == DIFFERENT and not result.reproducible
    view = json.loads(json.dumps(result.to_dict()))
    assert view["verdict"]["differing"] == ["stamp.txt"] and view["checked"] is True
    with pytest.raises(ValueError, match="never signed"):
        sign_and_publish(result, conveyor.conveyor_context(), publish_dir=conveyor.paths.public / "builds")
    assert log_size(conveyor) == before

    once = run_and_compare(conveyor.escrow, entry.sha256, workdir=tmp_path / "once")
    publication = sign_and_publish(
        once, conveyor.conveyor_context(), publish_dir=conveyor.paths.public / "builds"
    )
    assert log_size(conveyor) == before + 1 and publication.signed.receipt.index == before
    assert publication.to_dict()["outputs"][0]["sha256"] == once.reference.outputs[0].sha256


def test_a_failure_of_the_second_build_says_what_it_varied(conveyor, sandbox, tmp_path):
    recipe = '[build]\nsteps = ["test \\"$(umask)\\" = 0022", "echo ok > a.txt"]\noutputs = ["a.txt"]\n'
    entry = escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe)
    run(conveyor, entry)  # one build: the default umask
    before = log_size(conveyor)
    with pytest.raises(
        BuildError, match=r"the second build of the check failed \(.*umask 0077.*\): step 1 failed"
    ):
        run(conveyor, entry, check=True)
    assert log_size(conveyor) == before
