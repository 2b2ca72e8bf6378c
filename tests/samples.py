"""Fixed test keys and sample attestations. TEST KEYS ONLY: derived from public constants, never secret."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner

from overt.attest.provenance import BuildDefinition, Builder, BuildMetadata, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.vsa import VerificationSummary, VsaVerifier
from overt.keys.signers import KeySigner

if TYPE_CHECKING:
    from overt.home import Home
    from overt.keys.registry import KeyRecord

SAMPLE_BUILDER_ID = "https://conveyor.overt.example/builder/v1?jurisdiction=CH"  # provenance_statement("CH")


def ed25519_test_signer(n: int) -> KeySigner:
    seed = hashlib.sha256(b"overt test key ed25519 %d" % n).digest()
    return KeySigner(CryptoSigner(Ed25519PrivateKey.from_private_bytes(seed)))


def ecdsa_test_signer(n: int) -> KeySigner:
    d = int.from_bytes(hashlib.sha256(b"overt test key ecdsa %d" % n).digest(), "big") % (2**255)
    return KeySigner(CryptoSigner(ec.derive_private_key(d, ec.SECP256R1())))


def digest_of(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest()}


def provenance(jurisdiction: str | None = "CH", *, internal: str | None = None) -> Provenance:
    builder_id = "https://conveyor.overt.example/builder/v1"
    if jurisdiction is not None:
        builder_id += f"?jurisdiction={jurisdiction}"
    return Provenance(
        build_definition=BuildDefinition(
            build_type="https://overt.dev/build/v1",
            external_parameters={"source": {"sha256": "ab" * 32}, "recipe": "overt.toml"},
            internal_parameters={} if internal is None else {"jurisdiction": internal},
            resolved_dependencies=(
                ResourceDescriptor(name="flit_core-3.9.0-py3-none-any.whl", digest=digest_of(b"flit")),
            ),
        ),
        run_details=RunDetails(
            builder=Builder(id=builder_id, version={"overt": "0.1"}),
            metadata=BuildMetadata(
                invocation_id="build-1", started_on="2026-11-28T10:00:00Z", finished_on="2026-11-28T10:01:00Z"
            ),
        ),
    )


def provenance_statement(jurisdiction: str | None = "CH", *, internal: str | None = None) -> Statement:
    subject = (ResourceDescriptor(name="tomli-2.0.1-py3-none-any.whl", digest=digest_of(b"wheel")),)
    return provenance(jurisdiction, internal=internal).statement(subject)


def vsa(result: str = "PASSED") -> VerificationSummary:
    return VerificationSummary(
        verifier=VsaVerifier(id="https://rebuilder.example/v1", version={"overt": "0.1"}),
        time_verified="2026-11-28T11:00:00Z",
        resource_uri="pkg:pypi/tomli@2.0.1",
        policy=ResourceDescriptor(
            uri="https://overt.example/policy/reproducible", digest=digest_of(b"policy")
        ),
        verification_result=result,
        verified_levels=("SLSA_BUILD_LEVEL_3",),
        input_attestations=(ResourceDescriptor(uri="https://overt.example/att/1", digest=digest_of(b"att")),),
        dependency_levels={"SLSA_BUILD_LEVEL_3": 1},
        slsa_version="1.0",
    )


def vsa_statement(result: str = "PASSED") -> Statement:
    subject = (ResourceDescriptor(name="tomli-2.0.1-py3-none-any.whl", digest=digest_of(b"wheel")),)
    return vsa(result).statement(subject)


def register_builders(h: Home, *builder_ids: str) -> KeyRecord:
    """Give ``h`` a release key, which registers the home's own builder id (as 'overt keys generate --role
    release' does), then register ``builder_ids`` too. Each registry version is a log entry."""
    from overt.distribute.testbed import add_release_key
    from overt.keys.builders import add_builder

    release = add_release_key(h)
    for builder_id in builder_ids:
        add_builder(
            h.builder_store(),
            h.signing_service(),
            release,
            builder_id=builder_id,
            jurisdiction=h.conveyor.jurisdiction,
        )
    return release
