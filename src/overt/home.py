"""The overt home: ``config.toml``, keys, the SQLite database and the static ``public/`` tree.

Layout::

    <home>/config.toml        settings: [log] (:class:`LogConfig`), [conveyor] jurisdiction, [hsm] (PKCS#11)
    <home>/keys/registry/     private key records: role, jurisdiction, validity and signer URI (mode 0600)
    <home>/keys/<keyid>.pem   software private keys (``file2:``), mode 0600
    <home>/log-policy         the log's own tlog-policy: its key, its witnesses (with URLs), the quorum
    <home>/overt.db           SQLite: sequencing and indexes
    <home>/public/log/        tlog-tiles tree, checkpoint, vkey and policy: serve it as static files
    <home>/public/keys/       one <keyid>.json per key: TUF key object plus role, jurisdiction, validity

Resolution order for the home: ``--home``, then ``$OVERT_HOME``, then ``./overt-home``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overt.atomic import atomic_write
from overt.errors import ConfigError, FormatError
from overt.keys.registry import KeyRecord, Registry, Role, check_jurisdiction
from overt.keys.signers import (
    HsmConfig,
    KeySigner,
    NoteSigner,
    generate_file_key,
    hsm_generate,
    load_signer,
)
from overt.keys.signing import Appender, LogReceipt, SigningService
from overt.source.escrow import Escrow
from overt.tlog.log import LocalLog
from overt.tlog.note import check_key_name
from overt.tlog.policy import Policy, PolicyLog
from overt.tlog.sequencer import TileLog
from overt.tlog.stores import PostgresStore, SequencerStore, SQLiteStore
from overt.tlog.witness import WitnessClient
from overt.writerlock import WriterLock

DEFAULT_HOME = Path("overt-home")
DEFAULT_ORIGIN = "overt.example/log"
DEFAULT_JURISDICTION = "CH"
DEFAULT_BUILDER_ID = "https://overt.example/conveyor/v1"


def resolve_home(home: Path | None) -> Path:
    if home is not None:
        return home
    env = os.environ.get("OVERT_HOME")
    return Path(env) if env else DEFAULT_HOME


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    origin: str = DEFAULT_ORIGIN
    store: str = "sqlite"
    postgres_dsn: str = ""
    batch_size: int = 4096
    batch_interval: float = 0.05

    def __post_init__(self) -> None:
        if self.store not in ("sqlite", "postgres"):
            raise ConfigError(f"log.store must be 'sqlite' or 'postgres', not {self.store!r}")
        if self.store == "postgres" and not self.postgres_dsn:
            raise ConfigError("log.store is 'postgres' but log.postgres_dsn is empty")
        if not 1 <= self.batch_size <= 1 << 20:
            raise ConfigError("log.batch_size must be between 1 and 1048576")
        if not 0 <= self.batch_interval <= 60:
            raise ConfigError("log.batch_interval must be between 0 and 60 seconds")

    def to_toml(self) -> str:
        return (
            "[log]\n"
            f'origin = "{self.origin}"\n'
            f'store = "{self.store}"  # "sqlite" or "postgres"\n'
            f'postgres_dsn = "{self.postgres_dsn}"\n'
            f"batch_size = {self.batch_size}\n"
            f"batch_interval = {self.batch_interval}  # seconds\n"
        )


def _section(cfg: Path, data: dict[str, Any], name: str, kind: type[Any]) -> Any:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{cfg}: [{name}] must be a table")
    known = {f.name for f in fields(kind)}
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"{cfg}: unknown [{name}] settings {sorted(unknown)}")
    try:
        return kind(**section)
    except (TypeError, FormatError) as e:
        raise ConfigError(f"{cfg}: [{name}]: {e}") from e


@dataclass(frozen=True, slots=True, kw_only=True)
class ConveyorConfig:
    jurisdiction: str = DEFAULT_JURISDICTION
    builder_id: str = DEFAULT_BUILDER_ID

    def __post_init__(self) -> None:
        check_jurisdiction(self.jurisdiction)


def _config_toml(log: LogConfig, conveyor: ConveyorConfig, hsm: HsmConfig) -> str:
    return (
        log.to_toml()
        + "\n[conveyor]\n"
        + f'jurisdiction = "{conveyor.jurisdiction}"  # where this conveyor builds and signs (ISO 3166-1)\n'
        + f'builder_id = "{conveyor.builder_id}"  # SLSA builder.id (the jurisdiction is added as a query)\n'
        + "\n[hsm]  # PKCS#11 token for hsm: keys\n"
        + f'module = "{hsm.module}"  # e.g. /usr/lib/softhsm/libsofthsm2.so\n'
        + f'token = "{hsm.token}"  # token label\n'
        + f'pin_env = "{hsm.pin_env}"  # environment variable holding the user PIN\n'
    )


class Home:
    """An initialised overt home."""

    def __init__(self, path: Path) -> None:
        self.path = path
        cfg = path / "config.toml"
        if not cfg.exists():
            raise ConfigError(f"{path} is not an overt home (no config.toml); run 'overt init --home {path}'")
        try:
            data = tomllib.loads(cfg.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read {cfg}: {e}") from e
        unknown = set(data) - {"log", "conveyor", "hsm"}
        if unknown:
            raise ConfigError(f"{cfg}: unknown sections {sorted(unknown)}")
        self.log_config: LogConfig = _section(cfg, data, "log", LogConfig)
        self.conveyor: ConveyorConfig = _section(cfg, data, "conveyor", ConveyorConfig)
        self.hsm: HsmConfig = _section(cfg, data, "hsm", HsmConfig)
        self.registry = Registry(path / "keys" / "registry", self.public / "keys")

    @property
    def public(self) -> Path:
        return self.path / "public"

    @property
    def log_dir(self) -> Path:
        return self.public / "log"

    @property
    def policy_path(self) -> Path:
        return self.path / "log-policy"

    @property
    def escrow(self) -> Escrow:
        return Escrow(self.public / "escrow", self.conveyor.jurisdiction)

    @property
    def keys_dir(self) -> Path:
        return self.path / "keys"

    @classmethod
    def init(
        cls,
        path: Path,
        *,
        origin: str = DEFAULT_ORIGIN,
        config: LogConfig | None = None,
        jurisdiction: str = DEFAULT_JURISDICTION,
        hsm: HsmConfig | None = None,
        log_key_on_hsm: bool = False,
    ) -> Home:
        """Create a home (idempotent: an existing home is left as it is).

        The log key is an Ed25519 registry key of role ``log``: a software key, or one generated on the
        PKCS#11 token when ``log_key_on_hsm`` (the token must support CKM_EDDSA).
        """
        if (path / "config.toml").exists():
            return cls(path)
        check_key_name(origin)
        cfg = config or LogConfig(origin=origin)
        conveyor = ConveyorConfig(jurisdiction=jurisdiction)
        hsm = hsm or HsmConfig()
        (path / "keys").mkdir(parents=True, exist_ok=True)
        os.chmod(path / "keys", 0o700)
        (path / "public" / "log").mkdir(parents=True, exist_ok=True)
        if log_key_on_hsm:
            uri, key = hsm_generate(hsm, "ed25519", f"overt-log-{cfg.origin}")
        else:
            uri, key = generate_file_key(path / "keys", "ed25519")
        record = KeyRecord.create(
            key,
            role=Role.LOG,
            jurisdiction=jurisdiction,
            valid_from=datetime.now(UTC),
            valid_until=None,
            uri=uri,
        )
        Registry(path / "keys" / "registry", path / "public" / "keys").save(record)
        verifier = NoteSigner(
            cfg.origin, load_signer(uri, record.key, keys_dir=path / "keys", hsm=hsm)
        ).verifier()
        atomic_write(path / "public" / "log" / "vkey", (verifier.vkey() + "\n").encode())
        policy = Policy(logs=(PolicyLog(verifier=verifier),), quorum="none")
        atomic_write(path / "log-policy", policy.to_bytes())
        atomic_write(path / "public" / "log" / "policy", policy.to_bytes())
        # config.toml last: its presence is what makes the directory a home.
        atomic_write(path / "config.toml", _config_toml(cfg, conveyor, hsm).encode())
        return cls(path)

    def signer_for(self, record: KeyRecord) -> KeySigner:
        if not record.uri:
            raise ConfigError(f"key {record.keyid[:16]} has no private half in this home")
        return load_signer(record.uri, record.key, keys_dir=self.keys_dir, hsm=self.hsm)

    def log_key(self) -> KeyRecord:
        logs = [r for r in self.registry.records() if r.role is Role.LOG]
        if len(logs) != 1:
            raise ConfigError(f"this home has {len(logs)} log keys in keys/registry; it needs exactly one")
        return logs[0]

    def log_signer(self) -> NoteSigner:
        return NoteSigner(self.log_config.origin, self.signer_for(self.log_key()))

    def append_to_log(self, entry: bytes) -> LogReceipt:
        """Append one entry durably and publish a checkpoint if the witness quorum cosigns it."""
        log = self.open_log()
        try:
            (index,) = log.add([entry])
            result = log.publish()
        finally:
            log.close()
        return LogReceipt(
            index=index, tree_size=result.checkpoint.checkpoint.tree_size, published=result.published
        )

    def signing_service(
        self, now: Callable[[], datetime] | None = None, *, append: Appender | None = None
    ) -> SigningService:
        """Signing with this home's keys; entries go to its log directly, or through ``append`` (e.g. HTTP)."""
        return SigningService(
            load=self.signer_for, append=append or self.append_to_log, now=now or (lambda: datetime.now(UTC))
        )

    def policy(self) -> Policy:
        try:
            return Policy.from_bytes(self.policy_path.read_bytes())
        except OSError as e:
            raise ConfigError(f"cannot read {self.policy_path}: {e}") from e
        except FormatError as e:
            raise ConfigError(f"{self.policy_path}: {e}") from e

    def save_policy(self, policy: Policy) -> None:
        atomic_write(self.policy_path, policy.to_bytes())
        atomic_write(self.log_dir / "policy", policy.to_bytes())

    def open_store(self) -> SequencerStore:
        if self.log_config.store == "postgres":
            return PostgresStore(self.log_config.postgres_dsn)
        return SQLiteStore(self.path / "overt.db")

    def open_log(self, *, durable: bool = True, wait: float = 10.0) -> LocalLog:
        """Open the log for appending; holds the home's writer lock until :meth:`LocalLog.close`."""
        lock = WriterLock(self.path / "log.lock", wait=wait)
        try:
            policy = self.policy()
            signer = self.log_signer()
            witnesses = [WitnessClient(w.name, w.url) for w in policy.witnesses if w.url]
            tiles = TileLog(self.log_dir, self.open_store(), durable=durable)
        except BaseException:
            lock.release()
            raise
        return LocalLog(tiles, signer, policy, witnesses, on_close=lock.release)
