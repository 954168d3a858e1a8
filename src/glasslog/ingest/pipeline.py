"""The ingest pipeline: validate → scrub secrets → commit fields → sequence → integrate → sign.

Two halves with different shapes:

* :class:`Preparer` is pure and per event — parse, validate, scrub, choose the
  committed fields, draw salts, encode the leaf and hash it. It holds no state
  beyond its configuration, so ``glasslog ingest`` runs it in worker processes
  and the two cores of a small machine both do useful work.
* :class:`Sequencer` is the single writer. It assigns dense seqs, appends the leaf
  hashes to the tree, writes events and completed tiles in one transaction per
  batch (one fsync: group commit) and signs checkpoints every N events or T
  seconds, and on demand.

Idempotency: an event id is its idempotency key. Sending an event again returns
its original seq and stores nothing; the same id with other content is refused.
The fast path assumes no duplicates and lets the database's unique index catch the
rare retry, so the common case costs no lookup at all.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from glasslog.datadir import DataDir, RecordedCheckpoint
from glasslog.derived import columns, field_values, search_text
from glasslog.errors import ConflictError, DuplicateIdError, EventError, Problem
from glasslog.event import DEFAULT_LIMITS, Limits, validate
from glasslog.identity import check_history, current_signer
from glasslog.ingest.lines import parse_line
from glasslog.ingest.scrub import DEFAULT_SCRUB, Scrubber, ScrubConfig
from glasslog.ledger.commit import (
    DEFAULT_SENSITIVE,
    SALT_BYTES,
    Path,
    committed_paths,
    encode_commits,
    encode_stored,
    is_erased,
)
from glasslog.ledger.merkle import leaf_hash
from glasslog.ledger.note import Checkpoint, Signer, sign_checkpoint
from glasslog.ledger.tiles import TreeBuilder
from glasslog.store.base import EventRow, Store, StoredCheckpoint, StoredEvent, restore_tree

_BODY = EventRow._fields.index("body") - 1  # rows are EventRow without the leading seq


@dataclass(frozen=True, slots=True)
class Settings:
    """Pipeline knobs; the defaults suit both the CLI and a server."""

    limits: Limits = DEFAULT_LIMITS
    sensitive: tuple[Path, ...] = DEFAULT_SENSITIVE
    checkpoint_every: int = 10_000
    """Sign a checkpoint once this many events are not yet covered by one."""
    checkpoint_interval: float = 1.0
    """…or once the oldest uncovered event has waited this many seconds."""
    batch_size: int = 10_000
    """Events per transaction (and per fsync) on bulk paths."""
    scrub: ScrubConfig = DEFAULT_SCRUB
    """Extra secret detectors and per-kind actions (``[scrub]`` in glasslog.toml)."""


class Prepared(NamedTuple):
    """One event ready to be sequenced: its row (without seq), leaf hash and identity.

    A NamedTuple rather than a dataclass because it crosses a process boundary for
    every event on the bulk path, and tuples pickle fastest.
    """

    id: bytes
    row: tuple[Any, ...]
    leaf_hash: bytes
    had_time: bool

    @property
    def body(self) -> str:
        """The canonical JSON that will be stored (the row's body column)."""
        body: str = self.row[_BODY]
        return body


class Preparer:
    """Turns raw events into rows ready to sequence. Pure; safe to run in many processes."""

    def __init__(
        self,
        *,
        fingerprint_key: bytes | None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._scrubber = Scrubber(fingerprint_key=fingerprint_key, config=self.settings.scrub)

    @property
    def scrubber(self) -> Scrubber:
        """The scrubber events go through; rejection messages quoting input go through
        it too (:func:`glasslog.ingest.lines.scrub_messages`)."""
        return self._scrubber

    def prepare(self, raw: object, *, now: datetime | None = None) -> Prepared:
        """Validate, scrub and commit one event; raise :class:`EventError` if it is invalid."""
        event = validate(raw, limits=self.settings.limits, now=now)
        findings = self._scrubber.scrub(event)
        flagged = [tuple(str(p) for p in f.path[:2]) for f in findings]
        paths = committed_paths(event, sensitive=self.settings.sensitive, flagged=flagged)
        salts = os.urandom(SALT_BYTES * len(paths))
        body, leaf, spans = encode_stored(event, paths, salts)
        row = (
            *columns(event),
            body,
            encode_commits(paths, spans),
            salts,
            search_text(event),
            field_values(event["metadata"]) if "metadata" in event else (),
        )
        had_time = isinstance(raw, dict) and raw.get("time") is not None
        return Prepared(row[0], row, leaf_hash(leaf), had_time)

    def prepare_lines(
        self, lines: Sequence[str | bytes], *, first_line: int = 1
    ) -> list[tuple[int, Prepared | list[str]]]:
        """Prepare JSON lines: ``(line_number, prepared)`` or ``(line_number, [problems])``."""
        now = datetime.now(UTC)
        out: list[tuple[int, Prepared | list[str]]] = []
        for number, line in enumerate(lines, first_line):
            try:
                # Not json.loads: duplicate keys and deep nesting are refused (lines.py).
                raw = parse_line(line, limits=self.settings.limits)
            except EventError as exc:
                out.append((number, [str(p) for p in exc.problems]))
                continue
            try:
                out.append((number, self.prepare(raw, now=now)))
            except EventError as exc:
                out.append((number, [str(p) for p in exc.problems]))
        return out


@dataclass(slots=True)
class Receipt:
    """What happened to one submitted event: its seq, or the problems that refused it."""

    seq: int | None = None
    duplicate: bool = False
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.seq is not None


class Sequencer:
    """The single writer of one log. Hold the data directory's writer lock while it lives."""

    def __init__(
        self,
        store: Store,
        signer: Signer,
        *,
        settings: Settings | None = None,
        datadir: DataDir | None = None,
        writer_lock: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        """``datadir``, when given, keeps the newest checkpoint signed here outside the
        store (``checkpoint.json``), and the history is checked against it before each
        signature; every writer the CLI or a server runs passes it.

        ``writer_lock`` (the data directory's :meth:`~glasslog.datadir.DataDir.writer_lock`)
        is taken while the tree is restored here and around each batch and each signature,
        with a catch-up when another process appended meanwhile: a server and the CLI then
        write to one SQLite store in turns, batch by batch, as writers on several hosts do
        on PostgreSQL. Without it the caller holds the lock for the sequencer's whole life."""
        # Before anything is written: a wrong key poisons the log. A key rotated away
        # meanwhile is replaced by the data directory's current one (current_signer).
        signer, self._keys = current_signer(store, signer, datadir)
        self.store = store
        self.settings = settings or Settings()
        self._signer = signer
        self._datadir = datadir
        self._writer_lock = writer_lock
        # Under the writer locks: another writer appending and signing between our reads
        # of the tree and of its checkpoints would look like deleted events ("TAMPERED"),
        # and a server restarting beside busy nodes would refuse to start.
        with self._locked():
            self._tree: TreeBuilder = restore_tree(store)
            # Refuse to write onto a history that no longer extends what was signed.
            # Read once, then counted as we sign: signing must not re-read every checkpoint.
            self._checkpoints = len(store.checkpoints())
            check_history(
                store, self._keys, self._tree, self._recorded(), where=self._where,
                count=self._checkpoints,
            )  # fmt: skip
            latest = store.latest_checkpoint()
        self._signed_size = 0 if latest is None else latest.size
        self._oldest_unsigned: float | None = (
            time.monotonic() if self._tree.size > self._signed_size else None
        )

    @property
    def size(self) -> int:
        return self._tree.size

    @property
    def _where(self) -> pathlib.Path | None:
        return None if self._datadir is None else self._datadir.path

    def _recorded(self) -> RecordedCheckpoint | None:
        return None if self._datadir is None else self._datadir.recorded_checkpoint()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the writer locks this sequencer takes turn by turn: ``writer_lock``, and
        the store's own on a shared store (PostgreSQL, several hosts); nothing when the
        caller holds them for the sequencer's whole life."""
        if self._writer_lock is None and not self.store.shared:
            yield
            return
        with (
            self._writer_lock() if self._writer_lock is not None else nullcontext(),
            self.store.lock_writer(),
        ):
            yield

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """Our turn to sequence: the locks (:meth:`_locked`), and catching up with what
        other writers appended meanwhile."""
        if self._writer_lock is None and not self.store.shared:
            yield
            return
        with self._locked():
            if self.store.size() != self._tree.size:
                self._tree = restore_tree(self.store)
                latest = self.store.latest_checkpoint()
                self._signed_size = 0 if latest is None else latest.size
                self._checkpoints = len(self.store.checkpoints())  # others signed too
            yield

    def commit(self, batch: Sequence[Prepared]) -> list[Receipt]:
        """Sequence and durably store ``batch``; one receipt per item, in order."""
        with self._turn():
            try:
                receipts = self._append(batch, known={})
            except DuplicateIdError:
                # A retry of something already stored: look the ids up, then write the rest.
                known = self.store.find_ids([p.id for p in batch])
                receipts = self._append(batch, known=known)
            self._maybe_checkpoint()
        return receipts

    def _append(
        self, batch: Sequence[Prepared], *, known: dict[bytes, StoredEvent]
    ) -> list[Receipt]:
        receipts: list[Receipt] = []
        rows: list[EventRow] = []
        leaves: list[bytes] = []
        in_batch: dict[bytes, EventRow] = {}
        seq = self._tree.size
        for item in batch:
            stored = known.get(item.id)
            if stored is None and (earlier := in_batch.get(item.id)) is not None:
                stored = StoredEvent(earlier.seq, earlier.body, earlier.commits, earlier.salts)
            if stored is not None:
                receipts.append(self._duplicate(item, stored))
                continue
            row = EventRow(seq, *item.row)
            in_batch[item.id] = row  # a StoredEvent only for the rare repeat in one batch
            rows.append(row)
            leaves.append(item.leaf_hash)
            receipts.append(Receipt(seq=seq))
            seq += 1
        if not rows:
            return receipts
        snapshot = (self._tree.size, self._tree.partial_tiles())
        tiles = self._tree.append(leaves)
        try:
            self.store.append(rows, tiles)
        except BaseException:
            self._tree = TreeBuilder.restore(*snapshot)
            raise
        if self._oldest_unsigned is None:
            self._oldest_unsigned = time.monotonic()
        return receipts

    def _duplicate(self, item: Prepared, stored: StoredEvent) -> Receipt:
        if not stored.body:
            # Pruned by retention: its content is gone, so it cannot be compared; the
            # id is taken, and the event is never stored twice.
            return Receipt(seq=stored.seq, duplicate=True)
        if _same_content(stored.body, item.body, compare_time=item.had_time):
            return Receipt(seq=stored.seq, duplicate=True)
        error = ConflictError(
            f"id {uuid.UUID(bytes=item.id)} is already stored (seq {stored.seq}) with different "
            "content; ids are idempotency keys, so give a new event a new id"
        )
        return Receipt(problems=(f"$.id: {error}",))

    def _maybe_checkpoint(self) -> None:
        pending = self._tree.size - self._signed_size
        if pending <= 0 or self._oldest_unsigned is None:
            return
        waited = time.monotonic() - self._oldest_unsigned
        if pending >= self.settings.checkpoint_every or waited >= self.settings.checkpoint_interval:
            self._checkpoint()

    def sign_if_due(self) -> None:
        """Sign now if events have waited ``checkpoint_interval`` seconds (a server's
        clock tick: between batches no commit would otherwise notice)."""
        if self._oldest_unsigned is None:
            return
        with self._turn():
            self._maybe_checkpoint()

    def checkpoint(self) -> StoredCheckpoint:
        """Sign and store a checkpoint for the current tree, unless one already covers it."""
        with self._turn():
            return self._checkpoint()

    def _checkpoint(self) -> StoredCheckpoint:
        latest = self.store.latest_checkpoint()
        if latest is not None and latest.size == self._tree.size:
            # Signed already (by another writer of a shared store): nothing waits now, or
            # every tick would take the writer lock again to find the same checkpoint.
            self._signed_size = latest.size
            self._oldest_unsigned = None
            return latest
        # Another writer of a shared store may have signed meanwhile: never add a
        # checkpoint under a key that is not the log's, nor over a rewritten history.
        # Reloads the key when `glasslog key rotate` handed the log to a new one meanwhile.
        self._signer, self._keys = current_signer(self.store, self._signer, self._datadir)
        check_history(self.store, self._keys, self._tree, self._recorded(), where=self._where)
        cp = Checkpoint(origin=self._signer.name, size=self._tree.size, root=self._tree.root())
        note = sign_checkpoint(cp, self._signer)
        self.store.add_checkpoint(cp.size, note, self._tree.partial_tiles())
        if self._datadir is not None:
            # After the store's commit: the file never names a checkpoint the store lacks.
            self._datadir.record_checkpoint(note, checkpoints=self._checkpoints + 1)
        self._checkpoints += 1
        self._signed_size = cp.size
        self._oldest_unsigned = None
        return StoredCheckpoint(cp.size, note)


def _same_content(stored_body: str, new_body: str, *, compare_time: bool) -> bool:
    """Equal apart from what the server sets: ``received`` (and ``time`` if it defaulted)."""
    a: dict[str, Any] = json.loads(stored_body)
    b: dict[str, Any] = json.loads(new_body)
    drop = ("received",) if compare_time else ("received", "time")
    for key in drop:
        a.pop(key, None)
        b.pop(key, None)
    _erase_alike(a, b)
    return a == b


def _erase_alike(stored: dict[str, Any], new: dict[str, Any]) -> None:
    """Erase in ``new`` what was erased in ``stored`` (docs/erasure.md).

    A client that re-sends an event after its subject's personal fields were erased is
    retrying, not sending other content: the erased values cannot be compared (that is
    the point of erasing them), so they count as the same.
    """
    for key, value in stored.items():
        if is_erased(value):
            if key in new:
                new[key] = value
        elif isinstance(value, dict) and isinstance(new.get(key), dict):
            _erase_alike(value, new[key])


def submit(sequencer: Sequencer, preparer: Preparer, events: Iterable[object]) -> list[Receipt]:
    """Prepare and commit events in-process (the SDK and server path): one batch, in order."""
    receipts: list[Receipt | None] = []
    batch: list[Prepared] = []
    slots: list[int] = []
    for raw in events:
        try:
            item = preparer.prepare(raw)
        except EventError as exc:
            receipts.append(Receipt(problems=tuple(str(p) for p in exc.problems)))
            continue
        slots.append(len(receipts))
        receipts.append(None)
        batch.append(item)
    for slot, receipt in zip(slots, sequencer.commit(batch), strict=True):
        receipts[slot] = receipt
    return [r for r in receipts if r is not None]


__all__ = ["Prepared", "Preparer", "Problem", "Receipt", "Sequencer", "Settings", "submit"]
