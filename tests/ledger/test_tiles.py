"""Tests for glasslog.ledger.tiles: C2SP tlog-tiles paths, the incremental tree, tile readers."""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glasslog.errors import IntegrityError, ProofError
from glasslog.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_proof,
    inclusion_proof,
    root_from,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from glasslog.ledger.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    TreeBuilder,
    node_reader,
    partial_widths,
    tile_path,
)
from tests.ledger.vectors import BIG_SIZE, big_tree


class TileStore:
    """What a store keeps: every full tile ``append`` emitted, plus the latest partial tiles."""

    def __init__(self) -> None:
        self.full: dict[tuple[int, int], bytes] = {}
        self.partial: dict[tuple[int, int], bytes] = {}
        self.reads: list[tuple[int, int, int]] = []

    def add(self, tiles: list[Tile]) -> None:
        for tile in tiles:
            assert tile.width == TILE_WIDTH, "append must only emit full tiles"
            assert (tile.level, tile.index) not in self.full, f"tile emitted twice: {tile.path()}"
            self.full[(tile.level, tile.index)] = tile.hashes

    def snapshot(self, builder: TreeBuilder) -> None:
        self.partial = {(t.level, t.index): t.hashes for t in builder.partial_tiles()}

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        self.reads.append((level, index, width))
        data = self.full.get((level, index)) or self.partial[(level, index)]
        assert len(data) >= width * HASH_SIZE
        return data


def build(size: int, *, seed: int = 0, max_chunk: int = 3000) -> tuple[TreeBuilder, TileStore]:
    """Append the first ``size`` reference leaves in random chunks, storing emitted tiles."""
    rng = random.Random(seed)
    leaves = big_tree().leaves
    builder, store = TreeBuilder(), TileStore()
    while builder.size < size:
        chunk = min(rng.randint(1, max_chunk), size - builder.size)
        store.add(builder.append(leaves[builder.size : builder.size + chunk]))
    store.snapshot(builder)
    return builder, store


@functools.cache
def big_store() -> TileStore:
    """The tiles of the full 70,000-leaf reference tree, built once (read-only use only)."""
    return build(BIG_SIZE, seed=3)[1]


# --- paths and layout --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "index", "width", "path"),
    [
        (0, 1234067, 256, "tile/0/x001/x234/067"),  # the spec's own example
        (0, 0, 256, "tile/0/000"),
        (2, 999, 256, "tile/2/999"),
        (1, 1000, 256, "tile/1/x001/000"),
        (0, 1234067, 9, "tile/0/x001/x234/067.p/9"),
        (63, 5, 1, "tile/63/005.p/1"),
        (0, 1_000_000_000, 255, "tile/0/x001/x000/x000/000.p/255"),
    ],
)
def test_tile_path_follows_tlog_tiles(level: int, index: int, width: int, path: str) -> None:
    """Tile paths use x-prefixed 3-digit groups and a .p/<W> suffix for partial tiles."""
    assert tile_path(level, index, width) == path
    assert Tile(level, index, width, bytes(width * HASH_SIZE)).path() == path


def test_tile_path_defaults_to_a_full_tile() -> None:
    """Without a width, tile_path names the full tile."""
    assert tile_path(0, 273) == "tile/0/273"


@pytest.mark.parametrize(
    ("level", "index", "width", "message"),
    [
        (64, 0, 256, r"tile level must be in \[0, 63\], got 64"),
        (-1, 0, 256, r"tile level must be in \[0, 63\], got -1"),
        (0, -1, 256, "tile index must be non-negative, got -1"),
        (0, 0, 0, r"tile width must be in \[1, 256\], got 0"),
        (0, 0, 257, r"tile width must be in \[1, 256\], got 257"),
    ],
)
def test_tile_path_rejects_coordinates_outside_the_spec(
    level: int, index: int, width: int, message: str
) -> None:
    """Levels outside 0..63, negative indexes and widths outside 1..256 are refused."""
    with pytest.raises(ValueError, match=message):
        tile_path(level, index, width)


def test_tile_checks_its_byte_length() -> None:
    """A Tile must hold exactly width * 32 bytes."""
    with pytest.raises(ValueError, match="needs 96 bytes of hashes, got 64"):
        Tile(0, 0, 3, bytes(64))


def test_partial_widths_match_the_spec_example() -> None:
    """A 70,000-leaf tree has partial tiles 0/273 (112), 1/1 (17) and 2/0 (1), per tlog-tiles."""
    assert partial_widths(70_000) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    assert partial_widths(256) == [(1, 0, 1)]
    assert partial_widths(0) == []
    assert partial_widths(255) == [(0, 0, 255)]


# --- TreeBuilder -----------------------------------------------------------------------------


def test_empty_builder_has_the_empty_root() -> None:
    """A new TreeBuilder has size 0, the empty root and no partial tiles."""
    builder = TreeBuilder()
    assert builder.size == 0
    assert builder.root() == EMPTY_ROOT
    assert builder.partial_tiles() == []
    assert builder.append([]) == []


def test_builder_root_matches_root_of_for_every_size_up_to_1500() -> None:
    """Appending one leaf at a time, the root equals root_of at every size 0..1500."""
    leaves = big_tree().leaves
    builder = TreeBuilder()
    for size in range(1501):
        assert builder.root() == root_of(leaves[:size]), size
        builder.append([leaves[size]])


@settings(deadline=None, max_examples=60)
@given(chunks=st.lists(st.integers(1, 600), min_size=1, max_size=12))
def test_builder_root_is_independent_of_chunking(chunks: list[int]) -> None:
    """However appends are chunked, size, root and partial tiles match the leaves appended."""
    leaves = big_tree().leaves
    builder = TreeBuilder()
    for chunk in chunks:
        builder.append(iter(leaves[builder.size : builder.size + chunk]))
        assert builder.root() == root_of(leaves[: builder.size])
        widths = [(t.level, t.index, t.width) for t in builder.partial_tiles()]
        assert widths == partial_widths(builder.size)
    assert builder.size == sum(chunks)


@pytest.mark.parametrize("seed", [0, 1])
def test_builder_crosses_a_level_1_tile(seed: int) -> None:
    """At 70,000 leaves the root is right and every full tile holds the tree's own nodes."""
    builder, store = build(BIG_SIZE, seed=seed)
    tree = big_tree()
    assert builder.root() == root_of(tree.leaves)
    assert sorted(store.full) == [(0, i) for i in range(273)] + [(1, 0)]
    for (level, index), data in store.full.items():
        nodes = tree.levels[TILE_HEIGHT * level][index * TILE_WIDTH : (index + 1) * TILE_WIDTH]
        assert data == b"".join(nodes), (level, index)
    for tile in builder.partial_tiles():
        first = tile.index * TILE_WIDTH
        nodes = tree.levels[TILE_HEIGHT * tile.level][first : first + tile.width]
        assert tile.hashes == b"".join(nodes), tile.path()


def test_append_returns_completed_tiles_level_0_first() -> None:
    """One append that fills a level-1 tile returns every full tile, sorted by level and index."""
    leaves = big_tree().leaves
    builder = TreeBuilder()
    builder.append(leaves[:65_000])
    completed = builder.append(leaves[65_000:66_000])
    assert [(t.level, t.index) for t in completed] == [
        (0, 253),
        (0, 254),
        (0, 255),
        (0, 256),
        (1, 0),
    ]
    assert all(t.is_full for t in completed)


def test_append_rejects_a_wrong_size_hash_and_adds_nothing() -> None:
    """A leaf that is not a 32-byte hash is refused and none of its batch is appended."""
    builder = TreeBuilder()
    builder.append(big_tree().leaves[:10])
    with pytest.raises(ValueError, match="leaf hash 2 of this append has 5 bytes, expected 32"):
        builder.append([bytes(32), bytes(32), b"event"])
    assert builder.size == 10
    assert builder.root() == root_of(big_tree().leaves[:10])


@settings(deadline=None, max_examples=40)
@given(split=st.integers(0, 2000), more=st.integers(0, 1200))
def test_restore_continues_identically(split: int, more: int) -> None:
    """A builder restored from partial_tiles() emits the same tiles and roots as the original."""
    leaves = big_tree().leaves
    original = TreeBuilder()
    original.append(leaves[:split])
    restored = TreeBuilder.restore(split, original.partial_tiles())
    assert restored.size == split
    assert restored.root() == original.root()
    rest = leaves[split : split + more]
    assert restored.append(rest) == original.append(rest)
    assert restored.root() == original.root() == root_of(leaves[: split + more])
    assert restored.partial_tiles() == original.partial_tiles()


def test_restore_across_levels_continues_identically() -> None:
    """Restoring a 70,000-leaf edge (three partial levels) and appending keeps the same root."""
    leaves = big_tree().leaves
    builder, _ = build(65_530)
    restored = TreeBuilder.restore(65_530, builder.partial_tiles())
    assert restored.append(leaves[65_530:]) == builder.append(leaves[65_530:])
    assert restored.root() == root_of(leaves)


def test_restore_refuses_tiles_that_do_not_fit_the_size() -> None:
    """Partial tiles whose levels, indexes or widths disagree with the size: IntegrityError."""
    builder, _ = build(70_000)
    partial = builder.partial_tiles()
    with pytest.raises(IntegrityError, match=r"expected .*\(0, 273, 113\).* got .*\(0, 273, 112\)"):
        TreeBuilder.restore(70_001, partial)
    with pytest.raises(IntegrityError, match="do not fit a tree of size 70000"):
        TreeBuilder.restore(70_000, partial[1:])
    with pytest.raises(IntegrityError, match="do not fit a tree of size 0"):
        TreeBuilder.restore(0, partial)


# --- node_reader ---------------------------------------------------------------------------

PROOF_SIZES = st.one_of(st.integers(1, 1500), st.sampled_from([65_535, 65_536, 65_537, BIG_SIZE]))


@settings(deadline=None, max_examples=60)
@given(size=PROOF_SIZES, data=st.data())
def test_node_reader_proofs_equal_in_memory_proofs(size: int, data: st.DataObject) -> None:
    """Proofs read through tiles equal proofs from the in-memory tree, and verify."""
    _, store = build(size, seed=size)
    tree = big_tree()
    root = root_of(tree.leaves[:size])
    assert root_from(size, node_reader(size, store.read_tile)) == root

    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, size, node_reader(size, store.read_tile))
    assert proof == inclusion_proof(index, size, tree.reader(size))
    verify_inclusion(index=index, size=size, leaf_hash=tree.leaves[index], proof=proof, root=root)

    size1 = data.draw(st.integers(1, size), label="size1")
    proof = consistency_proof(size1, size, node_reader(size, store.read_tile))
    assert proof == consistency_proof(size1, size, tree.reader(size))
    verify_consistency(
        size1=size1, size2=size, root1=root_of(tree.leaves[:size1]), root2=root, proof=proof
    )


@settings(deadline=None, max_examples=30)
@given(size=st.integers(1, BIG_SIZE), data=st.data())
def test_node_reader_accepts_wider_tiles_of_a_later_tree(size: int, data: st.DataObject) -> None:
    """A reader for an older size works from the full or wider tiles of a larger tree."""
    store = big_store()
    tree = big_tree()
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, size, node_reader(size, store.read_tile))
    assert proof == inclusion_proof(index, size, tree.reader(size))
    assert root_from(size, node_reader(size, store.read_tile)) == root_of(tree.leaves[:size])


def test_node_reader_fetches_each_tile_once_per_proof() -> None:
    """Within one reader, a tile is fetched once however many nodes a proof needs from it."""
    _, store = build(BIG_SIZE)
    reader = node_reader(BIG_SIZE, store.read_tile)
    inclusion_proof(69_999, BIG_SIZE, reader)
    root_from(BIG_SIZE, reader)
    assert len(store.reads) == len(set(store.reads))
    assert sorted(store.reads) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]


def test_node_reader_refuses_nodes_outside_the_tree() -> None:
    """Asking for a node that is not a complete subtree of the size is a ProofError."""
    _, store = build(1000)
    reader = node_reader(1000, store.read_tile)
    with pytest.raises(ProofError, match=r"node \(level 3, index 125\) is not a complete subtree"):
        reader(3, 125)  # would cover leaves 1000..1007
    assert reader(3, 124) == big_tree().levels[3][124]  # leaves 992..999
    with pytest.raises(ProofError, match="not a complete subtree"):
        reader(-1, 0)


def test_node_reader_reports_a_short_tile() -> None:
    """A tile store that returns fewer hashes than needed is an IntegrityError naming the tile."""
    reader = node_reader(300, lambda level, index, width: bytes(32))
    with pytest.raises(
        IntegrityError, match=r"tile/0/000 returned 32 bytes, expected at least 8192"
    ):
        reader(0, 5)
    with pytest.raises(
        IntegrityError, match=r"tile/0/001\.p/44 returned 32 bytes, expected at least 1408"
    ):
        reader(0, 260)
