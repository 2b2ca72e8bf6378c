"""The repository's settings: ``[tuf.ROLE]`` tables in ``config.toml``, one per TUF role, all optional.

::

    [tuf.timestamp]
    expires_hours = 6        # how long a signature of this role is valid (0: the role's default below)

    [tuf.release]
    expires_hours = 720
    bins_threshold = 1000    # the release role switches to succinct hash bins (TAP 15) above this many targets
    bin_count = 64           # a power of two; fixed once the bins exist (the metadata, not this file, says how many)

Defaults: root and targets 365 days, release and its bins 30 days, snapshot 7 days, timestamp 6 hours.
``overt tuf timestamp`` renews every online role whose signature has less than half its lifetime left.

The section is a table of tables (registered ``named``), so a home that never configures TUF carries no
``[tuf]`` table at all. The registration runs when this module is imported, which :mod:`overt.home.config`
does (``PROVIDERS``) before it reads or writes any ``config.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from overt.errors import ConfigError
from overt.home import Config, register_section

if TYPE_CHECKING:
    from overt.home import Home

ROLES = ("root", "targets", "release", "snapshot", "timestamp")
DEFAULT_EXPIRES_HOURS = {
    "root": 365 * 24,
    "targets": 365 * 24,
    "release": 30 * 24,
    "snapshot": 7 * 24,
    "timestamp": 6,
}
DEFAULT_BINS_THRESHOLD = 1000
DEFAULT_BIN_COUNT = 64
MAX_BIN_COUNT = 1 << 14


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleSettings:
    """One ``[tuf.ROLE]`` table. Zero means the role's default; the bin settings belong to ``release``."""

    expires_hours: int = 0
    bins_threshold: int = 0
    bin_count: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.expires_hours <= 10 * 365 * 24:
            raise ConfigError("tuf expires_hours must be between 1 and 87600 (0: the role's default)")
        if self.bins_threshold < 0:
            raise ConfigError("tuf bins_threshold must not be negative (0: the default)")
        count = self.bin_count
        if count and (count < 2 or count > MAX_BIN_COUNT or count & (count - 1)):
            raise ConfigError(f"tuf bin_count must be a power of two from 2 to {MAX_BIN_COUNT}, not {count}")


TUF_SECTION = register_section(
    "tuf",
    RoleSettings,
    "per TUF role ([tuf.root], [tuf.targets], [tuf.release], [tuf.snapshot], [tuf.timestamp]): expires_hours; "
    "[tuf.release] also bins_threshold and bin_count (see docs/operations.md)",
    named=True,
    names=ROLES,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TufSettings:
    """The settings in force: each role's signature lifetime and when (and into how many bins) to split."""

    expires: dict[str, timedelta]
    bins_threshold: int
    bin_count: int

    @classmethod
    def from_config(cls, config: Config) -> TufSettings:
        tables = config.named("tuf", RoleSettings) if "tuf" in config.values else {}
        for name, table in tables.items():
            if name != "release" and (table.bins_threshold or table.bin_count):
                raise ConfigError(
                    f"config.toml: bins_threshold and bin_count belong in [tuf.release], not [tuf.{name}]"
                )
        release = tables.get("release", RoleSettings())
        return cls(
            expires={
                role: timedelta(
                    hours=tables.get(role, RoleSettings()).expires_hours or DEFAULT_EXPIRES_HOURS[role]
                )
                for role in ROLES
            },
            bins_threshold=release.bins_threshold or DEFAULT_BINS_THRESHOLD,
            bin_count=release.bin_count or DEFAULT_BIN_COUNT,
        )

    @classmethod
    def of(cls, home: Home) -> TufSettings:
        """The settings of ``home`` (a home opened before ``[tuf]`` was registered has no such table: its
        configuration would not have parsed otherwise, so the defaults hold)."""
        return cls.from_config(home.config)

    def expiry(self, role: str) -> timedelta:
        """The lifetime of a signature by ``role``; bins (``bin-XX``) live as long as ``release``."""
        return self.expires["release" if role.startswith("bin-") else role]
