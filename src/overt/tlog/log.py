"""A log operator's view: sequence entries, sign checkpoints, gather witness cosignatures, publish.

Ties the sequencer (:mod:`overt.tlog.sequencer`) to the log key and the log's own tlog-policy. It upholds the
DESIGN invariant that the log never signs a checkpoint inconsistent with one it signed before: every new
checkpoint is checked against the last signed one, with a consistency proof built from the tiles, before the
key is used. A checkpoint is written to ``public/log/checkpoint`` only once the policy's quorum cosigned it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from overt.atomic import atomic_write
from overt.errors import ConsistencyError, Error, TransportError
from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
from overt.tlog.merkle import verify_consistency
from overt.tlog.note import Signer, verified_by
from overt.tlog.policy import Policy
from overt.tlog.proof import TlogProof
from overt.tlog.sequencer import TileLog
from overt.tlog.witness import WitnessClient, WitnessConflict


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishResult:
    checkpoint: SignedCheckpoint
    cosigners: frozenset[str]
    published: bool
    failures: dict[str, str] = field(default_factory=dict)


class LocalLog:
    """The operator side of one log."""

    def __init__(
        self,
        tiles: TileLog,
        signer: Signer,
        policy: Policy,
        witnesses: Sequence[WitnessClient] = (),
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.tiles = tiles
        self._on_close = on_close
        self.signer = signer
        self.origin = signer.name
        self.policy = policy
        self.witnesses = list(witnesses)

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
        """Sequence and integrate ``entries`` durably (nothing is signed)."""
        return self.tiles.append(entries)

    def last_signed(self) -> SignedCheckpoint | None:
        data = self.tiles.store.load_signed_checkpoint()
        return None if data is None else SignedCheckpoint.from_bytes(data)

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
        self.tiles.store.save_signed_checkpoint(signed.to_bytes())
        return signed

    def cosign(self, signed: SignedCheckpoint) -> PublishResult:
        """Ask every witness of the policy for a cosignature; never raises for an unavailable witness."""
        note = signed.note
        failures: dict[str, str] = {}
        verifiers = self.policy.witness_verifiers()
        size = signed.checkpoint.tree_size
        body = signed.to_bytes()
        for client in self.witnesses:
            old = client.known_size if client.known_size is not None else self._guess_old_size()
            try:
                try:
                    sigs = client.add_checkpoint(old, self.tiles.consistency_proof(old, size), body)
                except WitnessConflict as c:
                    if c.size > size:
                        raise TransportError(
                            f"witness {client.name} is ahead of this log, at size {c.size}"
                        ) from c
                    sigs = client.add_checkpoint(c.size, self.tiles.consistency_proof(c.size, size), body)
                client.known_size = size
            except Error as e:
                failures[client.name] = str(e)
                continue
            candidate = note.with_signatures(*sigs)
            v = verifiers.get(client.name)
            if v is None or not verified_by(candidate, [v]):
                failures[client.name] = "answered no valid cosignature by its policy key"
                continue
            note = candidate
        cosigned = SignedCheckpoint(checkpoint=signed.checkpoint, note=note)
        ok = verified_by(note, list(verifiers.values()))
        names = {(w.verifier.name, w.verifier.key_id): w.name for w in self.policy.witnesses}
        cosigners = frozenset(names[(v.name, v.key_id)] for v in ok)
        return PublishResult(
            checkpoint=cosigned,
            cosigners=cosigners,
            published=self.policy.satisfied_by(cosigners),
            failures=failures,
        )

    def _guess_old_size(self) -> int:
        pub = self.published()
        return pub.checkpoint.tree_size if pub is not None else 0

    def publish(self) -> PublishResult:
        """Sign, gather cosignatures and, if the quorum holds, publish the checkpoint."""
        result = self.cosign(self.sign())
        if result.published:
            atomic_write(self.tiles.directory / "checkpoint", result.checkpoint.to_bytes())
        return result

    def proof(self, index: int, checkpoint: SignedCheckpoint) -> TlogProof:
        """An offline tlog-proof for entry ``index`` under ``checkpoint``."""
        size = checkpoint.checkpoint.tree_size
        return TlogProof(
            index=index, inclusion=tuple(self.tiles.inclusion_proof(index, size)), checkpoint=checkpoint
        )
