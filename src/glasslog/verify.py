"""Verification: recompute the whole log from stored data and check it against itself.

``verify_store`` trusts nothing in the database: it recomputes every leaf from the
stored event columns (RFC 8785 body, committed paths, salts), rebuilds the RFC 9162
tree, compares every stored tile with the recomputed one and checks every stored
checkpoint's signature (C2SP signed note) and root. The first disagreement is
reported with the seq where it starts, so an operator knows which event to look at.

Leaf recomputation is the expensive part (JSON decoding, canonical re-encoding and
one SHA-256 per committed field), so it runs in worker processes that each open the
database read-only and hash one seq range; the parent only appends hashes to the
tree and compares, in seq order. The workers die with the parent and ignore Ctrl-C
(:mod:`glasslog.workers`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from glasslog.errors import IntegrityError, NoteError, NotFoundError
from glasslog.ledger.merkle import HASH_SIZE, leaf_hash
from glasslog.ledger.note import Checkpoint, Verifier, verify_checkpoint
from glasslog.ledger.tiles import TILE_WIDTH, Tile, TreeBuilder
from glasslog.store import open_store
from glasslog.store.base import Store, leaf_of
from glasslog.workers import worker_pool

CHUNK = 16_384


@dataclass(frozen=True, slots=True)
class Report:
    """What a successful verification covered."""

    events: int
    checkpoints: int
    covered: int
    seconds: float

    @property
    def pending(self) -> int:
        """Events stored after the latest checkpoint, not yet covered by a signature."""
        return self.events - self.covered

    def summary(self) -> str:
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"intact: {self.events:,} events, {self.checkpoints:,} signed "
            f"checkpoint{'' if self.checkpoints == 1 else 's'}, "
            f"latest covers {self.covered:,} events ({self.seconds:.1f} s, {rate:,.0f} events/s)"
        )
        if self.pending:
            text += f"; {self.pending:,} newer events are not yet covered by a checkpoint"
        return text


def _leaf_range(spec: str, start: int, end: int) -> tuple[list[int], bytes]:
    """Worker: seqs present in ``[start, end)`` and their recomputed leaf hashes."""
    store = open_store(spec, readonly=True)
    try:
        seqs: list[int] = []
        hashes: list[bytes] = []
        for stored in store.events(start, end):
            seqs.append(stored.seq)
            try:
                hashes.append(leaf_hash(leaf_of(stored)))
            except Exception as exc:  # any undecodable row is tampering, not a crash
                raise IntegrityError(
                    f"seq {stored.seq}: the stored event cannot be decoded ({exc})", seq=stored.seq
                ) from None
        return seqs, b"".join(hashes)
    finally:
        store.close()


def _first_difference(a: bytes, b: bytes) -> int:
    for i in range(0, min(len(a), len(b)), HASH_SIZE):
        if a[i : i + HASH_SIZE] != b[i : i + HASH_SIZE]:
            return i // HASH_SIZE
    return min(len(a), len(b)) // HASH_SIZE


class _Checker:
    """Compares the recomputed tree with what the store claims, in seq order."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tree = TreeBuilder()

    def add(self, leaves: list[bytes]) -> None:
        for tile in self.tree.append(leaves):
            self._compare(tile)

    def _compare(self, tile: Tile) -> None:
        try:
            stored = self.store.read_tile(tile.level, tile.index, tile.width)[: len(tile.hashes)]
        except NotFoundError:
            raise IntegrityError(
                f"tile {tile.level}/{tile.index} is missing from the store",
                seq=_first_leaf(tile, 0),
            ) from None
        if stored != tile.hashes:
            j = _first_difference(stored, tile.hashes)
            seq = _first_leaf(tile, j)
            if tile.level == 0:
                raise IntegrityError(
                    f"seq {seq}: the stored event does not match the leaf hash recorded in the "
                    f"tree (tile 0/{tile.index}); the event row or the tile was altered",
                    seq=seq,
                )
            raise IntegrityError(
                f"tile {tile.level}/{tile.index} entry {j} does not match the recomputed tree "
                f"(the subtree starting at seq {seq}); a tile was altered",
                seq=seq,
            )

    def check_checkpoint(self, cp: Checkpoint) -> None:
        for tile in self.tree.partial_tiles():
            self._compare(tile)
        if self.tree.root() != cp.root:
            raise IntegrityError(
                f"checkpoint at size {cp.size}: its signed root does not match the tree "
                "recomputed from the stored events; events before it were altered together "
                "with the tree's tiles"
            )


def _check_no_tiles_beyond(store: Store, size: int) -> None:
    """Fail if a stored level-0 tile records more leaves than there are events."""
    index, width = divmod(size, TILE_WIDTH)
    try:
        store.read_tile(0, index, width + 1)
    except NotFoundError:
        return
    raise IntegrityError(
        f"seq {size} is missing: the tree records more events than the store holds "
        "(the newest rows were deleted)",
        seq=size,
    )


@dataclass(frozen=True, slots=True)
class KnownCheckpoint:
    """A checkpoint known from outside the database, which the store must still hold."""

    note: str
    source: str
    """Where it came from, for messages: a file name, "the data directory", …"""
    checkpoints: int | None = None
    """How many checkpoints the store held when it was recorded, if known."""


def _check_rows(store: Store) -> None:
    """Every event row is a leaf: no seq below 0, and exactly ``size`` rows.

    The walk over the tree reads seqs 0 to size - 1 only; a row inserted below 0 (or
    beside the tree, on PostgreSQL, where seq is unique only together with time)
    would be shown by reads yet never verified.
    """
    size, rows, low, high = store.seq_bounds()
    if low is not None and low < 0:
        raise IntegrityError(
            f"seq {low}: a row outside the tree (seq below 0) was inserted into the events",
            seq=low,
        )
    if high is not None and high >= size:
        raise IntegrityError(
            f"seq {high}: an event row beyond the tree's {size:,} events was inserted",
            seq=high,
        )
    if rows > size:  # deleted rows are named by the walk; extra ones only here
        raise IntegrityError(
            f"the store holds {rows:,} event rows for a tree of {size:,} events: rows were "
            "inserted beside the tree (a seq stored twice)"
        )


def _check_known(store: Store, verifier: Verifier, known: Sequence[KnownCheckpoint]) -> None:
    """Checkpoints known outside the database are still in it, unchanged."""
    if not known:
        return
    count = len(store.checkpoints())
    for item in known:
        try:
            cp = verify_checkpoint(item.note, verifier=verifier)
        except NoteError as exc:
            raise IntegrityError(
                f"the checkpoint in {item.source} is not this log's ({exc})"
            ) from None
        held = store.checkpoint_at(cp.size)
        if held is None:
            raise IntegrityError(
                f"the checkpoint at tree size {cp.size:,} in {item.source} is missing from "
                "the store: signed checkpoints were deleted",
                seq=cp.size - 1,
            )
        if held.note != item.note:
            raise IntegrityError(
                f"the store's checkpoint at tree size {cp.size:,} differs from the one in "
                f"{item.source}: a checkpoint was replaced, or two different trees were signed"
            )
        if item.checkpoints is not None and count < item.checkpoints:
            raise IntegrityError(
                f"the store holds {count} checkpoints, fewer than the {item.checkpoints} that "
                f"{item.source} records: signed checkpoints were deleted"
            )


def _first_leaf(tile: Tile, entry: int) -> int:
    return int((tile.index * TILE_WIDTH + entry) * TILE_WIDTH**tile.level)


def verify_store(
    db: Path | str,
    verifier: Verifier,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    known: Sequence[KnownCheckpoint] = (),
) -> Report:
    """Verify the store ``db`` (a SQLite path or PostgreSQL DSN) against ``verifier``.

    ``known`` are checkpoints obtained outside the database — the data directory's
    record, a witness's or a monitor's copy — that the store must still hold.
    Raises IntegrityError at the first fault.
    """
    started = time.monotonic()
    store = open_store(db, readonly=True)
    try:
        size = store.size()
        _check_rows(store)
        _check_known(store, verifier, known)
        checkpoints: list[Checkpoint] = []
        for stored in store.checkpoints():
            try:
                cp = verify_checkpoint(stored.note, verifier=verifier)
            except NoteError as exc:
                raise IntegrityError(f"checkpoint at size {stored.size}: {exc}") from None
            if cp.size != stored.size:
                raise IntegrityError(
                    f"checkpoint stored as size {stored.size} is signed for size {cp.size}"
                )
            if cp.size > size:
                raise IntegrityError(
                    f"checkpoint at size {cp.size} covers events that are missing: the store "
                    f"ends at seq {size - 1}",
                    seq=size,
                )
            checkpoints.append(cp)
        checker = _Checker(store)
        pending_cps = iter(checkpoints)
        next_cp = next(pending_cps, None)
        while next_cp is not None and next_cp.size == 0:
            checker.check_checkpoint(next_cp)
            next_cp = next(pending_cps, None)
        for start, seqs, hashes in _leaf_hashes(db, size, workers):
            if seqs != list(range(start, start + len(seqs))) or len(seqs) != min(
                CHUNK, size - start
            ):
                missing = next(
                    (s for s, got in zip(range(start, size), seqs, strict=False) if s != got),
                    start + len(seqs),
                )
                raise IntegrityError(
                    f"seq {missing} is missing: an event row was deleted or renumbered",
                    seq=missing,
                )
            leaves = [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
            pos = 0
            while next_cp is not None and next_cp.size <= start + len(leaves):
                cut = next_cp.size - start
                checker.add(leaves[pos:cut])
                pos = cut
                checker.check_checkpoint(next_cp)
                next_cp = next(pending_cps, None)
            checker.add(leaves[pos:])
            if progress is not None:
                progress(len(leaves))
        _check_no_tiles_beyond(store, size)
        covered = checkpoints[-1].size if checkpoints else 0
        return Report(
            events=size,
            checkpoints=len(checkpoints),
            covered=covered,
            seconds=time.monotonic() - started,
        )
    finally:
        store.close()


def _leaf_hashes(
    db: Path | str, size: int, workers: int | None
) -> Iterator[tuple[int, list[int], bytes]]:
    """Recomputed leaf hashes chunk by chunk, in order, a bounded number in flight."""
    count = workers or os.cpu_count() or 1
    starts = range(0, size, CHUNK)

    def chunk(start: int) -> tuple[str, int, int]:
        # Up to ``size`` only: rows a writer appends meanwhile are not part of the tree
        # being verified, and reading them would look like renumbered rows.
        return str(db), start, min(start + CHUNK, size)

    if count <= 1 or size <= CHUNK:
        for start in starts:
            yield (start, *_leaf_range(*chunk(start)))
        return
    with worker_pool(count) as pool:  # they die with us, and ignore Ctrl-C
        inflight: list[tuple[int, Future[tuple[list[int], bytes]]]] = []
        it = iter(starts)
        for start in it:
            inflight.append((start, pool.submit(_leaf_range, *chunk(start))))
            if len(inflight) >= count * 2:
                break
        while inflight:
            start, fut = inflight.pop(0)
            seqs, hashes = fut.result()
            nxt = next(it, None)
            if nxt is not None:
                inflight.append((nxt, pool.submit(_leaf_range, *chunk(nxt))))
            yield start, seqs, hashes
