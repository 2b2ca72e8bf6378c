"""The rebuilder against what a hostile tester did to it (issue 13, second round): a vendor signing false or
odd provenance with its real builder key, a site or a network in between that misbehaves, a log server
that answers ``/add`` wrongly. All real, as in tests/auditor/test_rebuild.py (its world), with a small HTTP
server of the test's own standing in for the network between the auditor and the site (:class:`Between`).

A provenance the conveyor's signing service would refuse (two subjects of one name, no subject) is signed
here as the hostile tester did: with the builder's key directly, then appended through the log server's
``POST /add``, which takes any entry.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from overt import jsonio
from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
from overt.attest.verify import verify_statement
from overt.attest.vsa import FAILED, PASSED, VerificationSummary
from overt.auditor.rebuild import Outcome, RebuildSettings
from overt.auditor.rebuild_loop import Pass, rebuild_pass
from overt.auditor.testbed import RebuildWorld, make_world
from overt.auditor.verdicts import VerdictStore
from overt.build.environment import ENVIRONMENT_NAME
from overt.build.publish import Publication
from overt.errors import StorageError
from overt.home import Home
from overt.keys.registry import Role
from overt.keys.signers import HsmConfig, load_signer
from overt.server.runner import free_port
from overt.tlog.client import submit_entry

Statement = dict[str, Any]


@pytest.fixture
def world(conveyor: Home, sandbox: None, tmp_path: Path) -> Iterator[RebuildWorld]:
    yield from make_world(conveyor, tmp_path)


def statement_of(pub: Publication) -> Statement:
    """The statement ``pub``'s provenance signs, as JSON, to be changed."""
    return json.loads(pub.signed.envelope.payload)


def sign_and_log(world: RebuildWorld, statement: Statement) -> tuple[int, bytes]:
    """``statement`` signed with the vendor's builder key, as is, and appended to the log: (index, entry)."""
    h = world.conveyor
    record = h.registry.current(Role.BUILDER, datetime.now(UTC))
    signer = load_signer(record.uri, record.key, keys_dir=h.paths.keys, hsm=HsmConfig())
    entry = sign_envelope(jsonio.dump(statement), PAYLOAD_TYPE_IN_TOTO, [signer]).to_bytes()
    with httpx.Client() as http:
        proof = submit_entry(world.site, entry, h.log.policy(), http)
    return proof.index, entry


def definition(statement: Statement) -> dict[str, Any]:
    return statement["predicate"]["buildDefinition"]  # type: ignore[no-any-return]


def outcome_of(done: Pass, entry: bytes) -> Outcome:
    (found,) = [o for o in done.outcomes if o.job.provenance_sha256 == hashlib.sha256(entry).hexdigest()]
    return found


def vsa_of(world: RebuildWorld, outcome: Outcome) -> dict[str, Any]:
    """The statement of the VSA ``outcome`` logged, verified with the auditor's key, as JSON."""
    assert outcome.vsa_index is not None
    envelope = Envelope.from_bytes(world.entries()[outcome.vsa_index])
    verify_statement(envelope, [world.auditor_key().key], 1)
    return json.loads(envelope.payload)  # type: ignore[no-any-return]


def overt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overt", *args], capture_output=True, text=True, timeout=300, check=False
    )


# --- the network between the auditor and the site -----------------------------------------------------------

Answer = Callable[[http.server.BaseHTTPRequestHandler], bool]  # True: it answered the request itself


class Between:
    """An HTTP server that forwards to ``upstream`` (the vendor's site and log server), except where
    ``answer`` answers a request itself: a misbehaving proxy, or an attacker in the path."""

    def __init__(self, upstream: str, answer: Answer) -> None:
        self.upstream, self.answer = upstream, answer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        between = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def forward(self, body: bytes | None) -> None:
                r = httpx.request(self.command, between.upstream + self.path, content=body, timeout=60)
                self.send_response(r.status_code)
                self.send_header("Content-Length", str(len(r.content)))
                self.send_header("Content-Type", r.headers.get("Content-Type", "application/octet-stream"))
                self.end_headers()
                self.wfile.write(r.content)

            def do_GET(self) -> None:
                if not between.answer(self):
                    self.forward(None)

            def do_POST(self) -> None:
                if not between.answer(self):
                    self.forward(self.rfile.read(int(self.headers.get("Content-Length", 0))))

        return Handler

    @contextmanager
    def serving(self) -> Iterator[Between]:
        server = _Quiet(("127.0.0.1", self.port), self.handler())
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


class _Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up on an oversized body is what the test wants


def send(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    if "Content_Length" not in headers:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def answer_with(matches: Callable[[str], bool], status: int, body: bytes, **headers: str) -> Answer:
    """An :data:`Answer` that answers a GET whose path ``matches`` with ``status``, ``headers`` and ``body``."""

    def answer(h: http.server.BaseHTTPRequestHandler) -> bool:
        if h.command != "GET" or not matches(h.path):
            return False
        send(h, status, body, **headers)
        return True

    return answer


# --- 1, 2, 9c: the subjects --------------------------------------------------------------------------------


def test_a_subject_named_twice_gets_a_failed_vsa_and_never_a_passed(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    statement = statement_of(pub)
    real = statement["subject"]
    hello = next(s for s in real if s["name"] == "out/hello.txt")
    tampered = {"name": "out/hello.txt", "digest": {"sha256": hashlib.sha256(b"backdoor\n").hexdigest()}}
    statement["subject"] = [tampered, *real]  # the tampered digest first, the real one after it
    index, entry = sign_and_log(world, statement)

    done = rebuild_pass(world.auditor, world.follow(max_bad_attempts=3))
    refused = outcome_of(done, entry)
    assert (refused.verdict, refused.final, refused.attempts, refused.vsa_result) == ("BAD", True, 1, FAILED)
    assert refused.reason.startswith("the provenance names subject out/hello.txt more than once (sha256 ")
    assert tampered["digest"]["sha256"] in refused.reason and hello["digest"]["sha256"] in refused.reason
    assert not refused.rebuilt  # refused on its face: nothing was built for it
    vsa = vsa_of(world, refused)
    assert vsa["predicate"]["verificationResult"] == FAILED
    assert vsa["predicate"]["rebuild"]["reason"] == refused.reason
    # The honest provenance of the same build passes; the two-named one has no PASSED VSA, now or later.
    assert outcome_of(done, pub.signed.entry).vsa_result == PASSED
    assert rebuild_pass(world.auditor, world.follow()).outcomes == ()
    judged = [
        VerificationSummary.from_statement(s)
        for _, s in world.verdicts()
        if VerificationSummary.from_statement(s).input_attestations[0].digest["sha256"]
        == hashlib.sha256(entry).hexdigest()
    ]
    assert [s.verification_result for s in judged] == [FAILED]
    assert index == refused.job.log_index


def test_the_vsa_names_only_what_was_checked(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    statement = statement_of(pub)
    for s in statement["subject"]:
        s["digest"] |= {"sha512": "00" * 64, "gitCommit": "11" * 20}
    _, entry = sign_and_log(world, statement)
    good = outcome_of(rebuild_pass(world.auditor, world.follow()), entry)
    assert (good.verdict, good.vsa_result) == ("GOOD", PASSED)  # the sha256 digests reproduce
    vsa = vsa_of(world, good)
    assert [s["digest"] for s in vsa["subject"]] == [
        {"sha256": s["digest"]["sha256"]} for s in statement["subject"]
    ]
    # 9c: the verifier is the auditor's name as it was given (auditor.example/a1), not that with /rebuilder.
    assert vsa["predicate"]["verifier"]["id"] == "https://auditor.example/a1"


def test_a_subject_outside_the_build_directory_is_refused_naming_it(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    made: dict[str, bytes] = {}
    for name in ("/etc/hostname", "out/../../x"):
        statement = statement_of(pub)
        statement["subject"].append({"name": name, "digest": {"sha256": "ab" * 32}})
        made[name] = sign_and_log(world, statement)[1]
    done = rebuild_pass(world.auditor, world.follow())
    for name, entry in made.items():
        refused = outcome_of(done, entry)
        assert (refused.verdict, refused.final, refused.vsa_result, refused.rebuilt) == (
            "BAD", True, FAILED, False,
        )  # fmt: skip
        assert refused.reason == (
            f"the provenance's subject {name!r} is not a relative path inside the build directory: a "
            "provenance naming it is refused"
        )


# --- 3: the build definition must be the one rebuilt --------------------------------------------------------


def test_a_build_definition_that_is_not_the_escrowed_one_is_refused(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})

    def changed(change: Callable[[dict[str, Any]], None]) -> bytes:
        statement = statement_of(pub)
        change(definition(statement))
        return sign_and_log(world, statement)[1]

    def recipe(key: str, value: object) -> Callable[[dict[str, Any]], None]:
        return lambda d: d["externalParameters"]["recipe"].__setitem__(key, value)

    other_tool = {"name": "tool", "uri": f"escrow/{'cd' * 32}", "digest": {"sha256": "cd" * 32}}
    cases = {
        "the provenance's recipe is not the escrowed source's: steps differ": changed(
            recipe("steps", [["false"]])
        ),
        "the provenance's recipe is not the escrowed source's: env differ": changed(
            recipe("env", {"TZ": "EST"})
        ),
        "the provenance's recipe is not the escrowed source's: steps, timeout differ": changed(
            lambda d: d["externalParameters"]["recipe"].update(
                steps=[["sleep", "40"], *d["externalParameters"]["recipe"]["steps"]], timeout=700
            )
        ),
        "the provenance's externalParameters are not a build's: extraStep not run by the rebuilder": changed(
            lambda d: d["externalParameters"].__setitem__("extraStep", ["rm", "-rf", "/"])
        ),
        "the provenance's externalParameters.source digest is not its resolved source dependency's": changed(
            lambda d: d["externalParameters"]["source"]["digest"].__setitem__("dirHash", "ef" * 32)
        ),
        f"the provenance's resolved dependencies are not the escrowed recipe's toolchain: {'cd' * 32} resolved "
        "but not in the recipe's toolchain": changed(lambda d: d["resolvedDependencies"].append(other_tool)),
        "the provenance's reference run is not the one the escrowed recipe makes: tz differ": changed(
            lambda d: d["internalParameters"]["variations"]["runs"][0].__setitem__("tz", "Asia/Tokyo")
        ),
    }
    done = rebuild_pass(world.auditor, world.follow(max_bad_attempts=3))
    for reason, entry in cases.items():
        refused = outcome_of(done, entry)
        assert (refused.verdict, refused.final, refused.attempts, refused.vsa_result) == (
            "BAD", True, 1, FAILED,
        ), reason  # fmt: skip
        assert refused.reason.startswith(reason), (reason, refused.reason)
        assert vsa_of(world, refused)["predicate"]["rebuild"]["verdict"] == "BAD"
    assert outcome_of(done, pub.signed.entry).vsa_result == PASSED  # the honest one, for contrast
    summaries = [VerificationSummary.from_statement(s) for _, s in world.verdicts()]
    passed = [s.input_attestations[0].digest["sha256"] for s in summaries if s.passed]
    assert passed == [hashlib.sha256(pub.signed.entry).hexdigest()]


# --- 4, 9b: the environment -------------------------------------------------------------------------------


def test_a_provenance_without_an_environment_says_none_was_compared(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    statement = statement_of(pub)
    deps = definition(statement)["resolvedDependencies"]
    assert any(d["name"] == ENVIRONMENT_NAME for d in deps)  # this host has dpkg: the conveyor recorded one
    definition(statement)["resolvedDependencies"] = [d for d in deps if d["name"] != ENVIRONMENT_NAME]
    _, entry = sign_and_log(world, statement)
    good = outcome_of(rebuild_pass(world.auditor, world.follow()), entry)
    note = "the provenance recorded no environment, so none was compared"
    assert (good.verdict, good.vsa_result) == ("GOOD", PASSED)
    assert good.reason == f"every subject rebuilt bit for bit ({note})"
    assert good.environment == note
    environment = vsa_of(world, good)["predicate"]["rebuild"]["environment"]
    assert environment["recorded"] is None and environment["same"] is None and environment["text"] == note


def test_a_bad_verdict_reports_the_environment_its_vsa_carries(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    statement = statement_of(pub)
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(b"swapped\n").hexdigest()
    _, entry = sign_and_log(world, statement)
    bad = outcome_of(rebuild_pass(world.auditor, world.follow(max_bad_attempts=1)), entry)
    assert (bad.verdict, bad.vsa_result) == ("BAD", FAILED)
    environment = vsa_of(world, bad)["predicate"]["rebuild"]["environment"]
    assert environment["same"] is True
    assert bad.environment == environment["text"] == "environment identical"
    assert bad.to_dict()["environment"] == environment["text"]


# --- 5, 6: what the network does ------------------------------------------------------------------------------


def follow_through(world: RebuildWorld, between: Between, **kw: Any) -> RebuildSettings:
    return RebuildSettings.of(
        world.log_url, site=between.url, submit=world.site, workdir=str(world.tmp / "s"), **kw
    )


def test_a_site_that_cannot_be_reached_or_read_uses_no_attempt(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    sha256 = hashlib.sha256(pub.signed.entry).hexdigest()
    redirect = answer_with(lambda p: "/escrow/" in p, 302, b"", Location="http://127.0.0.1:1/elsewhere")
    truncated = answer_with(lambda p: "/escrow/" in p, 200, b"x" * 10, Content_Length="100000")
    refused = RebuildSettings.of(
        world.log_url, site=f"http://127.0.0.1:{free_port()}", submit=world.site, max_fail_attempts=1
    )
    for answer in (redirect, truncated, None):
        if answer is None:
            done = rebuild_pass(world.auditor, refused)  # nothing listens there
        else:
            with Between(world.site, answer).serving() as between:
                done = rebuild_pass(world.auditor, follow_through(world, between, max_fail_attempts=1))
        assert done.outcomes == () and done.exit_code == 2
        (error,) = done.errors
        assert error.job.provenance_sha256 == sha256 and error.to_dict()["error"] == "TransportError"
    with VerdictStore(None, default=world.auditor.paths.rebuild_store) as store:
        job = store.job(world.auditor.key.keyid, sha256)
        assert job is not None and (job.fail_attempts, job.bad_attempts) == (0, 0)
    assert world.verdicts() == []
    (good,) = rebuild_pass(world.auditor, world.follow(max_fail_attempts=1)).outcomes
    assert (good.verdict, good.vsa_result) == ("GOOD", PASSED)


def test_wrong_bytes_from_the_site_are_a_fail_whose_vsa_says_so(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    source = pub.result.source.sha256
    wrong = answer_with(lambda p: p == f"/escrow/{source}", 200, b"other bytes")
    with Between(world.site, wrong).serving() as between:
        follow = follow_through(world, between, max_fail_attempts=2)
        first = outcome_of(rebuild_pass(world.auditor, follow), pub.signed.entry)
        assert (first.verdict, first.final, first.attempts) == ("FAIL", False, 1)
        last = outcome_of(rebuild_pass(world.auditor, follow), pub.signed.entry)
    assert (last.verdict, last.final, last.vsa_result) == ("FAIL", True, FAILED)
    assert last.reason.startswith(
        "the rebuild could not be done (2 attempts): the site served bytes that do not match the digests the "
        f"provenance names: escrow object {pub.result.source.name} (sha256 {source[:16]}) from the site "
    )
    assert vsa_of(world, last)["predicate"]["rebuild"]["reason"] == last.reason


def test_an_escrow_object_is_cut_off_at_its_declared_size_and_leaves_nothing_in_the_cache(
    world: RebuildWorld,
) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    source = pub.result.source.sha256
    size = pub.result.source.size
    oversized = answer_with(lambda p: p == f"/escrow/{source}", 200, b"A" * (4 << 20))
    cache = world.auditor.paths.escrow_cache
    with Between(world.site, oversized).serving() as between:
        done = rebuild_pass(world.auditor, follow_through(world, between))
    assert done.outcomes == () and done.exit_code == 2
    (error,) = done.errors
    assert str(error.error) == (
        f"GET {between.url}/escrow/{source} returned more than {size} bytes, the size the site's "
        f"{source[:16]}.json gives the object"
    )
    assert not cache.exists() or list(cache.iterdir()) == []
    (good,) = rebuild_pass(world.auditor, world.follow()).outcomes
    assert good.verdict == "GOOD" and sorted(p.name for p in cache.iterdir()) == [source, f"{source}.json"]


# --- 7, 9d, 9e: the log's answer to /add, and what the command says ------------------------------------------------


def test_a_submission_the_log_does_not_take_leaves_the_job_pending_and_the_pass_goes_on(
    world: RebuildWorld,
) -> None:
    first, second = (world.build({"hello.txt": f"build {n}\n"}, name=f"b{n}") for n in (1, 2))
    answers: list[bytes] = []

    def replay(h: http.server.BaseHTTPRequestHandler) -> bool:
        if h.command != "POST":
            return False
        body = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        if not answers:  # the first submission goes through; its answer is replayed for every later one
            answers.append(httpx.post(world.site + h.path, content=body, timeout=60).content)
        send(h, 200, answers[0], Content_Type="application/json")
        return True

    base = ["auditor", "rebuild", "--home", str(world.auditor.paths.root), "--follow", world.log_url]
    base += ["--workdir", str(world.tmp / "s"), "--once"]
    with Between(world.site, replay).serving() as between:
        run = overt(*base, "--submit", between.url)
    assert run.returncode == 2, run.stderr
    (line,) = run.stdout.splitlines()  # the first verdict is reported; the pass went on to the second job
    assert line.startswith(f"{first.signed.receipt.index}  ") and "  GOOD  " in line
    assert (
        f"log entry {second.signed.receipt.index} not finished, tried again on the next pass: its PASSED "
        in (run.stderr)
    )
    assert "verdict is signed and stored, but the log did not take it: " in run.stderr

    again = overt(*base)
    assert again.returncode == 0, again.stderr
    (line,) = again.stdout.splitlines()
    assert line.startswith(f"{second.signed.receipt.index}  ") and line.endswith("(decided before)")
    assert f"log entry {second.signed.receipt.index} (provenance sha256 " in again.stderr
    assert "already decided, submitting its stored verdict" in again.stderr
    assert "rebuilding log entry" not in again.stderr
    counted = [
        VerificationSummary.from_statement(s).input_attestations[0].digest["sha256"]
        for _, s in world.verdicts()
    ]
    assert sorted(counted) == sorted(hashlib.sha256(p.signed.entry).hexdigest() for p in (first, second))

    empty = overt(*base, "--follow", "")
    assert empty.returncode == 2 and empty.stdout == ""
    assert (
        empty.stderr.strip() == "error: an empty URL was given for the log, the site or the submit endpoint"
    )


# --- 8: a provenance without subjects -------------------------------------------------------------------------


def test_a_provenance_without_subjects_is_skipped_with_its_reason(world: RebuildWorld) -> None:
    pub = world.build({"hello.txt": "hello auditor\n"})
    statement = statement_of(pub)
    statement["subject"] = []
    index, _ = sign_and_log(world, statement)
    base = ["auditor", "rebuild", "--home", str(world.auditor.paths.root), "--follow", world.log_url]
    base += ["--workdir", str(world.tmp / "s"), "--once"]
    run = overt(*base, "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["skipped"] == [
        {"index": index, "reason": "a signed provenance that does not parse: statement has no subject"}
    ]
    assert [v["log_index"] for v in out["verdicts"]] == [pub.signed.receipt.index]


# --- 9f ---------------------------------------------------------------------------------------------------------


def test_a_database_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as refused:
        VerdictStore(f"postgresql://overt@127.0.0.1:{free_port()}/none", default=tmp_path / "x")
    message = str(refused.value)
    assert message.startswith("cannot open the PostgreSQL verdict store: ")
    assert "\n" not in message and "\t" not in message and "  " not in message
