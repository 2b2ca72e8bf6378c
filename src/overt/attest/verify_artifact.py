"""One artifact against its signed provenance and the transparency log, in one step (``overt verify``).

Three checks, each reported as proved or failed with its reason, so that the caller sees every one:

1. **artifact**: the artifact's sha256 is the digest of a subject of the provenance statement. Subjects are
   matched by digest; a subject with the artifact's name but another digest is named in the failure.
2. **signatures**: the DSSE envelope is signed by ``threshold`` distinct trusted keys
   (:func:`overt.attest.verify.verify_envelope`, over the received payload bytes).
3. **log**: the envelope, byte for byte as given, is an entry of the log, under a checkpoint verified against
   the policy the caller pinned (:class:`overt.tlog.client.LogClient`: log signature, witness quorum,
   consistency with the last checkpoint trusted, inclusion).

It reads no file and fetches only through the given client; the caller pins the trust roots and loads the
keys. What cannot be checked at all is raised, not reported: a malformed envelope or statement
(:class:`~overt.errors.FormatError`), a log that cannot be reached (:class:`~overt.errors.TransportError`),
a threshold above the number of keys (:class:`~overt.errors.ConfigError`). Auditor verdicts and freshness
are for the distribution issue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Key

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.provenance import Provenance
from overt.attest.statement import Statement
from overt.attest.verify import verify_envelope
from overt.errors import FormatError, VerificationError
from overt.tlog.client import LogClient

ARTIFACT, SIGNATURES, LOG = "artifact", "signatures", "log"


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactCheck:
    """One of the three checks: its name, whether it was proved, and a sentence saying what was found."""

    name: str
    proved: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": "proved" if self.proved else "failed", "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactReport:
    """What :func:`check_artifact` found; ``ok`` only if every check was proved."""

    sha256: str
    builder_id: str
    subject: str | None
    keyids: tuple[str, ...]
    origin: str | None
    tree_size: int | None
    log_index: int | None
    cosigners: tuple[str, ...]
    checks: tuple[ArtifactCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.proved for c in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.proved)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sha256": self.sha256,
            "builder_id": self.builder_id,
            "subject": self.subject,
            "keyids": list(self.keyids),
            "log": {
                "origin": self.origin,
                "tree_size": self.tree_size,
                "index": self.log_index,
                "cosigners": list(self.cosigners),
            },
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactVerification:
    """A report with what it is about: the artifact and provenance files (as the caller named them) and
    where the log's trust roots came from (a sentence, e.g. ``policy ./log-policy``)."""

    artifact: str
    provenance: str
    trust: str
    report: ArtifactReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "provenance": self.provenance,
            "trust": self.trust,
            **self.report.to_dict(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class _LogFinding:
    check: ArtifactCheck
    origin: str | None = None
    tree_size: int | None = None
    index: int | None = None
    cosigners: tuple[str, ...] = ()


def check_artifact(
    artifact: bytes,
    *,
    name: str,
    provenance: bytes,
    keys: Sequence[Key],
    threshold: int,
    log: LogClient,
    index: int | None = None,
) -> ArtifactReport:
    """Run the three checks on ``artifact`` (called ``name``) and its provenance envelope ``provenance``.

    With ``index``, the log check verifies inclusion at that index instead of scanning the entry bundles.
    """
    envelope = Envelope.from_bytes(provenance)
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
        raise FormatError(
            f"the provenance's payloadType is {envelope.payload_type!r}, not an in-toto statement"
        )
    statement = Statement.from_bytes(envelope.payload)
    builder_id = Provenance.from_statement(statement).run_details.builder.id
    digest = hashlib.sha256(artifact).hexdigest()
    subject, artifact_check = _artifact_check(statement, name=name, digest=digest)
    keyids, signature_check = _signature_check(envelope, keys, threshold)
    found = _log_check(log, provenance, index)
    return ArtifactReport(
        sha256=digest,
        builder_id=builder_id,
        subject=subject,
        keyids=keyids,
        origin=found.origin,
        tree_size=found.tree_size,
        log_index=found.index,
        cosigners=found.cosigners,
        checks=(artifact_check, signature_check, found.check),
    )


def _artifact_check(statement: Statement, *, name: str, digest: str) -> tuple[str | None, ArtifactCheck]:
    """1. The artifact's sha256 names a subject; the subjects are paths, so ``name`` matches a last part. A
    subject whose name the provenance gives twice, with other digests, names no artifact: which one the
    builder made is not said."""
    for s in statement.subject:
        if s.digest.get("sha256") == digest:
            others = {x.digest.get("sha256") for x in statement.subject if x.name == s.name} - {digest}
            if others:
                return None, ArtifactCheck(
                    name=ARTIFACT,
                    proved=False,
                    detail=f"the provenance names {s.name} more than once, with sha256 {digest} and "
                    f"{', '.join(sorted(str(o) for o in others))}: it does not say which the builder made",
                )
            return s.name, ArtifactCheck(
                name=ARTIFACT, proved=True, detail=f"sha256 {digest} is subject {s.name} of the provenance"
            )
    named = [s for s in statement.subject if s.name == name or s.name.endswith(f"/{name}")]
    if named:
        theirs = ", ".join(f"{s.name} has sha256 {s.digest.get('sha256', 'none')}" for s in named)
        detail = f"{name} has sha256 {digest}, but in the provenance {theirs}"
    else:
        count = len(statement.subject)
        detail = f"sha256 {digest} is the digest of none of the {count} subject(s) of the provenance"
    return None, ArtifactCheck(name=ARTIFACT, proved=False, detail=detail)


def _signature_check(
    envelope: Envelope, keys: Sequence[Key], threshold: int
) -> tuple[tuple[str, ...], ArtifactCheck]:
    """2. k of n distinct trusted keys signed the envelope (a threshold above n is raised, not reported)."""
    try:
        verified = verify_envelope(envelope, keys, threshold)
    except VerificationError as e:
        return (), ArtifactCheck(name=SIGNATURES, proved=False, detail=str(e))
    detail = (
        f"{len(verified.keyids)} distinct trusted key(s) signed the provenance (threshold {threshold}): "
        + ", ".join(verified.keyids)
    )
    return verified.keyids, ArtifactCheck(name=SIGNATURES, proved=True, detail=detail)


def _log_check(log: LogClient, entry: bytes, index: int | None) -> _LogFinding:
    """3. The envelope is an entry of the log under a checkpoint verified against the pinned policy."""
    try:
        tree = log.update()
    except VerificationError as e:
        return _LogFinding(check=ArtifactCheck(name=LOG, proved=False, detail=f"the log's checkpoint: {e}"))
    cp = tree.checkpoint.checkpoint
    cosigners = tuple(sorted(tree.cosigners))
    facts: dict[str, Any] = {"origin": cp.origin, "tree_size": cp.tree_size, "cosigners": cosigners}
    witnessed = f"cosigned by {', '.join(cosigners)}" if cosigners else "no witness cosignature"
    head = (
        f"checkpoint of {cp.origin} at size {cp.tree_size}, signed by the log and meeting the pinned "
        f"policy's witness quorum ({witnessed})"
    )
    if index is None:
        index = log.find_entry(entry, cp.tree_size)
        if index is None:
            detail = f"the provenance, byte for byte, is none of the {cp.tree_size} entries under the {head}"
            return _LogFinding(check=ArtifactCheck(name=LOG, proved=False, detail=detail), **facts)
    if index >= cp.tree_size:
        detail = f"index {index} is outside the tree under the {head}"
        return _LogFinding(check=ArtifactCheck(name=LOG, proved=False, detail=detail), **facts)
    try:
        log.verify_inclusion(entry, index, tree.checkpoint)
    except VerificationError as e:
        detail = f"the provenance is not entry {index} under the {head}: {e}"
        return _LogFinding(check=ArtifactCheck(name=LOG, proved=False, detail=detail), **facts)
    detail = f"the provenance is entry {index}, inclusion verified, under the {head}"
    return _LogFinding(check=ArtifactCheck(name=LOG, proved=True, detail=detail), index=index, **facts)
