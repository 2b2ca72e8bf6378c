"""An audit finding: which rule, which check, what it found, and whether it blocks a release.

Document-hunting checks and source problems block; compiler notices and ``self-name`` are advisory unless the
rule tree says notices block. A finding's ``id`` is stable for the same rule text, check and evidence, so a
waiver can name it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overt.avdb.rules import HashSignature, YaraRule

BLOCKING = "blocking"
ADVISORY = "advisory"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    id: str
    rule_id: str
    rule: str
    file: str
    check: str
    message: str
    evidence: str = ""
    severity: str = BLOCKING

    @property
    def blocking(self) -> bool:
        return self.severity == BLOCKING

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "ruleId": self.rule_id,
            "rule": self.rule,
            "file": self.file,
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "evidence": self.evidence,
        }


def finding_id(check: str, rule_id: str, digest: str, evidence: str) -> str:
    return hashlib.sha256("\0".join((check, rule_id, digest, evidence)).encode()).hexdigest()[:16]


def make_finding(
    *,
    rule_id: str,
    rule: str,
    file: str,
    digest: str,
    check: str,
    message: str,
    evidence: str,
    severity: str = BLOCKING,
) -> Finding:
    return Finding(
        id=finding_id(check, rule_id, digest, evidence),
        rule_id=rule_id,
        rule=rule,
        file=file,
        check=check,
        message=message,
        evidence=evidence,
        severity=severity,
    )


def finding(
    rule: YaraRule | HashSignature, check: str, message: str, evidence: str, *, severity: str = BLOCKING
) -> Finding:
    """A finding on one rule (or hash signature)."""
    name = getattr(rule, "name", rule.id)
    return make_finding(
        rule_id=rule.id,
        rule=name,
        file=rule.file,
        digest=rule.digest,
        check=check,
        message=message,
        evidence=evidence,
        severity=severity,
    )
