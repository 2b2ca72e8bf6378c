"""Interop with independent implementations: securesystemslib's DSSE and the in-toto-attestation package."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor as ItaDescriptor
from in_toto_attestation.v1.statement import Statement as ItaStatement
from securesystemslib import dsse as sslib_dsse
from securesystemslib.exceptions import VerificationError as SslibVerificationError

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
from overt.attest.provenance import SLSA_PROVENANCE_V1, Provenance
from overt.attest.statement import Statement
from overt.attest.verify import verify_statement
from overt.attest.vsa import VerificationSummary
from overt.errors import SignatureError
from tests.samples import (
    ecdsa_test_signer,
    ed25519_test_signer,
    provenance,
    provenance_statement,
    vsa,
    vsa_statement,
)

SIGNERS = [ed25519_test_signer(7), ecdsa_test_signer(7)]


@pytest.mark.parametrize("signer", SIGNERS, ids=["ed25519", "ecdsa"])
def test_our_envelopes_verify_with_securesystemslib(signer):
    ours = sign_envelope(provenance_statement().to_bytes(), PAYLOAD_TYPE_IN_TOTO, [signer])
    theirs = sslib_dsse.Envelope.from_dict(json.loads(ours.to_bytes()))
    assert theirs.pae() == ours.pae()
    assert list(theirs.verify([signer.public_key], 1)) == [signer.keyid]
    # A tampered payload fails theirs too, so the check above is not vacuous.
    bad = sslib_dsse.Envelope.from_dict(
        json.loads(
            Envelope(payload=b"{}", payload_type=PAYLOAD_TYPE_IN_TOTO, signatures=ours.signatures).to_bytes()
        )
    )
    with pytest.raises(SslibVerificationError):
        bad.verify([signer.public_key], 1)


@pytest.mark.parametrize("signer", SIGNERS, ids=["ed25519", "ecdsa"])
def test_securesystemslib_envelopes_verify_with_ours(signer):
    payload = vsa_statement().to_bytes()
    theirs = sslib_dsse.Envelope(payload=payload, payload_type=PAYLOAD_TYPE_IN_TOTO, signatures={})
    theirs.sign(signer.signer)
    ours = Envelope.from_bytes(json.dumps(theirs.to_dict()).encode())
    assert verify_statement(ours, [signer.public_key]) == vsa_statement()
    other = ed25519_test_signer(99)
    with pytest.raises(SignatureError):
        verify_statement(ours, [other.public_key])


def test_our_statement_and_provenance_parse_with_in_toto_attestation():
    st = provenance_statement()
    pb = json_format.Parse(st.to_bytes(), statement_pb2.Statement())
    ItaStatement.copy_from_pb(pb).validate()
    assert pb.predicate_type == SLSA_PROVENANCE_V1
    assert pb.subject[0].digest["sha256"] == st.subject[0].digest["sha256"]
    # The predicate against the package's SLSA Provenance v1 schema, unknown fields rejected.
    prov = json_format.ParseDict(provenance().to_dict(), provenance_pb2.Provenance())
    assert prov.run_details.builder.id == "https://conveyor.overt.example/builder/v1?jurisdiction=CH"
    assert prov.build_definition.resolved_dependencies[0].name == "flit_core-3.9.0-py3-none-any.whl"
    assert prov.run_details.metadata.started_on.ToJsonString() == "2026-11-28T10:00:00Z"


def test_our_vsa_parses_with_in_toto_attestation_except_its_known_bugs():
    st = vsa_statement()
    ItaStatement.copy_from_pb(json_format.Parse(st.to_bytes(), statement_pb2.Statement())).validate()
    d = vsa().to_dict()
    # in-toto-attestation 0.9.3 declares verifiedLevels a string (in-toto/attestation#425; the SLSA spec says
    # array) and has no verifier.version. The rest must parse strictly.
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(d, vsa_pb2.VerificationSummary())
    levels = d.pop("verifiedLevels")
    d["verifier"].pop("version")
    pb = json_format.ParseDict(d, vsa_pb2.VerificationSummary())
    assert pb.verification_result == "PASSED" and pb.resource_uri == "pkg:pypi/tomli@2.0.1"
    assert pb.policy.digest["sha256"] == vsa().policy.digest["sha256"]
    assert levels == ["SLSA_BUILD_LEVEL_3"]


def test_in_toto_attestation_statements_parse_with_ours():
    subject = ItaDescriptor(name="app.whl", digest={"sha256": "c" * 64}).pb
    theirs = ItaStatement([subject], SLSA_PROVENANCE_V1, provenance().to_dict())
    theirs.validate()
    ours = Statement.from_bytes(json_format.MessageToJson(theirs.pb).encode())
    assert ours.subject[0].name == "app.whl"
    assert Provenance.from_statement(ours) == provenance()
    # A Provenance message built with the package's own classes parses with ours.
    pb = provenance_pb2.Provenance()
    pb.build_definition.build_type = "https://example.com/buildtype/v1"
    pb.build_definition.external_parameters.update({"repo": "https://example.com/repo"})
    pb.run_details.builder.id = "https://example.com/builder"
    pb.run_details.metadata.invocation_id = "inv-1"
    pb.run_details.metadata.started_on.FromJsonString("2024-01-02T03:04:05Z")
    dep = pb.build_definition.resolved_dependencies.add()
    dep.uri = "git+https://example.com/repo"
    dep.digest["gitCommit"] = "d" * 40
    got = Provenance.from_bytes(json_format.MessageToJson(pb).encode())
    assert got.run_details.builder.id == "https://example.com/builder"
    assert got.run_details.metadata.started_on == "2024-01-02T03:04:05Z"
    assert got.build_definition.resolved_dependencies[0].digest == {"gitCommit": "d" * 40}


def test_in_toto_attestation_vsa_message_parses_with_ours_when_levels_are_an_array():
    pb = vsa_pb2.VerificationSummary()
    pb.verifier.id = "https://verifier.example"
    pb.time_verified.FromJsonString("2024-05-06T07:08:09Z")
    pb.resource_uri = "pkg:pypi/idna@3.7"
    pb.policy.uri = "https://example.com/policy"
    pb.verification_result = "FAILED"
    d = json_format.MessageToDict(pb)
    d["verifiedLevels"] = []  # the package cannot express the spec's array (in-toto/attestation#425)
    got = VerificationSummary.from_dict(d)
    assert not got.passed and got.policy.uri == "https://example.com/policy"
