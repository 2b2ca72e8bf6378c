"""The overt home: ``config.toml``, keys, the SQLite database and the static ``public/`` tree.

Layout::

    <home>/config.toml        settings (see :class:`LogConfig`)
    <home>/keys/log.skey      the log's signed-note signer key (mode 0600)
    <home>/log-policy         the log's own tlog-policy: its key, its witnesses (with URLs), the quorum
    <home>/overt.db           SQLite: sequencing and indexes
    <home>/public/log/        tlog-tiles tree, checkpoint, vkey and policy: serve it as static files

Resolution order for the home: ``--home``, then ``$OVERT_HOME``, then ``./overt-home``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from overt.atomic import atomic_write
from overt.errors import ConfigError, FormatError
from overt.tlog.log import LocalLog
from overt.tlog.note import Ed25519Signer, check_key_name, generate_ed25519, parse_ed25519_skey
from overt.tlog.policy import Policy, PolicyLog
from overt.tlog.sequencer import TileLog
from overt.tlog.stores import PostgresStore, SequencerStore, SQLiteStore
from overt.tlog.witness import WitnessClient

DEFAULT_HOME = Path("overt-home")
DEFAULT_ORIGIN = "overt.example/log"


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
        section = data.get("log", {})
        known = set(LogConfig.__dataclass_fields__)
        unknown = set(section) - known
        if unknown:
            raise ConfigError(f"{cfg}: unknown [log] settings {sorted(unknown)}")
        try:
            self.log_config = LogConfig(**section)
        except TypeError as e:
            raise ConfigError(f"{cfg}: {e}") from e

    @property
    def public(self) -> Path:
        return self.path / "public"

    @property
    def log_dir(self) -> Path:
        return self.public / "log"

    @property
    def policy_path(self) -> Path:
        return self.path / "log-policy"

    @classmethod
    def init(cls, path: Path, *, origin: str = DEFAULT_ORIGIN, config: LogConfig | None = None) -> Home:
        """Create a home (idempotent: an existing home is left as it is)."""
        if (path / "config.toml").exists():
            return cls(path)
        check_key_name(origin)
        cfg = config or LogConfig(origin=origin)
        (path / "keys").mkdir(parents=True, exist_ok=True)
        os.chmod(path / "keys", 0o700)
        (path / "public" / "log").mkdir(parents=True, exist_ok=True)
        signer = generate_ed25519(cfg.origin)
        atomic_write(path / "keys" / "log.skey", (signer.skey() + "\n").encode(), mode=0o600)
        atomic_write(path / "public" / "log" / "vkey", (signer.verifier().vkey() + "\n").encode())
        policy = Policy(logs=(PolicyLog(verifier=signer.verifier()),), quorum="none")
        atomic_write(path / "log-policy", policy.to_bytes())
        atomic_write(path / "public" / "log" / "policy", policy.to_bytes())
        atomic_write(path / "config.toml", cfg.to_toml().encode())
        return cls(path)

    def log_signer(self) -> Ed25519Signer:
        try:
            return parse_ed25519_skey((self.path / "keys" / "log.skey").read_text())
        except OSError as e:
            raise ConfigError(f"cannot read the log key: {e}") from e

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

    def open_log(self, *, durable: bool = True) -> LocalLog:
        policy = self.policy()
        witnesses = [WitnessClient(w.name, w.url) for w in policy.witnesses if w.url]
        tiles = TileLog(self.log_dir, self.open_store(), durable=durable)
        return LocalLog(tiles, self.log_signer(), policy, witnesses)
