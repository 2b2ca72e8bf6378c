"""The attestation views ``overt attest verify --json`` and ``overt verify --json`` print."""

from __future__ import annotations

import json

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from overt.attest.verify import verify_envelope
from overt.attest.verify_artifact import ARTIFACT, ArtifactCheck, ArtifactReport, ArtifactVerification
from tests.samples import ed25519_test_signer, provenance_statement


def test_a_verified_statement_as_data() -> None:
    signer = ed25519_test_signer(1)
    statement = provenance_statement()
    envelope = sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [signer])
    verified = verify_envelope(envelope, [signer.public_key], 1)
    assert verified.statement() == statement
    assert verified.to_dict() == {
        "ok": True,
        "keyids": [signer.keyid],
        "payload_type": PAYLOAD_TYPE_IN_TOTO,
        "statement": statement.to_dict(),
    }
    json.dumps(verified.to_dict())


def test_a_verified_payload_of_another_type_has_no_statement() -> None:
    signer = ed25519_test_signer(2)
    envelope = sign_envelope(b"plain bytes", "text/plain", [signer])
    verified = verify_envelope(envelope, [signer.public_key], 1)
    assert verified.statement() is None
    assert verified.to_dict()["statement"] is None and verified.to_dict()["payload_type"] == "text/plain"


def test_an_artifact_verification_names_its_files_and_trust_beside_the_report() -> None:
    report = ArtifactReport(
        sha256="ab" * 32,
        builder_id="https://b.example/v1",
        subject=None,
        keyids=(),
        origin=None,
        tree_size=None,
        log_index=None,
        cosigners=(),
        checks=(ArtifactCheck(name=ARTIFACT, proved=False, detail="no subject"),),
    )
    out = ArtifactVerification(artifact="a.whl", provenance="a.dsse.json", trust="policy P", report=report)
    assert out.to_dict() == {
        "artifact": "a.whl",
        "provenance": "a.dsse.json",
        "trust": "policy P",
        **report.to_dict(),
    }
    assert out.to_dict()["ok"] is False
    assert out.to_dict()["checks"] == [{"check": "artifact", "status": "failed", "detail": "no subject"}]
