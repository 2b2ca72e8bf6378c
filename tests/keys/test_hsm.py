"""The PKCS#11 path against a real SoftHSM2 token: ECDSA P-256 through securesystemslib's HSMSigner, Ed25519
through CKM_EDDSA (checkpoints included), non-extractable keys, and clear errors."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pkcs11
import pytest
from securesystemslib import dsse as sslib_dsse
from securesystemslib.signer import HSMSigner

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from overt.attest.verify import verify_statement
from overt.errors import ConfigError, PolicyError
from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import HSMEd25519Signer, hsm_generate, hsm_import, load_signer, missing_mechanisms
from overt.tlog.client import LogClient, directory_fetcher
from overt.tlog.note import Note, parse_ed25519_vkey, verify_note
from tests.conftest import SOFTHSM_PIN
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement, register_builders

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("keytype", ["ecdsa", "ed25519"])
def test_generate_sign_verify_on_the_token(softhsm, tmp_path, keytype):
    uri, key = hsm_generate(softhsm, keytype, f"test-{keytype}")
    assert uri.startswith("hsm:") and "label=overt-test" in uri
    signer = load_signer(uri, key, keys_dir=tmp_path, hsm=softhsm)
    assert isinstance(signer.signer, HSMSigner if keytype == "ecdsa" else HSMEd25519Signer)
    env = sign_envelope(provenance_statement().to_bytes(), PAYLOAD_TYPE_IN_TOTO, [signer])
    assert verify_statement(env, [key]) == provenance_statement()
    # securesystemslib's own DSSE code agrees.
    theirs = sslib_dsse.Envelope.from_dict(json.loads(env.to_bytes()))
    assert list(theirs.verify([key], 1)) == [key.keyid]
    # Importing the same token key by its id gives the same public key.
    hsm_keyid = int(uri.split(":")[1].split("?")[0])
    assert hsm_import(softhsm, hsm_keyid) == (uri, key)


def test_private_keys_never_leave_the_token(softhsm):
    hsm_generate(softhsm, "ed25519", "test-extractable")
    token = pkcs11.lib(softhsm.module).get_token(token_label=softhsm.token)
    with token.open(user_pin=softhsm.pin()) as session:
        keys = list(session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}))
        assert keys
        for k in keys:
            assert k[pkcs11.Attribute.SENSITIVE] and not k[pkcs11.Attribute.EXTRACTABLE]


def test_checkpoints_signed_through_pkcs11(softhsm, tmp_path):
    h = Home.init(tmp_path / "h", origin="hsm.example/log", hsm=softhsm, log_key_on_hsm=True)
    assert h.log_key().storage == "hsm"
    receipt = h.log.append(b"first entry")
    assert receipt.published
    checkpoint = (h.log.paths.public / "checkpoint").read_bytes()
    verifier = parse_ed25519_vkey((h.log.paths.public / "vkey").read_text().strip())
    assert verify_note(Note.from_bytes(checkpoint), [verifier])
    c = LogClient(directory_fetcher(h.log.paths.public), h.log.policy())
    c.verify_inclusion(b"first entry", receipt.index, c.update().checkpoint)


def test_hsm_builder_key_refuses_foreign_jurisdiction(softhsm, tmp_path):
    h = Home.init(tmp_path / "h", hsm=softhsm)
    uri, key = hsm_generate(softhsm, "ecdsa", "test-builder")
    record = KeyRecord.create(
        key, role=Role.BUILDER, jurisdiction="CH", valid_from=T0, valid_until=None, uri=uri
    )
    h.registry.save(record)
    register_builders(h, SAMPLE_BUILDER_ID)
    service = h.signing_service(lambda: T0)
    signed = service.sign(record, provenance_statement("CH"))
    verify_statement(signed.envelope, [key])
    with pytest.raises(PolicyError, match="outside the key's jurisdiction CH"):
        service.sign(record, provenance_statement("US"))


def test_wrong_pin_missing_module_missing_key(softhsm, tmp_path, monkeypatch):
    uri, key = hsm_generate(softhsm, "ecdsa", "test-errors")
    monkeypatch.setenv("OVERT_HSM_PIN", "wrong")
    with pytest.raises(ConfigError, match="failed to sign"):
        load_signer(uri, key, keys_dir=tmp_path, hsm=softhsm).sign_raw(b"x")
    monkeypatch.delenv("OVERT_HSM_PIN")
    with pytest.raises(ConfigError, match="export OVERT_HSM_PIN"):
        hsm_import(softhsm, 1)
    monkeypatch.setenv("OVERT_HSM_PIN", SOFTHSM_PIN)
    with pytest.raises(ConfigError, match="does not exist"):
        hsm_import(replace(softhsm, module="/nonexistent/libpkcs11.so"), 1)
    with pytest.raises(ConfigError, match="no PKCS#11 module"):
        hsm_import(replace(softhsm, module=""), 1)
    with pytest.raises(ConfigError, match="holds 0 public keys"):
        hsm_import(softhsm, 999)


def test_tokens_without_eddsa_are_refused_clearly():
    full = set(pkcs11.Mechanism)
    assert missing_mechanisms("ed25519", full) == []
    assert missing_mechanisms("ed25519", full - {pkcs11.Mechanism.EDDSA}) == ["CKM_EDDSA"]
    assert missing_mechanisms("ecdsa", set()) == ["CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"]
    with pytest.raises(ConfigError, match="unsupported key type"):
        missing_mechanisms("rsa", full)
