"""Signed attestations: DSSE envelopes, in-toto Statements, SLSA Provenance and VSA predicates, k-of-n verify."""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.attest.dsse import (
        PAYLOAD_TYPE_IN_TOTO,
        Envelope,
        EnvelopeSignature,
        RawSigner,
        pae,
        sign_envelope,
    )
    from overt.attest.provenance import (
        SLSA_PROVENANCE_V1,
        BuildDefinition,
        Builder,
        BuildMetadata,
        Provenance,
        RunDetails,
    )
    from overt.attest.statement import ResourceDescriptor, Statement
    from overt.attest.verify import VerifiedPayload, signature_valid, verify_envelope, verify_statement
    from overt.attest.verify_artifact import (
        ArtifactCheck,
        ArtifactReport,
        ArtifactVerification,
        check_artifact,
    )
    from overt.attest.vsa import FAILED, PASSED, VSA_V1, VerificationSummary, VsaVerifier

__all__ = [
    "FAILED",
    "PASSED",
    "PAYLOAD_TYPE_IN_TOTO",
    "SLSA_PROVENANCE_V1",
    "VSA_V1",
    "ArtifactCheck",
    "ArtifactReport",
    "ArtifactVerification",
    "BuildDefinition",
    "BuildMetadata",
    "Builder",
    "Envelope",
    "EnvelopeSignature",
    "Provenance",
    "RawSigner",
    "ResourceDescriptor",
    "RunDetails",
    "Statement",
    "VerificationSummary",
    "VerifiedPayload",
    "VsaVerifier",
    "check_artifact",
    "pae",
    "sign_envelope",
    "signature_valid",
    "verify_envelope",
    "verify_statement",
]

_EXPORTS = {
    "dsse": ("PAYLOAD_TYPE_IN_TOTO", "Envelope", "EnvelopeSignature", "RawSigner", "pae", "sign_envelope"),
    "provenance": (
        "SLSA_PROVENANCE_V1",
        "BuildDefinition",
        "BuildMetadata",
        "Builder",
        "Provenance",
        "RunDetails",
    ),
    "statement": ("ResourceDescriptor", "Statement"),
    "verify": ("VerifiedPayload", "signature_valid", "verify_envelope", "verify_statement"),
    "verify_artifact": ("ArtifactCheck", "ArtifactReport", "ArtifactVerification", "check_artifact"),
    "vsa": ("FAILED", "PASSED", "VSA_V1", "VerificationSummary", "VsaVerifier"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
