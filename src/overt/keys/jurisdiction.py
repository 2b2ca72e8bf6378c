"""The signing policy: which statements a key may sign, judged by its role, validity and jurisdiction.

The vendor's promise is "assembled and signed only in our signing jurisdiction". A statement says where it was
made:

* SLSA Provenance v1: the ``jurisdiction`` query parameter of ``runDetails.builder.id`` (the conveyor and its
  jurisdiction, e.g. ``https://overt.example/conveyor?jurisdiction=CH``) and, if present,
  ``buildDefinition.internalParameters.jurisdiction``. Provenance that names no jurisdiction is refused.
* Any other predicate: its top-level ``jurisdiction`` field, if it has one.

A key signs only statements whose every claim names its own jurisdiction, only predicate types its role
allows, and only within its validity. Pure: no I/O; :mod:`overt.keys.signing` logs the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib import parse

from overt.attest.provenance import SLSA_PROVENANCE_V1, Provenance
from overt.attest.statement import Statement
from overt.attest.vsa import VSA_V1
from overt.errors import FormatError, PolicyError
from overt.keys.registry import KeyRecord, Role

KEY_ROTATION_V1 = "https://overt.dev/attestation/key-rotation/v1"
SIGNING_REFUSAL_V1 = "https://overt.dev/attestation/signing-refusal/v1"
SOURCE_ESCROW_V1 = "https://overt.dev/attestation/source-escrow/v1"
AVDB_AUDIT_V1 = "https://overt.dev/attestation/avdb-audit/v1"
AVDB_WAIVER_V1 = "https://overt.dev/attestation/avdb-waiver/v1"

# What each role may sign. Every role may introduce its own successor (rotation). The log and witness roles
# sign checkpoints (signed notes), never statements; TUF roles sign TUF metadata through python-tuf.
ROLE_PREDICATES: Mapping[Role, frozenset[str]] = {
    Role.BUILDER: frozenset({SLSA_PROVENANCE_V1, SOURCE_ESCROW_V1}),
    Role.RELEASE: frozenset({SLSA_PROVENANCE_V1}),
    Role.AUDITOR: frozenset({VSA_V1, AVDB_AUDIT_V1, AVDB_WAIVER_V1}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why a key refused a statement: a one-line reason and the facts it rests on."""

    reason: str
    claimed: tuple[str, ...] = ()


def claimed_jurisdictions(statement: Statement) -> tuple[str, ...]:
    """Every jurisdiction the statement says it was built or assembled in (may be empty)."""
    claims: list[str] = []
    if statement.predicate_type == SLSA_PROVENANCE_V1:
        prov = Provenance.from_statement(statement)
        query = parse.parse_qs(parse.urlparse(prov.run_details.builder.id).query)
        claims.extend(query.get("jurisdiction", []))
        internal = prov.build_definition.internal_parameters.get("jurisdiction")
        if internal is not None:
            claims.append(str(internal))
    else:
        value = statement.predicate.get("jurisdiction")
        if value is not None:
            claims.append(str(value))
    return tuple(claims)


def allowed_predicates(role: Role) -> frozenset[str]:
    return ROLE_PREDICATES.get(role, frozenset()) | {KEY_ROTATION_V1}


def judge(record: KeyRecord, statement: Statement, now: datetime) -> Refusal | None:
    """None if ``record`` may sign ``statement`` at ``now``; otherwise the refusal."""
    status = record.status(now)
    if status != "active":
        return Refusal(reason=f"key {record.keyid[:16]} is {status}")
    if statement.predicate_type not in allowed_predicates(record.role):
        allowed = ", ".join(sorted(allowed_predicates(record.role)))
        return Refusal(
            reason=f"a {record.role.value} key does not sign {statement.predicate_type} (it signs: {allowed})"
        )
    try:
        claims = claimed_jurisdictions(statement)
    except FormatError as e:
        return Refusal(reason=f"the statement's predicate is malformed: {e}")
    if statement.predicate_type == SLSA_PROVENANCE_V1 and not claims:
        return Refusal(reason="the provenance does not say in which jurisdiction it was built")
    foreign = sorted({c for c in claims if c != record.jurisdiction})
    if foreign:
        return Refusal(
            reason=(
                f"statement was built or assembled in {', '.join(foreign)}, outside the key's jurisdiction "
                f"{record.jurisdiction}"
            ),
            claimed=claims,
        )
    return None


def check(record: KeyRecord, statement: Statement, now: datetime) -> None:
    refusal = judge(record, statement, now)
    if refusal is not None:
        raise PolicyError(refusal.reason, keyid=record.keyid, jurisdiction=record.jurisdiction)
