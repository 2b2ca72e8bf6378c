"""The overt home: its layout (paths), its configuration (a registry of sections), its logs by name, and the
conveyor context its commands sign with. See :mod:`overt.home.paths` for the layout."""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.home.config import (
        DEFAULT_BUILDER_ID,
        DEFAULT_JURISDICTION,
        DEFAULT_ORIGIN,
        Config,
        ConveyorConfig,
        LogConfig,
        Section,
        register_section,
        sections,
    )
    from overt.home.home import DEFAULT_HOME, Home, HomeInit, resolve_home
    from overt.home.logs import (
        HomeLog,
        Unpublished,
        UnpublishedAppends,
        append_through_server,
        is_published,
        unpublished,
    )
    from overt.home.paths import MAIN_LOG, HomePaths, LogPaths, check_log_name

__all__ = [
    "DEFAULT_BUILDER_ID",
    "DEFAULT_HOME",
    "DEFAULT_JURISDICTION",
    "DEFAULT_ORIGIN",
    "MAIN_LOG",
    "Config",
    "ConveyorConfig",
    "Home",
    "HomeInit",
    "HomeLog",
    "HomePaths",
    "LogConfig",
    "LogPaths",
    "Section",
    "Unpublished",
    "UnpublishedAppends",
    "append_through_server",
    "check_log_name",
    "is_published",
    "register_section",
    "resolve_home",
    "sections",
    "unpublished",
]

_EXPORTS = {
    "config": (
        "DEFAULT_BUILDER_ID",
        "DEFAULT_JURISDICTION",
        "DEFAULT_ORIGIN",
        "Config",
        "ConveyorConfig",
        "LogConfig",
        "Section",
        "register_section",
        "sections",
    ),
    "home": ("DEFAULT_HOME", "Home", "HomeInit", "resolve_home"),
    "logs": (
        "HomeLog",
        "Unpublished",
        "UnpublishedAppends",
        "append_through_server",
        "is_published",
        "unpublished",
    ),
    "paths": ("MAIN_LOG", "HomePaths", "LogPaths", "check_log_name"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
