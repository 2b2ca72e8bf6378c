"""Where each jurisdiction's telemetry store lives: the ``[jurisdictions.J]`` tables of ``config.toml``.

::

    [jurisdictions.CH]
    store = "postgres"                       # "sqlite" (the default) or "postgres"
    root = "/srv/overt/CH"                   # the jurisdiction's root: SQLite store, blobs, backups
    postgres_dsn = "postgresql://ch-db.internal/overt"

A jurisdiction with no table uses the defaults: a SQLite store under ``<home>/jurisdictions/<J>``. A relative
``root`` is taken from the home. Every jurisdiction's root is its own: no two roots are equal or nested, and
no configured root holds the default roots' folder or sits in another jurisdiction's default root, so "under
the root of J" (where backups go, :func:`overt.residency.stores.check_backup_target`) means one jurisdiction
only. No two jurisdictions share a PostgreSQL DSN; a database shared under two spellings of its DSN is still
refused when opened, by the store's jurisdiction stamp.

The section is registered ``named`` when this module is imported, which :mod:`overt.home.config` does
(``PROVIDERS``) before it reads or writes any ``config.toml``. Opening the stores is
:mod:`overt.residency.stores`; this module only reads and writes settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from overt.errors import ConfigError, FormatError
from overt.home import Config, register_section
from overt.keys.registry import check_jurisdiction

if TYPE_CHECKING:
    from overt.home import Home

SECTION = "jurisdictions"
STORES = ("sqlite", "postgres")


@dataclass(frozen=True, slots=True, kw_only=True)
class JurisdictionConfig:
    """One ``[jurisdictions.J]`` table: the kind of store, the jurisdiction's root, the PostgreSQL DSN."""

    store: str = "sqlite"
    root: str = ""  # empty: <home>/jurisdictions/<J>; relative: from the home
    postgres_dsn: str = ""

    def __post_init__(self) -> None:
        if self.store not in STORES:
            raise ConfigError(f"jurisdictions store must be 'sqlite' or 'postgres', not {self.store!r}")
        if self.store == "postgres" and not self.postgres_dsn:
            raise ConfigError("jurisdictions store is 'postgres' but its postgres_dsn is empty")
        if self.store == "sqlite" and self.postgres_dsn:
            raise ConfigError("jurisdictions postgres_dsn is set but the store is 'sqlite'")
        if "\x00" in self.root:
            raise ConfigError("jurisdictions root must not hold a NUL character")


register_section(
    SECTION,
    JurisdictionConfig,
    'per jurisdiction ([jurisdictions.CH]): store ("sqlite" or "postgres"), root (its folder; default '
    "<home>/jurisdictions/<J>), postgres_dsn",
    named=True,
)


def _check_code(j: str) -> str:
    try:
        return check_jurisdiction(j)
    except FormatError as e:
        raise ConfigError(f"config.toml: [{SECTION}.{j}]: {e}") from e


def defaults_folder(home_root: Path) -> Path:
    """The folder holding every default root: ``<home>/jurisdictions``."""
    return home_root / "jurisdictions"


def default_root(home_root: Path, j: str) -> Path:
    return defaults_folder(home_root) / j


def _root(home_root: Path, j: str, config: JurisdictionConfig) -> Path:
    if not config.root:
        return default_root(home_root, j)
    return home_root / Path(config.root).expanduser()  # an absolute root stays as it is


def _nested(a: Path, b: Path) -> bool:
    return a.is_relative_to(b) or b.is_relative_to(a)


def check_configs(home_root: Path, configs: dict[str, JurisdictionConfig]) -> None:
    """Refuse codes that are not jurisdictions, roots that are equal or nested, and shared DSNs."""
    for j in configs:
        _check_code(j)
    defaults = defaults_folder(home_root).resolve()
    roots = {j: _root(home_root, j, c).resolve() for j, c in configs.items()}
    for j, root in roots.items():
        if defaults.is_relative_to(root):
            raise ConfigError(
                f"config.toml: [{SECTION}.{j}] root {root} holds {defaults}, where every other jurisdiction "
                "keeps its default root: give it a folder of its own"
            )
        if root.is_relative_to(defaults) and root.relative_to(defaults).parts[0] != j:
            other = root.relative_to(defaults).parts[0]
            raise ConfigError(
                f"config.toml: [{SECTION}.{j}] root {root} lies in the default root of jurisdiction {other}"
            )
        for k, other_root in roots.items():
            if k < j and _nested(root, other_root):
                raise ConfigError(
                    f"config.toml: the roots of jurisdictions {k} ({other_root}) and {j} ({root}) overlap: "
                    "each jurisdiction needs a root of its own"
                )
    dsns = sorted((c.postgres_dsn, j) for j, c in configs.items() if c.postgres_dsn)
    for (a, j), (b, k) in pairwise(dsns):
        if a == b:
            raise ConfigError(f"config.toml: jurisdictions {j} and {k} have the same postgres_dsn")


def jurisdiction_configs(home: Home) -> dict[str, JurisdictionConfig]:
    """The configured jurisdictions of ``home`` (checked: codes, roots, DSNs), by code."""
    configs = _named(home.config)
    check_configs(home.paths.root, configs)
    return configs


def _named(config: Config) -> dict[str, JurisdictionConfig]:
    return config.named(SECTION, JurisdictionConfig) if SECTION in config.values else {}


def jurisdiction_config(home: Home, j: str) -> JurisdictionConfig:
    """The settings of jurisdiction ``j``: its table, or the defaults (SQLite under the default root)."""
    check_jurisdiction(j)
    return jurisdiction_configs(home).get(j, JurisdictionConfig())


def configured_jurisdiction(home: Home, j: str) -> JurisdictionConfig:
    """The settings of ``j``, which must be a place data can be stored and have a store configured here
    (for a command about an existing store, such as ``overt residency backup``).

    Raises:
        FormatError: ``j`` is not an assigned ISO 3166-1 alpha-2 code, nor EU.
        ConfigError: ``j`` has no store configured in this home.
    """
    from overt.residency.countries import check_residency_jurisdiction

    check_residency_jurisdiction(j)
    configs = jurisdiction_configs(home)
    if j not in configs:
        known = ", ".join(sorted(configs)) or "none"
        raise ConfigError(
            f"jurisdiction {j} has no telemetry store in this home (those configured: {known}); "
            f"'overt residency store add {j}' makes one"
        )
    return configs[j]


def root_of(home: Home, j: str) -> Path:
    """The root folder of jurisdiction ``j``: its configured ``root``, or ``<home>/jurisdictions/<J>``."""
    return _root(home.paths.root, j, jurisdiction_config(home, j))


def add_jurisdiction(home: Home, j: str, config: JurisdictionConfig) -> JurisdictionConfig:
    """Write ``[jurisdictions.J]`` into the home's ``config.toml`` (and reload ``home.config``).

    Idempotent for the same settings. Changing the settings of a configured jurisdiction is refused: its
    data would stay behind in the old store while the new one answered for it; moving data is a migration.
    """
    _check_code(j)
    configs = _named(home.config)
    if j in configs:
        if configs[j] == config:
            return config
        raise ConfigError(
            f"jurisdiction {j} is already configured ({configs[j].store} store); its settings are not changed "
            "in place: the data stays where it is stored"
        )
    merged = {**configs, j: config}
    check_configs(home.paths.root, merged)
    home.config.replace(SECTION, merged).write(home.paths.config)
    home.config = Config.load(home.paths.config)
    return config
