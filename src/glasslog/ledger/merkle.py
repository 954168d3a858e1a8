"""Merkle Tree Hashes and proofs, exactly as RFC 9162 §2.1 describes them (SHA-256).

The log is one append-only tree over the events' leaves. This module computes its
root (MTH), generates inclusion and consistency proofs, and verifies them:

* ``leaf_hash(d) = SHA-256(0x00 || d)`` and ``node_hash(l, r) = SHA-256(0x01 || l || r)``
  (RFC 9162 §2.1.1); the distinct prefixes stop a leaf from passing as a node.
* Generation (§2.1.3.1 ``PATH`` and §2.1.4.1 ``PROOF``/``SUBPROOF``) reads hashes through a
  :data:`NodeReader`, so the same code serves an in-memory list, tlog tiles or a database.
  The recursive split at the largest power of two below ``n`` means every range a proof
  needs is either one complete, aligned subtree or a right-edge range made of a few of
  them; the reader is only ever asked for complete aligned subtrees, which is all a
  tile store (c2sp.org/tlog-tiles) can answer.
* Verification follows the algorithms of §2.1.3.2 and §2.1.4.2 step by step, including
  the final ``sn == 0`` check whose absence lets forged proofs through. Edge cases follow
  transparency-dev/merkle, whose test vectors we pass: a consistency proof from size 0 is
  refused, and equal sizes need an empty proof and byte-equal roots.

Everything here is pure: no I/O, no state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from glasslog.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NodeReader",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

_sha256 = hashlib.sha256

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1)."""

NodeReader = Callable[[int, int], bytes]
"""``read(level, index)``: hash of the complete, aligned subtree of ``2**level`` leaves
covering leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 is the leaf hashes."""

# A range of leaves [start, start + count) whose MTH a proof needs. Ranges produced by
# the RFC 9162 recursion always start at a multiple of the largest power of two <= count.
_Range = tuple[int, int]


def leaf_hash(leaf: bytes) -> bytes:
    """Return the RFC 9162 hash of one leaf: ``SHA-256(0x00 || leaf)``."""
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the MTH of a tree whose leaves are already hashed.

    Hashing level by level, pairing neighbours and lifting an unpaired last node
    unchanged, gives the same root as the RFC's split at the largest power of two,
    with one SHA-256 per interior node and no recursion.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    sha256 = _sha256
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        # zip over one iterator twice yields neighbour pairs and drops an unpaired last node.
        pairs = iter(level)
        level = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)
        ]
        if odd is not None:
            level.append(odd)
    return level[0]


def root_from(size: int, read: NodeReader) -> bytes:
    """Return the MTH of the first ``size`` leaves, reading only complete subtrees.

    A tree of ``size`` leaves is one complete subtree per set bit of ``size``
    (largest first); the root folds them from the right.
    """
    _check_size("size", size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, read)


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """Return the audit path of leaf ``index`` in the tree of ``size`` leaves.

    Hashes are ordered from the leaf's sibling up to the child of the root, as in
    RFC 9162 §2.1.3.1 and as :func:`verify_inclusion` consumes them.
    """
    _check_size("size", size)
    if not 0 <= index < size:
        raise ProofError(
            f"cannot prove inclusion of leaf {index} in a tree of size {size}: "
            f"the index must be in [0, {size})"
        )
    return [_range_hash(start, count, read) for start, count in _inclusion_ranges(index, size)]


def consistency_proof(size1: int, size2: int, read: NodeReader) -> list[bytes]:
    """Return the proof that the tree of ``size1`` leaves is a prefix of the one of ``size2``.

    Hashes are ordered as RFC 9162 §2.1.4.1 ``SUBPROOF`` produces them (lowest level
    first). Equal sizes give an empty proof; size 0 is refused because an empty tree
    is a prefix of everything and its proof would prove nothing.
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 == 0 or size1 > size2:
        raise ProofError(
            f"cannot prove consistency from size {size1} to size {size2}: need 0 < size1 <= size2"
        )
    return [_range_hash(start, count, read) for start, count in _consistency_ranges(size1, size2)]


def verify_inclusion(
    *, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Implements RFC 9162 §2.1.3.2 literally; raises :class:`ProofError` naming what
    was expected and what was found, and returns nothing on success.
    """
    if index < 0 or size < 0 or index >= size:
        raise ProofError(
            f"leaf index {index} is outside a tree of size {size}: the index must be in [0, {size})"
        )
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    _check_proof_hashes("inclusion", proof)
    expected = len(_inclusion_ranges(index, size))
    if len(proof) != expected:
        raise ProofError(
            f"inclusion proof has wrong length: expected {expected} hashes, got {len(proof)} "
            f"(leaf {index}, tree size {size})"
        )

    # RFC 9162 §2.1.3.2, steps 2-5.
    fn = index
    sn = size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root (sn reached 0)")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root (sn is not 0)")
    if r != root:
        raise ProofError(
            f"calculated root does not match: expected {root.hex()}, calculated {r.hex()} "
            f"(leaf {index}, tree size {size})"
        )


def verify_consistency(
    *, size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size1`` leaves with ``root1`` is a prefix of ``size2``/``root2``.

    Implements RFC 9162 §2.1.4.2 literally, with the edge policy of transparency-dev/merkle:
    ``size1 == 0`` is refused, and equal sizes require an empty proof and byte-equal roots.
    Raises :class:`ProofError`; returns nothing on success.
    """
    if size1 < 0 or size2 < 0 or size1 > size2:
        raise ProofError(
            f"consistency sizes are out of order: size1 is {size1}, size2 is {size2}; "
            "need 0 < size1 <= size2"
        )
    if size1 == 0:
        raise ProofError(
            f"consistency from size 0 to size {size2} is refused: an empty tree is a prefix of "
            "every tree, so such a proof proves nothing; verify against a non-empty checkpoint"
        )
    if size1 == size2:
        if proof:
            raise ProofError(
                f"consistency proof has wrong length: expected 0 hashes, got {len(proof)} "
                f"(size1 = size2 = {size1})"
            )
        if root1 != root2:
            raise ProofError(
                f"roots differ for the same tree size {size1}: root1 is {root1.hex()}, "
                f"root2 is {root2.hex()}"
            )
        return
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    _check_proof_hashes("consistency", proof)
    expected = len(_consistency_ranges(size1, size2))
    if len(proof) != expected:
        raise ProofError(
            f"consistency proof has wrong length: expected {expected} hashes, got {len(proof)} "
            f"(size1 {size1}, size2 {size2})"
        )

    # RFC 9162 §2.1.4.2, steps 1-7.
    if not proof:
        raise ProofError("consistency proof is empty, but size1 < size2 needs at least one hash")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn = size1 - 1
    sn = size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root (sn reached 0)")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root (sn is not 0)")
    if fr != root1:
        raise ProofError(
            f"calculated root1 does not match: expected {root1.hex()}, calculated {fr.hex()} "
            f"(size1 {size1})"
        )
    if sr != root2:
        raise ProofError(
            f"calculated root2 does not match: expected {root2.hex()}, calculated {sr.hex()} "
            f"(size2 {size2})"
        )


def _inclusion_ranges(index: int, size: int) -> list[_Range]:
    """Return the leaf ranges whose MTHs form ``PATH(index, D[0:size])``, leaf side first.

    This is the RFC 9162 §2.1.3.1 recursion unrolled: at each split ``k`` the proof
    takes the half that does not hold the leaf. Only the range that reaches the right
    edge of the tree can be incomplete.
    """
    ranges: list[_Range] = []
    start, count, m = 0, size, index
    while count > 1:
        k = 1 << ((count - 1).bit_length() - 1)  # largest power of two < count
        if m < k:
            ranges.append((start + k, count - k))
            count = k
        else:
            ranges.append((start, k))
            start += k
            count -= k
            m -= k
    ranges.reverse()
    return ranges


def _consistency_ranges(size1: int, size2: int) -> list[_Range]:
    """Return the leaf ranges whose MTHs form ``PROOF(size1, D[0:size2])``, lowest first.

    The RFC 9162 §2.1.4.1 ``SUBPROOF`` recursion unrolled; ``whole`` is its flag ``b``
    (still on the path of the old tree's root, which the verifier already knows).
    Requires ``0 < size1 <= size2``.
    """
    ranges: list[_Range] = []
    start, count, m, whole = 0, size2, size1, True
    while m != count:
        k = 1 << ((count - 1).bit_length() - 1)  # largest power of two < count
        if m <= k:
            ranges.append((start + k, count - k))
            count = k
        else:
            ranges.append((start, k))
            start += k
            count -= k
            m -= k
            whole = False
    if not whole:
        ranges.append((start, m))
    ranges.reverse()
    return ranges


def _range_hash(start: int, count: int, read: NodeReader) -> bytes:
    """Return MTH of leaves ``[start, start + count)`` built from complete aligned subtrees.

    ``start`` must be a multiple of the largest power of two <= ``count`` (true of every
    range the RFC recursion produces), so splitting ``count`` into its powers of two,
    largest first, yields aligned complete subtrees; folding them from the right is
    exactly the MTH of the range.
    """
    subtrees: list[bytes] = []
    while count:
        level = count.bit_length() - 1
        subtrees.append(read(level, start >> level))
        width = 1 << level
        start += width
        count -= width
    result = subtrees.pop()
    while subtrees:
        result = node_hash(subtrees.pop(), result)
    return result


def _check_size(name: str, size: int) -> None:
    if size < 0:
        raise ProofError(f"{name} must be a non-negative tree size, got {size}")


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} has wrong size: expected {HASH_SIZE} bytes, got {len(value)}")


def _check_proof_hashes(kind: str, proof: Sequence[bytes]) -> None:
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise ProofError(
                f"{kind} proof hash {position} has wrong size: "
                f"expected {HASH_SIZE} bytes, got {len(value)}"
            )
