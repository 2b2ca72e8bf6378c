"""RFC 6962 / RFC 9162 Merkle tree math: hashing, proof shapes, proof verification, compact ranges.

This module is pure: it never touches storage. Proof *computation* is split in two, as in
transparency-dev/merkle: :func:`inclusion_ranges` and :func:`consistency_ranges` say which subtree hashes a proof
needs, and :func:`hash_range` turns a range into a hash using a caller-supplied ``node(level, index)`` lookup of
perfect subtree hashes (served from tiles by :mod:`overt.tlog.tiles`).

It deliberately does not know about tiles, checkpoints or signatures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import NewType

from overt.errors import ConsistencyError, FormatError, InclusionError

LeafIndex = NewType("LeafIndex", int)
TreeSize = NewType("TreeSize", int)

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeLookup = Callable[[int, int], bytes]
"""``node(level, index)``: hash of the perfect subtree covering leaves ``[index << level, (index + 1) << level)``."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 §2.1: MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose an RFC 6962 range ``[start, end)`` into perfect subtrees ``(level, index)``, left to right.

    The range must be one the RFC recursion produces: ``start`` is a multiple of a power of two at least as
    large as ``end - start`` (every range from :func:`inclusion_ranges` and :func:`consistency_ranges` is).
    """
    if not 0 <= start < end:
        raise ValueError(f"empty or negative range [{start}, {end})")
    out: list[tuple[int, int]] = []
    size = end - start
    pos = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            if pos % (1 << level):
                raise ValueError(f"range [{start}, {end}) is not an RFC 6962 subtree range")
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def fold_peaks(peaks: Sequence[bytes]) -> bytes:
    """Root of a range from its perfect subtrees, left to right: node(p0, node(p1, ... p_last))."""
    if not peaks:
        return EMPTY_ROOT
    acc = peaks[-1]
    for p in reversed(peaks[:-1]):
        acc = node_hash(p, acc)
    return acc


def hash_range(start: int, end: int, node: NodeLookup) -> bytes:
    """MTH(D[start:end]) for an RFC 6962 range, from perfect subtree hashes."""
    return fold_peaks([node(level, index) for level, index in perfect_subtrees(start, end)])


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Ranges whose hashes form PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Ranges whose hashes form PROOF(size1, D[0:size2]) (RFC 9162 §2.1.4.1), in proof order."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise FormatError(f"{what} is {len(value)} bytes, expected a {HASH_SIZE}-byte SHA-256 hash")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Compute the root that ``proof`` leads to from ``leaf`` (RFC 9162 §2.1.3.2, steps 1-3)."""
    if not 0 <= index < size:
        raise InclusionError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    for p in proof:
        _check_hash(p, "inclusion proof element")
    # 2. Set fn to leaf_index and sn to tree_size - 1. Set r to hash.
    fn, sn, r = index, size - 1, leaf
    # 3. For each value p in the inclusion_path array:
    for p in proof:
        if sn == 0:
            raise InclusionError(f"inclusion proof for leaf {index} in tree {size} has too many elements")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 4. Compare sn to 0.
    if sn != 0:
        raise InclusionError(f"inclusion proof for leaf {index} in tree {size} has too few elements")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`InclusionError` unless ``proof`` binds ``leaf`` at ``index`` to ``root``."""
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:
        raise InclusionError(
            f"inclusion proof for leaf {index} leads to a root that is not the tree head of size {size}",
            computed_root=computed.hex(),
            expected_root=root.hex(),
        )


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Raise :class:`ConsistencyError` unless ``proof`` shows tree (size1, root1) is a prefix of (size2, root2).

    Follows RFC 9162 §2.1.4.2. A proof from the empty tree is meaningless and is rejected, as
    transparency-dev/merkle does; equal sizes need an empty proof and equal roots.
    """
    evidence = {"size1": size1, "size2": size2, "root1": root1.hex(), "root2": root2.hex()}
    if size2 < size1:
        raise ConsistencyError(f"tree shrank from size {size1} to {size2}", **evidence)
    if size1 == 0:
        raise ConsistencyError("a consistency proof from the empty tree is meaningless", **evidence)
    if size1 == size2:
        if proof:
            raise ConsistencyError("a consistency proof between equal sizes must be empty", **evidence)
        if root1 != root2:
            raise ConsistencyError(f"two different roots for tree size {size1}", **evidence)
        return
    _check_hash(root1, "first root")
    _check_hash(root2, "second root")
    for p in proof:
        _check_hash(p, "consistency proof element")
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not proof:
        raise ConsistencyError("empty consistency proof between different sizes", **evidence)
    path = list(proof)
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = size1 - 1, size2 - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyError("consistency proof has too many elements", **evidence)
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7. Verify fr == first_hash, sr == second_hash and sn == 0.
    if sn != 0:
        raise ConsistencyError("consistency proof has too few elements", **evidence)
    if fr != root1:
        raise ConsistencyError(f"consistency proof does not lead to the root of size {size1}", **evidence)
    if sr != root2:
        raise ConsistencyError(f"consistency proof does not lead to the root of size {size2}", **evidence)


class CompactRange:
    """The right edge of a growing tree: one perfect-subtree hash per set bit of the size.

    Appending never re-reads the tree. ``on_node(level, index, hash)`` is called for every perfect subtree
    completed by an append (leaves included, level 0), which is how tiles are produced incrementally.
    Memory is O(log size).
    """

    __slots__ = ("_on_node", "peaks", "size")

    def __init__(
        self,
        size: int = 0,
        peaks: Sequence[bytes] = (),
        on_node: Callable[[int, int, bytes], None] | None = None,
    ) -> None:
        if len(peaks) != size.bit_count():
            raise ValueError(f"a compact range of size {size} has {size.bit_count()} peaks, got {len(peaks)}")
        self.size = size
        self.peaks = list(peaks)
        self._on_node = on_node

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        index = self.size
        on_node = self._on_node
        if on_node is not None:
            on_node(0, index, leaf)
        acc = leaf
        level = 0
        peaks = self.peaks
        # Merge while the new subtree completes a perfect subtree with its left neighbour.
        while index >> level & 1:
            acc = node_hash(peaks.pop(), acc)
            level += 1
            if on_node is not None:
                on_node(level, index >> level, acc)
        peaks.append(acc)
        self.size = index + 1

    def root(self) -> bytes:
        """MTH of the whole range."""
        return fold_peaks(self.peaks)

    def peak_positions(self) -> list[tuple[int, int]]:
        """``(level, index)`` of each peak, left to right."""
        return perfect_subtrees(0, self.size) if self.size else []
