"""Outputs as the conveyor publishes them: named by relative path, executable bit kept, and nothing from outside
the build directory."""

from __future__ import annotations

import pytest

from overt.attest.provenance import Provenance
from overt.attest.verify import verify_statement
from overt.errors import BuildError
from tests.build.helpers import current_builder, escrow_tree, log_size, run


def test_same_file_name_in_two_directories_publishes_both(conveyor, sandbox, tmp_path):
    recipe = """
[build]
steps = ["mkdir -p a b", "echo first > a/x.txt", "echo second > b/x.txt"]
outputs = ["a/x.txt", "b/x.txt"]
"""
    report = run(conveyor, escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe), check=True)
    assert (report.directory / "a" / "x.txt").read_text() == "first\n"
    assert (report.directory / "b" / "x.txt").read_text() == "second\n"
    assert [(o.name, o.path) for o in report.outputs] == [
        ("a/x.txt", report.directory / "a" / "x.txt"),
        ("b/x.txt", report.directory / "b" / "x.txt"),
    ]
    st = verify_statement(report.signed.envelope, [current_builder(conveyor).key])
    assert {s.name: s.digest["sha256"] for s in st.subject} == {o.name: o.sha256 for o in report.outputs}
    assert len({o.sha256 for o in report.outputs}) == 2


def test_executable_bit_is_kept(conveyor, sandbox, tmp_path):
    recipe = """
[build]
steps = ["printf '#!/bin/sh\\necho hi\\n' > tool", "chmod 755 tool", "echo data > data.txt"]
outputs = ["tool", "data.txt"]
"""
    report = run(conveyor, escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe), check=True)
    assert (report.directory / "tool").stat().st_mode & 0o777 == 0o755
    assert (report.directory / "data.txt").stat().st_mode & 0o777 == 0o644
    assert {o.name: o.executable for o in report.outputs} == {"data.txt": False, "tool": True}


def test_an_output_through_a_symlink_to_the_host_is_refused(conveyor, sandbox, tmp_path):
    """Inside, ``escape -> /`` is the sandbox's root; on the host it is the host's: never publish what it reaches."""
    recipe = '[build]\nsteps = ["ln -s / escape"]\noutputs = ["escape/etc/passwd"]\n'
    entry = escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe)
    before = log_size(conveyor)
    with pytest.raises(BuildError, match="resolves outside the build directory"):
        run(conveyor, entry)
    assert log_size(conveyor) == before
    assert not (conveyor.paths.public / "builds").exists()


def test_an_output_named_like_the_provenance_is_refused(conveyor, sandbox, tmp_path):
    # A glob that names build.log outright is refused at escrow (tests/build/test_recipe.py); one that
    # matches it only once the build has run is refused by the build.
    recipe = '[build]\nsteps = ["echo mine > build.log"]\noutputs = ["*.log"]\n'
    entry = escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe)
    with pytest.raises(BuildError, match=r"build\.log has the name of a file the conveyor publishes"):
        run(conveyor, entry)


def test_provenance_names_subjects_by_relative_path(conveyor, sandbox, tmp_path):
    recipe = (
        '[build]\nsteps = ["mkdir -p dist/sub", "echo w > dist/sub/w.txt"]\noutputs = ["dist/**/*.txt"]\n'
    )
    report = run(conveyor, escrow_tree(conveyor, tmp_path, {"README": "r\n"}, recipe))
    prov_subjects = [
        s.name for s in verify_statement(report.signed.envelope, [current_builder(conveyor).key]).subject
    ]
    assert prov_subjects == ["dist/sub/w.txt"]
    assert (report.directory / "dist" / "sub" / "w.txt").read_text() == "w\n"
    prov = Provenance.from_statement(
        verify_statement(report.signed.envelope, [current_builder(conveyor).key])
    )
    assert prov.run_details.byproducts[0].name == "build.log"
