"""The tree's hashes laid out as C2SP tlog-tiles (https://c2sp.org/tlog-tiles).

A tile is a run of up to 256 consecutive hashes from one level of the RFC 9162 tree:
tile level ``L`` holds the roots of the complete subtrees of ``256**L`` leaves (tree level
``8 * L``), and each entry of a level-``L + 1`` tile is the root of one full level-``L``
tile. Full tiles never change again; the right-most tile of each level is *partial*
(1..255 entries) and grows until it is full. Storing the tree this way lets any
proof be computed from O(log n) tile reads, and lets any tlog-tiles client read the log.

:class:`TreeBuilder` integrates new leaves on the ingest path, keeping only the partial
right edge in memory and handing back each tile as it fills. :func:`node_reader` turns
stored tiles into the :data:`~glasslog.ledger.merkle.NodeReader` the proof generators of
:mod:`glasslog.ledger.merkle` use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from glasslog.errors import IntegrityError, ProofError
from glasslog.ledger.merkle import HASH_SIZE, NodeReader, root_from, root_of

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Tile",
    "TreeBuilder",
    "node_reader",
    "partial_widths",
    "tile_path",
]

TILE_HEIGHT = 8
"""Tree levels spanned by one tile; fixed by tlog-tiles."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256, i.e. 8,192 bytes)."""

_MAX_TILE_LEVEL = 63  # tlog-tiles: <L> is between 0 and 63

_READER_CACHE_TILES = 32
"""Tiles one :func:`node_reader` remembers (an LRU). A proof touches at most two tiles
per tile level, so 32 covers any proof, and a root plus a proof over the same size."""


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile: ``width`` consecutive hashes of tile level ``level``, tile number ``index``.

    ``hashes`` is the concatenation of the ``width`` 32-byte hashes, exactly the bytes
    tlog-tiles serves. ``width`` is 256 for a full tile and 1..255 for a partial one.
    """

    level: int
    index: int
    width: int
    hashes: bytes

    def __post_init__(self) -> None:
        _check_tile_coordinates(self.level, self.index, self.width)
        if len(self.hashes) != self.width * HASH_SIZE:
            raise ValueError(
                f"tile {self.level}/{self.index} of width {self.width} needs "
                f"{self.width * HASH_SIZE} bytes of hashes, got {len(self.hashes)}"
            )

    @property
    def is_full(self) -> bool:
        """Whether the tile has all 256 hashes (and so will never change again)."""
        return self.width == TILE_WIDTH

    def path(self) -> str:
        """Return the tile's tlog-tiles path, such as ``tile/0/x001/x234/067.p/9``."""
        return tile_path(self.level, self.index, self.width)


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Return the tlog-tiles path of a tile: ``tile/<L>/<N>`` or ``tile/<L>/<N>.p/<W>``.

    ``<N>`` is written in zero-padded groups of three digits, all but the last prefixed
    with ``x`` (index 1234067 is ``x001/x234/067``), so a file system can hold the tiles
    without a file and a directory ever sharing a name.
    """
    _check_tile_coordinates(level, index, width)
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    groups.reverse()
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{'/'.join(groups)}{suffix}"


def partial_widths(size: int) -> list[tuple[int, int, int]]:
    """Return ``(level, index, width)`` of each partial tile of a tree of ``size`` leaves.

    The partial tile of level ``L`` has ``floor(size / 256**L) mod 256`` entries; levels
    where that is 0 have no partial tile. Level 0 comes first.
    """
    if size < 0:
        raise ValueError(f"tree size must be non-negative, got {size}")
    widths: list[tuple[int, int, int]] = []
    level = 0
    entries = size  # complete subtrees of 256**level leaves
    while entries:
        width = entries & (TILE_WIDTH - 1)
        if width:
            widths.append((level, entries >> TILE_HEIGHT, width))
        entries >>= TILE_HEIGHT
        level += 1
    return widths


class TreeBuilder:
    """Incremental RFC 9162 tree keeping only the partial right-edge tile of each level in memory.

    ``append`` costs about one SHA-256 per leaf: each tile is hashed up to its root once,
    when it fills, and that root becomes the next entry of the level above. Everything
    left of the right edge lives in the full tiles ``append`` returns, which the caller
    stores.
    """

    __slots__ = ("_edges", "_size")

    def __init__(self) -> None:
        """Start an empty tree."""
        self._size = 0
        # _edges[L] holds the entries of the partial tile at level L (0..255 hashes).
        self._edges: list[list[bytes]] = [[]]

    @classmethod
    def restore(cls, size: int, partial: Sequence[Tile]) -> TreeBuilder:
        """Resume a tree of ``size`` leaves from its partial tiles (level 0 first).

        The tiles must be exactly those :func:`partial_widths` names for ``size``; anything
        else means the stored tree and its recorded size disagree, which is an
        :class:`~glasslog.errors.IntegrityError`.
        """
        expected = partial_widths(size)
        found = [(tile.level, tile.index, tile.width) for tile in partial]
        if found != expected:
            raise IntegrityError(
                f"partial tiles do not fit a tree of size {size}: expected (level, index, width) "
                f"{expected}, got {found}; load the partial tiles written with that tree size"
            )
        builder = cls()
        builder._size = size
        builder._edges = [[] for _ in range(max(1, _level_count(size)))]
        for tile in partial:
            data = tile.hashes
            builder._edges[tile.level] = [
                data[offset : offset + HASH_SIZE] for offset in range(0, len(data), HASH_SIZE)
            ]
        return builder

    @property
    def size(self) -> int:
        """Number of leaves in the tree."""
        return self._size

    def append(self, leaf_hashes: Iterable[bytes]) -> list[Tile]:
        """Add leaves (already hashed) and return the tiles they completed, level 0 first.

        Either every leaf is added or, if one is not a 32-byte hash, none is.
        """
        items = leaf_hashes if isinstance(leaf_hashes, list) else list(leaf_hashes)
        if not items:
            return []
        # One C-level pass to validate; a bad hash would silently corrupt the tree.
        if set(map(len, items)) != {HASH_SIZE}:
            position, bad = next((i, h) for i, h in enumerate(items) if len(h) != HASH_SIZE)
            raise ValueError(
                f"leaf hash {position} of this append has {len(bad)} bytes, expected {HASH_SIZE}; "
                "pass leaf_hash(leaf), not the leaf itself"
            )
        completed: list[Tile] = []
        edge = self._edges[0]
        size = self._size
        position = 0
        total = len(items)
        while position < total:
            take = min(TILE_WIDTH - len(edge), total - position)
            edge.extend(items[position : position + take])
            position += take
            size += take
            if len(edge) == TILE_WIDTH:
                self._complete(size, completed)
        self._size = size
        if len(completed) > 1:
            completed.sort(key=_tile_order)
        return completed

    def root(self) -> bytes:
        """Return the root of the current tree (``EMPTY_ROOT`` when empty).

        The root is folded from the partial tiles alone, at most 255 hashes per level.
        """
        edges = self._edges

        def read_partial(level: int, index: int, width: int) -> bytes:
            return b"".join(edges[level])

        return root_from(self._size, node_reader(self._size, read_partial))

    def partial_tiles(self) -> list[Tile]:
        """Return the current right edge: one tile per level with 0 < width < 256, level 0 first."""
        return [
            Tile(level, index, width, b"".join(self._edges[level]))
            for level, index, width in partial_widths(self._size)
        ]

    def _complete(self, size: int, completed: list[Tile]) -> None:
        """Emit the full level-0 tile and carry its root upwards, emitting every tile it fills.

        ``size`` is the tree size at which the tile filled; it ends each completed tile,
        so a level-``L`` tile's index is ``size / 256**(L + 1) - 1``.
        """
        edges = self._edges
        level = 0
        while True:
            edge = edges[level]
            index = (size >> (TILE_HEIGHT * (level + 1))) - 1
            completed.append(Tile(level, index, TILE_WIDTH, b"".join(edge)))
            parent = root_of(edge)
            edge.clear()
            level += 1
            if level == len(edges):
                edges.append([])
            above = edges[level]
            above.append(parent)
            if len(above) < TILE_WIDTH:
                return


def node_reader(size: int, read_tile: Callable[[int, int, int], bytes]) -> NodeReader:
    """Return a :data:`NodeReader` for the tree of ``size`` leaves, backed by its tiles.

    ``read_tile(level, index, width)`` must return at least the first ``width`` hashes of
    that tile; a wider or full version is fine, since tile entries are append-only.
    Node ``(h, i)`` is read from tile level ``h // 8`` by hashing the ``2**(h % 8)``
    entries under it (at most 127 hashes).

    Caching: the returned reader keeps an LRU of the last 32 tiles it fetched, enough for
    any one proof to read each tile once. It is bound to ``size``; make a new reader for
    each tree size, and drop it after the proof so no stale tile outlives its request.
    """
    if size < 0:
        raise ValueError(f"tree size must be non-negative, got {size}")

    @functools.lru_cache(maxsize=_READER_CACHE_TILES)
    def tile_bytes(level: int, index: int) -> bytes:
        full_tiles = size >> (TILE_HEIGHT * (level + 1))
        width = (
            TILE_WIDTH if index < full_tiles else (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
        )
        data = read_tile(level, index, width)
        if len(data) < width * HASH_SIZE:
            raise IntegrityError(
                f"{tile_path(level, index, width)} returned {len(data)} bytes, expected at least "
                f"{width * HASH_SIZE} ({width} hashes) for a tree of size {size}"
            )
        return data

    def read(level: int, index: int) -> bytes:
        if level < 0 or index < 0 or (index + 1) << level > size:
            raise ProofError(
                f"node (level {level}, index {index}) is not a complete subtree of the tree of "
                f"size {size}: nodes need level >= 0, index >= 0 and (index + 1) * 2**level <= size"
            )
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height  # first entry of tile level `tile_level` under the node
        data = tile_bytes(tile_level, first >> TILE_HEIGHT)
        offset = (first & (TILE_WIDTH - 1)) * HASH_SIZE
        if height == 0:
            return data[offset : offset + HASH_SIZE]
        end = offset + (HASH_SIZE << height)
        return root_of([data[o : o + HASH_SIZE] for o in range(offset, end, HASH_SIZE)])

    return read


def _level_count(size: int) -> int:
    """Number of tile levels a tree of ``size`` leaves has entries at (0 when empty)."""
    levels = 0
    while size >> (TILE_HEIGHT * levels):
        levels += 1
    return levels


def _tile_order(tile: Tile) -> tuple[int, int]:
    return (tile.level, tile.index)


def _check_tile_coordinates(level: int, index: int, width: int) -> None:
    if not 0 <= level <= _MAX_TILE_LEVEL:
        raise ValueError(f"tile level must be in [0, {_MAX_TILE_LEVEL}], got {level}")
    if index < 0:
        raise ValueError(f"tile index must be non-negative, got {index}")
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width must be in [1, {TILE_WIDTH}], got {width}")
