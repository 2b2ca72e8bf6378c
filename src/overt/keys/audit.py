"""``overt keys audit``: everything one key ever signed, read from the transparency log, inclusion verified.

Walks the entries of a verified checkpoint (any tlog-tiles log, local directory or URL, through
:class:`overt.tlog.client.LogClient`). For each DSSE envelope that carries a signature by the key, or that
records a refusal by the key, it checks the signature with the key's public half and proves the entry's
inclusion under the checkpoint. Entries that are not envelopes are skipped; a signature that claims the key
but does not verify is reported, never hidden. The client's policy is the auditor's own, pinned out of band or
on first use (:mod:`overt.tlog.trust`), never read from the log being audited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from securesystemslib.signer import Key

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.statement import Statement
from overt.attest.verify import signature_valid
from overt.errors import FormatError
from overt.keys.jurisdiction import SIGNING_REFUSAL_V1
from overt.keys.registry import KeyRecord
from overt.tlog.client import LogClient, VerifiedTree

SIGNED = "signed"
REFUSED = "refused"
BAD_SIGNATURE = "invalid-signature"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    index: int
    kind: str
    predicate_type: str
    subjects: tuple[str, ...]
    envelope_sha256: str
    detail: str = ""
    inclusion_verified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "predicate_type": self.predicate_type,
            "subjects": list(self.subjects),
            "envelope_sha256": self.envelope_sha256,
            "detail": self.detail,
            "inclusion_verified": self.inclusion_verified,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyAuditReport:
    keyid: str
    tree: VerifiedTree
    entries: tuple[AuditEntry, ...] = field(default_factory=tuple)

    @property
    def bad_signatures(self) -> tuple[AuditEntry, ...]:
        """Entries whose signature names the key but does not verify: a verification failure of the log."""
        return tuple(e for e in self.entries if e.kind == BAD_SIGNATURE)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyAudit:
    """A key record's audit as ``overt keys audit`` reports it: the key, the verified tree, the entries."""

    record: KeyRecord
    report: KeyAuditReport

    def to_dict(self) -> dict[str, Any]:
        cp = self.report.tree.checkpoint.checkpoint
        return {
            "keyid": self.record.keyid,
            "role": self.record.role.value,
            "jurisdiction": self.record.jurisdiction,
            "log": {
                "origin": cp.origin,
                "tree_size": cp.tree_size,
                "cosigners": sorted(self.report.tree.cosigners),
            },
            "entries": [e.to_dict() for e in self.report.entries],
        }


def _describe(envelope: Envelope) -> tuple[str, tuple[str, ...], Statement | None]:
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
        return envelope.payload_type, (), None
    try:
        st = Statement.from_bytes(envelope.payload)
    except FormatError:
        return "(malformed statement)", (), None
    subjects = tuple(
        f"{s.name or '-'} " + ",".join(f"{a}:{v}" for a, v in sorted(s.digest.items())) for s in st.subject
    )
    return st.predicate_type, subjects, st


def classify(entry: bytes, key: Key) -> tuple[str, str, tuple[str, ...], str] | None:
    """(kind, predicate type, subjects, detail) if ``entry`` concerns ``key``, else None."""
    try:
        env = Envelope.from_bytes(entry)
    except FormatError:
        return None
    message = env.pae()
    claimed = False
    for sig in env.signatures:
        if sig.keyid not in ("", key.keyid):
            continue
        if signature_valid(key, sig.sig, message):
            predicate_type, subjects, _ = _describe(env)
            return SIGNED, predicate_type, subjects, ""
        claimed = claimed or sig.keyid == key.keyid
    if claimed:
        predicate_type, subjects, _ = _describe(env)
        return BAD_SIGNATURE, predicate_type, subjects, "a signature names this key but does not verify"
    if not env.signatures:
        predicate_type, subjects, st = _describe(env)
        if st is not None and predicate_type == SIGNING_REFUSAL_V1 and st.predicate.get("keyid") == key.keyid:
            refused = str(st.predicate.get("refusedPredicateType", "?"))
            return REFUSED, refused, subjects, str(st.predicate.get("reason", ""))
    return None


def audit_key(
    client: LogClient, key: Key, *, progress: Callable[[int, int], None] | None = None
) -> KeyAuditReport:
    tree = client.update()
    size = tree.checkpoint.checkpoint.tree_size
    found: list[AuditEntry] = []
    for index, entry in client.iter_entries(size):
        if progress is not None:
            progress(index + 1, size)
        got = classify(entry, key)
        if got is None:
            continue
        kind, predicate_type, subjects, detail = got
        client.verify_inclusion(entry, index, tree.checkpoint)  # raises InclusionError
        found.append(
            AuditEntry(
                index=index,
                kind=kind,
                predicate_type=predicate_type,
                subjects=subjects,
                envelope_sha256=hashlib.sha256(entry).hexdigest(),
                detail=detail,
                inclusion_verified=True,
            )
        )
    return KeyAuditReport(keyid=key.keyid, tree=tree, entries=tuple(found))


def audit_record(
    client: LogClient, record: KeyRecord, *, progress: Callable[[int, int], None] | None = None
) -> KeyAudit:
    """:func:`audit_key` for a registry key (or a public key file's record), kept with its role and place."""
    return KeyAudit(record=record, report=audit_key(client, record.key, progress=progress))
