"""Tenants and their API tokens: the directory of ``<home>/residency/directory.db`` (SQLite, WAL).

A tenant is a customer: an id (``t-`` and 16 random lower-case hex digits), a unique name, its country, its
admin's Ed25519 public key and its home jurisdiction. The home jurisdiction is derived once, at creation, from
the country through the trusted current version of the jurisdiction registry
(:mod:`overt.residency.registry_store`), and recorded with that version's number. It never changes silently:

- creation is a statement in the main log (``residency-tenant/v1``, event ``created``: tenant id, country,
  home jurisdiction, registry version, admin keyid; not the name, which stays private), signed by the home's
  release key, so the home is publicly committed before the tenant exists;
- :meth:`Directory.move_home` is the only way it changes, for a tenant under migration, to the jurisdiction
  a newer logged registry version gives its country; each move is logged the same way (event ``moved``).

The statement is logged inside the directory's write transaction: a failure to log leaves no tenant behind.
(A crash between the log append and the commit leaves a logged tenant that the directory does not hold,
never the reverse.) Field names in the statement avoid the word "jurisdiction" for the reason given in
:mod:`overt.residency.registry`.

Tokens (:mod:`overt.residency.tokens`) are stored here as argon2id hashes, with when they were made and when
they stop; :meth:`Directory.authenticate` looks the token id up on every call, so a revocation by any process
is seen at its next use.

Owns the directory and its schema. Does not route, store telemetry or judge approvals; an admin key is loaded
here only far enough to store it and name it by keyid.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from overt.attest.statement import ResourceDescriptor, Statement, format_timestamp
from overt.errors import ConfigError, FormatError, PolicyError, StorageError
from overt.home import Home
from overt.keys.builders import release_keys
from overt.keys.jurisdiction import RESIDENCY_TENANT_V1, Issuer
from overt.keys.registry import Role
from overt.keys.signing import LogReceipt, SigningService
from overt.residency.countries import check_country, check_residency_jurisdiction
from overt.residency.registry_store import RegistryStore, registry_store
from overt.residency.tenant_ledger import TenantLedger, pending_move
from overt.residency.tokens import (
    AuthenticationError,
    NewToken,
    RevokedToken,
    TokenHasher,
    TokenInfo,
    TokenRotation,
    check_token_id,
    new_token,
    parse_token,
)

ACTIVE = "active"
MIGRATING = "migrating"
STATUSES = (ACTIVE, MIGRATING)
MAX_NAME = 128
MAX_ADMIN_KEY = 4096
_TENANT_ID = re.compile(r"t-[0-9a-f]{16}")
_ISSUER = Issuer(RESIDENCY_TENANT_V1)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, name_key TEXT NOT NULL UNIQUE, country TEXT NOT NULL,
    jurisdiction TEXT NOT NULL, registry_version INTEGER NOT NULL, admin_key TEXT NOT NULL,
    admin_keyid TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('active', 'migrating')),
    created TEXT NOT NULL, log_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS home_moves (
    tenant TEXT NOT NULL REFERENCES tenants(id), from_jurisdiction TEXT NOT NULL,
    to_jurisdiction TEXT NOT NULL, registry_version INTEGER NOT NULL, time TEXT NOT NULL,
    log_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id), hash TEXT NOT NULL,
    created TEXT NOT NULL, revoked TEXT
);
CREATE INDEX IF NOT EXISTS tokens_by_tenant ON tokens(tenant);
"""
_TENANT_COLUMNS = (
    "id, name, country, jurisdiction, registry_version, admin_key, admin_keyid, status, created, log_index"
)


# --- values -------------------------------------------------------------------------------------------------


def check_tenant_id(value: str) -> str:
    """A tenant id: ``t-`` and 16 lower-case hex digits."""
    if not isinstance(value, str) or not _TENANT_ID.fullmatch(value):
        raise FormatError(f"tenant id {value[:40]!r} is not t- and 16 lower-case hex digits")
    return value


def check_tenant_name(name: str) -> str:
    """1 to 128 characters, printable, without leading or trailing space."""
    if not 1 <= len(name) <= MAX_NAME or name != name.strip():
        raise FormatError(f"a tenant name has 1 to {MAX_NAME} characters and no leading or trailing space")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") for c in name):
        raise FormatError("a tenant name holds no control, format or unassigned characters")
    return name


def name_key(name: str) -> str:
    """What two names must not share: ``Acme`` and ``ＡＣＭＥ`` are one tenant's name."""
    return unicodedata.normalize("NFKC", name).casefold()


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminKey:
    """A tenant admin's Ed25519 public key: its PEM (SubjectPublicKeyInfo) and keyid, the SHA-256 of its DER."""

    pem: str
    keyid: str

    @classmethod
    def from_pem(cls, data: bytes) -> AdminKey:
        """Raises FormatError for anything but one Ed25519 public key in PEM."""
        if len(data) > MAX_ADMIN_KEY:
            raise FormatError(f"an admin public key file is at most {MAX_ADMIN_KEY} bytes")
        try:
            key = load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise FormatError(f"the admin key is not a PEM public key: {e}") from e
        if not isinstance(key, Ed25519PublicKey):
            raise FormatError("the admin key must be an Ed25519 public key")
        der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        return cls(pem=pem, keyid=hashlib.sha256(der).hexdigest())


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    """A tenant as the directory holds it. ``jurisdiction`` is its home; ``registry_version`` the registry
    version that placed it there; ``log_index`` the main-log entry of its creation."""

    id: str
    name: str
    country: str
    jurisdiction: str
    registry_version: int
    admin_key: str
    admin_keyid: str
    status: str
    created: str
    log_index: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "country": self.country,
            "jurisdiction": self.jurisdiction,
            "registry_version": self.registry_version,
            "admin_keyid": self.admin_keyid,
            "admin_key": self.admin_key,
            "status": self.status,
            "created": self.created,
            "log_index": self.log_index,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTenant:
    """A tenant just created, and whether a published checkpoint covers its creation entry yet."""

    tenant: Tenant
    published: bool

    def to_dict(self) -> dict[str, Any]:
        return {**self.tenant.to_dict(), "checkpoint_published": self.published}


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeMove:
    """A tenant's home changed: the tenant as it is now, where it was, and the logged entry of the move."""

    tenant: Tenant
    from_jurisdiction: str
    log_index: int
    published: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant.to_dict(),
            "from": self.from_jurisdiction,
            "to": self.tenant.jurisdiction,
            "registry_version": self.tenant.registry_version,
            "log_index": self.log_index,
            "checkpoint_published": self.published,
        }


# --- the directory ------------------------------------------------------------------------------------------

Record = Callable[[Statement], LogReceipt]  # signs a tenant statement and appends it to the main log


class Directory:
    """The tenants and tokens of one home.

    ``registry`` is the home's jurisdiction registry; ``record`` signs and logs a tenant statement; ``now`` is
    the clock; ``hasher`` hashes and verifies tokens (the argon2id parameters of
    :func:`overt.residency.tokens.token_password_hasher`); ``ledger`` checks every tenant handed out against the
    main log (:mod:`overt.residency.tenant_ledger`; None: not checked, for a directory whose statements go to
    no log).
    """

    def __init__(
        self,
        path: Path,
        *,
        registry: RegistryStore,
        record: Record,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        hasher: TokenHasher | None = None,
        ledger: TenantLedger | None = None,
    ) -> None:
        self.path = path
        self.registry = registry
        self.record = record
        self.now = now
        self.hasher = hasher or TokenHasher()
        self.ledger = ledger
        self._reader_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            try:
                db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
            except sqlite3.Error as e:
                raise StorageError(f"cannot set up the tenant directory {path}: {e}") from e
        self._reader = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the tenant directory {self.path}: {e}") from e
        return db

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on its own connection, taken at once (BEGIN IMMEDIATE)."""
        with closing(self._connect()) as db:
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except sqlite3.Error as e:
                db.rollback()
                raise StorageError(f"the tenant directory {self.path} failed: {e}") from e
            except BaseException:
                db.rollback()
                raise

    def _checked(self, row: tuple[Any, ...]) -> Tenant:
        """The tenant of ``row``, checked against the main log (TenantRecordError if they disagree)."""
        tenant = _tenant(row)
        return tenant if self.ledger is None else self.ledger.check(tenant)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._reader_lock:
                return self._reader.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the tenant directory {self.path}: {e}") from e

    # -- tenants ----------------------------------------------------------------------------------------------

    def create_tenant(self, name: str, country: str, admin_key: bytes) -> NewTenant:
        """A new tenant homed where the trusted registry's current version places ``country``; logged first.

        Raises:
            FormatError: the name, the country or the admin key (PEM) is malformed.
            ConfigError: the name is taken, or no registry was issued.
            VerificationError: the published registry is not the newest logged version.
        """
        check_tenant_name(name)
        check_country(country)
        key = AdminKey.from_pem(admin_key)
        registry = self.registry.current()
        home = registry.jurisdiction_of(country)
        with self._write() as db:
            taken = db.execute(
                "SELECT id, name FROM tenants WHERE name_key = ?", (name_key(name),)
            ).fetchone()
            if taken is not None:
                raise ConfigError(
                    f"a tenant named {taken[1]!r} exists already ({taken[0]}): tenant names are unique",
                    tenant=taken[0],
                )
            tenant_id = f"t-{secrets.token_hex(8)}"
            now = self.now()
            statement = _statement(
                "created",
                tenant_id,
                country=country,
                home=home,
                version=registry.version,
                key=key.keyid,
                now=now,
            )
            receipt = self.record(statement)
            tenant = Tenant(
                id=tenant_id,
                name=name,
                country=country,
                jurisdiction=home,
                registry_version=registry.version,
                admin_key=key.pem,
                admin_keyid=key.keyid,
                status=ACTIVE,
                created=format_timestamp(now),
                log_index=receipt.index,
            )
            db.execute(
                f"INSERT INTO tenants ({_TENANT_COLUMNS}, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*_row(tenant), name_key(name)),
            )
        return NewTenant(tenant=tenant, published=receipt.published)

    def tenant(self, tenant_id: str) -> Tenant:
        """The tenant ``tenant_id``; ConfigError if there is none."""
        rows = self._read(
            f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = ?", (check_tenant_id(tenant_id),)
        )
        if not rows:
            raise ConfigError(f"no tenant {tenant_id} in this home; see 'overt residency tenant list'")
        return self._checked(rows[0])

    def find(self, ref: str) -> Tenant:
        """The tenant with id ``ref``, or else the one named ``ref``."""
        if _TENANT_ID.fullmatch(ref):
            return self.tenant(ref)
        rows = self._read(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE name_key = ?", (name_key(ref),))
        if not rows:
            raise ConfigError(f"no tenant with the id or name {ref[:MAX_NAME]!r} in this home")
        return self._checked(rows[0])

    def tenants(self) -> list[Tenant]:
        return [
            self._checked(r) for r in self._read(f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY name_key")
        ]

    def set_status(self, tenant_id: str, status: str) -> Tenant:
        if status not in STATUSES:
            raise FormatError(f"a tenant's status is {' or '.join(STATUSES)}, not {status[:20]!r}")
        with self._write() as db:
            updated = db.execute(
                "UPDATE tenants SET status = ? WHERE id = ?", (status, check_tenant_id(tenant_id))
            )
            if updated.rowcount != 1:
                raise ConfigError(f"no tenant {tenant_id} in this home")
        return self.tenant(tenant_id)

    def move_home(self, tenant_id: str, to_jurisdiction: str, *, registry_version: int) -> HomeMove:
        """Move a migrating tenant's home to ``to_jurisdiction``, as registry version ``registry_version``
        (logged and trusted, newer than the version that placed it) gives its country; logged first.

        Raises:
            PolicyError: the tenant is not migrating, or that version does not justify this move.
            ConfigError: no such tenant or registry version.
            VerificationError: that version's published file is not its logged envelope.
        """
        check_residency_jurisdiction(to_jurisdiction)
        registry = self.registry.version(registry_version)
        with self._write() as db:
            rows = db.execute(
                f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = ?", (check_tenant_id(tenant_id),)
            )
            found = rows.fetchone()
            if found is None:
                raise ConfigError(f"no tenant {tenant_id} in this home")
            tenant = self._checked(found)
            _check_move(tenant, to_jurisdiction, registry_version, registry.jurisdiction_of(tenant.country))
            now = self.now()
            logged = None if self.ledger is None else self.ledger.newest(tenant.id)
            statement = _statement(
                "moved",
                tenant.id,
                country=tenant.country,
                home=to_jurisdiction,
                version=registry_version,
                key=tenant.admin_keyid,
                now=now,
                moved_from=tenant.jurisdiction,
            )
            if (
                pending_move(tenant, logged)
                and logged is not None
                and (
                    logged.home,
                    logged.registry_version,
                )
                == (to_jurisdiction, registry_version)
            ):
                # Logged before a crash that came before the commit: recorded now, not logged twice.
                assert self.ledger is not None
                receipt = LogReceipt(
                    index=logged.index,
                    tree_size=logged.index + 1,
                    published=self.ledger.published_size > logged.index,
                )
            else:
                receipt = self.record(statement)
            db.execute(
                "UPDATE tenants SET jurisdiction = ?, registry_version = ? WHERE id = ?",
                (to_jurisdiction, registry_version, tenant.id),
            )
            db.execute(
                "INSERT INTO home_moves VALUES (?, ?, ?, ?, ?, ?)",
                (
                    tenant.id,
                    tenant.jurisdiction,
                    to_jurisdiction,
                    registry_version,
                    format_timestamp(now),
                    receipt.index,
                ),
            )
        moved = replace(tenant, jurisdiction=to_jurisdiction, registry_version=registry_version)
        return HomeMove(
            tenant=moved,
            from_jurisdiction=tenant.jurisdiction,
            log_index=receipt.index,
            published=receipt.published,
        )

    # -- tokens -----------------------------------------------------------------------------------------------

    def create_token(self, tenant_id: str) -> NewToken:
        """A new API token for the tenant. Its secret is in the result and nowhere else."""
        tenant = self.tenant(tenant_id)
        token_id, token = new_token()
        digest = self.hasher.hash(token)
        created = format_timestamp(self.now())
        with self._write() as db:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, NULL)", (token_id, tenant.id, digest, created))
        return NewToken(info=TokenInfo(token_id=token_id, tenant=tenant.id, created=created), token=token)

    def tokens(self, tenant_id: str) -> list[TokenInfo]:
        rows = self._read(
            "SELECT token_id, tenant, created, revoked FROM tokens WHERE tenant = ? ORDER BY created, token_id",
            (check_tenant_id(tenant_id),),
        )
        return [TokenInfo(token_id=r[0], tenant=r[1], created=r[2], revoked=r[3]) for r in rows]

    def revoke_token(self, token_id: str) -> RevokedToken:
        """Stop ``token_id`` authenticating from now on, in every process (a revocation already in force is
        left as it is)."""
        check_token_id(token_id)
        now = self.now()
        with self._write() as db:
            row = db.execute(
                "SELECT token_id, tenant, created, revoked FROM tokens WHERE token_id = ?", (token_id,)
            )
            found = row.fetchone()
            if found is None:
                raise ConfigError(f"no API token {token_id} in this home")
            info = TokenInfo(token_id=found[0], tenant=found[1], created=found[2], revoked=found[3])
            if info.revoked_at(now):
                return RevokedToken(info=info, already=True)
            revoked = format_timestamp(now)
            db.execute("UPDATE tokens SET revoked = ? WHERE token_id = ?", (revoked, token_id))
        return RevokedToken(info=replace(info, revoked=revoked), already=False)

    def rotate_tokens(self, tenant_id: str, *, grace: timedelta = timedelta(0)) -> TokenRotation:
        """A new token for the tenant; every other token of it stops authenticating after ``grace``."""
        if grace < timedelta(0):
            raise FormatError("a grace period cannot be negative")
        tenant = self.tenant(tenant_id)
        token_id, token = new_token()
        digest = self.hasher.hash(token)
        now = self.now()
        created, until = format_timestamp(now), format_timestamp(now + grace)
        with self._write() as db:
            rows = db.execute(
                "SELECT token_id, tenant, created, revoked FROM tokens "
                "WHERE tenant = ? AND (revoked IS NULL OR revoked > ?)",
                (tenant.id, until),
            ).fetchall()
            db.execute(
                "UPDATE tokens SET revoked = ? WHERE tenant = ? AND (revoked IS NULL OR revoked > ?)",
                (until, tenant.id, until),
            )
            db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, NULL)", (token_id, tenant.id, digest, created))
        revoked = tuple(TokenInfo(token_id=r[0], tenant=r[1], created=r[2], revoked=until) for r in rows)
        new = NewToken(info=TokenInfo(token_id=token_id, tenant=tenant.id, created=created), token=token)
        return TokenRotation(new=new, revoked=revoked)

    def authenticate(self, token: str) -> Tenant:
        """The tenant ``token`` belongs to, if it is a valid, unrevoked token of this directory.

        Raises:
            AuthenticationError: the token is malformed, unknown, revoked or has a wrong secret.
            StorageError: the directory cannot be read, or holds a damaged hash.
        """
        token_id = parse_token(token)
        rows = self._read(
            f"SELECT k.hash, k.revoked, {', '.join('t.' + c.strip() for c in _TENANT_COLUMNS.split(','))} "
            "FROM tokens k JOIN tenants t ON t.id = k.tenant WHERE k.token_id = ?",
            (token_id,),
        )
        if not rows:
            raise AuthenticationError("unknown API token", reason="unknown", token_id=token_id)
        stored, revoked, *tenant_row = rows[0]
        if revoked is not None and datetime.fromisoformat(revoked) <= self.now():
            raise AuthenticationError(
                f"API token {token_id} was revoked at {revoked}", reason="revoked", token_id=token_id
            )
        self.hasher.verify(token, token_id=token_id, stored=stored)
        if self.hasher.hasher.check_needs_rehash(stored):
            self._rehash(token, token_id, stored)
        return self._checked(tuple(tenant_row))

    def _rehash(self, token: str, token_id: str, stored: str) -> None:
        """Store a verified token's hash again with today's parameters, so that a wrong secret for its id
        costs what it costs for any other (the old parameters were dearer); a concurrent revocation or
        rotation wins (the row is updated only while it still holds ``stored``)."""
        fresh = self.hasher.hash(token)
        with self._write() as db:
            db.execute(
                "UPDATE tokens SET hash = ? WHERE token_id = ? AND hash = ?", (fresh, token_id, stored)
            )


def _check_move(tenant: Tenant, to: str, version: int, placed: str) -> None:
    """Refuse a home move that is not a migration, or that registry version ``version`` does not justify."""
    evidence = {"tenant": tenant.id, "country": tenant.country, "registry_version": version}
    if tenant.status != MIGRATING:
        raise PolicyError(
            f"tenant {tenant.id} is {tenant.status}: its home changes only while it is migrating", **evidence
        )
    if to == tenant.jurisdiction:
        raise PolicyError(f"tenant {tenant.id} is homed in {to} already", **evidence)
    if version <= tenant.registry_version:
        raise PolicyError(
            f"jurisdiction registry v{version} is not newer than v{tenant.registry_version}, which placed "
            f"tenant {tenant.id} in {tenant.jurisdiction}",
            **evidence,
        )
    if placed != to:
        raise PolicyError(
            f"jurisdiction registry v{version} places {tenant.country} in {placed}, not {to}: the move of "
            f"tenant {tenant.id} is not justified",
            **evidence,
        )


def _statement(
    event: str,
    tenant_id: str,
    *,
    country: str,
    home: str,
    version: int,
    key: str,
    now: datetime,
    moved_from: str = "",
) -> Statement:
    predicate: dict[str, Any] = {
        "event": event,
        "tenant": tenant_id,
        "country": country,
        "home": home,
        "registryVersion": version,
        "adminKeyid": key,
        "time": format_timestamp(now),
    }
    if moved_from:
        predicate["from"] = moved_from
    return Statement(
        subject=(ResourceDescriptor(name=f"tenant/{tenant_id}", digest={"sha256": key}),),
        predicate_type=RESIDENCY_TENANT_V1,
        predicate=predicate,
    )


def _row(t: Tenant) -> tuple[Any, ...]:
    return (
        t.id, t.name, t.country, t.jurisdiction, t.registry_version, t.admin_key, t.admin_keyid, t.status,
        t.created, t.log_index,
    )  # fmt: skip


def _tenant(row: tuple[Any, ...]) -> Tenant:
    names = [c.strip() for c in _TENANT_COLUMNS.split(",")]
    return Tenant(**dict(zip(names, row, strict=True)))


# --- a home's directory -----------------------------------------------------------------------------------


def open_directory(
    home: Home, *, service: SigningService | None = None, release_key: str | None = None
) -> Directory:
    """``home``'s tenant directory; tenant statements are signed by ``release_key`` (default: the one active
    release key, chosen when a statement is made) through ``service`` (default: the home's)."""
    signing = service or home.signing_service()

    def record(statement: Statement) -> LogReceipt:
        release = (
            home.registry.get(release_key)
            if release_key is not None
            else home.registry.current(Role.RELEASE, signing.now())
        )
        return signing.issue(release, statement, issuer=_ISSUER).receipt

    ledger = TenantLedger(
        home.log.read, lambda: release_keys(home.registry.records(), home.conveyor.jurisdiction)
    )
    return Directory(
        home.paths.residency / "directory.db",
        registry=registry_store(home),
        record=record,
        now=signing.now,
        ledger=ledger,
    )
