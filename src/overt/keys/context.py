"""The conveyor context: who signs what a conveyor, or an independent rebuilder, produces.

One object carries the signing service (which judges, signs and logs), the builder key, the auditor key and
the exact SLSA ``builder.id`` the provenance names, so the build and AV-database code take one argument
instead of five. The conveyor makes its own from its home (:meth:`overt.home.Home.conveyor_context`); a
rebuilder makes one with its own keys and builder id.
"""

from __future__ import annotations

from dataclasses import dataclass

from overt.errors import ConfigError
from overt.keys.registry import KeyRecord
from overt.keys.signing import SigningService


@dataclass(frozen=True, slots=True, kw_only=True)
class ConveyorContext:
    service: SigningService
    builder: KeyRecord
    builder_id: str  # exact and jurisdiction-qualified (overt.keys.builders.conveyor_builder_id)
    auditor: KeyRecord | None = None  # signs rule audits and waivers; builds need none

    @property
    def jurisdiction(self) -> str:
        """Where this context signs: the signing service's jurisdiction, which judges every signature."""
        return self.service.jurisdiction

    def auditor_key(self) -> KeyRecord:
        if self.auditor is None:
            raise ConfigError("no auditor key: run 'overt keys generate --role auditor'")
        return self.auditor
