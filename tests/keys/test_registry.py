"""The key registry: record format, TUF key IDs, published files, bad key files, the log key of a new home."""

from __future__ import annotations

import contextlib
import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from securesystemslib.signer import Key

from overt.errors import ConfigError, FormatError, UsageError
from overt.home import Home
from overt.keys.registry import KeyRecord, Registry, Role, load_public_keys
from tests.samples import ecdsa_test_signer, ed25519_test_signer

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def record(signer=None, **kw) -> KeyRecord:
    signer = signer or ed25519_test_signer(1)
    args = {
        "role": Role.BUILDER,
        "jurisdiction": "CH",
        "valid_from": T0,
        "valid_until": None,
        "uri": "file2:x.pem",
    }
    args.update(kw)
    return KeyRecord.create(signer.public_key, **args)


def _olpc_canonical(value: object) -> str:
    """OLPC canonical JSON, as TUF hashes key objects: sorted keys, only backslash and quote escaped."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert isinstance(value, dict)
    return (
        "{" + ",".join(f"{_olpc_canonical(k)}:{_olpc_canonical(v)}" for k, v in sorted(value.items())) + "}"
    )


def test_keyid_is_the_tuf_keyid():
    for signer in (ed25519_test_signer(1), ecdsa_test_signer(1)):
        r = record(signer)
        obj = {"keytype": r.key.keytype, "scheme": r.key.scheme, "keyval": r.key.keyval}
        assert r.keyid == hashlib.sha256(_olpc_canonical(obj).encode()).hexdigest()


def test_public_file_is_a_securesystemslib_key_plus_role_and_jurisdiction(tmp_path):
    reg = Registry(tmp_path / "private", tmp_path / "public")
    r = record(valid_until=T0 + timedelta(days=30))
    reg.save(r)
    public = tmp_path / "public" / f"{r.keyid}.json"
    obj = json.loads(public.read_text())
    assert "uri" not in obj and obj["role"] == "builder" and obj["jurisdiction"] == "CH"
    assert obj["valid_from"] == "2026-11-28T12:00:00Z" and obj["valid_until"] == "2026-12-28T12:00:00Z"
    key = Key.from_dict(r.keyid, dict(obj))  # securesystemslib reads it; our fields are unrecognised extras
    assert key.keyval == r.key.keyval and key.unrecognized_fields["jurisdiction"] == "CH"
    assert KeyRecord.from_bytes(public.read_bytes(), keyid=r.keyid) == r.public()
    private = tmp_path / "private" / f"{r.keyid}.json"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert reg.records() == [r]
    assert reg.get(r.keyid[:8]) == r


def test_registry_lookup_by_role_and_validity(tmp_path):
    reg = Registry(tmp_path / "p", tmp_path / "q")
    old = record(ed25519_test_signer(1), valid_until=T0 + timedelta(days=1))
    new = record(ed25519_test_signer(2), valid_from=T0 + timedelta(days=1))
    reg.save(old)
    reg.save(new)
    assert reg.current(Role.BUILDER, T0) == old
    assert reg.current(Role.BUILDER, T0 + timedelta(days=2)) == new
    with pytest.raises(ConfigError, match="no active auditor"):
        reg.current(Role.AUDITOR, T0)
    with pytest.raises(ConfigError, match="no key"):
        reg.get("00000000")
    with pytest.raises(ConfigError, match="at least 8"):
        reg.get("abc")
    assert old.status(T0 + timedelta(days=1)) == "expired"
    assert new.status(T0) == "not yet valid"


def _key_file(**changes) -> bytes:
    obj = record().public_dict()
    for k, v in changes.items():
        if v is None:
            obj.pop(k)
        else:
            obj[k] = v
    return json.dumps(obj).encode()


P384 = (
    ec.generate_private_key(ec.SECP384R1())
    .public_key()
    .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keytype": "rsa"}, "unsupported key type"),
        ({"keyval": {"public": "zz"}}, "64 lowercase hex"),
        ({"keyval": {"public": "ab" * 32, "private": "x"}}, "exactly one"),
        ({"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": "nope"}}, "PEM"),
        ({"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": P384}}, "P-256"),
        ({"role": "janitor"}, "unknown role"),
        ({"role": None}, "role"),
        ({"jurisdiction": "Switzerland"}, "ISO 3166"),
        ({"valid_from": "soon"}, "RFC 3339"),
        ({"valid_until": "2020-01-01T00:00:00Z"}, "before valid_from"),
        ({"introduced_by": -1}, "log index"),
        ({"rotated_to": "x"}, "not a keyid"),
    ],
)
def test_bad_key_files(changes, message):
    with pytest.raises(FormatError, match=message):
        KeyRecord.from_bytes(_key_file(**changes))


def test_key_file_named_for_another_keyid():
    with pytest.raises(FormatError, match="named"):
        KeyRecord.from_bytes(_key_file(), keyid="0" * 64)


def test_broken_registry_file_is_a_config_error(tmp_path):
    reg = Registry(tmp_path / "p", tmp_path / "q")
    reg.save(record())
    (tmp_path / "p" / f"{record().keyid}.json").write_text("{")
    with pytest.raises(ConfigError, match="broken"):
        reg.records()


def test_a_key_file_that_is_a_device_is_refused_unread(tmp_path):
    """Public key files and registry records are read only if they are regular files (a FIFO would block,
    /dev/zero would be read without end)."""
    with pytest.raises(UsageError, match=r"^/dev/null is not a regular file \(it is a character device\)$"):
        load_public_keys([Path("/dev/null")])
    reg = Registry(tmp_path / "p", tmp_path / "q")
    reg.save(record())
    (tmp_path / "p" / f"{'0' * 64}.json").symlink_to("/dev/null")
    with pytest.raises(ConfigError, match=r"broken: .* is not a regular file \(it is a character device\)"):
        reg.records()


@given(st.binary(max_size=300))
def test_fuzz_key_file_bytes(data):
    with contextlib.suppress(FormatError):
        KeyRecord.from_bytes(data)


@given(
    st.dictionaries(
        st.sampled_from(
            ["keytype", "scheme", "keyval", "role", "jurisdiction", "valid_from", "valid_until", "uri"]
        ),
        st.none()
        | st.text(max_size=10)
        | st.integers()
        | st.dictionaries(st.text(max_size=6), st.text(max_size=6)),
        max_size=8,
    )
)
def test_fuzz_key_file_json(obj):
    with contextlib.suppress(FormatError):
        KeyRecord.from_bytes(json.dumps(obj).encode())


def test_new_home_has_an_ed25519_log_key_in_the_registry(tmp_path):
    h = Home.init(tmp_path / "h", origin="example.com/log", jurisdiction="DE")
    log_key = h.log_key()
    assert log_key.role is Role.LOG and log_key.jurisdiction == "DE" and log_key.key.keytype == "ed25519"
    assert (h.paths.public / "keys" / f"{log_key.keyid}.json").exists()
    signer = h.log.signer()
    assert (h.log.paths.public / "vkey").read_text().strip() == signer.verifier().vkey()
    assert bytes.fromhex(log_key.key.keyval["public"]) == signer.public_key
    assert h.conveyor.jurisdiction == "DE"


def test_config_sections_are_checked(tmp_path):
    Home.init(tmp_path / "h")
    cfg = tmp_path / "h" / "config.toml"
    text = cfg.read_text()
    cfg.write_text(text.replace('jurisdiction = "CH"', 'jurisdiction = "Swiss"'))
    with pytest.raises(ConfigError, match="ISO 3166"):
        Home(tmp_path / "h")
    cfg.write_text(text + "\n[bogus]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown sections"):
        Home(tmp_path / "h")
    cfg.write_text(text.replace("\n[hsm]\n", "\n[hsm]\nslot = 3\n"))
    with pytest.raises(ConfigError, match="unknown \\[hsm\\]"):
        Home(tmp_path / "h")
