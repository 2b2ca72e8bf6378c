"""AuditorHome through the API: what init makes, what it pins, and what it refuses before writing a byte."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from overt.auditor import AuditorConfig, AuditorHome
from overt.errors import ConfigError, FormatError, StorageError, UsageError
from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import HsmConfig, load_signer
from overt.tlog.witness import init_witness, load_witness
from tests.auditor.conftest import LOG_ORIGIN, Vendor

NAME = "auditor.example/a1"
URL = "https://vendor.example/log"


def make(home: Path, vendor: Vendor, **overrides: object) -> AuditorHome:
    args: dict[str, object] = {
        "name": NAME,
        "log_url": URL,
        "log_policy": vendor.policy.read_bytes(),
        "vendor_keys": list(vendor.keys),
        "jurisdiction": "DE",
    }
    args.update(overrides)
    return AuditorHome.init(home, **args)  # type: ignore[arg-type]


def test_init_makes_the_auditors_own_keys(tmp_path: Path, vendor: Vendor) -> None:
    home = make(tmp_path / "a1", vendor)
    assert home.key.role is Role.AUDITOR and home.key.jurisdiction == "DE"
    signer = load_signer(home.key.uri, home.key.key, keys_dir=home.paths.keys, hsm=HsmConfig())
    signature = signer.signer.sign(b"a verdict")
    home.key.key.verify_signature(signature, b"a verdict")  # raises if the key file is not the key
    pem = home.paths.keys / f"{home.key.keyid}.pem"
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600
    published = KeyRecord.from_bytes((home.paths.public_keys / f"{home.key.keyid}.json").read_bytes())
    assert published.keyid == home.key.keyid and not published.uri
    assert home.witness.name == NAME
    with load_witness(home.paths.witness) as witness:  # follows the pinned log, by the policy's vkey
        assert witness.signer.verifier().vkey() == home.witness.vkey
        assert [v.vkey() for v in witness.logs[LOG_ORIGIN]] == [vendor.log_vkey]


def test_the_pins_are_byte_copies_that_later_changes_do_not_touch(tmp_path: Path, vendor: Vendor) -> None:
    given = vendor.policy.read_bytes()
    key_bytes = [k.read_bytes() for k in vendor.keys]
    home = make(tmp_path / "a1", vendor)
    assert home.paths.log_policy.read_bytes() == given
    assert home.config.log.policy_sha256 == hashlib.sha256(given).hexdigest()
    for data, pinned in zip(key_bytes, home.vendor_keys, strict=True):
        assert home.paths.vendor_key(pinned.record.keyid).read_bytes() == data
        assert pinned.sha256 == hashlib.sha256(data).hexdigest()
    assert [k.record.role for k in home.vendor_keys] == [Role.RELEASE, Role.BUILDER]
    vendor.policy.write_bytes(b"quorum none\n")
    for k in vendor.keys:
        k.write_bytes(b"{}")
    again = AuditorHome.open(home.paths.root)
    assert again == home
    assert again.paths.log_policy.read_bytes() == given


@pytest.mark.parametrize("pinned", ["policy", "key"])
def test_a_pinned_file_changed_in_the_home_is_refused(tmp_path: Path, vendor: Vendor, pinned: str) -> None:
    home = make(tmp_path / "a1", vendor)
    if pinned == "policy":
        target = home.paths.log_policy
        target.write_bytes(target.read_bytes() + b"# edited\n")
    else:
        target = home.paths.vendor_key(home.vendor_keys[0].record.keyid)
        target.write_bytes(target.read_bytes() + b"\n")
    with pytest.raises(StorageError, match="pinned at init"):
        AuditorHome.open(home.paths.root)


@pytest.mark.parametrize(
    ("policy", "error", "message"),
    [
        (b"garbage\n", FormatError, "not a C2SP tlog-policy"),
        (b"\xff\xfe", FormatError, "not a C2SP tlog-policy"),
        (b"quorum none\n", FormatError, "names no log"),
        (None, UsageError, "no witness quorum"),  # a log, quorum none
    ],
)
def test_a_policy_an_auditor_cannot_pin_is_refused_before_anything_is_written(
    tmp_path: Path, vendor: Vendor, policy: bytes | None, error: type[Exception], message: str
) -> None:
    data = policy if policy is not None else f"log {vendor.log_vkey}\nquorum none\n".encode()
    with pytest.raises(error, match=message):
        make(tmp_path / "a1", vendor, log_policy=data)
    assert not (tmp_path / "a1").exists()


def test_a_policy_without_witnesses_is_pinned_only_when_asked_unsafely(
    tmp_path: Path, vendor: Vendor
) -> None:
    data = f"log {vendor.log_vkey}\nquorum none\n".encode()
    home = make(tmp_path / "a1", vendor, log_policy=data, unsafe_no_witness_quorum=True)
    assert home.policy.quorum == "none" and home.to_dict()["log"]["quorum"] == "none"


def test_vendor_key_files_that_are_no_public_key_are_refused(tmp_path: Path, vendor: Vendor) -> None:
    private = tmp_path / "private.json"
    record = KeyRecord.from_bytes(vendor.keys[0].read_bytes())
    private.write_bytes(record.private_bytes().replace(b'"uri":""', b'"uri":"file2:x.pem"'))
    stray = tmp_path / "stray.json"
    stray.write_bytes(
        vendor.keys[0].read_bytes().replace(b'{"jurisdiction"', b'{"private":"x","jurisdiction"')
    )
    cases = [
        ([private], UsageError, "private key record"),
        ([stray], FormatError, "unknown fields private"),
        ([vendor.keys[0], vendor.keys[0]], UsageError, "given twice"),
        ([vendor.policy], FormatError, "not a public key file"),
        ([], UsageError, "--vendor-key"),
    ]
    for files, error, message in cases:
        with pytest.raises(error, match=message):
            make(tmp_path / "a1", vendor, vendor_keys=files)
        assert not (tmp_path / "a1").exists()


def test_a_home_is_made_new_never_over_another(tmp_path: Path, vendor: Vendor) -> None:
    conveyor = tmp_path / "conveyor"
    Home.init(conveyor)
    before = sorted(p.relative_to(conveyor) for p in conveyor.rglob("*"))
    with pytest.raises(UsageError, match="conveyor's home"):
        make(conveyor, vendor)
    assert sorted(p.relative_to(conveyor) for p in conveyor.rglob("*")) == before
    with pytest.raises(ConfigError, match="conveyor's home"):
        AuditorHome.open(conveyor)
    home = make(tmp_path / "a1", vendor)
    with pytest.raises(UsageError, match="auditor home already"):
        make(home.paths.root, vendor)
    assert AuditorHome.open(home.paths.root) == home
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine\n")
    with pytest.raises(UsageError, match="not empty"):
        make(tmp_path / "other", vendor)
    (tmp_path / "empty").mkdir()
    assert make(tmp_path / "empty", vendor).paths.root == tmp_path / "empty"


def test_the_configuration_round_trips_and_refuses_what_it_does_not_know(
    tmp_path: Path, vendor: Vendor
) -> None:
    home = make(tmp_path / "a1", vendor)
    text = home.paths.config.read_text()
    assert AuditorConfig.parse(text) == home.config
    assert home.config.dumps() == text
    for edit, message in [
        (("[log]\n", '[log]\nstore = "sqlite"\n'), "unknown \\[log\\] settings store"),
        (("[auditor]\n", "[hsm]\n[auditor]\n"), "unknown sections hsm"),
        (('jurisdiction = "DE"', "jurisdiction = 5"), "jurisdiction must be a str"),
        (('jurisdiction = "DE"', 'jurisdiction = "Germany"'), "two-letter"),
        (("https://", "ftp://"), "http"),
    ]:
        with pytest.raises(ConfigError, match=message):
            AuditorConfig.parse(text.replace(*edit))


def test_a_witness_made_beforehand_is_adopted_so_the_policy_can_name_it(
    tmp_path: Path, vendor: Vendor
) -> None:
    """The auditor's witness exists before the policy that names it; init keeps its key, and follows the log."""
    root = tmp_path / "a1"
    made = init_witness(root / "witness", NAME)
    home = make(root, vendor)
    assert home.witness.vkey == made.verifier().vkey()
    with load_witness(home.paths.witness) as witness:
        assert [v.vkey() for v in witness.logs[LOG_ORIGIN]] == [vendor.log_vkey]


def test_an_adopted_witness_must_bear_the_auditors_name_and_survives_a_failed_init(
    tmp_path: Path, vendor: Vendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "a1"
    made = init_witness(root / "witness", "someone.example/w9")
    with pytest.raises(UsageError, match=r"is a witness named 'someone\.example/w9'"):
        make(root, vendor)
    (root / "notes.txt").write_text("mine\n")  # anything beside the witness: not a new home
    with pytest.raises(UsageError, match="is not empty"):
        make(root, vendor, name="someone.example/w9")
    (root / "notes.txt").unlink()

    def full_disk(path: Path, data: bytes, **kw: object) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("overt.auditor.home.atomic_write", full_disk)  # the init fails half way
    with pytest.raises(OSError, match="No space"):
        make(root, vendor, name="someone.example/w9")
    assert [p.name for p in root.iterdir()] == ["witness"]  # what init wrote is gone, the witness kept
    assert init_witness(root / "witness", "someone.example/w9").verifier().vkey() == made.verifier().vkey()
