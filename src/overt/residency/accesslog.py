"""The access-transparency log of each jurisdiction: its entries and how the vendor appends them.

Each jurisdiction ``J`` has its own log, a named log of the home (:meth:`overt.home.Home.add_log`): name
``access-<j>`` (:func:`access_log_name`, e.g. ``access-ch``), origin ``<host of the main origin>/access/<J>``
(e.g. ``overt.example/access/CH``), its own Ed25519 log key, whose record names ``J``, and its tiles,
checkpoint and proofs published under ``<home>/public/logs/access-<j>/``, like the main log's. It is made on
first use (:func:`ensure_access_log`).

An entry (:class:`AccessEntry`) is canonical JSON (:func:`overt.jsonio.dump`) with exactly these fields::

    {"_type": "https://overt.example/residency/access/v1", "kind": "staff-access",
     "time": "2026-12-01T10:05:00Z", "jurisdiction": "CH", "tenant": "t-<16 hex>",
     "actor": "ana@vendor.example", "actor_country": "CH", "reason": "support-ticket",
     "resource": "telemetry:detections", "outcome": "granted", "refusal": null,
     "approval": {<the DSSE envelope of the approval, as presented>}, "detail": ""}

``kind`` is ``staff-access`` (a member of staff asked to read a tenant's data: ``granted`` with the approval
that allowed it, or ``refused`` with ``refusal`` saying why, and the approval presented, if any),
``migration-step`` or ``routing-refusal`` (events of the migration and the router, which log here too; for
them ``reason`` is any short code, ``actor_country`` may be empty, and a migration step's outcome is ``done``).

:func:`record` is the one way the vendor appends: an entry goes only into the log of its own jurisdiction,
and a staff access or routing refusal only into the log of the jurisdiction the tenant directory homes the
tenant in (entries about CH tenants go only into ``access-ch``). It returns once a published checkpoint
covers the entry. The customer's side (reading and checking the entries about one tenant) is
:mod:`overt.residency.accessverify`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from overt import jsonio
from overt.attest.dsse import Envelope
from overt.attest.statement import format_timestamp
from overt.errors import ConfigError, FormatError, PolicyError, UnpublishedError
from overt.home import Home, HomeLog
from overt.keys.signing import LogReceipt
from overt.residency.approvals import (
    MAX_APPROVAL,
    check_actor,
    check_fields,
    check_reason,
    check_resource,
    parse_time,
)
from overt.residency.countries import check_country, check_residency_jurisdiction
from overt.residency.tenants import check_tenant_id, open_directory
from overt.writerlock import WriterLock

ACCESS_ENTRY_TYPE = "https://overt.example/residency/access/v1"
STAFF_ACCESS = "staff-access"
MIGRATION_STEP = "migration-step"
ROUTING_REFUSAL = "routing-refusal"
KINDS = (STAFF_ACCESS, MIGRATION_STEP, ROUTING_REFUSAL)
GRANTED = "granted"
REFUSED = "refused"
DONE = "done"
MAX_ENTRY = 0xFFFF  # a tlog-tiles entry
MAX_TEXT = 1024  # a refusal or a detail
_CODE = re.compile(r"[a-z][a-z0-9-]{0,63}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")
_ORIGIN = re.compile(r"(?P<host>[^/]+)/access/(?P<j>[A-Z]{2})")
_FIELDS = frozenset(
    {"_type", "kind", "time", "jurisdiction", "tenant", "actor", "actor_country", "reason", "resource"}
    | {"outcome", "refusal", "approval", "detail"}
)
_WHAT = "access log entry"


def access_log_name(jurisdiction: str) -> str:
    """``access-ch`` for CH: the home's name for the access log of ``jurisdiction``."""
    return f"access-{check_residency_jurisdiction(jurisdiction).lower()}"


def access_log_origin(main_origin: str, jurisdiction: str) -> str:
    """``overt.example/access/CH`` for the main origin ``overt.example/log`` and CH."""
    return f"{main_origin.split('/', 1)[0]}/access/{check_residency_jurisdiction(jurisdiction)}"


def origin_jurisdiction(origin: str) -> str | None:
    """The jurisdiction an access log's origin names (``overt.example/access/CH`` -> CH), or None."""
    found = _ORIGIN.fullmatch(origin)
    return found.group("j") if found else None


def _check_text(value: str, what: str) -> str:
    if len(value) > MAX_TEXT or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise FormatError(f"{_WHAT}: {what} is at most {MAX_TEXT} characters without control characters")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessEntry:
    """One event in a jurisdiction's access log (see the module docstring for the fields)."""

    time: datetime
    jurisdiction: str
    tenant: str
    actor: str
    actor_country: str
    reason: str
    resource: str
    outcome: str
    refusal: str | None = None
    approval: Envelope | None = None
    kind: str = STAFF_ACCESS
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FormatError(f"{_WHAT}: kind {self.kind[:40]!r} is not one of {', '.join(KINDS)}")
        if self.time.tzinfo is None or self.time.utcoffset() != timedelta(0) or self.time.microsecond:
            raise FormatError(f"{_WHAT}: the time is in UTC to the second")
        check_residency_jurisdiction(self.jurisdiction)
        check_tenant_id(self.tenant)
        check_actor(self.actor)
        _check_text(self.detail, "detail")
        if self.kind == STAFF_ACCESS:
            check_country(self.actor_country)
            check_reason(self.reason)
            check_resource(self.resource)
        else:
            if self.actor_country:
                check_country(self.actor_country)
            if not _CODE.fullmatch(self.reason):
                raise FormatError(f"{_WHAT}: reason {self.reason[:40]!r} is not a short lower-case code")
            if not _TOKEN.fullmatch(self.resource):
                raise FormatError(f"{_WHAT}: resource must be 1 to 256 printable characters without spaces")
        self._check_outcome()

    def _check_outcome(self) -> None:
        outcomes = (GRANTED, REFUSED, DONE) if self.kind == MIGRATION_STEP else (GRANTED, REFUSED)
        if self.outcome not in outcomes:
            raise FormatError(f"{_WHAT}: outcome {self.outcome[:40]!r} is not one of {', '.join(outcomes)}")
        if (self.outcome == REFUSED) != bool(self.refusal):
            raise FormatError(f"{_WHAT}: a refused event says why (refusal), and only a refused one")
        if self.refusal is not None:
            _check_text(self.refusal, "refusal")
        if self.approval is not None and self.kind != STAFF_ACCESS:
            raise FormatError(f"{_WHAT}: only a staff access carries an approval")

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": ACCESS_ENTRY_TYPE,
            "kind": self.kind,
            "time": format_timestamp(self.time),
            "jurisdiction": self.jurisdiction,
            "tenant": self.tenant,
            "actor": self.actor,
            "actor_country": self.actor_country,
            "reason": self.reason,
            "resource": self.resource,
            "outcome": self.outcome,
            "refusal": self.refusal,
            "approval": None if self.approval is None else self.approval.to_dict(),
            "detail": self.detail,
        }

    def to_bytes(self) -> bytes:
        data = jsonio.dump(self.to_dict())
        if len(data) > MAX_ENTRY:
            raise FormatError(f"an {_WHAT} is at most {MAX_ENTRY} bytes, this one {len(data)}")
        return data

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> AccessEntry:
        check_fields(obj, _FIELDS, _WHAT)
        if obj["_type"] != ACCESS_ENTRY_TYPE:
            raise FormatError(f"{_WHAT}: _type must be {ACCESS_ENTRY_TYPE}")
        empty = ("actor_country", "detail")
        text = {
            k: jsonio.req_str(obj, k, _WHAT, allow_empty=k in empty)
            for k in _FIELDS - {"_type", "refusal", "approval"}
        }
        refusal = obj["refusal"]
        if refusal is not None and not isinstance(refusal, str):
            raise FormatError(f"{_WHAT}: refusal must be a string or null")
        return cls(
            kind=text["kind"],
            time=parse_time(text["time"], f"{_WHAT} time"),
            jurisdiction=text["jurisdiction"],
            tenant=text["tenant"],
            actor=text["actor"],
            actor_country=text["actor_country"],
            reason=text["reason"],
            resource=text["resource"],
            outcome=text["outcome"],
            refusal=refusal,
            approval=_approval(obj["approval"]),
            detail=text["detail"],
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AccessEntry:
        return cls.from_dict(jsonio.load_object(data, _WHAT, max_size=MAX_ENTRY))


def _approval(value: object) -> Envelope | None:
    """The approval envelope an entry carries (its payload bytes exactly as signed), or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FormatError(f"{_WHAT}: approval must be a DSSE envelope or null")
    envelope = Envelope.from_dict(value)
    if len(envelope.to_bytes()) > MAX_APPROVAL:
        raise FormatError(f"{_WHAT}: an approval envelope is at most {MAX_APPROVAL} bytes")
    return envelope


# --- the vendor's side: the log and appending to it ---------------------------------------------------------


def ensure_access_log(home: Home, jurisdiction: str) -> HomeLog:
    """The access log of ``jurisdiction`` in ``home``, made (key, policy, size-0 checkpoint) if it is not
    there yet. Two processes making it at once make it once (a lock under ``<home>/residency/``).

    Raises:
        ConfigError: the log exists but its key is bound to another jurisdiction, or its origin is not the
            access origin of ``jurisdiction``.
    """
    name = access_log_name(jurisdiction)
    if name not in home.log_names():
        home.paths.residency.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(home.paths.residency / "access-logs.lock", wait=30)
        try:
            fresh = Home(home.path)  # another process may have made it since ``home`` was opened
            if name not in fresh.log_names():
                origin = access_log_origin(fresh.log.config.origin, jurisdiction)
                fresh.add_log(name, origin=origin, jurisdiction=jurisdiction)
            home.config = fresh.config
        finally:
            lock.release()
    log = home.log_named(name)
    _check_bound(home, log, jurisdiction)
    return log


def _check_bound(home: Home, log: HomeLog, jurisdiction: str) -> None:
    expected = access_log_origin(home.log.config.origin, jurisdiction)
    if log.config.origin != expected:
        raise ConfigError(
            f"the log {log.name} has the origin {log.config.origin!r}, not {expected!r}: it is not the access "
            f"log of {jurisdiction}"
        )
    key = home.registry.get(log.config.key)
    if key.jurisdiction != jurisdiction:
        raise ConfigError(
            f"the key {key.keyid[:16]} of the log {log.name} is bound to {key.jurisdiction}, not {jurisdiction}",
            keyid=key.keyid,
            key_jurisdiction=key.jurisdiction,
        )


def record(home: Home, jurisdiction: str, entry: AccessEntry) -> LogReceipt:
    """Append ``entry`` to the access log of ``jurisdiction`` and return once a published checkpoint covers it.

    Raises:
        PolicyError: the entry is about another jurisdiction, or (a staff access, a routing refusal) about a
            tenant the directory homes elsewhere.
        ConfigError: the tenant is not in the directory.
        UnpublishedError: the entry is appended but no checkpoint covering it could be published (the
            witness quorum is not met); nothing may act on it as logged.
        ValueError: a granted staff access without its approval (the caller's bug: it granted without one).
    """
    if entry.jurisdiction != jurisdiction:
        raise PolicyError(
            f"an access entry about {entry.jurisdiction} goes only into the access log of {entry.jurisdiction}, "
            f"not {jurisdiction}'s",
            entry_jurisdiction=entry.jurisdiction,
            log_jurisdiction=jurisdiction,
        )
    if entry.kind == STAFF_ACCESS and entry.outcome == GRANTED and entry.approval is None:
        raise ValueError("a granted staff access is recorded with the approval that allowed it")
    if entry.kind in (STAFF_ACCESS, ROUTING_REFUSAL):
        _check_tenant_home(home, entry.tenant, jurisdiction)
    log = ensure_access_log(home, jurisdiction)
    receipt = log.append(entry.to_bytes())
    if not receipt.published:
        raise UnpublishedError(
            f"the access entry is appended to {log.name} at index {receipt.index}, but no published checkpoint "
            "covers it yet; run 'overt log publish' for that log once its witnesses answer",
            index=receipt.index,
            log=log.name,
        )
    return receipt


def _check_tenant_home(home: Home, tenant_id: str, jurisdiction: str) -> None:
    directory = open_directory(home)
    try:
        tenant = directory.tenant(tenant_id)
    finally:
        directory.close()
    if tenant.jurisdiction != jurisdiction:
        raise PolicyError(
            f"tenant {tenant_id} is homed in {tenant.jurisdiction}: its accesses are logged only in "
            f"{access_log_name(tenant.jurisdiction)}, not {access_log_name(jurisdiction)}",
            tenant=tenant_id,
            tenant_jurisdiction=tenant.jurisdiction,
            log_jurisdiction=jurisdiction,
        )
