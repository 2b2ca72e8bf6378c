"""Customer data residency: the jurisdiction registry, tenants and their tokens, per-jurisdiction stores, the
telemetry schema, approvals and the access-transparency logs, routing and migration.

Importing this package loads no pydantic, psycopg or argon2: each module imports what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.residency.accesslog import AccessEntry, access_log_name, ensure_access_log, record
    from overt.residency.accessverify import AccessLogReport, verify_access_log
    from overt.residency.approvals import (
        Approval,
        ApprovalError,
        VerifiedApproval,
        issue_approval,
        verify_approval,
    )
    from overt.residency.config import JurisdictionConfig, add_jurisdiction, jurisdiction_configs, root_of
    from overt.residency.countries import check_country
    from overt.residency.registry import JurisdictionRegistry, Move, RegistryDiff, first_registry
    from overt.residency.registry_store import RegistryIssuer, RegistryStore
    from overt.residency.stores import (
        BatchConflict,
        DigestMismatch,
        JurisdictionStore,
        StoredBatch,
        backup_store,
        check_backup_target,
        open_store,
    )
    from overt.residency.telemetry import TelemetryBatch, TelemetryEvent, parse_batch
    from overt.residency.tenant_ledger import TenantLedger, TenantRecordError
    from overt.residency.tenants import AdminKey, Directory, Tenant, open_directory
    from overt.residency.tokens import AuthenticationError

__all__ = [
    "AccessEntry",
    "AccessLogReport",
    "AdminKey",
    "Approval",
    "ApprovalError",
    "AuthenticationError",
    "BatchConflict",
    "DigestMismatch",
    "Directory",
    "JurisdictionConfig",
    "JurisdictionRegistry",
    "JurisdictionStore",
    "Move",
    "RegistryDiff",
    "RegistryIssuer",
    "RegistryStore",
    "StoredBatch",
    "TelemetryBatch",
    "TelemetryEvent",
    "Tenant",
    "TenantLedger",
    "TenantRecordError",
    "VerifiedApproval",
    "access_log_name",
    "add_jurisdiction",
    "backup_store",
    "check_backup_target",
    "check_country",
    "ensure_access_log",
    "first_registry",
    "issue_approval",
    "jurisdiction_configs",
    "open_directory",
    "open_store",
    "parse_batch",
    "record",
    "root_of",
    "verify_access_log",
    "verify_approval",
]

_EXPORTS = {
    "accesslog": ("AccessEntry", "access_log_name", "ensure_access_log", "record"),
    "accessverify": ("AccessLogReport", "verify_access_log"),
    "approvals": ("Approval", "ApprovalError", "VerifiedApproval", "issue_approval", "verify_approval"),
    "config": ("JurisdictionConfig", "add_jurisdiction", "jurisdiction_configs", "root_of"),
    "countries": ("check_country",),
    "registry": ("JurisdictionRegistry", "Move", "RegistryDiff", "first_registry"),
    "registry_store": ("RegistryIssuer", "RegistryStore"),
    "stores": (
        "BatchConflict",
        "DigestMismatch",
        "JurisdictionStore",
        "StoredBatch",
        "backup_store",
        "check_backup_target",
        "open_store",
    ),
    "telemetry": ("TelemetryBatch", "TelemetryEvent", "parse_batch"),
    "tenant_ledger": ("TenantLedger", "TenantRecordError"),
    "tenants": ("AdminKey", "Directory", "Tenant", "open_directory"),
    "tokens": ("AuthenticationError",),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
