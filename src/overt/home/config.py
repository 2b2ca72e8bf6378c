"""``config.toml``: a registry of sections, each a frozen dataclass, read with tomllib and written with tomli-w.

A section is registered once with its name, its dataclass and a line of documentation
(:func:`register_section`); the file is then read and written from the registry, so a later capability adds
its settings by registering a section, not by editing the reader. A section registered ``named`` is a table
of tables (``[logs.access-ch]``), one value per name. Unknown sections and settings are refused: a typo never
silently means a default. Any value round-trips, an origin with a quote included.

The built-in sections::

    [log]       the home's own log (:class:`LogConfig`)
    [logs.N]    further logs by name, e.g. one access-transparency log per jurisdiction
    [conveyor]  where this conveyor builds and signs (:class:`ConveyorConfig`)
    [hsm]       the PKCS#11 token (:class:`~overt.keys.signers.HsmConfig`)
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import tomli_w

from overt.atomic import atomic_write
from overt.errors import ConfigError, FormatError
from overt.keys.builders import check_builder_id, conveyor_builder_id
from overt.keys.registry import check_jurisdiction
from overt.keys.signers import HsmConfig
from overt.tlog.note import check_key_name

DEFAULT_ORIGIN = "overt.example/log"
DEFAULT_JURISDICTION = "CH"
DEFAULT_BUILDER_ID = "https://overt.example/conveyor/v1"

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """One log: its identity (``origin``, never changed once published), its key, its store and batching."""

    origin: str = DEFAULT_ORIGIN
    key: str = ""  # keyid of its log key in keys/registry; empty: the home's only log key
    store: str = "sqlite"
    postgres_dsn: str = ""
    batch_size: int = 4096
    batch_interval: float = 0.05

    def __post_init__(self) -> None:
        check_key_name(self.origin)
        if self.store not in ("sqlite", "postgres"):
            raise ConfigError(f"log.store must be 'sqlite' or 'postgres', not {self.store!r}")
        if self.store == "postgres" and not self.postgres_dsn:
            raise ConfigError("log.store is 'postgres' but log.postgres_dsn is empty")
        if not 1 <= self.batch_size <= 1 << 20:
            raise ConfigError("log.batch_size must be between 1 and 1048576")
        if not 0 <= self.batch_interval <= 60:
            raise ConfigError("log.batch_interval must be between 0 and 60 seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConveyorConfig:
    """Where this conveyor builds and signs, and the SLSA ``builder.id`` it names itself by."""

    jurisdiction: str = DEFAULT_JURISDICTION
    builder_id: str = DEFAULT_BUILDER_ID

    def __post_init__(self) -> None:
        check_jurisdiction(self.jurisdiction)
        check_builder_id(self.builder_id)

    @property
    def provenance_builder_id(self) -> str:
        """The exact ``builder.id`` this conveyor's provenance carries (and its builder registry lists)."""
        return conveyor_builder_id(self.builder_id, self.jurisdiction)


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    name: str
    kind: type[Any]  # a frozen dataclass whose fields are the settings, all with defaults
    doc: str
    named: bool = False  # a table of tables, one value per name
    names: tuple[str, ...] = ()  # for a named section: the names it may hold (empty: any)


_SECTIONS: dict[str, Section] = {}
# Modules that register sections of their own: imported before any config.toml is read or written, so that
# every process knows every section, whichever parts of overt it imported.
PROVIDERS = ("overt.distribute.config", "overt.residency.config", "overt.residency.ratelimit")


def register_section(
    name: str, kind: type[Any], doc: str, *, named: bool = False, names: tuple[str, ...] = ()
) -> Section:
    """Add a section to every home's ``config.toml``; registering the same name twice is refused."""
    if name in _SECTIONS:
        raise ConfigError(f"config section [{name}] is registered twice")
    if not is_dataclass(kind):
        raise ConfigError(f"config section [{name}] needs a dataclass, not {kind.__name__}")
    section = Section(name=name, kind=kind, doc=doc, named=named, names=names)
    _SECTIONS[name] = section
    return section


def sections() -> tuple[Section, ...]:
    for module in PROVIDERS:
        importlib.import_module(module)
    return tuple(_SECTIONS.values())


register_section(
    "log",
    LogConfig,
    "origin (the log's identity: never change it once published), key (keyid of the log key), "
    'store ("sqlite" or "postgres"), postgres_dsn, batch_size (entries per integration), '
    "batch_interval (seconds a batch waits)",
)
register_section(
    "logs", LogConfig, "further logs by name ([logs.NAME]), with the settings of [log]", named=True
)
register_section(
    "conveyor",
    ConveyorConfig,
    "jurisdiction (ISO 3166-1, where this conveyor builds and signs), builder_id (SLSA builder.id; the "
    "jurisdiction is added as a query)",
)
register_section(
    "hsm",
    HsmConfig,
    "module (PKCS#11 library), token (label), pin_env (environment variable holding the PIN)",
)


# What a setting of each plain type must hold in TOML, and how a message names it. An int is not a bool
# (TOML's true is no count), and a float setting takes an int (``batch_interval = 1``).
_PLAIN_TYPES: dict[Any, tuple[tuple[type, ...], str]] = {
    str: ((str,), "a string"),
    int: ((int,), "an integer"),
    float: ((float, int), "a number"),
    bool: ((bool,), "true or false"),
}


def _check_types(where: str, label: str, kind: type[Any], table: dict[str, Any]) -> None:
    """Each setting of ``table`` holds its field's type (str, int, float, bool), before ``kind`` is built:
    a constructor would take ``batch_size = true`` as 1, or fail on ``jurisdiction = 5`` with a Python
    message. Fields of other types are left to the dataclass."""
    hints = get_type_hints(kind)
    for name, value in table.items():
        if hints.get(name) not in _PLAIN_TYPES:
            continue
        accepted, spelled = _PLAIN_TYPES[hints[name]]
        wrong_bool = isinstance(value, bool) and bool not in accepted
        if wrong_bool or not isinstance(value, accepted):
            raise ConfigError(f"{where}: {label} {name} must be {spelled}")


def _value(where: str, label: str, kind: type[T], table: object) -> T:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {label} must be a table")
    known = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown {label} settings {', '.join(sorted(unknown))}")
    _check_types(where, label, kind, table)
    try:
        return kind(**table)
    except (TypeError, FormatError) as e:
        raise ConfigError(f"{where}: {label}: {e}") from e


@dataclass(frozen=True, slots=True)
class Config:
    """The parsed ``config.toml``: one value per section (defaults where the file has none)."""

    values: Mapping[str, Any]  # section name -> dataclass, or for a named section name -> {name: dataclass}

    @classmethod
    def defaults(cls) -> Config:
        return cls({s.name: {} if s.named else s.kind() for s in sections()})

    @classmethod
    def parse(cls, text: str, *, where: str = "config.toml") -> Config:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"cannot read {where}: {e}") from e
        unknown = set(data) - {s.name for s in sections()}
        if unknown:
            raise ConfigError(f"{where}: unknown sections {', '.join(sorted(unknown))}")
        values = dict(cls.defaults().values)
        for name, table in data.items():
            s = _SECTIONS[name]
            if not s.named:
                values[name] = _value(where, f"[{name}]", s.kind, table)
                continue
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: [{name}] must be a table of tables")
            plain = sorted(n for n, t in table.items() if not isinstance(t, dict))
            if plain:
                raise ConfigError(
                    f"{where}: [{name}] must hold tables [{name}.NAME], not a setting such as {plain[0]}"
                )
            strays = sorted(set(table) - set(s.names)) if s.names else []
            if strays:
                raise ConfigError(f"{where}: [{name}.{strays[0]}] is not one of {', '.join(s.names)}")
            values[name] = {n: _value(where, f"[{name}.{n}]", s.kind, t) for n, t in table.items()}
        return cls(values)

    @classmethod
    def load(cls, path: Path) -> Config:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from e
        return cls.parse(text, where=str(path))

    def section(self, name: str, kind: type[T]) -> T:
        value = self.values[name]
        if not isinstance(value, kind):
            raise ConfigError(f"config section [{name}] is not a {kind.__name__}")
        return value

    def named(self, name: str, kind: type[T]) -> dict[str, T]:
        table = self.values[name]
        return {n: v for n, v in table.items() if isinstance(v, kind)}

    def replace(self, name: str, value: object) -> Config:
        """This configuration with section ``name`` set to ``value`` (a dataclass, or a dict for a named one)."""
        if name not in _SECTIONS:
            raise ConfigError(f"no config section [{name}] is registered")
        return Config({**self.values, name: value})

    def with_log(self, name: str, log: LogConfig) -> Config:
        return self.replace("logs", {**self.named("logs", LogConfig), name: log})

    def dumps(self) -> str:
        lines = ["# overt home configuration (see docs/operations.md)."]
        lines += [f"# [{s.name}{'.NAME' if s.named else ''}]  {s.doc}" for s in sections()]
        tables: dict[str, Any] = {}
        for s in sections():
            value = self.values[s.name]
            if s.named:
                if value:
                    tables[s.name] = {n: asdict(v) for n, v in value.items()}
            else:
                tables[s.name] = asdict(value)
        return "\n".join(lines) + "\n\n" + tomli_w.dumps(tables)

    def write(self, path: Path) -> None:
        atomic_write(path, self.dumps().encode())
