"""overt: a transparent software build conveyor.

The public surface is organised by domain concept: each package (``overt.tlog``, ``overt.attest``,
``overt.keys``, ``overt.source``, ``overt.build``, ``overt.avdb``, ``overt.server``) declares its names in
``__all__``, and ``tests/test_public_api.py`` asserts them. Errors live in :mod:`overt.errors`. This module
carries the version (and :class:`VersionInfo`, its ``--json`` view) and :func:`lazy_exports`, the one
mechanism those package ``__init__`` files share.

Package ``__init__`` files import nothing eagerly. ``overt scan`` spawns workers that import
``overt.avdb.scan``, and every ``import overt.x.y`` runs ``overt/x/__init__.py`` first: an eager re-export
would load yara_x, FastAPI or securesystemslib wherever any sibling module is used, and would turn the
packages' mutual imports into import cycles. So a package lists its names three times, as pydantic does:
in ``__all__``, in an ``if TYPE_CHECKING:`` import block (for type checkers and readers) and in the map
given to :func:`lazy_exports` (PEP 562 ``__getattr__``/``__dir__``), and the test checks the three agree.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__version__ = "0.1.0"

__all__ = ["VersionInfo", "__version__", "lazy_exports"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionInfo:
    """What ``overt version --json`` prints."""

    version: str = __version__

    def to_dict(self) -> dict[str, str]:
        return {"version": self.version}


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """PEP 562 ``__getattr__`` and ``__dir__`` for ``package``, whose public names live in its submodules.

    Args:
        package: the package's ``__name__``.
        exports: each submodule's name relative to the package, mapped to the names it provides.

    A name's submodule is imported on first access; the value is then kept in the package's namespace, so
    ``__getattr__`` runs once per name.
    """
    where = {name: f"{package}.{module}" for module, names in exports.items() for name in names}
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
