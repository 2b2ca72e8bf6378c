"""Tenants and their API tokens: homes derived from the trusted registry and logged, moves only as a newer
logged version justifies them, argon2id tokens that are revoked everywhere at once."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from overt.attest.dsse import Envelope
from overt.attest.statement import Statement, format_timestamp
from overt.attest.verify import verify_statement
from overt.errors import ConfigError, FormatError, PolicyError, VerificationError
from overt.home import Home
from overt.keys.jurisdiction import RESIDENCY_TENANT_V1
from overt.keys.registry import Role
from overt.residency.registry import SELF
from overt.residency.registry_store import RegistryIssuer
from overt.residency.tenants import ACTIVE, MIGRATING, Directory, open_directory
from overt.residency.tokens import AuthenticationError
from overt.tlog.client import LogClient, directory_fetcher


def admin_pem() -> bytes:
    return (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


def log_entries(h: Home) -> list[bytes]:
    client = LogClient(directory_fetcher(h.log.paths.public), h.log.policy())
    return client.entries(client.update().checkpoint.checkpoint.tree_size)


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def home(conveyor: Home) -> Home:
    """The conveyor home (CH, a release key) with jurisdiction registry v1, the promise."""
    RegistryIssuer.of_home(conveyor).init(default=SELF, countries={})
    return conveyor


@pytest.fixture
def directory(home: Home) -> Directory:
    return open_directory(home)


def test_a_tenant_is_homed_by_the_current_registry_and_its_creation_is_logged(
    home: Home, directory: Directory
) -> None:
    pem = admin_pem()
    de = directory.create_tenant("Globex", "DE", pem).tenant
    br = directory.create_tenant("Acme", "BR", pem).tenant
    assert (de.jurisdiction, de.registry_version, de.status) == ("CH", 1, ACTIVE)
    assert (br.jurisdiction, br.registry_version) == ("BR", 1)
    assert de.id.startswith("t-") and len(de.id) == 18 and de.id != br.id
    assert de.admin_keyid == hashlib.sha256(_der(pem)).hexdigest()  # SHA-256 of the DER SubjectPublicKeyInfo
    assert directory.tenant(de.id) == de and directory.find("Globex") == de
    assert [t.name for t in directory.tenants()] == ["Acme", "Globex"]
    # The creation entry: signed by the release key, naming id, country, home, version and admin key, not the name.
    release = home.registry.current(Role.RELEASE, datetime.now(UTC))
    entry = log_entries(home)[de.log_index]
    statement = verify_statement(Envelope.from_bytes(entry), [release.key])
    assert statement.predicate_type == RESIDENCY_TENANT_V1
    predicate = dict(statement.predicate)
    del predicate["time"]
    assert predicate == {
        "event": "created",
        "tenant": de.id,
        "country": "DE",
        "home": "CH",
        "registryVersion": 1,
        "adminKeyid": de.admin_keyid,
    }
    assert b"Globex" not in Envelope.from_bytes(entry).payload
    # A later registry version places new tenants; existing ones keep their home.
    RegistryIssuer.of_home(home).change({"BR": "CH"})
    assert directory.create_tenant("Initech", "BR", pem).tenant.jurisdiction == "CH"
    assert directory.tenant(br.id).jurisdiction == "BR"


def _der(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pem).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _p256_pem() -> bytes:
    return (
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


def _private_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@pytest.mark.parametrize(
    ("name", "country", "key", "error", "message"),
    [
        ("Acme", "XX", admin_pem, FormatError, "not an officially assigned"),
        ("Acme", "de", admin_pem, FormatError, "upper case: DE"),
        ("Acme", "UK", admin_pem, FormatError, "not an officially assigned"),
        ("Acme", "DE", _p256_pem, FormatError, "must be an Ed25519 public key"),
        ("Acme", "DE", _private_pem, FormatError, "not a PEM public key"),
        (
            "Acme",
            "DE",
            lambda: b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            FormatError,
            "PEM",
        ),
        ("", "DE", admin_pem, FormatError, "1 to 128 characters"),
        (" Acme", "DE", admin_pem, FormatError, "leading or trailing space"),
        ("Ac\nme", "DE", admin_pem, FormatError, "control"),
        ("Ac\u200bme", "DE", admin_pem, FormatError, "control, format"),
        ("x" * 129, "DE", admin_pem, FormatError, "1 to 128"),
    ],
)
def test_bad_tenants_are_refused_and_nothing_is_logged(
    home: Home,
    directory: Directory,
    name: str,
    country: str,
    key: Callable[[], bytes],
    error: type[Exception],
    message: str,
) -> None:
    size = len(log_entries(home))
    with pytest.raises(error, match=message):
        directory.create_tenant(name, country, key())
    assert len(log_entries(home)) == size and directory.tenants() == []


@pytest.mark.parametrize("again", ["Acme", "ACME", "acme", "\uff21cme"])  # the last with a fullwidth A
def test_a_tenant_name_is_used_once(home: Home, directory: Directory, again: str) -> None:
    first = directory.create_tenant("Acme", "DE", admin_pem()).tenant
    size = len(log_entries(home))
    with pytest.raises(ConfigError, match=f"exists already \\({first.id}\\)"):
        directory.create_tenant(again, "BR", admin_pem())
    assert len(log_entries(home)) == size and len(directory.tenants()) == 1


def test_no_tenant_is_placed_by_a_registry_in_doubt(home: Home, directory: Directory) -> None:
    RegistryIssuer.of_home(home).change({"BR": "CH"})
    public = home.paths.residency_registry
    (public / "registry.dsse.json").write_bytes((public / "v1.dsse.json").read_bytes())  # BR back to BR
    size = len(log_entries(home))
    with pytest.raises(
        VerificationError, match="newest jurisdiction registry version in this home's log is v2"
    ):
        directory.create_tenant("Acme", "BR", admin_pem())
    assert len(log_entries(home)) == size and directory.tenants() == []


def test_a_home_moves_only_as_a_newer_logged_version_justifies(home: Home, directory: Directory) -> None:
    tenant = directory.create_tenant("Acme", "BR", admin_pem()).tenant
    RegistryIssuer.of_home(home).change({"BR": "CH"})  # v2
    RegistryIssuer.of_home(home).change({"IN": "CH"})  # v3
    size = len(log_entries(home))
    with pytest.raises(PolicyError, match="is active: its home changes only while it is migrating"):
        directory.move_home(tenant.id, "CH", registry_version=2)
    directory.set_status(tenant.id, MIGRATING)
    with pytest.raises(PolicyError, match="v2 places BR in CH, not EU"):
        directory.move_home(tenant.id, "EU", registry_version=2)
    with pytest.raises(PolicyError, match="v1 is not newer than v1"):
        directory.move_home(tenant.id, "CH", registry_version=1)
    with pytest.raises(PolicyError, match="homed in BR already"):
        directory.move_home(tenant.id, "BR", registry_version=3)
    with pytest.raises(ConfigError, match="no jurisdiction registry v4"):
        directory.move_home(tenant.id, "CH", registry_version=4)
    with pytest.raises(FormatError):
        directory.move_home(tenant.id, "Switzerland", registry_version=2)
    assert len(log_entries(home)) == size and directory.tenant(tenant.id).jurisdiction == "BR"
    moved = directory.move_home(tenant.id, "CH", registry_version=2)
    assert (moved.from_jurisdiction, moved.tenant.jurisdiction, moved.tenant.registry_version) == (
        "BR",
        "CH",
        2,
    )
    assert directory.tenant(tenant.id) == moved.tenant
    statement = Statement.from_bytes(Envelope.from_bytes(log_entries(home)[moved.log_index]).payload)
    assert statement.predicate_type == RESIDENCY_TENANT_V1
    assert {k: statement.predicate[k] for k in ("event", "tenant", "from", "home", "registryVersion")} == {
        "event": "moved",
        "tenant": tenant.id,
        "from": "BR",
        "home": "CH",
        "registryVersion": 2,
    }
    with pytest.raises(FormatError, match="status is active or migrating"):
        directory.set_status(tenant.id, "gone")


def test_a_move_by_a_replayed_version_file_is_refused(home: Home, directory: Directory) -> None:
    tenant = directory.create_tenant("Acme", "BR", admin_pem()).tenant
    RegistryIssuer.of_home(home).change({"BR": "CH"})
    directory.set_status(tenant.id, MIGRATING)
    public = home.paths.residency_registry
    (public / "v2.dsse.json").write_bytes((public / "v1.dsse.json").read_bytes())
    with pytest.raises(VerificationError, match=r"v2\.dsse\.json holds jurisdiction registry v1"):
        directory.move_home(tenant.id, "CH", registry_version=2)
    assert directory.tenant(tenant.id).jurisdiction == "BR"


# --- tokens -----------------------------------------------------------------------------------------------


def test_a_token_authenticates_its_tenant_and_its_secret_is_never_stored(
    home: Home, directory: Directory
) -> None:
    tenant = directory.create_tenant("Acme", "DE", admin_pem()).tenant
    new = directory.create_token(tenant.id)
    assert new.token.startswith(f"ovt_{new.info.token_id}_") and len(new.token) == 4 + 16 + 1 + 43
    assert new.token not in repr(new)
    assert directory.authenticate(new.token) == tenant
    assert directory.authenticate(new.token) == tenant  # from the cache of verified tokens
    secret = new.token[len("ovt_") + 16 + 1 :]
    for path in home.paths.residency.glob("directory.db*"):
        data = path.read_bytes()
        assert new.token.encode() not in data and secret.encode() not in data
    assert [t.token_id for t in directory.tokens(tenant.id)] == [new.info.token_id]


def test_a_right_id_with_a_wrong_secret_is_refused_even_after_the_right_one_was_cached(
    directory: Directory,
) -> None:
    tenant = directory.create_tenant("Acme", "DE", admin_pem()).tenant
    new = directory.create_token(tenant.id)
    directory.authenticate(new.token)
    forged = new.token[:22] + ("A" if new.token[22] != "A" else "B") + new.token[23:]
    with pytest.raises(AuthenticationError, match="unknown API token") as e:
        directory.authenticate(forged)
    assert e.value.reason == "wrong-secret" and e.value.exit_code == 1


@pytest.mark.parametrize(
    "token",
    [
        "",
        "ovt_",
        "ovt_0123456789abcdef",
        "ovt_0123456789abcdef_" + "A" * 42,
        "ovt_0123456789abcdef_" + "A" * 44,
        "ovt_0123456789ABCDEF_" + "A" * 43,
        "OVT_0123456789abcdef_" + "A" * 43,
        "ovt_0123456789abcdef_" + "A" * 42 + "=",
        "ovt_0123456789abcdef_" + "A" * 42 + "\n",
        "Bearer ovt_0123456789abcdef_" + "A" * 43,
        "ovt_0123456789abcdef_" + "A" * 42 + "\u0410",  # Cyrillic A
    ],
)
def test_malformed_tokens_are_refused(directory: Directory, token: str) -> None:
    with pytest.raises(AuthenticationError, match="not an overt API token") as e:
        directory.authenticate(token)
    assert e.value.reason == "malformed"


def test_an_unknown_token_is_refused(directory: Directory) -> None:
    with pytest.raises(AuthenticationError, match="unknown API token") as e:
        directory.authenticate("ovt_0123456789abcdef_" + "A" * 43)
    assert e.value.reason == "unknown"


def test_a_revocation_by_another_process_is_seen_at_once(home: Home, directory: Directory) -> None:
    tenant = directory.create_tenant("Acme", "DE", admin_pem()).tenant
    new = directory.create_token(tenant.id)
    directory.authenticate(new.token)  # verified and cached in this process
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "overt",
            "residency",
            "token",
            "revoke",
            new.info.token_id,
            "--home",
            str(home.path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    with pytest.raises(AuthenticationError, match=f"API token {new.info.token_id} was revoked at") as e:
        directory.authenticate(new.token)
    assert e.value.reason == "revoked"
    again = directory.revoke_token(new.info.token_id)
    assert again.already
    with pytest.raises(ConfigError, match="no API token 0000000000000000"):
        directory.revoke_token("0000000000000000")
    with pytest.raises(FormatError, match="16 lower-case hex digits"):
        directory.revoke_token("ovt_x")


def test_rotation_makes_a_new_token_and_revokes_the_old_after_the_grace_period(home: Home) -> None:
    clock = Clock()
    directory = open_directory(home, service=home.signing_service(now=clock))
    tenant = directory.create_tenant("Acme", "DE", admin_pem()).tenant
    old = [directory.create_token(tenant.id), directory.create_token(tenant.id)]
    rotation = directory.rotate_tokens(tenant.id, grace=timedelta(minutes=5))
    assert {t.token_id for t in rotation.revoked} == {t.info.token_id for t in old}
    for token in (*old, rotation.new):
        assert directory.authenticate(token.token) == tenant  # within the grace period
    clock.at += timedelta(minutes=5)
    for token in old:
        with pytest.raises(AuthenticationError, match=f"was revoked at {format_timestamp(clock.at)}"):
            directory.authenticate(token.token)
    assert directory.authenticate(rotation.new.token) == tenant
    # Without grace, the previous token stops at once.
    now = directory.rotate_tokens(tenant.id)
    assert [t.token_id for t in now.revoked] == [rotation.new.info.token_id]
    with pytest.raises(AuthenticationError, match="was revoked"):
        directory.authenticate(rotation.new.token)
    assert directory.authenticate(now.new.token) == tenant
    with pytest.raises(FormatError, match="cannot be negative"):
        directory.rotate_tokens(tenant.id, grace=timedelta(seconds=-1))


def test_tokens_of_an_unknown_tenant(directory: Directory) -> None:
    with pytest.raises(ConfigError, match="no tenant t-0000000000000000"):
        directory.create_token("t-0000000000000000")
    with pytest.raises(FormatError, match="16 lower-case hex digits"):
        directory.create_token("t-XYZ")
    with pytest.raises(ConfigError, match="no tenant with the id or name"):
        directory.find("nobody")


def test_the_directory_is_shared_by_two_openers(home: Home) -> None:
    first, second = open_directory(home), open_directory(home)
    tenant = first.create_tenant("Acme", "DE", admin_pem()).tenant
    token = second.create_token(tenant.id)
    assert first.authenticate(token.token) == tenant
    with pytest.raises(ConfigError, match="exists already"):
        second.create_tenant("acme", "DE", admin_pem())


def test_a_token_hashed_with_older_parameters_is_rehashed_once_it_verifies(home: Home) -> None:
    """An id whose hash is dearer to check than the dummy would tell itself apart by timing; once its token
    verifies, its hash is stored again with today's parameters."""
    from argon2 import PasswordHasher

    from overt.residency.tokens import TokenHasher, token_password_hasher

    old = PasswordHasher()  # argon2-cffi's defaults: 64 MiB, 3 passes
    with open_directory(home) as d:
        acme = d.create_tenant("Acme", "DE", admin_pem()).tenant
        d.hasher = TokenHasher(old)
        made = d.create_token(acme.id)
    stored = lambda: _stored_hash(home, made.info.token_id)  # noqa: E731
    assert token_password_hasher().check_needs_rehash(stored())
    with open_directory(home) as d:
        assert d.authenticate(made.token).id == acme.id
    assert not token_password_hasher().check_needs_rehash(stored())
    with open_directory(home) as d:
        assert d.authenticate(made.token).id == acme.id  # the new hash verifies


def _stored_hash(home: Home, token_id: str) -> str:
    import sqlite3

    db = sqlite3.connect(home.paths.residency / "directory.db")
    try:
        return str(db.execute("SELECT hash FROM tokens WHERE token_id = ?", (token_id,)).fetchone()[0])
    finally:
        db.close()
