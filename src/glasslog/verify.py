"""Verification: recompute the whole log from stored data and check it against itself.

``verify_store`` trusts nothing in the database: it recomputes every leaf from the
stored event columns (RFC 8785 body, committed paths, salts), rebuilds the RFC 9162
tree, compares every stored tile with the recomputed one and checks every stored
checkpoint's signature (C2SP signed note) and root. The first disagreement is
reported with the seq where it starts, so an operator knows which event to look at.

Queries read more than the leaves: indexed columns, the field index, full text,
rollups and seq_blocks, all derived from the bodies and none hashed into a leaf. So
verify recomputes each of them from the bodies and compares (docs/ledger.md, "What
verify checks"): a changed derived byte would change a query's answer unnoticed.

Recomputation is the expensive part (JSON decoding, one SHA-256 per committed field,
the derived data), so it runs in worker processes that each open the database
read-only and check one seq range; the parent appends the leaf hashes to the tree
and compares, in seq order, then checks the tables that span many events (rollups,
seq_blocks, the full-text index) against the sums of the workers' results, all in one
snapshot of the store. The workers die with the parent and ignore Ctrl-C
(:mod:`glasslog.workers`).
"""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from glasslog.derived import COLUMN_NAMES, Columns, columns, field_values, search_text
from glasslog.errors import IntegrityError, NoteError, NotFoundError
from glasslog.event import epoch_us, parse_time
from glasslog.identity import history_trusting
from glasslog.ledger.commit import ERASED_KEY, Erased, decode_commits, leaf_from_body, show_pointer
from glasslog.ledger.merkle import HASH_SIZE, leaf_hash
from glasslog.ledger.note import Checkpoint, Verifier
from glasslog.ledger.tiles import TILE_WIDTH, Tile, TreeBuilder
from glasslog.ledger.vkeys import VkeyHistory
from glasslog.lifecycle import is_lifecycle
from glasslog.lifecycle.erasure import ERASE_ACTION
from glasslog.lifecycle.retention import PRUNE_ACTION, parse_ranges
from glasslog.store import open_store
from glasslog.store.base import (
    SEQ_BLOCK,
    FieldRow,
    Store,
    rollup_counts,
    seq_block_bounds,
)
from glasslog.workers import worker_pool

CHUNK = 16_384


@dataclass(frozen=True, slots=True)
class Report:
    """What a successful verification covered."""

    events: int
    checkpoints: int
    covered: int
    seconds: float
    pruned: list[tuple[int, int]] = field(default_factory=list)
    """Seq ranges (end exclusive) whose payloads retention pruned, each authorised by a
    signed ``retention.prune`` event: their leaves stay in the tree."""
    erased: int = 0
    """Fields whose values were erased (data-subject requests), each listed by a signed
    ``erasure.erase`` event: their commitments keep the leaves unchanged."""
    revoked: list[int] = field(default_factory=list)
    """Sizes of stored checkpoints signed by a key revoked since: not trusted, but their
    roots were checked against the rebuilt tree like every other."""

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
        if self.pruned:
            count = sum(b - a for a, b in self.pruned)
            shown = ", ".join(f"{a}-{b - 1}" if b - a > 1 else f"{a}" for a, b in self.pruned[:5])
            more = f" and {len(self.pruned) - 5:,} more ranges" if len(self.pruned) > 5 else ""
            text += (
                f"; {count:,} events pruned by retention (seqs {shown}{more}): their leaves "
                "are in the tree, their payloads removed as signed retention.prune events record"
            )
        if self.revoked:
            text += (
                f"; {len(self.revoked):,} checkpoint{'' if len(self.revoked) == 1 else 's'} "
                "signed by a revoked key (no longer trusted; their roots match the tree)"
            )
        if self.erased:
            text += (
                f"; {self.erased:,} personal field{'' if self.erased == 1 else 's'} erased, "
                "each as a signed erasure.erase event records (their commitments keep the leaves)"
            )
        return text


@dataclass(frozen=True, slots=True)
class _Chunk:
    """What a worker recomputed for one range of seqs."""

    seqs: list[int]
    hashes: bytes
    """The recomputed leaf hashes, back to back."""
    problem: tuple[int, str] | None
    """The first derived datum that disagrees with its body: (seq, message)."""
    counts: dict[tuple[str, int, str], int]
    """Rollup counts recomputed from the bodies."""
    blocks: dict[int, tuple[int, int]]
    """seq_blocks bounds recomputed from the bodies."""
    fields: array[int]
    """How many field-index rows each seq's body yields (all of them present)."""
    pruned: list[tuple[int, int]]
    """``(seq, seq of the authorising retention.prune event)`` of the pruned seqs."""
    erased: list[tuple[int, str, str]]
    """``(seq, JSON Pointer, time of the erasure marker)`` of each erased field."""


_BODY, _COMMITS, _SALTS, _KEYS_AGREE = 9, 10, 11, 12  # positions in a VerifyRow
_COLUMNS = slice(1, 9)


def _check_range(spec: str, start: int, end: int) -> _Chunk:
    """Worker: recompute the leaves of ``[start, end)`` and check what is derived from them."""
    store = open_store(spec, readonly=True)
    try:
        return _recompute(store, start, end)
    finally:
        store.close()


def _recompute(store: Store, start: int, end: int) -> _Chunk:
    """Leaf hashes from the stored rows, and every derived datum checked against its body.

    A body may be checked here before its leaf is: the parent compares the leaves
    first, so an altered body is reported as such, not as a column that disagrees.
    """
    seqs: list[int] = []
    hashes: list[bytes] = []
    problem: tuple[int, str] | None = None
    derived: list[Columns] = []
    times: list[tuple[int, int]] = []
    expected: list[FieldRow] = []
    per_seq = array("I")
    texts: list[str] = []
    per_row_text = store.per_row_text  # else the full-text index is checked whole
    # Pruned seqs (retention) have no row: their leaf hashes come from their pruned
    # rows, checked by the tree like any other; the parent checks their authorisation.
    pruned_rows = store.pruned_leaves(start, end)
    pruned: list[tuple[int, int]] = []
    erased: list[tuple[int, str, str]] = []
    waiting = iter(pruned_rows)
    next_pruned = next(waiting, None)

    def take_pruned(before: int) -> None:
        nonlocal next_pruned
        while next_pruned is not None and next_pruned[0] < before:
            seqs.append(next_pruned[0])
            hashes.append(next_pruned[1])
            pruned.append((next_pruned[0], next_pruned[2]))
            per_seq.append(0)
            texts.append("")
            next_pruned = next(waiting, None)

    for row in store.verify_rows(start, end):
        seq: int = row[0]
        if next_pruned is not None:
            take_pruned(seq)
        seqs.append(seq)
        body: str = row[_BODY]
        try:
            commits: str = row[_COMMITS]
            paths, spans = decode_commits(commits)
            hashes.append(leaf_hash(leaf_from_body(body, spans, row[_SALTS])))
            if '"]' in commits:  # an erased field's entry ends with its commitment
                erased.extend(
                    (seq, show_pointer(path), body[span.start + _MARKER_HEAD : span.end - 2])
                    for path, span in zip(paths, spans, strict=True)
                    if type(span) is Erased
                )
        except Exception as exc:  # any undecodable row is tampering, not a crash
            raise IntegrityError(
                f"seq {seq}: the stored event cannot be decoded ({exc})", seq=seq
            ) from None
        if problem is not None:
            continue  # only the leaves are still needed
        try:
            event = json.loads(body)
            cols = columns(event)
            fields = field_values(event["metadata"]) if "metadata" in event else ()
            text = search_text(event) if per_row_text else ""
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            problem = (seq, f"seq {seq}: the stored body is not an event ({type(exc).__name__})")
            continue
        if cols != row[_COLUMNS]:
            problem = (seq, _column_problem(seq, cols, row[_COLUMNS]))
            continue
        if not row[_KEYS_AGREE]:
            problem = (
                seq,
                f"seq {seq}: the id or time kept for lookups (event_keys) differs from the "
                "event's: event_keys was altered",
            )
            continue
        derived.append(cols)
        times.append((seq, cols.time_us))
        expected.extend((seq, path, value, cols.time_us) for path, value in fields)
        per_seq.append(len(fields))
        texts.append(text)
    take_pruned(end)
    if pruned_rows and len(set(seqs)) != len(seqs):
        seq = next(s for s, _ in pruned if seqs.count(s) > 1)
        problem = (seq, f"seq {seq} is both stored and recorded as pruned: a pruned row was forged")
    if problem is None and seqs == list(range(start, end)):
        problem = _absent_fields(store.missing_fields(expected))
        if problem is None and per_row_text:
            gone = {s for s, _ in pruned}
            bad = [s for s in store.text_mismatches(start, texts) if s not in gone]
            if bad:
                problem = (
                    bad[0],
                    f"seq {bad[0]}: its full-text entry is not the words of its signed body: "
                    "the full-text table was altered",
                )
    return _Chunk(
        seqs,
        b"".join(hashes),
        problem,
        rollup_counts(derived),
        seq_block_bounds(times),
        per_seq,
        pruned,
        erased,
    )


def _column_problem(seq: int, derived: Columns, stored: tuple[object, ...]) -> str:
    name = next(
        (n for n, want, got in zip(COLUMN_NAMES, derived, stored, strict=True) if want != got),
        "?",
    )
    name = {"time_us": "time"}.get(name, name)  # as the stores name the column
    return (
        f"seq {seq}: the stored {name} column does not match the event's signed body: "
        "the column was altered, which changes what queries find"
    )


def _absent_fields(missing: list[FieldRow]) -> tuple[int, str] | None:
    """The first field-index row a body yields that the index lacks, as a problem."""
    if not missing:
        return None
    seq, path, _, _ = min(missing, key=lambda row: row[0])
    return (
        seq,
        f"seq {seq}: the field index lacks a value of {path} that the event's signed body "
        "has: the field index was altered, which hides the event from metadata queries",
    )


def _extra_fields(store: Store, expected: array[int]) -> IntegrityError:
    """Name the first seq with more field-index rows than its body yields.

    Only when the counts disagree (every expected row is present, so the others are
    extra): the index is grouped by seq, which takes seconds on a large store.
    """
    for seq, rows in store.field_counts():
        if not 0 <= seq < len(expected):
            return IntegrityError(
                f"the field index holds a row for seq {seq}, outside the tree of "
                f"{len(expected):,} events: a row was inserted",
                seq=seq,
            )
        if rows != expected[seq]:
            return IntegrityError(
                f"seq {seq}: the field index holds {rows} values for the event, its signed "
                f"body yields {expected[seq]}: rows were added to the field index, which "
                "makes metadata queries find the event",
                seq=seq,
            )
    return IntegrityError(  # the counts changed between two reads of one snapshot
        "the field index's row count does not match the events'; run verify again"
    )


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


def _check_known(store: Store, keys: VkeyHistory, known: Sequence[KnownCheckpoint]) -> None:
    """Checkpoints known outside the database are still in it, unchanged."""
    if not known:
        return
    count = len(store.checkpoints())
    for item in known:
        try:
            cp = keys.verify_checkpoint(item.note)
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
        if not item.note.startswith(held.note):  # a copy of /checkpoint adds cosignatures
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
    verifier: Verifier | VkeyHistory,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    known: Sequence[KnownCheckpoint] = (),
) -> Report:
    """Verify the store ``db`` (a SQLite path or PostgreSQL DSN) against ``verifier``.

    ``verifier`` is a key the caller trusts: every checkpoint is checked through the
    store's key history (docs/ledger.md, "Key rotation"), which must hold that key.
    A :class:`VkeyHistory` is used as given.

    ``known`` are checkpoints obtained outside the database — the data directory's
    record, a witness's or a monitor's copy — that the store must still hold.
    Raises IntegrityError at the first fault.
    """
    started = time.monotonic()
    store = open_store(db, readonly=True)
    try:
        with store.snapshot():  # the counters and tables below, as of one moment
            size = store.size()
            _check_rows(store)
            keys = _key_history(store, verifier)
            _check_known(store, keys, known)
            revoked: list[int] = []
            checkpoints = _signed_checkpoints(store, keys, size, revoked)
            checker = _Checker(store)
            pending_cps = iter(checkpoints)
            next_cp = next(pending_cps, None)
            while next_cp is not None and next_cp.size == 0:
                checker.check_checkpoint(next_cp)
                next_cp = next(pending_cps, None)
            totals = _Totals()
            authority = _PruneAuthority(store, checkpoints[-1].size if checkpoints else 0)
            erasures = _EraseAuthority(store, checkpoints[-1].size if checkpoints else 0)
            text_index = _TextIndexCheck(db)
            for start, chunk in _chunks(db, store, size, workers):
                seqs = chunk.seqs
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
                hashes = chunk.hashes
                leaves = [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
                pos = 0
                while next_cp is not None and next_cp.size <= start + len(leaves):
                    cut = next_cp.size - start
                    checker.add(leaves[pos:cut])
                    pos = cut
                    checker.check_checkpoint(next_cp)
                    next_cp = next(pending_cps, None)
                checker.add(leaves[pos:])
                if chunk.problem is not None:  # after the leaves: an altered body comes first
                    seq, message = chunk.problem
                    raise IntegrityError(message, seq=seq)
                authority.check(chunk.pruned)
                erasures.check(chunk.erased)
                totals.add(chunk)
                if progress is not None:
                    progress(len(leaves))
            _check_no_tiles_beyond(store, size)
            totals.check(store, size)
            problem = text_index.result()
            if problem is not None:
                raise IntegrityError(
                    f"the full-text index does not match the words stored for the events "
                    f"({problem}): the index was altered, which changes what free-text "
                    "searches find"
                )
        covered = checkpoints[-1].size if checkpoints else 0
        return Report(
            events=size,
            checkpoints=len(checkpoints),
            covered=covered,
            seconds=time.monotonic() - started,
            pruned=authority.ranges,
            erased=erasures.finish(),
            revoked=revoked,
        )
    finally:
        store.close()


_MARKER_HEAD = len('{"' + ERASED_KEY + '":"')


class _EraseAuthority:
    """Each erased field must be recorded in ``erasures`` and listed, with its event's
    seq, by the ``erasure.erase`` event that row names: stored, later than the event,
    under a signed checkpoint, and of the same time as the field's ``$erased`` marker.

    A body rewritten by hand (a value replaced by a marker and the commitment it had,
    which whoever holds value and salt can compute) fails here: no signed event lists
    it, and none can be added without the log's signing key.
    """

    def __init__(self, store: Store, covered: int) -> None:
        self._store = store
        self._covered = covered
        self._rows = {(e.seq, e.path): e for e in store.erasures()}
        self._listed: dict[int, tuple[str, set[tuple[int, str]]]] = {}
        self._count = 0

    def check(self, erased: list[tuple[int, str, str]]) -> None:
        for seq, pointer, moment in erased:
            row = self._rows.pop((seq, pointer), None)
            if row is None:
                raise IntegrityError(
                    f"seq {seq}: {pointer} is erased in the stored event, but no erasure "
                    "records it: the body was rewritten without an authorising erasure.erase "
                    "event",
                    seq=seq,
                )
            when, listed = self._authorising(seq, pointer, row.by)
            if row.by <= seq or (seq, pointer) not in listed:
                raise IntegrityError(
                    f"seq {seq}: {pointer} is erased, but the erasure.erase event at seq "
                    f"{row.by} does not list it: the body was rewritten and an erasure forged",
                    seq=seq,
                )
            if moment != when or epoch_us(parse_time(when)) != row.time_us:
                raise IntegrityError(
                    f"seq {seq}: {pointer} is marked erased at {moment}, but the erasure.erase "
                    f"event at seq {row.by} happened at {when}: the erasure was altered",
                    seq=seq,
                )
            self._count += 1

    def _authorising(self, seq: int, pointer: str, by: int) -> tuple[str, set[tuple[int, str]]]:
        known = self._listed.get(by)
        if known is not None:
            return known
        forged = (
            f"seq {seq}: {pointer} is erased by seq {by}, which is not a signed erasure.erase "
            "event: the body was rewritten and an erasure forged"
        )
        if by >= self._covered:
            raise IntegrityError(f"{forged} (no signed checkpoint covers seq {by})", seq=seq)
        try:
            event = json.loads(self._store.get(by).body)
            if not (is_lifecycle(event) and event.get("action") == ERASE_ACTION):
                raise ValueError("another action")
            listed = {
                (int(item[0]), str(path))
                for item in event["metadata"]["erased"]
                for path in item[1:]
            }
            known = self._listed[by] = (str(event["time"]), listed)
        except (NotFoundError, ValueError, KeyError, TypeError, AttributeError, IndexError):
            raise IntegrityError(forged, seq=seq) from None
        return known

    def finish(self) -> int:
        """The number of erased fields; fails when ``erasures`` records others (except
        for events retention pruned since: their whole payload is gone)."""
        left = sorted(k for k in self._rows if self._store.pruned_record(seq=k[0]) is None)
        if left:
            seq, pointer = left[0]
            raise IntegrityError(
                f"seq {seq}: the erasures table records {pointer} as erased, but the stored "
                "event holds it: an erasure row was inserted by hand",
                seq=seq,
            )
        return self._count


class _PruneAuthority:
    """Each pruned seq must be listed by the ``retention.prune`` event its pruned row
    names, stored (not pruned itself), later than it, and under a signed checkpoint.

    A row deleted by hand with a forged ``pruned`` row beside it fails here: no such
    event lists it, and none can be added without the log's signing key.
    """

    def __init__(self, store: Store, covered: int) -> None:
        self._store = store
        self._covered = covered
        self._ranges: dict[int, list[tuple[int, int]]] = {}
        self.ranges: list[tuple[int, int]] = []

    def check(self, pruned: list[tuple[int, int]]) -> None:
        for seq, by in pruned:
            ranges = self._ranges.get(by)
            if ranges is None:
                ranges = self._ranges[by] = self._authorising(seq, by)
            if by <= seq:
                raise IntegrityError(
                    f"seq {seq} is recorded as pruned by seq {by}, which is not later than "
                    "it: a pruned row was forged",
                    seq=seq,
                )
            i = bisect.bisect_right(ranges, (seq, _MAX_SEQ)) - 1
            if i < 0 or not ranges[i][0] <= seq < ranges[i][1]:
                raise IntegrityError(
                    f"seq {seq} is missing and recorded as pruned, but the retention.prune "
                    f"event at seq {by} does not list it: the event row was deleted and a "
                    "pruned row forged",
                    seq=seq,
                )
            if self.ranges and self.ranges[-1][1] == seq:
                self.ranges[-1] = (self.ranges[-1][0], seq + 1)
            else:
                self.ranges.append((seq, seq + 1))

    def _authorising(self, seq: int, by: int) -> list[tuple[int, int]]:
        forged = (
            f"seq {seq} is missing and recorded as pruned by seq {by}, which is not a signed "
            "retention.prune event"
        )
        if by >= self._covered:
            raise IntegrityError(
                f"{forged} (no signed checkpoint covers seq {by}): the event row was "
                "deleted and a pruned row forged",
                seq=seq,
            )
        try:
            event = json.loads(self._store.get(by).body)
            if not (is_lifecycle(event) and event.get("action") == PRUNE_ACTION):
                raise ValueError("another action")
            return parse_ranges(str(event["metadata"]["ranges"]))
        except (NotFoundError, ValueError, KeyError, TypeError, AttributeError):
            raise IntegrityError(
                f"{forged}: the event row was deleted and a pruned row forged", seq=seq
            ) from None


_MAX_SEQ = 2**63


class _TextIndexCheck:
    """The store's full-text index check (FTS5's), run in a thread while the workers work.

    It is one long SQLite statement, during which Python's sqlite3 releases the GIL,
    so it runs beside the parent's own work; on its own connection and snapshot,
    because the index it checks against the bodies' words needs no particular size.
    A daemon thread: a verify that stops at an earlier fault does not wait for it.
    """

    def __init__(self, db: Path | str) -> None:
        self._db = db
        self._problem: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fts-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            store = open_store(self._db, readonly=True)
            try:
                with store.snapshot():
                    self._problem = store.check_text_index()
            finally:
                store.close()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> str | None:
        """What the check found wrong (None: nothing); re-raises what it failed with."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._problem


def _key_history(store: Store, trusted: Verifier | VkeyHistory) -> VkeyHistory:
    """The store's key history, shown to hold the ``trusted`` key (key rotation).

    A history someone edited (a statement signed by one key only, a changed row)
    fails its own checks and is reported as tampering, as is one without the key the
    verifier trusts.
    """
    if isinstance(trusted, VkeyHistory):
        return trusted
    try:
        return history_trusting(store, trusted.vkey)
    except NoteError as exc:
        raise IntegrityError(f"the store's key history: {exc}") from None


def _signed_checkpoints(
    store: Store, keys: VkeyHistory, size: int, revoked: list[int]
) -> list[Checkpoint]:
    """Every stored checkpoint, its signature checked, through the key history, by the
    key whose era covers its size, and its size within the store. The sizes of those
    signed by a key revoked since are added to ``revoked``."""
    checkpoints: list[Checkpoint] = []
    for stored in store.checkpoints():
        try:
            cp = keys.verify_checkpoint(stored.note)
        except NoteError as exc:
            era = keys.revoked_signer(stored.note)
            if era is None:
                raise IntegrityError(f"checkpoint at size {stored.size}: {exc}") from None
            # Signed by a key revoked after it was written: no longer trusted, but
            # kept in the check, so its root must still be this tree's (a stolen key
            # signing a fork into the store is caught there). Later keys' checkpoints
            # cover the same leaves.
            cp = Checkpoint.parse(stored.note[: stored.note.rfind("\n\n") + 1])
            revoked.append(cp.size)
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
    return checkpoints


class _Totals:
    """The derived tables that span many events, recomputed chunk by chunk, then compared."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int, str], int] = {}
        self.blocks: dict[int, tuple[int, int]] = {}
        self.fields = array("I")
        self.pruned_blocks: set[int] = set()
        """Blocks holding pruned seqs: their stored bounds may be wider than the events
        left (retention never narrows them; wider bounds only cost a block read)."""

    def add(self, chunk: _Chunk) -> None:
        self.pruned_blocks.update(seq // SEQ_BLOCK for seq, _ in chunk.pruned)
        counts = self.counts
        for key, n in chunk.counts.items():
            counts[key] = counts.get(key, 0) + n
        self.fields.extend(chunk.fields)
        blocks = self.blocks
        for block, (low, high) in chunk.blocks.items():
            was = blocks.get(block)  # a block is split only when CHUNK is no multiple of it
            blocks[block] = (low, high) if was is None else (min(was[0], low), max(was[1], high))

    def check(self, store: Store, size: int) -> None:
        """Compare with the store's rollups and blocks; find derived rows outside the tree."""
        counts = self.counts
        for dim, hour, value, count in store.rollups():
            if counts.pop((dim, hour, value), 0) != count:
                raise IntegrityError(
                    f"the rollups count {count:,} events for {_dim_name(dim)} in hour "
                    f"{_hour(hour)}, which the signed events do not: the rollups were altered, "
                    "which changes what counts and aggregations report"
                )
        if counts:
            dim, hour, _ = min(counts)
            raise IntegrityError(
                f"the rollups lack the events of {_dim_name(dim)} in hour {_hour(hour)}: "
                "rollup rows were removed, which changes what counts and aggregations report"
            )
        stored = store.seq_blocks()
        for block, bounds in sorted(self.blocks.items()):
            held = stored.pop(block, None)
            wider = held is not None and held[0] <= bounds[0] and held[1] >= bounds[1]
            if block in self.pruned_blocks and wider:
                continue
            if held != bounds:
                raise IntegrityError(
                    f"the time bounds of seqs {block * SEQ_BLOCK:,} to "
                    f"{(block + 1) * SEQ_BLOCK - 1:,} (seq_blocks) do not match their events: "
                    "seq_blocks was altered, which can hide events from full-text searches",
                    seq=block * SEQ_BLOCK,
                )
        for block in self.pruned_blocks:
            stored.pop(block, None)  # every event of the block was pruned
        if stored:
            block = min(stored)
            raise IntegrityError(
                f"seq_blocks holds bounds for seqs from {block * SEQ_BLOCK:,}, beyond the "
                f"{size:,} events of the tree: a row was inserted",
                seq=block * SEQ_BLOCK,
            )
        if store.field_count() != sum(self.fields):
            raise _extra_fields(store, self.fields)
        repeated = store.repeated_field_paths()
        if repeated:
            raise IntegrityError(
                f"the field keys name {repeated[0]} more than once: field_keys "
                "was altered, which can hide events from metadata queries"
            )


def _dim_name(dim: str) -> str:
    return {"actor_id": "user"}.get(dim, dim)


def _hour(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%d %H:00Z")


def _chunks(
    db: Path | str, store: Store, size: int, workers: int | None
) -> Iterator[tuple[int, _Chunk]]:
    """Recomputed chunks in seq order, a bounded number in flight.

    Up to ``size`` only: rows a writer appends meanwhile are not part of the tree being
    verified. A small store is checked in this process, on ``store`` itself.
    """
    count = workers or os.cpu_count() or 1
    starts = range(0, size, CHUNK)
    if count <= 1 or size <= CHUNK:
        for start in starts:
            yield start, _recompute(store, start, min(start + CHUNK, size))
        return
    with worker_pool(count) as pool:  # they die with us, and ignore Ctrl-C
        inflight: list[tuple[int, Future[_Chunk]]] = []
        it = iter(starts)

        def submit(start: int) -> None:
            inflight.append(
                (start, pool.submit(_check_range, str(db), start, min(start + CHUNK, size)))
            )

        for start in it:
            submit(start)
            if len(inflight) >= count * 2:
                break
        while inflight:
            start, fut = inflight.pop(0)
            chunk = fut.result()
            nxt = next(it, None)
            if nxt is not None:
                submit(nxt)
            yield start, chunk
