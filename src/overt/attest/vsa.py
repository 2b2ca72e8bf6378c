"""SLSA Verification Summary (VSA) v1 predicate (specs/in-toto/predicates_vsa.md, slsa.dev/spec/v1.0).

A verifier's decision about one artifact: PASSED or FAILED against a policy, with the levels it verified.
Owns the schema and its validation. ``verifiedLevels`` is an array, as the SLSA spec says; the protobuf in the
``in-toto-attestation`` 0.9.3 package declares it a string (in-toto/attestation#425).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from overt import jsonio
from overt.attest.statement import ResourceDescriptor, Statement, check_timestamp, descriptors
from overt.errors import FormatError

VSA_V1 = "https://slsa.dev/verification_summary/v1"
PASSED = "PASSED"
FAILED = "FAILED"
MAX_PREDICATE = 1 << 20
_SLSA_VERSION = re.compile(r"\d+\.\d+")


@dataclass(frozen=True, slots=True, kw_only=True)
class VsaVerifier:
    id: str
    version: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise FormatError("VSA verifier.id is empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationSummary:
    """The ``predicate`` of a Statement whose ``predicateType`` is SLSA VSA v1."""

    verifier: VsaVerifier
    time_verified: str
    resource_uri: str
    policy: ResourceDescriptor
    verification_result: str
    verified_levels: tuple[str, ...]
    input_attestations: tuple[ResourceDescriptor, ...] = ()
    dependency_levels: Mapping[str, int] = field(default_factory=dict)
    slsa_version: str = ""

    def __post_init__(self) -> None:
        check_timestamp(self.time_verified, "VSA timeVerified")
        if not self.resource_uri:
            raise FormatError("VSA resourceUri is empty")
        if self.verification_result not in (PASSED, FAILED):
            raise FormatError(
                f"VSA verificationResult must be PASSED or FAILED, not {self.verification_result!r}"
            )
        if any(not level for level in self.verified_levels):
            raise FormatError("VSA verifiedLevels holds an empty level")
        for level, count in self.dependency_levels.items():
            if not level or count < 0:
                raise FormatError(f"VSA dependencyLevels[{level!r}] must be a non-negative count")
        if self.slsa_version and not _SLSA_VERSION.fullmatch(self.slsa_version):
            raise FormatError(f"VSA slsaVersion {self.slsa_version!r} is not MAJOR.MINOR")

    @property
    def passed(self) -> bool:
        return self.verification_result == PASSED

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> VerificationSummary:
        what = "SLSA VSA"
        ver = jsonio.req_dict(obj, "verifier", what)
        levels = jsonio.opt_list(obj, "verifiedLevels", what)
        if "verifiedLevels" not in obj:
            raise FormatError(f"{what}: missing required field 'verifiedLevels'")
        if not all(isinstance(x, str) for x in levels):
            raise FormatError(f"{what}: verifiedLevels must be an array of strings")
        deps = jsonio.opt_dict(obj, "dependencyLevels", what)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in deps.values()):
            raise FormatError(f"{what}: dependencyLevels values must be integers")
        return cls(
            verifier=VsaVerifier(
                id=jsonio.req_str(ver, "id", f"{what} verifier"),
                version=jsonio.str_map(jsonio.opt_dict(ver, "version", what), f"{what} verifier.version"),
            ),
            time_verified=jsonio.req_str(obj, "timeVerified", what),
            resource_uri=jsonio.req_str(obj, "resourceUri", what),
            policy=ResourceDescriptor.from_dict(jsonio.req_dict(obj, "policy", what), f"{what} policy"),
            verification_result=jsonio.req_str(obj, "verificationResult", what),
            verified_levels=tuple(levels),
            input_attestations=descriptors(obj, "inputAttestations", what),
            dependency_levels=deps,
            slsa_version=jsonio.opt_str(obj, "slsaVersion", what),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> VerificationSummary:
        return cls.from_dict(jsonio.load_object(data, "SLSA VSA", max_size=MAX_PREDICATE))

    @classmethod
    def from_statement(cls, statement: Statement) -> VerificationSummary:
        if statement.predicate_type != VSA_V1:
            raise FormatError(f"statement predicateType is {statement.predicate_type!r}, not SLSA VSA v1")
        return cls.from_dict(dict(statement.predicate))

    def to_dict(self) -> dict[str, Any]:
        verifier: dict[str, Any] = {"id": self.verifier.id}
        if self.verifier.version:
            verifier["version"] = dict(self.verifier.version)
        out: dict[str, Any] = {
            "verifier": verifier,
            "timeVerified": self.time_verified,
            "resourceUri": self.resource_uri,
            "policy": self.policy.to_dict(),
            "verificationResult": self.verification_result,
            "verifiedLevels": list(self.verified_levels),
        }
        if self.input_attestations:
            out["inputAttestations"] = [d.to_dict() for d in self.input_attestations]
        if self.dependency_levels:
            out["dependencyLevels"] = dict(self.dependency_levels)
        if self.slsa_version:
            out["slsaVersion"] = self.slsa_version
        return out

    def to_bytes(self) -> bytes:
        return jsonio.dump(self.to_dict())

    def statement(self, subject: tuple[ResourceDescriptor, ...]) -> Statement:
        return Statement(subject=subject, predicate_type=VSA_V1, predicate=self.to_dict())
