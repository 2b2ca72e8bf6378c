"""AV databases: rule sources, deterministic database packages, the rule auditor, deltas and the scanner.

Importing this package loads no yara_x: ``overt scan`` workers import :mod:`overt.avdb.scan`, and only the
modules that compile or scan rules need the engine. The verbs named like their module (``audit.audit``,
``install.install``, ``release.release``) stay in it: the submodule would shadow them here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.avdb.audit import RuleAuditReport
    from overt.avdb.canary import Canary
    from overt.avdb.compile import compile_in_sandbox, compiled_if_deterministic
    from overt.avdb.delta import (
        Delta,
        RuleChange,
        RuleDiff,
        SavedDelta,
        apply_delta,
        diff_databases,
        make_delta,
        rule_diff,
        write_delta,
    )
    from overt.avdb.findings import Finding
    from overt.avdb.install import Installed, Update, default_agent_dir, installed, update, verify_database
    from overt.avdb.package import Database, build_database, read_database
    from overt.avdb.release import Audited, AvdbStore, Refused, Released, Waived, audit_rules, waive
    from overt.avdb.rules import HashSignature, RuleSet, YaraRule, load_rules
    from overt.avdb.scan import Detection, ScanPool, ScanReport, scan_paths

__all__ = [
    "Audited",
    "AvdbStore",
    "Canary",
    "Database",
    "Delta",
    "Detection",
    "Finding",
    "HashSignature",
    "Installed",
    "Refused",
    "Released",
    "RuleAuditReport",
    "RuleChange",
    "RuleDiff",
    "RuleSet",
    "SavedDelta",
    "ScanPool",
    "ScanReport",
    "Update",
    "Waived",
    "YaraRule",
    "apply_delta",
    "audit_rules",
    "build_database",
    "compile_in_sandbox",
    "compiled_if_deterministic",
    "default_agent_dir",
    "diff_databases",
    "installed",
    "load_rules",
    "make_delta",
    "read_database",
    "rule_diff",
    "scan_paths",
    "update",
    "verify_database",
    "waive",
    "write_delta",
]

_EXPORTS = {
    "audit": ("RuleAuditReport",),
    "findings": ("Finding",),
    "canary": ("Canary",),
    "compile": ("compile_in_sandbox", "compiled_if_deterministic"),
    "delta": (
        "Delta",
        "RuleChange",
        "RuleDiff",
        "SavedDelta",
        "apply_delta",
        "diff_databases",
        "make_delta",
        "rule_diff",
        "write_delta",
    ),
    "install": ("Installed", "Update", "default_agent_dir", "installed", "update", "verify_database"),
    "package": ("Database", "build_database", "read_database"),
    "release": ("Audited", "AvdbStore", "Refused", "Released", "Waived", "audit_rules", "waive"),
    "rules": ("HashSignature", "RuleSet", "YaraRule", "load_rules"),
    "scan": ("Detection", "ScanPool", "ScanReport", "scan_paths"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
