"""The customer's check of an access-transparency log: every entry about its tenant, proven, and every granted
access approved by the customer's own admin key.

:func:`verify_access_log` reads the log's public prefix (a URL or a directory, as ``overt log verify --log``
takes) with the verifying client of :mod:`overt.tlog.client`, under trust roots the customer pinned (a vkey,
or a tlog-policy with witnesses), never ones the log serves. Steps, in order:

1. the checkpoint is signed by the pinned log key and meets the witness quorum;
2. with a state directory, it is consistent with the last checkpoint trusted for this log (a rollback or a
   fork is refused with :class:`~overt.errors.ConsistencyError`, both sizes as evidence), and is remembered;
3. the log's origin names the jurisdiction it is the access log of (``<host>/access/<J>``);
4. every entry is read from the public entry bundles and all of them together hash to the checkpoint's root,
   so the bundles hide no entry and add none;
5. the entries about the tenant are kept (an entry that is not an access entry is reported as unreadable,
   since it could be about anyone), and each one's inclusion proof, from the tiles, is checked against the
   checkpoint;
6. each of them names the log's jurisdiction;
7. with the customer's admin public key (pinned by the customer, never taken from the vendor), every granted
   staff access carries an approval signed by that key, for the entry's tenant, actor, actor country and
   resource, whose time box holds the entry's time (:func:`overt.residency.approvals.verify_approval`).

A failure of steps 1-4 raises a :class:`~overt.errors.VerificationError`; what steps 5-7 find is reported
entry by entry (:class:`AccessLogReport`), and ``ok`` is false if any entry is unreadable or violates them.

The entry bundles are public: anyone holding the log's prefix reads every tenant's entries. This module only
picks out one tenant's; keeping tenants apart from each other is not what it does.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.errors import Error, FormatError, InclusionError, UsageError
from overt.residency.accesslog import GRANTED, STAFF_ACCESS, AccessEntry, origin_jurisdiction
from overt.residency.approvals import ApprovalError, verify_approval
from overt.residency.tenants import AdminKey, check_tenant_id
from overt.tlog.client import LogClient, VerifiedTree, fetcher_for
from overt.tlog.merkle import CompactRange, leaf_hash
from overt.tlog.policy import Policy

JURISDICTION = "jurisdiction"
APPROVAL = "approval"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedAccess:
    """One entry about the tenant, its inclusion proven; ``approval`` says what was found of its approval,
    and ``violation`` why the entry breaks the rules (None: it does not)."""

    index: int
    entry: AccessEntry
    approval: str
    violation: str | None = None
    failed: str | None = None  # the check it fails: JURISDICTION or APPROVAL

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "index": self.index,
            "kind": e.kind,
            "time": e.to_dict()["time"],
            "jurisdiction": e.jurisdiction,
            "actor": e.actor,
            "actor_country": e.actor_country,
            "reason": e.reason,
            "resource": e.resource,
            "outcome": e.outcome,
            "refusal": e.refusal,
            "detail": e.detail,
            "approval": self.approval,
            "violation": self.violation,
            "failed_check": self.failed,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UnreadableEntry:
    """An entry of the log that is not an access entry: whom it is about cannot be told."""

    index: int
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "problem": self.problem}


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLogReport:
    """What :func:`verify_access_log` proved about the access log at ``log`` for ``tenant``: the checks
    that passed (``checks``) and those it did not run (``not_checked``), and the tenant's entries."""

    log: str
    trust: str
    tenant: str
    origin: str
    jurisdiction: str
    tree_size: int
    root_hash: bytes
    previous_size: int | None
    cosigners: tuple[str, ...]
    checks: tuple[str, ...]
    not_checked: tuple[str, ...]
    entries: tuple[LoggedAccess, ...]
    unreadable: tuple[UnreadableEntry, ...]

    @property
    def violations(self) -> tuple[LoggedAccess, ...]:
        return tuple(e for e in self.entries if e.violation is not None)

    @property
    def ok(self) -> bool:
        return not self.violations and not self.unreadable

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "complete": self.ok and not self.not_checked,
            "log": self.log,
            "trust": self.trust,
            "tenant": self.tenant,
            "origin": self.origin,
            "jurisdiction": self.jurisdiction,
            "tree_size": self.tree_size,
            "root_hash": base64.b64encode(self.root_hash).decode(),
            "previous_size": self.previous_size,
            "cosigners": list(self.cosigners),
            "checks": list(self.checks),
            "not_checked": list(self.not_checked),
            "entries": [e.to_dict() for e in self.entries],
            "violations": len(self.violations),
            "unreadable": [u.to_dict() for u in self.unreadable],
        }


def verify_access_log(
    source: str,
    *,
    policy: Policy,
    tenant: str,
    state_dir: Path | None = None,
    admin_key: AdminKey | None = None,
    trust: str = "",
) -> AccessLogReport:
    """Verify the access log at ``source`` (URL or directory) under ``policy`` and report ``tenant``'s
    entries; ``state_dir`` remembers the checkpoint between runs; ``trust`` says where ``policy`` came from.

    Raises:
        VerificationError: the checkpoint, consistency with the remembered one, or the entry bundles do
            not verify (steps 1, 2 and 4 of the module docstring).
        UsageError: ``source`` is not an access log (its origin is not ``<host>/access/<J>``).
        TransportError: the log cannot be read.
    """
    check_tenant_id(tenant)
    client = LogClient(fetcher_for(source), policy, state_dir)
    # 1-2. Checkpoint, quorum, consistency with the remembered checkpoint.
    tree = client.update()
    cp = tree.checkpoint.checkpoint
    # 3. The jurisdiction this log is the access log of.
    jurisdiction = origin_jurisdiction(cp.origin)
    if jurisdiction is None:
        raise UsageError(
            f"{source} is the log {cp.origin}, not an access log (whose origin is <host>/access/<J>)"
        )
    # 4-5. Every entry, all of them hashing to the root; the tenant's kept, each proven included.
    ours, unreadable = _read_entries(client, tree, tenant)
    # 6-7. Each names this log's jurisdiction; each grant carries an approval by the customer's key.
    checked = [_judge(index, entry, jurisdiction, admin_key) for index, entry in ours]
    checks, not_checked = _checks_run(
        tree,
        policy=policy,
        jurisdiction=jurisdiction,
        checked=checked,
        admin_key=admin_key,
        state_dir=state_dir,
    )
    return AccessLogReport(
        log=source,
        trust=trust,
        tenant=tenant,
        origin=cp.origin,
        jurisdiction=jurisdiction,
        tree_size=cp.tree_size,
        root_hash=cp.root_hash,
        previous_size=tree.previous_size,
        cosigners=tuple(sorted(tree.cosigners)),
        checks=tuple(checks),
        not_checked=tuple(not_checked),
        entries=tuple(checked),
        unreadable=tuple(unreadable),
    )


def _checks_run(
    tree: VerifiedTree,
    *,
    policy: Policy,
    jurisdiction: str,
    checked: list[LoggedAccess],
    admin_key: AdminKey | None,
    state_dir: Path | None,
) -> tuple[list[str], list[str]]:
    """The checks that passed for every entry, and those that did not run, as the report lists them."""
    checks = [f"log signature ({tree.checkpoint.checkpoint.origin})", f"witness quorum ({policy.quorum})"]
    if tree.previous_size is not None:
        checks.append(f"consistency with trusted size {tree.previous_size}")
    checks += [
        f"the {_count(tree.checkpoint.checkpoint.tree_size, 'entry', 'entries')} of the entry bundles hash to the checkpoint's root",
        f"inclusion of each of the tenant's {_count(len(checked), 'entry', 'entries')}",
    ]
    failed = {c.failed for c in checked}
    if JURISDICTION not in failed:
        checks.append(f"each of them is about {jurisdiction}, this log's jurisdiction")
    granted = sum(1 for c in checked if c.entry.kind == STAFF_ACCESS and c.entry.outcome == GRANTED)
    if admin_key is not None and APPROVAL not in failed:
        checks.append(
            f"each of the {_count(granted, 'granted access', 'granted accesses')} carries an approval signed by admin key "
            f"{admin_key.keyid[:16]}, for its actor, actor country and resource, valid at its time"
        )
    not_checked = []
    if state_dir is None:
        not_checked.append("consistency with an earlier checkpoint (no state directory)")
    elif tree.previous_size is None:
        not_checked.append("consistency with an earlier checkpoint (none was remembered; this one is now)")
    if admin_key is None:
        not_checked.append("the approvals' signatures (give your admin public key to check them)")
    return checks, not_checked


def _read_entries(
    client: LogClient, tree: VerifiedTree, tenant: str
) -> tuple[list[tuple[int, AccessEntry]], list[UnreadableEntry]]:
    """Steps 4 and 5: the tenant's entries (inclusion proven) and the unreadable ones."""
    cp = tree.checkpoint.checkpoint
    hashed = CompactRange()
    ours: list[tuple[int, bytes, AccessEntry]] = []
    unreadable = []
    for index, data in client.iter_entries(cp.tree_size):
        hashed.append(leaf_hash(data))
        try:
            entry = AccessEntry.from_bytes(data)
        except FormatError as e:
            unreadable.append(UnreadableEntry(index=index, problem=str(e)))
            continue
        if entry.tenant == tenant:
            ours.append((index, data, entry))
    if hashed.size != cp.tree_size or hashed.root() != cp.root_hash:
        raise InclusionError(
            f"the entry bundles of {cp.origin} do not hash to the root of its checkpoint of size {cp.tree_size}: "
            "they are not the entries the log signed",
            tree_size=cp.tree_size,
            bundle_entries=hashed.size,
            checkpoint_root=cp.root_hash.hex(),
            bundles_root=hashed.root().hex(),
        )
    for index, data, _ in ours:
        client.verify_inclusion(data, index, tree.checkpoint)
    return [(index, entry) for index, _, entry in ours], unreadable


def _judge(index: int, entry: AccessEntry, jurisdiction: str, admin_key: AdminKey | None) -> LoggedAccess:
    """Steps 6 and 7 for one of the tenant's entries."""
    if entry.jurisdiction != jurisdiction:
        return LoggedAccess(
            index=index,
            entry=entry,
            approval="not checked",
            violation=f"the entry is about {entry.jurisdiction}, but it is in the access log of {jurisdiction}",
            failed=JURISDICTION,
        )
    if entry.kind != STAFF_ACCESS or entry.outcome != GRANTED:
        return LoggedAccess(index=index, entry=entry, approval="none needed")
    if entry.approval is None:
        return LoggedAccess(
            index=index,
            entry=entry,
            approval="none",
            violation="access granted without an approval",
            failed=APPROVAL,
        )
    if admin_key is None:
        return LoggedAccess(index=index, entry=entry, approval="present, not checked")
    try:
        verified = verify_approval(
            entry.approval.to_bytes(),  # the payload bytes exactly as signed; only the JSON wrapper is re-made
            admin_key=admin_key,
            tenant=entry.tenant,
            actor=entry.actor,
            actor_country=entry.actor_country,
            resource=entry.resource,
            now=entry.time,
        )
    except ApprovalError as e:
        return LoggedAccess(
            index=index,
            entry=entry,
            approval="does not verify",
            violation=f"access granted, but {_lower(e)}",
            failed=APPROVAL,
        )
    return LoggedAccess(index=index, entry=entry, approval=f"verified ({verified.approval.approval_id})")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _lower(e: Error) -> str:
    text = str(e)
    return text[:1].lower() + text[1:]
