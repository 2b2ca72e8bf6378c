"""Evidence as static files beside the repository, and the checks an endpoint makes with it.

Each logged thing an endpoint relies on has one evidence directory under ``public/tuf/evidence/``, holding the
exact log entry, a C2SP tlog-proof of it and the witness-cosigned checkpoint that proof refers to::

    evidence/metadata/<N>.<role>.json/statement.dsse.json    the tuf-metadata/v1 statement, as logged
    evidence/metadata/<N>.<role>.json/statement.tlog-proof   its inclusion under a cosigned checkpoint
    evidence/metadata/<N>.<role>.json/checkpoint             that checkpoint (also inside the proof)
    evidence/targets/<target path>/provenance.dsse.json      the target's SLSA provenance, as logged
    evidence/targets/<target path>/provenance.tlog-proof
    evidence/targets/<target path>/checkpoint

An endpoint reads most of these files through two evidence bundles (:mod:`overt.distribute.bundles`,
transport only). Metadata evidence is per metadata *file*, not per target: ``3.release.json`` lists every target, and a copy
beside each target would go stale with the next release. An endpoint that used ``3.release.json`` reads
``evidence/metadata/3.release.json/``. The proofs of one release all refer to the checkpoint published at its
end. Nothing here is a TUF target: each file verifies on its own, against the log policy the endpoint pins.

Writing (:func:`write_proved_evidence`, and :func:`write_pending_evidence` for proofs that had to wait for a
published checkpoint) is for the repository. Checking (:func:`verify_logged_metadata`,
:func:`unlogged_metadata`) takes bytes, or a :data:`~overt.tlog.client.Fetch` for the served tree
(``directory_fetcher`` or ``http_fetcher`` of ``.../public/tuf``), and the verifier's own policy. An endpoint
reads evidence through an :data:`EvidenceSource` (:func:`http_source`, :func:`directory_source`), which tells
a file that is not there (None) from one that could not be read (:class:`~overt.errors.TransportError`), and
reports a failed check with :func:`refused`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import urllib3
from securesystemslib.signer import Key
from tuf.api.exceptions import DownloadError, DownloadHTTPError, RepositoryError
from tuf.api.metadata import Metadata, Snapshot, Timestamp
from tuf.ngclient import FetcherInterface

from overt.atomic import atomic_write
from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.statement import Statement
from overt.attest.verify import verify_envelope
from overt.distribute.layout import TIMESTAMP_FILE, metadata_name
from overt.distribute.metadata import MetadataStatement
from overt.errors import Error, FormatError, TransportError, VerificationError
from overt.files import read_regular_file
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.client import MAX_BUNDLE_BYTES, Fetch, verify_checkpoint, verify_tlog_proof
from overt.tlog.merkle import leaf_hash, verify_inclusion
from overt.tlog.policy import Policy
from overt.tlog.proof import TlogProof

if TYPE_CHECKING:
    from overt.home import HomeLog

STATEMENT, PROVENANCE = "statement", "provenance"


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceFiles:
    """The three files of one evidence directory, as paths relative to ``public/tuf/``."""

    entry: str
    proof: str
    checkpoint: str

    @classmethod
    def in_directory(cls, directory: str, kind: str) -> EvidenceFiles:
        return cls(
            entry=f"{directory}/{kind}.dsse.json",
            proof=f"{directory}/{kind}.tlog-proof",
            checkpoint=f"{directory}/checkpoint",
        )

    def to_dict(self) -> dict[str, str]:
        return {"entry": self.entry, "proof": self.proof, "checkpoint": self.checkpoint}


def metadata_evidence(name: str) -> EvidenceFiles:
    """The evidence of the metadata file ``name`` (``3.release.json``, ``7.timestamp.json``)."""
    return EvidenceFiles.in_directory(f"evidence/metadata/{name}", STATEMENT)


def target_evidence(path: str) -> EvidenceFiles:
    """The evidence of the target ``path`` (its provenance)."""
    return EvidenceFiles.in_directory(f"evidence/targets/{path}", PROVENANCE)


def write_evidence(public: Path, files: EvidenceFiles, entry: bytes, proof: TlogProof | None) -> None:
    """Write the entry and, once a published checkpoint covers it, its proof and that checkpoint."""
    atomic_write(public / files.entry, entry)
    if proof is not None:
        atomic_write(public / files.checkpoint, proof.checkpoint.to_bytes())
        atomic_write(public / files.proof, proof.to_bytes())


def write_proved_evidence(
    public: Path, log: HomeLog, items: Sequence[tuple[EvidenceFiles, bytes, int]]
) -> int | None:
    """Write each (files, entry, log index) item's evidence under ``public``: with proofs under ``log``'s
    published checkpoint if it covers them all (each verified under the log's policy before it is written),
    whose size is returned; else the entries only (None: proofs pending)."""
    reader = log.read()
    try:
        published = reader.published()
        size = 0 if published is None else published.checkpoint.tree_size
        covered = published is not None and all(index < size for _, _, index in items)
        policy = log.policy()
        for files, entry, index in items:
            proof: TlogProof | None = None
            if covered and published is not None:
                proof = reader.proof(index, published, entry=entry)
                verify_tlog_proof(proof, entry, policy)
            write_evidence(public, files, entry, proof)
    finally:
        reader.close()
    return size if covered else None


def write_pending_evidence(public: Path, log: HomeLog) -> list[str]:
    """Write the proofs evidence under ``public`` still lacks (its entries were appended while no checkpoint
    could be published), found by the log's index; the proof files written."""
    evidence = public / "evidence"
    pending: list[tuple[EvidenceFiles, bytes]] = []
    for entry_file in sorted(evidence.rglob("*.dsse.json")) if evidence.is_dir() else []:
        kind = entry_file.name.removesuffix(".dsse.json")
        files = EvidenceFiles.in_directory(str(entry_file.parent.relative_to(public)), kind)
        if not (public / files.proof).exists():
            pending.append((files, entry_file.read_bytes()))
    if not pending:
        return []
    store = log.open_store()
    try:
        found = store.lookup([leaf_hash(entry) for _, entry in pending])
    finally:
        store.close()
    items = [(files, entry, found[leaf_hash(entry)]) for files, entry in pending if leaf_hash(entry) in found]
    if not items or write_proved_evidence(public, log, items) is None:
        return []
    return [files.proof for files, _, _ in items]


# --- checking ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedEntry:
    """An entry proved to be in the log: its index, and the cosigned checkpoint of the proof."""

    index: int
    checkpoint: SignedCheckpoint
    cosigners: frozenset[str]

    def to_dict(self) -> dict[str, Any]:
        cp = self.checkpoint.checkpoint
        return {
            "index": self.index,
            "tree_size": cp.tree_size,
            "origin": cp.origin,
            "cosigners": sorted(self.cosigners),
        }


# Checkpoints whose signatures and quorum verified, by (the policy, the note's bytes): the proofs of one
# release all refer to one checkpoint, and its log signature and cosignatures are checked once, not once per
# proof. The policy object is kept in the value, so a reused id() never matches another policy.
_VERIFIED: OrderedDict[tuple[int, bytes], tuple[Policy, frozenset[str]]] = OrderedDict()
_VERIFIED_LOCK = threading.Lock()
_VERIFIED_MAX = 64


def verified_checkpoint(signed: SignedCheckpoint, policy: Policy) -> frozenset[str]:
    """:func:`~overt.tlog.client.verify_checkpoint`, remembered for the exact note bytes under the same
    ``policy`` object (a pure function of the two: only a success is remembered)."""
    key = (id(policy), signed.to_bytes())
    with _VERIFIED_LOCK:
        hit = _VERIFIED.get(key)
    if hit is not None and hit[0] is policy:
        return hit[1]
    cosigners = verify_checkpoint(signed, policy)
    with _VERIFIED_LOCK:
        _VERIFIED[key] = (policy, cosigners)
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return cosigners


def remember_verified_checkpoint(signed: SignedCheckpoint, policy: Policy, cosigners: frozenset[str]) -> None:
    """Record that :func:`~overt.tlog.client.verify_checkpoint` of ``signed`` under ``policy`` just returned
    ``cosigners``: for a caller that verified it that way itself (an agent's
    :meth:`~overt.tlog.client.LogClient.update` of the log's head, which is often the checkpoint of the
    newest proofs), so that :func:`verified_checkpoint` does not check the same signatures twice."""
    with _VERIFIED_LOCK:
        _VERIFIED[(id(policy), signed.to_bytes())] = (policy, cosigners)
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)


def verify_logged_entry(entry: bytes, proof: bytes, policy: Policy) -> LoggedEntry:
    """``entry`` is in the log under a checkpoint that meets ``policy``'s witness quorum (tlog-proof)."""
    parsed = TlogProof.from_bytes(proof)
    # tlog-proof §Verifying, as verify_tlog_proof: 1. the leaf hash; 2-3. origin, log signature, cosignatures
    # and quorum (once per checkpoint); 4. inclusion of the leaf under the checkpoint's root (every proof).
    leaf = leaf_hash(entry)
    cosigners = verified_checkpoint(parsed.checkpoint, policy)
    cp = parsed.checkpoint.checkpoint
    verify_inclusion(parsed.index, cp.tree_size, leaf, parsed.inclusion, cp.root_hash)
    return LoggedEntry(index=parsed.index, checkpoint=parsed.checkpoint, cosigners=cosigners)


def verify_logged_metadata(
    name: str,
    data: bytes,
    *,
    entry: bytes,
    proof: bytes,
    policy: Policy,
    keys: Sequence[Key] | None = None,
) -> LoggedEntry:
    """The metadata file ``name`` with the bytes ``data`` is logged by digest; raises otherwise.

    1. ``entry`` is a DSSE envelope of a ``tuf-metadata/v1`` statement naming ``name``;
    2. its digest and length are those of ``data`` (the bytes the TUF client verified);
    3. with ``keys`` (the role's keys from the TUF metadata the client trusts), one of them signed it;
    4. ``proof`` proves ``entry`` in the log under a checkpoint meeting ``policy`` (quorum included).
    """
    envelope = Envelope.from_bytes(entry)
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
        raise FormatError(f"the log entry for {name} is not an in-toto statement")
    logged = MetadataStatement.from_statement(Statement.from_bytes(envelope.payload))
    if logged.name != name:
        raise VerificationError(f"the log entry is about {logged.name}, not {name}", logged=logged.name)
    digest = hashlib.sha256(data).hexdigest()
    if (logged.sha256, logged.length) != (digest, len(data)):
        raise VerificationError(
            f"{name} is not the file the log holds: its sha256 is {digest}, the logged one {logged.sha256}",
            served_sha256=digest,
            logged_sha256=logged.sha256,
        )
    if keys is not None:
        verify_envelope(envelope, keys, 1)
    return verify_logged_entry(entry, proof, policy)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnloggedMetadata:
    """A metadata file of the served repository whose digest is not proved logged, and why."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


def _check(fetch: Fetch, name: str, data: bytes, policy: Policy) -> UnloggedMetadata | None:
    files = metadata_evidence(name)
    try:
        verify_logged_metadata(name, data, entry=fetch(files.entry), proof=fetch(files.proof), policy=policy)
    except Error as e:
        return UnloggedMetadata(name=name, reason=str(e))
    return None


def served_metadata(fetch: Fetch) -> list[tuple[str, bytes]]:
    """Every metadata file the served repository references now, by consistent-snapshot name: each root
    version, the timestamp, its snapshot and every targets file that snapshot lists."""
    out: list[tuple[str, bytes]] = []
    version = 1
    while True:
        try:
            data = fetch(f"metadata/{metadata_name('root', version)}")
        except Error:
            break
        out.append((metadata_name("root", version), data))
        version += 1
    raw = fetch(f"metadata/{TIMESTAMP_FILE}")
    try:
        timestamp = Metadata[Timestamp].from_bytes(raw)
        out.append((metadata_name("timestamp", timestamp.signed.version), raw))
        snap_name = metadata_name("snapshot", timestamp.signed.snapshot_meta.version)
        snap_raw = fetch(f"metadata/{snap_name}")
        out.append((snap_name, snap_raw))
        snapshot = Metadata[Snapshot].from_bytes(snap_raw)
    except (RepositoryError, ValueError, TypeError, KeyError) as e:
        raise FormatError(f"the served timestamp or snapshot is malformed: {e}") from e
    for file_name, meta in sorted(snapshot.signed.meta.items()):
        name = metadata_name(file_name.removesuffix(".json"), meta.version)
        out.append((name, fetch(f"metadata/{name}")))
    return out


def unlogged_metadata(fetch: Fetch, policy: Policy) -> list[UnloggedMetadata]:
    """The metadata files the served repository references whose exact bytes are not proved logged under
    ``policy``: empty when every one has its evidence. A targets file a release key signed without logging
    it (a targeted update) is listed here, as is a file whose evidence is missing. A referenced metadata file
    that cannot be fetched raises :class:`~overt.errors.TransportError`, a malformed timestamp or snapshot
    :class:`~overt.errors.FormatError`."""
    found = []
    for name, data in served_metadata(fetch):
        problem = _check(fetch, name, data, policy)
        if problem is not None:
            found.append(problem)
    return found


# --- reading evidence (endpoints) ---------------------------------------------------------------------


# An evidence source: the bytes of a file under the repository's base, or None when it has no such file
# (HTTP 404, no such file). Any other failure is a TransportError: the evidence could not be read.
EvidenceSource = Callable[[str], bytes | None]


def _plain(rel: str) -> str:
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise VerificationError(f"the evidence path {rel!r} is not a plain relative path", check="evidence")
    return rel


def http_source(base_url: str, client: httpx.Client) -> EvidenceSource:
    """Evidence under ``base_url`` (the repository's, where ``evidence/`` is), each file at most
    :data:`~overt.tlog.client.MAX_BUNDLE_BYTES`."""
    base = base_url.rstrip("/") + "/"

    def get(rel: str) -> bytes | None:
        url = base + _plain(rel)
        try:
            with client.stream("GET", url) as r:
                if r.status_code == 404:
                    return None
                if r.status_code != 200:
                    raise TransportError(f"GET {url} answered {r.status_code}", url=url, status=r.status_code)
                out = bytearray()
                for chunk in r.iter_bytes():
                    out += chunk
                    if len(out) > MAX_BUNDLE_BYTES:
                        raise TransportError(
                            f"GET {url} returned more than {MAX_BUNDLE_BYTES} bytes", url=url
                        )
                return bytes(out)
        except httpx.HTTPError as e:
            raise TransportError(f"GET {url} failed: {e}", url=url) from e

    return get


def fetch_url(fetcher: FetcherInterface, url: str, limit: int) -> bytes | None:
    """GET ``url`` through a TUF client's fetcher (its connection pool): None if it answers 404, at most
    ``limit`` bytes, any other failure a :class:`~overt.errors.TransportError`."""
    try:
        out = bytearray()
        for chunk in fetcher.fetch(url):
            out += chunk
            if len(out) > limit:
                raise TransportError(f"GET {url} returned more than {limit} bytes", url=url)
        return bytes(out)
    except DownloadHTTPError as e:
        if e.status_code == 404:
            return None
        raise TransportError(f"GET {url} answered {e.status_code}", url=url, status=e.status_code) from e
    except (DownloadError, urllib3.exceptions.HTTPError) as e:
        raise TransportError(f"GET {url} failed: {type(e).__name__}: {e}", url=url) from e


def fetcher_source(base_url: str, fetcher: FetcherInterface) -> EvidenceSource:
    """:func:`http_source`, through a TUF client's fetcher (:func:`fetch_url`)."""
    base = base_url.rstrip("/") + "/"
    return lambda rel: fetch_url(fetcher, base + _plain(rel), MAX_BUNDLE_BYTES)


def directory_source(root: Path) -> EvidenceSource:
    """Evidence in a directory laid out as ``public/tuf/`` (a copy of the repository, or part of one)."""

    def get(rel: str) -> bytes | None:
        path = root / _plain(rel)
        try:
            if not path.exists() or path.is_dir():
                return None
        except OSError:  # a path through a file, or one too long: not there
            return None
        # A FIFO or a device where a file should be is refused, never waited on or read without end.
        return read_regular_file(path, limit=MAX_BUNDLE_BYTES)

    return get


class Prefetched:
    """An :data:`EvidenceSource` whose files are fetched ahead, concurrently (:func:`prefetched`); a file
    not fetched ahead is read when asked for. A failure is raised when its path is asked for. With
    ``carried`` (the files some bundles carry, :mod:`overt.distribute.bundles`), a file it has is taken from
    it and any other is read from ``get``: the caller checks the bytes the same either way."""

    def __init__(
        self, get: EvidenceSource, pool: Executor | None, carried: EvidenceSource | None = None
    ) -> None:
        self._get = get
        self._pool = pool
        self._carried = carried
        self._lock = threading.Lock()
        self._futures: dict[str, Future[bytes | Error | None]] = {}

    def _read(self, rel: str) -> bytes | None:
        data = None if self._carried is None else self._carried(rel)
        return self._get(rel) if data is None else data

    def _one(self, rel: str) -> bytes | Error | None:
        try:
            return self._read(rel)
        except Error as e:
            return e

    def fetch_ahead(self, paths: Iterable[str], *, workers: int = 8) -> None:
        """Start fetching each of ``paths`` not asked for yet: in the background on this source's pool, else
        on a pool of its own, done when this returns."""
        with self._lock:
            wanted = [p for p in dict.fromkeys(paths) if p not in self._futures]
        if self._carried is not None:
            carried = self._carried
            wanted = [p for p in wanted if carried(p) is None]  # already here: nothing to fetch ahead
        own = self._pool is None
        if not wanted or (own and len(wanted) == 1):  # one file: read when asked for, no thread to wait on
            return
        executor = ThreadPoolExecutor(max_workers=min(workers, len(wanted))) if own else self._pool
        assert executor is not None
        with self._lock:
            for rel in wanted:
                if rel not in self._futures:
                    self._futures[rel] = executor.submit(self._one, rel)
        if own:
            executor.shutdown(wait=True)

    def __call__(self, rel: str) -> bytes | None:
        with self._lock:
            future = self._futures.get(rel)
        if future is None:
            return self._read(rel)
        result = future.result()
        if isinstance(result, Error):
            raise result
        return result


def prefetched(
    get: EvidenceSource, paths: Iterable[str], *, pool: Executor | None = None, workers: int = 8
) -> EvidenceSource:
    """``get``, with ``paths`` fetched concurrently: an endpoint's evidence is a few dozen small files, and a
    round trip each in turn is most of its cost. With ``pool`` the fetches run in the background while the
    caller goes on (an agent downloads the target meanwhile) and a lookup waits for its own; without, they
    are done when this returns. A source that is already prefetched is returned as it is, with the paths it
    has not fetched yet added (on its own pool, if it has one): nothing is fetched twice and no pool of
    threads is made only to wait."""
    source = get if isinstance(get, Prefetched) else Prefetched(get, pool)
    source.fetch_ahead(paths, workers=workers)
    return source


def refused(check: str, message: str, **evidence: Any) -> VerificationError:
    """The refusal of one endpoint check: ``check`` is in the evidence, for the report and for tests."""
    return VerificationError(message, check=check, **evidence)
