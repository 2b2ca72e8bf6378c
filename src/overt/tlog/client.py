"""A verifying client for any tlog-tiles log: fetch checkpoint and tiles, verify signatures, quorum,
consistency with the last checkpoint it trusted, and inclusion of entries or tlog-proof files.

Sources are a local directory or an HTTP(S) prefix; every download has a length limit. Verification functions
take bytes and return a value or raise a :class:`~overt.errors.VerificationError` subclass carrying evidence.

The policy (log keys, witnesses, quorum) is always the caller's, pinned by the verifier: nothing here reads
``<log>/policy``. Trust on first use and the client state directory are :mod:`overt.tlog.trust`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from overt.atomic import atomic_write
from overt.errors import (
    ConsistencyError,
    FormatError,
    QuorumError,
    SignatureError,
    TransportError,
    UsageError,
    VerificationError,
)
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.merkle import consistency_ranges, hash_range, inclusion_ranges, leaf_hash, verify_consistency
from overt.tlog.merkle import verify_inclusion as merkle_verify_inclusion
from overt.tlog.note import Ed25519Verifier, verified_by
from overt.tlog.policy import Policy
from overt.tlog.proof import TlogProof
from overt.tlog.tiles import TILE_WIDTH, TileHashReader, decode_bundle, entries_path, tile_width

MAX_CHECKPOINT_BYTES = 1 << 16
MAX_TILE_BYTES = 1 << 14
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + 0xFFFF)


def verify_checkpoint(
    signed: SignedCheckpoint, policy: Policy, *, log_verifiers: list[Ed25519Verifier] | None = None
) -> frozenset[str]:
    """Verify the log signature and the witness quorum; return the names of witnesses that cosigned.

    Steps as tlog-proof §Verifying: (2) origin acceptable and signed by a log key for it, (3) cosignatures
    of known witnesses verified and the quorum applied.
    """
    origin = signed.checkpoint.origin
    logs = log_verifiers if log_verifiers is not None else [lg.verifier for lg in policy.logs]
    for_origin = [v for v in logs if v.name == origin]
    if not for_origin:
        raise SignatureError(f"no trusted log key for origin {origin!r}", origin=origin)
    signed.verify(for_origin)
    by_key = {(w.verifier.name, w.verifier.key_id): w.name for w in policy.witnesses}
    ok = verified_by(signed.note, [w.verifier for w in policy.witnesses])
    cosigners = frozenset(by_key[(v.name, v.key_id)] for v in ok)
    if not policy.satisfied_by(cosigners):
        raise QuorumError(
            f"checkpoint of {origin} at size {signed.checkpoint.tree_size} is cosigned by "
            f"{', '.join(sorted(cosigners)) or 'no known witness'}, which does not meet the quorum "
            f"'{policy.quorum}'",
            cosigners=sorted(cosigners),
            quorum=policy.quorum,
        )
    return cosigners


def verify_tlog_proof(proof: TlogProof, entry: bytes, policy: Policy) -> frozenset[str]:
    """Verify an offline tlog-proof for ``entry``; return the cosigning witnesses."""
    # 1. Compute the leaf hash (RFC 6962 leaf of the entry bytes).
    leaf = leaf_hash(entry)
    # 2-3. Origin, log signature, cosignatures and quorum.
    cosigners = verify_checkpoint(proof.checkpoint, policy)
    # 4. Inclusion of the leaf under the checkpoint's root.
    cp = proof.checkpoint.checkpoint
    merkle_verify_inclusion(proof.index, cp.tree_size, leaf, proof.inclusion, cp.root_hash)
    return cosigners


Fetch = Callable[[str], bytes]


def directory_fetcher(root: Path) -> Fetch:
    def fetch(rel: str) -> bytes:
        path = root / rel
        try:
            with path.open("rb") as f:
                data = f.read(MAX_BUNDLE_BYTES + 1)
        except FileNotFoundError as e:
            raise TransportError(f"{path} does not exist", path=str(path)) from e
        except OSError as e:
            raise TransportError(f"cannot read {path}: {e}") from e
        if len(data) > MAX_BUNDLE_BYTES:
            raise TransportError(f"{path} is larger than any log resource may be")
        return data

    return fetch


RESPONSE_DEADLINE = 60.0  # seconds a checkpoint or tile may take to arrive, first byte to last


def get_bounded(http: httpx.Client, url: str, *, limit: int, deadline: float | None = None) -> bytes:
    """The body of ``GET url``: TransportError unless it answers 200 within ``limit`` bytes (read as it
    arrives, so an endless body is cut off at the limit) and, with ``deadline``, within that many seconds
    from first byte to last (httpx's timeouts bound each read, so a server trickling a byte a second would
    otherwise hold the request for ever)."""
    started = time.monotonic()
    try:
        with http.stream("GET", url) as r:
            if r.status_code != 200:
                raise TransportError(f"GET {url} answered {r.status_code}", url=url, status=r.status_code)
            out = bytearray()
            for chunk in r.iter_bytes():
                out += chunk
                if len(out) > limit:
                    raise TransportError(f"GET {url} returned more than {limit} bytes", url=url)
                if deadline is not None and time.monotonic() - started > deadline:
                    raise TransportError(
                        f"GET {url} took more than {deadline:g} s (it had sent {len(out)} bytes)", url=url
                    )
            return bytes(out)
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        raise TransportError(f"GET {url} failed: {e}", url=url) from e


def http_fetcher(
    prefix: str, client: httpx.Client | None = None, *, deadline: float = RESPONSE_DEADLINE
) -> Fetch:
    """Fetch ``<prefix>/<rel>``: a checkpoint or a tile, each within its size limit and ``deadline`` seconds."""
    http = client or httpx.Client(timeout=30.0, headers={"Accept-Encoding": "gzip, identity"})
    base = prefix.rstrip("/") + "/"

    def fetch(rel: str) -> bytes:
        limit = MAX_CHECKPOINT_BYTES if rel == "checkpoint" else MAX_BUNDLE_BYTES
        return get_bounded(http, base + rel, limit=limit, deadline=deadline)

    return fetch


def check_http_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host that httpx can request.

    Raises:
        UsageError: it is malformed (a port that is not a number, an unclosed IPv6 bracket) or has no host.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as e:
        raise UsageError(f"{url} is not a valid URL: {e}") from e
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"{url} is not an http:// or https:// URL with a host")
    return url


def fetcher_for(source: str) -> Fetch:
    """A fetcher for a log at an http(s) URL (a malformed one is a usage error) or in a directory."""
    if source.startswith(("http://", "https://")):
        return http_fetcher(check_http_url(source))
    return directory_fetcher(Path(source))


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedTree:
    checkpoint: SignedCheckpoint
    cosigners: frozenset[str]
    previous_size: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LogVerification:
    """What a client proved about the log at ``log`` (a URL or directory), under the trust roots ``trust``
    describes: the checks passed, in order, and what they were about.

    Made :meth:`of_tree` (a checkpoint verified online, and an entry's inclusion under it) or :meth:`of_proof`
    (an offline tlog-proof file, ``proof``).
    """

    log: str
    trust: str
    checks: tuple[str, ...]
    tree_size: int
    cosigners: tuple[str, ...]
    origin: str | None = None
    root_hash: bytes | None = None
    previous_size: int | None = None
    index: int | None = None
    proof: str | None = None

    @classmethod
    def of_tree(
        cls, tree: VerifiedTree, *, log: str, trust: str, quorum: str, included: tuple[str, int] | None = None
    ) -> LogVerification:
        """``tree`` verified under a policy of quorum ``quorum``; ``included``: the entry (by name) and the
        index whose inclusion under it was verified."""
        cp = tree.checkpoint.checkpoint
        checks = ["log signature", f"witness quorum ({quorum})"]
        if tree.previous_size is not None:
            checks.append(f"consistency with trusted size {tree.previous_size}")
        if included is not None:
            checks.append(f"inclusion of {included[0]} at index {included[1]}")
        return cls(
            log=log,
            trust=trust,
            checks=tuple(checks),
            tree_size=cp.tree_size,
            cosigners=tuple(sorted(tree.cosigners)),
            origin=cp.origin,
            root_hash=cp.root_hash,
            previous_size=tree.previous_size,
            index=None if included is None else included[1],
        )

    @classmethod
    def of_proof(
        cls, proof: TlogProof, cosigners: frozenset[str], *, log: str, trust: str, path: str
    ) -> LogVerification:
        """The tlog-proof file ``path`` verified (:func:`verify_tlog_proof`), cosigned by ``cosigners``."""
        return cls(
            log=log,
            trust=trust,
            checks=("log signature", "witness quorum", "inclusion"),
            tree_size=proof.tree_size,
            cosigners=tuple(sorted(cosigners)),
            index=proof.index,
            proof=path,
        )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "ok": True,
            "log": self.log,
            "trust": self.trust,
            "checks": list(self.checks),
            "tree_size": self.tree_size,
            "cosigners": list(self.cosigners),
        }
        if self.proof is not None:
            out.update(proof=self.proof, index=self.index)
            return out
        out.update(
            origin=self.origin,
            root_hash=None if self.root_hash is None else base64.b64encode(self.root_hash).decode(),
            previous_size=self.previous_size,
        )
        if self.index is not None:
            out["index"] = self.index
        return out


class LogClient:
    """Follows one log: verifies its checkpoint against a policy the verifier pinned and, with ``state_dir``,
    remembers the last checkpoint it trusted per log (``<state_dir>/<sha256(origin, log keys)>.checkpoint``).

    A log is its origin and its key: two logs that share an origin (every fresh home starts as
    ``overt.example/log``) but not a key are kept apart, so one never reads as a fork of the other.
    """

    def __init__(self, fetch: Fetch, policy: Policy, state_dir: Path | None = None) -> None:
        self.fetch = fetch
        self.policy = policy
        self.state_dir = state_dir

    def _state_path(self, origin: str) -> Path | None:
        if self.state_dir is None:
            return None
        keys = sorted(log.verifier.vkey() for log in self.policy.logs if log.verifier.name == origin)
        identity = "\n".join([origin, *keys]).encode()
        return self.state_dir / (hashlib.sha256(identity).hexdigest() + ".checkpoint")

    def _trusted(self, state: Path, origin: str) -> SignedCheckpoint | None:
        """The last checkpoint trusted for this log; one stored by origin alone (before logs were told apart
        by key) counts only if this policy's key for the origin signed it."""
        if state.exists():
            return SignedCheckpoint.from_bytes(state.read_bytes())
        assert self.state_dir is not None
        legacy = self.state_dir / (hashlib.sha256(origin.encode()).hexdigest() + ".checkpoint")
        if not legacy.exists():
            return None
        old = SignedCheckpoint.from_bytes(legacy.read_bytes())
        try:
            old.verify([log.verifier for log in self.policy.logs if log.verifier.name == origin])
        except VerificationError:
            return None  # another log that had this origin
        return old

    def _tile_fetch(self, rel: str) -> bytes:
        try:
            return self.fetch(rel)
        except TransportError as partial:
            # tlog-tiles §Partial Tiles: a partial tile may be gone once the full tile exists.
            if ".p/" not in rel:
                raise
            try:
                full = self.fetch(rel.split(".p/")[0])
            except TransportError as e:
                raise TransportError(f"{partial}, nor the full tile: {e}", **partial.evidence) from e
            width = int(rel.rsplit("/", 1)[1])
            return full[: width * 32] if not rel.startswith("tile/entries/") else full

    def reader(self, tree_size: int) -> TileHashReader:
        return TileHashReader(tree_size, self._tile_fetch)

    def update(self) -> VerifiedTree:
        """Fetch and verify the checkpoint, and its consistency with the last trusted one (then store it)."""
        try:
            signed = SignedCheckpoint.from_bytes(self.fetch("checkpoint"))
        except FormatError as e:  # what the log serves as its checkpoint is not one: it does not verify
            raise VerificationError(f"the log's checkpoint does not parse: {e}", check="checkpoint") from e
        cosigners = verify_checkpoint(signed, self.policy)
        cp = signed.checkpoint
        state = self._state_path(cp.origin)
        previous: int | None = None
        trusted = self._trusted(state, cp.origin) if state is not None else None
        if trusted is not None:
            old = trusted.checkpoint
            previous = old.tree_size
            if old.tree_size <= cp.tree_size:
                self._verify_consistency(old.tree_size, old.root_hash, cp.tree_size, cp.root_hash)
            else:
                # The log serves an older head than one we trusted: refused either way. Whether it is still a
                # prefix of that one (a rollback) or not (a fork) needs the larger tree's tiles, which a log
                # restored from a backup no longer serves; then the rollback alone is reported.
                try:
                    self._verify_consistency(cp.tree_size, cp.root_hash, old.tree_size, old.root_hash)
                    how = ""
                except TransportError as e:
                    how = f" (whether it is a prefix of the stored tree could not be checked: {e})"
                raise ConsistencyError(
                    f"log {cp.origin} rolled back from size {old.tree_size} to {cp.tree_size}{how}",
                    size1=old.tree_size,
                    size2=cp.tree_size,
                )
        if state is not None:
            atomic_write(state, signed.to_bytes())
        return VerifiedTree(checkpoint=signed, cosigners=cosigners, previous_size=previous)

    def _verify_consistency(self, size1: int, root1: bytes, size2: int, root2: bytes) -> None:
        if size1 == 0 or size1 == size2:
            verify_consistency(size1 or size2, size2, root1 if size1 else root2, root2, [])
            return
        reader = self.reader(size2)
        proof = [hash_range(a, b, reader.node) for a, b in consistency_ranges(size1, size2)]
        verify_consistency(size1, size2, root1, root2, proof)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        reader = self.reader(tree_size)
        return [hash_range(a, b, reader.node) for a, b in inclusion_ranges(index, tree_size)]

    def verify_inclusion(self, entry: bytes, index: int, tree: SignedCheckpoint) -> None:
        cp = tree.checkpoint
        proof = self.inclusion_proof(index, cp.tree_size)
        merkle_verify_inclusion(index, cp.tree_size, leaf_hash(entry), proof, cp.root_hash)

    def iter_entries(self, tree_size: int, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """``(index, entry)`` for ``[start, tree_size)``, one entry bundle in memory at a time."""
        for bundle in range(start // TILE_WIDTH, (tree_size + TILE_WIDTH - 1) // TILE_WIDTH):
            width = tile_width(0, bundle, tree_size)
            got = decode_bundle(self._tile_fetch(entries_path(bundle, width)), None)
            for offset, entry in enumerate(got[:width]):
                index = bundle * TILE_WIDTH + offset
                if index >= start:
                    yield index, entry

    def entries(self, tree_size: int, start: int = 0) -> list[bytes]:
        """Entries ``[start, tree_size)`` read from entry bundles."""
        return [entry for _, entry in self.iter_entries(tree_size, start)]

    def find_entry(self, entry: bytes, tree_size: int) -> int | None:
        """Index of ``entry`` by scanning the entry bundles, or None."""
        for i, e in self.iter_entries(tree_size):
            if e == entry:
                return i
        return None


def submit_entry(base_url: str, entry: bytes, policy: Policy, http: httpx.Client) -> TlogProof:
    """Append ``entry`` through a log server's ``POST /add`` and verify the tlog-proof it answers with."""
    url = base_url.rstrip("/") + "/add"
    try:
        response = http.post(check_http_url(url), content=entry)
    except httpx.HTTPError as e:
        raise TransportError(f"cannot reach the log at {url}: {e}") from e
    if response.status_code != 200:
        answer: object = None
        with contextlib.suppress(ValueError):
            answer = response.json()
        facts = answer if isinstance(answer, dict) else {}
        raise TransportError(
            f"the log at {url} answered {response.status_code}: {response.text[:200]}",
            status=response.status_code,
            reason=facts.get("reason"),
            index=facts.get("index"),
            tree_size=facts.get("tree_size"),
        )
    try:
        proof = TlogProof.from_bytes(str(response.json()["proof"]).encode())
    except (ValueError, KeyError, TypeError) as e:
        raise TransportError(f"the log at {url} answered without a tlog-proof") from e
    verify_tlog_proof(proof, entry, policy)
    return proof
