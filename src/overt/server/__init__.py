"""HTTP edges (FastAPI): one router per concept, no logic of their own.

Importing this package loads no FastAPI. The two apps, ``overt.server.log.create_app`` (the log) and
``overt.server.witness.create_app`` (a witness), share a name and so stay in their modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.server.errors import http_status
    from overt.server.runner import BackgroundServer, EdgeConfig, EdgeLimits, EdgeServer

__all__ = [
    "BackgroundServer",
    "EdgeConfig",
    "EdgeLimits",
    "EdgeServer",
    "http_status",
]

_EXPORTS = {
    "errors": ("http_status",),
    "runner": ("BackgroundServer", "EdgeConfig", "EdgeLimits", "EdgeServer"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
