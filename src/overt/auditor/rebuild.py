"""``overt auditor rebuild``: tail the vendor's log, rebuild each new provenance from the escrow, log a VSA.

The unit of work, for the loop here and for a job queue (:mod:`overt.auditor.queue`) alike::

    @dataclass(frozen=True) class RebuildJob: log_index: int; provenance_sha256: str   (+ to_dict/from_dict)
    def discover(home: AuditorHome, follow: RebuildSettings) -> list[RebuildJob]
    def run_job(home: AuditorHome, follow: RebuildSettings, job: RebuildJob) -> Outcome

:class:`RebuildSettings` is what both need besides the home: the log's URL, the vendor's site, where VSAs are
submitted, the retry limits and the verdict store's DSN (frozen, with ``to_dict``/``from_dict`` to cross a
process).

:func:`discover` fetches the log's checkpoint and verifies it (log signature, witness quorum of the pinned
policy, consistency with the last one this home trusted, kept in ``state/log``: a rollback is refused), reads
the entries from the saved position on through the monitor's tree-checked reader
(:func:`overt.auditor.monitor_read.checked_entries`: every entry folded into the tree and the tree matched
with the checkpoint's root, so a tile server cannot hide or change an entry), keeps the provenances signed
by a pinned vendor builder key (:func:`overt.auditor.reproduce.read_provenance`) and records them as jobs
together with the new position, in one transaction, only once the whole range proved the log's. It returns
every job without a logged verdict: the new ones, a FAIL waiting for its retry, a job whose run was killed.
Nothing is lost if the process dies at any point, and nothing is read twice.

:func:`run_job` is idempotent and safe to call twice at once from two processes:

1. a verdict already stored for (auditor key, provenance) is returned as it is ("decided before"),
   resubmitted first if the log never answered (the same bytes: the log gives them the same index); nothing
   is rebuilt;
2. the entry is read again from the log, checked against the job's digest, its inclusion verified, its
   signature checked (a job cannot make the rebuilder trust anything the log does not hold);
3. the provenance is rebuilt in a scratch directory (:func:`overt.auditor.reproduce.reproduce`): GOOD, BAD or
   FAIL. FAIL and BAD are retried with separate limits (``max_fail_attempts``, ``max_bad_attempts``): below
   its limit the attempt is counted and no VSA is made; the job waits for the next pass. A BAD explained by an
   environment difference is final at once, since building again on this host cannot change it; so is a
   provenance whose claim is refused before any build (:mod:`overt.auditor.claims`: a subject named twice,
   a recipe that is not the escrowed source's). A FAIL past its limit gets a FAILED VSA whose reason says the
   rebuild could not be done (and why: the build failed, or the site served bytes that do not match the
   logged digests). A site that cannot be reached or read (:class:`~overt.errors.TransportError`) uses no
   attempt: the job stays pending and the error is raised;
4. the VSA is signed (:mod:`overt.auditor.summary`), stored with ``INSERT ... ON CONFLICT DO NOTHING`` and read
   back, so of two concurrent runs the first to store decides and both submit its bytes; then submitted to
   ``<submit>/add``, its tlog-proof verified under the pinned policy, and published under ``public/vsa/``. A
   submission that fails (the log unreachable, or an answer whose proof does not verify) raises a
   :class:`~overt.errors.TransportError`: the verdict stays stored, and its envelope is resubmitted by the
   next run.

A :class:`RebuildSession` (one HTTP client, the verified log client, the verdict store's connection) may be
opened once and handed to :func:`run_job` for many jobs, as the in-process pass and each worker thread do: a
checkpoint byte for byte the one the session verified last is not verified again.

The loop around them (one pass, and passes until a signal) is :mod:`overt.auditor.rebuild_loop`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from securesystemslib.signer import Key

from overt.attest.dsse import Envelope
from overt.attest.statement import Statement, format_timestamp
from overt.auditor.home import AuditorHome
from overt.auditor.monitor_read import checked_entries
from overt.auditor.reproduce import LoggedProvenance, Reproduction, Skipped, read_provenance, reproduce
from overt.auditor.site import EscrowCache, Site
from overt.auditor.summary import publish_reports, publish_vsa, sign_verdict, verdict_statement
from overt.auditor.verdicts import BAD, FAIL, StoredVerdict, VerdictStore
from overt.build.conveyor import scratch_directory
from overt.errors import FormatError, TransportError, UsageError, VerificationError
from overt.keys.registry import Role
from overt.tlog.client import Fetch, LogClient, VerifiedTree, check_http_url, http_fetcher, submit_entry
from overt.tlog.policy import Policy
from overt.tlog.proof import TlogProof

DEFAULT_MAX_FAIL_ATTEMPTS = 3
DEFAULT_MAX_BAD_ATTEMPTS = 2
SCRATCH_PREFIX = "overt-rebuild-"
HTTP_TIMEOUT_S = 120.0


def site_of(log_url: str) -> str:
    """The vendor's site a log URL belongs to: the URL without its last path segment (``.../log``)."""
    base, sep, last = log_url.rstrip("/").rpartition("/")
    if not sep or not last or base.endswith(("http:/", "https:/")):
        raise UsageError(f"{log_url} has no path segment to strip for the vendor's site: give --site")
    return base


def _check_url(url: str) -> None:
    if not url.strip():
        raise UsageError("an empty URL was given for the log, the site or the submit endpoint")
    check_http_url(url)


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildSettings:
    """Where the rebuilder reads and writes, and its limits (everything a job needs besides the home)."""

    log_url: str  # the log's tlog-tiles prefix (checkpoint, tile/...)
    site: str  # the vendor's public site (escrow/, builds/, avdb/)
    submit: str  # the log server VSAs are submitted to (POST <submit>/add)
    store: str | None = (
        None  # verdict store DSN: postgresql://... or sqlite:///PATH; None: state/ of the home
    )
    max_fail_attempts: int = DEFAULT_MAX_FAIL_ATTEMPTS
    max_bad_attempts: int = DEFAULT_MAX_BAD_ATTEMPTS
    workdir: str | None = None  # where scratch directories go; None: tmpfs, else the system's temp directory

    def __post_init__(self) -> None:
        for url in (self.log_url, self.site, self.submit):
            _check_url(url)
        if self.max_fail_attempts < 1 or self.max_bad_attempts < 1:
            raise UsageError("the retry limits are attempts, at least 1")

    @classmethod
    def of(
        cls, log_url: str, *, site: str | None = None, submit: str | None = None, **rest: Any
    ) -> RebuildSettings:
        """``site`` defaults to :func:`site_of` ``log_url``, ``submit`` to the site (None only: an empty URL
        is refused as any malformed one)."""
        _check_url(log_url)
        where = site_of(log_url) if site is None else site
        return cls(log_url=log_url, site=where, submit=where if submit is None else submit, **rest)

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_url": self.log_url,
            "site": self.site,
            "submit": self.submit,
            "store": self.store,
            "max_fail_attempts": self.max_fail_attempts,
            "max_bad_attempts": self.max_bad_attempts,
            "workdir": self.workdir,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> RebuildSettings:
        try:
            return cls(**obj)
        except TypeError as e:
            raise FormatError(f"not a rebuilder's settings: {e}") from e


@dataclass(frozen=True, slots=True)
class RebuildJob:
    """One provenance to rebuild: its log index and the SHA-256 of its envelope as logged."""

    log_index: int
    provenance_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"log_index": self.log_index, "provenance_sha256": self.provenance_sha256}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> RebuildJob:
        index, sha256 = obj.get("log_index"), obj.get("provenance_sha256")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0 or not isinstance(sha256, str):
            raise FormatError("a rebuild job is {log_index: non-negative integer, provenance_sha256: hex}")
        return cls(log_index=index, provenance_sha256=sha256)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What :func:`run_job` did with one job."""

    job: RebuildJob
    artifact: str  # the provenance's subjects
    verdict: str  # GOOD, BAD or FAIL
    reason: str
    final: bool  # a VSA was signed and logged; False: an attempt below its retry limit, retried later
    attempts: int  # of this verdict's kind (FAIL or BAD); 1 for a GOOD
    limit: int  # the retry limit of this kind of verdict
    vsa_index: int | None = None
    vsa_result: str | None = None  # PASSED or FAILED
    vsa_path: Path | None = None
    rebuilt: bool = True  # a build ran in this call (False: decided before, refused, or inputs unusable)
    decided_before: bool = False  # the verdict was already stored (by an earlier run or another worker)
    environment: str | None = None  # the environment comparison's text, as the VSA's rebuild.environment

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.job.to_dict(),
            "artifact": self.artifact,
            "verdict": self.verdict,
            "reason": self.reason,
            "final": self.final,
            "attempts": self.attempts,
            "limit": self.limit,
            "vsa_index": self.vsa_index,
            "vsa_result": self.vsa_result,
            "vsa": None if self.vsa_path is None else str(self.vsa_path),
            "rebuilt": self.rebuilt,
            "decided_before": self.decided_before,
            "environment": self.environment,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Discovery:
    """What one discovery read: the log from ``start`` to ``tree_size``, the jobs to run, what it skipped."""

    start: int
    tree_size: int
    new: int  # provenances found in this stretch
    jobs: tuple[RebuildJob, ...]  # every job without a logged verdict, new or older
    skipped: tuple[Skipped, ...]


# --- the session: one HTTP client, one verified log client, one store -----------------------------------


class _Prefetched:
    """The log's fetcher, handing out a checkpoint fetched beforehand once (so it is fetched once)."""

    def __init__(self, fetch: Fetch) -> None:
        self.fetch = fetch
        self.checkpoint: bytes | None = None

    def __call__(self, rel: str) -> bytes:
        if rel == "checkpoint" and self.checkpoint is not None:
            data, self.checkpoint = self.checkpoint, None
            return data
        return self.fetch(rel)


@dataclass
class RebuildSession:
    """What the rebuilder's calls share for one home and one :class:`RebuildSettings`: an HTTP client
    (kept-alive connections), the log client, the verdict store's connection and the pinned builder keys.
    Used by one thread at a time; :meth:`close` it when done."""

    follow: RebuildSettings
    http: httpx.Client
    fetch: _Prefetched
    client: LogClient
    site: Site
    store: VerdictStore
    keys: Sequence[Key] = ()
    tree: VerifiedTree | None = None  # the checkpoint verified last, and its bytes as served
    served: bytes = b""

    def decided(self, auditor: str, job: RebuildJob) -> bool:
        """A verdict on ``job`` is stored already (its run only submits it, if the log has not answered)."""
        return self.store.verdict(auditor, job.provenance_sha256) is not None

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            self.http.close()


def open_session(home: AuditorHome, follow: RebuildSettings) -> RebuildSession:
    """A :class:`RebuildSession` for ``home`` under ``follow`` (the caller closes it)."""
    keys = [k.record.key for k in home.vendor_keys if k.record.role is Role.BUILDER]
    if not keys:
        raise UsageError("the auditor home pins no vendor key of role builder: no provenance can count")
    http = httpx.Client(timeout=HTTP_TIMEOUT_S, headers={"Accept-Encoding": "gzip, identity"})
    try:
        fetch = _Prefetched(http_fetcher(follow.log_url, http))
        client = LogClient(fetch, home.policy, state_dir=home.paths.log_state)
        store = VerdictStore(follow.store, default=home.paths.rebuild_store)
    except BaseException:
        http.close()
        raise
    return RebuildSession(
        follow=follow,
        http=http,
        fetch=fetch,
        client=client,
        site=Site(follow.site, http),
        store=store,
        keys=keys,
    )


@contextmanager
def _session(home: AuditorHome, follow: RebuildSettings) -> Iterator[RebuildSession]:
    session = open_session(home, follow)
    try:
        yield session
    finally:
        session.close()


def _verified_tree(s: RebuildSession) -> VerifiedTree:
    """The log's checkpoint, verified (signature, quorum, consistency with the last one trusted), unless it
    is byte for byte the one this session verified last."""
    served = s.fetch.fetch("checkpoint")
    if s.tree is not None and served == s.served:
        return s.tree
    s.fetch.checkpoint = served
    try:
        s.tree, s.served = s.client.update(), served
    finally:
        s.fetch.checkpoint = None
    return s.tree


# --- discovery -------------------------------------------------------------------------------------------


def scan_log(home: AuditorHome, follow: RebuildSettings) -> Discovery:
    """:func:`discover`, with what it read and skipped (see the module doc)."""
    auditor = home.key.keyid
    with _session(home, follow) as s:
        tree = _verified_tree(s)
        size = tree.checkpoint.checkpoint.tree_size
        start = s.store.position(auditor)
        if start > size:
            raise VerificationError(
                f"the verdict store has read the log up to size {start}, but the log's verified checkpoint "
                f"has size {size}",
                position=start,
                tree_size=size,
            )
        found: list[LoggedProvenance] = []
        skipped: list[Skipped] = []
        root = tree.checkpoint.checkpoint.root_hash
        for index, entry in checked_entries(s.client, start=start, tree_size=size, root=root):
            read = read_provenance(entry, index, s.keys)
            if isinstance(read, LoggedProvenance):
                found.append(read)
            elif isinstance(read, Skipped):
                skipped.append(read)
        s.store.record_discovery(auditor, [(p.index, p.sha256) for p in found], next_index=size)
        jobs = tuple(RebuildJob(j.log_index, j.provenance_sha256) for j in s.store.unfinished(auditor))
    return Discovery(start=start, tree_size=size, new=len(found), jobs=jobs, skipped=tuple(skipped))


def discover(home: AuditorHome, follow: RebuildSettings) -> list[RebuildJob]:
    """Every job without a logged verdict, after reading the log from the saved position (module doc)."""
    return list(scan_log(home, follow).jobs)


# --- one job ---------------------------------------------------------------------------------------------


def _logged_provenance(s: RebuildSession, job: RebuildJob) -> LoggedProvenance:
    """The job's entry, read from the log again: its digest, inclusion and signature checked."""
    tree = _verified_tree(s)
    size = tree.checkpoint.checkpoint.tree_size
    if job.log_index >= size:
        raise VerificationError(f"job names log entry {job.log_index}, but the log has size {size}")
    index, entry = next(s.client.iter_entries(size, job.log_index))
    got = hashlib.sha256(entry).hexdigest()
    if got != job.provenance_sha256:
        raise VerificationError(
            f"log entry {index} has sha256 {got}, the job names {job.provenance_sha256}",
            expected=job.provenance_sha256,
            got=got,
        )
    s.client.verify_inclusion(entry, index, tree.checkpoint)
    read = read_provenance(entry, index, s.keys)
    if not isinstance(read, LoggedProvenance):
        why = read.reason if read is not None else "it is not SLSA provenance"
        raise VerificationError(f"log entry {index} is not a provenance this rebuilder rebuilds: {why}")
    return read


def run_job(
    home: AuditorHome, follow: RebuildSettings, job: RebuildJob, *, session: RebuildSession | None = None
) -> Outcome:
    """Judge one provenance (module doc); idempotent. ``session``: one opened by :func:`open_session` for
    ``follow``, kept by the caller across jobs (default: one for this call).

    Raises:
        TransportError: the log, the site or the submit endpoint cannot be reached or read, or the log's
            answer to the submission does not verify; the job stays pending.
        VerificationError: the log's checkpoint does not verify, or the job names no provenance it holds.
        PolicyError: the auditor's key may not sign the verdict.
    """
    if session is None:
        with _session(home, follow) as s:
            return _run_job(s, home, follow, job)
    if session.follow != follow:
        raise ValueError("the session was opened for other rebuild settings")
    return _run_job(session, home, follow, job)


def _run_job(s: RebuildSession, home: AuditorHome, follow: RebuildSettings, job: RebuildJob) -> Outcome:
    stored = s.store.verdict(home.key.keyid, job.provenance_sha256)
    if stored is not None:
        return _logged(s, home, follow, stored, rebuilt=False, decided_before=True)
    prov = _logged_provenance(s, job)
    base = Path(follow.workdir) if follow.workdir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    with scratch_directory(SCRATCH_PREFIX, base=base) as work:
        found = reproduce(
            prov, site=s.site, cache=EscrowCache(directory=home.paths.escrow_cache), workdir=work
        )
        return _decide(s, home, follow, prov, found)


def _decide(
    s: RebuildSession, home: AuditorHome, follow: RebuildSettings, prov: LoggedProvenance, found: Reproduction
) -> Outcome:
    """Count an attempt below its limit, or sign, store and log the verdict."""
    auditor = home.key.keyid
    job = RebuildJob(prov.index, prov.sha256)
    attempts, limit, reason = 1, 1, found.reason
    env = found.environment
    env_text = None if env is None else env.text()
    if found.verdict in (BAD, FAIL):
        limit = follow.max_fail_attempts if found.verdict == FAIL else follow.max_bad_attempts
        state = s.store.count_attempt(
            auditor, prov.sha256, log_index=prov.index, kind=found.verdict, reason=reason
        )
        attempts = state.fail_attempts if found.verdict == FAIL else state.bad_attempts
        final = found.final or (found.verdict == BAD and env is not None and env.differs)
        if attempts < limit and not final:
            return Outcome(
                job=job, artifact=prov.artifact, verdict=found.verdict, reason=reason, final=False,
                attempts=attempts, limit=limit, rebuilt=found.built, environment=env_text,
            )  # fmt: skip
        if found.verdict == FAIL:
            tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
            reason = f"the rebuild could not be done ({tries}): {reason}"
            found = dataclasses.replace(found, reason=reason)
    now = datetime.now(UTC)
    reports = publish_reports(home, prov, found) if found.verdict == BAD else ()
    statement = verdict_statement(
        home, prov, found, log_url=follow.log_url, attempts=attempts, reports=reports, now=now
    )
    envelope = sign_verdict(home, statement, now=now)
    stored = s.store.put_verdict(
        StoredVerdict(
            auditor=auditor,
            provenance_sha256=prov.sha256,
            log_index=prov.index,
            verdict=found.verdict,
            result=str(statement.predicate["verificationResult"]),
            reason=reason,
            envelope=envelope,
            vsa_index=None,
            decided_at=format_timestamp(now),
        )
    )
    before = stored.envelope != envelope  # another run stored its verdict first: that one stands
    return _logged(
        s, home, follow, stored, rebuilt=found.built, decided_before=before, attempts=attempts, limit=limit
    )


def _submit(s: RebuildSession, follow: RebuildSettings, stored: StoredVerdict, policy: Policy) -> TlogProof:
    """Submit ``stored``; a TransportError if the log did not take it verifiably (unreachable, or an answer
    whose tlog-proof does not verify): the job stays pending, the same envelope is resubmitted next run."""
    try:
        return submit_entry(follow.submit, stored.envelope, policy, s.http)
    except (TransportError, VerificationError) as e:
        raise TransportError(
            f"its {stored.result} verdict is signed and stored, but the log did not take it: {e}",
            provenance_sha256=stored.provenance_sha256,
        ) from e


def _logged(
    s: RebuildSession,
    home: AuditorHome,
    follow: RebuildSettings,
    stored: StoredVerdict,
    *,
    rebuilt: bool,
    decided_before: bool,
    attempts: int | None = None,
    limit: int | None = None,
) -> Outcome:
    """``stored``, submitted first if the log has not answered for it yet (the same bytes every time)."""
    index = stored.vsa_index
    path = home.paths.vsa(stored.provenance_sha256)
    if index is None:
        proof = _submit(s, follow, stored, home.policy)
        publish_vsa(home, stored.provenance_sha256, stored.envelope, proof)
        s.store.mark_logged(stored.auditor, stored.provenance_sha256, vsa_index=proof.index)
        index = proof.index
    rebuild = _rebuild_field(stored.envelope)
    env = rebuild.get("environment")
    return Outcome(
        job=RebuildJob(stored.log_index, stored.provenance_sha256),
        artifact=", ".join(
            d.name for d in Statement.from_bytes(Envelope.from_bytes(stored.envelope).payload).subject
        ),
        verdict=stored.verdict,
        reason=stored.reason,
        final=True,
        attempts=attempts if attempts is not None else int(rebuild.get("attempts", 1)),
        limit=limit if limit is not None else _limit(follow, stored.verdict),
        vsa_index=index,
        vsa_result=stored.result,
        vsa_path=path,
        rebuilt=rebuilt,
        decided_before=decided_before,
        environment=str(env["text"]) if isinstance(env, dict) else None,
    )


def _rebuild_field(envelope: bytes) -> dict[str, Any]:
    predicate = Statement.from_bytes(Envelope.from_bytes(envelope).payload).predicate
    field_ = predicate.get("rebuild")
    return field_ if isinstance(field_, dict) else {}


def _limit(follow: RebuildSettings, verdict: str) -> int:
    return {FAIL: follow.max_fail_attempts, BAD: follow.max_bad_attempts}.get(verdict, 1)
