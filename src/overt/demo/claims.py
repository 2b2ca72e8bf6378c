"""What the demo proves, as data: promises, claims, stages, and the closing table.

A :class:`Claim` names the promise it supports (one of :data:`PROMISES`, the README's list), says what was
checked in words for a customer's security engineer, points at the evidence file, and carries the command that
re-checks it from a shell. A claim is ``proved`` only when its check ran and could have failed; a stage that
could not run (no sandbox) returns ``skipped`` claims instead, never proved ones. A check that fails raises,
so no failed check is ever reported as a claim.

This module does no I/O; running the checks is the job of the stage modules, printing is the CLI's.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any


class Promise(StrEnum):
    """The promises overt makes checkable (README), in the README's order."""

    BUILT_FROM_AUDITED_SOURCE = "built from the audited source"
    SIGNED_IN_JURISDICTION = "signed only in the named jurisdiction"
    NOTHING_SIGNED_IN_SECRET = "nothing signed in secret"
    NO_DOCUMENT_HUNTING = "no document-hunting rules"
    SAME_UPDATE_FOR_EVERYONE = "the same update for everyone"
    TELEMETRY_IN_JURISDICTION = "telemetry kept in its jurisdiction"


PROMISES: tuple[Promise, ...] = tuple(Promise)

# Promises no stage proves yet, and what will prove them.
NOT_YET: Mapping[Promise, str] = MappingProxyType({})


class Status(StrEnum):
    PROVED = "proved"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A shell command that re-checks a claim, and the exit status it gives while the claim holds.

    ``exit_code`` 1 means the command reproduces a refusal (a forged checkpoint, a found virus).
    """

    argv: tuple[str, ...]
    exit_code: int = 0

    def __post_init__(self) -> None:
        if not self.argv or self.argv[0] != "overt":
            raise ValueError(f"a re-check command runs overt, not {self.argv!r}")
        if self.exit_code not in (0, 1):
            raise ValueError(f"a re-check exits 0 or 1, not {self.exit_code}")

    @property
    def text(self) -> str:
        return shlex.join(self.argv)

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.text, "argv": list(self.argv), "exit_code": self.exit_code}


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """One checked statement. ``evidence`` is a path relative to the demo home; ``facts`` are the checked
    values (indices, sizes, key ids) for programs; ``recheck`` is None only where no command can repeat the
    check after the demo (``recheck_unavailable`` then says why)."""

    id: str
    promise: Promise
    status: Status
    check: str
    evidence: str
    recheck: Command | None = None
    recheck_unavailable: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id or not self.check:
            raise ValueError("a claim needs an id and says what was checked")
        if PurePosixPath(self.evidence).is_absolute() or not self.evidence:
            raise ValueError(
                f"claim {self.id}: evidence is a path relative to the demo home: {self.evidence!r}"
            )
        if (self.recheck is None) == (not self.recheck_unavailable):
            raise ValueError(f"claim {self.id}: give a re-check command, or say why there is none")
        object.__setattr__(self, "facts", MappingProxyType(dict(self.facts)))

    @property
    def proved(self) -> bool:
        return self.status is Status.PROVED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "promise": self.promise.value,
            "status": self.status.value,
            "check": self.check,
            "evidence": self.evidence,
            "recheck": None if self.recheck is None else self.recheck.to_dict(),
            "recheck_unavailable": self.recheck_unavailable or None,
            "facts": dict(self.facts),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """One step of the demo: what it set up, and the claims it checked."""

    name: str
    title: str
    setup: str
    claims: tuple[Claim, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "setup": self.setup,
            "claims": [c.to_dict() for c in self.claims],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PromiseRow:
    """A line of the closing table: a promise is ``proved`` when it has claims and all of them are proved."""

    promise: Promise
    proved: bool
    evidence: tuple[str, ...]
    note: str

    @property
    def status(self) -> str:
        return "proved" if self.proved else "not yet"

    def to_dict(self) -> dict[str, Any]:
        return {
            "promise": self.promise.value,
            "status": self.status,
            "evidence": list(self.evidence),
            "note": self.note,
        }


def promise_table(stages: Iterable[Stage]) -> tuple[PromiseRow, ...]:
    """One row per promise, in :data:`PROMISES` order."""
    claims = [c for s in stages for c in s.claims]
    rows = []
    for promise in PROMISES:
        mine = [c for c in claims if c.promise is promise]
        proved = [c for c in mine if c.proved]
        evidence = tuple(dict.fromkeys(c.evidence for c in proved))
        if not mine:
            note = NOT_YET.get(promise, "no stage checks it yet")
        elif len(proved) < len(mine):
            note = f"{len(mine) - len(proved)} of {len(mine)} checks skipped"
        else:
            note = f"{len(proved)} checks"
        rows.append(
            PromiseRow(
                promise=promise, proved=bool(mine) and len(proved) == len(mine), evidence=evidence, note=note
            )
        )
    return tuple(rows)
