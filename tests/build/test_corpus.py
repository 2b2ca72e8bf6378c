"""Real upstream software: the tomli 2.0.1 and idna 3.7 sdists, escrowed with their pinned flit_core wheel as
the only toolchain input, build in the sandbox to the wheels upstream published on PyPI, bit for bit.

The files are fetched from PyPI by the ``corpus`` fixture and checked against their published sha256; they are
never committed (../shared/corpus/pypi/README.md)."""

from __future__ import annotations

import hashlib

import pytest

from overt.attest.provenance import Provenance
from overt.attest.verify import verify_statement
from overt.build.compare import IDENTICAL
from overt.build.environment import ENVIRONMENT_NAME, current_environment
from overt.source.escrow import add_recipe, read_source
from tests.build.helpers import current_builder, run
from tests.build.test_recipes_doc import examples
from tests.conftest import CORPUS

# The recipes are docs/recipes.md's examples, as written there.
CASES = [
    ("tomli-2.0.1.tar.gz", "tomli", "flit_core-3.6.0-py3-none-any.whl", "tomli-2.0.1-py3-none-any.whl"),
    ("idna-3.7.tar.gz", "idna", "flit_core-3.9.0-py3-none-any.whl", "idna-3.7-py3-none-any.whl"),
]


@pytest.mark.parametrize(("sdist", "example", "flit", "wheel"), CASES, ids=["tomli", "idna"])
def test_upstream_wheel_reproduced_bit_for_bit(conveyor, sandbox, corpus, sdist, example, flit, wheel):
    builder = current_builder(conveyor)
    service = conveyor.signing_service()
    tool, _ = conveyor.escrow.add_input(corpus[flit].read_bytes(), name=flit, service=service, key=builder)
    recipe = examples()[example].encode()
    files = read_source(corpus[sdist])
    source, _ = conveyor.escrow.add_source(
        add_recipe(files, recipe, max(f.mtime for f in files)), name=sdist, service=service, key=builder
    )
    report = run(conveyor, source, check=True)
    assert report.verdict is not None and report.verdict.verdict == IDENTICAL
    (out,) = report.outputs
    assert out.name == f"dist/{wheel}"
    assert out.sha256 == CORPUS[wheel] == hashlib.sha256(corpus[wheel].read_bytes()).hexdigest()
    assert out.path.read_bytes() == corpus[wheel].read_bytes()
    prov = Provenance.from_statement(verify_statement(report.signed.envelope, [builder.key]))
    deps = {d.name: d.digest["sha256"] for d in prov.build_definition.resolved_dependencies}
    # The host's Debian packages are an input too; they are recorded in the provenance, never in the wheel.
    env = current_environment()
    assert deps == {sdist: source.sha256, flit: tool.sha256} | (
        {ENVIRONMENT_NAME: env.sha256} if env is not None else {}
    )
    assert tool.log_index < source.log_index < report.signed.receipt.index


def test_the_wrong_timezone_does_not_reproduce_idna(conveyor, sandbox, corpus):
    """TZ is a real build input: zip timestamps are local time (the README's note), so UTC gives another wheel."""
    flit, sdist = "flit_core-3.9.0-py3-none-any.whl", "idna-3.7.tar.gz"
    builder = current_builder(conveyor)
    service = conveyor.signing_service()
    conveyor.escrow.add_input(corpus[flit].read_bytes(), name=flit, service=service, key=builder)
    files = read_source(corpus[sdist])
    recipe = examples()["idna"].replace('TZ = "America/Los_Angeles"', 'TZ = "UTC"').encode()
    assert b'TZ = "UTC"' in recipe
    source, _ = conveyor.escrow.add_source(
        add_recipe(files, recipe, max(f.mtime for f in files)), name=sdist, service=service, key=builder
    )
    (out,) = run(conveyor, source).outputs
    assert out.sha256 != CORPUS["idna-3.7-py3-none-any.whl"]
