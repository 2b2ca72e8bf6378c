"""The rule auditor: finds rules that hunt for documents instead of malware, before a database is released.

Each part owns its checks; this module runs them all and decides what blocks:

* :mod:`overt.avdb.patterns`: ``sensitive-marking`` and ``split-marking``, decided by yara-x itself over a
  corpus of every marking of :mod:`overt.avdb.markings` in every form a document carries;
* :mod:`overt.avdb.checks`: ``document-only``, ``targeting``, ``collection`` (and ``self-name``, advisory);
  :mod:`overt.avdb.formatprobe`: ``document-only`` for format tests yara-x alone can read (computed magic),
  found by scanning small files of every format seeded with the rule's own strings;
* :mod:`overt.avdb.canary_check`: ``canary-hit``, each new or changed rule alone over realistic documents;
* source problems (``include``, ``unknown-module``, ``compile``, ``missing-metadata``, ``duplicate-name``,
  ``unparsed``), which block and which no waiver lifts: the database cannot be built from such a rule;
* ``notice:<code>``: yara-x compiler notices, advisory unless the tree's settings make them blocking.

A finding's ``id`` is stable for the same rule text, check and evidence, so a waiver can name it. Pure apart
from compiling rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from overt.avdb.canary_check import check_canaries
from overt.avdb.checks import check_rule, global_rules
from overt.avdb.findings import ADVISORY, BLOCKING, Finding, make_finding
from overt.avdb.formatprobe import check_formats
from overt.avdb.markings import Markings, load_markings, parse_markings
from overt.avdb.patterns import check_patterns
from overt.avdb.rules import HashSignature, RuleSet, YaraRule
from overt.avdb.ruleview import condition_code, requires
from overt.avdb.yarasource import condition_tokens

SOURCE_PROBLEMS = frozenset(
    {"include", "unknown-module", "compile", "missing-metadata", "duplicate-name", "unparsed"}
)
# The checks that say a rule hunts documents (what the auditor exists for); all of them block.
HUNTING_CHECKS = frozenset(
    {"sensitive-marking", "split-marking", "document-only", "targeting", "collection", "canary-hit"}
)
NOTICE = "notice:"
MARKING_CHECKS = frozenset({"sensitive-marking", "split-marking"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleAuditReport:
    findings: tuple[Finding, ...]
    rules_audited: int
    new_or_changed: int
    canaries: int
    markings: str = ""  # where the marking list came from

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.blocking)

    def to_predicate(self) -> dict[str, Any]:
        return {
            "rulesAudited": self.rules_audited,
            "newOrChanged": self.new_or_changed,
            "canaries": self.canaries,
            "blocking": len(self.blocking),
            "findings": [f.to_dict() for f in self.findings],
        }


def as_markings(markings: Markings | Sequence[str] | None) -> Markings:
    """The packaged list (None), a loaded list, or a plain word list."""
    if markings is None:
        return load_markings()
    if isinstance(markings, Markings):
        return markings
    return parse_markings("\n".join(markings).encode(), origin="word list", toml=False)


def _source_findings(rules: RuleSet) -> list[Finding]:
    by_name = {(r.file, r.name): r for r in rules.yara}
    found: list[Finding] = []
    for p in rules.problems:
        rule = by_name.get((p.file, p.rule))
        digest = (
            rule.digest if rule else hashlib.sha256(rules.yara_files.get(p.file, "").encode()).hexdigest()
        )
        found.append(
            make_finding(
                rule_id=rule.id if rule else f"{p.file}:{p.rule}" if p.rule else p.file,
                rule=p.rule,
                file=p.file,
                digest=digest,
                check=p.check,
                message=p.message,
                evidence=p.message,
            )
        )
    notice_severity = BLOCKING if rules.settings.notices_block else ADVISORY
    for w in rules.warnings:
        rule = by_name.get((w.file, w.rule))
        found.append(
            make_finding(
                rule_id=rule.id if rule else w.file,
                rule=w.rule,
                file=w.file,
                digest=rule.digest if rule else "",
                check=f"{NOTICE}{w.check}",
                message=w.message,
                evidence=w.check,
                severity=notice_severity,
            )
        )
    return found


def _in_executables(findings: list[Finding], rules: RuleSet) -> list[Finding]:
    """Marking findings of rules whose every match needs an executable (``uint16(0) == 0x5A4D and ...``,
    ``pe.is_pe and ...``) are advisory: such a rule cannot match a document, so a ransom note's "for your eyes
    only" in a PE is no hunt. The canaries still run every such rule alone over the marked documents."""
    needs_code = {
        r.id
        for r in rules.yara
        if requires(condition_tokens(r.source.condition), lambda atom: bool(condition_code(atom)))
    }
    return [
        replace(
            f,
            severity=ADVISORY,
            message=f"{f.message}; advisory: the rule matches only executables, never a document",
        )
        if f.rule_id in needs_code and f.check in MARKING_CHECKS
        else f
        for f in findings
    ]


def changed_rules(rules: RuleSet, previous: RuleSet | None) -> set[str]:
    before: dict[str, str] = {}
    if previous is not None:
        before = {r.id: r.digest for r in previous.yara} | {h.id: h.digest for h in previous.hashes}
    now: list[YaraRule | HashSignature] = [*rules.yara, *rules.hashes]
    return {r.id for r in now if before.get(r.id) != r.digest}


def audit(
    rules: RuleSet,
    *,
    previous: RuleSet | None = None,
    markings: Markings | Sequence[str] | None = None,
) -> RuleAuditReport:
    """Every check over ``rules``; canaries run on rules new or changed since ``previous``."""
    marks = as_markings(markings)
    findings = _in_executables(check_patterns(rules.yara, marks), rules)
    tree_globals = global_rules(rules.yara)
    for r in rules.yara:
        findings += check_rule(r, globals=tree_globals)
    findings += check_formats(rules.yara)
    findings += _source_findings(rules)
    changed = changed_rules(rules, previous)
    canary_findings, canaries = check_canaries(rules, changed, markings=[m.text for m in marks.entries])
    findings += canary_findings
    unique = {f.id: f for f in findings}
    return RuleAuditReport(
        findings=tuple(sorted(unique.values(), key=lambda f: (f.rule_id, f.check, f.id))),
        rules_audited=len(rules.yara) + len(rules.hashes),
        new_or_changed=len(changed),
        canaries=canaries,
        markings=marks.origin,
    )
