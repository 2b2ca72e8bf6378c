"""A log operator's view: sequence entries, sign checkpoints, gather witness cosignatures, publish.

Ties the sequencer (:mod:`overt.tlog.sequencer`) to the log key and the log's own tlog-policy. It upholds the
DESIGN invariant that the log never signs a checkpoint inconsistent with one it signed before:

* on open, :meth:`LocalLog.check` compares the database with what the log signed and published
  (:mod:`overt.tlog.guard`) and checks the files written since the last check (:mod:`overt.tlog.fsck`);
* every new checkpoint is checked against the last signed one (the *head*, kept outside the database), with
  a consistency proof built from the tiles, before the key is used, and the head is saved before any witness
  sees the checkpoint;
* every proof handed out is verified against the signed root first.

A checkpoint is written to ``public/log/checkpoint`` only once the policy's quorum cosigned it. Witness
answers are filtered: only a cosignature that verifies under that witness's policy key is kept, one per
witness. The policy is re-read before each publication, so a running server follows ``overt log policy``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from overt.atomic import atomic_write
from overt.errors import (
    ConfigError,
    ConsistencyError,
    Error,
    InclusionError,
    StorageError,
    TransportError,
    UsageError,
)
from overt.tlog import guard
from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
from overt.tlog.fsck import check_tree
from overt.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from overt.tlog.note import Ed25519Verifier, Note, Signature, Signer
from overt.tlog.policy import Policy
from overt.tlog.proof import TlogProof
from overt.tlog.sequencer import TileLog
from overt.tlog.witness import WitnessClient, WitnessConflict


@dataclass(frozen=True, slots=True, kw_only=True)
class LogFiles:
    """Where a log keeps what lives outside its database: the head and the incremental fsck mark."""

    head: Path
    fsck_mark: Path
    intent: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishResult:
    checkpoint: SignedCheckpoint
    cosigners: frozenset[str]
    published: bool
    failures: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        cp = self.checkpoint.checkpoint
        return {
            "tree_size": cp.tree_size,
            "root_hash": base64.b64encode(cp.root_hash).decode(),
            "published": self.published,
            "cosigners": sorted(self.cosigners),
            "witness_failures": self.failures,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AddedEntries:
    """Entries appended (``overt log add``): each one's name and index, and whether a published checkpoint
    covers them. ``publication`` is the checkpoint published after appending to the log itself; ``through``
    the URL of the log server they were appended through instead (it publishes them itself)."""

    names: tuple[str, ...]
    indices: tuple[int, ...]
    published: bool
    publication: PublishResult | None = None
    through: str | None = None

    def __post_init__(self) -> None:
        if len(self.names) != len(self.indices):
            raise ValueError("one index per named entry")
        if (self.publication is None) == (self.through is None):
            raise ValueError("entries are appended either here (publication) or through a server (through)")
        if self.publication is not None and self.publication.published != self.published:
            raise ValueError("published is the publication's")

    def to_dict(self) -> dict[str, object]:
        entries = [{"file": n, "index": i} for n, i in zip(self.names, self.indices, strict=True)]
        if self.publication is not None:
            return {"entries": entries, **self.publication.to_dict()}
        return {"entries": entries, "through": self.through, "published": self.published}


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEndpoint:
    """A log being served (``overt serve``): its public tree (tiles, checkpoint, policy) and the base URL of
    the server, which also takes ``POST /add``."""

    public: Path
    url: str

    def to_dict(self) -> dict[str, object]:
        return {"public": str(self.public), "url": self.url}


class LocalLog:
    """The operator side of one log."""

    def __init__(
        self,
        tiles: TileLog,
        signer: Signer,
        *,
        verifier: Ed25519Verifier,
        files: LogFiles,
        load_policy: Callable[[], Policy],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.tiles = tiles
        self._on_close = on_close
        self.signer = signer
        self.verifier = verifier
        self.files = files
        self.origin = signer.name
        self._load_policy = load_policy
        self.policy = load_policy()
        self.witnesses: list[WitnessClient] = []
        self._set_witnesses()
        self._last: SignedCheckpoint | None = None

    def _set_witnesses(self) -> None:
        """One client per witness of the policy with a URL, keeping the clients (and sizes) of unchanged ones."""
        old = {(w.name, w.url): w for w in self.witnesses}
        new: list[WitnessClient] = []
        for pw in self.policy.witnesses:
            if not pw.url:
                continue
            client = WitnessClient(pw.name, pw.url)
            kept = old.pop((client.name, client.url), None)
            if kept is not None:
                client.http.close()
                client = kept
            new.append(client)
        for gone in old.values():
            gone.http.close()
        self.witnesses = new

    def refresh_policy(self) -> bool:
        """Re-read the policy; True if it changed (witness clients are then rebuilt)."""
        policy = self._load_policy()
        if policy.to_bytes() == self.policy.to_bytes():
            return False
        self.policy = policy
        self._set_witnesses()
        return True

    def check(self) -> None:
        """Refuse to go on if the database is behind or forks from what this log signed or published.

        Then check the tiles and bundles written since the last sound check against the committed root.
        """
        heads = self.heads()
        self._last = self._largest_signed(heads)
        state = self.tiles.state
        guard.check_open(
            state, self.tiles.store, heads, directory=self.tiles.directory, intent=self.files.intent
        )
        start = min(guard.read_mark(self.files.fsck_mark), state.tree_size)
        result = check_tree(self.tiles.read, state.tree_size, state.root_hash, start=start)
        if not result.ok:
            raise StorageError(
                f"the log's files are damaged: {result.listing()}; run 'overt log fsck --full'",
                damaged_files=[d.to_dict() for d in result.damage],
            )
        guard.write_mark(self.files.fsck_mark, state.tree_size)

    def heads(self) -> list[guard.Head]:
        """Every checkpoint this log is known to have signed: the published one and the saved head."""
        return guard.known_heads(self.tiles.directory, self.files.head, self.verifier)

    def close(self) -> None:
        try:
            self.tiles.close()
            for w in self.witnesses:
                w.http.close()
        finally:
            if self._on_close is not None:
                self._on_close()
                self._on_close = None

    @property
    def tree_size(self) -> int:
        return self.tiles.state.tree_size

    def add(self, entries: Sequence[bytes]) -> list[int]:
        """Sequence and integrate ``entries`` durably (nothing is signed).

        An entry the deduplication table says is already in the log is checked against the committed tree's
        leaf at that index (:meth:`TileLog._check_known`): a damaged table must not hand out a wrong index.
        """
        return self.tiles.append(entries)

    def add_and_publish(self, entries: Sequence[bytes], *, names: Sequence[str]) -> AddedEntries:
        """Append ``entries`` (called ``names`` in the result) and publish a checkpoint covering them."""
        indices = self.add(entries)
        result = self.publish()
        return AddedEntries(
            names=tuple(names), indices=tuple(indices), published=result.published, publication=result
        )

    def last_signed(self) -> SignedCheckpoint | None:
        """The head: the largest checkpoint this log signed (the head file, else the database's copy)."""
        if self._last is None:
            self._last = self._largest_signed(self.heads())
        return self._last

    def _largest_signed(self, heads: list[guard.Head]) -> SignedCheckpoint | None:
        head = guard.largest(heads)
        data = self.tiles.store.load_signed_checkpoint()
        stored = None if data is None else SignedCheckpoint.from_bytes(data)
        if head is None or (stored is not None and stored.checkpoint.tree_size > head.tree_size):
            return stored
        return head.checkpoint

    def published(self) -> SignedCheckpoint | None:
        path = self.tiles.directory / "checkpoint"
        return SignedCheckpoint.from_bytes(path.read_bytes()) if path.exists() else None

    def sign(self) -> SignedCheckpoint:
        """Sign the committed tree, after proving it consistent with the last checkpoint this log signed."""
        state = self.tiles.state
        last = self.last_signed()
        if last is not None:
            old = last.checkpoint
            if old.tree_size == state.tree_size and old.root_hash == state.root_hash:
                return last
            if old.tree_size > state.tree_size:
                raise ConsistencyError(
                    f"refusing to sign size {state.tree_size}: this log already signed size {old.tree_size}",
                    size1=old.tree_size,
                    size2=state.tree_size,
                )
            if old.tree_size:
                proof = self.tiles.consistency_proof(old.tree_size, state.tree_size)
                verify_consistency(old.tree_size, state.tree_size, old.root_hash, state.root_hash, proof)
        cp = Checkpoint(origin=self.origin, tree_size=state.tree_size, root_hash=state.root_hash)
        signed = SignedCheckpoint.sign(cp, self.signer)
        # The head file, not the database, is what binds the log after a database loss (tlog/guard.py); it
        # is durable before the checkpoint leaves this method. The database's copy (log_signed) is kept only
        # for homes made before the head file existed, and by recovery.
        try:
            guard.save_head(self.files.head, signed)
        except OSError as e:
            raise StorageError(f"cannot save the log head {self.files.head}: {e.strerror}") from e
        self._last = signed
        return signed

    def cosign(self, signed: SignedCheckpoint) -> PublishResult:
        """Ask every witness of the policy for a cosignature; never raises for an unavailable witness.

        Of each answer only the first line that verifies under that witness's policy key is kept
        (tlog-witness §Response: a log must not copy lines it cannot verify into its checkpoint).
        """
        failures: dict[str, str] = {}
        verifiers = self.policy.witness_verifiers()
        kept: dict[str, Signature] = {}
        for client in self.witnesses:
            v = verifiers.get(client.name)
            if v is None:
                continue
            try:
                lines = self._ask(client, signed)
            except Error as e:
                failures[client.name] = str(e)
                continue
            text = signed.note.text.encode()
            good = next(
                (
                    s
                    for s in lines
                    if (s.name, s.key_id) == (v.name, v.key_id) and v.verify(text, s.signature)
                ),
                None,
            )
            if good is None:
                failures[client.name] = "answered no valid cosignature by its policy key"
                continue
            kept[client.name] = good
        log_lines = tuple(s for s in signed.note.signatures if s.name == self.origin)
        note = Note(text=signed.note.text, signatures=log_lines + tuple(kept.values()))
        cosigned = SignedCheckpoint(checkpoint=signed.checkpoint, note=note)
        cosigners = frozenset(kept)
        return PublishResult(
            checkpoint=cosigned,
            cosigners=cosigners,
            published=self.policy.satisfied_by(cosigners),
            failures=failures,
        )

    def _ask(self, client: WitnessClient, signed: SignedCheckpoint) -> list[Signature]:
        size = signed.checkpoint.tree_size
        body = signed.to_bytes()
        old = client.known_size if client.known_size is not None else self._guess_old_size()
        old = min(old, size)
        try:
            sigs = client.add_checkpoint(old, self.tiles.consistency_proof(old, size), body)
        except WitnessConflict as c:
            if c.size > size:
                raise TransportError(f"witness {client.name} is ahead of this log, at size {c.size}") from c
            sigs = client.add_checkpoint(c.size, self.tiles.consistency_proof(c.size, size), body)
        client.known_size = size
        return sigs

    def _guess_old_size(self) -> int:
        pub = self.published()
        return pub.checkpoint.tree_size if pub is not None else 0

    def publish(self) -> PublishResult:
        """Sign, gather cosignatures and, if the quorum holds, publish the checkpoint.

        The policy is re-read first, so a change made with ``overt log policy`` applies to the next batch.
        """
        self.refresh_policy()
        result = self.cosign(self.sign())
        if result.published:
            try:
                atomic_write(self.tiles.directory / "checkpoint", result.checkpoint.to_bytes())
            except OSError as e:
                raise StorageError(f"cannot publish the checkpoint in {self.tiles.directory}: {e}") from e
        return result

    def proof(self, index: int, checkpoint: SignedCheckpoint, *, entry: bytes | None = None) -> TlogProof:
        """An offline tlog-proof for entry ``index`` under ``checkpoint``, verified before it is returned.

        ``entry`` is the entry the caller expects at ``index`` (the server passes what its client sent);
        without it the entry is read from its bundle. A proof that does not lead to the signed root means the
        log's files are damaged: it raises :class:`StorageError` instead of handing the proof out.
        """
        cp = checkpoint.checkpoint
        size = cp.tree_size
        try:
            data = self.tiles.entry(index) if entry is None else entry
            inclusion = tuple(self.tiles.inclusion_proof(index, size))
            verify_inclusion(index, size, leaf_hash(data), inclusion, cp.root_hash)
        except (InclusionError, StorageError, ValueError) as e:
            raise StorageError(
                f"the proof for entry {index} does not verify against the signed root of size {size} ({e}); "
                "the log's files are damaged: run 'overt log fsck --full'",
                index=index,
                tree_size=size,
            ) from e
        except Error as e:
            raise StorageError(f"cannot build the proof for entry {index}: {e}; run 'overt log fsck'") from e
        return TlogProof(index=index, inclusion=inclusion, checkpoint=checkpoint)

    def published_proof(self, index: int) -> TlogProof:
        """:meth:`proof` of entry ``index`` under the published checkpoint, the one clients can verify."""
        published = self.published()
        if published is None:
            raise ConfigError("the log has no published checkpoint yet")
        size = published.checkpoint.tree_size
        if index >= size:
            raise UsageError(f"entry {index} is not in the published tree of size {size}")
        return self.proof(index, published)
