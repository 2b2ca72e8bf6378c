"""The jurisdiction registry: the country list, the wire type and its diff, and its versions as a home signs,
logs, publishes and trusts them (a swapped, unlogged or replayed file is refused)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
from overt.attest.statement import Statement
from overt.errors import ConfigError, FormatError, VerificationError
from overt.home import Home
from overt.keys.jurisdiction import BUILDER_REGISTRY_V1, RESIDENCY_REGISTRY_V1
from overt.keys.registry import Role
from overt.keys.signers import HsmConfig, generate_file_key, load_signer
from overt.residency.countries import (
    COUNTRIES,
    EU,
    EU_EEA,
    check_country,
    check_residency_jurisdiction,
)
from overt.residency.registry import (
    PROMISED,
    SELF,
    JurisdictionRegistry,
    Move,
    first_registry,
    parse_assignment,
)
from overt.residency.registry_store import RegistryIssuer, RegistryStore, registry_store
from overt.tlog.client import LogClient, directory_fetcher

CODES = sorted(COUNTRIES)

# --- countries --------------------------------------------------------------------------------------------


def test_the_country_list_is_iso_3166_1_as_tzdata_has_it() -> None:
    assert len(COUNTRIES) == 249 and all(len(c) == 2 and c.isupper() for c in COUNTRIES)
    if importlib.util.find_spec("tzdata") is None:
        pytest.skip("tzdata (an independent copy of the ISO 3166-1 list) is not installed")
    from importlib.resources import files

    table = files("tzdata.zoneinfo").joinpath("iso3166.tab").read_text()
    codes = {line.split("\t")[0] for line in table.splitlines() if line and not line.startswith("#")}
    assert codes == set(COUNTRIES)


def test_the_eu_and_the_eea() -> None:
    assert len(EU) == 27 and len(EU_EEA) == 30 and set(COUNTRIES) >= EU_EEA
    assert {"IS", "LI", "NO"} <= EU_EEA and not {"CH", "GB", "EL", "UK"} & EU_EEA


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("de", "must be written in upper case: DE"),
        ("De", "must be written in upper case: DE"),
        ("XX", "not an officially assigned"),
        ("UK", "not an officially assigned"),  # reserved, not assigned: the United Kingdom is GB
        ("EU", "not an officially assigned"),
        ("AN", "not an officially assigned"),  # withdrawn
        ("DEU", "not an officially assigned"),
        ("", "not an officially assigned"),
        ("ß", "not an officially assigned"),  # upper-cases to SS (South Sudan): never suggested
        ("\uff24\uff25", "not an officially assigned"),  # fullwidth DE
    ],
)
def test_a_country_is_an_assigned_upper_case_code(code: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        check_country(code)


@pytest.mark.parametrize("code", ["ch", "Switzerland", "XX", "C1", "", "CHE", "self"])
def test_a_jurisdiction_is_a_code_of_a_place(code: str) -> None:
    with pytest.raises(FormatError):
        check_residency_jurisdiction(code)
    assert check_residency_jurisdiction("CH") == "CH" and check_residency_jurisdiction("EU") == "EU"


# --- the wire type ----------------------------------------------------------------------------------------


def test_the_first_version_is_the_promise() -> None:
    first = first_registry()
    assert first.version == 1 and first.default == SELF
    for country in COUNTRIES:
        expected = "CH" if country in PROMISED or country == "CH" else country
        assert first.jurisdiction_of(country) == expected, country
    for country in ("US", "DE", "FR", "IS", "LI", "NO", "GB", "JP", "KR", "SG", "AU", "CH"):
        assert first.jurisdiction_of(country) == "CH"
    assert [first.jurisdiction_of(c) for c in ("BR", "IN", "CN", "RU", "CA")] == [
        "BR",
        "IN",
        "CN",
        "RU",
        "CA",
    ]
    assert len(first.countries) == 37
    # Configurable: the others to one region, and explicit entries on top.
    other = first_registry(default="IN", countries={"BR": "BR"})
    assert (other.jurisdiction_of("CN"), other.jurisdiction_of("BR"), other.jurisdiction_of("DE")) == (
        "IN",
        "BR",
        "CH",
    )


def test_diff_lists_every_move_including_those_of_a_changed_default() -> None:
    v1 = first_registry()
    v2 = v1.with_changes({"BR": "CH", "IN": "EU"})
    assert v2.version == 2
    assert v1.diff(v2).moved == (
        Move(country="BR", from_jurisdiction="BR", to_jurisdiction="CH"),
        Move(country="IN", from_jurisdiction="IN", to_jurisdiction="EU"),
    )
    assert v2.diff(v1).moved[0] == Move(country="BR", from_jurisdiction="CH", to_jurisdiction="BR")
    # Every country without an entry moves when the default does: 249 minus the 39 entries.
    v3 = v2.with_changes({}, default="CH")
    moved = v2.diff(v3).moved
    assert len(moved) == 249 - 39 and {m.to_jurisdiction for m in moved} == {"CH"}
    assert next((m.country, m.from_jurisdiction) for m in moved if m.country == "CN") == ("CN", "CN")
    assert not v3.diff(v3).moved
    assert v1.diff(v2).to_dict() == {
        "from_version": 1,
        "to_version": 2,
        "moved": [{"country": "BR", "from": "BR", "to": "CH"}, {"country": "IN", "from": "IN", "to": "EU"}],
    }


def test_a_change_that_moves_nothing_makes_no_version() -> None:
    v1 = first_registry()
    for countries, default in (({"DE": "CH"}, None), ({"BR": "BR"}, None), ({}, SELF)):
        with pytest.raises(ConfigError, match="move no country"):
            v1.with_changes(countries, default=default)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BR", "is not COUNTRY=JURISDICTION"),
        ("br=CH", "upper case"),
        ("BR=ch", "two-letter"),
        ("BR=XX", "no"),
    ],
)
def test_command_line_assignments(text: str, message: str) -> None:
    assert parse_assignment("BR=CH") == ("BR", "CH")
    with pytest.raises(FormatError, match=message):
        parse_assignment(text)


registries = st.builds(
    JurisdictionRegistry,
    version=st.integers(min_value=1, max_value=2**53),
    countries=st.dictionaries(st.sampled_from(CODES), st.sampled_from([*CODES, "EU"]), max_size=60),
    default=st.sampled_from([SELF, "EU", *CODES]),
)


@given(registries)
def test_registries_round_trip_both_ways(registry: JurisdictionRegistry) -> None:
    data = registry.to_bytes()
    assert JurisdictionRegistry.from_bytes(data) == registry
    assert JurisdictionRegistry.from_bytes(data).to_bytes() == data
    assert json.loads(data) == {
        "version": registry.version,
        "countries": dict(registry.countries),
        "default": registry.default,
    }
    statement = registry.statement(now=datetime(2026, 12, 1, tzinfo=UTC))
    assert JurisdictionRegistry.from_statement(Statement.from_bytes(statement.to_bytes())) == registry


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "version": json_values | st.integers(),
            "countries": json_values
            | st.dictionaries(st.sampled_from([*CODES[:5], "de", "XX"]), st.sampled_from(["CH", "ch", "X"])),
            "default": json_values | st.sampled_from([SELF, "CH", "Self", "XX"]),
            "extra": json_values,
        },
    )
)
@settings(max_examples=300)
def test_any_json_object_is_a_registry_or_a_format_error(doc: dict) -> None:
    try:
        registry = JurisdictionRegistry.from_bytes(json.dumps(doc).encode())
    except FormatError:
        return
    assert registry.to_bytes() == JurisdictionRegistry.from_bytes(registry.to_bytes()).to_bytes()


@given(st.binary(max_size=200))
def test_any_bytes_are_a_registry_or_a_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        JurisdictionRegistry.from_bytes(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"version":1,"countries":{}}', "exactly the fields"),
        (b'{"version":1,"countries":{},"default":"self","extra":1}', "exactly the fields"),
        (b'{"version":0,"countries":{},"default":"self"}', "at least 1"),
        (b'{"version":true,"countries":{},"default":"self"}', "at least 1"),
        (b'{"version":1.0,"countries":{},"default":"self"}', "at least 1"),
        (b'{"version":1,"countries":[],"default":"self"}', "must be an object"),
        (b'{"version":1,"countries":{"de":"CH"},"default":"self"}', "upper case"),
        (b'{"version":1,"countries":{"DE":"Switzerland"},"default":"self"}', "two-letter"),
        (b'{"version":1,"countries":{"DE":"XX"},"default":"self"}', "not a place"),
        (b'{"version":1,"countries":{"DE":1},"default":"self"}', "must be a string"),
        (b'{"version":1,"countries":{},"default":"elsewhere"}', "two-letter"),
        (b'{"version":1,"countries":{"DE":"CH","DE":"US"},"default":"self"}', "duplicate JSON key"),
        (b'{"version":NaN,"countries":{},"default":"self"}', "NaN"),
        (b"[1]", "must be a JSON object"),
    ],
)
def test_malformed_registries_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        JurisdictionRegistry.from_bytes(data)


def test_a_statement_whose_subject_is_another_registry_is_refused() -> None:
    statement = first_registry().statement(now=datetime(2026, 12, 1, tzinfo=UTC))
    doc = statement.to_dict()
    doc["predicate"]["countries"]["BR"] = "CH"
    with pytest.raises(VerificationError, match="subject is not the registry"):
        JurisdictionRegistry.from_statement(Statement.from_dict(doc))


# --- versions in a home -----------------------------------------------------------------------------------


def log_entries(h: Home) -> list[bytes]:
    client = LogClient(directory_fetcher(h.log.paths.public), h.log.policy())
    return client.entries(client.update().checkpoint.checkpoint.tree_size)


@pytest.fixture
def home(conveyor: Home) -> Home:
    """The conveyor home (CH, a release key; builder registry at log entry 0) with registry v1 and v2."""
    issuer = RegistryIssuer.of_home(conveyor)
    issuer.init(default=SELF, countries={})
    issuer.change({"BR": "CH"})
    return conveyor


def files(h: Home) -> Path:
    return h.paths.residency_registry


def test_each_version_is_signed_by_the_release_key_logged_and_published(home: Home) -> None:
    release = home.registry.current(Role.RELEASE, datetime.now(UTC))
    entries = log_entries(home)
    assert len(entries) == 3  # the builder registry, then residency registry v1 and v2
    for version in (1, 2):
        entry = entries[version]
        assert (files(home) / f"v{version}.dsse.json").read_bytes() == entry
        registry = JurisdictionRegistry.from_envelope(entry, [release.key])
        assert registry.version == version
        statement = Statement.from_bytes(Envelope.from_bytes(entry).payload)
        assert statement.predicate_type == RESIDENCY_REGISTRY_V1
        assert statement.subject[0].name == f"residency-registry/v{version}"
    assert (files(home) / "registry.dsse.json").read_bytes() == entries[2]
    store = registry_store(home)
    assert store.current().jurisdiction_of("BR") == "CH" and store.version(1).jurisdiction_of("BR") == "BR"
    stored = store.stored()
    assert (stored.registry.version, stored.log_index) == (2, 2)
    assert [m.country for m in store.diff().moved] == ["BR"] and store.diff(2, 1).moved[
        0
    ].to_jurisdiction == "BR"


def test_an_older_version_put_back_is_refused(home: Home) -> None:
    current = files(home) / "registry.dsse.json"
    current.write_bytes((files(home) / "v1.dsse.json").read_bytes())
    store = registry_store(home)
    with pytest.raises(
        VerificationError, match=r"holds jurisdiction registry v1, but the newest .* is v2"
    ) as e:
        store.current()
    assert e.value.evidence["logged_version"] == 2 and "v2.dsse.json is that version" in str(e.value)
    with pytest.raises(VerificationError):
        RegistryIssuer.of_home(home).change({"IN": "CH"})  # no version follows one in doubt
    # A version's own file replaced by another version is refused too.
    (files(home) / "v2.dsse.json").write_bytes((files(home) / "v1.dsse.json").read_bytes())
    with pytest.raises(VerificationError, match=r"v2.dsse.json holds jurisdiction registry v1, but that"):
        store.version(2)
    assert len(log_entries(home)) == 3  # nothing was signed


def test_a_file_swapped_for_a_well_formed_unsigned_or_unlogged_one_is_refused(
    home: Home, tmp_path: Path
) -> None:
    current = files(home) / "registry.dsse.json"
    forged = first_registry().with_changes({"BR": "CH"}).with_changes({"CN": "CH"})  # v3, never issued
    payload = forged.statement(now=datetime.now(UTC)).to_bytes()
    unsigned = Envelope(payload=payload, payload_type=PAYLOAD_TYPE_IN_TOTO).to_bytes()
    uri, key = generate_file_key(tmp_path, "ed25519")
    stranger = sign_envelope(
        payload, PAYLOAD_TYPE_IN_TOTO, [load_signer(uri, key, keys_dir=tmp_path, hsm=HsmConfig())]
    )
    release = home.registry.current(Role.RELEASE, datetime.now(UTC))
    by_release = sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, [home.signer_for(release)])
    store = registry_store(home)
    for envelope, held in (
        (unsigned, "no jurisdiction registry"),
        (stranger.to_bytes(), "no jurisdiction registry this home's release keys signed"),
        (by_release.to_bytes(), "holds jurisdiction registry v3"),  # signed by the release key, never logged
    ):
        current.write_bytes(envelope)
        with pytest.raises(VerificationError, match=held):
            store.current()
    current.unlink()
    with pytest.raises(VerificationError, match="is missing"):
        store.current()


def test_a_home_whose_log_holds_no_version_trusts_no_file(conveyor: Home) -> None:
    store = registry_store(conveyor)
    with pytest.raises(ConfigError, match="no jurisdiction registry yet"):
        store.current()
    release = conveyor.registry.current(Role.RELEASE, datetime.now(UTC))
    payload = first_registry().statement(now=datetime.now(UTC)).to_bytes()
    signed = sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, [conveyor.signer_for(release)])
    files(conveyor).mkdir(parents=True)
    (files(conveyor) / "registry.dsse.json").write_bytes(signed.to_bytes())
    with pytest.raises(
        VerificationError, match="log holds no jurisdiction registry signed by its release keys"
    ):
        store.current()


def test_versions_go_up_by_one_and_a_stale_change_is_refused(home: Home) -> None:
    issuer = RegistryIssuer.of_home(home)
    store = issuer.store
    v2 = store.current()
    for version in (2, 4, 1):
        skipped = JurisdictionRegistry(version=version, countries={**v2.countries, "IN": "CH"})
        with pytest.raises(ConfigError, match="the next version is v3"):
            store.issue(skipped, service=issuer.service, release=issuer.release)
    with pytest.raises(ConfigError, match="has a jurisdiction registry already"):
        issuer.init(default=SELF, countries={})
    assert len(log_entries(home)) == 3
    # Two changes made from v2: the first becomes v3, the second is refused instead of becoming v3 too.
    first, second = v2.with_changes({"IN": "CH"}), v2.with_changes({"CN": "CH"})
    store.issue(first, service=issuer.service, release=issuer.release)
    with pytest.raises(ConfigError, match="the next version is v4"):
        store.issue(second, service=issuer.service, release=issuer.release)
    assert store.current() == first and len(log_entries(home)) == 4


def test_issuing_waits_for_the_edit_lock(home: Home) -> None:
    issuer = RegistryIssuer.of_home(home)
    newer = issuer.store.current().with_changes({"IN": "CH"})
    with (
        issuer.store.editing(),
        pytest.raises(ConfigError, match="another command is issuing"),
    ):
        issuer.store.issue(newer, service=issuer.service, release=issuer.release, wait=0)
    assert len(log_entries(home)) == 3
    # Two threads issuing at once: one v3, and the other refused (it saw v3 once it had the lock).
    results: list[object] = []

    def issue(countries: dict[str, str]) -> None:
        try:
            results.append(
                issuer.store.issue(newer_from(countries), service=issuer.service, release=issuer.release)
            )
        except ConfigError as e:
            results.append(e)

    def newer_from(countries: dict[str, str]) -> JurisdictionRegistry:
        return JurisdictionRegistry(version=3, countries={**newer.countries, **countries})

    threads = [threading.Thread(target=issue, args=({c: "CH"},)) for c in ("CN", "RU")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(r).__name__ for r in results) == ["ConfigError", "StoredVersion"]
    versions = [
        Statement.from_bytes(Envelope.from_bytes(e).payload).predicate.get("version")
        for e in log_entries(home)
    ]
    assert versions.count(3) == 1


def test_versions_signed_by_keys_the_home_does_not_trust_count_for_nothing(
    home: Home, tmp_path: Path
) -> None:
    uri, key = generate_file_key(tmp_path, "ed25519")
    forged = JurisdictionRegistry(version=99, countries={"BR": "RU"})
    payload = forged.statement(now=datetime.now(UTC)).to_bytes()
    envelope = sign_envelope(
        payload, PAYLOAD_TYPE_IN_TOTO, [load_signer(uri, key, keys_dir=tmp_path, hsm=HsmConfig())]
    )
    home.log.append(envelope.to_bytes())  # anyone can append to a log (POST /add)
    store = registry_store(home)
    assert store.current().version == 2
    issued = RegistryIssuer.of_home(home).change({"IN": "CH"})[0]
    assert issued.registry.version == 3


def test_a_lost_or_forged_scan_mark_means_a_full_rescan(home: Home) -> None:
    store = registry_store(home)
    store.current()
    mark = store.mark_path
    recorded = json.loads(mark.read_text())
    assert [v["version"] for v in recorded["versions"]] == [1, 2]
    (files(home) / "registry.dsse.json").write_bytes((files(home) / "v1.dsse.json").read_bytes())
    mark.unlink()
    with pytest.raises(VerificationError, match="is v2"):
        store.current()
    forged = dict(recorded, root="00" * 32, versions=recorded["versions"][:1])  # "v1 is the newest"
    mark.write_text(json.dumps(forged))
    with pytest.raises(VerificationError, match="is v2"):
        store.current()
    mark.write_text("not a mark")
    with pytest.raises(VerificationError, match="is v2"):
        store.current()


def test_the_store_reads_only_its_own_log(home: Home, tmp_path: Path) -> None:
    """A store over another home's log does not trust this home's files (the log is the trust root)."""
    other = Home.init(tmp_path / "other", origin="other.example/log", jurisdiction="CH")
    store = RegistryStore(
        files(home),
        trusted=lambda: [home.registry.current(Role.RELEASE, datetime.now(UTC)).key],
        log=other.log.read,
        state=tmp_path / "state",
    )
    with pytest.raises(VerificationError, match="log holds no jurisdiction registry"):
        store.current()


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_the_scan_filter_finds_the_registry_type_at_every_offset(before: bytes, after: bytes) -> None:
    payload = before + RESIDENCY_REGISTRY_V1.encode() + after
    entry = Envelope(payload=payload, payload_type=PAYLOAD_TYPE_IN_TOTO).to_bytes()
    assert any(marker in entry for marker in RegistryStore.kind.predicate.markers)


def test_the_scan_filter_passes_over_the_builder_registry() -> None:
    for payload in (
        BUILDER_REGISTRY_V1.encode(),
        b"x" + BUILDER_REGISTRY_V1.encode(),
        b"xy" + BUILDER_REGISTRY_V1.encode(),
    ):
        entry = Envelope(payload=payload, payload_type=PAYLOAD_TYPE_IN_TOTO).to_bytes()
        assert not any(marker in entry for marker in RegistryStore.kind.predicate.markers)
