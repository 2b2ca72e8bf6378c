"""Issue 13's acceptance, first item, all real: two independent auditors, with their own keys, homes, build
paths and jurisdictions, rebuild from the escrow alone (each in its own ``overt auditor rebuild`` process,
given its home and the log's URL, reading the vendor's site) the demo's product, tomli 2.0.1, idna 3.7 and the
demo's AV database, and log PASSED VSAs. The vendor releases all four into its TUF repository and publishes
the auditors' VSAs with ``overt tuf add-verdict``'s code, from the files each auditor published under its
``public/vsa/``; an endpoint whose trust policy names both auditors' keys with threshold 2 refuses every item
at the ``verdicts`` check while one auditor's verdicts only are published, and installs every item once both
are.

The second acceptance item's environment half (a provenance whose recorded environment differs from the
rebuilder's is reported with that reason) is
tests/auditor/test_rebuild.py::test_an_environment_difference_is_its_own_reason; the swapped-artifact half is
test_a_swapped_artifact_is_bad_with_a_failed_vsa_and_a_diffoscope_report there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from overt.attest.vsa import PASSED, VerificationSummary
from overt.auditor import testbed
from overt.auditor.testbed import Auditor, RebuildWorld, make_world
from overt.build.publish import Publication
from overt.distribute.agentdir import AgentLayout, pin_policy
from overt.distribute.checks import ReleaseContext
from overt.distribute.databases import release_database
from overt.distribute.endpoint import INSTALLED, REFUSED, EndpointUpdate, update_endpoint
from overt.distribute.release import ProductRelease, ReleasedTarget, release_product
from overt.distribute.testbed import init_tuf, trust_policy_text
from overt.home import Home
from tests.build.test_recipes_doc import examples
from tests.conftest import CORPUS


def test_the_corpus_recipes_are_the_documented_ones() -> None:
    """The testbed's corpus recipes are docs/recipes.md's examples, which tests/build/test_corpus.py proves."""
    documented = examples()
    assert [c.recipe for c in testbed.CORPUS_CASES] == [documented["tomli"], documented["idna"]]
    assert {c.wheel for c in testbed.CORPUS_CASES} | {c.sdist for c in testbed.CORPUS_CASES} <= set(CORPUS)


@pytest.fixture
def world(conveyor: Home, sandbox: None, tmp_path: Path) -> Iterator[RebuildWorld]:
    yield from make_world(conveyor, tmp_path, name=None)


def rebuild(world: RebuildWorld, auditor: Auditor) -> dict[str, object]:
    """``overt auditor rebuild --once --json`` in its own process: the auditor's home and the log's URL."""
    r = subprocess.run(
        [
            sys.executable, "-m", "overt", "auditor", "rebuild", "--home", str(auditor.home.paths.root),
            "--follow", world.log_url, "--workdir", str(auditor.workdir), "--once", "--json",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


def provenance_sha256(signed_entry: bytes) -> str:
    return hashlib.sha256(signed_entry).hexdigest()


def release_everything(
    world: RebuildWorld, builds: dict[str, Publication], tmp: Path
) -> list[ReleasedTarget]:
    """The vendor's TUF repository, and the three products and the database released into it."""
    h = world.conveyor
    init_tuf(h, tmp / "offline-root-keys")
    released = []
    for product, version in (("sample-agent", "1.0"), ("tomli", "2.0.1"), ("idna", "3.7")):
        pub = builds[product]
        (out,) = pub.outputs
        request = ProductRelease(
            artifact=out.path.read_bytes(),
            file_name=out.path.name,
            product=product,
            version=version,
            provenance=pub.provenance_path.read_bytes(),
        )
        released.append(release_product(ReleaseContext.of_home(Home(h.path)), request))
    released.append(
        release_database(ReleaseContext.of_home(Home(h.path)), name=testbed.DEMO_DATABASE, version=1)
    )
    return released


def pin_endpoint(world: RebuildWorld, auditors: list[Auditor], tmp: Path) -> Path:
    """A customer's trust policy: the TUF root and log policy got out of band, each auditor's public key file
    as that auditor published it, threshold 2; pinned into a new agent directory."""
    h = world.conveyor
    customer = tmp / "customer"
    customer.mkdir()
    shutil.copy(h.paths.public / "tuf" / "metadata" / "1.root.json", customer / "root.json")
    shutil.copy(world.handout.policy, customer / "log.policy")
    keys = [shutil.copy(a.public_key_file, customer / f"auditor-{i}.json") for i, a in enumerate(auditors)]
    text = trust_policy_text(
        h,
        url=world.site,
        root=customer / "root.json",
        auditors=[Path(k) for k in keys],
        threshold=2,
        follow=[("product", "sample-agent"), ("product", "tomli"), ("product", "idna"), ("database", "demo")],
    )
    (customer / "policy.toml").write_text(text)
    agent = tmp / "endpoint"
    pin_policy(AgentLayout(agent), customer / "policy.toml")
    return agent


def statuses(update: EndpointUpdate) -> list[tuple[str, str, str | None]]:
    return [(o.follow.label, o.status, o.check) for o in update.outcomes]


@pytest.mark.slow
def test_two_independent_auditors_pass_the_corpus_and_an_endpoint_requires_both(
    world: RebuildWorld, corpus: dict[str, Path], tmp_path: Path
) -> None:
    h = world.conveyor
    tomli, idna = testbed.CORPUS_CASES
    builds = {
        "sample-agent": testbed.build_sample_agent(h, tmp_path / "sample-agent-src"),
        "tomli": testbed.build_corpus_case(h, tomli, corpus),
        "idna": testbed.build_corpus_case(h, idna, corpus),
    }
    database = testbed.release_demo_database(h, tmp_path / "rules", version=1)
    provenances = {provenance_sha256(p.signed.entry): p for p in builds.values()}
    provenances[provenance_sha256(database.provenance.entry)] = database.provenance

    a1 = world.make_auditor("auditor1.example/rebuilder", jurisdiction="DE")
    a2 = world.make_auditor("auditor2.example/rebuilder", jurisdiction="FR")
    assert a1.home.key.keyid != a2.home.key.keyid
    assert a1.home.witness.vkey != a2.home.witness.vkey
    assert len({a1.home.paths.root, a2.home.paths.root, h.path}) == 3 and a1.workdir != a2.workdir

    for auditor in (a1, a2):
        out = rebuild(world, auditor)
        assert out["counts"] == {"GOOD": 4, "BAD": 0, "FAIL": 0}, out
        verdicts = out["verdicts"]
        assert isinstance(verdicts, list)
        assert {v["provenance_sha256"]: (v["verdict"], v["vsa_result"]) for v in verdicts} == {
            p: ("GOOD", PASSED) for p in provenances
        }
        # Each VSA is in the vendor's log, signed by this auditor's own key, naming the provenance it rebuilt.
        logged = {
            VerificationSummary.from_statement(s).input_attestations[0].digest["sha256"]: s
            for _, s in world.verdicts(auditor)
        }
        assert set(logged) == set(provenances)
        assert all(VerificationSummary.from_statement(s).passed for s in logged.values())
        # The corpus rebuilt to the very wheels upstream published on PyPI.
        for case, pub in ((tomli, builds["tomli"]), (idna, builds["idna"])):
            (subject,) = logged[provenance_sha256(pub.signed.entry)].subject
            assert (subject.name, subject.digest["sha256"]) == (f"dist/{case.wheel}", CORPUS[case.wheel])
        # From the escrow alone: every input came from the site, into the auditor's own cache.
        cached = {p.name for p in auditor.home.paths.escrow_cache.iterdir()}
        assert {builds["tomli"].result.source.sha256, database.source.sha256} <= cached
        assert not list(auditor.workdir.iterdir())  # each rebuild's scratch directory is gone after it

    targets = release_everything(world, builds, tmp_path)
    agent = pin_endpoint(world, [a1, a2], tmp_path)
    for target in targets:
        testbed.publish_verdict(h, a1, target)
    first = update_endpoint(agent)
    assert statuses(first) == [(o.follow.label, REFUSED, "verdicts") for o in first.outcomes]
    assert all("1 of the 2 distinct trusted auditors" in str(o.error) for o in first.outcomes)
    assert all(o.record is None for o in first.outcomes)  # nothing installed

    for target in targets:
        testbed.publish_verdict(h, a2, target)
    second = update_endpoint(agent)
    assert statuses(second) == [(o.follow.label, INSTALLED, None) for o in second.outcomes], [
        str(o.error) for o in second.outcomes
    ]
    for o, target in zip(second.outcomes, targets, strict=True):
        assert o.record is not None and o.record.sha256 == target.sha256
        assert sorted(o.record.auditors) == sorted([a1.home.key.keyid, a2.home.key.keyid])
