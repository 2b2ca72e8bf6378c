"""The overt home: ``config.toml``, keys, the SQLite database and the static ``public/`` tree.

Layout::

    <home>/config.toml        settings: [log] (:class:`LogConfig`), [conveyor] jurisdiction, [hsm] (PKCS#11)
    <home>/keys/registry/     private key records: role, jurisdiction, validity and signer URI (mode 0600)
    <home>/keys/<keyid>.pem   software private keys (``file2:``), mode 0600
    <home>/log-policy         the log's own tlog-policy: its key, its witnesses (with URLs), the quorum
    <home>/overt.db           SQLite: sequencing and indexes (only an index: the tiles are the truth)
    <home>/log-head           the last checkpoint the log key signed, written before any witness sees it
    <home>/log-fsck           the tree size the last sound fsck reached (incremental checks start there)
    <home>/log.lock           the writer lock (an flock; the home directory itself is locked too)
    <home>/log.server         while 'overt serve' runs: its URL, so conveyor commands append through it
    <home>/builders-scan.json how far the log was scanned for builder-registry versions (lost: full rescan)
    <home>/builders.lock      serialises edits of the builder registry
    <home>/public/log/        tlog-tiles tree, checkpoint, vkey and policy: serve it as static files
    <home>/public/keys/       one <keyid>.json per key: TUF key object plus role, jurisdiction, validity
    <home>/public/builders/   the builder registry (exact builder ids -> jurisdiction), signed by the release key

Resolution order for the home: ``--home``, then ``$OVERT_HOME``, then ``./overt-home``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from overt.atomic import atomic_write
from overt.errors import ConfigError, Error, FormatError, StorageError, TransportError
from overt.keys.builders import BuilderStore, check_builder_id, conveyor_builder_id, release_keys
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
from overt.tlog.client import submit_entry
from overt.tlog.guard import (
    FsckReport,
    Head,
    RecoverResult,
    check_open,
    fsck,
    known_heads,
    largest,
    recover,
    write_mark,
)
from overt.tlog.log import LocalLog, LogFiles, PublishResult
from overt.tlog.merkle import EMPTY_ROOT
from overt.tlog.note import check_key_name
from overt.tlog.policy import Policy, PolicyLog
from overt.tlog.sequencer import TileLog, stored_size
from overt.tlog.stores import LogState, PostgresStore, SequencerStore, SQLiteStore
from overt.writerlock import WriterLock, lock_is_held

DEFAULT_HOME = Path("overt-home")
DEFAULT_ORIGIN = "overt.example/log"
DEFAULT_JURISDICTION = "CH"
DEFAULT_BUILDER_ID = "https://overt.example/conveyor/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Unpublished:
    """An entry this process appended that no published checkpoint covers yet, and why."""

    index: int
    reason: str


_unpublished: list[Unpublished] = []


def unpublished() -> list[Unpublished]:
    """This process's appends that no published checkpoint covers yet. The CLI exits 2 while any remain:
    their entries are in the log, but nobody can verify them until ``overt log publish`` succeeds."""
    return list(_unpublished)


def is_published(index: int) -> bool:
    return all(u.index != index for u in _unpublished)


def append_through_server(url: str, entry: bytes, policy: Policy) -> LogReceipt:
    """Append through a running log server; its tlog-proof is verified under ``policy`` (the home's own).

    A 503 "unpublished" answer names the index the server gave the entry: the append happened, the
    publication did not (the server keeps retrying it).
    """
    with httpx.Client(timeout=120) as http:
        try:
            proof = submit_entry(url, entry, policy, http)
        except TransportError as e:
            index = e.evidence.get("index")
            if e.evidence.get("reason") == "unpublished" and isinstance(index, int):
                size = e.evidence.get("tree_size")
                _unpublished.append(Unpublished(index=index, reason=f"the log server at {url}: {e}"))
                return LogReceipt(
                    index=index, tree_size=size if isinstance(size, int) else index + 1, published=False
                )
            raise
    return LogReceipt(index=proof.index, tree_size=proof.checkpoint.checkpoint.tree_size, published=True)


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


def _section(cfg: Path, data: dict[str, Any], name: str, kind: type[Any]) -> Any:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{cfg}: [{name}] must be a table")
    known = {f.name for f in fields(kind)}
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"{cfg}: unknown [{name}] settings {', '.join(sorted(unknown))}")
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
        check_builder_id(self.builder_id)

    @property
    def provenance_builder_id(self) -> str:
        """The exact ``builder.id`` this conveyor's provenance carries (and its builder registry lists)."""
        return conveyor_builder_id(self.builder_id, self.jurisdiction)


CONFIG_HEADER = """\
# overt home configuration (see docs/operations.md).
# [log]       origin (the log's identity: never change it once published), store ("sqlite" or "postgres"),
#             postgres_dsn, batch_size (entries per integration), batch_interval (seconds a batch waits)
# [conveyor]  jurisdiction (ISO 3166-1, where this conveyor builds and signs), builder_id (SLSA builder.id;
#             the jurisdiction is added as a query)
# [hsm]       module (PKCS#11 library), token (label), pin_env (environment variable holding the user PIN)

"""


def _config_toml(log: LogConfig, conveyor: ConveyorConfig, hsm: HsmConfig) -> str:
    """config.toml, written by a TOML writer: any value (an origin with a quote, say) round-trips."""
    sections = {"log": asdict(log), "conveyor": asdict(conveyor), "hsm": asdict(hsm)}
    return CONFIG_HEADER + tomli_w.dumps(sections)


class Home:
    """An initialised overt home."""

    def __init__(self, path: Path) -> None:
        self.path = path
        cfg = path / "config.toml"
        if not cfg.exists():
            raise ConfigError(f"{path} is not an overt home (no config.toml); run 'overt init --home {path}'")
        try:
            data = tomllib.loads(cfg.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read {cfg}: {e}") from e
        unknown = set(data) - {"log", "conveyor", "hsm"}
        if unknown:
            raise ConfigError(f"{cfg}: unknown sections {', '.join(sorted(unknown))}")
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
        home = cls(path)
        home.publish_log()  # the size-0 checkpoint, as Tessera publishes: witnesses and clients start from it
        return home

    def publish_log(self) -> PublishResult:
        """Sign the current tree and publish it if the witness quorum cosigns (``overt log publish``)."""
        log = self.open_log()
        try:
            return log.publish()
        finally:
            log.close()

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
        """Append one entry durably and publish a checkpoint covering it.

        If the checkpoint cannot be published (witness quorum unmet) the entry stays appended, the receipt
        says ``published=False`` and :func:`unpublished` lists it: the command finishes what it does (so what
        it logged and what it saved agree) and the CLI exits 2.

        While ``overt serve`` holds this home's log, the entry goes through its ``POST /add`` instead, and the
        tlog-proof it answers is verified under this home's policy.
        """
        url = self.running_server()
        if url is not None:
            return append_through_server(url, entry, self.policy())
        log = self.open_log()
        try:
            (index,) = log.add([entry])
            result = log.publish()
        finally:
            log.close()
        size = result.checkpoint.checkpoint.tree_size
        if not result.published:
            failures = (
                "; ".join(f"{name}: {why}" for name, why in result.failures.items()) or "no cosignature"
            )
            reason = f"the witness quorum {log.policy.quorum!r} is not met ({failures})"
            _unpublished.append(Unpublished(index=index, reason=reason))
        return LogReceipt(index=index, tree_size=size, published=result.published)

    def signing_service(
        self, now: Callable[[], datetime] | None = None, *, append: Appender | None = None
    ) -> SigningService:
        """Signing with this home's keys; entries go to its log directly, or through ``append`` (e.g. HTTP)."""
        return SigningService(
            load=self.signer_for,
            append=append or self.append_to_log,
            now=now or (lambda: datetime.now(UTC)),
            jurisdiction=self.conveyor.jurisdiction,
            builders=lambda: self.builder_store().load().mapping(),
        )

    def builder_store(self) -> BuilderStore:
        """The builder registry in ``public/builders/``, trusted only if this home's release key signed it and
        it is the newest version in this home's log (scanned with the mark ``builders-scan.json``)."""
        return BuilderStore(
            self.public / "builders",
            trusted=lambda: release_keys(self.registry.records(), self.conveyor.jurisdiction),
            log=self.read_log,
            state=self.path,
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

    @property
    def log_files(self) -> LogFiles:
        return LogFiles(
            head=self.path / "log-head", fsck_mark=self.path / "log-fsck", intent=self.path / "log-intent"
        )

    @property
    def server_file(self) -> Path:
        """Written by a running ``overt serve``: the base URL conveyor commands append through."""
        return self.path / "log.server"

    def running_server(self) -> str | None:
        """The URL of the ``overt serve`` that holds this home's writer lock, if one does."""
        try:
            url = self.server_file.read_text().strip()
        except OSError:
            return None
        if not url.startswith(("http://", "https://")) or not lock_is_held(self.path / "log.lock"):
            return None
        return url

    def log_heads(self) -> list[Head]:
        """The checkpoints this log signed that live outside its database: published, and the saved head."""
        return known_heads(self.log_dir, self.log_files.head, self.log_signer().verifier())

    def read_log(self) -> LocalLog:
        """The log opened for reading proofs, without the writer lock (a running server may hold it)."""
        signer = self.log_signer()
        tiles = TileLog(self.log_dir, self.open_store(), durable=False)
        return LocalLog(
            tiles, signer, verifier=signer.verifier(), files=self.log_files, load_policy=self.policy
        )

    def fsck_log(self, *, full: bool = False) -> FsckReport:
        """Check every tile and bundle written since the last sound check (all of them with ``full``)."""
        heads = self.log_heads()
        store: SequencerStore | None = None
        problem = None
        try:
            store = self.open_store()
        except StorageError as e:
            problem = str(e)
        try:
            read = TileLog.reader_for(self.log_dir)
            return fsck(
                read, store, heads=heads, mark_path=self.log_files.fsck_mark, full=full, store_error=problem
            )
        finally:
            if store is not None:
                store.close()

    def recover_log(self, *, force: bool = False) -> RecoverResult:
        """Rebuild the sequencing database from the published tiles, verified against the log's head."""
        lock = WriterLock(self.path / "log.lock", wait=0)
        try:
            heads = self.log_heads()
            read = TileLog.reader_for(self.log_dir)
            if not force and self._database_agrees(heads):
                raise ConfigError(
                    "the log database agrees with what this log signed and published; nothing to recover "
                    "(use --force to rebuild it from the tiles anyway)"
                )
            head = largest(heads)
            size = self._recoverable_size(head.tree_size if head is not None else 0)
            result = recover(read, self._fresh_store, head, others=heads, tree_size=size)
            write_mark(self.log_files.fsck_mark, result.tree_size)
            return result
        finally:
            lock.release()

    def _recoverable_size(self, signed: int) -> int:
        """The tree the entry bundles hold from ``signed`` on, less a crashed batch's (named by its intent)."""
        stored = stored_size(self.log_dir, signed)
        try:
            crashed_from = int(self.log_files.intent.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return stored
        return max(signed, min(stored, crashed_from))

    def _database_agrees(self, heads: list[Head]) -> bool:
        try:
            store = self.open_store()
        except StorageError:
            return False
        try:
            if store.integrity_problems():
                return False
            state = store.load_state() or LogState(tree_size=0, root_hash=EMPTY_ROOT, peaks=())
            check_open(state, store, heads, directory=self.log_dir, intent=self.log_files.intent)
        except Error:
            return False
        finally:
            store.close()
        return True

    def _fresh_store(self) -> SequencerStore:
        """An empty store to recover into; a SQLite database is moved aside (kept for forensics), not deleted."""
        if self.log_config.store == "sqlite":
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            for suffix in ("", "-wal", "-shm"):
                old = self.path / f"overt.db{suffix}"
                if old.exists():
                    os.replace(old, self.path / f"overt.db.lost-{stamp}{suffix}")
        return self.open_store()

    def open_log(self, *, durable: bool = True, wait: float = 10.0, check: bool = True) -> LocalLog:
        """Open the log for appending; holds the home's writer lock until :meth:`LocalLog.close`.

        With ``check`` (always, except for ``overt log fsck`` and ``recover``) the database is compared with
        what the log signed and published, and refused if it is behind or forks (:mod:`overt.tlog.guard`).
        """
        lock = WriterLock(self.path / "log.lock", wait=wait)
        try:
            signer = self.log_signer()
            store = self.open_store()
            try:
                tiles = TileLog(self.log_dir, store, durable=durable, intent=self.log_files.intent)
            except (StorageError, FormatError) as e:
                store.close()
                raise StorageError(
                    f"cannot open the log: {e}; run 'overt log fsck' to see what is damaged"
                ) from e
            log = LocalLog(
                tiles,
                signer,
                verifier=signer.verifier(),
                files=self.log_files,
                load_policy=self.policy,
                on_close=lock.release,
            )
            if check:
                try:
                    log.check()
                except BaseException:
                    log.close()
                    raise
        except BaseException:
            lock.release()
            raise
        return log
