"""Keys bound to a role and a jurisdiction: signer URIs, the registry, the signing policy, rotation, audit.

The ``*_V1`` names are the predicate types of the statements only overt's own commands issue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.keys.audit import AuditEntry, KeyAuditReport, audit_key
    from overt.keys.builders import (
        BuilderRegistry,
        BuilderStore,
        RegisteredBuilder,
        add_builder,
        conveyor_builder_id,
        register_first_builder,
        remove_builder,
    )
    from overt.keys.jurisdiction import (
        AVDB_AUDIT_V1,
        AVDB_WAIVER_V1,
        BUILDER_REGISTRY_V1,
        KEY_ROTATION_V1,
        SIGNING_REFUSAL_V1,
        SOURCE_ESCROW_V1,
        Issuer,
        Refusal,
        SigningPolicy,
        judge,
    )
    from overt.keys.registry import KeyRecord, Registry, Role, load_public_keys, parse_role
    from overt.keys.rotation import introduced_key, rotate, rotation_statement
    from overt.keys.signers import (
        HsmConfig,
        HSMEd25519Signer,
        KeySigner,
        NoteSigner,
        generate_file_key,
        hsm_generate,
        hsm_import,
        import_file_key,
        load_signer,
    )
    from overt.keys.signing import Appender, LogReceipt, Signed, SigningService

__all__ = [
    "AVDB_AUDIT_V1",
    "AVDB_WAIVER_V1",
    "BUILDER_REGISTRY_V1",
    "KEY_ROTATION_V1",
    "SIGNING_REFUSAL_V1",
    "SOURCE_ESCROW_V1",
    "Appender",
    "AuditEntry",
    "BuilderRegistry",
    "BuilderStore",
    "HSMEd25519Signer",
    "HsmConfig",
    "Issuer",
    "KeyAuditReport",
    "KeyRecord",
    "KeySigner",
    "LogReceipt",
    "NoteSigner",
    "Refusal",
    "RegisteredBuilder",
    "Registry",
    "Role",
    "Signed",
    "SigningPolicy",
    "SigningService",
    "add_builder",
    "audit_key",
    "conveyor_builder_id",
    "generate_file_key",
    "hsm_generate",
    "hsm_import",
    "import_file_key",
    "introduced_key",
    "judge",
    "load_public_keys",
    "load_signer",
    "parse_role",
    "register_first_builder",
    "remove_builder",
    "rotate",
    "rotation_statement",
]

_EXPORTS = {
    "audit": ("AuditEntry", "KeyAuditReport", "audit_key"),
    "builders": (
        "BuilderRegistry",
        "BuilderStore",
        "RegisteredBuilder",
        "add_builder",
        "conveyor_builder_id",
        "register_first_builder",
        "remove_builder",
    ),
    "jurisdiction": (
        "AVDB_AUDIT_V1",
        "AVDB_WAIVER_V1",
        "BUILDER_REGISTRY_V1",
        "KEY_ROTATION_V1",
        "SIGNING_REFUSAL_V1",
        "SOURCE_ESCROW_V1",
        "Issuer",
        "Refusal",
        "SigningPolicy",
        "judge",
    ),
    "registry": ("KeyRecord", "Registry", "Role", "load_public_keys", "parse_role"),
    "rotation": ("introduced_key", "rotate", "rotation_statement"),
    "signers": (
        "HSMEd25519Signer",
        "HsmConfig",
        "KeySigner",
        "NoteSigner",
        "generate_file_key",
        "hsm_generate",
        "hsm_import",
        "import_file_key",
        "load_signer",
    ),
    "signing": ("Appender", "LogReceipt", "Signed", "SigningService"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
