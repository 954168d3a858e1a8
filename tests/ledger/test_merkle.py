"""Tests for glasslog.ledger.merkle: RFC 9162 hashing, proof generation and verification."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from glasslog.errors import ProofError
from glasslog.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger.vectors import (
    MISSING,
    REFERENCE_LEAVES,
    RFC9162_DIR,
    MemoryTree,
    b64,
    b64_list,
    big_tree,
    load_json,
    require,
    rfc9162_params,
)

# MTH of the first n RFC 6962 reference leaves, n = 1..8 (from the RFC 6962 test data
# used by Certificate Transparency implementations).
REFERENCE_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

LARGER_SIZES = [511, 512, 513, 1000, 1024, 4097, 65535, 65536, 65537, 69999]
SIZES = st.one_of(st.integers(1, 300), st.sampled_from(LARGER_SIZES))


@functools.cache
def reference_root(size: int) -> bytes:
    """MTH of the first ``size`` leaves of the big reference tree, via ``root_of``."""
    return root_of(big_tree().leaves[:size])


def flip(value: bytes, bit: int) -> bytes:
    """Return ``value`` with one bit (counted over the whole byte string) inverted."""
    bit %= len(value) * 8
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def inclusion_shape(index: int, size: int) -> list[bool]:
    """The sides (True = sibling on the left) of PATH(index, D[size]), leaf first.

    Written from the RFC 9162 §2.1.3.1 recursion, independently of the verifier's
    bit arithmetic. Two positions with the same shape hash identically, which is why
    a proof's tree size is only bound by the signed checkpoint that carries it.
    """
    sides: list[bool] = []
    count, m = size, index
    while count > 1:
        k = 1 << ((count - 1).bit_length() - 1)
        if m < k:
            sides.append(False)
            count = k
        else:
            sides.append(True)
            m -= k
            count -= k
    return sides[::-1]


def consistency_shape(size1: int, size2: int) -> tuple[bool, list[bool]] | None:
    """The shape of PROOF(size1, D[size2]) per RFC 9162 §2.1.4.1, or None for equal sizes.

    The first element says whether the proof starts from the old root itself (the
    SUBPROOF flag ``b`` never cleared); the list gives each hash's side, lowest first.
    """
    if size1 == size2:
        return None
    sides: list[bool] = []
    count, m, whole = size2, size1, True
    while m != count:
        k = 1 << ((count - 1).bit_length() - 1)
        if m <= k:
            sides.append(False)
            count = k
        else:
            sides.append(True)
            m -= k
            count -= k
            whole = False
    return whole, sides[::-1]


# --- hashing ---------------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    """The root of the empty tree is SHA-256 of the empty string."""
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_of([]) == EMPTY_ROOT
    assert root_from(0, big_tree().reader(0)) == EMPTY_ROOT


def test_leaf_and_node_hashes_use_domain_prefixes() -> None:
    """Leaves hash with a 0x00 prefix and nodes with 0x01, so one cannot pose as the other."""
    assert leaf_hash(b"").hex() == REFERENCE_ROOTS[1]
    left, right = leaf_hash(b""), leaf_hash(b"\x00")
    assert node_hash(left, right).hex() == REFERENCE_ROOTS[2]
    assert leaf_hash(left + right) != node_hash(left, right)


@pytest.mark.parametrize("size", sorted(REFERENCE_ROOTS))
def test_root_of_matches_rfc6962_reference_roots(size: int) -> None:
    """root_of reproduces the published roots of the RFC 6962 reference leaves."""
    hashes = [leaf_hash(leaf) for leaf in REFERENCE_LEAVES[:size]]
    assert root_of(hashes).hex() == REFERENCE_ROOTS[size]


def test_root_of_follows_the_rfc_recursion() -> None:
    """root_of equals MTH computed by the RFC's split at the largest power of two below n."""

    def mth(hashes: list[bytes]) -> bytes:
        if len(hashes) == 1:
            return hashes[0]
        k = 1 << ((len(hashes) - 1).bit_length() - 1)
        return node_hash(mth(hashes[:k]), mth(hashes[k:]))

    leaves = big_tree().leaves
    for size in range(1, 130):
        assert root_of(leaves[:size]) == mth(leaves[:size]), size


def test_root_from_equals_root_of_on_all_sizes() -> None:
    """root_from, reading only complete subtrees, gives root_of's root for every size."""
    tree = big_tree()
    sizes = [*range(1100), *LARGER_SIZES, len(tree.leaves)]
    for size in sizes:
        assert root_from(size, tree.reader(size)) == reference_root(size), size


# --- the independent RFC 9162 vectors----------------------------------------------------


def test_all_rfc9162_vector_files_are_present() -> None:
    """The vector directory holds all 196 inclusion and consistency cases, none dropped."""
    files = sorted(require(RFC9162_DIR).rglob("*.json"))
    assert len(files) == 196
    assert {path.relative_to(RFC9162_DIR).parts[0] for path in files} == {
        "inclusion",
        "consistency",
    }


@pytest.mark.parametrize("path", rfc9162_params("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    """Each transparency-dev inclusion vector is accepted or rejected as it says."""
    vector = load_json(path)
    arguments = {
        "index": vector["leafIdx"],
        "size": vector["treeSize"],
        "leaf_hash": b64(vector["leafHash"]),
        "proof": b64_list(vector["proof"]),
        "root": b64(vector["root"]),
    }
    if vector["wantErr"]:
        with pytest.raises(ProofError, match=r"."):
            verify_inclusion(**arguments)
    else:
        verify_inclusion(**arguments)


@pytest.mark.parametrize("path", rfc9162_params("consistency"))
def test_consistency_vector(path: Path) -> None:
    """Each transparency-dev consistency vector is accepted or rejected as it says."""
    vector = load_json(path)
    arguments = {
        "size1": vector["size1"],
        "size2": vector["size2"],
        "root1": b64(vector["root1"]),
        "root2": b64(vector["root2"]),
        "proof": b64_list(vector["proof"]),
    }
    if vector["wantErr"]:
        with pytest.raises(ProofError, match=r"."):
            verify_consistency(**arguments)
    else:
        verify_consistency(**arguments)


def _happy_paths(kind: str) -> list[object]:
    return [
        param
        for param in rfc9162_params(kind)
        if param.values[0] == MISSING or param.values[0].name == "happy-path.json"
    ]


@pytest.mark.parametrize("path", _happy_paths("inclusion"))
def test_generated_inclusion_proofs_equal_the_vectors(path: Path) -> None:
    """Our inclusion proofs over the reference leaves are byte-identical to the vectors'."""
    vector = load_json(path)
    tree = MemoryTree([leaf_hash(leaf) for leaf in REFERENCE_LEAVES])
    size = vector["treeSize"]
    proof = inclusion_proof(vector["leafIdx"], size, tree.reader(size))
    assert proof == b64_list(vector["proof"])
    assert root_of(tree.leaves[:size]) == b64(vector["root"])


@pytest.mark.parametrize("path", _happy_paths("consistency"))
def test_generated_consistency_proofs_equal_the_vectors(path: Path) -> None:
    """Our consistency proofs over the reference leaves are byte-identical to the vectors'."""
    vector = load_json(path)
    tree = MemoryTree([leaf_hash(leaf) for leaf in REFERENCE_LEAVES])
    size1, size2 = vector["size1"], vector["size2"]
    assert consistency_proof(size1, size2, tree.reader(size2)) == b64_list(vector["proof"])


# --- generation and verification round trips -----------------------------------------


def test_every_proof_in_small_trees_verifies() -> None:
    """Every inclusion and consistency proof of every tree up to 64 leaves verifies."""
    tree = big_tree()
    for size in range(1, 65):
        root = reference_root(size)
        for index in range(size):
            proof = inclusion_proof(index, size, tree.reader(size))
            verify_inclusion(
                index=index, size=size, leaf_hash=tree.leaves[index], proof=proof, root=root
            )
        for size1 in range(1, size + 1):
            proof = consistency_proof(size1, size, tree.reader(size))
            verify_consistency(
                size1=size1, size2=size, root1=reference_root(size1), root2=root, proof=proof
            )


@settings(deadline=None)
@given(size=SIZES, data=st.data())
def test_inclusion_proofs_verify(size: int, data: st.DataObject) -> None:
    """An inclusion proof for any leaf of any tree verifies, reading only complete subtrees."""
    index = data.draw(st.integers(0, size - 1), label="index")
    calls: list[tuple[int, int]] = []
    proof = inclusion_proof(index, size, big_tree().reader(size, calls))
    assert len(calls) <= 2 * size.bit_length()
    verify_inclusion(
        index=index,
        size=size,
        leaf_hash=big_tree().leaves[index],
        proof=proof,
        root=reference_root(size),
    )


@settings(deadline=None)
@given(size2=SIZES, data=st.data())
def test_consistency_proofs_verify(size2: int, data: st.DataObject) -> None:
    """A consistency proof between any two non-empty sizes verifies."""
    size1 = data.draw(st.integers(1, size2), label="size1")
    calls: list[tuple[int, int]] = []
    proof = consistency_proof(size1, size2, big_tree().reader(size2, calls))
    assert len(calls) <= 2 * size2.bit_length()
    verify_consistency(
        size1=size1,
        size2=size2,
        root1=reference_root(size1),
        root2=reference_root(size2),
        proof=proof,
    )


# --- tampering ---------------------------------------------------------------------------

TAMPER = ["proof", "leaf", "root", "truncate", "extend"]


@settings(deadline=None)
@given(size=SIZES, target=st.sampled_from(TAMPER), data=st.data())
def test_tampered_inclusion_proofs_fail(size: int, target: str, data: st.DataObject) -> None:
    """Flipping a bit of a proof hash, the leaf or the root, or cutting or padding it, fails."""
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, size, big_tree().reader(size))
    leaf, root = big_tree().leaves[index], reference_root(size)
    bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1), label="bit")
    if target == "proof":
        assume(proof)
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        proof[position] = flip(proof[position], bit)
        expected = "calculated root does not match"
    elif target == "leaf":
        leaf = flip(leaf, bit)
        expected = "calculated root does not match"
    elif target == "root":
        root = flip(root, bit)
        expected = "calculated root does not match"
    elif target == "truncate":
        assume(proof)
        proof = proof[:-1]
        expected = "inclusion proof has wrong length"
    else:
        proof = [*proof, data.draw(st.binary(min_size=32, max_size=32), label="extra")]
        expected = "inclusion proof has wrong length"
    with pytest.raises(ProofError, match=expected):
        verify_inclusion(index=index, size=size, leaf_hash=leaf, proof=proof, root=root)


@settings(deadline=None)
@given(size=SIZES, data=st.data())
def test_inclusion_proof_for_another_position_fails(size: int, data: st.DataObject) -> None:
    """A proof checked with a wrong index or size fails unless both positions hash identically.

    RFC 9162 proofs bind the tree size only through the checkpoint: leaf 1 of a 2-leaf
    tree and leaf 2 of a 3-leaf tree take the same path. The verifier must accept
    exactly those aliases and reject everything else.
    """
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, size, big_tree().reader(size))
    other_index = data.draw(st.integers(-1, size + 2), label="other_index")
    other_size = data.draw(st.sampled_from([size, size - 1, size + 1, size * 2, size // 2]))
    assume((other_index, other_size) != (index, size))
    check = functools.partial(
        verify_inclusion,
        index=other_index,
        size=other_size,
        leaf_hash=big_tree().leaves[index],
        proof=proof,
        root=reference_root(size),
    )
    if 0 <= other_index < other_size and inclusion_shape(other_index, other_size) == (
        inclusion_shape(index, size)
    ):
        check()
    else:
        with pytest.raises(ProofError):
            check()


@settings(deadline=None)
@given(size2=SIZES, target=st.sampled_from(TAMPER), data=st.data())
def test_tampered_consistency_proofs_fail(size2: int, target: str, data: st.DataObject) -> None:
    """Flipping a bit of a proof hash or of either root, or cutting or padding the proof, fails."""
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = consistency_proof(size1, size2, big_tree().reader(size2))
    root1, root2 = reference_root(size1), reference_root(size2)
    bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1), label="bit")
    if target == "proof":
        assume(proof)
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        proof[position] = flip(proof[position], bit)
    elif target == "leaf":  # the old root plays the leaf's part here
        root1 = flip(root1, bit)
    elif target == "root":
        root2 = flip(root2, bit)
    elif target == "truncate":
        assume(proof)
        proof = proof[:-1]
    else:
        proof = [*proof, data.draw(st.binary(min_size=32, max_size=32), label="extra")]
    with pytest.raises(ProofError, match=r"does not match|wrong length|roots differ"):
        verify_consistency(size1=size1, size2=size2, root1=root1, root2=root2, proof=proof)


@settings(deadline=None)
@given(size2=SIZES, data=st.data())
def test_consistency_proof_for_other_sizes_fails(size2: int, data: st.DataObject) -> None:
    """A consistency proof checked with wrong sizes fails unless both pairs hash identically."""
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = consistency_proof(size1, size2, big_tree().reader(size2))
    other1 = data.draw(st.integers(0, size2 + 2), label="other_size1")
    other2 = data.draw(st.integers(0, size2 + 2), label="other_size2")
    assume((other1, other2) != (size1, size2))
    check = functools.partial(
        verify_consistency,
        size1=other1,
        size2=other2,
        root1=reference_root(size1),
        root2=reference_root(size2),
        proof=proof,
    )
    same_shape = 0 < other1 <= other2 and consistency_shape(other1, other2) == (
        consistency_shape(size1, size2)
    )
    if same_shape:
        check()
    else:
        with pytest.raises(ProofError):
            check()


# --- error messages and edges ----------------------------------------------------------


def _proof_for_leaf_0_of_8() -> tuple[MemoryTree, list[bytes]]:
    tree = MemoryTree([leaf_hash(leaf) for leaf in REFERENCE_LEAVES])
    return tree, inclusion_proof(0, 8, tree.reader(8))


def test_wrong_length_message_says_expected_and_found() -> None:
    """A padded proof is refused with the expected and the actual number of hashes."""
    tree, proof = _proof_for_leaf_0_of_8()
    with pytest.raises(ProofError, match="wrong length: expected 3 hashes, got 4"):
        verify_inclusion(
            index=0,
            size=8,
            leaf_hash=tree.leaves[0],
            proof=[*proof, proof[0]],
            root=root_of(tree.leaves),
        )


def test_root_mismatch_message_shows_both_roots() -> None:
    """A proof against the wrong root is refused showing expected and calculated roots."""
    tree, proof = _proof_for_leaf_0_of_8()
    wrong = bytes(32)
    message = f"expected {wrong.hex()}, calculated {REFERENCE_ROOTS[8]}"
    with pytest.raises(ProofError, match=message):
        verify_inclusion(index=0, size=8, leaf_hash=tree.leaves[0], proof=proof, root=wrong)


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("leaf_hash", "leaf hash has wrong size: expected 32 bytes, got 31"),
        ("root", "root has wrong size: expected 32 bytes, got 31"),
        ("proof", "inclusion proof hash 1 has wrong size: expected 32 bytes, got 31"),
    ],
)
def test_hashes_of_the_wrong_size_are_refused(field: str, message: str) -> None:
    """A leaf hash, root or proof hash that is not 32 bytes is refused by name."""
    tree, proof = _proof_for_leaf_0_of_8()
    leaf, root = tree.leaves[0], root_of(tree.leaves)
    if field == "proof":
        proof = [proof[0], proof[1][:31], proof[2]]
    elif field == "leaf_hash":
        leaf = bytes(31)
    else:
        root = bytes(31)
    with pytest.raises(ProofError, match=message):
        verify_inclusion(index=0, size=8, leaf_hash=leaf, proof=proof, root=root)


@pytest.mark.parametrize(("index", "size"), [(8, 8), (-1, 8), (0, 0)])
def test_inclusion_of_a_leaf_outside_the_tree_is_refused(index: int, size: int) -> None:
    """Neither generation nor verification accepts an index outside [0, size)."""
    tree = big_tree()
    with pytest.raises(ProofError, match=r"must be in \[0, "):
        inclusion_proof(index, size, tree.reader(size))
    with pytest.raises(ProofError, match="outside a tree of size"):
        verify_inclusion(index=index, size=size, leaf_hash=bytes(32), proof=[], root=bytes(32))


@pytest.mark.parametrize(("size1", "size2"), [(0, 5), (6, 5), (-1, 3)])
def test_consistency_proofs_need_ordered_non_empty_sizes(size1: int, size2: int) -> None:
    """Consistency is only generated for 0 < size1 <= size2."""
    with pytest.raises(ProofError, match=r"size1|size"):
        consistency_proof(size1, size2, big_tree().reader(max(size2, 0)))


def test_consistency_from_size_zero_is_refused_even_with_empty_proof() -> None:
    """Verifying consistency from the empty tree is refused, following the reference library."""
    with pytest.raises(ProofError, match="from size 0 to size 4 is refused"):
        verify_consistency(size1=0, size2=4, root1=EMPTY_ROOT, root2=bytes(32), proof=[])


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    """Equal sizes verify only with no proof hashes and byte-equal roots."""
    root = reference_root(5)
    verify_consistency(size1=5, size2=5, root1=root, root2=root, proof=[])
    with pytest.raises(ProofError, match="expected 0 hashes, got 1"):
        verify_consistency(size1=5, size2=5, root1=root, root2=root, proof=[root])
    with pytest.raises(ProofError, match="roots differ for the same tree size 5"):
        verify_consistency(size1=5, size2=5, root1=root, root2=flip(root, 3), proof=[])


def test_consistency_root_mismatch_names_the_root() -> None:
    """A consistency proof against a wrong new root says root2 does not match."""
    proof = consistency_proof(3, 7, big_tree().reader(7))
    with pytest.raises(ProofError, match="calculated root2 does not match"):
        verify_consistency(
            size1=3, size2=7, root1=reference_root(3), root2=reference_root(6), proof=proof
        )


def test_a_proof_binds_the_tree_size_only_through_its_root() -> None:
    """Leaf 1 of a 2-leaf tree and leaf 2 of a 3-leaf tree share a path, so one proof fits both.

    This is inherent to RFC 9162: the signed checkpoint, not the proof, fixes the size.
    """
    tree = big_tree()
    proof = inclusion_proof(1, 2, tree.reader(2))
    root = reference_root(2)
    verify_inclusion(index=1, size=2, leaf_hash=tree.leaves[1], proof=proof, root=root)
    verify_inclusion(index=2, size=3, leaf_hash=tree.leaves[1], proof=proof, root=root)
    with pytest.raises(ProofError, match="wrong length: expected 2 hashes, got 1"):
        verify_inclusion(index=1, size=3, leaf_hash=tree.leaves[1], proof=proof, root=root)
