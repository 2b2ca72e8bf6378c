"""The views ``overt keys audit`` and ``overt attest sign`` print with ``--json``, from a real home and log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, EnvelopeSignature
from overt.errors import PolicyError
from overt.home import Home
from overt.keys.audit import BAD_SIGNATURE, REFUSED, SIGNED, audit_record
from overt.keys.lifecycle import KeyHome, generate_key
from overt.keys.registry import KeyRecord, Role
from overt.keys.signing import SignedStatement
from overt.tlog.client import LogClient, directory_fetcher
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement, register_builders


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home.init(tmp_path / "conveyor", origin="conveyor.example/log", jurisdiction="CH")
    register_builders(h, SAMPLE_BUILDER_ID)
    return h


def builder_key(kh: KeyHome, h: Home, keytype: str = "ed25519") -> KeyRecord:
    return generate_key(  # force: some tests want a second active builder key
        kh, h.signing_service(), role=Role.BUILDER, keytype=keytype, force=True, now=datetime.now(UTC)
    ).record


def client(h: Home) -> LogClient:
    return LogClient(directory_fetcher(h.log.paths.public), h.log.policy())


def test_key_audit_view_names_the_key_the_tree_and_each_entry(home: Home) -> None:
    kh = home.key_home()
    builder = builder_key(kh, home)
    service = home.signing_service()
    signed = service.sign(builder, provenance_statement())
    with pytest.raises(PolicyError):
        service.sign(builder, provenance_statement("US"))
    audited = audit_record(client(home), builder)
    assert audited.report.bad_signatures == ()
    out = audited.to_dict()
    size = audited.report.tree.checkpoint.checkpoint.tree_size
    assert {k: out[k] for k in ("keyid", "role", "jurisdiction")} == {
        "keyid": builder.keyid,
        "role": "builder",
        "jurisdiction": "CH",
    }
    assert out["log"] == {"origin": "conveyor.example/log", "tree_size": size, "cosigners": []}
    assert [(e["index"], e["kind"]) for e in out["entries"]] == [
        (signed.receipt.index, SIGNED),
        (signed.receipt.index + 1, REFUSED),
    ]
    first = out["entries"][0]
    assert set(first) == {
        "index",
        "kind",
        "predicate_type",
        "subjects",
        "envelope_sha256",
        "detail",
        "inclusion_verified",
    }
    assert (
        first["subjects"] == list(audited.report.entries[0].subjects) and first["inclusion_verified"] is True
    )
    json.dumps(out)  # plain data


def test_a_forged_signature_is_a_bad_signature_of_the_audit(home: Home) -> None:
    kh = home.key_home()
    builder, other = builder_key(kh, home), builder_key(kh, home, "ecdsa")
    theirs = home.signing_service().sign(other, provenance_statement()).envelope.signatures[0].sig
    forged = Envelope(
        payload=provenance_statement().to_bytes(),
        payload_type=PAYLOAD_TYPE_IN_TOTO,
        signatures=(EnvelopeSignature(keyid=builder.keyid, sig=theirs),),
    )
    bad = home.log.append(forged.to_bytes())
    audited = audit_record(client(home), builder)
    assert [e.index for e in audited.report.bad_signatures] == [bad.index]
    assert audited.to_dict()["entries"][-1]["kind"] == BAD_SIGNATURE


def test_signed_statement_view_holds_the_envelope_or_where_it_was_written(home: Home, tmp_path: Path) -> None:
    builder = builder_key(home.key_home(), home)
    signed = home.signing_service().sign(builder, provenance_statement())
    whole = SignedStatement(keyid=builder.keyid, signed=signed).to_dict()
    assert whole == {
        "keyid": builder.keyid,
        "log_index": signed.receipt.index,
        "tree_size": signed.receipt.tree_size,
        "checkpoint_published": True,
        "envelope": signed.envelope.to_dict(),
    }
    assert Envelope.from_bytes(json.dumps(whole["envelope"]).encode()) == signed.envelope
    out = tmp_path / "env.json"
    written = SignedStatement(keyid=builder.keyid, signed=signed, out=out).to_dict()
    assert written == {**whole, "envelope": str(out)}
