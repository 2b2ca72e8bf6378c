"""Access approvals: what a tenant's admin signs so that one member of the vendor's staff may read one resource
of the tenant's data, for one reason, for a bounded time.

The tenant's admin holds an Ed25519 private key (:mod:`overt.residency.adminkeys`); the vendor holds only
the public half, in the tenant directory (:class:`overt.residency.tenants.AdminKey`). An approval is
canonical JSON (:func:`overt.jsonio.dump`) with exactly these fields::

    {"_type": "https://overt.example/residency/access-approval/v1", "actor": "ana@vendor.example",
     "actor_country": "CH", "approval_id": "a-<32 hex>", "not_after": "2026-12-01T18:00:00Z",
     "not_before": "2026-12-01T10:00:00Z", "reason": "support-ticket", "resource": "telemetry:detections",
     "tenant": "t-<16 hex>", "ticket": "SUP-1234"}

signed as a DSSE envelope (payloadType :data:`APPROVAL_PAYLOAD_TYPE`) by the admin key. It is valid from
``not_before`` (included) to ``not_after`` (excluded), and a time box longer than :data:`MAX_TIME_BOX` is
refused whoever signed it. Reason codes are :data:`REASONS`; resources are :data:`RESOURCES` and
``telemetry:batch/<batch id>``, compared exactly (an approval for ``telemetry:detections`` does not cover
``telemetry:aggregates``).

:func:`verify_approval` checks an envelope as received, over its own payload bytes, and raises one
:class:`ApprovalError` subclass per failed check. Owns the wire type and its checks; does
not decide or log accesses (:mod:`overt.residency.accesslog`).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from overt import jsonio
from overt.attest.dsse import Envelope, sign_envelope
from overt.attest.statement import check_timestamp, format_timestamp
from overt.errors import FormatError, SignatureError, UsageError, VerificationError
from overt.residency.adminkeys import AdminSigner
from overt.residency.countries import check_country
from overt.residency.tenants import AdminKey, check_tenant_id

APPROVAL_TYPE = "https://overt.example/residency/access-approval/v1"
APPROVAL_PAYLOAD_TYPE = "application/vnd.overt.access-approval+json"
MAX_TIME_BOX = timedelta(days=7)  # the longest an approval may last, whatever the admin signed
MAX_APPROVAL = 8192  # bytes of an approval envelope
MAX_TICKET = 256

# The reason codes an approval may give, and what each means.
REASONS: dict[str, str] = {
    "incident-response": "investigating a security incident affecting the tenant",
    "customer-request": "the tenant asked the vendor to look at its data",
    "legal-order": "a court order or other legal obligation",
    "support-ticket": "answering a support case the tenant opened",
}
# The resources an approval may name, besides telemetry:batch/<batch id>.
RESOURCES: dict[str, str] = {
    "telemetry:detections": "the tenant's detection events",
    "telemetry:aggregates": "the tenant's per-rule, per-day aggregates",
}
BATCH_RESOURCE = "telemetry:batch/"
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_APPROVAL_ID = re.compile(r"a-[0-9a-f]{32}")
_UTC_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_FIELDS = frozenset(
    {"_type", "tenant", "approval_id", "actor", "actor_country", "reason", "ticket", "resource"}
    | {"not_before", "not_after"}
)
_WHAT = "access approval"


# --- values -------------------------------------------------------------------------------------------------


def check_actor(actor: str) -> str:
    """A staff member's name as the vendor's accounts spell it: 1-128 of letters, digits and ``._@+-``."""
    if not _ACTOR.fullmatch(actor):
        raise FormatError(
            f"actor {actor[:40]!r} must be 1 to 128 letters, digits and '._@+-', starting with a letter or digit"
        )
    return actor


def check_reason(reason: str) -> str:
    if reason not in REASONS:
        raise FormatError(f"reason {reason[:40]!r} is not one of {', '.join(REASONS)}")
    return reason


def check_resource(resource: str) -> str:
    """One of :data:`RESOURCES`, or ``telemetry:batch/<batch id>`` (8-64 of ``[A-Za-z0-9_-]``)."""
    if resource in RESOURCES:
        return resource
    if resource.startswith(BATCH_RESOURCE) and _BATCH_ID.fullmatch(resource[len(BATCH_RESOURCE) :]):
        return resource
    raise FormatError(
        f"resource {resource[:80]!r} is not one of {', '.join(RESOURCES)} or {BATCH_RESOURCE}<batch id>"
    )


def check_ticket(ticket: str) -> str:
    """Free text (a ticket or case number, a sentence): at most 256 characters, no control characters."""
    if len(ticket) > MAX_TICKET:
        raise FormatError(f"the ticket is at most {MAX_TICKET} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in ticket):
        raise FormatError("the ticket holds no control or format characters")
    return ticket


def parse_time(value: str, what: str) -> datetime:
    """An RFC 3339 time in UTC with second precision (``2026-12-01T10:00:00Z``), as approvals carry it."""
    check_timestamp(value, what)
    if not _UTC_SECONDS.fullmatch(value):
        raise FormatError(f"{what}: {value[:40]!r} must be in UTC to the second, as 2026-12-01T10:00:00Z")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_fields(obj: dict[str, Any], fields: frozenset[str], what: str) -> None:
    """Refuse an object that lacks one of ``fields`` or has any other."""
    missing, extra = sorted(fields - set(obj)), sorted(set(obj) - fields)
    problems = [f"missing {', '.join(missing)}"] if missing else []
    if extra:
        problems.append(f"unknown fields {', '.join(repr(k[:40]) for k in extra[:8])}")
    if problems:
        raise FormatError(f"{what}: {'; '.join(problems)}")


# --- the wire type ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    """One signed-off access: ``actor`` (in ``actor_country``) may read ``resource`` of ``tenant`` for
    ``reason`` from ``not_before`` until (excluded) ``not_after``."""

    tenant: str
    approval_id: str
    actor: str
    actor_country: str
    reason: str
    ticket: str
    resource: str
    not_before: datetime
    not_after: datetime

    def __post_init__(self) -> None:
        check_tenant_id(self.tenant)
        if not _APPROVAL_ID.fullmatch(self.approval_id):
            raise FormatError(f"approval id {self.approval_id[:40]!r} is not a- and 32 lower-case hex digits")
        check_actor(self.actor)
        check_country(self.actor_country)
        check_reason(self.reason)
        check_ticket(self.ticket)
        check_resource(self.resource)
        for when in (self.not_before, self.not_after):
            if when.tzinfo is None or when.utcoffset() != timedelta(0) or when.microsecond:
                raise FormatError(f"{_WHAT}: times are in UTC to the second, not {when.isoformat()}")
        if self.not_after <= self.not_before:
            raise FormatError(f"{_WHAT}: not_after must be later than not_before")

    @classmethod
    def new(
        cls,
        *,
        tenant: str,
        actor: str,
        actor_country: str,
        reason: str,
        resource: str,
        not_before: datetime,
        not_after: datetime,
        ticket: str = "",
    ) -> Approval:
        """An approval with a fresh random id; times are cut to the second, in UTC."""
        return cls(
            tenant=tenant,
            approval_id=f"a-{secrets.token_hex(16)}",
            actor=actor,
            actor_country=actor_country,
            reason=reason,
            ticket=ticket,
            resource=resource,
            not_before=_utc_second(not_before),
            not_after=_utc_second(not_after),
        )

    @property
    def time_box(self) -> timedelta:
        return self.not_after - self.not_before

    def covers(self, at: datetime) -> bool:
        return self.not_before <= at < self.not_after

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": APPROVAL_TYPE,
            "tenant": self.tenant,
            "approval_id": self.approval_id,
            "actor": self.actor,
            "actor_country": self.actor_country,
            "reason": self.reason,
            "ticket": self.ticket,
            "resource": self.resource,
            "not_before": format_timestamp(self.not_before),
            "not_after": format_timestamp(self.not_after),
        }

    def to_bytes(self) -> bytes:
        return jsonio.dump(self.to_dict())

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Approval:
        check_fields(obj, _FIELDS, _WHAT)
        if obj["_type"] != APPROVAL_TYPE:
            raise FormatError(f"{_WHAT}: _type must be {APPROVAL_TYPE}")
        text = {k: jsonio.req_str(obj, k, _WHAT, allow_empty=k == "ticket") for k in _FIELDS}
        return cls(
            tenant=text["tenant"],
            approval_id=text["approval_id"],
            actor=text["actor"],
            actor_country=text["actor_country"],
            reason=text["reason"],
            ticket=text["ticket"],
            resource=text["resource"],
            not_before=parse_time(text["not_before"], f"{_WHAT} not_before"),
            not_after=parse_time(text["not_after"], f"{_WHAT} not_after"),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Approval:
        return cls.from_dict(jsonio.load_object(data, _WHAT, max_size=MAX_APPROVAL))


def _utc_second(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("approval times must be timezone-aware")
    return when.astimezone(UTC).replace(microsecond=0)


def sign_approval(approval: Approval, signer: AdminSigner) -> bytes:
    """The DSSE envelope (bytes) of ``approval``, signed by the admin key."""
    return sign_envelope(approval.to_bytes(), APPROVAL_PAYLOAD_TYPE, [signer]).to_bytes()


def issue_approval(
    approval: Approval, signer: AdminSigner, *, max_time_box: timedelta = MAX_TIME_BOX
) -> bytes:
    """:func:`sign_approval`, refusing a time box the vendor would refuse (longer than ``max_time_box``)."""
    if approval.time_box > max_time_box:
        raise UsageError(
            f"an approval lasts at most {_span(max_time_box)}; this one would last {_span(approval.time_box)}"
        )
    return sign_approval(approval, signer)


def _span(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} hours" if hours < 48 else f"{hours / 24:g} days"


# --- verification -------------------------------------------------------------------------------------------


class ApprovalError(VerificationError):
    """An approval does not allow the access it is presented for. ``check`` names the check that failed."""

    check: ClassVar[str] = "approval"


class ApprovalMalformedError(ApprovalError):
    """The approval is not a DSSE envelope holding an access approval (an approval that cannot be read
    approves nothing)."""

    check: ClassVar[str] = "format"


class ApprovalSignatureError(ApprovalError, SignatureError):
    """No signature on the approval verifies under the tenant's admin key (another key, or altered bytes)."""

    check: ClassVar[str] = "signature"


class ApprovalMismatchError(ApprovalError):
    """The approval is for another tenant, actor, actor country or resource. ``field``, ``expected`` and
    ``approved`` say which and how."""

    check: ClassVar[str] = "scope"

    def __init__(self, *, field: str, expected: str, approved: str) -> None:
        super().__init__(
            f"the approval is for {field} {approved!r}, not {expected!r}",
            field=field,
            expected=expected,
            approved=approved,
        )
        self.field = field
        self.expected = expected
        self.approved = approved


class ApprovalTimeError(ApprovalError):
    """The approval is not valid at ``at`` (``not_before``, ``not_after``: its time box)."""

    check: ClassVar[str] = "time"

    def __init__(self, message: str, *, at: datetime, approval: Approval) -> None:
        super().__init__(
            message,
            at=format_timestamp(at),
            not_before=format_timestamp(approval.not_before),
            not_after=format_timestamp(approval.not_after),
            approval_id=approval.approval_id,
        )
        self.at = at
        self.not_before = approval.not_before
        self.not_after = approval.not_after


class ApprovalNotYetValidError(ApprovalTimeError):
    """The approval's time box has not begun."""


class ApprovalExpiredError(ApprovalTimeError):
    """The approval's time box is over."""


class ApprovalTooLongError(ApprovalError):
    """The approval's time box is longer than the most an approval may last."""

    check: ClassVar[str] = "time box"


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedApproval:
    """An approval that verified, the keyid that signed it, and the envelope bytes as received."""

    approval: Approval
    keyid: str
    envelope: bytes


def verify_approval(
    envelope_bytes: bytes,
    *,
    admin_key: AdminKey,
    tenant: str,
    actor: str,
    actor_country: str,
    resource: str,
    now: datetime,
    max_time_box: timedelta = MAX_TIME_BOX,
) -> VerifiedApproval:
    """Check that ``envelope_bytes`` lets ``actor`` (in ``actor_country``) read ``resource`` of ``tenant`` at
    ``now``, signed by the tenant's ``admin_key``. Returns the approval or raises an :class:`ApprovalError`.

    Steps: (1) the bytes are a DSSE envelope of type :data:`APPROVAL_PAYLOAD_TYPE`; (2) a signature verifies
    under ``admin_key`` over PAE(payloadType, payload), the payload bytes as received; (3) the payload is an
    approval; (4) its time box is at most ``max_time_box``; (5) it names this tenant, actor, actor country and
    resource; (6) ``now`` is inside its time box.
    """
    # 1. The envelope.
    if len(envelope_bytes) > MAX_APPROVAL:
        raise ApprovalMalformedError(f"an approval envelope is at most {MAX_APPROVAL} bytes")
    try:
        envelope = Envelope.from_bytes(envelope_bytes)
    except FormatError as e:
        raise ApprovalMalformedError(f"the approval is not a DSSE envelope: {e}") from e
    if envelope.payload_type != APPROVAL_PAYLOAD_TYPE:
        raise ApprovalMalformedError(
            f"the envelope's payloadType is {envelope.payload_type[:80]!r}, not {APPROVAL_PAYLOAD_TYPE}"
        )
    # 2. The signature, before anything the payload says is believed.
    _check_signature(envelope, admin_key)
    # 3. The payload.
    try:
        approval = Approval.from_bytes(envelope.payload)
    except FormatError as e:
        raise ApprovalMalformedError(f"the signed payload is not an access approval: {e}") from e
    # 4. The time box.
    if approval.time_box > max_time_box:
        raise ApprovalTooLongError(
            f"the approval lasts {_span(approval.time_box)}, longer than the {_span(max_time_box)} an approval "
            "may last",
            time_box_seconds=int(approval.time_box.total_seconds()),
            max_seconds=int(max_time_box.total_seconds()),
        )
    # 5. What it approves.
    for field, expected, approved in (
        ("tenant", tenant, approval.tenant),
        ("actor", actor, approval.actor),
        ("actor_country", actor_country, approval.actor_country),
        ("resource", resource, approval.resource),
    ):
        if expected != approved:
            raise ApprovalMismatchError(field=field, expected=expected, approved=approved)
    # 6. When.
    _check_time(approval, now)
    return VerifiedApproval(approval=approval, keyid=admin_key.keyid, envelope=envelope_bytes)


def _check_signature(envelope: Envelope, admin_key: AdminKey) -> None:
    key = load_pem_public_key(admin_key.pem.encode())
    assert isinstance(key, Ed25519PublicKey)  # AdminKey.from_pem admits nothing else
    message = envelope.pae()
    for sig in envelope.signatures:
        try:
            key.verify(sig.sig, message)
            return
        except InvalidSignature:
            continue
    raise ApprovalSignatureError(
        f"the approval is not signed by the tenant's admin key {admin_key.keyid[:16]}"
        + ("" if envelope.signatures else " (it has no signature)"),
        admin_keyid=admin_key.keyid,
        signed_by=[s.keyid for s in envelope.signatures],
    )


def _check_time(approval: Approval, now: datetime) -> None:
    if now < approval.not_before:
        raise ApprovalNotYetValidError(
            f"the approval is valid only from {format_timestamp(approval.not_before)}",
            at=now,
            approval=approval,
        )
    if now >= approval.not_after:
        raise ApprovalExpiredError(
            f"the approval expired at {format_timestamp(approval.not_after)}", at=now, approval=approval
        )
