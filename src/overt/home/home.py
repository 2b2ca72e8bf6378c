"""The overt home: its layout (:mod:`overt.home.paths`), its configuration (:mod:`overt.home.config`), its key
registry, its logs by name (:mod:`overt.home.logs`) and the conveyor context its commands sign with.

Resolution order for the home: ``--home``, then ``$OVERT_HOME``, then ``./overt-home``.

A home's identity is fixed when it is made: its log's origin (pinned by the published checkpoint, see
:mod:`overt.tlog.guard`) and its conveyor's jurisdiction, pinned by the record of its log key, which
``overt init`` makes in that jurisdiction. A ``config.toml`` whose ``[conveyor] jurisdiction`` differs from
it is refused on open. The record is the home's own state, as ``config.toml`` is: an operator who edits both
gets past this check, and is seen by outsiders in the logged statements, which carry the jurisdiction
(docs/threat-model.md).

``overt init`` (:func:`init_home`) checks everything it is given before it writes anything, removes what it
wrote if it fails, refuses a directory holding part of a home without ``config.toml``, and refuses options
that differ from an existing home's settings.
"""

from __future__ import annotations

import os
import shutil
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overt.errors import ConfigError, FormatError, UsageError
from overt.home.config import DEFAULT_JURISDICTION, DEFAULT_ORIGIN, Config, ConveyorConfig, LogConfig
from overt.home.logs import HomeLog
from overt.home.paths import MAIN_LOG, HomePaths, check_log_name
from overt.keys.builders import BuilderStore, own_release_keys, release_keys
from overt.keys.context import ConveyorContext
from overt.keys.lifecycle import KeyHome
from overt.keys.registry import KeyRecord, Registry, Role, load_public_keys
from overt.keys.signers import HsmConfig, KeySigner, NoteSigner, generate_file_key, hsm_generate, load_signer
from overt.keys.signing import Appender, SigningService
from overt.source.escrow import Escrow
from overt.tlog.note import check_key_name

DEFAULT_HOME = Path("overt-home")


def resolve_home(home: Path | None) -> Path:
    if home is not None:
        return home
    env = os.environ.get("OVERT_HOME")
    return Path(env) if env else DEFAULT_HOME


def check_origin(origin: str) -> str:
    """A log origin: a signed-note key name (non-empty, no spaces, no '+') without control characters, which
    no checkpoint, note or policy line may carry."""
    check_key_name(origin)
    bad = next((c for c in origin if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise FormatError(f"invalid log origin {origin!r}: it holds the control character {ord(bad):#04x}")
    return origin


class Home:
    """An initialised overt home."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.paths = HomePaths(path)
        if not self.paths.config.exists():
            raise ConfigError(f"{path} is not an overt home (no config.toml); run 'overt init --home {path}'")
        self.config = Config.load(self.paths.config)
        self.conveyor = self.config.section("conveyor", ConveyorConfig)
        self.hsm = self.config.section("hsm", HsmConfig)
        self.registry = Registry(self.paths.key_registry, self.paths.public_keys)
        self.log = self.log_named(MAIN_LOG)
        self._check_jurisdiction()

    def _check_jurisdiction(self) -> None:
        """Refuse a ``[conveyor] jurisdiction`` other than the one the home was made in: its log key's."""
        made_in = self.log_key()
        if made_in.jurisdiction != self.conveyor.jurisdiction:
            raise ConfigError(
                f"{self.paths.config} says [conveyor] jurisdiction = {self.conveyor.jurisdiction!r}, but this "
                f"home was made in {made_in.jurisdiction} (the jurisdiction of its log key "
                f"{made_in.keyid[:16]}): a conveyor's jurisdiction cannot change once its home exists. Set it "
                f"back to {made_in.jurisdiction!r}, or make a new home for {self.conveyor.jurisdiction}",
                configured_jurisdiction=self.conveyor.jurisdiction,
                home_jurisdiction=made_in.jurisdiction,
                log_keyid=made_in.keyid,
            )

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

        Every setting is checked before anything is written; if a later step fails, what it wrote is removed
        (a key made on the token stays there, unregistered). A directory holding part of a home but no
        ``config.toml`` is refused.
        """
        paths = HomePaths(path)
        if paths.config.exists():
            return cls(path)
        log_config = config or LogConfig(origin=origin)
        check_origin(log_config.origin)
        settings = (
            Config.defaults()
            .replace("conveyor", ConveyorConfig(jurisdiction=jurisdiction))
            .replace("hsm", hsm or HsmConfig())
        )
        _check_no_partial_home(paths)
        with _removed_on_failure(path):
            paths.keys.mkdir(parents=True, exist_ok=True)
            os.chmod(paths.keys, 0o700)
            record = _new_log_key(
                paths,
                settings.section("hsm", HsmConfig),
                log_config.origin,
                jurisdiction,
                hsm_key=log_key_on_hsm,
            )
            log_config = replace(log_config, key=record.keyid)
            main = HomeLog(
                paths.log(MAIN_LOG),
                log_config,
                lambda: NoteSigner(log_config.origin, _load(paths, settings, record)),
            )
            main.create()
            main.publish()  # the size-0 checkpoint: witnesses and clients start from it
            # config.toml last: its presence is what makes the directory a home.
            settings.replace("log", log_config).write(paths.config)
        return cls(path)

    # -- logs by name ---------------------------------------------------------------------------------------

    def log_names(self) -> list[str]:
        return [MAIN_LOG, *sorted(self.config.named("logs", LogConfig))]

    def _config_of(self, name: str) -> LogConfig:
        if name == MAIN_LOG:
            return self.config.section("log", LogConfig)
        found = self.config.named("logs", LogConfig).get(check_log_name(name))
        if found is None:
            raise ConfigError(f"this home has no log {name!r} (its logs: {', '.join(self.log_names())})")
        return found

    def log_named(self, name: str) -> HomeLog:
        """The log called ``name``: ``main`` is the home's own; others are ``[logs.NAME]`` in config.toml."""
        config = self._config_of(name)
        return HomeLog(self.paths.log(name), config, lambda: self._log_signer(config))

    def add_log(
        self, name: str, *, origin: str, store: LogConfig | None = None, jurisdiction: str | None = None
    ) -> HomeLog:
        """Create a further log with its own Ed25519 log key, policy and size-0 checkpoint.

        The key's record names ``jurisdiction`` (default: the conveyor's): an access-transparency log's key is
        bound to the jurisdiction whose accesses it records (:mod:`overt.residency.accesslog`)."""
        check_log_name(name)
        check_origin(origin)
        if name in self.log_names():
            raise ConfigError(f"this home already has a log {name!r}")
        if any(self._config_of(n).origin == origin for n in self.log_names()):
            raise ConfigError(f"a log of this home already has the origin {origin!r}")
        config = self.config
        main = self._config_of(MAIN_LOG)
        if not main.key:  # a home from before logs had names: pin the main log's key before adding one
            config = config.replace("log", replace(main, key=self._log_key(main).keyid))
        self.paths.log(name).lock.parent.mkdir(parents=True, exist_ok=True)
        bound = self.conveyor.jurisdiction if jurisdiction is None else jurisdiction
        record = _new_log_key(self.paths, self.hsm, origin, bound, hsm_key=False)
        log_config = replace(store or LogConfig(), origin=origin, key=record.keyid)
        log = HomeLog(self.paths.log(name), log_config, lambda: self._log_signer(log_config))
        log.create()
        config.with_log(name, log_config).write(self.paths.config)
        self.config = Config.load(self.paths.config)
        log.publish()
        return log

    def _log_key(self, config: LogConfig) -> KeyRecord:
        logs = [r for r in self.registry.records() if r.role is Role.LOG]
        if config.key:
            chosen = [r for r in logs if r.keyid == config.key]
            if not chosen:
                raise ConfigError(f"the log key {config.key[:16]} of {config.origin} is not in keys/registry")
            return chosen[0]
        if len(logs) != 1:
            raise ConfigError(f"this home has {len(logs)} log keys in keys/registry; [log] key must name one")
        return logs[0]

    def _log_signer(self, config: LogConfig) -> NoteSigner:
        return NoteSigner(config.origin, self.signer_for(self._log_key(config)))

    # -- keys and signing -----------------------------------------------------------------------------------

    @property
    def escrow(self) -> Escrow:
        return Escrow(self.paths.escrow, self.conveyor.jurisdiction)

    def signer_for(self, record: KeyRecord) -> KeySigner:
        if not record.uri:
            raise ConfigError(f"key {record.keyid[:16]} has no private half in this home")
        return load_signer(record.uri, record.key, keys_dir=self.paths.keys, hsm=self.hsm)

    def log_key(self) -> KeyRecord:
        return self._log_key(self.log.config)

    def signing_service(
        self, now: Callable[[], datetime] | None = None, *, append: Appender | None = None
    ) -> SigningService:
        """Signing with this home's keys; entries go to its log directly, or through ``append`` (e.g. HTTP)."""
        return SigningService(
            load=self.signer_for,
            append=append or self.log.append,
            now=now or (lambda: datetime.now(UTC)),
            jurisdiction=self.conveyor.jurisdiction,
            builders=lambda: self.builder_store().load().mapping(),
        )

    def conveyor_context(
        self,
        *,
        auditor: bool = False,
        auditor_key: str | None = None,
        service: SigningService | None = None,
        now: datetime | None = None,
    ) -> ConveyorContext:
        """This conveyor's builder key (and auditor key, with ``auditor``: the one ``auditor_key`` names, else
        the one active auditor key), signing service and exact builder id: what its builds and AV databases
        are signed with."""
        at = now or datetime.now(UTC)
        return ConveyorContext(
            service=service or self.signing_service(),
            builder=self.registry.current(Role.BUILDER, at),
            builder_id=self.conveyor.provenance_builder_id,
            auditor=self._auditor(auditor_key, at) if auditor or auditor_key else None,
        )

    def _auditor(self, ref: str | None, at: datetime) -> KeyRecord:
        if ref is None:
            return self.registry.current(Role.AUDITOR, at)
        record = self.registry.get(ref)
        if record.role is not Role.AUDITOR or not record.uri or record.status(at) != "active":
            raise ConfigError(
                f"key {record.keyid[:16]} is not an active auditor signing key of this home "
                f"(role {record.role.value}, {record.status(at)})"
            )
        return record

    def key_home(self) -> KeyHome:
        """What key generation, import, rotation and the builder registry need of this home."""
        return KeyHome(
            registry=self.registry,
            keys_dir=self.paths.keys,
            hsm=self.hsm,
            jurisdiction=self.conveyor.jurisdiction,
            builder_id=self.conveyor.provenance_builder_id,
            builders=self.builder_store(),
        )

    def builder_store(self) -> BuilderStore:
        """The builder registry in ``public/builders/``, trusted only if this home's release key signed it and
        it is the newest version in this home's log (scanned with the mark ``builders-scan.json``)."""
        return BuilderStore(
            self.paths.builders,
            trusted=lambda: release_keys(self.registry.records(), self.conveyor.jurisdiction),
            log=self.log.read,
            state=self.path,
            own=lambda: own_release_keys(
                self.registry.records(), load_public_keys(sorted(self.paths.public_keys.glob("*.json")))
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeInit:
    """What ``overt init`` made, or found already there (``created`` False): the home, its main log's origin
    and vkey, its jurisdiction and its log key."""

    path: Path
    created: bool
    origin: str
    vkey: str
    jurisdiction: str
    log_key: KeyRecord

    @classmethod
    def of(cls, home: Home, *, created: bool) -> HomeInit:
        return cls(
            path=home.path,
            created=created,
            origin=home.log.config.origin,
            vkey=home.log.paths.vkey.read_text().strip(),
            jurisdiction=home.conveyor.jurisdiction,
            log_key=home.log_key(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.path),
            "created": self.created,
            "origin": self.origin,
            "vkey": self.vkey,
            "jurisdiction": self.jurisdiction,
            "log_keyid": self.log_key.keyid,
            "log_key_storage": self.log_key.storage,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InitOptions:
    """What ``overt init`` was asked for. ``None``: not given, which means the default for a new home and
    whatever an existing home has."""

    origin: str | None = None
    store: str | None = None
    postgres_dsn: str | None = None
    jurisdiction: str | None = None
    hsm_module: str | None = None
    hsm_token: str | None = None
    log_key: str | None = None  # where the log key lives: "file" or "hsm"

    def __post_init__(self) -> None:
        if self.log_key not in (None, "file", "hsm"):
            raise UsageError(f"--log-key must be file or hsm, not {self.log_key}")

    def conflicts(self, home: Home) -> list[str]:
        """Each given setting that differs from ``home``'s, as a user reads it (a DSN is never printed)."""
        log = home.log.config
        have = {
            "origin": log.origin,
            "store": log.store,
            "postgres_dsn": log.postgres_dsn,
            "jurisdiction": home.conveyor.jurisdiction,
            "hsm_module": home.hsm.module,
            "hsm_token": home.hsm.token,
            "log_key": "hsm" if home.log_key().storage == "hsm" else "file",
        }
        out = []
        for name, value in have.items():
            asked = getattr(self, name)
            if asked is None or asked == value:
                continue
            shown = "" if name == "postgres_dsn" else f" {asked!r} (the home's is {value!r})"
            out.append(f"--{name.replace('_', '-')}{shown}")
        return out

    def create(self, path: Path) -> Home:
        """A new home at ``path`` with these settings, defaults for those not given."""
        if self.log_key == "hsm" and not self.hsm_module:
            raise UsageError("--log-key hsm needs --hsm-module: the PKCS#11 library of the token")
        config = LogConfig(
            origin=self.origin or DEFAULT_ORIGIN,
            store=self.store or "sqlite",
            postgres_dsn=self.postgres_dsn or "",
        )
        return Home.init(
            path,
            config=config,
            jurisdiction=self.jurisdiction or DEFAULT_JURISDICTION,
            hsm=HsmConfig(module=self.hsm_module or "", token=self.hsm_token or ""),
            log_key_on_hsm=self.log_key == "hsm",
        )


def init_home(path: Path, options: InitOptions) -> HomeInit:
    """``overt init``: make the home at ``path``, or report the one there. Options given that differ from an
    existing home's settings are refused (an existing home is never changed by ``init``)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is not a directory: --home names the directory to create the home in")
    if not HomePaths(path).config.exists():
        return HomeInit.of(options.create(path), created=True)
    home = Home(path)
    conflicts = options.conflicts(home)
    if conflicts:
        raise UsageError(
            f"{path} is an overt home already, and 'overt init' never changes one; it differs in "
            f"{', '.join(conflicts)}. Leave those options out to see the home as it is, or give another --home"
        )
    return HomeInit.of(home, created=False)


def _check_no_partial_home(paths: HomePaths) -> None:
    """Refuse a directory that holds part of a home but no ``config.toml``: a new log there would stand
    beside the files of another."""
    main = paths.log(MAIN_LOG)
    parts = [paths.keys, paths.public, paths.root / "logs", main.policy, main.database, main.head, main.lock]
    found = [p.name for p in parts if p.exists()]
    if found:
        raise ConfigError(
            f"{paths.root} has no config.toml but holds {', '.join(found)}, which an overt home writes: an "
            "'overt init' that did not finish, a home whose config.toml was lost, or no place for a home. "
            "Nothing was changed: restore its config.toml from a backup, remove what an unfinished init left "
            "and run 'overt init' again, or give another --home",
            found=found,
        )


@contextmanager
def _removed_on_failure(path: Path) -> Iterator[None]:
    """Remove what the block wrote under ``path`` (and ``path`` itself if it made it) when the block fails."""
    before = set(path.iterdir()) if path.is_dir() else None
    try:
        yield
    except BaseException:
        for made in sorted(set(path.iterdir()) - (before or set())) if path.is_dir() else []:
            if made.is_dir() and not made.is_symlink():
                shutil.rmtree(made, ignore_errors=True)
            else:
                made.unlink(missing_ok=True)
        if before is None:
            with suppress(OSError):
                path.rmdir()
        raise


def _new_log_key(
    paths: HomePaths, hsm: HsmConfig, origin: str, jurisdiction: str, *, hsm_key: bool
) -> KeyRecord:
    if hsm_key:
        uri, key = hsm_generate(hsm, "ed25519", f"overt-log-{origin}")
    else:
        uri, key = generate_file_key(paths.keys, "ed25519")
    record = KeyRecord.create(
        key, role=Role.LOG, jurisdiction=jurisdiction, valid_from=datetime.now(UTC), valid_until=None, uri=uri
    )
    Registry(paths.key_registry, paths.public_keys).save(record)
    return record


def _load(paths: HomePaths, settings: Config, record: KeyRecord) -> KeySigner:
    return load_signer(record.uri, record.key, keys_dir=paths.keys, hsm=settings.section("hsm", HsmConfig))
