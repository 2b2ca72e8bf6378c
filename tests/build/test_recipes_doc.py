"""The examples in docs/recipes.md are valid recipes, and the C example builds reproducibly as documented."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from overt.build.compare import IDENTICAL
from overt.build.recipe import validate_recipe
from overt.errors import ReproducibilityError
from tests.build.helpers import escrow_tree, run
from tests.build.test_sandbox import C_PROGRAM
from tests.conftest import CORPUS, require

DOC = Path(__file__).parents[2] / "docs" / "recipes.md"


def examples() -> dict[str, str]:
    blocks = re.findall(r"```toml\n# example: (\w+)\n(.*?)```", DOC.read_text(), flags=re.S)
    return dict(blocks)


def test_every_example_is_a_valid_recipe():
    found = examples()
    assert set(found) == {"tomli", "idna", "c"}
    for name, text in found.items():
        recipe = validate_recipe(text.encode())
        for tool in recipe.toolchain:
            assert CORPUS[tool.name] == tool.sha256, name
            assert recipe.env["PYTHONPATH"] == tool.mount


def test_the_c_example_builds_identically_at_two_paths(conveyor, sandbox, tmp_path):
    require(shutil.which("gcc") is not None, "gcc not installed (Debian package gcc)")
    recipe = examples()["c"]
    report = run(conveyor, escrow_tree(conveyor, tmp_path, {"hello.c": C_PROGRAM}, recipe), check=True)
    assert report.verdict is not None and report.verdict.verdict == IDENTICAL
    assert "buildPath" in report.result.varied
    assert {o.name: o.executable for o in report.outputs} == {"out/hello": True, "out/hello.txt": False}

    without_map = recipe.replace(" -ffile-prefix-map=$PWD=.", "")
    assert without_map != recipe
    entry = escrow_tree(conveyor, tmp_path, {"hello.c": C_PROGRAM}, without_map, name="no-map")
    with pytest.raises(ReproducibilityError, match=r"out/hello differs .*build path"):
        run(conveyor, entry, check=True)
