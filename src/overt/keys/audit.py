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

from securesystemslib.signer import Key

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.statement import Statement
from overt.attest.verify import signature_valid
from overt.errors import FormatError
from overt.keys.jurisdiction import SIGNING_REFUSAL_V1
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


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyAuditReport:
    keyid: str
    tree: VerifiedTree
    entries: tuple[AuditEntry, ...] = field(default_factory=tuple)


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
