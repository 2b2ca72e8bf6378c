"""Signing policy end to end on a real home: jurisdiction refusals are logged, signatures are log entries,
rotation is a logged statement by the old key, and the per-key audit reads it all back from the log."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, EnvelopeSignature
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.verify import verify_statement
from overt.errors import ConfigError, PolicyError, SignatureError, StorageError
from overt.home import Home
from overt.keys.audit import BAD_SIGNATURE, REFUSED, SIGNED, audit_key
from overt.keys.jurisdiction import KEY_ROTATION_V1, SIGNING_REFUSAL_V1, Issuer, SigningPolicy, judge
from overt.keys.registry import KeyRecord, Role, load_public_keys
from overt.keys.rotation import introduced_key, rotate, rotation_statement
from overt.keys.signers import generate_file_key
from overt.keys.signing import SigningService
from overt.tlog.client import LogClient, directory_fetcher
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement, register_builders, vsa_statement

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POLICY = SigningPolicy(jurisdiction="CH", builders={SAMPLE_BUILDER_ID: "CH"})


def add_key(
    h: Home, role: Role, *, jurisdiction: str = "CH", keytype: str = "ed25519", **validity
) -> KeyRecord:
    uri, key = generate_file_key(h.paths.keys, keytype)
    args = {"valid_from": T0 - timedelta(days=1), "valid_until": None, **validity}
    record = KeyRecord.create(key, role=role, jurisdiction=jurisdiction, uri=uri, **args)
    h.registry.save(record)
    return record


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home.init(tmp_path / "conveyor", origin="conveyor.example/log", jurisdiction="CH")
    register_builders(h, SAMPLE_BUILDER_ID)
    return h


def client(h: Home) -> LogClient:
    return LogClient(directory_fetcher(h.log.paths.public), h.log.policy())


def log_entries(h: Home) -> list[bytes]:
    if not (h.log.paths.public / "checkpoint").exists():
        return []
    c = client(h)
    tree = c.update()
    return c.entries(tree.checkpoint.checkpoint.tree_size)


def test_signature_is_the_logged_envelope(home):
    builder = add_key(home, Role.BUILDER)
    signed = home.signing_service(lambda: T0).sign(builder, provenance_statement("CH"))
    entries = log_entries(home)
    assert entries[signed.receipt.index] == signed.entry == signed.envelope.to_bytes()
    c = client(home)
    c.verify_inclusion(signed.entry, signed.receipt.index, c.update().checkpoint)
    (published,) = load_public_keys([home.paths.public / "keys" / f"{builder.keyid}.json"])
    assert (
        verify_statement(Envelope.from_bytes(entries[signed.receipt.index]), [published.key])
        == provenance_statement()
    )


@pytest.mark.parametrize("keytype", ["ed25519", "ecdsa"])
def test_foreign_jurisdiction_is_refused_and_the_refusal_is_logged(home, keytype):
    builder = add_key(home, Role.BUILDER, keytype=keytype)
    before = len(log_entries(home))
    expected = (
        'names jurisdiction "US" at /predicate/runDetails/builder/id, outside the key\'s jurisdiction CH'
    )
    with pytest.raises(PolicyError, match=re.escape(expected)) as e:
        home.signing_service(lambda: T0).sign(builder, provenance_statement("US"))
    index = e.value.evidence["refusal_logged_at"]
    entries = log_entries(home)
    assert index == before and len(entries) == before + 1
    refusal = Envelope.from_bytes(entries[index])
    assert refusal.signatures == ()  # a refusal makes no signature
    note = Statement.from_bytes(refusal.payload)
    assert note.predicate_type == SIGNING_REFUSAL_V1
    assert note.predicate["keyid"] == builder.keyid and note.predicate["claimedJurisdictions"] == ["US"]
    assert "outside the key's jurisdiction CH" in note.predicate["reason"]
    c = client(home)
    c.verify_inclusion(entries[index], index, c.update().checkpoint)
    # And the key signed nothing: no entry carries a signature by it (the release key signed the registry).
    assert all(
        s.keyid != builder.keyid
        for x in entries
        if x.startswith(b"{")
        for s in Envelope.from_bytes(x).signatures
    )


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        (provenance_statement(None), "is not in this conveyor's builder registry"),
        (provenance_statement("CH", internal="RU"), '"RU" at /predicate/buildDefinition/internalParameters'),
        (provenance_statement("ch"), 'names jurisdiction "ch"'),
        (vsa_statement(), re.escape("does not sign https://slsa.dev/verification_summary/v1")),
    ],
)
def test_builder_refusals(home, statement, reason):
    builder = add_key(home, Role.BUILDER)
    with pytest.raises(PolicyError, match=reason):
        home.signing_service(lambda: T0).sign(builder, statement)


def test_roles_and_validity(home):
    auditor = add_key(home, Role.AUDITOR, keytype="ecdsa")
    service = home.signing_service(lambda: T0)
    service.sign(auditor, vsa_statement())
    with pytest.raises(
        PolicyError, match=re.escape("auditor key does not sign https://slsa.dev/provenance/v1")
    ):
        service.sign(auditor, provenance_statement())
    expired = add_key(home, Role.BUILDER, valid_until=T0)
    with pytest.raises(PolicyError, match="expired"):
        service.sign(expired, provenance_statement())
    future = add_key(home, Role.BUILDER, valid_from=T0 + timedelta(hours=1))
    with pytest.raises(PolicyError, match="not yet valid"):
        service.sign(future, provenance_statement())
    assert judge(future, provenance_statement(), POLICY, now=T0 + timedelta(hours=2)) is None
    # The home made its log key just now: judge it at the present, when it is valid, so the role is what fails.
    log = home.log_key()
    with pytest.raises(PolicyError, match="log key does not sign"):
        home.signing_service(lambda: datetime.now(UTC)).sign(log, provenance_statement())


def test_nothing_is_released_when_the_log_cannot_take_it(home):
    builder = add_key(home, Role.BUILDER)

    def broken(_: bytes):
        raise StorageError("disk full")

    service = SigningService(
        load=home.signer_for,
        append=broken,
        now=lambda: T0,
        jurisdiction="CH",
        builders=lambda: {SAMPLE_BUILDER_ID: "CH"},
    )
    with pytest.raises(StorageError):
        service.sign(builder, provenance_statement())


def test_rotation_is_logged_and_old_signatures_stay_verifiable(home):
    old = add_key(home, Role.BUILDER)
    service = home.signing_service(lambda: T0)
    first = service.sign(old, provenance_statement())
    uri, key = generate_file_key(home.paths.keys, "ed25519")
    draft = KeyRecord.create(
        key, role=Role.BUILDER, jurisdiction="CH", valid_from=T0, valid_until=None, uri=uri
    )
    new, rotation = rotate(service, home.registry, old, new_uri=uri, new_key_record=draft, reason="yearly")

    # The rotation statement is signed by the old key, logged, and names the new key.
    entries = log_entries(home)
    logged = Envelope.from_bytes(entries[rotation.receipt.index])
    st = verify_statement(logged, [old.key])
    assert st.predicate_type == KEY_ROTATION_V1 and st.predicate["reason"] == "yearly"
    assert introduced_key(st, old).keyid == new.keyid
    assert new.introduced_by == rotation.receipt.index

    # The registry moved on: old is rotated (validity ended), new is the current builder key.
    old_now = home.registry.get(old.keyid)
    assert old_now.rotated_to == new.keyid and old_now.valid_until == T0
    assert home.registry.current(Role.BUILDER, T0 + timedelta(seconds=1)).keyid == new.keyid
    with pytest.raises(PolicyError, match="rotated"):
        service.sign(old_now, provenance_statement())
    second = service.sign(home.registry.get(new.keyid), provenance_statement())

    # Older entries stay verifiable with the old key's published file; the new key does not verify them.
    (old_public,) = load_public_keys([home.paths.public / "keys" / f"{old.keyid}.json"])
    (new_public,) = load_public_keys([home.paths.public / "keys" / f"{new.keyid}.json"])
    verify_statement(Envelope.from_bytes(entries[first.receipt.index]), [old_public.key])
    with pytest.raises(SignatureError):
        verify_statement(Envelope.from_bytes(entries[first.receipt.index]), [new_public.key])
    verify_statement(second.envelope, [new_public.key])
    assert new_public.introduced_by == rotation.receipt.index and old_public.rotated_to == new.keyid


def test_rotation_cannot_change_jurisdiction_or_role(home):
    old = add_key(home, Role.BUILDER)
    uri, key = generate_file_key(home.paths.keys, "ed25519")
    elsewhere = KeyRecord.create(
        key, role=Role.BUILDER, jurisdiction="DE", valid_from=T0, valid_until=None, uri=uri
    )
    move = rotation_statement(old, elsewhere, reason="move", now=T0)
    refusal = judge(old, move, POLICY, now=T0, issuer=Issuer(KEY_ROTATION_V1))
    assert refusal is not None and '"DE" at /predicate/jurisdiction' in refusal.reason
    st = rotation_statement(old, replace(elsewhere, jurisdiction="CH", role=Role.AUDITOR), reason="x", now=T0)
    with pytest.raises(Exception, match="keeps the role"):
        introduced_key(st, old)
    with pytest.raises(ConfigError, match="log's identity"):
        rotate(
            home.signing_service(),
            home.registry,
            home.log_key(),
            new_uri=uri,
            new_key_record=elsewhere,
            reason="x",
        )


def test_audit_lists_everything_a_key_did(home):
    builder = add_key(home, Role.BUILDER)
    other = add_key(home, Role.BUILDER, keytype="ecdsa")
    service = home.signing_service(lambda: T0)
    a = service.sign(builder, provenance_statement())
    with pytest.raises(PolicyError):
        service.sign(builder, provenance_statement("US"))
    service.sign(other, provenance_statement())
    home.log.append(b"not an envelope")
    # A forged envelope that names the builder's keyid but carries someone else's signature.
    forged_sig = other_sig = service.sign(other, provenance_statement()).envelope.signatures[0].sig
    forged = Envelope(
        payload=provenance_statement().to_bytes(),
        payload_type=PAYLOAD_TYPE_IN_TOTO,
        signatures=(EnvelopeSignature(keyid=builder.keyid, sig=forged_sig),),
    )
    bad = home.log.append(forged.to_bytes())
    report = audit_key(client(home), builder.key)
    kinds = [(e.index, e.kind) for e in report.entries]
    assert kinds == [(a.receipt.index, SIGNED), (a.receipt.index + 1, REFUSED), (bad.index, BAD_SIGNATURE)]
    assert all(e.inclusion_verified for e in report.entries)
    assert report.entries[1].detail.startswith('statement names jurisdiction "US"')
    assert report.entries[0].subjects[0].startswith("tomli-2.0.1-py3-none-any.whl sha256:")
    others = audit_key(client(home), other.key)
    assert [e.kind for e in others.entries] == [SIGNED, SIGNED]
    assert other_sig


def test_statements_with_other_payload_types_are_described_not_parsed():
    st = Statement(subject=(ResourceDescriptor(name="x", digest={"sha256": "a" * 64}),), predicate_type="p")
    assert Statement.from_bytes(st.to_bytes()) == st


def test_one_writer_per_home(home):
    first = home.log.open()
    try:
        with pytest.raises(ConfigError, match=f"another process \\(pid {os.getpid()}"):
            home.log.open(wait=0.2)
    finally:
        first.close()
    home.log.open(wait=0.2).close()  # released on close


def test_signing_through_a_running_log_server(home, tmp_path):
    from overt.server.log import create_app
    from overt.server.runner import BackgroundServer
    from tests.cli.test_cli import overt

    builder = add_key(home, Role.BUILDER)
    statement = tmp_path / "st.json"
    statement.write_bytes(provenance_statement("CH").to_bytes())
    foreign = tmp_path / "us.json"
    foreign.write_bytes(provenance_statement("US").to_bytes())
    before = len(log_entries(home))  # the builder registry's two versions
    with BackgroundServer(create_app(home)) as srv:
        r = overt(
            "attest",
            "sign",
            str(statement),
            "--key",
            builder.keyid,
            "--log-url",
            srv.url,
            "--home",
            str(home.path),
            "--json",
        )
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["log_index"] == before
        r = overt(
            "attest",
            "sign",
            str(foreign),
            "--key",
            builder.keyid,
            "--log-url",
            srv.url,
            "--home",
            str(home.path),
        )
        assert (
            r.returncode == 1
            and "refusal logged at" not in r.stdout
            and f"refusal_logged_at: {before + 1}" in r.stderr
        )
    entries = log_entries(home)
    assert len(entries) == before + 2 and Envelope.from_bytes(entries[before + 1]).signatures == ()
