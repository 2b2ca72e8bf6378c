"""The transparency log (C2SP tlog-tiles, signed-note, tlog-checkpoint, tlog-cosignature, tlog-witness,
tlog-proof, tlog-policy): Merkle math, notes and checkpoints, tiles, the sequencer and its stores, the
operator's log, the witness, and the verifying client.

``Signer`` and ``Verifier`` are the signed-note protocols that :class:`Ed25519Signer`,
:class:`CosignatureSigner`, :class:`Ed25519Verifier` and :class:`CosignatureVerifier` implement. Two names stay
in their modules: ``stores.LogState`` and ``witness.LogState`` are different things, and ``guard.fsck`` would
be shadowed by the ``fsck`` submodule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.tlog.batcher import Integrator
    from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
    from overt.tlog.client import (
        Fetch,
        LogClient,
        LogVerification,
        VerifiedTree,
        directory_fetcher,
        fetcher_for,
        http_fetcher,
        submit_entry,
        verify_checkpoint,
        verify_tlog_proof,
    )
    from overt.tlog.cosignature import (
        CosignatureSigner,
        CosignatureVerifier,
        parse_cosignature_skey,
        parse_cosignature_vkey,
    )
    from overt.tlog.fsck import Damage, TreeCheck, check_tree
    from overt.tlog.guard import FsckReport, RecoverResult, StaleDatabaseError
    from overt.tlog.log import AddedEntries, LocalLog, LogEndpoint, LogFiles, PublishResult
    from overt.tlog.merkle import (
        EMPTY_ROOT,
        CompactRange,
        leaf_hash,
        node_hash,
        root_from_inclusion_proof,
        verify_consistency,
        verify_inclusion,
    )
    from overt.tlog.note import (
        Ed25519Signer,
        Ed25519Verifier,
        Note,
        Signature,
        Signer,
        Verifier,
        generate_ed25519,
        parse_ed25519_skey,
        parse_ed25519_vkey,
        sign_note,
        verified_by,
        verify_note,
    )
    from overt.tlog.policy import Group, Policy, PolicyLog, PolicyRevision, PolicyWitness
    from overt.tlog.proof import SavedProof, TlogProof
    from overt.tlog.sequencer import TileLog
    from overt.tlog.stores import PostgresStore, SequencerStore, SQLiteStore
    from overt.tlog.tiles import (
        MAX_ENTRY_SIZE,
        TileHashReader,
        decode_bundle,
        decode_tile,
        encode_bundle,
        entries_path,
        tile_path,
    )
    from overt.tlog.trust import (
        PinnedPolicy,
        PolicyChangedError,
        default_state_dir,
        policy_from_vkey,
        trust_on_first_use,
    )
    from overt.tlog.witness import (
        AddCheckpointRequest,
        FollowedLog,
        Witness,
        WitnessClient,
        WitnessConflict,
        WitnessEndpoint,
        WitnessIdentity,
        WitnessRefusal,
        init_witness,
        load_witness,
        trust_log,
    )

__all__ = [
    "EMPTY_ROOT",
    "MAX_ENTRY_SIZE",
    "AddCheckpointRequest",
    "AddedEntries",
    "Checkpoint",
    "CompactRange",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Damage",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Fetch",
    "FollowedLog",
    "FsckReport",
    "Group",
    "Integrator",
    "LocalLog",
    "LogClient",
    "LogEndpoint",
    "LogFiles",
    "LogVerification",
    "Note",
    "PinnedPolicy",
    "Policy",
    "PolicyChangedError",
    "PolicyLog",
    "PolicyRevision",
    "PolicyWitness",
    "PostgresStore",
    "PublishResult",
    "RecoverResult",
    "SQLiteStore",
    "SavedProof",
    "SequencerStore",
    "Signature",
    "SignedCheckpoint",
    "Signer",
    "StaleDatabaseError",
    "TileHashReader",
    "TileLog",
    "TlogProof",
    "TreeCheck",
    "VerifiedTree",
    "Verifier",
    "Witness",
    "WitnessClient",
    "WitnessConflict",
    "WitnessEndpoint",
    "WitnessIdentity",
    "WitnessRefusal",
    "check_tree",
    "decode_bundle",
    "decode_tile",
    "default_state_dir",
    "directory_fetcher",
    "encode_bundle",
    "entries_path",
    "fetcher_for",
    "generate_ed25519",
    "http_fetcher",
    "init_witness",
    "leaf_hash",
    "load_witness",
    "node_hash",
    "parse_cosignature_skey",
    "parse_cosignature_vkey",
    "parse_ed25519_skey",
    "parse_ed25519_vkey",
    "policy_from_vkey",
    "root_from_inclusion_proof",
    "sign_note",
    "submit_entry",
    "tile_path",
    "trust_log",
    "trust_on_first_use",
    "verified_by",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_note",
    "verify_tlog_proof",
]

_EXPORTS = {
    "batcher": ("Integrator",),
    "checkpoint": ("Checkpoint", "SignedCheckpoint"),
    "client": (
        "Fetch",
        "LogClient",
        "LogVerification",
        "VerifiedTree",
        "directory_fetcher",
        "fetcher_for",
        "http_fetcher",
        "submit_entry",
        "verify_checkpoint",
        "verify_tlog_proof",
    ),
    "cosignature": (
        "CosignatureSigner",
        "CosignatureVerifier",
        "parse_cosignature_skey",
        "parse_cosignature_vkey",
    ),
    "fsck": ("Damage", "TreeCheck", "check_tree"),
    "guard": ("FsckReport", "RecoverResult", "StaleDatabaseError"),
    "log": ("AddedEntries", "LocalLog", "LogEndpoint", "LogFiles", "PublishResult"),
    "merkle": (
        "EMPTY_ROOT",
        "CompactRange",
        "leaf_hash",
        "node_hash",
        "root_from_inclusion_proof",
        "verify_consistency",
        "verify_inclusion",
    ),
    "note": (
        "Ed25519Signer",
        "Ed25519Verifier",
        "Note",
        "Signature",
        "Signer",
        "Verifier",
        "generate_ed25519",
        "parse_ed25519_skey",
        "parse_ed25519_vkey",
        "sign_note",
        "verified_by",
        "verify_note",
    ),
    "policy": ("Group", "Policy", "PolicyLog", "PolicyRevision", "PolicyWitness"),
    "proof": ("SavedProof", "TlogProof"),
    "sequencer": ("TileLog",),
    "stores": ("PostgresStore", "SQLiteStore", "SequencerStore"),
    "tiles": (
        "MAX_ENTRY_SIZE",
        "TileHashReader",
        "decode_bundle",
        "decode_tile",
        "encode_bundle",
        "entries_path",
        "tile_path",
    ),
    "trust": (
        "PinnedPolicy",
        "PolicyChangedError",
        "default_state_dir",
        "policy_from_vkey",
        "trust_on_first_use",
    ),
    "witness": (
        "AddCheckpointRequest",
        "FollowedLog",
        "Witness",
        "WitnessClient",
        "WitnessConflict",
        "WitnessEndpoint",
        "WitnessIdentity",
        "WitnessRefusal",
        "init_witness",
        "load_witness",
        "trust_log",
    ),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
