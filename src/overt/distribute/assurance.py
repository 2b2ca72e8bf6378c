"""What an endpoint checks beyond TUF, before it installs a target (issue 12, point 5, steps 2-5).

The input is what TUF already verified (the target's path, length, sha256 and ``custom`` field, and the exact
bytes of every metadata file the update used), the evidence files the repository publishes beside it
(:mod:`overt.distribute.evidence`, :mod:`overt.distribute.verdicts`), read through an
:data:`~overt.distribute.evidence.EvidenceSource`,
and the customer's pinned :class:`~overt.distribute.trust.TrustPolicy`. Each step raises a
:class:`~overt.errors.VerificationError` (or :class:`~overt.errors.PolicyError` for the version) whose
evidence names the ``check`` that failed; nothing here writes anything.

2. **Logged** (``check`` ``log``, ``metadata``, ``provenance``):

   - the log's current head (:class:`LogHead`), verified by the caller: signed by the log, cosigned by the
     policy's witness quorum and consistent with the last head the endpoint stored;
   - every metadata file the update used (root, timestamp, snapshot, targets, release and the bins that
     were looked in) is a log entry, by the digest of its exact bytes, signed by a key of its role;
   - the provenance is the envelope the target's ``custom`` field names (sha256 and log index), proved in the
     log, signed by the policy's builder keys, naming this exact sha256 and a ``builder.id`` the policy lists;
   - every checkpoint those proofs refer to is consistent with the head (from the log's tiles), so no proof
     comes from a fork.
3. **Verdicts** (``verdicts``): k distinct auditor keys of the policy signed a PASSED SLSA VSA about this
   exact sha256, each one proved logged. A key listed twice, or signing twice, counts once; a FAILED verdict
   from a trusted key refuses the target whatever the others say.
4. **Version** (``version``): not older than the installed one (PEP 440 for products, integers for databases).
5. **Freshness** (``freshness``): the newest time at which the witness quorum had cosigned the head (the
   ``cosignature/v1`` timestamps) is no older than the policy allows. A frozen view of the log, which a
   still-valid TUF timestamp does not reveal, fails here.

Offline (``overt verify --evidence``) there is no head: step 2's consistency is checked only between proofs
of equal size, and freshness is measured on the newest checkpoint the proofs carry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from packaging.version import InvalidVersion, Version
from securesystemslib.signer import Key

from overt.attest.dsse import Envelope
from overt.attest.provenance import Provenance
from overt.attest.statement import format_timestamp
from overt.attest.verify import verify_statement
from overt.distribute.bundles import BundleSet, metadata_bundle_path, target_bundle_path
from overt.distribute.evidence import (
    EvidenceSource,
    LoggedEntry,
    Prefetched,
    metadata_evidence,
    prefetched,
    refused,
    target_evidence,
    verify_logged_entry,
    verify_logged_metadata,
)
from overt.distribute.trust import DATABASE, TrustPolicy
from overt.distribute.verdicts import verdict_index_path, verdicts_passed
from overt.errors import ConsistencyError, FormatError, PolicyError, VerificationError
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.client import LogClient
from overt.tlog.merkle import consistency_ranges, hash_range, verify_consistency
from overt.tlog.policy import Policy


@dataclass(frozen=True, slots=True, kw_only=True)
class UsedMetadata:
    """One metadata file a TUF update used: its role, consistent-snapshot name, exact bytes, and the keys
    its delegator lists for it (who may have signed its log entry)."""

    role: str
    name: str
    data: bytes
    keys: tuple[Key, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A target TUF verified: what an endpoint would install."""

    kind: str  # trust.PRODUCT or trust.DATABASE
    name: str
    channel: str
    version: str
    path: str
    sha256: str
    length: int
    custom: Mapping[str, Any]  # the target's ``overt`` object


@dataclass(frozen=True, slots=True, kw_only=True)
class LogHead:
    """The log's current head as the endpoint verified it (quorum, and consistency with the stored one), and
    the client that reads its tiles for consistency proofs."""

    checkpoint: SignedCheckpoint
    cosigners: frozenset[str]
    previous_size: int | None
    client: LogClient


@dataclass(frozen=True, slots=True, kw_only=True)
class Passed:
    """One check that passed, and what it rested on."""

    check: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class Assurance:
    """Steps 2-5 passed for ``candidate``: the checks, the log entries they rest on, and the checkpoint."""

    candidate: Candidate
    checks: tuple[Passed, ...]
    provenance: bytes  # the envelope, as logged
    provenance_index: int
    metadata: tuple[tuple[str, int], ...]  # (metadata file, log index)
    auditors: tuple[str, ...]  # keyids of the trusted auditors that PASSED it
    checkpoint: SignedCheckpoint  # the head (online), or the newest checkpoint of the proofs (offline)
    cosigners: tuple[str, ...]
    cosigned_at: datetime  # when the witness quorum had cosigned ``checkpoint``

    def to_dict(self) -> dict[str, Any]:
        cp = self.checkpoint.checkpoint
        return {
            "target": self.candidate.path,
            "sha256": self.candidate.sha256,
            "version": self.candidate.version,
            "checks": [c.to_dict() for c in self.checks],
            "provenance_log_index": self.provenance_index,
            "metadata": [{"name": n, "log_index": i} for n, i in self.metadata],
            "auditors": list(self.auditors),
            "checkpoint": {"origin": cp.origin, "tree_size": cp.tree_size, "root_hash": cp.root_hash.hex()},
            "cosigners": list(self.cosigners),
            "cosigned_at": format_timestamp(self.cosigned_at),
        }


def _need(get: EvidenceSource, rel: str, check: str, what: str) -> bytes:
    data = get(rel)
    if data is None:
        raise refused(check, f"{what} is not published ({rel})", missing=rel)
    return data


# --- step 2 ------------------------------------------------------------------------------------------------


_ORDER = {"release": 1, "targets": 2, "snapshot": 3, "timestamp": 4, "root": 5}  # bins: 0


def metadata_logged(
    get: EvidenceSource, used: Sequence[UsedMetadata], policy: Policy
) -> list[tuple[str, LoggedEntry]]:
    """Each metadata file the update used is logged by the digest of its exact bytes; (name, entry) each.

    The listings are checked first (a bin, then release: the files a targeted update changes), the root
    last, so a refusal names the file that matters."""
    out = []
    for u in sorted(used, key=lambda u: _ORDER.get(u.role, 0)):
        files = metadata_evidence(u.name)
        what = f"{u.name}, the exact {u.role} metadata this update used,"
        evidence = {"name": u.name, "sha256": hashlib.sha256(u.data).hexdigest()}
        entry, proof = get(files.entry), get(files.proof)
        if entry is None or proof is None:
            missing = files.entry if entry is None else files.proof
            raise refused("metadata", f"{what} is not proved logged: {missing} is not published", **evidence)
        try:
            logged = verify_logged_metadata(
                u.name, u.data, entry=entry, proof=proof, policy=policy, keys=u.keys
            )
            out.append((u.name, logged))
        except (VerificationError, FormatError) as e:
            raise refused("metadata", f"{what} is not proved logged: {e}", **evidence) from e
    return out


def provenance_logged(
    get: EvidenceSource, candidate: Candidate, trust: TrustPolicy
) -> tuple[LoggedEntry, bytes]:
    """The provenance the target names is logged, signed by the policy's builders, about this sha256; its
    log entry and the envelope."""
    files = target_evidence(candidate.path)
    claimed = candidate.custom.get("provenance")
    if not isinstance(claimed, dict):
        raise refused("provenance", f"{candidate.path} names no provenance in its signed metadata")
    envelope = _need(get, files.entry, "provenance", f"the provenance of {candidate.path}")
    digest = hashlib.sha256(envelope).hexdigest()
    if digest != claimed.get("sha256"):
        raise refused(
            "provenance",
            f"the provenance published for {candidate.path} is not the one its metadata names: sha256 "
            f"{digest}, named {claimed.get('sha256')}",
        )
    proof = _need(get, files.proof, "provenance", f"the tlog-proof of {candidate.path}'s provenance")
    try:
        logged = verify_logged_entry(envelope, proof, trust.log_policy)
    except (VerificationError, FormatError) as e:
        raise refused("provenance", f"the provenance of {candidate.path} is not proved logged: {e}") from e
    if logged.index != claimed.get("logIndex"):
        raise refused(
            "provenance",
            f"the provenance of {candidate.path} is logged at index {logged.index}, not at "
            f"{claimed.get('logIndex')} as its metadata says",
        )
    try:
        statement = verify_statement(
            Envelope.from_bytes(envelope), trust.builder_keys, trust.builder_threshold
        )
        builder = Provenance.from_statement(statement).run_details.builder.id
    except (VerificationError, FormatError) as e:
        raise refused(
            "provenance", f"the provenance of {candidate.path} is not signed by the policy's builders: {e}"
        ) from e
    named = {s.name for s in statement.subject if s.digest.get("sha256") == candidate.sha256}
    if not named:
        raise refused(
            "provenance", f"the provenance does not name {candidate.path}'s sha256 {candidate.sha256}"
        )
    if any(s.name in named and s.digest.get("sha256") != candidate.sha256 for s in statement.subject):
        raise refused(
            "provenance",
            f"the provenance names {', '.join(sorted(named))} more than once, with other digests too: it "
            f"does not say that the builder made {candidate.path}'s sha256 {candidate.sha256}",
        )
    if builder not in trust.builder_ids:
        raise refused(
            "provenance",
            f"{candidate.path} was built by {builder[:200]!r}, not by a builder the policy trusts "
            "([builders] ids): a release that bypassed the builder registry",
            builder=builder[:200],
        )
    return logged, envelope


def prove_consistent(client: LogClient | None, a: SignedCheckpoint, b: SignedCheckpoint) -> bool:
    """Raise :class:`~overt.errors.ConsistencyError` unless the two checkpoints can be views of one log;
    True if that was proved, False if it could not be without ``client`` (offline, different sizes)."""
    small, big = sorted((a.checkpoint, b.checkpoint), key=lambda c: c.tree_size)
    if small.tree_size == big.tree_size:
        if small.root_hash != big.root_hash:
            raise ConsistencyError(
                f"two different roots for tree size {small.tree_size}: the log forked",
                size1=small.tree_size,
                size2=big.tree_size,
                root1=small.root_hash.hex(),
                root2=big.root_hash.hex(),
            )
        return True
    if small.tree_size == 0:
        return True
    if client is None:
        return False
    reader = client.reader(big.tree_size)
    proof = [hash_range(x, y, reader.node) for x, y in consistency_ranges(small.tree_size, big.tree_size)]
    verify_consistency(small.tree_size, big.tree_size, small.root_hash, big.root_hash, proof)
    return True


def checkpoints_consistent(head: LogHead | None, entries: Iterable[LoggedEntry]) -> str:
    """Every proof's checkpoint is consistent with the head; offline, checkpoints of one size have one root
    (consistency across sizes needs the log's tiles). Returns what was checked, as the report says it."""
    distinct = {
        (e.checkpoint.checkpoint.tree_size, e.checkpoint.checkpoint.root_hash): e.checkpoint for e in entries
    }
    items = list(distinct.values())
    try:
        if head is not None:
            for cp in items:
                prove_consistent(head.client, cp, head.checkpoint)
            return f"the {len(items)} checkpoint(s) the proofs refer to are consistent with the head"
        for i, cp in enumerate(items):
            for other in items[i + 1 :]:
                prove_consistent(None, cp, other)
    except ConsistencyError as e:
        raise refused("log", f"the evidence comes from a fork of the log: {e}", **e.evidence) from e
    sizes = len({cp.checkpoint.tree_size for cp in items})
    return (
        f"the proofs refer to {sizes} checkpoint size(s), one root each; consistency between sizes is not "
        "checked offline (no log tiles)"
    )


# --- steps 4 and 5 -----------------------------------------------------------------------------------------


def _older(kind: str, a: str, b: str) -> bool:
    """Version ``a`` is older than ``b`` (integers for databases, PEP 440 for products)."""
    try:
        if kind == DATABASE:
            return int(a) < int(b)
        return Version(a) < Version(b)
    except (InvalidVersion, ValueError) as e:
        raise refused("version", f"versions {a!r} and {b!r} cannot be compared") from e


def version_forward(candidate: Candidate, installed: tuple[str, str] | None) -> str:
    """The candidate is not older than the installed (version, sha256), nor the same version with other bytes."""
    if installed is None:
        return f"version {candidate.version}, nothing installed before"
    version, sha256 = installed
    if _older(candidate.kind, candidate.version, version):
        raise PolicyError(
            f"refused: {candidate.path} is version {candidate.version}, older than the installed version "
            f"{version}: a rollback",
            check="version",
            offered=candidate.version,
            installed=version,
        )
    if not _older(candidate.kind, version, candidate.version) and sha256 != candidate.sha256:
        raise PolicyError(
            f"refused: version {version} is installed with sha256 {sha256}; the repository now offers other "
            f"bytes ({candidate.sha256}) under the same version",
            check="version",
        )
    return f"version {candidate.version} after the installed {version}"


def quorum_time(signed: SignedCheckpoint, policy: Policy) -> int | None:
    """The newest cosignature/v1 time at which the policy's quorum had cosigned ``signed`` (the latest t such
    that the witnesses with a verified cosignature at t or later meet the quorum); None if it never did."""
    text = signed.note.text.encode()
    times: dict[str, int] = {}
    for w in policy.witnesses:
        for sig in signed.note.signatures:
            if sig.name == w.verifier.name and sig.key_id == w.verifier.key_id:
                t = w.verifier.timestamp_of(text, sig.signature)
                if t is not None:
                    times[w.name] = max(times.get(w.name, t), t)
    for t in sorted(set(times.values()), reverse=True):
        if policy.satisfied_by({name for name, at in times.items() if at >= t}):
            return t
    return None


def _span(seconds: float) -> str:
    """A duration as a reader compares two of them: seconds under an hour, else hours."""
    return f"{seconds:.0f} seconds" if seconds < 3600 else f"{seconds / 3600:.1f} hours"


def cosignatures_fresh(checkpoint: SignedCheckpoint, trust: TrustPolicy, now: datetime) -> datetime:
    """The newest quorum cosignature of ``checkpoint`` is no older than the policy allows; its time."""
    t = quorum_time(checkpoint, trust.log_policy)
    if t is None:
        raise refused("freshness", "the checkpoint carries no cosignature/v1 timestamps that meet the quorum")
    at = datetime.fromtimestamp(t, UTC)
    age = now - at
    if age > trust.max_cosignature_age:
        raise refused(
            "freshness",
            f"the newest quorum of witness cosignatures on the log is from {format_timestamp(at)}, "
            f"{_span(age.total_seconds())} ago; the policy allows {_span(trust.max_cosignature_age.total_seconds())}: "
            "the view of the log is frozen or stale",
            cosigned_at=format_timestamp(at),
            checkpoint_size=checkpoint.checkpoint.tree_size,
        )
    return at


# --- all of them -------------------------------------------------------------------------------------------


def evidence_paths(candidate: Candidate, used: Sequence[UsedMetadata]) -> list[str]:
    """The evidence files steps 2 and 3 read first (the verdicts themselves follow from their index)."""
    files = target_evidence(candidate.path)
    wanted = [f for u in used for f in (metadata_evidence(u.name).entry, metadata_evidence(u.name).proof)]
    return [*wanted, files.entry, files.proof, verdict_index_path(candidate.path)]


def bundled_evidence(
    get: EvidenceSource, candidate: Candidate, used: Sequence[UsedMetadata], *, pool: Executor | None = None
) -> Prefetched:
    """``get``, reading first the evidence bundles of this update (:mod:`overt.distribute.bundles`): the
    bundle of the timestamp it used and the target's. They carry most of what steps 2 and 3 read in two
    round trips; any file they do not carry is read on its own (in parallel, by :func:`assure`). Transport
    only: every file is checked the same wherever it came from. With ``pool``, files read ahead
    (:meth:`~overt.distribute.evidence.Prefetched.fetch_ahead`) are read on it."""
    bundles = [metadata_bundle_path(u.name) for u in used if u.role == "timestamp"]
    return Prefetched(get, pool, BundleSet(get, [*bundles, target_bundle_path(candidate.path)]))


def metadata_bundles(get: EvidenceSource, used: Sequence[UsedMetadata]) -> Prefetched:
    """``get``, reading first the bundle of the timestamp in ``used``: the metadata evidence of a run that
    installs nothing, in one round trip."""
    bundles = [metadata_bundle_path(u.name) for u in used if u.role == "timestamp"]
    return Prefetched(get, None, BundleSet(get, bundles))


def _head(head: LogHead, quorum: str) -> Passed:
    cp = head.checkpoint.checkpoint
    since = "" if head.previous_size is None else f", consistent with the stored size {head.previous_size}"
    cosigners = ", ".join(sorted(head.cosigners))
    return Passed(
        check="log",
        detail=f"head of {cp.origin} at size {cp.tree_size}, witness quorum '{quorum}' met by {cosigners}{since}",
    )


def assure(
    get: EvidenceSource,
    candidate: Candidate,
    used: Sequence[UsedMetadata],
    trust: TrustPolicy,
    *,
    head: LogHead | None,
    installed: tuple[str, str] | None,
    now: datetime,
    checks: list[Passed] | None = None,
) -> Assurance:
    """Steps 2-5 for ``candidate`` (module docstring); raises on the first that fails. Each check that
    passes is appended to ``checks`` as it passes, so a refusal can say what held before it."""
    get = prefetched(get, evidence_paths(candidate, used))
    checks = [] if checks is None else checks
    start = len(checks)
    if head is not None:
        checks.append(_head(head, trust.log_policy.quorum))
    metadata = metadata_logged(get, used, trust.log_policy)
    names = ", ".join(name for name, _ in metadata)
    checks.append(
        Passed(check="metadata", detail=f"{len(metadata)} metadata files logged by digest: {names}")
    )
    provenance, envelope = provenance_logged(get, candidate, trust)
    checks.append(
        Passed(
            check="provenance", detail=f"logged at index {provenance.index}, signed by the policy's builders"
        )
    )
    auditors, verdicts = verdicts_passed(
        get,
        path=candidate.path,
        sha256=candidate.sha256,
        keys=trust.auditor_keys,
        threshold=trust.auditor_threshold,
        policy=trust.log_policy,
        provenance_sha256=hashlib.sha256(envelope).hexdigest(),
    )
    who = ", ".join(a[:16] for a in auditors)
    checks.append(
        Passed(
            check="verdicts",
            detail=f"{len(auditors)} of {trust.auditor_threshold} trusted auditors PASSED it: {who}",
        )
    )
    entries = [*(e for _, e in metadata), provenance, *verdicts]
    checks.append(Passed(check="consistency", detail=checkpoints_consistent(head, entries)))
    checks.append(Passed(check="version", detail=version_forward(candidate, installed)))
    newest = max(entries, key=lambda e: e.checkpoint.checkpoint.tree_size)
    basis, cosigners = (
        (newest.checkpoint, newest.cosigners) if head is None else (head.checkpoint, head.cosigners)
    )
    cosigned_at = cosignatures_fresh(basis, trust, now)
    checks.append(Passed(check="freshness", detail=f"quorum cosigned at {format_timestamp(cosigned_at)}"))
    return Assurance(
        candidate=candidate,
        checks=tuple(checks[start:]),
        provenance=envelope,
        provenance_index=provenance.index,
        metadata=tuple((name, e.index) for name, e in metadata),
        auditors=tuple(auditors),
        checkpoint=basis,
        cosigners=tuple(sorted(cosigners)),
        cosigned_at=cosigned_at,
    )
