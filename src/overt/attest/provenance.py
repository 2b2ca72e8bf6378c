"""SLSA Provenance v1 predicate (specs/slsa/build-provenance.md): how an artifact was built.

Owns the predicate schema and its validation; the statement around it is :mod:`overt.attest.statement`. It does
not decide what a builder may claim (that is :mod:`overt.keys.jurisdiction`) nor fill fields from a build (that
is the conveyor, issue 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from overt import jsonio
from overt.attest.statement import ResourceDescriptor, Statement, check_timestamp, descriptors
from overt.errors import FormatError

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
MAX_PREDICATE = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildDefinition:
    build_type: str
    external_parameters: Mapping[str, Any]
    internal_parameters: Mapping[str, Any] = field(default_factory=dict)
    resolved_dependencies: tuple[ResourceDescriptor, ...] = ()

    def __post_init__(self) -> None:
        if not self.build_type:
            raise FormatError("provenance buildDefinition.buildType is empty")

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> BuildDefinition:
        what = "provenance buildDefinition"
        return cls(
            build_type=jsonio.req_str(obj, "buildType", what),
            external_parameters=jsonio.req_dict(obj, "externalParameters", what),
            internal_parameters=jsonio.opt_dict(obj, "internalParameters", what),
            resolved_dependencies=descriptors(obj, "resolvedDependencies", what),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "buildType": self.build_type,
            "externalParameters": dict(self.external_parameters),
        }
        if self.internal_parameters:
            out["internalParameters"] = dict(self.internal_parameters)
        if self.resolved_dependencies:
            out["resolvedDependencies"] = [d.to_dict() for d in self.resolved_dependencies]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Builder:
    id: str
    version: Mapping[str, str] = field(default_factory=dict)
    builder_dependencies: tuple[ResourceDescriptor, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            raise FormatError("provenance runDetails.builder.id is empty")

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Builder:
        what = "provenance runDetails.builder"
        return cls(
            id=jsonio.req_str(obj, "id", what),
            version=jsonio.str_map(jsonio.opt_dict(obj, "version", what), f"{what}.version"),
            builder_dependencies=descriptors(obj, "builderDependencies", what),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.version:
            out["version"] = dict(self.version)
        if self.builder_dependencies:
            out["builderDependencies"] = [d.to_dict() for d in self.builder_dependencies]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildMetadata:
    invocation_id: str = ""
    started_on: str = ""
    finished_on: str = ""

    def __post_init__(self) -> None:
        for name, value in (("startedOn", self.started_on), ("finishedOn", self.finished_on)):
            if value:
                check_timestamp(value, f"provenance metadata.{name}")

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> BuildMetadata:
        what = "provenance runDetails.metadata"
        return cls(
            invocation_id=jsonio.opt_str(obj, "invocationId", what),
            started_on=jsonio.opt_str(obj, "startedOn", what),
            finished_on=jsonio.opt_str(obj, "finishedOn", what),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {}
        if self.invocation_id:
            out["invocationId"] = self.invocation_id
        if self.started_on:
            out["startedOn"] = self.started_on
        if self.finished_on:
            out["finishedOn"] = self.finished_on
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDetails:
    builder: Builder
    metadata: BuildMetadata = field(default_factory=BuildMetadata)
    byproducts: tuple[ResourceDescriptor, ...] = ()

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> RunDetails:
        what = "provenance runDetails"
        return cls(
            builder=Builder.from_dict(jsonio.req_dict(obj, "builder", what)),
            metadata=BuildMetadata.from_dict(jsonio.opt_dict(obj, "metadata", what)),
            byproducts=descriptors(obj, "byproducts", what),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"builder": self.builder.to_dict()}
        meta = self.metadata.to_dict()
        if meta:
            out["metadata"] = meta
        if self.byproducts:
            out["byproducts"] = [d.to_dict() for d in self.byproducts]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """The ``predicate`` of a Statement whose ``predicateType`` is SLSA Provenance v1."""

    build_definition: BuildDefinition
    run_details: RunDetails

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Provenance:
        what = "SLSA provenance"
        return cls(
            build_definition=BuildDefinition.from_dict(jsonio.req_dict(obj, "buildDefinition", what)),
            run_details=RunDetails.from_dict(jsonio.req_dict(obj, "runDetails", what)),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Provenance:
        return cls.from_dict(jsonio.load_object(data, "SLSA provenance", max_size=MAX_PREDICATE))

    @classmethod
    def from_statement(cls, statement: Statement) -> Provenance:
        if statement.predicate_type != SLSA_PROVENANCE_V1:
            raise FormatError(
                f"statement predicateType is {statement.predicate_type!r}, not SLSA Provenance v1"
            )
        return cls.from_dict(dict(statement.predicate))

    def to_dict(self) -> dict[str, Any]:
        return {"buildDefinition": self.build_definition.to_dict(), "runDetails": self.run_details.to_dict()}

    def to_bytes(self) -> bytes:
        return jsonio.dump(self.to_dict())

    def statement(self, subject: tuple[ResourceDescriptor, ...]) -> Statement:
        return Statement(subject=subject, predicate_type=SLSA_PROVENANCE_V1, predicate=self.to_dict())
