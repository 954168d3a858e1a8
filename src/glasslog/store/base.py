"""The storage contract every backend implements (SQLite now, PostgreSQL next).

A store keeps three append-only things: event rows (dense ``seq`` from 0), the
Merkle tree's full tiles (C2SP tlog-tiles) and signed checkpoints with the partial
tiles of their tree size. It does no hashing or signing itself: the ingest pipeline
computes everything and hands the store rows that only need to be written, so both
backends stay simple and the same tests run on both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from glasslog.errors import IntegrityError, NotFoundError, PrunedError, StoreError
from glasslog.ledger.commit import decode_commits, leaf_from_body
from glasslog.ledger.merkle import HASH_SIZE, NodeReader, leaf_hash, root_of
from glasslog.ledger.tiles import TILE_WIDTH, Tile, TreeBuilder, node_reader, partial_widths


class EventRow(NamedTuple):
    """One event as written: indexed columns, the canonical body and its commitments.

    ``body`` is the RFC 8785 encoding of the stored event (secrets already scrubbed,
    committed values in clear); ``commits`` lists the committed paths (JSON) and
    ``salts`` holds their 16-byte salts back to back, in the same order. ``text`` is
    what full-text search indexes; it is derived, never part of the leaf.
    """

    seq: int
    id: bytes
    time_us: int
    service: str
    action: str
    actor_id: str
    outcome: str
    request_id: str | None
    trace_id: str | None
    body: str
    commits: str
    salts: bytes
    text: str
    fields: tuple[tuple[str, str | int | float], ...] = ()
    """Scalar metadata values by path (``metadata.db.table``) for the field index."""


SEQ_BLOCK = 4096
"""Events per row of ``seq_blocks``, the time bounds that let full-text results stream."""

ROLLUP_DIMS = ("service", "action", "actor_id", "outcome")
"""Columns whose hourly counts are kept in ``rollups`` for fast aggregations."""

HOUR_US = 3_600_000_000


class _Counted(Protocol):
    """What a rollup counts: an EventRow at ingest, the columns derived from a body in verify."""

    @property
    def time_us(self) -> int: ...
    @property
    def service(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def actor_id(self) -> str: ...
    @property
    def outcome(self) -> str: ...


def rollup_counts(rows: Iterable[_Counted]) -> dict[tuple[str, int, str], int]:
    """Events per (dimension, hour, value) in ``rows``: the increments for ``rollups``."""
    counts: dict[tuple[str, int, str], int] = {}
    for r in rows:
        hour = r.time_us // HOUR_US
        for dim, value in zip(
            ROLLUP_DIMS, (r.service, r.action, r.actor_id, r.outcome), strict=True
        ):
            key = (dim, hour, value)
            counts[key] = counts.get(key, 0) + 1
    return counts


def seq_block_bounds(times: Iterable[tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """(min time, max time) per block of SEQ_BLOCK seqs of ``(seq, time)`` pairs: the
    bounds to widen ``seq_blocks`` with (ingest) or to find there (verify)."""
    blocks: dict[int, tuple[int, int]] = {}
    for seq, time_us in times:
        block = seq // SEQ_BLOCK
        low, high = blocks.get(block, (time_us, time_us))
        blocks[block] = (min(low, time_us), max(high, time_us))
    return blocks


VerifyRow = tuple[Any, ...]
"""An event row as ``verify`` reads it: seq, the indexed columns in
:data:`glasslog.derived.COLUMN_NAMES` order, body, commits, salts, and whether the
backend's other copies of id and time (PostgreSQL's ``event_keys``) agree. A plain
tuple: one is read for every event of the log."""

FieldRow = tuple[int, str | None, Any, int]
"""A field-index row as ``verify`` reads it: seq, path (None if its key has none), value, time."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """The stored columns needed to rebuild an event's leaf and show it."""

    seq: int
    body: str
    commits: str
    salts: bytes


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: never the key itself, only a hash of its secret part."""

    id: str
    hash: bytes
    role: str
    name: str
    created_us: int
    expires_us: int | None
    revoked_us: int | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """A break-glass grant: a second role for a principal, until it expires."""

    id: str
    principal: str
    role: str
    reason: str
    created_us: int
    expires_us: int
    revoked_us: int | None = None


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint note as stored, with the tree size it covers."""

    size: int
    note: str


@dataclass(frozen=True, slots=True)
class Pruned:
    """What stays of an event whose payload retention removed (docs/retention.md).

    The leaf hash keeps the tree whole; the id keeps a re-sent event a duplicate;
    ``by`` is the seq of the ``retention.prune`` event that authorised it.
    """

    seq: int
    id: bytes
    time_us: int
    leaf_hash: bytes
    by: int
    at_us: int


@dataclass(frozen=True, slots=True)
class Hold:
    """A legal hold: events matching ``query`` are never pruned or erased while it is active."""

    id: str
    query: str
    reason: str
    created_us: int
    by: str
    released_us: int | None = None
    released_by: str | None = None
    release_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released_us is None


@dataclass(frozen=True, slots=True)
class Erasure:
    """One erased field, as the append-only ``erasures`` table records it (docs/erasure.md).

    ``by`` is the seq of the ``erasure.erase`` ledger event that authorised it, whose
    time is ``time_us``.
    """

    seq: int
    path: str
    """The field, as a JSON Pointer: ``/actor/email``."""
    time_us: int
    by: int


@dataclass(frozen=True, slots=True)
class Rewrite:
    """An event row after erasure: its new stored columns, and its derived data before
    and after (the stores delete what the old body yielded and the new one does not)."""

    seq: int
    time_us: int
    """The event's own time (unchanged): PostgreSQL's partition key, the field rows' time."""
    body: str
    commits: str
    salts: bytes
    old_text: str
    """The words indexed for the old body (a contentless FTS5 index needs them to delete)."""
    text: str
    old_fields: tuple[tuple[str, str | int | float], ...]
    fields: tuple[tuple[str, str | int | float], ...]
    erased: tuple[Erasure, ...]


class Store(Protocol):
    """What the pipeline, the CLI and ``verify`` need from a backend."""

    shared: bool
    """True when other processes (other hosts) may sequence into the same store, so a
    writer must take :meth:`lock_writer` around each batch and catch up first."""

    upgraded_from: int | None
    """The schema version that opening with ``create`` migrated from, if it did."""

    def size(self) -> int:
        """Number of stored events (the next seq to assign)."""
        ...

    def seq_bounds(self) -> tuple[int, int, int | None, int | None]:
        """``(size, rows, lowest seq, highest seq)``, read in one snapshot: the tree's size
        (as :meth:`size`) and the event rows themselves, which ``verify`` compares to
        find rows outside the tree (a writer appending meanwhile changes neither alone)."""
        ...

    def append(self, rows: Sequence[EventRow], tiles: Sequence[Tile]) -> None:
        """Write events and the full tiles they completed in one durable transaction."""
        ...

    def find_ids(self, ids: Sequence[bytes]) -> dict[bytes, StoredEvent]:
        """Return the already-stored events among ``ids`` (idempotency lookups)."""
        ...

    def get(self, seq: int) -> StoredEvent:
        """The event at ``seq``; :class:`~glasslog.errors.NotFoundError` if absent."""
        ...

    def get_by_id(self, event_id: bytes) -> StoredEvent:
        """The event with that id; :class:`~glasslog.errors.NotFoundError` if absent."""
        ...

    def events(self, start: int, end: int) -> Iterator[StoredEvent]:
        """Events with ``start <= seq < end`` in seq order (gaps show as missing seqs)."""
        ...

    def verify_rows(self, start: int, end: int) -> Iterator[VerifyRow]:
        """Event rows with ``start <= seq < end`` in seq order, every column ``verify`` checks."""
        ...

    def missing_fields(self, rows: Sequence[FieldRow]) -> list[FieldRow]:
        """Those of ``rows`` the field index does not hold (a row whose path has no key
        is missing too). With :meth:`field_count`, all ``verify`` needs: the index holds
        every expected row, and exactly as many rows as expected, so no other."""
        ...

    def field_count(self) -> int:
        """How many rows the field index holds."""
        ...

    def field_counts(self) -> Iterator[tuple[int, int]]:
        """``(seq, rows)`` for every seq the field index has rows for, in seq order: to
        locate rows that should not be there, once :meth:`field_count` says there are."""
        ...

    def repeated_field_paths(self) -> list[str]:
        """Metadata paths that more than one field key names (each one a query may miss)."""
        ...

    per_row_text: bool
    """Whether full text is kept per event row (PostgreSQL's ``tsv``), compared with
    :meth:`text_mismatches`; otherwise :meth:`check_text_index` checks it all at once."""

    def text_mismatches(self, start: int, texts: Sequence[str]) -> list[int]:
        """The seqs from ``start`` whose full-text entry is not the words of ``texts[seq -
        start]`` (missing, or indexing other words), in order."""
        ...

    def snapshot(self) -> AbstractContextManager[None]:
        """Make every read on this store, while the context lasts, see one moment."""
        ...

    def rollups(self) -> Iterator[tuple[str, int, str, int]]:
        """Every ``(dim, hour, value, count)`` of the rollups, in any order."""
        ...

    def seq_blocks(self) -> dict[int, tuple[int, int]]:
        """Every block's stored (min time, max time)."""
        ...

    def check_text_index(self) -> str | None:
        """Check the full-text index against the bodies' words: None, or what is wrong.
        Backends whose full-text data is per row (compared by :meth:`text_mismatches`)
        have nothing more to check."""
        ...

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        """At least the first ``width`` hashes of a tile (a wider stored version is fine)."""
        ...

    def tiles(self) -> Iterator[Tile]:
        """Every stored tile, ordered by level, index, width."""
        ...

    def add_checkpoint(self, size: int, note: str, partial: Sequence[Tile]) -> None:
        """Store a signed checkpoint and the partial tiles of its tree size."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest size, or None before the first one."""
        ...

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, by size."""
        ...

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint of tree size ``size``, or None."""
        ...

    def identity(self) -> str | None:
        """The verifier key (vkey) of the log this store belongs to, or None before
        ``glasslog init`` bound one (stores made by glasslog before 0.1.0 shipped)."""
        ...

    def bind_identity(self, vkey: str) -> str:
        """Record ``vkey`` as the store's log unless one is recorded; return the recorded one.

        Only ``glasslog init`` calls it (on PostgreSQL it needs the schema owner).
        It never replaces a recorded key: the caller compares the answer with its own.
        """
        ...

    # --- Key rotation (issue 14, part 1): the key history in append-only meta rows ---

    def vkey_records(self) -> list[str]:
        """Every recorded version of the log's key history (JSON), oldest first.

        Empty when the key never rotated. Each rotation or revocation appends the whole
        new history as one ``meta`` row, so no row is ever changed and every earlier
        version stays for ``glasslog.identity.vkey_history`` to check the newest against.
        """
        ...

    def add_vkey_record(self, number: int, history: str) -> None:
        """Append version ``number`` (1, 2, …) of the key history.

        Raises :class:`~glasslog.errors.ConflictError` when that version exists already:
        two rotations raced and only the first may win. On PostgreSQL ``meta`` is the
        schema owner's, so this needs the owner's DSN (as ``glasslog init`` does).
        """
        ...

    # --- Retention and legal holds (issue 14, part 2; docs/retention.md) ---

    def prune(self, leaves: Sequence[tuple[int, bytes]], *, by: int, at_us: int) -> int:
        """Remove the payloads of the events ``(seq, leaf hash)`` in one transaction.

        Each first gets its append-only ``pruned`` row (seq, id, time, leaf hash, ``by``:
        the authorising ``retention.prune`` event's seq, ``at_us``), then its row and
        derived rows (field index, full text, rollup counts) go. Seqs already pruned or
        absent are skipped. Returns how many were pruned. Hold the writer locks.
        """
        ...

    def pruned_leaves(self, start: int, end: int) -> list[tuple[int, bytes, int]]:
        """``(seq, leaf hash, by)`` of the pruned seqs with ``start <= seq < end``, by seq."""
        ...

    def pruned_record(
        self, *, seq: int | None = None, event_id: bytes | None = None
    ) -> Pruned | None:
        """The pruned record of an event by seq or by id, or None when it was not pruned."""
        ...

    def prune_candidates(self, before_us: int) -> list[int]:
        """The seqs of the stored events whose time is before ``before_us``, in order:
        what a retention run examines (read from the time index alone)."""
        ...

    def events_at(self, seqs: Sequence[int]) -> list[StoredEvent]:
        """The stored events among ``seqs`` (pruned or unknown ones left out), by seq."""
        ...

    def reclaim_space(
        self, locked: Callable[[], AbstractContextManager[object]], *, pause: float
    ) -> list[str]:
        """Give the space of pruned rows back (SQLite: full-text merge and incremental
        vacuum; PostgreSQL: drop emptied month partitions, vacuum the others); what was
        done, in words. Done in bounded steps, each under ``locked()`` (the writer locks),
        ``pause`` seconds apart, so that writers go on meanwhile."""
        ...

    def add_hold(self, hold: Hold) -> None:
        """Store a new legal hold; the id must be new."""
        ...

    def holds(self) -> list[Hold]:
        """Every hold, oldest first, with its release if released."""
        ...

    def release_hold(self, hold_id: str, *, time_us: int, by: str, reason: str) -> bool:
        """Record the hold's release; False when it was released already."""
        ...

    # --- Erasure of a data subject's personal fields (issue 14, part 3; docs/erasure.md) ---

    def erase(self, rewrites: Sequence[Rewrite]) -> None:
        """Rewrite event rows whose personal values are erased, in one transaction.

        Records each erased field in ``erasures`` first (the only thing that lets an
        event row change), then replaces body, commits and salts, and brings the full
        text and field index in line with the new body. Overwritten bytes are zeroed
        where the backend can (SQLite ``secure_delete``); :meth:`scrub` does the rest.
        """
        ...

    def erasures(self) -> list[Erasure]:
        """Every erased field, by seq and path."""
        ...

    def actor_events(self, actor_id: str, after: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` stored events whose actor id is ``actor_id`` and seq is above
        ``after``, by seq: a data subject's events, page by page."""
        ...

    def scrub(self, rewrites: Sequence[Rewrite]) -> list[str]:
        """After :meth:`erase` of ``rewrites``: make the erased values leave the store's
        files and indexes as far as the backend allows (SQLite: full-text merge, WAL
        truncated; PostgreSQL: vacuum of the partitions when the role may); what was
        done and what remains, in words."""
        ...

    def commitments(self, seqs: Sequence[int]) -> dict[int, tuple[str, bytes]]:
        """``seq → (commits, salts)`` for the given seqs, in one read (masking a page)."""
        ...

    def add_api_key(self, key: ApiKey) -> None:
        """Store a new API key (its hash); the id must be new."""
        ...

    def api_key(self, key_id: str) -> ApiKey | None:
        """The API key with that id, with its revocation time if revoked."""
        ...

    def api_keys(self) -> list[ApiKey]:
        """Every API key, oldest first."""
        ...

    def revoke_api_key(self, key_id: str, time_us: int) -> bool:
        """Record the key's revocation; False when it was revoked already."""
        ...

    def add_grant(self, grant: Grant) -> None:
        """Store a new break-glass grant; the id must be new."""
        ...

    def grants(self, principal: str | None = None) -> list[Grant]:
        """Every grant (or a principal's), oldest first, with revocation times."""
        ...

    def revoke_grant(self, grant_id: str, time_us: int) -> bool:
        """Record the grant's revocation; False when it was revoked already."""
        ...

    def lock_writer(self, *, wait: float = 30.0) -> AbstractContextManager[None]:
        """Be the only sequencer of this store while the context lasts (waits for one)."""
        ...

    def optimize(self, *, written: int | None = None) -> None:
        """Refresh the query planner's statistics after ``written`` events were appended
        in bulk; a store may skip it when that is a small part of what it holds. With
        None it always runs."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def no_event_at(seq: int, size: int) -> NotFoundError:
    """The error every backend raises for a missing seq (one wording for all of them)."""
    return NotFoundError(f"no event with seq {seq}; the log holds seq 0 to {size - 1}")


def pruned_error(record: Pruned) -> PrunedError:
    """The error every backend raises for a read of a pruned event: it says when."""
    at = datetime.fromtimestamp(record.at_us / 1_000_000, UTC)
    return PrunedError(record.seq, at.isoformat(timespec="seconds").replace("+00:00", "Z"))


def no_event_with_id() -> NotFoundError:
    """The error every backend raises for an unknown event id (the id is not echoed)."""
    return NotFoundError("no event with that id")


def tile_not_stored(level: int, index: int, width: int) -> NotFoundError:
    """The error every backend raises when no stored tile is wide enough."""
    return NotFoundError(f"tile {level}/{index} of width {width} is not stored")


def unsupported_version(where: str, found: int, expected: int, upgrade: str) -> StoreError:
    """The error every backend raises for a store of another schema version.

    ``upgrade`` says how this backend applies the missing migrations (for a store
    older than this glasslog); a newer store always means upgrading glasslog.
    """
    advice = "upgrade glasslog to a version that knows it" if found > expected else upgrade
    return StoreError(
        f"unsupported store schema version in {where}: expected {expected}, found {found}; {advice}"
    )


def event_of(stored: StoredEvent) -> dict[str, Any]:
    """The stored event as a dict (values in clear, as the log's owner sees it)."""
    event: dict[str, Any] = json.loads(stored.body)
    return event


def leaf_of(stored: StoredEvent) -> bytes:
    """Recompute the exact leaf bytes of a stored event (redactable leaves, docs/ledger.md)."""
    _, spans = decode_commits(stored.commits)
    return leaf_from_body(stored.body, spans, stored.salts)


def tile_entries(store: Store, level: int, index: int, width: int) -> bytes:
    """The first ``width`` hashes of tile ``level/index``, read or recomputed.

    Full tiles and the partial tiles of every checkpoint are stored. Anything else
    (the right edge after the last checkpoint) is recomputed: at level 0 from at
    most 255 events, above from the roots of full tiles one level down.
    """
    try:
        return store.read_tile(level, index, width)[: width * HASH_SIZE]
    except NotFoundError:
        pass
    if level == 0:
        first = index * TILE_WIDTH
        # A pruned event's leaf hash stays in its ``pruned`` row (retention).
        by_seq = {seq: h for seq, h, _ in store.pruned_leaves(first, first + width)}
        by_seq.update((e.seq, leaf_hash(leaf_of(e))) for e in store.events(first, first + width))
        hashes = [by_seq[seq] for seq in sorted(by_seq)]
        if len(hashes) != width:
            raise IntegrityError(
                f"events {first}..{first + width - 1} are incomplete: "
                f"found {len(hashes)} of {width}",
                seq=first + len(hashes),
            )
        return b"".join(hashes)
    below = []
    for j in range(width):
        full = tile_entries(store, level - 1, index * TILE_WIDTH + j, TILE_WIDTH)
        below.append(root_of([full[i : i + HASH_SIZE] for i in range(0, len(full), HASH_SIZE)]))
    return b"".join(below)


def restore_tree(store: Store) -> TreeBuilder:
    """Rebuild the writer's in-memory right edge for the store's current size."""
    size = store.size()
    partial = [
        Tile(level=level, index=index, width=width, hashes=tile_entries(store, level, index, width))
        for level, index, width in partial_widths(size)
    ]
    return TreeBuilder.restore(size, partial)


def node_reader_for(store: Store, size: int) -> NodeReader:
    """A Merkle node reader over the store's tiles for a tree of ``size`` leaves."""
    return node_reader(size, lambda level, index, width: tile_entries(store, level, index, width))
