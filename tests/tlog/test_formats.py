"""Round trips both ways and fuzzed parsing for checkpoints, tlog-proofs, policies and witness requests;
quorum evaluation of tlog-policy."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.errors import FormatError
from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.note import Ed25519Signer
from overt.tlog.policy import Group, Policy, PolicyLog, PolicyWitness
from overt.tlog.proof import TlogProof
from overt.tlog.witness import AddCheckpointRequest

# Test-only keys.
LOG = Ed25519Signer.create("fmt.overt.example/log", b"\x07" * 32)
W = [CosignatureSigner.create(f"w{i}.example", bytes([i + 10]) * 32, now=lambda: 1) for i in range(4)]

hashes = st.binary(min_size=32, max_size=32)
origins = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="+"), min_size=1, max_size=30
)
ext = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20)
checkpoints = st.builds(
    Checkpoint,
    origin=origins,
    tree_size=st.integers(0, 2**63),
    root_hash=hashes,
    extensions=st.lists(ext, max_size=2).map(tuple),
)


@given(checkpoints)
def test_checkpoint_round_trip(cp: Checkpoint) -> None:
    assert Checkpoint.from_text(cp.to_text()) == cp
    signed = SignedCheckpoint.sign(cp, LOG)
    again = SignedCheckpoint.from_bytes(signed.to_bytes())
    assert again == signed
    assert again.to_bytes() == signed.to_bytes()


@given(checkpoints, st.integers(0, 2**40), st.lists(hashes, max_size=63), st.none() | st.binary(max_size=40))
def test_tlog_proof_round_trip(cp: Checkpoint, index: int, path: list[bytes], extra: bytes | None) -> None:
    p = TlogProof(index=index, inclusion=tuple(path), checkpoint=SignedCheckpoint.sign(cp, LOG), extra=extra)
    assert TlogProof.from_bytes(p.to_bytes()) == p
    assert TlogProof.from_bytes(p.to_bytes()).to_bytes() == p.to_bytes()


@given(st.integers(0, 2**40), st.lists(hashes, max_size=63), st.binary(max_size=100))
def test_add_checkpoint_request_round_trip(old: int, proof: list[bytes], body: bytes) -> None:
    req = AddCheckpointRequest(old_size=old, proof=tuple(proof), checkpoint=body)
    assert AddCheckpointRequest.from_bytes(req.to_bytes()) == req


@given(st.binary(max_size=400))
def test_fuzz_parsers_raise_only_format_error(data: bytes) -> None:
    for parse in (
        SignedCheckpoint.from_bytes,
        TlogProof.from_bytes,
        Policy.from_bytes,
        AddCheckpointRequest.from_bytes,
    ):
        with contextlib.suppress(FormatError):
            parse(data)


@given(st.text(max_size=200))
def test_fuzz_checkpoint_text(text: str) -> None:
    try:
        cp = Checkpoint.from_text(text)
    except FormatError:
        return
    assert Checkpoint.from_text(cp.to_text()) == cp


def policy(quorum_line: str, groups: str = "") -> Policy:
    lines = [f"log {LOG.verifier().vkey()}"]
    lines += [f"witness W{i} {w.verifier().vkey()} http://127.0.0.1:{9000 + i}" for i, w in enumerate(W)]
    return Policy.from_bytes(("\n".join([*lines, groups, quorum_line]) + "\n").encode())


def test_policy_example_two_levels() -> None:
    p = policy("quorum XY", "group X 2 W0 W1 W2\ngroup Y any W3\ngroup XY all X Y")
    assert not p.satisfied_by({"W0", "W1"})
    assert p.satisfied_by({"W0", "W2", "W3"})
    assert not p.satisfied_by({"W0", "W3"})
    assert Policy.from_bytes(p.to_bytes()) == p


def test_policy_none_and_single() -> None:
    assert policy("quorum none").satisfied_by(set())
    single = policy("quorum W2")
    assert single.satisfied_by({"W2"}) and not single.satisfied_by({"W1"})


@pytest.mark.parametrize(
    ("groups", "quorum"),
    [
        ("", "quorum X"),  # undefined
        ("group X 0 W0", "quorum X"),  # threshold below 1
        ("group X 2 W0", "quorum X"),  # threshold above n
        ("group X any W0 W0", "quorum X"),  # member twice
        ("group none any W0", "quorum none"),  # reserved name
        ("group X any Y\ngroup Y any W0", "quorum X"),  # forward reference
        ("", ""),  # no quorum
        ("", "quorum W0\nquorum W1"),  # two quorums
        ("witness W0 " + W[0].verifier().vkey(), "quorum W0"),  # duplicate name and key
    ],
)
def test_policy_rejects(groups: str, quorum: str) -> None:
    with pytest.raises(FormatError):
        policy(quorum, groups)


def test_policy_object_validation() -> None:
    w = PolicyWitness(name="a", verifier=W[0].verifier())
    with pytest.raises(FormatError):
        Policy(logs=(PolicyLog(verifier=LOG.verifier()),), witnesses=(w, w), quorum="a")
    with pytest.raises(FormatError):
        Policy(witnesses=(w,), groups=(Group(name="g", threshold=1, members=("a",)),), quorum="nope")
