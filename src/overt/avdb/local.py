"""``overt avdb audit --local``: a customer's or an auditor's own audit of a rule tree, with their own marking list.

It needs no home and no keys: it reads the tree (a directory, a tarball, or a released ``.avdb`` database,
whose rule sources are published) and the marking list, runs the auditor, and returns the report. It signs
nothing, logs nothing and writes nothing, so a customer can check a vendor's rules against their own codenames
without the list, or the fact that it was used, leaving their machine. The vendor's audit, signed and logged, is
:func:`overt.avdb.release.audit_rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.avdb.audit import RuleAuditReport, audit
from overt.avdb.findings import BLOCKING, Finding
from overt.avdb.markings import combined, load_markings
from overt.avdb.package import MAX_DATABASE, read_database
from overt.avdb.rules import RuleSet, load_rules
from overt.errors import UsageError
from overt.files import read_regular_file
from overt.source.escrow import read_source


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalAudit:
    """The report of a local audit: what was audited, with which list, and the findings."""

    tree: str
    markings: str  # the marking lists' origins (the packaged list, and the user's path)
    marking_count: int
    report: RuleAuditReport

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.report.findings if f.severity == BLOCKING)

    def to_dict(self) -> dict[str, Any]:
        """What ``overt avdb audit --local --json`` prints."""
        return {
            "tree": self.tree,
            "markings": self.markings,
            "markingCount": self.marking_count,
            "signed": False,
            "logged": False,
            **self.report.to_predicate(),
            "blocking": len(self.blocking),
        }


def _rules(tree: Path) -> RuleSet:
    if tree.is_file() and tree.suffix == ".avdb":
        return read_database(read_regular_file(tree, limit=MAX_DATABASE)).rules()
    if not tree.exists():
        raise UsageError(f"{tree} does not exist")
    return load_rules(read_source(tree), strict=False)


def audit_local(tree: Path, *, markings: Path | None) -> LocalAudit:
    """Audit ``tree`` with the packaged marking list and the one at ``markings`` (if given); every rule counts
    as new (canaries run on all)."""
    packaged = load_markings()
    wanted = packaged if markings is None else combined(packaged, load_markings(markings))
    report = audit(_rules(tree), markings=wanted)
    return LocalAudit(
        tree=str(tree), markings=wanted.origin, marking_count=len(wanted.entries), report=report
    )
