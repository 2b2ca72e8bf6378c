"""Staff access to a tenant's data: approved by the tenant's admin, logged first, read only in its home.

:func:`access` is the one way a member of the vendor's staff reads a tenant's telemetry. In order:

1. The request is checked for form (actor, country, reason code, resource): a malformed request is a
   :class:`~overt.errors.FormatError` and is not logged (it names no one the log could hold).
2. The tenant is looked up in the directory; its home jurisdiction and its admin key (the one it registered
   at creation) come from there, never from the request.
3. The approval is verified (:func:`overt.residency.approvals.verify_approval`) under that admin key, for this
   tenant, actor, actor country and resource, at the time of the access; its reason code must also be the one
   the request gives. A tenant under migration (status ``migrating``) is refused as well: its data is being
   moved between two stores, and no read is served from either until the move is over.
4. The outcome is appended to the access log of the tenant's home jurisdiction
   (:func:`overt.residency.accesslog.record`). A refusal is recorded with its reason and the approval presented
   (if it was a DSSE envelope at all), and then raised as :class:`AccessRefused`. A granted access is recorded
   before any data is read: if the append fails, or no published checkpoint covers it, the error propagates
   and no data is returned.
5. Only then is the resource read, from the home jurisdiction's store only (``telemetry:aggregates``,
   ``telemetry:detections`` as rows, ``telemetry:batch/<id>`` as the raw batch bytes).

Steps 3 to 5 hold the tenant's freeze guard (:func:`overt.residency.migration.tenant_guard`) shared, so that a
migration's freeze waits for an access in flight, and an access never reads a store a purge is emptying.

The router (:mod:`overt.residency.router`) is not used: the store opened is the home's by construction, and
the checks it would add (stamps) are :func:`overt.residency.stores.open_store`'s. Owns the decision and its
order; the approval format is :mod:`~overt.residency.approvals`, the log :mod:`~overt.residency.accesslog`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from overt import jsonio
from overt.attest.dsse import Envelope
from overt.attest.statement import format_timestamp
from overt.errors import ConfigError, Error, FormatError, PolicyError, UnpublishedError
from overt.home import Home
from overt.keys.signing import LogReceipt
from overt.residency.accesslog import GRANTED, REFUSED, AccessEntry, access_log_name, record
from overt.residency.approvals import (
    BATCH_RESOURCE,
    MAX_APPROVAL,
    ApprovalError,
    ApprovalMismatchError,
    VerifiedApproval,
    check_actor,
    check_reason,
    check_resource,
    verify_approval,
)
from overt.residency.countries import check_country
from overt.residency.migration import tenant_guard
from overt.residency.stores import EVENT_COLUMNS, JurisdictionStore, event_rows, open_store
from overt.residency.telemetry import parse_batch
from overt.residency.tenants import MIGRATING, AdminKey, Tenant, check_tenant_id, open_directory

MAX_REFUSAL = 1000


class AccessRefused(PolicyError):
    """A staff access was refused. ``refusal`` says why; ``log_index`` is the index of the refusal in
    ``log`` once a published checkpoint covers it, else None (``logged_problem`` says what went wrong)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        refusal: str,
        log: str,
        log_index: int | None,
        logged_problem: str | None = None,
        check: str = "",
    ) -> None:
        if log_index is not None:
            where = f"; the refusal is logged at index {log_index} of {log}"
        else:
            where = f"; the refusal could NOT be logged in {log}: {logged_problem}"
        super().__init__(
            f"access to tenant {tenant_id} refused: {refusal}{where}",
            tenant=tenant_id,
            log=log,
            log_index=log_index,
            check=check,
        )
        self.tenant_id = tenant_id
        self.refusal = refusal
        self.log = log
        self.log_index = log_index


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessRequest:
    """Who asks to read what, and why. Checked for form on construction."""

    tenant_id: str
    actor: str
    actor_country: str
    reason: str
    resource: str

    def __post_init__(self) -> None:
        check_tenant_id(self.tenant_id)
        check_actor(self.actor)
        check_country(self.actor_country)
        check_reason(self.reason)
        check_resource(self.resource)


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffAccess:
    """A granted access: where it is logged and the data read. ``data`` is JSON: the raw batch for
    ``telemetry:batch/<id>``, else ``{"tenant", "jurisdiction", "resource", "rows"}``."""

    tenant_id: str
    jurisdiction: str
    resource: str
    actor: str
    approval_id: str
    time: datetime
    log: str
    log_index: int
    tree_size: int
    data: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "jurisdiction": self.jurisdiction,
            "resource": self.resource,
            "actor": self.actor,
            "approval_id": self.approval_id,
            "time": format_timestamp(self.time),
            "log": self.log,
            "log_index": self.log_index,
            "tree_size": self.tree_size,
            "bytes": len(self.data),
        }


def access(
    home: Home,
    *,
    tenant_id: str,
    actor: str,
    actor_country: str,
    reason: str,
    resource: str,
    approval: bytes | None,
    now: datetime | None = None,
) -> StaffAccess:
    """Read ``resource`` of tenant ``tenant_id`` for ``actor`` under ``approval`` (see the module docstring).

    Raises:
        FormatError: the request is malformed (not logged).
        ConfigError: no such tenant (not logged), or its home has no store.
        AccessRefused: no approval, or one that does not allow this access, or the tenant is migrating
            (logged in the tenant's home access log, when the log could take it).
        UnpublishedError, StorageError: the granted access could not be logged; no data was read.
    """
    request = AccessRequest(
        tenant_id=tenant_id, actor=actor, actor_country=actor_country, reason=reason, resource=resource
    )
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    with tenant_guard(home, request.tenant_id, exclusive=False):
        tenant = _tenant(home, request.tenant_id)
        try:
            verified = _allow(request, tenant, approval, at)
        except ApprovalError as e:
            raise _refuse(home, request, tenant, approval, at, refusal=str(e), check=e.check) from e
        except _Migrating as e:
            raise _refuse(home, request, tenant, approval, at, refusal=str(e), check="status") from e
        entry = _entry(request, tenant, at, outcome=GRANTED, approval=_envelope(approval))
        receipt = record(home, tenant.jurisdiction, entry)  # before any data is read
        with open_store(home, tenant.jurisdiction) as store:
            data = read_resource(store, tenant, request.resource)
    return StaffAccess(
        tenant_id=tenant.id,
        jurisdiction=tenant.jurisdiction,
        resource=request.resource,
        actor=request.actor,
        approval_id=verified.approval.approval_id,
        time=at,
        log=access_log_name(tenant.jurisdiction),
        log_index=receipt.index,
        tree_size=receipt.tree_size,
        data=data,
    )


class _Migrating(Exception):
    pass


def _tenant(home: Home, tenant_id: str) -> Tenant:
    directory = open_directory(home)
    try:
        return directory.tenant(tenant_id)
    finally:
        directory.close()


def _allow(request: AccessRequest, tenant: Tenant, approval: bytes | None, at: datetime) -> VerifiedApproval:
    """Step 3: the approval allows this access now, and the tenant is not migrating."""
    if approval is None:
        raise ApprovalError("no approval was presented: staff access needs one signed by the tenant's admin")
    verified = verify_approval(
        approval,
        admin_key=AdminKey(pem=tenant.admin_key, keyid=tenant.admin_keyid),
        tenant=tenant.id,
        actor=request.actor,
        actor_country=request.actor_country,
        resource=request.resource,
        now=at,
    )
    if verified.approval.reason != request.reason:
        raise ApprovalMismatchError(
            field="reason", expected=request.reason, approved=verified.approval.reason
        )
    if tenant.status == MIGRATING:
        raise _Migrating(
            f"tenant {tenant.id} is migrating out of {tenant.jurisdiction}: its data is read again once the "
            "migration is over"
        )
    return verified


def _envelope(approval: bytes | None) -> Envelope | None:
    """The approval as the log keeps it, if it is a DSSE envelope at all (else the refusal says so)."""
    if approval is None or len(approval) > MAX_APPROVAL:
        return None
    try:
        return Envelope.from_bytes(approval)
    except FormatError:
        return None


def _entry(
    request: AccessRequest,
    tenant: Tenant,
    at: datetime,
    *,
    outcome: str,
    approval: Envelope | None,
    refusal: str | None = None,
    detail: str = "",
) -> AccessEntry:
    return AccessEntry(
        time=at,
        jurisdiction=tenant.jurisdiction,
        tenant=tenant.id,
        actor=request.actor,
        actor_country=request.actor_country,
        reason=request.reason,
        resource=request.resource,
        outcome=outcome,
        refusal=refusal,
        approval=approval,
        detail=detail,
    )


def _one_line(text: str) -> str:
    clean = "".join(" " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in text)
    return clean if len(clean) <= MAX_REFUSAL else clean[: MAX_REFUSAL - 3] + "..."


def _refuse(
    home: Home,
    request: AccessRequest,
    tenant: Tenant,
    approval: bytes | None,
    at: datetime,
    *,
    refusal: str,
    check: str,
) -> AccessRefused:
    """Step 4 for a refusal: log it, and say whether that worked."""
    envelope = _envelope(approval)
    detail = (
        "" if approval is None or envelope is not None else "the approval presented is not a DSSE envelope"
    )
    refusal = _one_line(refusal)
    entry = _entry(request, tenant, at, outcome=REFUSED, approval=envelope, refusal=refusal, detail=detail)
    log = access_log_name(tenant.jurisdiction)
    try:
        receipt: LogReceipt = record(home, tenant.jurisdiction, entry)
    except UnpublishedError as e:
        problem = f"it is appended at index {e.evidence.get('index')}, but no published checkpoint covers it"
        return AccessRefused(
            tenant_id=tenant.id, refusal=refusal, log=log, log_index=None, logged_problem=problem, check=check
        )
    except Error as e:
        return AccessRefused(
            tenant_id=tenant.id, refusal=refusal, log=log, log_index=None, logged_problem=str(e), check=check
        )
    return AccessRefused(tenant_id=tenant.id, refusal=refusal, log=log, log_index=receipt.index, check=check)


# --- reading ------------------------------------------------------------------------------------------------


def read_resource(store: JurisdictionStore, tenant: Tenant, resource: str) -> bytes:
    """Step 5: the resource of ``tenant`` from its home store, as JSON bytes."""
    if store.jurisdiction != tenant.jurisdiction:
        raise PolicyError(
            f"tenant {tenant.id} is homed in {tenant.jurisdiction}: its data is not read from "
            f"{store.jurisdiction}'s store",
            tenant=tenant.id,
            store=store.jurisdiction,
        )
    if resource.startswith(BATCH_RESOURCE):
        return _batch(store, tenant, resource[len(BATCH_RESOURCE) :])
    if resource == "telemetry:aggregates":
        rows: list[Any] = [r.to_dict() for r in store.aggregates(tenant.id)]
    else:
        rows = [
            dict(zip(EVENT_COLUMNS, row, strict=True))
            for exported in store.export_batches(tenant.id)
            for row in event_rows(tenant.id, parse_batch(exported.raw))
        ]
    return jsonio.dump(
        {"tenant": tenant.id, "jurisdiction": store.jurisdiction, "resource": resource, "rows": rows}
    )


def _batch(store: JurisdictionStore, tenant: Tenant, batch_id: str) -> bytes:
    if batch_id not in store.batch_digests(tenant.id):
        raise ConfigError(f"tenant {tenant.id} has no batch {batch_id} in {store.jurisdiction}")
    for exported in store.export_batches(tenant.id):
        if exported.batch_id == batch_id:
            return exported.raw
    raise ConfigError(f"batch {batch_id} of tenant {tenant.id} was removed while it was read")
