"""Customer data residency: the jurisdiction registry, tenants, per-jurisdiction stores, routing, the
access-transparency logs with their approvals, and migration between jurisdictions.

The lead fills in the public surface (``__all__``) once the modules land; until then import the modules.
"""

from __future__ import annotations
