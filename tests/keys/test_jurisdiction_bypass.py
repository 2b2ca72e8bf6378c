"""A CH conveyor refuses every statement that names another jurisdiction, every builder id its builder registry
does not map to CH, every reserved type asked for through plain signing, and every key from elsewhere; and
each refusal is a log entry, read back here from the log with its inclusion verified.

The hostile statements are data (tests/keys/bypass_cases.py); the CLI cases run ``overt`` as a user would.
Run them all with::

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/keys/test_jurisdiction_bypass.py
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from overt.attest.dsse import Envelope
from overt.attest.statement import Statement
from overt.errors import FormatError, PolicyError
from overt.home import Home
from overt.keys.jurisdiction import SIGNING_REFUSAL_V1
from overt.keys.registry import KeyRecord, Role
from overt.keys.rotation import rotate
from overt.keys.signers import generate_file_key
from overt.keys.signing import SigningService
from overt.tlog.client import LogClient, directory_fetcher
from tests.cli.test_cli import overt
from tests.keys.bypass_cases import CASES, CLAIM, FOREIGN_KEY, OWN_BUILDER, RESERVED, Case, own_provenance
from tests.samples import provenance_statement, register_builders

CLI_CASES = [
    "rotation-outside-key",
    "query-case-duplicate",
    "escrow-record",
    "builder-registry",
    "lookalike-key-cyrillic-o",
    "json-object-in-a-string",
    "vsa-lookalike-key",
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    h = Home.init(tmp_path_factory.mktemp("bypass") / "ch", origin="ch.example/log", jurisdiction="CH")
    # A release key; the builder registry lists the home's own builder id.
    _planted[(str(h.path), Role.RELEASE, "CH")] = register_builders(h)
    assert h.builder_store().load().mapping() == {OWN_BUILDER: "CH"}
    return h


_planted: dict[tuple[str, Role, str], KeyRecord] = {}


def planted_key(h: Home, role: Role, jurisdiction: str = "CH") -> KeyRecord:
    """A key written straight into the home's registry, as someone with file access could (the CLI refuses
    to make a key outside the conveyor's jurisdiction)."""
    slot = (str(h.path), role, jurisdiction)
    if slot not in _planted:
        uri, key = generate_file_key(h.paths.keys, "ecdsa" if role is Role.AUDITOR else "ed25519")
        start = datetime.now(UTC) - timedelta(minutes=1)
        record = KeyRecord.create(
            key, role=role, jurisdiction=jurisdiction, valid_from=start, valid_until=None, uri=uri
        )
        h.registry.save(record)
        _planted[slot] = record
    return _planted[slot]


def log_entries(h: Home) -> list[bytes]:
    c = LogClient(directory_fetcher(h.log.paths.public), h.log.policy())
    return c.entries(c.update().checkpoint.checkpoint.tree_size)


def assert_refusal_logged(h: Home, record: KeyRecord, statement: Statement, index: int, reason: str) -> None:
    """The log entry at ``index`` is an unsigned refusal by ``record`` of exactly ``statement``, included under
    the published checkpoint; and no entry of the log is ``statement`` signed."""
    c = LogClient(directory_fetcher(h.log.paths.public), h.log.policy())
    tree = c.update()
    entries = c.entries(tree.checkpoint.checkpoint.tree_size)
    c.verify_inclusion(entries[index], index, tree.checkpoint)
    refusal = Envelope.from_bytes(entries[index])
    assert refusal.signatures == ()
    note = Statement.from_bytes(refusal.payload)
    assert note.predicate_type == SIGNING_REFUSAL_V1
    assert note.predicate["keyid"] == record.keyid
    assert note.predicate["refusedPredicateType"] == statement.predicate_type
    assert [dict(s.digest) for s in note.subject] == [
        {"sha256": hashlib.sha256(statement.to_bytes()).hexdigest()}
    ]
    assert reason in note.predicate["reason"], note.predicate["reason"]
    signed = [Envelope.from_bytes(e) for e in entries]
    assert not any(e.signatures and e.payload == statement.to_bytes() for e in signed)


def service_for(h: Home, case: Case) -> SigningService:
    if case.builders is None:
        return h.signing_service()
    registry = dict(case.builders)
    return SigningService(
        load=h.signer_for,
        append=h.log.append,
        now=lambda: datetime.now(UTC),
        jurisdiction=h.conveyor.jurisdiction,
        builders=lambda: registry,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_statement_is_refused_and_the_refusal_logged(home: Home, case: Case) -> None:
    record = planted_key(home, Role(case.role), case.key_jurisdiction)
    statement = case.build(record.keyid)
    with pytest.raises(PolicyError, match=r"^refused: ") as e:
        service_for(home, case).sign(record, statement)
    assert case.reason in str(e.value)
    assert_refusal_logged(home, record, statement, e.value.evidence["refusal_logged_at"], case.reason)


def test_rotating_a_foreign_key_is_refused_and_logged(home: Home) -> None:
    old = planted_key(home, Role.BUILDER, "RU")
    uri, key = generate_file_key(home.paths.keys, "ed25519")
    now = datetime.now(UTC)
    draft = KeyRecord.create(
        key, role=Role.BUILDER, jurisdiction="RU", valid_from=now, valid_until=None, uri=uri
    )
    with pytest.raises(PolicyError, match=FOREIGN_KEY) as e:
        rotate(home.signing_service(), home.registry, old, new_uri=uri, new_key_record=draft, reason="move")
    index = e.value.evidence["refusal_logged_at"]
    note = Statement.from_bytes(Envelope.from_bytes(log_entries(home)[index]).payload)
    assert note.predicate["refusedPredicateType"] == "https://overt.dev/attestation/key-rotation/v1"
    assert note.predicate["keyid"] == old.keyid and FOREIGN_KEY in note.predicate["reason"]
    assert home.registry.get(old.keyid).rotated_to == ""  # nothing moved
    assert all(r.keyid != draft.keyid for r in home.registry.records())


def cli_refusal(h: Home, statement_file: Path, keyid: str) -> int:
    r = overt("attest", "sign", str(statement_file), "--key", keyid, "--home", str(h.path), "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    err = json.loads(r.stderr)
    assert err["error"] == "PolicyError" and err["message"].startswith("refused: ")
    return int(err["evidence"]["refusal_logged_at"])


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_attest_sign_on_the_command_line_refuses_and_logs(home: Home, tmp_path: Path, case_id: str) -> None:
    case = next(c for c in CASES if c.id == case_id)
    record = planted_key(home, Role(case.role), case.key_jurisdiction)
    statement = case.build(record.keyid)
    path = tmp_path / "statement.json"
    path.write_bytes(statement.to_bytes())
    index = cli_refusal(home, path, record.keyid)
    assert_refusal_logged(home, record, statement, index, case.reason)


def test_a_ch_home_does_not_generate_an_ru_key_and_a_planted_one_does_not_sign(
    home: Home, tmp_path: Path
) -> None:
    keys_before = sorted(p.name for p in home.paths.keys.iterdir())
    r = overt("keys", "generate", "--role", "builder", "--jurisdiction", "RU", "--home", str(home.path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "this conveyor signs only in CH" in r.stderr and "keys import --public" in r.stderr
    assert sorted(p.name for p in home.paths.keys.iterdir()) == keys_before  # no key material made
    # Written in by hand instead, the RU key still signs nothing: RU provenance is refused, and logged.
    ru = planted_key(home, Role.BUILDER, "RU")
    statement = provenance_statement("RU")
    path = tmp_path / "ru.json"
    path.write_bytes(statement.to_bytes())
    index = cli_refusal(home, path, ru.keyid)
    assert_refusal_logged(home, ru, statement, index, FOREIGN_KEY)


def test_an_imported_foreign_key_verifies_but_never_signs(home: Home, tmp_path: Path) -> None:
    # An RU conveyor signs RU provenance from its own registered builder.
    ru_home = Home.init(tmp_path / "ru", origin="ru.example/log", jurisdiction="RU")
    register_builders(ru_home)
    ru_builder = planted_key(ru_home, Role.BUILDER, "RU")
    ru_statement = provenance_statement("RU")
    doc = ru_statement.to_dict()
    doc["predicate"]["runDetails"]["builder"]["id"] = ru_home.conveyor.provenance_builder_id
    ru_statement = Statement.from_dict(doc)
    envelope = tmp_path / "ru.dsse.json"
    envelope.write_bytes(ru_home.signing_service().sign(ru_builder, ru_statement).entry)
    public = ru_home.paths.public / "keys" / f"{ru_builder.keyid}.json"

    H = ("--home", str(home.path))
    r = overt("keys", "import", "--public", str(public), *H)
    assert r.returncode == 0, r.stderr
    assert "in jurisdiction RU, for verification only" in r.stdout
    assert not (home.paths.public / "keys" / f"{ru_builder.keyid}.json").exists()  # not published as ours
    r = overt("attest", "verify", str(envelope), "--key", str(public))
    assert r.returncode == 0 and "ok" in r.stdout
    r = overt(
        "keys", "import", "--role", "builder", "--uri", "file2:/nonexistent.pem", "--jurisdiction", "RU", *H
    )
    assert r.returncode == 1 and "this conveyor signs only in CH" in r.stderr

    imported = home.registry.get(ru_builder.keyid)
    assert imported.uri == "" and imported.jurisdiction == "RU"
    path = tmp_path / "statement.json"
    path.write_bytes(ru_statement.to_bytes())
    index = cli_refusal(home, path, ru_builder.keyid)
    assert_refusal_logged(home, imported, ru_statement, index, FOREIGN_KEY)


@pytest.mark.parametrize(
    ("builder_id", "jurisdiction", "reason"),
    [
        ("https://builder.ru.example/conveyor", "RU", CLAIM),
        ("https://builder.example/conveyor?jurisdiction=RU", "CH", CLAIM),
    ],
    ids=["registered-to-RU", "claim-in-the-registered-id"],
)
def test_the_release_key_does_not_register_a_foreign_builder(
    home: Home, builder_id: str, jurisdiction: str, reason: str
) -> None:
    release = planted_key(home, Role.RELEASE)
    before = home.builder_store().load()
    r = overt(
        "keys",
        "builders",
        "add",
        builder_id,
        "--jurisdiction",
        jurisdiction,
        "--home",
        str(home.path),
        "--json",
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    err = json.loads(r.stderr)
    index = int(err["evidence"]["refusal_logged_at"])
    note = Statement.from_bytes(Envelope.from_bytes(log_entries(home)[index]).payload)
    assert note.predicate["keyid"] == release.keyid and reason in note.predicate["reason"]
    assert note.predicate["refusedPredicateType"] == "https://overt.dev/attestation/builder-registry/v1"
    assert home.builder_store().load() == before
    assert RESERVED not in note.predicate["reason"]  # issued by its own command, refused for what it says


# --- requests that are not strictly a statement: refused, and the refusal logged, by the digest of the bytes


def _raw(doc: dict, *replacements: tuple[str, str]) -> bytes:
    text = json.dumps(doc, sort_keys=True)
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode()


def _with(**fields: object) -> dict:
    doc = own_provenance()
    doc.update(fields)
    return doc


def _subject_field() -> dict:
    doc = own_provenance()
    doc["subject"][0]["jurisdiction"] = "RU"
    return doc


RAW_CASES = {
    "duplicate-jurisdiction-keys": (
        _raw(own_provenance(), ('"jurisdiction": "CH"', '"jurisdiction": "RU", "jurisdiction": "CH"')),
        "duplicate JSON key 'jurisdiction'",
    ),
    "duplicate-builder-id": (
        _raw(own_provenance(), ('"id": ', '"id": "https://builder.ru.example/b", "id": ')),
        "duplicate JSON key 'id'",
    ),
    "statement-v0.1": (
        _raw(_with(_type="https://in-toto.io/Statement/v0.1")),
        "expected 'https://in-toto.io/Statement/v1'",
    ),
    "unknown-top-level-field": (
        _raw(_with(jurisdiction="RU")),
        "does not know, which it would not sign: 'jurisdiction'",
    ),
    "unknown-subject-field": (_raw(_subject_field()), "subject[0] has fields this signer does not know"),
    "not-json": (b"jurisdiction=RU", "is not valid JSON"),
    "no-subject": (_raw(_with(subject=[])), "statement has no subject"),
}


@pytest.mark.parametrize("case_id", list(RAW_CASES))
def test_attest_sign_refuses_and_logs_what_is_not_strictly_a_statement(
    home: Home, tmp_path: Path, case_id: str
) -> None:
    data, reason = RAW_CASES[case_id]
    record = planted_key(home, Role.BUILDER)
    path = tmp_path / "request.json"
    path.write_bytes(data)
    before = log_entries(home)
    index = cli_refusal(home, path, record.keyid)
    entries = log_entries(home)
    assert index == len(before) and len(entries) == len(before) + 1  # the refusal, and nothing signed
    c = LogClient(directory_fetcher(home.log.paths.public), home.log.policy())
    c.verify_inclusion(entries[index], index, c.update().checkpoint)
    refusal = Envelope.from_bytes(entries[index])
    assert refusal.signatures == ()
    note = Statement.from_bytes(refusal.payload)
    assert note.predicate_type == SIGNING_REFUSAL_V1 and note.predicate["keyid"] == record.keyid
    assert [dict(s.digest) for s in note.subject] == [{"sha256": hashlib.sha256(data).hexdigest()}]
    assert note.predicate["refusedPredicateType"] == "" and note.predicate["refusedSubject"] == []
    assert reason in note.predicate["reason"], note.predicate["reason"]


def test_a_statement_with_unknown_fields_still_verifies_as_someone_elses() -> None:
    data = _raw(_with(jurisdiction="RU"))
    assert (
        Statement.from_bytes(data).to_dict() == own_provenance()
    )  # in-toto: consumers ignore unknown fields
    with pytest.raises(FormatError, match="fields this signer does not know"):
        Statement.from_bytes(data, strict=True)
    Statement.from_bytes(_raw(own_provenance()), strict=True)
