"""overt: a transparent software build conveyor.

The public surface is organised by domain concept (``overt.tlog``, ...); this top-level module only carries the
version. Errors live in :mod:`overt.errors`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
