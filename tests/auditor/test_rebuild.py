"""The rebuilder (``overt auditor rebuild``), all real: a conveyor home whose log is cosigned by a real witness
and served by the conveyor's own log server (``overt serve``'s app on loopback: static ``public/`` and
``POST /add``), builds in the bubblewrap sandbox, and an auditor home that knows only the URL, the pinned
policy and the vendor's public key files.

:class:`overt.auditor.testbed.RebuildWorld` (fixture ``world``) is reusable: the queue's and the acceptance
tests build the same world.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from overt.attest.dsse import Envelope
from overt.attest.provenance import Provenance
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.verify import verify_statement
from overt.attest.vsa import FAILED, PASSED, VerificationSummary
from overt.auditor.rebuild import Outcome, RebuildJob, discover, run_job
from overt.auditor.rebuild_loop import Pass, rebuild_pass
from overt.auditor.testbed import SIMPLE_RECIPE, RebuildWorld, make_world
from overt.avdb.release import AvdbStore, Released, release
from overt.build.environment import ENVIRONMENT_FILE, ENVIRONMENT_NAME, Environment, Package
from overt.build.publish import Publication
from overt.build.run import load_recipe
from overt.distribute import testbed
from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.keys.signing import Signed
from overt.source.escrow import read_directory
from overt.tlog.client import verify_tlog_proof
from overt.tlog.proof import TlogProof
from tests.avdb.samples import EICAR_RULE
from tests.build.helpers import escrow_tree
from tests.conftest import require

SIMPLE = SIMPLE_RECIPE


@pytest.fixture
def world(conveyor: Home, sandbox: None, tmp_path: Path) -> Iterator[RebuildWorld]:
    yield from make_world(conveyor, tmp_path)


def overt(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overt", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def rebuild_args(world: RebuildWorld, *extra: str) -> list[str]:
    return [
        "auditor", "rebuild", "--home", str(world.auditor.paths.root), "--follow", world.log_url,
        "--workdir", str(world.tmp / "scratch"), *extra,
    ]  # fmt: skip


def summary_of(statement: Statement) -> VerificationSummary:
    return VerificationSummary.from_statement(statement)


# --- 1. a conveyor build, rebuilt from the site alone -----------------------------------------------------


def test_a_conveyor_build_is_rebuilt_from_the_site_alone_and_passed(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    # The auditor runs in its own process with its own home: it is given the log's URL and nothing else.
    r = overt(*rebuild_args(world, "--once", "--json"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["counts"] == {"GOOD": 1, "BAD": 0, "FAIL": 0}
    (verdict,) = out["verdicts"]
    provenance_sha256 = hashlib.sha256(pub.signed.entry).hexdigest()
    assert verdict["log_index"] == pub.signed.receipt.index
    assert verdict["provenance_sha256"] == provenance_sha256
    assert verdict["verdict"] == "GOOD" and verdict["vsa_result"] == PASSED
    assert verdict["reason"] == "every subject rebuilt bit for bit"

    # The PASSED VSA is in the vendor's log, verifiable with the auditor's public key alone.
    ((index, statement),) = world.verdicts()
    assert index == verdict["vsa_index"]
    summary = summary_of(statement)
    assert summary.passed
    assert {s.name: s.digest["sha256"] for s in statement.subject} == {o.name: o.sha256 for o in pub.outputs}
    provenance = summary.input_attestations[0]
    assert provenance.digest["sha256"] == provenance_sha256
    assert provenance.annotations["logIndex"] == pub.signed.receipt.index
    assert summary.policy.uri == world.log_url
    assert (
        summary.policy.digest["sha256"]
        == hashlib.sha256(world.auditor.paths.log_policy.read_bytes()).hexdigest()
    )
    assert summary.resource_uri == f"{world.site}/builds/{pub.build_id}/out/hello.txt"

    # Published under the auditor's public/ with a tlog-proof that verifies under the pinned policy.
    vsa = world.auditor.paths.vsa(provenance_sha256)
    assert vsa.read_bytes() == world.entries()[index]
    proof = TlogProof.from_bytes(vsa.with_name(f"{provenance_sha256}.tlog-proof").read_bytes())
    verify_tlog_proof(proof, vsa.read_bytes(), world.auditor.policy)
    assert proof.index == index
    # The inputs came from the site's escrow, verified, into the auditor's own cache.
    cached = world.auditor.paths.escrow_cache
    assert (cached / pub.result.source.sha256).read_bytes() == (
        world.conveyor.paths.public / "escrow" / pub.result.source.sha256
    ).read_bytes()


# --- what a hostile or careless vendor can publish --------------------------------------------------------


def builder_key(h: Home) -> KeyRecord:
    return h.registry.current(Role.BUILDER, datetime.now(UTC))


def forge(
    world: RebuildWorld,
    pub: Publication,
    *,
    outputs: dict[str, bytes] | None = None,
    environment: bytes | None = None,
    key: KeyRecord | None = None,
    source: str | None = None,
) -> Signed:
    """A provenance like ``pub``'s, under a new build id, signed (by the builder key unless ``key``) and logged,
    whose subjects are ``outputs`` (default: the real ones) and whose recorded environment is ``environment``
    (default: the real one); both are published in the new build's directory, as the vendor's site serves
    them. ``source`` replaces the escrowed source it names."""
    h = world.conveyor
    real = Statement.from_bytes(pub.signed.envelope.payload)
    prov = Provenance.from_statement(real)
    files = {o.name: o.path.read_bytes() for o in pub.outputs} | (outputs or {})
    env = environment if environment is not None else (pub.directory / ENVIRONMENT_FILE).read_bytes()
    definition = prov.build_definition
    deps = tuple(
        replace(d, digest={"sha256": hashlib.sha256(env).hexdigest()}) if d.name == ENVIRONMENT_NAME else d
        for d in definition.resolved_dependencies
    )
    external = dict(definition.external_parameters)
    if source is not None:
        entry = h.escrow.get(source)
        digest = {"sha256": entry.sha256, "dirHash": entry.dir_hash}
        external["source"] = {"name": entry.name, "uri": f"escrow/{entry.sha256}", "digest": digest}
        external["recipe"] = load_recipe(h.escrow.read(entry)).to_dict()  # as the conveyor records it
        deps = (
            ResourceDescriptor(name=entry.name, uri=f"escrow/{entry.sha256}", digest=digest),
            *(d for d in deps if d.digest.get("sha256") != pub.result.source.sha256),
        )
    invocation = uuid.uuid4().hex
    forged = replace(
        prov,
        build_definition=replace(definition, resolved_dependencies=deps, external_parameters=external),
        run_details=replace(
            prov.run_details, metadata=replace(prov.run_details.metadata, invocation_id=invocation)
        ),
    )
    subject = tuple(
        ResourceDescriptor(name=name, digest={"sha256": hashlib.sha256(data).hexdigest()})
        for name, data in sorted(files.items())
    )
    directory = h.paths.public / "builds" / invocation[:16]
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    (directory / ENVIRONMENT_FILE).write_bytes(env)
    return h.signing_service().sign(key or builder_key(h), forged.statement(subject))


def doctored_environment(pub: Publication) -> tuple[bytes, str]:
    """The recorded environment of ``pub`` with one package at another version, and that package's name."""
    real = Environment.from_bytes((pub.directory / ENVIRONMENT_FILE).read_bytes())
    first = real.packages[0]
    changed = Package(name=first.name, version=first.version + "+doctored1", architecture=first.architecture)
    doctored = Environment.of(architecture=real.architecture, packages=[changed, *real.packages[1:]])
    return doctored.to_bytes(), first.name


def outcome_for(done: Pass, signed: Signed | Publication) -> Outcome:
    entry = signed.signed.entry if isinstance(signed, Publication) else signed.entry
    sha256 = hashlib.sha256(entry).hexdigest()
    (found,) = [o for o in done.outcomes if o.job.provenance_sha256 == sha256]
    return found


def logged_vsa(world: RebuildWorld, outcome: Outcome) -> Statement:
    assert outcome.vsa_index is not None
    return verify_statement(
        Envelope.from_bytes(world.entries()[outcome.vsa_index]), [world.auditor_key().key]
    )


# --- 2. a swapped artifact ---------------------------------------------------------------------------------


def test_a_swapped_artifact_is_bad_with_a_failed_vsa_and_a_diffoscope_report(world: RebuildWorld) -> None:
    require(shutil.which("diffoscope") is not None, "diffoscope not installed (Debian package diffoscope)")
    pub = world.build({"hello.txt": "hello auditor\n"})
    swapped = forge(world, pub, outputs={"out/hello.txt": b"hello auditor, with a backdoor\n"})
    done = rebuild_pass(world.auditor, world.follow(max_bad_attempts=1))
    assert outcome_for(done, pub).verdict == "GOOD"
    bad = outcome_for(done, swapped)
    assert (bad.verdict, bad.final, bad.vsa_result) == ("BAD", True, FAILED)
    real = next(o.sha256 for o in pub.outputs if o.name == "out/hello.txt")
    assert bad.reason.startswith(f"out/hello.txt rebuilt with sha256 {real}, the provenance names ")
    assert done.exit_code == 1

    statement = logged_vsa(world, bad)
    summary = summary_of(statement)
    assert not summary.passed and summary.verified_levels == ()
    assert summary.input_attestations[0].digest["sha256"] == hashlib.sha256(swapped.entry).hexdigest()
    assert statement.predicate["rebuild"]["verdict"] == "BAD"
    assert statement.predicate["rebuild"]["differing"] == ["out/hello.txt"]
    reports = {d.name: d for d in summary.input_attestations[1:]}
    assert set(reports) == {"diffoscope.txt", "diffoscope.html"}
    for d in reports.values():
        published = world.auditor.paths.public / d.uri
        assert hashlib.sha256(published.read_bytes()).hexdigest() == d.digest["sha256"]
        assert published.parent == world.auditor.paths.reports(bad.job.provenance_sha256)
    text = (world.auditor.paths.public / reports["diffoscope.txt"].uri).read_text()
    assert "reference/out/hello.txt" in text and "varied/out/hello.txt" in text and "backdoor" in text


# --- 3. the recorded environment differs -------------------------------------------------------------------


def test_an_environment_difference_is_its_own_reason(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    doctored, package = doctored_environment(pub)
    # Built elsewhere, in another environment, with other bytes: BAD, explained by the environment, final at once.
    elsewhere = forge(
        world, pub, outputs={"out/upper.txt": b"HELLO AUDITOR, OTHER GCC\n"}, environment=doctored
    )
    # The same bytes from another environment: the subjects still reproduce, and the verdict says so.
    same_bytes = forge(world, pub, environment=doctored)
    done = rebuild_pass(world.auditor, world.follow(max_bad_attempts=3))
    bad, good = outcome_for(done, elsewhere), outcome_for(done, same_bytes)
    assert (bad.verdict, bad.final, bad.attempts, bad.vsa_result) == ("BAD", True, 1, FAILED)
    assert bad.reason.startswith(f"environment differs: {package} ") and "+doctored1 vs " in bad.reason
    assert bad.reason.endswith(
        "the provenance names " + hashlib.sha256(b"HELLO AUDITOR, OTHER GCC\n").hexdigest()
    )
    assert bad.environment is not None and bad.environment.startswith("environment differs: ")
    rebuild = logged_vsa(world, bad).predicate["rebuild"]
    assert rebuild["reason"] == bad.reason
    assert rebuild["environment"]["same"] is False
    assert rebuild["environment"]["recorded"] == hashlib.sha256(doctored).hexdigest()
    assert (good.verdict, good.vsa_result) == ("GOOD", PASSED)
    assert good.reason.startswith("every subject rebuilt bit for bit (environment differs: ")


# --- 4. a build that fails ----------------------------------------------------------------------------------


def test_a_failing_rebuild_is_fail_retried_to_its_own_limit_apart_from_bad(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    swapped = forge(world, pub, outputs={"out/hello.txt": b"swapped\n"})
    # A provenance for a source whose recipe fails in the rebuilder's sandbox.
    failing = escrow_tree(
        world.conveyor,
        world.tmp,
        {"hello.txt": "x\n"},
        '[build]\nsteps = ["exit 1"]\noutputs = ["out/*"]\n',
        "bad",
    )
    broken = forge(world, pub, source=failing.sha256)
    follow = world.follow(max_fail_attempts=2, max_bad_attempts=3)

    first = rebuild_pass(world.auditor, follow)
    fail, bad = outcome_for(first, broken), outcome_for(first, swapped)
    assert (fail.verdict, fail.final, fail.attempts, fail.limit, fail.vsa_index) == (
        "FAIL",
        False,
        1,
        2,
        None,
    )
    assert fail.reason.startswith("the build failed: ")
    assert (bad.verdict, bad.final, bad.attempts, bad.limit) == ("BAD", False, 1, 3)
    assert first.exit_code == 1 and [i for i, _ in world.verdicts()] == [outcome_for(first, pub).vsa_index]

    second = rebuild_pass(world.auditor, follow)
    assert {o.job.provenance_sha256 for o in second.outcomes} == {
        hashlib.sha256(s.entry).hexdigest() for s in (broken, swapped)
    }  # the GOOD one is done: not rebuilt again
    fail, bad = outcome_for(second, broken), outcome_for(second, swapped)
    assert (fail.verdict, fail.final, fail.attempts, fail.vsa_result) == ("FAIL", True, 2, FAILED)
    assert fail.reason.startswith("the rebuild could not be done (2 attempts): the build failed: ")
    assert summary_of(logged_vsa(world, fail)).verification_result == FAILED
    assert (bad.final, bad.attempts) == (False, 2)

    third = rebuild_pass(world.auditor, follow)
    (bad,) = third.outcomes
    assert (bad.verdict, bad.final, bad.attempts, bad.vsa_result) == ("BAD", True, 3, FAILED)
    assert rebuild_pass(world.auditor, follow).outcomes == ()


def test_an_escrow_object_missing_on_the_site_leaves_the_job_pending(world: RebuildWorld) -> None:
    # A 404 is the site not answering with the object: it says nothing about the build (a broken proxy
    # answers so too), so it uses no attempt and logs no verdict; the pass says so and exits 2.
    pub = world.build({"hello.txt": "hello auditor\n"})
    escrowed = world.conveyor.paths.public / "escrow" / pub.result.source.sha256
    kept = escrowed.read_bytes()
    escrowed.unlink()
    follow = world.follow(max_fail_attempts=1)
    done = rebuild_pass(world.auditor, follow)
    assert done.outcomes == () and done.exit_code == 2
    (error,) = done.errors
    assert error.job.provenance_sha256 == hashlib.sha256(pub.signed.entry).hexdigest()
    assert "GET " in str(error.error) and "answered 404" in str(error.error)
    assert world.verdicts() == []
    escrowed.write_bytes(kept)
    (good,) = rebuild_pass(world.auditor, follow).outcomes
    assert (good.verdict, good.vsa_result, good.attempts) == ("GOOD", PASSED, 1)


# --- 5. restarts --------------------------------------------------------------------------------------------

SLOW = """
[build]
steps = ["mkdir -p out", "sleep 3", "cp hello.txt out/hello.txt"]
outputs = ["out/*.txt"]
"""


def verdicts_per_provenance(world: RebuildWorld) -> Counter[str]:
    return Counter(summary_of(s).input_attestations[0].digest["sha256"] for _, s in world.verdicts())


def wait_for(condition: Callable[[], bool], what: str, *, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_a_second_run_rebuilds_nothing_and_logs_nothing(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    first = overt(*rebuild_args(world, "--once"))
    assert first.returncode == 0, first.stderr
    (line,) = first.stdout.splitlines()
    assert line.startswith(f"{pub.signed.receipt.index}  out/hello.txt, out/upper.txt  GOOD  ")
    assert line.endswith(f"PASSED VSA at log index {len(world.entries()) - 1}")
    assert "rebuilding log entry" in first.stderr
    size = len(world.entries())
    second = overt(*rebuild_args(world, "--once", "--json"))
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert out["verdicts"] == [] and out["log"]["from"] == size - 1 and out["log"]["new_provenances"] == 0
    assert len(world.entries()) == size
    assert verdicts_per_provenance(world) == Counter({hashlib.sha256(pub.signed.entry).hexdigest(): 1})


def test_a_rebuilder_killed_mid_rebuild_resumes_and_logs_one_verdict(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "slow\n"}, SLOW, name="slow")
    scratch = world.tmp / "scratch"
    building = lambda: any(scratch.glob("overt-rebuild-*/build/reference/build.log"))  # noqa: E731
    follow = subprocess.Popen(
        [sys.executable, "-m", "overt", *rebuild_args(world, "--interval", "0.2")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(building, "the rebuild to start")
    finally:
        follow.send_signal(signal.SIGKILL)
        follow.communicate(timeout=60)
    assert verdicts_per_provenance(world) == Counter()  # killed before any verdict
    restarted = subprocess.Popen(
        [sys.executable, "-m", "overt", *rebuild_args(world, "--interval", "0.2")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: world.auditor.paths.vsa(hashlib.sha256(pub.signed.entry).hexdigest()).exists(), "a VSA"
        )
    finally:
        restarted.send_signal(signal.SIGTERM)  # finishes the job at hand, then exits cleanly
        try:
            out, err = restarted.communicate(timeout=300)  # a hang guard, generous for a loaded machine
        except subprocess.TimeoutExpired:
            restarted.kill()
            restarted.communicate()  # reap it and close its pipes, so no later test meets them
            raise
    assert restarted.returncode == 0, err
    assert [line.split("  ")[2] for line in out.splitlines()] == ["GOOD"]
    assert verdicts_per_provenance(world) == Counter({hashlib.sha256(pub.signed.entry).hexdigest(): 1})
    assert not [p for p in scratch.iterdir() if p.is_dir()]  # the killed run's scratch directory is gone


# --- 6. a hostile site --------------------------------------------------------------------------------------


def test_a_hostile_site_never_gets_a_passed_verdict(world: RebuildWorld) -> None:
    swapped_escrow = world.build({"hello.txt": "one\n"}, name="one")
    escrowed = world.conveyor.paths.public / "escrow" / swapped_escrow.result.source.sha256
    escrowed.write_bytes(escrowed.read_bytes().replace(b"one\n", b"own\n"))
    bad_environment = world.build({"hello.txt": "two\n"}, name="two")
    (bad_environment.directory / ENVIRONMENT_FILE).write_bytes(doctored_environment(bad_environment)[0])
    stranger = testbed.add_key(world.conveyor, Role.BUILDER)  # a real key of the vendor's, not pinned
    unpinned = forge(world, bad_environment, key=stranger)

    done = rebuild_pass(world.auditor, world.follow(max_fail_attempts=1))
    escrow, environment = outcome_for(done, swapped_escrow), outcome_for(done, bad_environment)
    assert (escrow.verdict, escrow.vsa_result) == ("FAIL", FAILED)
    assert f"escrow object one (sha256 {swapped_escrow.result.source.sha256[:16]})" in escrow.reason
    assert "does not match its digest" in escrow.reason
    assert (environment.verdict, environment.vsa_result) == ("FAIL", FAILED)
    assert f"the recorded environment of build {bad_environment.build_id} from the site" in environment.reason
    assert "does not match its digest" in environment.reason
    assert [(s.index, s.reason) for s in done.discovery.skipped] == [
        (unpinned.receipt.index, "a provenance not signed by any pinned vendor builder key: not trusted")
    ]
    assert hashlib.sha256(unpinned.entry).hexdigest() not in verdicts_per_provenance(world)
    assert all(not summary_of(s).passed for _, s in world.verdicts())


# --- 7. an AV database ---------------------------------------------------------------------------------------


def test_an_av_database_release_is_rebuilt_to_the_same_bytes(world: RebuildWorld) -> None:
    h = world.conveyor
    testbed.add_key(h, Role.AUDITOR)  # the vendor's own rule auditor, which signs the rule audit
    root = world.tmp / "rules"
    (root / "yara").mkdir(parents=True)
    (root / "yara" / "eicar.yar").write_text(EICAR_RULE)
    released = release(
        AvdbStore(h.paths.public), h.escrow, read_directory(root), name="main", version=1,
        context=h.conveyor_context(auditor=True),
    )  # fmt: skip
    assert isinstance(released, Released)
    (good,) = rebuild_pass(world.auditor, world.follow()).outcomes
    assert (good.verdict, good.vsa_result) == ("GOOD", PASSED)
    assert good.job.provenance_sha256 == hashlib.sha256(released.provenance.entry).hexdigest()
    statement = logged_vsa(world, good)
    assert [(s.name, s.digest["sha256"]) for s in statement.subject] == [("main-1.avdb", released.digest)]
    assert summary_of(statement).resource_uri == f"{world.site}/avdb/main/1.avdb"


def test_one_job_run_twice_at_once_logs_one_verdict(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "twice\n"})
    follow = world.follow()
    (job,) = discover(world.auditor, follow)
    assert job == RebuildJob(pub.signed.receipt.index, hashlib.sha256(pub.signed.entry).hexdigest())
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: run_job(world.auditor, follow, job), range(2))
    assert first.vsa_index == second.vsa_index is not None
    assert verdicts_per_provenance(world) == Counter({job.provenance_sha256: 1})
    again = run_job(world.auditor, follow, job)  # decided: returned as stored, nothing rebuilt
    assert (again.rebuilt, again.vsa_index, again.verdict) == (False, first.vsa_index, "GOOD")
    assert discover(world.auditor, follow) == []


# --- 8. a hostile tile server ----------------------------------------------------------------------------------


def test_discovery_refuses_a_bundle_that_hides_or_changes_a_provenance(world: RebuildWorld) -> None:
    from overt.errors import ConsistencyError
    from overt.tlog.tiles import TILE_WIDTH, decode_bundle, encode_bundle, entries_path, tile_width

    pub = world.build({"hello.txt": "hidden\n"})
    index = pub.signed.receipt.index
    size = len(world.entries())
    bundle = index // TILE_WIDTH
    path = world.conveyor.log.paths.public / entries_path(bundle, tile_width(0, bundle, size))
    served = path.read_bytes()
    entries = decode_bundle(served)
    assert entries[index % TILE_WIDTH] == pub.signed.entry
    others = [e for e in entries if e != pub.signed.entry]
    doctored = {
        "hides": encode_bundle(others),
        "changes": encode_bundle([others[0] if e == pub.signed.entry else e for e in entries]),
    }
    for what, data in doctored.items():
        path.write_bytes(data)
        with pytest.raises(ConsistencyError) as refused:
            discover(world.auditor, world.follow())
        message = str(refused.value)
        if what == "hides":
            assert f"bundle {bundle} holds {len(others)} entries" in message, what
        else:
            assert "not the entries the tree commits to" in message, what
    path.write_bytes(served)  # the real bundle: the provenance was never skipped, it is found now
    job = RebuildJob(index, hashlib.sha256(pub.signed.entry).hexdigest())
    assert discover(world.auditor, world.follow()) == [job]


def test_a_swapped_artifact_gets_a_failed_vsa_that_the_monitor_flags(
    world: RebuildWorld, tmp_path: Path
) -> None:
    """The issue's Acceptance end to end: a conveyor build whose artifact was swapped after the build gets a
    FAILED VSA from the rebuilder, and a customer's monitor (its own process, the trust policy naming this
    auditor) flags it: verdict-failed, at the VSA's log index, naming the swapped bytes."""
    require(shutil.which("diffoscope") is not None, "diffoscope not installed (Debian package diffoscope)")
    h = world.conveyor
    testbed.init_tuf(h, tmp_path / "root-keys")
    pub = world.build({"hello.txt": "hello auditor\n"})
    swapped = forge(world, pub, outputs={"out/hello.txt": b"hello auditor, with a backdoor\n"})
    done = rebuild_pass(world.auditor, world.follow(max_bad_attempts=1))
    bad = outcome_for(done, swapped)
    assert (bad.verdict, bad.vsa_result) == ("BAD", FAILED) and bad.vsa_index is not None

    customer = tmp_path / "customer"
    customer.mkdir()
    shutil.copy(h.paths.public / "tuf" / "metadata" / "1.root.json", customer / "root.json")
    (customer / "log.policy").write_bytes(h.log.policy().to_bytes())
    key = world.auditor.paths.public_keys / f"{world.auditor.key.keyid}.json"
    text = testbed.trust_policy_text(
        h,
        url=world.site,
        root=customer / "root.json",
        auditors=[key],
        threshold=1,
        follow=[("product", "hello")],
    )
    (customer / "policy.toml").write_text(text)
    args = [
        "--policy",
        str(customer / "policy.toml"),
        "--state",
        str(tmp_path / "monitor"),
        "--once",
        "--json",
    ]
    r = overt("auditor", "monitor", world.log_url, *args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    alerts = [a for a in json.loads(r.stdout)["alerts"] if a["kind"] == "verdict-failed"]
    backdoor = hashlib.sha256(b"hello auditor, with a backdoor\n").hexdigest()
    assert {a["index"] for a in alerts} == {bad.vsa_index}, alerts  # one alert per subject the VSA names
    assert [a for a in alerts if backdoor in a["message"]], alerts
