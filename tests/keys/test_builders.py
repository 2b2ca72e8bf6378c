"""The builder registry: its wire format, its signed and logged versions, how a home loads (and distrusts) it,
and ``overt keys builders`` as a user runs it. Also the issuer guard of reserved types and verify-only keys."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
from overt.attest.statement import Statement
from overt.errors import ConfigError, FormatError, PolicyError, StorageError, VerificationError
from overt.home import Home
from overt.keys.builders import (
    BuilderRegistry,
    BuilderStore,
    RegisteredBuilder,
    add_builder,
    conveyor_builder_id,
    register_first_builder,
    remove_builder,
)
from overt.keys.jurisdiction import (
    BUILDER_REGISTRY_V1,
    IDN_CCTLDS,
    KEY_ROTATION_V1,
    SIGNING_REFUSAL_V1,
    Issuer,
    foreign_host,
)
from overt.keys.lifecycle import generate_key
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import generate_file_key
from overt.tlog.client import LogClient, directory_fetcher
from overt.tlog.tiles import entries_path
from tests.cli.test_cli import overt
from tests.keys.bypass_cases import UNREGISTERED, own_provenance
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement, register_builders

OWN = "https://overt.example/conveyor/v1?jurisdiction=CH"

ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
codes = st.sampled_from(["CH", "DE", "EU", "RU", "US"])


@given(
    st.dictionaries(ids, st.tuples(codes, st.booleans()), max_size=8),
    st.integers(min_value=1, max_value=10**6),
)
def test_registry_round_trips_both_ways(mapping: dict[str, tuple[str, bool]], version: int) -> None:
    entries = tuple(
        RegisteredBuilder(id=k, jurisdiction=v, unsafe_allow_foreign_host=allowed)
        for k, (v, allowed) in sorted(mapping.items())
    )
    registry = BuilderRegistry(version=version, builders=entries)
    data = registry.to_bytes()
    assert BuilderRegistry.from_bytes(data) == registry
    assert BuilderRegistry.from_bytes(data).to_bytes() == data
    assert registry.mapping() == {k: v for k, (v, _) in mapping.items()}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"version": 1, "builders": [], "extra": 1}, "exactly the fields"),
        ({"version": 0, "builders": []}, "at least 1"),
        ({"version": True, "builders": []}, "at least 1"),
        ({"version": 1, "builders": {}}, "must be an array"),
        ({"version": 1, "builders": [{"id": "a", "jurisdiction": "CH", "x": 1}]}, "exactly the fields"),
        (
            {"version": 1, "builders": [{"id": "a", "jurisdiction": "CH", "unsafeAllowForeignHost": False}]},
            "written only as true",
        ),
        ({"version": 1, "builders": [{"id": "a b", "jurisdiction": "CH"}]}, "printable ASCII"),
        ({"version": 1, "builders": [{"id": "https://bü.example", "jurisdiction": "CH"}]}, "printable ASCII"),
        ({"version": 1, "builders": [{"id": "", "jurisdiction": "CH"}]}, "must not be empty"),
        ({"version": 1, "builders": [{"id": "a", "jurisdiction": "ch"}]}, "ISO 3166"),
        (
            {
                "version": 1,
                "builders": [{"id": "b", "jurisdiction": "CH"}, {"id": "a", "jurisdiction": "CH"}],
            },
            "sorted by id",
        ),
        (
            {
                "version": 1,
                "builders": [{"id": "a", "jurisdiction": "CH"}, {"id": "a", "jurisdiction": "DE"}],
            },
            "each id once",
        ),
    ],
)
def test_malformed_registries_are_refused(doc: dict, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        BuilderRegistry.from_bytes(json.dumps(doc).encode())


def test_builder_ids_compare_exactly() -> None:
    registry = BuilderRegistry().with_builder(OWN, "CH")
    assert registry.jurisdiction_of(OWN) == "CH"
    for variant in (OWN.upper(), OWN + "&", OWN.replace("?", "/?"), OWN.replace("CH", "%43H")):
        assert registry.jurisdiction_of(variant) is None
    assert conveyor_builder_id("https://overt.example/conveyor/v1", "CH") == OWN


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home.init(tmp_path / "conveyor", origin="conveyor.example/log", jurisdiction="CH")
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    builder = KeyRecord.create(
        key,
        role=Role.BUILDER,
        jurisdiction="CH",
        valid_from=datetime.now(UTC) - timedelta(minutes=1),
        valid_until=None,
        uri=uri,
    )
    h.registry.save(builder)
    return h


def log_size(h: Home) -> int:
    return (
        LogClient(directory_fetcher(h.log.paths.public), h.log.policy())
        .update()
        .checkpoint.checkpoint.tree_size
    )


def log_entries(h: Home) -> list[bytes]:
    c = LogClient(directory_fetcher(h.log.paths.public), h.log.policy())
    return c.entries(c.update().checkpoint.checkpoint.tree_size)


def refused_and_logged(h: Home, record: KeyRecord, statement: Statement) -> str:
    """Signing ``statement`` is refused, the refusal is the next log entry, and nothing was signed: the reason."""
    size = log_size(h)
    with pytest.raises(PolicyError, match=r"^refused: ") as e:
        h.signing_service().sign(record, statement)
    assert e.value.evidence["refusal_logged_at"] == size
    entries = log_entries(h)
    assert len(entries) == size + 1
    note = Statement.from_bytes(Envelope.from_bytes(entries[size]).payload)
    assert note.predicate_type == SIGNING_REFUSAL_V1 and note.predicate["keyid"] == record.keyid
    assert not any(Envelope.from_bytes(e).payload == statement.to_bytes() for e in entries)
    return str(note.predicate["reason"])


def logged_registry_versions(h: Home) -> list[int]:
    """The version of every builder registry statement in the log, in log order."""
    versions = []
    for entry in log_entries(h):
        envelope = Envelope.from_bytes(entry)
        statement = Statement.from_bytes(envelope.payload)
        if envelope.signatures and statement.predicate_type == BUILDER_REGISTRY_V1:
            versions.append(statement.predicate["version"])
    return versions


def own_statement() -> Statement:
    return Statement.from_dict(own_provenance())


def builder_key(h: Home) -> KeyRecord:
    return h.registry.current(Role.BUILDER, datetime.now(UTC))


def test_each_version_is_signed_by_the_release_key_logged_and_published(home: Home) -> None:
    release = register_builders(home, SAMPLE_BUILDER_ID)
    c = LogClient(directory_fetcher(home.log.paths.public), home.log.policy())
    tree = c.update()
    entries = c.entries(tree.checkpoint.checkpoint.tree_size)
    assert len(entries) == 2
    for version, entry in enumerate(entries, 1):
        assert (home.paths.public / "builders" / f"v{version}.dsse.json").read_bytes() == entry
        c.verify_inclusion(entry, version - 1, tree.checkpoint)
        registry = BuilderRegistry.from_envelope(entry, [release.key])
        assert registry.version == version
    assert (home.paths.public / "builders" / "registry.dsse.json").read_bytes() == entries[1]
    assert home.builder_store().load().mapping() == {OWN: "CH", SAMPLE_BUILDER_ID: "CH"}
    # The builder's provenance now signs; an outsider checks the registry with the published release key.
    home.signing_service().sign(builder_key(home), provenance_statement("CH"))
    public = home.paths.public / "keys" / f"{release.keyid}.json"
    r = overt(
        "attest", "verify", str(home.paths.public / "builders" / "registry.dsse.json"), "--key", str(public)
    )
    assert r.returncode == 0 and BUILDER_REGISTRY_V1 in r.stdout


def test_a_registry_not_signed_by_the_release_key_is_distrusted(home: Home) -> None:
    register_builders(home)
    current = home.paths.public / "builders" / "registry.dsse.json"
    # Re-signed by the builder key: a well-formed registry admitting an RU builder, but not the release key's.
    forged = BuilderRegistry().with_builder("https://builder.ru.example/b", "CH").with_builder(OWN, "CH")
    service = home.signing_service()
    signer = service.load(builder_key(home))
    payload = forged.statement(now=datetime.now(UTC)).to_bytes()
    current.write_bytes(sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, [signer]).to_bytes())
    with pytest.raises(
        VerificationError, match=r"registry\.dsse\.json holds no builder registry this home's"
    ):
        home.builder_store().load()
    # Fails closed: provenance is refused (and the refusal logged) while the registry is in doubt.
    refused = refused_and_logged(home, builder_key(home), provenance_statement("CH"))
    assert "the builder registry cannot be trusted" in refused


def test_a_registry_whose_subject_is_another_registry_is_refused(home: Home) -> None:
    release = register_builders(home)
    st_ = BuilderRegistry().with_builder(OWN, "CH").statement(now=datetime.now(UTC))
    doc = st_.to_dict()
    doc["predicate"]["builders"].append({"id": "https://z.example", "jurisdiction": "CH"})
    with pytest.raises(VerificationError, match="subject is not the registry"):
        BuilderRegistry.from_statement(Statement.from_dict(doc))
    with pytest.raises(VerificationError, match="no release key"):
        BuilderRegistry.from_envelope(
            (home.paths.public / "builders" / "registry.dsse.json").read_bytes(), []
        )
    assert BuilderRegistry.from_envelope(
        (home.paths.public / "builders" / "registry.dsse.json").read_bytes(), [release.key]
    ).mapping() == {OWN: "CH"}


def test_reserved_types_need_their_own_issuer(home: Home) -> None:
    with pytest.raises(ValueError, match="not a reserved type"):
        Issuer(SIGNING_REFUSAL_V1)
    with pytest.raises(ValueError, match="not a reserved type"):
        Issuer("https://slsa.dev/provenance/v1")
    release = register_builders(home)
    statement = BuilderRegistry().with_builder(OWN, "CH").statement(now=datetime.now(UTC))
    with pytest.raises(ValueError, match="cannot issue"):
        home.signing_service().issue(release, statement, issuer=Issuer(KEY_ROTATION_V1))
    with pytest.raises(PolicyError, match="never signed on request"):
        home.signing_service().sign(release, statement)
    with pytest.raises(ConfigError, match="already registered"):
        add_builder(home.builder_store(), home.signing_service(), release, builder_id=OWN, jurisdiction="CH")


def test_verify_only_keys_never_become_the_current_key(home: Home, tmp_path: Path) -> None:
    uri, key = generate_file_key(tmp_path, "ed25519")
    start = datetime.now(UTC) - timedelta(minutes=1)
    outside = KeyRecord.create(
        key, role=Role.BUILDER, jurisdiction="DE", valid_from=start, valid_until=None, uri=uri
    )
    with pytest.raises(PolicyError, match="signs only in CH"):
        home.registry.add(outside, conveyor_jurisdiction="CH")
    home.registry.add(outside.public(), conveyor_jurisdiction="CH")
    assert home.registry.get(outside.keyid).uri == ""
    assert builder_key(home).keyid != outside.keyid  # current() skips keys that cannot sign
    assert not (home.paths.public / "keys" / f"{outside.keyid}.json").exists()
    with pytest.raises(ConfigError, match="already in the registry"):
        home.registry.add(outside.public(), conveyor_jurisdiction="CH")


def test_builders_commands(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    H = ("--home", home)
    assert overt("init", *H).returncode == 0
    assert overt("keys", "generate", "--role", "builder", *H).returncode == 0
    r = overt("keys", "builders", "list", *H)
    assert r.returncode == 0 and "no builder registry yet" in r.stdout
    r = overt("keys", "builders", "add", SAMPLE_BUILDER_ID, *H)
    assert r.returncode == 2 and "no active release key" in r.stderr and "Traceback" not in r.stderr

    r = overt("keys", "generate", "--role", "release", *H)
    assert (
        r.returncode == 0
        and "registered builder https://overt.example/conveyor/v1?jurisdiction=CH" in r.stdout
    )
    r = overt("keys", "builders", "add", SAMPLE_BUILDER_ID, *H)
    assert r.returncode == 0 and "builder registry v2" in r.stdout and "logged at index 1" in r.stdout
    r = overt("keys", "builders", "list", *H)
    assert SAMPLE_BUILDER_ID in r.stdout and "v2, signature verified" in r.stdout
    for args, message in [
        (("add", SAMPLE_BUILDER_ID), "already registered"),
        (("add", "https://a.example/with space"), "printable ASCII"),
        (("add", "https://a.example", "--jurisdiction", "Swiss"), "ISO 3166"),
        (("remove", "https://never.example"), "not registered"),
    ]:
        r = overt("keys", "builders", *args, *H)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)

    statement = tmp_path / "st.json"
    statement.write_bytes(provenance_statement("CH").to_bytes())
    assert overt("attest", "sign", str(statement), "--role", "builder", *H).returncode == 0
    r = overt("keys", "builders", "remove", SAMPLE_BUILDER_ID, *H, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == 3
    # Withdrawn: the same request (a new refusal, a second later or not) is refused and logged.
    r = overt("attest", "sign", str(statement), "--role", "builder", *H)
    assert r.returncode == 1 and "is not in this conveyor's builder registry" in r.stderr
    assert "refusal_logged_at" in r.stderr
    # A second active release key is refused (rotate instead): nothing is made or registered.
    r = overt("keys", "generate", "--role", "release", *H, "--json")
    assert r.returncode == 2 and "'overt keys rotate --role release'" in json.loads(r.stderr)["message"]
    assert [p.name for p in sorted((Path(home) / "public" / "builders").iterdir())] == [
        "registry.dsse.json",
        "v1.dsse.json",
        "v2.dsse.json",
        "v3.dsse.json",
    ]


def test_a_bad_conveyor_builder_id_is_a_config_error(tmp_path: Path) -> None:
    h = Home.init(tmp_path / "h")
    cfg = h.path / "config.toml"
    cfg.write_text(
        cfg.read_text().replace('builder_id = "https://overt.example/conveyor/v1"', 'builder_id = "a b"')
    )
    with pytest.raises(ConfigError, match="printable ASCII"):
        Home(h.path)


# --- the newest logged version is the only one trusted ---------------------------------------------------


def three_versions(h: Home) -> KeyRecord:
    """v1 (the home's own builder), v2 (+ the sample builder), v3 (the sample builder removed again)."""
    release = register_builders(h, SAMPLE_BUILDER_ID)
    remove_builder(h.builder_store(), h.signing_service(), release, builder_id=SAMPLE_BUILDER_ID)
    assert logged_registry_versions(h) == [1, 2, 3]
    return release


def roll_back(h: Home, version: int) -> None:
    builders = h.paths.public / "builders"
    (builders / "registry.dsse.json").write_bytes((builders / f"v{version}.dsse.json").read_bytes())


def test_an_older_release_signed_registry_copied_back_is_refused(home: Home, tmp_path: Path) -> None:
    three_versions(home)
    roll_back(home, 2)  # v2 still lists the sample builder, which v3 removed
    with pytest.raises(VerificationError, match="holds builder registry v2, but the newest") as e:
        home.builder_store().load()
    assert "in this home's log is v3 (log index 2" in str(e.value) and "v3.dsse.json is that version" in str(
        e.value
    )
    # Provenance from the removed builder is refused, and so is the home's own: the registry is in doubt.
    assert "is v3" in refused_and_logged(home, builder_key(home), provenance_statement("CH"))
    assert "is v3" in refused_and_logged(home, builder_key(home), own_statement())
    statement = tmp_path / "st.json"
    statement.write_bytes(provenance_statement("CH").to_bytes())
    r = overt("attest", "sign", str(statement), "--role", "builder", "--home", str(home.path), "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    err = json.loads(r.stderr)
    assert "newest builder registry in this home's log is v3" in err["message"]
    note = Envelope.from_bytes(log_entries(home)[err["evidence"]["refusal_logged_at"]])
    assert note.signatures == () and "is v3" in Statement.from_bytes(note.payload).predicate["reason"]
    r = overt("keys", "builders", "list", "--home", str(home.path))
    assert r.returncode == 1 and "is v3" in r.stderr and "Traceback" not in r.stderr
    # Copied back: the removed builder stays removed, the home's own signs again.
    roll_back(home, 3)
    assert home.builder_store().load().version == 3
    assert UNREGISTERED in refused_and_logged(home, builder_key(home), provenance_statement("CH"))
    home.signing_service().sign(builder_key(home), own_statement())


def test_a_lost_or_foreign_scan_mark_means_a_full_rescan(home: Home) -> None:
    three_versions(home)
    home.builder_store().load()
    mark = home.path / "builders-scan.json"
    recorded = json.loads(mark.read_text())
    assert recorded["tree_size"] == log_size(home)
    assert [v["version"] for v in recorded["versions"]] == [1, 2, 3] and recorded["own"]["version"] == 3
    roll_back(home, 2)
    mark.unlink()
    with pytest.raises(VerificationError, match="is v3"):
        home.builder_store().load()
    # A mark from another tree (its root is not this tree's at that size) is not believed either.
    forged = dict(recorded, root="00" * 32, versions=recorded["versions"][:2], own=recorded["versions"][1])
    assert forged["versions"][1]["sha256"] == hashlib.sha256(log_entries(home)[1]).hexdigest()  # v2's entry
    mark.write_text(json.dumps(forged))
    with pytest.raises(VerificationError, match="is v3"):
        home.builder_store().load()
    mark.write_text("not a mark")
    with pytest.raises(VerificationError, match="is v3"):
        home.builder_store().load()


def test_a_registry_that_was_never_logged_is_refused(home: Home, tmp_path: Path) -> None:
    release = register_builders(home)
    current = home.paths.public / "builders" / "registry.dsse.json"
    # Signed by the release key itself, but never appended to the log.
    registry = home.builder_store().load().with_builder(SAMPLE_BUILDER_ID, "CH")
    payload = registry.statement(now=datetime.now(UTC)).to_bytes()
    current.write_bytes(sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, [home.signer_for(release)]).to_bytes())
    with pytest.raises(VerificationError, match=r"holds builder registry v2, but the newest .* is v1"):
        home.builder_store().load()
    assert "is v1" in refused_and_logged(home, builder_key(home), provenance_statement("CH"))
    # A home whose log holds no registry at all trusts no file either.
    other = Home.init(tmp_path / "other", origin="other.example/log", jurisdiction="CH")
    uri, key = generate_file_key(other.paths.keys, "ed25519")
    start = datetime.now(UTC) - timedelta(minutes=1)
    other_release = KeyRecord.create(
        key, role=Role.RELEASE, jurisdiction="CH", valid_from=start, valid_until=None, uri=uri
    )
    other.registry.save(other_release)
    payload = BuilderRegistry().with_builder(OWN, "CH").statement(now=datetime.now(UTC)).to_bytes()
    envelope = sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, [other.signer_for(other_release)])
    (other.paths.public / "builders").mkdir(parents=True)
    (other.paths.public / "builders" / "registry.dsse.json").write_bytes(envelope.to_bytes())
    with pytest.raises(VerificationError, match="log holds no builder registry signed by its release keys"):
        other.builder_store().load()


def test_the_scan_checks_the_log_it_reads(home: Home) -> None:
    three_versions(home)
    db = [home.path / f"overt.db{suffix}" for suffix in ("", "-wal", "-shm")]
    # A database restored from a backup taken at v2 would hide v3: it is refused, as every append refuses it.
    backup = home.path / "backup"
    backup.mkdir()
    release = home.registry.current(Role.RELEASE, datetime.now(UTC))
    remove_builder(home.builder_store(), home.signing_service(), release, builder_id=OWN)  # v4
    for f in db:
        if f.exists():
            shutil.copy(f, backup / f.name)
    add_builder(
        home.builder_store(), home.signing_service(), release, builder_id=OWN, jurisdiction="CH"
    )  # v5
    for f in db:
        f.unlink(missing_ok=True)
        if (backup / f.name).exists():
            shutil.copy(backup / f.name, f)
    roll_back(home, 4)
    (home.path / "builders-scan.json").unlink()
    with pytest.raises(StorageError, match="behind what this log signed"):
        home.builder_store().load()


def test_an_edited_entry_bundle_is_not_read_as_the_log(home: Home) -> None:
    three_versions(home)
    bundle = home.log.paths.public / entries_path(0, log_size(home))
    data = bytearray(bundle.read_bytes())
    data[-3] ^= 1
    bundle.write_bytes(bytes(data))
    (home.path / "builders-scan.json").unlink()
    with pytest.raises(StorageError, match="not the one its tile commits to"):
        home.builder_store().load()


def test_a_new_version_always_follows_the_newest_logged_one(home: Home) -> None:
    release = three_versions(home)
    store, service = home.builder_store(), home.signing_service()
    other = "https://other.example/builder"
    roll_back(home, 2)  # built on, v2 would give a second, different v3
    with pytest.raises(VerificationError, match="is v3"):
        add_builder(store, service, release, builder_id=other, jurisdiction="CH")
    (
        home.paths.public / "builders" / "registry.dsse.json"
    ).unlink()  # built on, nothing would give a second v1
    with pytest.raises(VerificationError, match=r"registry\.dsse\.json is missing, but the newest .* is v3"):
        add_builder(store, service, release, builder_id=other, jurisdiction="CH")
    with pytest.raises(VerificationError, match="is missing"):
        register_first_builder(store, service, release, builder_id=OWN, jurisdiction="CH")
    assert logged_registry_versions(home) == [1, 2, 3]
    roll_back(home, 3)
    registry, _ = add_builder(store, service, release, builder_id=other, jurisdiction="CH")
    assert registry.version == 4 and logged_registry_versions(home) == [1, 2, 3, 4]


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_the_scan_filter_finds_the_registry_type_at_every_offset(before: bytes, after: bytes) -> None:
    payload = before + BUILDER_REGISTRY_V1.encode() + after
    entry = Envelope(payload=payload, payload_type=PAYLOAD_TYPE_IN_TOTO).to_bytes()
    assert any(marker in entry for marker in BuilderStore.kind.predicate.markers)


def test_only_registries_the_trusted_keys_signed_count(home: Home) -> None:
    release = register_builders(home)
    entry = (home.paths.public / "builders" / "registry.dsse.json").read_bytes()
    assert BuilderStore.kind.predicate.version(entry, [release.key]) == 1
    assert BuilderStore.kind.predicate.version(entry, [builder_key(home).key]) is None
    unsigned = Envelope(payload=Envelope.from_bytes(entry).payload, payload_type=PAYLOAD_TYPE_IN_TOTO)
    assert BuilderStore.kind.predicate.version(unsigned.to_bytes(), [release.key]) is None
    signed = home.signing_service().sign(builder_key(home), own_statement())
    assert BuilderStore.kind.predicate.version(signed.entry, [builder_key(home).key]) is None


def test_registry_edits_are_serialised(home: Home) -> None:
    store = home.builder_store()
    with (
        store.editing(),
        pytest.raises(ConfigError, match="another command is changing"),
        store.editing(wait=0),
    ):
        pass
    with store.editing():  # released again
        pass


# --- builders on hosts abroad ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder_id", "jurisdiction", "host", "country"),
    [
        ("https://host.ru/builder", "CH", "host.ru", "RU"),
        ("https://build.example.co.uk/b", "CH", "build.example.co.uk", "GB"),
        ("https://host.eu/b", "CH", "host.eu", "EU"),
        ("https://host.de/b", "CH", "host.de", "DE"),
        ("https://HOST.RU./b", "CH", "host.ru", "RU"),
        ("https://host.ru:8443/b?jurisdiction=CH", "CH", "host.ru", "RU"),
        ("https://overt.example@host.ru/b", "CH", "host.ru", "RU"),
        ("https://overt.example\\@host.ru/b", "CH", "host.ru", "RU"),
        ("https://host%2Eru/b", "CH", "host.ru", "RU"),
        ("git+ssh://git@host.ru/b", "CH", "host.ru", "RU"),
        ("https://host.xn--p1ai/b", "CH", "host.xn--p1ai", "RU"),
        ("https://host.ch/b", "DE", "host.ch", "CH"),
        ("https://host.ch/b", "EU", "host.ch", "CH"),
    ],
)
def test_hosts_under_another_countrys_tld(
    builder_id: str, jurisdiction: str, host: str, country: str
) -> None:
    assert foreign_host(builder_id, jurisdiction) == (host, country)


@pytest.mark.parametrize(
    ("builder_id", "jurisdiction"),
    [
        ("https://host.ch/b", "CH"),
        ("https://host.com/b", "CH"),
        ("https://overt.example/conveyor/v1?jurisdiction=CH", "CH"),
        ("https://host.ch/b?mirror=host.ru", "CH"),
        ("https://host.ru@host.ch/b", "CH"),
        ("https://host.eu/b", "EU"),
        ("https://host.de/b", "EU"),
        ("https://host.co.uk/b", "GB"),
    ],
)
def test_hosts_at_home_or_of_no_country(builder_id: str, jurisdiction: str) -> None:
    assert foreign_host(builder_id, jurisdiction) is None


def test_the_internationalised_country_tlds_are_the_countries_they_say() -> None:
    names = {label: label.encode().decode("idna") for label in IDN_CCTLDS}
    assert names["xn--p1ai"] == "рф" and names["xn--90ais"] == "бел" and names["xn--fiqs8s"] == "中国"
    assert all(not name.isascii() for name in names.values())


def test_builders_add_refuses_a_host_abroad_unless_told_it_is_unsafe(tmp_path: Path) -> None:
    H = ("--home", str(tmp_path / "home"))
    assert overt("init", *H).returncode == 0
    assert overt("keys", "generate", "--role", "release", *H).returncode == 0  # v1: the home's own builder
    r = overt("keys", "builders", "add", "https://host.ru/builder", *H, "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    err = json.loads(r.stderr)
    assert "host.ru, under the country-code TLD of RU" in err["message"]
    assert "--unsafe-allow-foreign-host" in err["message"]
    home = Home(tmp_path / "home")
    note = Statement.from_bytes(
        Envelope.from_bytes(log_entries(home)[err["evidence"]["refusal_logged_at"]]).payload
    )
    assert note.predicate_type == SIGNING_REFUSAL_V1 and "host.ru" in note.predicate["reason"]
    assert note.predicate["claimedJurisdictions"] == ["RU"]
    assert home.builder_store().load().version == 1

    r = overt("keys", "builders", "add", "https://host.ru/builder", "--unsafe-allow-foreign-host", *H)
    assert r.returncode == 0, r.stderr
    assert "builder registry v2" in r.stdout and "allowed by --unsafe-allow-foreign-host" in r.stdout
    logged = Envelope.from_bytes(log_entries(home)[-1])
    assert (
        logged.payload
        == Envelope.from_bytes((home.paths.public / "builders" / "registry.dsse.json").read_bytes()).payload
    )
    entries = Statement.from_bytes(logged.payload).predicate["builders"]
    assert {"id": "https://host.ru/builder", "jurisdiction": "CH", "unsafeAllowForeignHost": True} in entries
    assert all("unsafeAllowForeignHost" not in e for e in entries if e["id"] != "https://host.ru/builder")
    r = overt("keys", "builders", "list", *H)
    assert r.returncode == 0 and "abroad, allowed (unsafe)" in r.stdout
    # The option allows a host, never a claim: a builder said to be in RU is still refused.
    r = overt(
        "keys",
        "builders",
        "add",
        "https://other.ru/b",
        "--jurisdiction",
        "RU",
        "--unsafe-allow-foreign-host",
        *H,
    )
    assert r.returncode == 1 and "names jurisdiction" in r.stderr


@pytest.mark.parametrize(
    "builder_id",
    [
        "https://10.1.2.3/b",
        "https://95.108.0.1/x",
        "https://[2a02:6b8::1]/x",
        "https://0x5f6c0001/x",
        "https://localhost/x",
        "urn:overt:builder:ru",
        "b.example.ru/x",
        "https:b.example.ru/x",
        "https:/b.example.ru/x",
        "http://b.example.ch/x",
    ],
)
def test_ids_that_name_no_place_are_refused(builder_id: str) -> None:
    """An IP address or a string that is not an https:// URL says nothing about where the builder is."""
    from overt.keys.jurisdiction import foreign_host

    found = foreign_host(builder_id, "CH")
    assert found is not None and found[1].startswith("no country")


# --- a home that forgot what it logged ----------------------------------------------------------------------


def forget(h: Home, release: KeyRecord, *, registry_files: bool) -> Path:
    """Move away the private record of the release key that signed the logged registry (its published copy
    in public/keys/ stays), and public/builders/ too with ``registry_files``. Returns where they went."""
    elsewhere = h.path.parent / "elsewhere"
    elsewhere.mkdir()
    shutil.move(h.paths.key_registry / f"{release.keyid}.json", elsewhere)
    if registry_files:
        shutil.move(h.paths.builders, elsewhere / "builders")
    return elsewhere


def release_keys_and_files(h: Home) -> tuple[list[str], list[str]]:
    records = sorted(r.keyid for r in h.registry.records() if r.role is Role.RELEASE)
    return records, sorted(p.name for p in h.paths.keys.glob("*.pem"))


def test_a_version_the_log_holds_is_never_issued_again(home: Home) -> None:
    """The tester's case: the home forgot its logged v1 and, with a new release key, logged a second v1."""
    release = register_builders(home)
    assert logged_registry_versions(home) == [1]
    elsewhere = forget(home, release, registry_files=True)
    assert home.builder_store().load().version == 0  # nothing this home trusts is in the log any more
    before = release_keys_and_files(home)
    with pytest.raises(ConfigError, match=r"would not be newer than v1, which this home's log already holds"):
        generate_key(home.key_home(), home.signing_service(), role=Role.RELEASE, now=datetime.now(UTC))
    assert release_keys_and_files(home) == before  # refused before any key was made
    # A release key registered by hand is refused before it signs anything.
    uri, key = generate_file_key(home.paths.keys, "ed25519")
    start = datetime.now(UTC) - timedelta(minutes=1)
    second = KeyRecord.create(
        key, role=Role.RELEASE, jurisdiction="CH", valid_from=start, valid_until=None, uri=uri
    )
    home.registry.save(second)
    with pytest.raises(
        ConfigError, match=r"v1 would not be newer than v1, .* signed by a release key of this home"
    ):
        add_builder(
            home.builder_store(),
            home.signing_service(),
            second,
            builder_id=SAMPLE_BUILDER_ID,
            jurisdiction="CH",
        )
    assert logged_registry_versions(home) == [1]
    # Anyone can append to the log: a registry signed by a key this home never held does not count.
    uri, key = generate_file_key(home.paths.keys, "ed25519")  # never registered: not this home's key
    stranger = KeyRecord.create(
        key, role=Role.RELEASE, jurisdiction="CH", valid_from=start, valid_until=None, uri=uri
    )
    forged = (
        BuilderRegistry(version=1000).with_builder(SAMPLE_BUILDER_ID, "CH").statement(now=datetime.now(UTC))
    )
    signer = home.signer_for(stranger)
    home.log.append(sign_envelope(forged.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [signer]).to_bytes())
    shutil.move(elsewhere / f"{release.keyid}.json", home.paths.key_registry)
    shutil.move(elsewhere / "builders", home.paths.builders)
    registry, _ = add_builder(
        home.builder_store(), home.signing_service(), release, builder_id=SAMPLE_BUILDER_ID, jurisdiction="CH"
    )
    assert registry.version == 2 and logged_registry_versions(home) == [1, 1001, 2]


def test_a_refused_first_release_key_leaves_no_key_and_says_what_the_log_holds(home: Home) -> None:
    release = register_builders(home)
    forget(home, release, registry_files=False)  # registry.dsse.json stays: v1, signed by the forgotten key
    message = (
        r"registry\.dsse\.json holds no builder registry this home's trusted release keys signed, and the newest "
        r"builder registry in this home's log, v1 \(log index 0\), is signed by a release key of this home that "
        "it does not trust"
    )
    with pytest.raises(VerificationError, match=message):
        home.builder_store().load()
    before = release_keys_and_files(home)
    with pytest.raises(VerificationError, match=message):
        generate_key(home.key_home(), home.signing_service(), role=Role.RELEASE, now=datetime.now(UTC))
    assert release_keys_and_files(home) == before
    r = overt("keys", "generate", "--role", "release", "--home", str(home.path))
    assert (
        r.returncode == 1
        and "does not trust" in r.stderr
        and "holds no builder registry signed by" not in r.stderr
    )
    assert release_keys_and_files(home) == before
