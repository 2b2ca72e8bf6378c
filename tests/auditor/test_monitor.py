"""``overt auditor monitor``'s flags, each against a real world (tests/auditor/monitor_world.py): what the
vendor's log and repository hold that a customer must be told, and the position kept between runs."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from overt.attest.statement import ResourceDescriptor, Statement, format_timestamp
from overt.attest.vsa import FAILED, PASSED, VerificationSummary, VsaVerifier
from overt.auditor.monitor_claims import NO_JURISDICTION, claims_of
from overt.distribute.repository import NewTarget, Repository
from overt.distribute.testbed import add_key, forge_targets
from overt.keys.claims import foreign_claims
from overt.keys.jurisdiction import AVDB_AUDIT_V1, AVDB_WAIVER_V1, Issuer
from overt.keys.registry import KeyRecord, Role
from overt.keys.rotation import rotation_statement
from tests.auditor.monitor_world import (
    LATER,
    NOW,
    current,
    kinds,
    log_signed,
    provenance,
    run,
    signed_entry,
    world,
)
from tests.distribute.world import World

__all__ = ["world"]


def test_a_clean_log_raises_nothing_and_a_restart_reads_nothing_again(world: World, tmp_path: Path) -> None:
    first = run(world, tmp_path / "m")
    assert first.alerts == () and first.pending == ()
    assert first.entries_read == first.tree_size > 0 and first.previous_size == 0
    again = run(world, tmp_path / "m")
    assert again.entries_read == 0 and again.previous_size == first.tree_size
    world.release("1.1")
    third = run(world, tmp_path / "m")
    assert third.previous_size == first.tree_size and third.entries_read == third.tree_size - first.tree_size
    assert third.alerts == ()


def test_a_release_short_of_k_verdicts_is_pending_then_alerted_once_its_deadline_passes(
    world: World, tmp_path: Path
) -> None:
    released = world.release("1.1", vouched=1)
    first = run(world, tmp_path / "m", now=NOW)
    assert first.alerts == ()
    assert [(p.path, p.passed, p.required) for p in first.pending] == [(released.path, 1, 2)]
    later = run(world, tmp_path / "m", now=LATER)
    assert kinds(later) == ["release-unverified"] and later.alerts[0].subject == released.path
    assert later.entries_read == 0 and later.pending == ()
    assert run(world, tmp_path / "m", now=LATER).alerts == ()  # alerted once


def test_verdicts_by_one_key_count_once_and_untrusted_keys_not_at_all(world: World, tmp_path: Path) -> None:
    released = world.release("1.1", vouched=1)
    world.vouch(released, world.auditors[0])  # the same auditor again
    world.vouch(released, add_key(world.home, Role.AUDITOR))  # a key the trust policy does not name
    assert [p.passed for p in run(world, tmp_path / "m", now=NOW).pending] == [1]
    assert kinds(run(world, tmp_path / "m", now=LATER)) == ["release-unverified"]


def test_a_failed_verdict_by_a_trusted_auditor_is_alerted(world: World, tmp_path: Path) -> None:
    released = world.release("1.1", vouched=1)
    world.vouch(released, world.auditors[1], result=FAILED)
    report = run(world, tmp_path / "m")
    assert kinds(report) == ["release-failed", "verdict-failed"]
    assert {a.subject for a in report.alerts if a.kind == "release-failed"} == {released.path}


def test_two_artifacts_for_one_version_are_alerted(world: World, tmp_path: Path) -> None:
    assert run(world, tmp_path / "m").alerts == ()
    other = b"another artifact\n"
    signed = world.home.signing_service().sign(current(world, Role.BUILDER), provenance(world, other))
    custom = {
        "overt": {
            "kind": "product",
            "product": "demo",
            "channel": "beta",
            "version": "1.0.0",  # PEP 440: the version 1.0 already is
            "provenance": {
                "sha256": hashlib.sha256(signed.entry).hexdigest(),
                "logIndex": signed.receipt.index,
            },
        }
    }
    target = NewTarget(
        path="products/demo/1.0.0/demo.tar.gz",
        data=other,
        custom=custom,
        provenance=signed.entry,
        provenance_index=signed.receipt.index,
    )
    with Repository.edit(world.repo.ctx) as repo:
        repo.add_targets([target])
    report = run(world, tmp_path / "m")
    assert "duplicate-version" in kinds(report)
    assert "unlogged-metadata" not in kinds(report)  # the change itself was logged


def test_a_metadata_file_not_in_the_log_is_alerted(world: World, tmp_path: Path) -> None:
    assert run(world, tmp_path / "m").alerts == ()
    forged = NewTarget(path="products/demo/9.0/demo.tar.gz", data=b"targeted\n", custom={})
    names = forge_targets(world.home, world.home.path, [forged])  # signed with the home's keys, not logged
    report = run(world, tmp_path / "m")
    flagged = {a.subject for a in report.alerts if a.kind == "unlogged-metadata"}
    assert flagged == set(names)


def _issue(world: World, predicate_type: str, subject: str, predicate: dict[str, object]) -> None:
    statement = Statement(
        subject=(
            ResourceDescriptor(name=subject, digest={"sha256": hashlib.sha256(subject.encode()).hexdigest()}),
        ),
        predicate_type=predicate_type,
        predicate={**predicate, "jurisdiction": "CH", "time": format_timestamp(datetime.now(UTC))},
    )
    world.home.signing_service().issue(world.auditors[0], statement, issuer=Issuer(predicate_type))


def test_av_database_findings_and_waivers_are_alerted(world: World, tmp_path: Path) -> None:
    # The statement counts the findings of the report it names by digest: advisory ones alone do not alert.
    _issue(world, AVDB_AUDIT_V1, "avdb-main-rules", {"database": "main", "findings": 0, "blocking": 0})
    _issue(world, AVDB_AUDIT_V1, "avdb-main-rules-1", {"database": "main", "findings": 4, "blocking": 0})
    assert run(world, tmp_path / "m").alerts == ()
    _issue(world, AVDB_AUDIT_V1, "avdb-main-rules-2", {"database": "main", "findings": 5, "blocking": 1})
    _issue(
        world, AVDB_WAIVER_V1, "finding:f1", {"database": "main", "findingId": "f1", "reason": "a test rule"}
    )
    assert kinds(run(world, tmp_path / "m")) == ["avdb-findings", "avdb-waiver"]


def test_a_key_signing_outside_its_jurisdiction_is_alerted(world: World, tmp_path: Path) -> None:
    assert run(world, tmp_path / "m").alerts == ()
    index = log_signed(
        world,
        provenance(world, b"x", builder_id="https://overt.example/conveyor/v1?jurisdiction=RU"),
        current(world, Role.BUILDER),
    )
    report = run(world, tmp_path / "m")
    found = [a for a in report.alerts if a.kind == "jurisdiction"]
    assert [a.index for a in found] == [index] and '"RU"' in found[0].message


def test_provenance_outside_the_builder_registry_is_alerted(world: World, tmp_path: Path) -> None:
    index = log_signed(
        world, provenance(world, b"x", builder_id="https://elsewhere.example/b"), current(world, Role.BUILDER)
    )
    report = run(world, tmp_path / "m")
    assert kinds(report) == ["builder-registry"] and report.alerts[0].index == index


def test_a_rotation_not_signed_by_the_old_key_is_alerted_and_a_signed_one_is_not(
    world: World, tmp_path: Path
) -> None:
    old = current(world, Role.BUILDER)
    new = add_key(world.home, Role.BUILDER)
    statement = rotation_statement(old, new, reason="test", now=datetime.now(UTC))
    good = log_signed(world, statement, old)
    bad = log_signed(world, statement, new)
    report = run(world, tmp_path / "m")
    assert [(a.kind, a.index) for a in report.alerts] == [("rotation-unsigned", bad)]
    assert good < bad


def test_an_entry_whose_signature_does_not_verify_counts_for_nothing(world: World, tmp_path: Path) -> None:
    released = world.release("1.1", vouched=1)
    summary = VerificationSummary(
        verifier=VsaVerifier(id="https://auditor.example/rebuilder"),
        time_verified=format_timestamp(datetime.now(UTC)),
        resource_uri=released.path,
        policy=ResourceDescriptor(uri="https://auditor.example/policy/v1"),
        verification_result=PASSED,
        verified_levels=("SLSA_BUILD_LEVEL_3",),
    )
    statement = summary.statement(
        (ResourceDescriptor(name=released.path, digest={"sha256": released.sha256}),)
    )
    entry = signed_entry(world, statement, world.auditors[1])
    sig = entry.index(b'"sig":"') + len(b'"sig":"')
    world.home.log.append(entry[:sig] + (b"B" if entry[sig : sig + 1] == b"A" else b"A") + entry[sig + 1 :])
    assert [p.passed for p in run(world, tmp_path / "m", now=NOW).pending] == [
        1
    ]  # the forged PASSED did not count
    assert kinds(run(world, tmp_path / "m", now=LATER)) == ["release-unverified"]


def _log_payload(world: World, payload: bytes, record: KeyRecord) -> int:
    """``payload`` (any bytes) in a DSSE envelope signed with ``record``'s key, logged; its index."""
    signer = world.home.signer_for(record)
    receipt = world.home.log.append(sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, [signer]).to_bytes())
    assert receipt.published
    return receipt.index


def _with_duplicate_key(statement: Statement) -> bytes:
    """``statement``'s JSON with its ``_type`` twice: JSON parsers keep one, overt's strict parser refuses it."""
    text = statement.to_bytes()
    assert text.startswith(b'{"_type":')
    return b'{"_type":"https://in-toto.io/Statement/v0",' + text[1:]


def test_an_entry_overt_refuses_is_reported_as_refused_not_as_a_bad_signature(
    world: World, tmp_path: Path
) -> None:
    builder = current(world, Role.BUILDER)
    stray = provenance(world, b"x", builder_id="https://elsewhere.example/b")
    index = _log_payload(world, _with_duplicate_key(stray), builder)  # validly signed, but malformed
    (alert,) = run(world, tmp_path / "m").alerts
    assert (alert.kind, alert.index) == ("forged-entry", index)
    assert "strict parser refuses it" in alert.message and "duplicate JSON key '_type'" in alert.message
    assert "signature does not verify" not in alert.message


def test_a_malformed_rotation_by_the_old_key_is_alerted_and_introduces_nothing(
    world: World, tmp_path: Path
) -> None:
    old = current(world, Role.BUILDER)
    statement = rotation_statement(
        old, add_key(world.home, Role.BUILDER), reason="test", now=datetime.now(UTC)
    )
    index = _log_payload(world, _with_duplicate_key(statement), old)
    report = run(world, tmp_path / "m")
    assert report.log_error is None
    assert [(a.kind, a.index) for a in report.alerts] == [("rotation-unsigned", index)]
    assert "strict parser refuses the statement" in report.alerts[0].message


def test_the_claims_fast_path_finds_what_foreign_claims_finds() -> None:
    hidden = base64.b64encode(b"see ?jurisdiction=RU").decode()
    values = [
        "https://b.example/v1?jurisdiction=RU",
        "https://b.example/v1?JURISDICTION=RU&x=1",
        "juris_diction:DE",
        "j-u-r-i-s-d-i-c-t-1-0-n=FR",
        "a json subject, no claim",
        "Jurisdiction/US/and jurisdiction=CN",
        hidden,
        "0" * 64,
        "https://b.example/v1?\u0458urisdiction=RU",  # Cyrillic je
    ]
    for value in values:
        for predicate in ({"v": value}, {"list": ["x", value]}, {value[:20]: "y"}):
            statement = Statement(
                subject=(ResourceDescriptor(name="n", digest={"sha256": "ab" * 32}),),
                predicate_type="https://example/p",
                predicate=predicate,
            )
            text = statement.to_bytes().decode()
            fast = sorted(v for _, v in claims_of(lambda s=statement: s, text))
            assert fast == sorted(v for _, v in foreign_claims(statement, NO_JURISDICTION)), (
                value,
                predicate,
            )
