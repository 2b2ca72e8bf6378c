"""Auditors' verdicts beside the target they judge: an SLSA VSA, checked to be logged, then published as
evidence with its tlog-proof (``overt tuf add-verdict VSA --target PATH``), and how an endpoint counts them (:func:`verdicts_passed`).

Layout, under ``public/tuf/``::

    evidence/targets/<path>/vsa/index.json                {"verdicts": ["<sha256 of an envelope>", ...]}
    evidence/targets/<path>/vsa/<sha256>/vsa.dsse.json    the VSA's DSSE envelope, byte for byte as logged
    evidence/targets/<path>/vsa/<sha256>/vsa.tlog-proof   its inclusion under a witness-cosigned checkpoint
    evidence/targets/<path>/vsa/<sha256>/checkpoint       that checkpoint

A verdict is refused (:class:`~overt.errors.PolicyError`, exit 1) when the target is not released here, the
envelope is not an in-toto statement with an SLSA VSA v1 predicate, its subject does not name the target's
exact sha256, or it is not an entry of this home's log under the witness quorum. Who signed it is not judged
here: which auditors count, and how many, is each endpoint's trust policy (:mod:`overt.distribute.trust`).

The index only tells a client which verdicts to fetch; it is not signed. A repository that leaves a verdict
out of it can withhold a FAILED verdict from endpoints, but not hide that it was logged: the log holds every
verdict, and a monitor reading the log sees it (docs/trust-policy.md, what the agent does not catch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Key

from overt import jsonio
from overt.atomic import atomic_write
from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.statement import Statement
from overt.attest.verify import key_identity, verify_envelope
from overt.attest.vsa import VerificationSummary
from overt.distribute.bundles import write_target_bundle
from overt.distribute.checks import ReleaseContext
from overt.distribute.evidence import (
    EvidenceFiles,
    EvidenceSource,
    LoggedEntry,
    prefetched,
    refused,
    verify_logged_entry,
    write_proved_evidence,
)
from overt.distribute.repository import Repository
from overt.errors import Error, FormatError, PolicyError, StorageError, VerificationError
from overt.tlog.policy import Policy

VSA = "vsa"
MAX_VERDICTS = 1000
_HEX = frozenset("0123456789abcdef")


def verdict_index_path(path: str) -> str:
    """The index of the verdicts on target ``path``, relative to ``public/tuf/``."""
    return f"evidence/targets/{path}/vsa/index.json"


def verdict_evidence(path: str, sha256: str) -> EvidenceFiles:
    """The evidence of the verdict whose envelope has digest ``sha256``, on target ``path``."""
    return EvidenceFiles.in_directory(f"evidence/targets/{path}/vsa/{sha256}", VSA)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictIndex:
    """Which verdicts are published on one target: the SHA-256 of each envelope, sorted."""

    verdicts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.verdicts) > MAX_VERDICTS:
            raise FormatError(f"verdict index lists more than {MAX_VERDICTS} verdicts")
        for digest in self.verdicts:
            if len(digest) != 64 or not set(digest) <= _HEX:
                raise FormatError("verdict index: an entry is not 64 lowercase hex digits")
        if list(self.verdicts) != sorted(set(self.verdicts)):
            raise FormatError("verdict index: entries are not sorted and distinct")

    @classmethod
    def from_bytes(cls, data: bytes) -> VerdictIndex:
        obj = jsonio.load_object(data, "verdict index", max_size=1 << 17)
        listed = jsonio.opt_list(obj, "verdicts", "verdict index")
        if not all(isinstance(d, str) for d in listed):
            raise FormatError("verdict index: verdicts must be strings")
        return cls(verdicts=tuple(listed))

    def to_bytes(self) -> bytes:
        return jsonio.dump({"verdicts": list(self.verdicts)}) + b"\n"

    def with_verdict(self, sha256: str) -> VerdictIndex:
        return VerdictIndex(verdicts=tuple(sorted({*self.verdicts, sha256})))


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedVerdict:
    """A verdict published beside its target: what it says, where it is logged, and its evidence files."""

    target: str
    sha256: str  # of the envelope
    result: str  # PASSED or FAILED
    verifier: str  # the VSA's verifier.id, as it claims (the endpoint trusts keys, not this)
    log_index: int
    files: EvidenceFiles
    verdicts: int  # how many verdicts the target now has

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "sha256": self.sha256,
            "result": self.result,
            "verifier": self.verifier,
            "log_index": self.log_index,
            "evidence": self.files.to_dict(),
            "verdicts": self.verdicts,
        }


def names_provenance(summary: VerificationSummary, provenance_sha256: str | None) -> bool:
    """Whether the VSA judged the build whose logged provenance envelope has digest ``provenance_sha256``
    (an ``inputAttestations`` entry with that sha256): a rebuilder's verdict binds to the build it
    reproduced, the provenance the target names, not to a release path it never saw."""
    return provenance_sha256 is not None and any(
        a.digest.get("sha256") == provenance_sha256 for a in summary.input_attestations
    )


def _summary(envelope: bytes, target: str, sha256: str, provenance_sha256: str | None) -> VerificationSummary:
    """The VSA the envelope carries, about exactly ``sha256``."""
    try:
        parsed = Envelope.from_bytes(envelope)
        if parsed.payload_type != PAYLOAD_TYPE_IN_TOTO:
            raise FormatError(f"payloadType is {parsed.payload_type!r}, not an in-toto statement")
        statement = Statement.from_bytes(parsed.payload)
        summary = VerificationSummary.from_statement(statement)
    except FormatError as e:
        raise PolicyError(f"refused: the verdict is not an SLSA VSA: {e}", check="verdict") from e
    if sha256 not in {s.digest.get("sha256") for s in statement.subject}:
        raise PolicyError(
            f"refused: the verdict is not about {target} (sha256 {sha256})", check="verdict", target=target
        )
    names = any(s.name == target for s in statement.subject)
    if summary.passed and not names and not names_provenance(summary, provenance_sha256):
        raise PolicyError(
            f"refused: the PASSED verdict names other targets ({', '.join(s.name for s in statement.subject)}), "
            f"not {target}, nor the provenance {target} names: an auditor's verdict counts for the release or "
            "the build it judged",
            check="verdict",
            target=target,
        )
    return summary


def _provenance_of(custom: Mapping[str, Any]) -> str | None:
    """The provenance envelope's sha256 a target's ``custom.overt`` names, if any."""
    overt = custom.get("overt")
    prov = overt.get("provenance") if isinstance(overt, dict) else None
    digest = prov.get("sha256") if isinstance(prov, dict) else None
    return digest if isinstance(digest, str) else None


def add_verdict(ctx: ReleaseContext, envelope: bytes, *, target: str) -> PublishedVerdict:
    """Check the VSA ``envelope`` is about released target ``target`` and logged; publish it (module doc)."""
    public = ctx.repo.layout.public
    with Repository.edit(ctx.repo) as repo:
        info = repo.state.released().get(target)
        if info is None:
            raise PolicyError(f"refused: {target} is not a target released here", check="verdict")
        summary = _summary(envelope, target, info.hashes["sha256"], _provenance_of(info.custom))
        index = ctx.verify_logged(envelope, "the verdict")
        digest = hashlib.sha256(envelope).hexdigest()
        files = verdict_evidence(target, digest)
        if write_proved_evidence(public, ctx.repo.log, [(files, envelope, index)]) is None:
            raise PolicyError("refused: no published checkpoint covers the verdict yet", check="log")
        index_file = public / verdict_index_path(target)
        try:
            current = (
                VerdictIndex.from_bytes(index_file.read_bytes()) if index_file.exists() else VerdictIndex()
            )
            updated = current.with_verdict(digest)
            write_target_bundle(public, target)  # before the index names it: no bundle ever lags the index
            atomic_write(index_file, updated.to_bytes())
        except (OSError, Error) as e:
            raise StorageError(f"cannot update the verdict index {index_file}: {e}") from e
    return PublishedVerdict(
        target=target,
        sha256=digest,
        result=summary.verification_result,
        verifier=summary.verifier.id,
        log_index=index,
        files=files,
        verdicts=len(updated.verdicts),
    )


# --- counting them (the endpoint, step 3 of overt.distribute.assurance) -----------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Verdict:
    keyid: str
    identity: bytes
    summary: VerificationSummary
    logged: LoggedEntry | None
    binds: bool  # names this target path, or the provenance the target names


def verdict_files_of(path: str, sha256: str) -> tuple[str, str]:
    """The two files an endpoint reads of one verdict (its envelope and tlog-proof)."""
    files = verdict_evidence(path, sha256)
    return files.entry, files.proof


def _signed_by(envelope: Envelope, key: Key) -> bool:
    try:
        verify_envelope(envelope, [key], 1)
    except Error:
        return False
    return True


def _read_verdict(
    get: EvidenceSource,
    path: str,
    sha256: str,
    envelope_sha256: str,
    keys: Sequence[Key],
    policy: Policy,
    provenance_sha256: str | None,
) -> _Verdict | None:
    """One published verdict, if a trusted key signed it about ``sha256`` (None: it does not count)."""
    files = verdict_evidence(path, envelope_sha256)
    data = get(files.entry)
    if data is None or hashlib.sha256(data).hexdigest() != envelope_sha256:
        return None
    try:
        envelope = Envelope.from_bytes(data)
        signer = next((k for k in keys if _signed_by(envelope, k)), None)
        if signer is None:
            return None
        statement = Statement.from_bytes(envelope.payload)
        summary = VerificationSummary.from_statement(statement)
    except FormatError:
        return None
    if sha256 not in {s.digest.get("sha256") for s in statement.subject}:
        return None
    names_path = any(s.name == path and s.digest.get("sha256") == sha256 for s in statement.subject)
    binds = names_path or names_provenance(summary, provenance_sha256)
    proof = get(files.proof)
    logged = None
    if proof is not None:
        try:
            logged = verify_logged_entry(data, proof, policy)
        except (VerificationError, FormatError):
            logged = None
    return _Verdict(
        keyid=signer.keyid,
        identity=key_identity(signer),
        summary=summary,
        logged=logged,
        binds=binds,
    )


def verdicts_passed(
    get: EvidenceSource,
    *,
    path: str,
    sha256: str,
    keys: Sequence[Key],
    threshold: int,
    policy: Policy,
    provenance_sha256: str | None = None,
) -> tuple[list[str], list[LoggedEntry]]:
    """``threshold`` distinct ``keys`` logged a PASSED verdict on target ``path`` with digest ``sha256``, and
    none of them FAILED it; the keyids that count and their log entries.

    A PASSED verdict counts only if a trusted key signed it, a subject of it has this exact sha256, it judged
    this release or this build (a subject names this path, so an old release verdict republished beside the
    same bytes under a new version does not count; or an ``inputAttestations`` entry names
    ``provenance_sha256``, the logged provenance the target names, as a rebuilder's verdict does), and its
    tlog-proof verifies under ``policy``. A FAILED one counts
    on the sha256 alone, even unlogged: a trusted auditor said no to these bytes."""
    raw = get(verdict_index_path(path))
    try:
        index = VerdictIndex() if raw is None else VerdictIndex.from_bytes(raw)
    except FormatError as e:
        raise refused("verdicts", f"the verdict index of {path} is malformed: {e}") from e
    get = prefetched(get, [f for sha in index.verdicts for f in verdict_files_of(path, sha)])
    verdicts = [
        v
        for sha in index.verdicts
        if (v := _read_verdict(get, path, sha256, sha, keys, policy, provenance_sha256))
    ]
    failed = [v for v in verdicts if not v.summary.passed]
    if failed:
        v = failed[0]
        raise refused(
            "verdicts",
            f"trusted auditor {v.keyid[:16]} FAILED {path} (sha256 {sha256}) at {v.summary.time_verified}",
            auditor=v.keyid,
            verifier=v.summary.verifier.id,
        )
    passed: dict[bytes, _Verdict] = {}
    for v in verdicts:
        if v.logged is not None and v.binds:
            passed.setdefault(v.identity, v)  # one key, however many verdicts, counts once
    if len(passed) < threshold:
        keyids = sorted(v.keyid[:16] for v in passed.values())
        raise refused(
            "verdicts",
            f"{len(passed)} of the {threshold} distinct trusted auditors required have a logged PASSED verdict on "
            f"{path} (sha256 {sha256})" + (f": {', '.join(keyids)}" if keyids else ""),
            passed=keyids,
            required=threshold,
        )
    chosen = list(passed.values())
    return [v.keyid for v in chosen], [v.logged for v in chosen if v.logged is not None]
