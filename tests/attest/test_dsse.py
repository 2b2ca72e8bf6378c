"""DSSE: the spec's PAE and envelope vector, envelope round trips, fuzzing, and k-of-n over distinct keys."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, EnvelopeSignature, pae, sign_envelope
from overt.attest.verify import verify_envelope, verify_statement
from overt.errors import ConfigError, FormatError, SignatureError
from tests.samples import ecdsa_test_signer, ed25519_test_signer, provenance_statement


def test_pae_and_envelope_match_the_spec_example(vectors):
    v = json.loads((vectors / "dsse" / "protocol-example.json").read_text())
    body = v["serialized_body"].encode()
    assert pae(v["payload_type"], body) == v["pae"].encode()
    env = Envelope.from_bytes(json.dumps(v["envelope"]).encode())
    assert env.payload == body and env.payload_type == v["payload_type"]
    assert env.pae() == v["pae"].encode()
    # The example signature is raw r||s over the PAE; check it with the published public key.
    public = ec.EllipticCurvePublicNumbers(
        int(v["public_x"]), int(v["public_y"]), ec.SECP256R1()
    ).public_key()
    raw = env.signatures[0].sig
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, env.pae(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(der, pae(v["payload_type"], b"hello worlD"), ec.ECDSA(hashes.SHA256()))


def test_pae_lengths_count_bytes_not_characters():
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"
    assert pae("", b"") == b"DSSEv1 0  0 "


@pytest.mark.parametrize("signer", [ed25519_test_signer(1), ecdsa_test_signer(1)], ids=["ed25519", "ecdsa"])
def test_sign_and_verify(signer):
    st_ = provenance_statement()
    env = sign_envelope(st_.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [signer])
    got = verify_statement(Envelope.from_bytes(env.to_bytes()), [signer.public_key])
    assert got == st_


def test_verification_reads_the_signed_bytes_not_a_reserialisation():
    signer = ed25519_test_signer(1)
    # Non-canonical JSON (spaces, key order): it is what was signed, so it must verify as is.
    payload = (
        b'{ "predicateType": "https://slsa.dev/provenance/v1", "_type": "https://in-toto.io/Statement/v1",\n'
    )
    payload += b' "subject": [{"digest": {"sha256": "' + b"a" * 64 + b'"}}], "predicate": {"x": 1} }'
    env = sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, [signer])
    assert verify_statement(env, [signer.public_key]).predicate == {"x": 1}
    # The canonical re-serialisation of the same statement was not signed and must not verify.
    canonical = verify_statement(env, [signer.public_key]).to_bytes()
    forged = Envelope(payload=canonical, payload_type=PAYLOAD_TYPE_IN_TOTO, signatures=env.signatures)
    with pytest.raises(SignatureError):
        verify_statement(forged, [signer.public_key])


def test_tampered_payload_or_type_fails():
    signer = ed25519_test_signer(1)
    env = sign_envelope(b"payload", "text/plain", [signer])
    for bad in (
        Envelope(payload=b"payloaD", payload_type="text/plain", signatures=env.signatures),
        Envelope(payload=b"payload", payload_type="text/plaiN", signatures=env.signatures),
    ):
        with pytest.raises(SignatureError):
            verify_envelope(bad, [signer.public_key], 1)
    assert verify_envelope(env, [signer.public_key], 1).payload == b"payload"


def test_threshold_counts_distinct_keys():
    a, b, c = ed25519_test_signer(1), ecdsa_test_signer(2), ed25519_test_signer(3)
    keys = [a.public_key, b.public_key, c.public_key]
    env = sign_envelope(b"x", "t", [a, b])
    assert verify_envelope(env, keys, 2).keyids == tuple(sorted([a.keyid, b.keyid]))
    with pytest.raises(SignatureError) as e:
        verify_envelope(env, keys, 3)
    assert e.value.evidence["verified_keyids"] == sorted([a.keyid, b.keyid])

    # Two signatures by one key count once (ECDSA signatures differ each time, Ed25519 ones repeat).
    twice = sign_envelope(b"x", "t", [a, a, b, b])
    assert len(twice.signatures) == 4
    with pytest.raises(SignatureError):
        verify_envelope(twice, keys, 3)
    # A key listed twice among the trusted keys counts once, and cannot raise the threshold's reach.
    with pytest.raises(ConfigError):
        verify_envelope(env, [a.public_key, a.public_key], 2)
    with pytest.raises(SignatureError):
        verify_envelope(sign_envelope(b"x", "t", [a, a]), [a.public_key, a.public_key, b.public_key], 2)


def test_signature_keyid_hint_is_respected_and_optional():
    a, b = ed25519_test_signer(1), ed25519_test_signer(2)
    env = sign_envelope(b"x", "t", [a])
    anonymous = Envelope(
        payload=b"x", payload_type="t", signatures=(EnvelopeSignature(keyid="", sig=env.signatures[0].sig),)
    )
    assert verify_envelope(anonymous, [b.public_key, a.public_key], 1).keyids == (a.keyid,)
    mislabelled = Envelope(
        payload=b"x",
        payload_type="t",
        signatures=(EnvelopeSignature(keyid=b.keyid, sig=env.signatures[0].sig),),
    )
    with pytest.raises(SignatureError):
        verify_envelope(mislabelled, [a.public_key, b.public_key], 1)


def test_threshold_must_be_reachable():
    a = ed25519_test_signer(1)
    env = sign_envelope(b"x", "t", [a])
    with pytest.raises(ConfigError):
        verify_envelope(env, [a.public_key], 0)
    with pytest.raises(ConfigError):
        verify_envelope(env, [], 1)


def test_base64_either_alphabet_with_or_without_padding():
    sig = bytes(range(250, 256)) * 11
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        text = enc(sig).decode()
        for variant in (text, text.rstrip("=")):
            doc = json.dumps({"payload": "aGk", "payloadType": "t", "signatures": [{"sig": variant}]})
            env = Envelope.from_bytes(doc.encode())
            assert env.payload == b"hi" and env.signatures[0].sig == sig


@pytest.mark.parametrize(
    "doc",
    [
        b"",
        b"[]",
        b'{"payload": "aGk=", "payloadType": "t"}',
        b'{"payload": "aGk=", "signatures": []}',
        b'{"payloadType": "t", "signatures": []}',
        b'{"payload": "a!b", "payloadType": "t", "signatures": []}',
        b'{"payload": "aGk=", "payloadType": "", "signatures": []}',
        b'{"payload": "aGk=", "payloadType": "t", "signatures": [{"keyid": "k"}]}',
        b'{"payload": "aGk=", "payloadType": "t", "signatures": [{"sig": ""}]}',
        b'{"payload": "aGk=", "payloadType": "t", "signatures": {"sig": "aGk="}}',
        b'{"payload": "aGk=", "payloadType": "t", "signatures": ["aGk="]}',
        b'{"payload": "aGk=", "payload": "aGk=", "payloadType": "t", "signatures": []}',
        b'{"payload": 1, "payloadType": "t", "signatures": []}',
        b'{"payload": "aGk=", "payloadType": "t", "signatures": [], "x": NaN}',
        b'{"payload": "\\ud800", "payloadType": "t", "signatures": []}',
        b"\xff\xfe",
    ],
)
def test_malformed_envelopes_are_format_errors(doc):
    with pytest.raises(FormatError):
        Envelope.from_bytes(doc)


def test_unknown_fields_are_ignored():
    doc = b'{"payload": "aGk=", "payloadType": "t", "signatures": [{"sig": "aGk=", "extra": 1}], "future": true}'
    assert Envelope.from_bytes(doc).payload == b"hi"


envelopes = st.builds(
    Envelope,
    payload=st.binary(max_size=200),
    payload_type=st.text(min_size=1, max_size=40),
    signatures=st.lists(
        st.builds(EnvelopeSignature, keyid=st.text(max_size=20), sig=st.binary(min_size=1, max_size=80)),
        max_size=4,
    ).map(tuple),
)


@given(envelopes)
def test_envelope_round_trips(env):
    assert Envelope.from_bytes(env.to_bytes()) == env
    assert Envelope.from_dict(json.loads(env.to_bytes())).to_bytes() == env.to_bytes()


@given(st.binary(max_size=300))
def test_fuzz_envelope_bytes_only_format_errors(data):
    with contextlib.suppress(FormatError):
        Envelope.from_bytes(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(["payload", "payloadType", "signatures", "sig", "keyid", "x"]), c, max_size=4
            )
        ),
        max_leaves=12,
    )
)
def test_fuzz_envelope_json_only_format_errors(obj):
    with contextlib.suppress(FormatError):
        Envelope.from_bytes(json.dumps(obj).encode())
