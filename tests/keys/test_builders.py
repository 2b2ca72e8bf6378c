"""The builder registry: its wire format, its signed and logged versions, how a home loads (and distrusts) it,
and ``overt keys builders`` as a user runs it. Also the issuer guard of reserved types and verify-only keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from overt.attest.statement import Statement
from overt.errors import ConfigError, FormatError, PolicyError, SignatureError, VerificationError
from overt.home import Home
from overt.keys.builders import BuilderRegistry, RegisteredBuilder, add_builder, conveyor_builder_id
from overt.keys.jurisdiction import BUILDER_REGISTRY_V1, KEY_ROTATION_V1, SIGNING_REFUSAL_V1, Issuer
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import generate_file_key
from overt.tlog.client import LogClient, directory_fetcher
from tests.cli.test_cli import overt
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement, register_builders

OWN = "https://overt.example/conveyor/v1?jurisdiction=CH"

ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
codes = st.sampled_from(["CH", "DE", "EU", "RU", "US"])


@given(st.dictionaries(ids, codes, max_size=8), st.integers(min_value=1, max_value=10**6))
def test_registry_round_trips_both_ways(mapping: dict[str, str], version: int) -> None:
    entries = tuple(RegisteredBuilder(id=k, jurisdiction=v) for k, v in sorted(mapping.items()))
    registry = BuilderRegistry(version=version, builders=entries)
    data = registry.to_bytes()
    assert BuilderRegistry.from_bytes(data) == registry
    assert BuilderRegistry.from_bytes(data).to_bytes() == data
    assert registry.mapping() == mapping


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"version": 1, "builders": [], "extra": 1}, "exactly the fields"),
        ({"version": 0, "builders": []}, "at least 1"),
        ({"version": True, "builders": []}, "at least 1"),
        ({"version": 1, "builders": {}}, "must be an array"),
        ({"version": 1, "builders": [{"id": "a", "jurisdiction": "CH", "x": 1}]}, "exactly the fields"),
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
    uri, key = generate_file_key(h.keys_dir, "ed25519")
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
    return LogClient(directory_fetcher(h.log_dir), h.policy()).update().checkpoint.checkpoint.tree_size


def builder_key(h: Home) -> KeyRecord:
    return h.registry.current(Role.BUILDER, datetime.now(UTC))


def test_each_version_is_signed_by_the_release_key_logged_and_published(home: Home) -> None:
    release = register_builders(home, SAMPLE_BUILDER_ID)
    c = LogClient(directory_fetcher(home.log_dir), home.policy())
    tree = c.update()
    entries = c.entries(tree.checkpoint.checkpoint.tree_size)
    assert len(entries) == 2
    for version, entry in enumerate(entries, 1):
        assert (home.public / "builders" / f"v{version}.dsse.json").read_bytes() == entry
        c.verify_inclusion(entry, version - 1, tree.checkpoint)
        registry = BuilderRegistry.from_envelope(entry, [release.key])
        assert registry.version == version
    assert (home.public / "builders" / "registry.dsse.json").read_bytes() == entries[1]
    assert home.builder_store().load().mapping() == {OWN: "CH", SAMPLE_BUILDER_ID: "CH"}
    # The builder's provenance now signs; an outsider checks the registry with the published release key.
    home.signing_service().sign(builder_key(home), provenance_statement("CH"))
    public = home.public / "keys" / f"{release.keyid}.json"
    r = overt("attest", "verify", str(home.public / "builders" / "registry.dsse.json"), "--key", str(public))
    assert r.returncode == 0 and BUILDER_REGISTRY_V1 in r.stdout


def test_a_registry_not_signed_by_the_release_key_is_distrusted(home: Home) -> None:
    register_builders(home)
    current = home.public / "builders" / "registry.dsse.json"
    # Re-signed by the builder key: a well-formed registry admitting an RU builder, but not the release key's.
    forged = BuilderRegistry().with_builder("https://builder.ru.example/b", "CH").with_builder(OWN, "CH")
    service = home.signing_service()
    signer = service.load(builder_key(home))
    payload = forged.statement(now=datetime.now(UTC)).to_bytes()
    current.write_bytes(sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, [signer]).to_bytes())
    with pytest.raises(SignatureError, match=r"registry\.dsse\.json"):
        home.builder_store().load()
    size = log_size(home)
    with pytest.raises(SignatureError):  # fails closed: nothing is signed while the registry is in doubt
        service.sign(builder_key(home), provenance_statement("CH"))
    assert log_size(home) == size


def test_a_registry_whose_subject_is_another_registry_is_refused(home: Home) -> None:
    release = register_builders(home)
    st_ = BuilderRegistry().with_builder(OWN, "CH").statement(now=datetime.now(UTC))
    doc = st_.to_dict()
    doc["predicate"]["builders"].append({"id": "https://z.example", "jurisdiction": "CH"})
    with pytest.raises(VerificationError, match="subject is not the registry"):
        BuilderRegistry.from_statement(Statement.from_dict(doc))
    with pytest.raises(VerificationError, match="no release key"):
        BuilderRegistry.from_envelope((home.public / "builders" / "registry.dsse.json").read_bytes(), [])
    assert BuilderRegistry.from_envelope(
        (home.public / "builders" / "registry.dsse.json").read_bytes(), [release.key]
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
    assert not (home.public / "keys" / f"{outside.keyid}.json").exists()
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
    assert r.returncode == 1 and "no active release key" in r.stderr and "Traceback" not in r.stderr

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
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)

    statement = tmp_path / "st.json"
    statement.write_bytes(provenance_statement("CH").to_bytes())
    assert overt("attest", "sign", str(statement), "--role", "builder", *H).returncode == 0
    r = overt("keys", "builders", "remove", SAMPLE_BUILDER_ID, *H, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == 3
    # Withdrawn: the same request (a new refusal, a second later or not) is refused and logged.
    r = overt("attest", "sign", str(statement), "--role", "builder", *H)
    assert r.returncode == 1 and "is not in this conveyor's builder registry" in r.stderr
    assert "refusal_logged_at" in r.stderr
    # A second release key does not re-register anything: a registry exists.
    r = overt("keys", "generate", "--role", "release", *H, "--json")
    assert r.returncode == 0 and "builder_registry" not in json.loads(r.stdout)
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
