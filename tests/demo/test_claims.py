"""Claims, commands and the promise table: what the demo reports is data that cannot be built inconsistent."""

from __future__ import annotations

import json

import pytest

from overt.demo import NOT_YET, PROMISES, Claim, Command, Promise, Stage, Status, promise_table

DEFAULT = Command(argv=("overt", "log", "fsck"))


def claim(
    promise: Promise,
    status: Status = Status.PROVED,
    evidence: str = "evidence/x",
    *,
    recheck: Command | None = DEFAULT,
    recheck_unavailable: str = "",
    facts: dict[str, object] | None = None,
) -> Claim:
    return Claim(
        id=f"t.{promise.name}.{evidence}",
        promise=promise,
        status=status,
        check="it held",
        evidence=evidence,
        recheck=recheck,
        recheck_unavailable=recheck_unavailable,
        facts=facts or {},
    )


def stage(*claims: Claim) -> Stage:
    return Stage(name="t", title="test", setup="nothing", claims=claims)


def test_the_promises_are_the_readme_list_in_order() -> None:
    assert [p.value for p in PROMISES] == [
        "built from the audited source",
        "signed only in the named jurisdiction",
        "nothing signed in secret",
        "no document-hunting rules",
        "the same update for everyone",
        "telemetry kept in its jurisdiction",
    ]


def test_a_promise_without_claims_is_not_yet_and_says_what_will_prove_it() -> None:
    rows = {r.promise: r for r in promise_table([stage(claim(Promise.NOTHING_SIGNED_IN_SECRET))])}
    assert rows[Promise.NOTHING_SIGNED_IN_SECRET].status == "proved"
    for promise in PROMISES:
        if promise is not Promise.NOTHING_SIGNED_IN_SECRET:
            assert rows[promise].status == "not yet"
            assert rows[promise].evidence == ()
    assert rows[Promise.TELEMETRY_IN_JURISDICTION].note == "no stage checks it yet"
    # Every promise has its demo stage now (residency the last): nothing says it comes later.
    assert dict(NOT_YET) == {}
    assert rows[Promise.SAME_UPDATE_FOR_EVERYONE].note == "no stage checks it yet"


def test_one_skipped_claim_keeps_its_promise_not_yet() -> None:
    source = Promise.BUILT_FROM_AUDITED_SOURCE
    (row,) = [
        r
        for r in promise_table(
            [stage(claim(source, evidence="a"), claim(source, Status.SKIPPED, evidence="b"))]
        )
        if r.promise is source
    ]
    assert not row.proved and row.status == "not yet"
    assert row.evidence == ("a",)  # only proved claims count as evidence
    assert row.note == "1 of 2 checks skipped"


def test_evidence_is_listed_once_per_file() -> None:
    secret = Promise.NOTHING_SIGNED_IN_SECRET
    rows = promise_table(
        [stage(claim(secret, evidence="f"), claim(secret, evidence="f"), claim(secret, evidence="g"))]
    )
    assert rows[PROMISES.index(secret)].evidence == ("f", "g")


def test_a_claim_needs_a_recheck_or_the_reason_there_is_none() -> None:
    with pytest.raises(ValueError, match="re-check"):
        claim(Promise.NOTHING_SIGNED_IN_SECRET, recheck=None)
    with pytest.raises(ValueError, match="re-check"):
        claim(Promise.NOTHING_SIGNED_IN_SECRET, recheck_unavailable="also a reason")
    ok = claim(Promise.NOTHING_SIGNED_IN_SECRET, recheck=None, recheck_unavailable="the witness stopped")
    assert ok.to_dict()["recheck"] is None and ok.to_dict()["recheck_unavailable"] == "the witness stopped"


def test_evidence_is_relative_to_the_demo_directory() -> None:
    with pytest.raises(ValueError, match="relative"):
        claim(Promise.NOTHING_SIGNED_IN_SECRET, evidence="/tmp/demo/evidence/x")


def test_a_recheck_runs_overt_and_expects_success_or_the_refusal() -> None:
    with pytest.raises(ValueError):
        Command(argv=("sh", "-c", "true"))
    with pytest.raises(ValueError):
        Command(argv=("overt", "scan"), exit_code=2)
    cmd = Command(argv=("overt", "log", "verify", "--policy", "/tmp/a dir/trusted.policy"), exit_code=1)
    assert cmd.text == "overt log verify --policy '/tmp/a dir/trusted.policy'"  # pasteable: quoted
    assert cmd.to_dict() == {"command": cmd.text, "argv": list(cmd.argv), "exit_code": 1}


def test_claims_are_frozen_and_serialise_to_json() -> None:
    c = claim(Promise.NO_DOCUMENT_HUNTING, facts={"detections": ["eicar.com:EICAR_Test_File"]})
    with pytest.raises(AttributeError):
        c.status = Status.SKIPPED  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.facts["detections"] = []  # type: ignore[index]
    data = json.loads(json.dumps(stage(c).to_dict()))
    assert data["claims"][0] == {
        "id": c.id,
        "promise": "no document-hunting rules",
        "status": "proved",
        "check": "it held",
        "evidence": "evidence/x",
        "recheck": {"command": "overt log fsck", "argv": ["overt", "log", "fsck"], "exit_code": 0},
        "recheck_unavailable": None,
        "facts": {"detections": ["eicar.com:EICAR_Test_File"]},
    }
