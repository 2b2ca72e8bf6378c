"""Hypothesis properties against a naive recursive RFC 6962 reference, tree sizes up to 1,000."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import VerificationError
from overt.tlog.merkle import (
    CompactRange,
    consistency_ranges,
    hash_range,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(1000)]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, recursively, straight from the text."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH."""
    n = len(leaves)
    if n <= 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """RFC 6962 §2.1.2 SUBPROOF."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, leaves[:k], b), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def node_lookup(leaves: list[bytes]):  # type: ignore[no-untyped-def]
    return lambda level, index: mth(leaves[index << level : (index + 1) << level])


sizes = st.integers(min_value=1, max_value=1000)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=sizes)
def test_inclusion_matches_reference_and_verifies(data: st.DataObject, n: int) -> None:
    leaves = LEAVES[:n]
    m = data.draw(st.integers(0, n - 1))
    ours = [hash_range(a, b, node_lookup(leaves)) for a, b in inclusion_ranges(m, n)]
    assert ours == path(m, leaves)
    root = mth(leaves)
    verify_inclusion(m, n, leaves[m], ours, root)
    # A proof for another leaf, index or size does not verify.
    other = data.draw(st.integers(0, n - 1))
    if other != m and leaves[other] != leaves[m]:
        with pytest.raises(VerificationError):
            verify_inclusion(other, n, leaves[m], ours, root)
    if ours:
        i = data.draw(st.integers(0, len(ours) - 1))
        bad = list(ours)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(VerificationError):
            verify_inclusion(m, n, leaves[m], bad, root)
        with pytest.raises(VerificationError):
            verify_inclusion(m, n, leaves[m], ours[:-1], root)
    with pytest.raises(VerificationError):
        verify_inclusion(m, n, leaves[m], [*ours, root], root)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=sizes)
def test_consistency_matches_reference_and_verifies(data: st.DataObject, n: int) -> None:
    m = data.draw(st.integers(1, n))
    leaves = LEAVES[:n]
    ours = [hash_range(a, b, node_lookup(leaves)) for a, b in consistency_ranges(m, n)] if m < n else []
    assert ours == (subproof(m, leaves, True) if m < n else [])
    r1, r2 = mth(leaves[:m]), mth(leaves)
    verify_consistency(m, n, r1, r2, ours)
    if m < n:
        with pytest.raises(VerificationError):
            verify_consistency(m, n, r2, r2, ours)
        bad = list(ours)
        i = data.draw(st.integers(0, len(bad) - 1))
        bad[i] = bytes([bad[i][0] ^ 0x80]) + bad[i][1:]
        with pytest.raises(VerificationError):
            verify_consistency(m, n, r1, r2, bad)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 1000))
def test_compact_range_root_and_completed_nodes(n: int) -> None:
    seen: dict[tuple[int, int], bytes] = {}
    cr = CompactRange(on_node=lambda level, index, h: seen.__setitem__((level, index), h))
    for leaf in LEAVES[:n]:
        cr.append(leaf)
    assert cr.root() == mth(LEAVES[:n])
    for (level, index), h in seen.items():
        assert h == mth(LEAVES[index << level : (index + 1) << level])
    # Every perfect subtree of the tree was reported exactly once.
    assert len(seen) == sum(n >> level for level in range(11))
    restored = CompactRange(cr.size, cr.peaks)
    assert restored.root() == cr.root()
