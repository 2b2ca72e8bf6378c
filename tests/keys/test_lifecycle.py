"""The key lifecycle on a real home: validity, generation and import with the jurisdiction checks made before
any key material exists, the first release key's builder registration, rotation by the old key, the builder
registry's versions, and the views every command prints with ``--json``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.attest.dsse import Envelope
from overt.attest.statement import Statement, format_timestamp
from overt.attest.verify import verify_statement
from overt.errors import ConfigError, FormatError, PolicyError, UsageError
from overt.home import Home
from overt.keys.lifecycle import (
    GENERATED,
    IMPORTED,
    MAX_VALID_DAYS,
    KeyStatus,
    builder_registry,
    choose_key,
    generate_key,
    import_public_key,
    import_signing_key,
    list_keys,
    register_builder,
    rotate_key,
    validity,
    withdraw_builder,
)
from overt.keys.registry import KeyRecord, Role
from overt.keys.rotation import introduced_key
from overt.keys.signers import HsmConfig, generate_file_key, load_signer
from overt.tlog.client import LogClient, directory_fetcher
from tests.cli.test_cli import overt
from tests.samples import SAMPLE_BUILDER_ID

ROW = {
    "keyid",
    "role",
    "jurisdiction",
    "keytype",
    "scheme",
    "storage",
    "status",
    "valid_from",
    "valid_until",
    "rotated_to",
    "introduced_by",
}


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.init(tmp_path / "conveyor", origin="conveyor.example/log", jurisdiction="CH")


def now() -> datetime:
    return datetime.now(UTC)


def pem_files(h: Home) -> set[str]:
    return {p.name for p in h.paths.keys.glob("*.pem")}


def log_entry(h: Home, index: int) -> bytes:
    client = LogClient(directory_fetcher(h.log.paths.public), h.log.policy())
    tree = client.update()
    entry = client.entries(tree.checkpoint.checkpoint.tree_size)[index]
    client.verify_inclusion(entry, index, tree.checkpoint)
    return entry


def test_validity_starts_now_to_the_second_and_is_bounded() -> None:
    t = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    start = t.replace(microsecond=0)
    assert validity(t, None) == (start, None)
    assert validity(t, 30) == (start, start + timedelta(days=30))
    assert validity(t, MAX_VALID_DAYS)[1] == start + timedelta(days=MAX_VALID_DAYS)
    for days in (0, -1, MAX_VALID_DAYS + 1, 1_000_000_000):
        with pytest.raises(ConfigError, match="valid for 1 to 36525 days"):
            validity(t, days)


def test_key_status_is_computed_at_the_time_given(home: Home) -> None:
    t = now()
    new = generate_key(home.key_home(), home.signing_service(), role=Role.AUDITOR, valid_days=1, now=t)
    record = new.record
    assert KeyStatus(record=record, at=t - timedelta(days=1)).status == "not yet valid"
    assert KeyStatus(record=record, at=t).status == "active"
    row = KeyStatus(record=record, at=t + timedelta(days=2)).to_dict()
    assert row["status"] == "expired"
    assert set(row) == ROW
    assert row["valid_from"] == format_timestamp(t.replace(microsecond=0))
    assert row["valid_until"] == format_timestamp(t.replace(microsecond=0) + timedelta(days=1))
    assert row["rotated_to"] is None and row["introduced_by"] is None


def test_generate_registers_a_signing_key_in_the_conveyors_jurisdiction(home: Home) -> None:
    t = now()
    new = generate_key(home.key_home(), home.signing_service(), role=Role.BUILDER, keytype="ecdsa", now=t)
    assert new.how == GENERATED and new.builder_registry is None
    record = home.registry.get(new.record.keyid)
    assert (record.role, record.jurisdiction, record.storage) == (Role.BUILDER, "CH", "file2")
    assert record.key.scheme == "ecdsa-sha2-nistp256" and record.valid_until is None
    assert (home.paths.public / "keys" / f"{record.keyid}.json").is_file()
    out = new.to_dict()
    assert set(out) == {"generated"}
    assert out["generated"] == KeyStatus(record=record, at=t).to_dict()
    assert out["generated"]["status"] == "active" and out["generated"]["storage"] == "file2"
    assert [
        k.record.keyid for k in list_keys(home.registry, now=t).keys if k.record.role is Role.BUILDER
    ] == [record.keyid]


@pytest.mark.parametrize(
    ("role", "jurisdiction", "error", "message"),
    [
        (Role.LOG, None, ConfigError, "created by 'overt init'"),
        (Role.BUILDER, "DE", PolicyError, "signs only in CH"),
        (Role.BUILDER, "ch", FormatError, "two-letter ISO 3166-1"),
    ],
)
def test_generate_refuses_before_making_key_material(home, role, jurisdiction, error, message) -> None:
    before, keys = pem_files(home), len(home.registry.records())
    with pytest.raises(error, match=message):
        generate_key(home.key_home(), home.signing_service(), role=role, jurisdiction=jurisdiction, now=now())
    assert pem_files(home) == before and len(home.registry.records()) == keys


def test_the_first_release_key_registers_the_conveyors_own_builder(home: Home) -> None:
    kh = home.key_home()
    first = generate_key(kh, home.signing_service(), role=Role.RELEASE, now=now())
    assert first.builder_registry is not None
    own = "https://overt.example/conveyor/v1?jurisdiction=CH"
    assert first.to_dict()["builder_registry"] == {
        "version": 1,
        "builders": [{"id": own, "jurisdiction": "CH"}],
        "log_index": 0,
    }
    statement = verify_statement(Envelope.from_bytes(log_entry(home, 0)), [first.record.key])
    assert statement.predicate["version"] == 1
    second = generate_key(kh, home.signing_service(), role=Role.RELEASE, force=True, now=now())
    assert second.builder_registry is None and "builder_registry" not in second.to_dict()


def test_import_public_key_is_for_verification_only_and_checks_the_file(home: Home, tmp_path: Path) -> None:
    other = Home.init(tmp_path / "other", origin="other.example/log", jurisdiction="DE")
    theirs = generate_key(other.key_home(), other.signing_service(), role=Role.BUILDER, now=now()).record
    data = (other.paths.public / "keys" / f"{theirs.keyid}.json").read_bytes()
    kh = home.key_home()
    with pytest.raises(ConfigError, match="is a builder key, not auditor"):
        import_public_key(kh, data, name="their.json", role=Role.AUDITOR, now=now())
    with pytest.raises(ConfigError, match="is a key in DE, not FR"):
        import_public_key(kh, data, name="their.json", jurisdiction="FR", now=now())
    new = import_public_key(kh, data, name="their.json", role=Role.BUILDER, jurisdiction="DE", now=now())
    assert new.how == IMPORTED
    assert new.to_dict()["imported"]["storage"] == "public" and new.record.uri == ""
    assert home.registry.get(theirs.keyid).jurisdiction == "DE"
    assert not (home.paths.public / "keys" / f"{theirs.keyid}.json").exists()  # not this conveyor's key


def test_import_signing_key_from_a_pem_file(home: Home, tmp_path: Path) -> None:
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    kh = home.key_home()
    with pytest.raises(FormatError, match="must start with file2: or hsm:"):
        import_signing_key(kh, uri=f"pem:{pem}", role=Role.TIMESTAMP, now=now())
    with pytest.raises(PolicyError, match="signs only in CH"):
        import_signing_key(kh, uri=f"file2:{pem}", role=Role.TIMESTAMP, jurisdiction="US", now=now())
    t = now()
    new = import_signing_key(kh, uri=f"file2:{pem}", role=Role.TIMESTAMP, valid_days=5, now=t)
    record = home.registry.get(new.record.keyid)
    assert record.uri == f"file2:{pem.resolve()}" and record.jurisdiction == "CH"
    assert record.valid_until == t.replace(microsecond=0) + timedelta(days=5)
    assert new.to_dict()["imported"]["storage"] == "file2"


def test_a_signing_key_file_that_is_a_device_is_refused_unread(home: Home) -> None:
    """A ``file2:`` path is read only if it is a regular file: /dev/zero would be read until memory runs out
    (tests/cli/test_bad_invocations.py reads it in a bounded process; /dev/null stands for it here)."""
    with pytest.raises(UsageError, match=r"^/dev/null is not a regular file \(it is a character device\)$"):
        import_signing_key(home.key_home(), uri="file2:/dev/null", role=Role.TIMESTAMP, now=now())
    assert [r.role for r in home.registry.records()] == [Role.LOG]


def test_a_registered_key_file_swapped_for_a_device_is_refused_unread(home: Home) -> None:
    uri, key = generate_file_key(home.paths.keys, "ed25519")
    assert load_signer(uri, key, keys_dir=home.paths.keys, hsm=HsmConfig()).keyid == key.keyid
    pem = home.paths.keys / uri.removeprefix("file2:")
    pem.unlink()
    pem.symlink_to("/dev/null")
    with pytest.raises(ConfigError, match=r"is not a regular file \(it is a character device\)"):
        load_signer(uri, key, keys_dir=home.paths.keys, hsm=HsmConfig())


def test_rotation_keeps_role_place_and_type_and_is_introduced_by_the_old_key(home: Home) -> None:
    kh = home.key_home()
    old = generate_key(kh, home.signing_service(), role=Role.BUILDER, keytype="ecdsa", now=now()).record
    done = rotate_key(kh, home.signing_service(), old, reason="yearly", valid_days=10, now=now())
    new = done.new.record
    assert (new.role, new.jurisdiction, new.key.keytype, new.storage) == (
        Role.BUILDER,
        "CH",
        "ecdsa",
        "file2",
    )
    assert new.introduced_by == done.receipt.index and new.valid_until is not None
    assert done.old.record.rotated_to == new.keyid and done.old.status == "rotated"
    assert done.new.status == "active"  # at the rotation's time, not before it
    assert choose_key(home.registry, role=Role.BUILDER, now=now()).keyid == new.keyid
    out = done.to_dict()
    assert set(out) == {"old", "new", "rotation_log_index", "checkpoint_published"}
    assert out["rotation_log_index"] == done.receipt.index and out["checkpoint_published"] is True
    assert set(out["old"]) == set(out["new"]) == ROW
    # The logged statement introducing the new key verifies with the old key, not the new one.
    envelope = Envelope.from_bytes(log_entry(home, done.receipt.index))
    statement = verify_statement(envelope, [old.key])
    assert introduced_key(statement, old).keyid == new.keyid
    assert Statement.from_bytes(envelope.payload).predicate["reason"] == "yearly"


def test_a_log_key_is_refused_before_a_successor_is_made(home: Home) -> None:
    log_key = next(r for r in home.registry.records() if r.role is Role.LOG)
    before = pem_files(home)
    with pytest.raises(ConfigError, match="the log's identity"):
        rotate_key(home.key_home(), home.signing_service(), log_key, reason="no", now=now())
    assert pem_files(home) == before


def test_choose_key_by_reference_or_by_role(home: Home) -> None:
    builder = generate_key(home.key_home(), home.signing_service(), role=Role.BUILDER, now=now()).record
    assert choose_key(home.registry, key=builder.keyid[:8], now=now()) == builder
    assert choose_key(home.registry, role=Role.BUILDER, now=now()) == builder
    with pytest.raises(ConfigError, match="no active auditor key"):
        choose_key(home.registry, role=Role.AUDITOR, now=now())
    with pytest.raises(ValueError, match="needs a key reference or a role"):
        choose_key(home.registry, now=now())


def test_builder_registry_versions_are_signed_by_the_release_key(home: Home) -> None:
    kh = home.key_home()
    assert builder_registry(kh).to_dict() == {
        "version": 0,
        "builders": [],
        "log_index": None,
        "path": str(home.paths.public / "builders" / "registry.dsse.json"),
    }
    release = generate_key(kh, home.signing_service(), role=Role.RELEASE, now=now()).record
    added = register_builder(kh, home.signing_service(), builder_id=SAMPLE_BUILDER_ID, now=now())
    entry = added.entry(SAMPLE_BUILDER_ID)
    assert entry is not None and entry.jurisdiction == "CH"  # the conveyor's, by default
    out = added.to_dict()
    assert set(out) == {"version", "builders", "log_index"} and out["version"] == 2
    assert verify_statement(Envelope.from_bytes(log_entry(home, out["log_index"])), [release.key])
    with pytest.raises(ConfigError, match="no key 0123456789"):
        register_builder(
            kh, home.signing_service(), builder_id="https://x.example/b", release_key="0123456789", now=now()
        )
    removed = withdraw_builder(
        kh, home.signing_service(), builder_id=SAMPLE_BUILDER_ID, release_key=release.keyid, now=now()
    )
    assert removed.registry.version == 3 and removed.entry(SAMPLE_BUILDER_ID) is None
    current = builder_registry(kh)
    assert current.registry == removed.registry and current.log_index is None
    assert current.to_dict()["path"].endswith("registry.dsse.json")


def test_listing_is_every_record_in_registry_order(home: Home) -> None:
    kh = home.key_home()
    t = now()
    for role in (Role.TIMESTAMP, Role.AUDITOR):
        generate_key(kh, home.signing_service(), role=role, now=t)
    listing = list_keys(home.registry, now=t)
    assert listing.public_dir == home.paths.public / "keys"
    assert [row["role"] for row in listing.to_dict()["keys"]] == ["auditor", "log", "timestamp"]
    assert list(listing.to_dict()) == ["keys"]
    assert all(isinstance(k.record, KeyRecord) for k in listing.keys)


def test_a_second_active_key_of_a_role_is_refused_unless_forced(home: Home) -> None:
    """Commands sign with the one active key of their role; a second would leave them unable to choose."""
    kh = home.key_home()
    first = generate_key(kh, home.signing_service(), role=Role.BUILDER, now=now()).record
    before, keys = pem_files(home), len(home.registry.records())
    message = rf"already has an active builder key \({first.keyid[:16]}\).*'overt keys rotate --role builder'"
    with pytest.raises(ConfigError, match=message):
        generate_key(kh, home.signing_service(), role=Role.BUILDER, now=now())
    assert pem_files(home) == before and len(home.registry.records()) == keys
    r = overt("keys", "generate", "--role", "builder", "--home", str(home.path))
    assert r.returncode == 2 and "keys rotate --role builder" in r.stderr and pem_files(home) == before
    # Rotating is the way to a new key; generating one anyway takes force.
    rotated = rotate_key(kh, home.signing_service(), first, reason="test", now=now())
    assert home.registry.current(Role.BUILDER, now()).keyid == rotated.new.record.keyid
    forced = generate_key(kh, home.signing_service(), role=Role.BUILDER, force=True, now=now())
    assert forced.key.status == "active"
    # From the command line too: --force adds a second active auditor key (two test auditors, say).
    for extra in ((), ("--force",)):
        r = overt("keys", "generate", "--role", "auditor", *extra, "--home", str(home.path))
        assert r.returncode == 0, r.stderr
    r = overt("keys", "generate", "--role", "auditor", "--home", str(home.path))
    assert r.returncode == 2 and "or add a second one with --force" in r.stderr
    assert len([k for k in home.registry.records() if k.role is Role.AUDITOR]) == 2
