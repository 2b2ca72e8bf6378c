"""The signing policy: which statements a key may sign, judged by allow-lists, never by parsing claims.

The vendor's promise is "assembled and signed only in our signing jurisdiction". A statement cannot be trusted
to say truthfully where it was made, so nothing a statement claims can make it signable; claims can only make it
refused. A key signs a statement only if every step holds (numbered as :func:`judge` checks them):

1. the key is active (valid now, not rotated);
2. the key belongs to the conveyor's jurisdiction and has its private half here: a foreign key, or a key
   imported for verification, never signs;
3. a reserved predicate type (rotation, refusal, escrow, AV-DB audit and waiver, builder registry) comes from
   the one domain command that issues it (an :class:`Issuer`), never from a plain signing request;
4. the key's role signs that predicate type;
5. nothing in the statement names another jurisdiction: every field whose name contains ``jurisdiction``
   (any case, any Unicode compatibility form) holds exactly the key's jurisdiction, and every string that
   carries a ``jurisdiction`` parameter (query, fragment, userinfo, path; percent- and HTML-escapes decoded
   repeatedly) names exactly the key's jurisdiction;
6. SLSA provenance comes from a builder whose exact ``builder.id`` string the builder registry
   (:mod:`overt.keys.builders`) maps to the key's jurisdiction. Strings are compared exactly: no URL parsing.

Pure: no I/O. The builder registry arrives as data in :class:`SigningPolicy`; :mod:`overt.keys.signing` logs
the verdict.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
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
BUILDER_REGISTRY_V1 = "https://overt.dev/attestation/builder-registry/v1"

# Reserved predicate types and the one command that issues each. A plain signing request ('overt attest sign')
# never produces one: a rotation signed on request could introduce any key, an escrow record could vouch for a
# source nobody escrowed, a registry could admit any builder.
RESERVED: Mapping[str, str] = {
    KEY_ROTATION_V1: "'overt keys rotate'",
    SIGNING_REFUSAL_V1: "the signing service itself, unsigned",
    SOURCE_ESCROW_V1: "'overt source add'",
    AVDB_AUDIT_V1: "'overt avdb audit' and 'overt avdb build'",
    AVDB_WAIVER_V1: "'overt avdb waive'",
    BUILDER_REGISTRY_V1: "'overt keys builders add' and 'remove'",
}

# What each role may sign. Every role may introduce its own successor (rotation). The log and witness roles
# sign checkpoints (signed notes), never statements; TUF roles sign TUF metadata through python-tuf.
ROLE_PREDICATES: Mapping[Role, frozenset[str]] = {
    Role.BUILDER: frozenset({SLSA_PROVENANCE_V1, SOURCE_ESCROW_V1}),
    Role.RELEASE: frozenset({SLSA_PROVENANCE_V1, BUILDER_REGISTRY_V1}),
    Role.AUDITOR: frozenset({VSA_V1, AVDB_AUDIT_V1, AVDB_WAIVER_V1}),
}

MAX_DECODING_ROUNDS = 8
_WORD = re.compile(r"jurisdiction", re.IGNORECASE)
# A claim: the word, the rest of a parameter name (``jurisdictions``, ``jurisdiction[]``, ``jurisdiction.code``),
# a separator (= : or a path slash), and the value up to the next URL delimiter.
_CLAIM = re.compile(r"jurisdiction[\w\[\].\-]*\s*[=:/]\s*([^&#?/@\s]*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Issuer:
    """The domain command that issues one reserved predicate type. Only that command's module holds one.

    This keeps operators off the reserved path: no command hands a caller-chosen statement to
    :meth:`overt.keys.signing.SigningService.issue`. (Python code can build an Issuer; it is a capability by
    convention, not a secret.)
    """

    predicate_type: str

    def __post_init__(self) -> None:
        if self.predicate_type not in RESERVED or self.predicate_type == SIGNING_REFUSAL_V1:
            raise ValueError(f"{self.predicate_type} is not a reserved type a command issues")


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningPolicy:
    """What the judge needs besides the key and the statement: the conveyor's jurisdiction and its builders."""

    jurisdiction: str  # the conveyor's: the only jurisdiction whose keys sign here
    builders: Mapping[str, str] = field(default_factory=dict)  # exact builder.id -> jurisdiction


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why a key refused a statement: a one-line reason and the jurisdictions the statement named."""

    reason: str
    claimed: tuple[str, ...] = ()


def allowed_predicates(role: Role) -> frozenset[str]:
    return ROLE_PREDICATES.get(role, frozenset()) | {KEY_ROTATION_V1}


# --- step 5: claims anywhere in the statement -------------------------------------------------------------


def _pointer(path: str, key: str | int) -> str:
    """RFC 6901 JSON Pointer of a child: one spelling for where a claim sits."""
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _visible(text: str) -> str:
    """NFKC without format characters (zero-width joiners and the like), as a reader would see the text."""
    return "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")


def _decodings(text: str) -> Iterator[str]:
    """``text`` and each stage of decoding percent- and HTML-escapes, until nothing changes."""
    current = _visible(text)
    yield current
    for _ in range(MAX_DECODING_ROUNDS):
        decoded = _visible(html.unescape(parse.unquote(current)))
        if decoded == current:
            return
        current = decoded
        yield current
    raise FormatError(f"a string is escaped more than {MAX_DECODING_ROUNDS} times over")


def _names_jurisdiction(key: str) -> bool:
    """Whether a field name says ``jurisdiction``, in any case, escaping or spacing (``juris_diction``)."""
    return any(
        _WORD.search(stage) or _WORD.search("".join(c for c in stage if c.isalpha()))
        for stage in _decodings(key)
    )


def _string_claims(text: str) -> list[str]:
    """Every jurisdiction value ``text`` carries as a parameter, at every stage of decoding."""
    return [m.group(1) for stage in _decodings(text) if _WORD.search(stage) for m in _CLAIM.finditer(stage)]


def _base64_text(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _walk(root: Any, path: str) -> Iterator[tuple[str, str | None, Any]]:
    """(pointer, key, value) for every value under ``root``, in document order; iterative, so depth cannot
    exhaust the stack."""
    stack: list[tuple[str, str | None, Any]] = [(path, None, root)]
    while stack:
        where, key, value = stack.pop()
        yield where, key, value
        if isinstance(value, Mapping):
            stack.extend(reversed([(_pointer(where, k), str(k), v) for k, v in value.items()]))
        elif isinstance(value, list | tuple):
            stack.extend(reversed([(_pointer(where, i), None, v) for i, v in enumerate(value)]))


def foreign_claims(statement: Statement, jurisdiction: str) -> list[tuple[str, str]]:
    """(pointer, claimed value) for every place the statement names a jurisdiction other than ``jurisdiction``.

    Walks subjects and predicate. A field named like ``jurisdiction`` must hold exactly ``jurisdiction`` (a
    list, an object or a number is no agreement); any string, and any field name, that carries a
    ``jurisdiction`` parameter must give exactly ``jurisdiction`` as its value. ``content`` fields are
    checked as the text they encode too.
    """
    found: list[tuple[str, str]] = []
    doc = {"subject": [s.to_dict() for s in statement.subject], "predicate": dict(statement.predicate)}
    for where, key, value in _walk(doc, ""):
        if key is not None:
            if _names_jurisdiction(key) and value != jurisdiction:
                shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                found.append((where, shown[:64]))
            found.extend((where, c[:64]) for c in _string_claims(key) if c != jurisdiction)
        if isinstance(value, str):
            texts = [value]
            if key == "content" and (decoded := _base64_text(value)) is not None:
                texts.append(decoded)
            found.extend((where, c[:64]) for t in texts for c in _string_claims(t) if c != jurisdiction)
    return found


# --- the judge ----------------------------------------------------------------------------------------------


def _check_key(record: KeyRecord, policy: SigningPolicy, now: datetime) -> Refusal | None:
    status = record.status(now)
    if status != "active":
        return Refusal(reason=f"key {record.keyid[:16]} is {status}")
    if record.jurisdiction != policy.jurisdiction:
        return Refusal(
            reason=(
                f"key {record.keyid[:16]} belongs to {record.jurisdiction}, outside this conveyor's jurisdiction "
                f"{policy.jurisdiction}: a foreign key verifies here, it never signs"
            ),
            claimed=(record.jurisdiction,),
        )
    if not record.uri:
        return Refusal(
            reason=f"key {record.keyid[:16]} was imported for verification only: it has no private half here"
        )
    return None


def _check_type(record: KeyRecord, statement: Statement, issuer: Issuer | None) -> Refusal | None:
    ptype = statement.predicate_type
    command = RESERVED.get(ptype)
    if command is not None and (issuer is None or issuer.predicate_type != ptype):
        return Refusal(reason=f"{ptype} statements are issued only by {command}, never signed on request")
    if ptype not in allowed_predicates(record.role):
        allowed = ", ".join(sorted(allowed_predicates(record.role)))
        return Refusal(reason=f"a {record.role.value} key does not sign {ptype} (it signs: {allowed})")
    return None


def _check_builder(record: KeyRecord, statement: Statement, policy: SigningPolicy) -> Refusal | None:
    try:
        builder_id = Provenance.from_statement(statement).run_details.builder.id
    except FormatError as e:
        return Refusal(reason=f"the statement's predicate is malformed: {e}")
    registered = policy.builders.get(builder_id)
    shown = json.dumps(builder_id)[:200]
    if registered is None:
        return Refusal(
            reason=(
                f"builder {shown} is not in this conveyor's builder registry ('overt keys builders list'); "
                "register its exact id with 'overt keys builders add', signed by the release key (a home's "
                "first release key, 'overt keys generate --role release', registers the home's own builder)"
            )
        )
    if registered != record.jurisdiction:
        return Refusal(
            reason=(
                f"builder {shown} is registered to {registered}, outside the key's jurisdiction "
                f"{record.jurisdiction}"
            ),
            claimed=(registered,),
        )
    return None


def judge(
    record: KeyRecord,
    statement: Statement,
    policy: SigningPolicy,
    *,
    now: datetime,
    issuer: Issuer | None = None,
) -> Refusal | None:
    """None if ``record`` may sign ``statement`` at ``now`` under ``policy``; otherwise the refusal.

    ``issuer`` is the domain command issuing a reserved predicate type (step 3); plain requests pass none.
    """
    # Steps 1-4: the key, then the predicate type.
    refusal = _check_key(record, policy, now) or _check_type(record, statement, issuer)
    if refusal is not None:
        return refusal
    # Step 5: any claim of another jurisdiction, anywhere, is a refusal.
    try:
        foreign = foreign_claims(statement, record.jurisdiction)
    except FormatError as e:
        return Refusal(reason=f"the statement cannot be judged: {e}")
    if foreign:
        where, value = foreign[0]
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        return Refusal(
            reason=(
                f"statement names jurisdiction {json.dumps(value)} at {where}{more}, outside the key's "
                f"jurisdiction {record.jurisdiction}"
            ),
            claimed=tuple(dict.fromkeys(v for _, v in foreign))[:16],
        )
    # Step 6: provenance only from a builder registered to the key's jurisdiction, compared exactly.
    if statement.predicate_type == SLSA_PROVENANCE_V1:
        return _check_builder(record, statement, policy)
    return None


def check(
    record: KeyRecord,
    statement: Statement,
    policy: SigningPolicy,
    *,
    now: datetime,
    issuer: Issuer | None = None,
) -> None:
    refusal = judge(record, statement, policy, now=now, issuer=issuer)
    if refusal is not None:
        raise PolicyError(refusal.reason, keyid=record.keyid, jurisdiction=record.jurisdiction)
