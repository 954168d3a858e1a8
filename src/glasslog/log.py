"""Read access to one log: events, checkpoints and Merkle proofs (RFC 9162 §2.1).

The CLI (and later the server) are thin layers over this class: they parse input,
call one method and format what it returns.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from glasslog.datadir import DataDir
from glasslog.errors import ConfigError, GlasslogError, IntegrityError, NotFoundError, QueryError
from glasslog.identity import history_trusting
from glasslog.ledger import merkle
from glasslog.ledger.note import Checkpoint
from glasslog.ledger.vkeys import VkeyHistory
from glasslog.query.language import MAX_SEQ, Match, Node, Or, parse, resolve_field
from glasslog.query.match import matches
from glasslog.query.plan import compile_query
from glasslog.store import open_store, searcher_for
from glasslog.store.base import (
    Store,
    StoredCheckpoint,
    StoredEvent,
    event_of,
    leaf_of,
    node_reader_for,
)
from glasslog.store.search import MAX_PENDING, MISSING, After, Row

_log = logging.getLogger("glasslog")

__all__ = [
    "COUNT_CAP",
    "DEFAULT_TIMEOUT",
    "MAX_PAGE",
    "MISSING",
    "Count",
    "Histogram",
    "Log",
    "Page",
    "Timeline",
]

MAX_PAGE = 1000
"""The most events one page of results may hold, whatever the caller asks for."""

DEFAULT_TIMEOUT = 5.0
"""Seconds a query may run before it is cancelled (``--timeout``)."""

COUNT_CAP = 1_000_000
"""Counts are exact up to this many matches; past it they are estimates, marked as such."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of search results and the cursor for the next (None at the end)."""

    events: list[dict[str, Any]]
    cursor: str | None
    outside: tuple[int, ...] = ()
    """Seqs of rows the store returned that are not leaves of its tree (below seq 0):
    never shown, since ``verify`` does not cover them; it names them as tampering."""
    mismatched: tuple[int, ...] = ()
    """Seqs of rows the store returned whose signed body does not match the query:
    derived data (a column, the field index, full text) was changed to show them.
    Never shown; ``verify`` names the changed data as tampering."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """The events of one request or trace, oldest first; iterating gives the events."""

    events: list[dict[str, Any]]
    mismatched: tuple[int, ...] = ()
    """Seqs of rows the store returned whose signed body holds neither id (see
    :attr:`Page.mismatched`): never shown."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


@dataclass(frozen=True, slots=True)
class Count:
    """A count of matching events; ``exact`` is False when it is an estimate."""

    count: int
    exact: bool


@dataclass(frozen=True, slots=True)
class Histogram:
    """Event counts per time bucket."""

    bucket_seconds: float
    buckets: list[tuple[str, int]]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Log:
    """One log's data directory opened for reading."""

    def __init__(self, datadir: DataDir, store: Store, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.datadir = datadir
        self.store = store
        self._search = searcher_for(store, timeout=timeout)

    @classmethod
    def open(cls, data: Path, *, store: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Log:
        """Open the log of data directory ``data`` (keys), stored in ``store`` if given."""
        datadir = DataDir(data)
        datadir.require()
        return cls(datadir, open_store(datadir.store_spec(store)), timeout=timeout)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, key: str) -> StoredEvent:
        """An event by seq (a decimal number) or by id (a UUID)."""
        if key.isascii() and key.isdigit():
            digits = key.lstrip("0") or "0"
            # Length first: Python refuses int() of thousands of digits.
            if len(digits) > len(str(MAX_SEQ)) or int(digits) > MAX_SEQ:
                shown = digits if len(digits) <= 30 else f"{digits[:27]}..."
                raise NotFoundError(
                    f"no event with seq {shown}: a seq is at most {MAX_SEQ} (2**63-1)"
                )
            return self.store.get(int(digits))
        try:
            event_id = uuid.UUID(key)
        except ValueError:
            raise NotFoundError(
                f"{key!r} is neither a seq (a non-negative number) nor an event id (a UUID)"
            ) from None
        stored = self.store.get_by_id(event_id.bytes)
        found = _decode(stored.body)
        if found is None or found.get("id") != str(event_id):
            # The lookup went through derived data (the id column, event_keys).
            raise IntegrityError(
                f"the store's lookup by id returned seq {stored.seq}, whose signed body has "
                "another id: the id column was altered; run `glasslog verify`",
                seq=stored.seq,
            )
        return stored

    def get(self, key: str) -> dict[str, Any]:
        """The stored event with its seq, as the log's owner sees it."""
        stored = self.find(key)
        return {"seq": stored.seq, **event_of(stored)}

    def latest_checkpoint(self) -> StoredCheckpoint:
        latest = self.store.latest_checkpoint()
        if latest is None:
            raise NotFoundError("no checkpoint has been signed yet; ingest events first")
        return latest

    def _tree_size(self, size: int | None) -> int:
        """The tree size to prove against: the latest checkpoint's, or one asked for."""
        latest = self.latest_checkpoint().size
        if size is None:
            return latest
        if size < 0 or size > latest:
            raise ConfigError(
                f"tree size {size} is not covered by a signed checkpoint: choose a size "
                f"from 1 to {latest} (the latest checkpoint)"
            )
        return size

    def _root(self, size: int) -> bytes:
        root = merkle.root_from(size, node_reader_for(self.store, size))
        for stored in self.store.checkpoints():
            if stored.size == size:
                cp = self.key_history().verify_checkpoint(stored.note)
                if cp.root != root:
                    raise ConfigError(
                        f"the stored tree disagrees with the checkpoint at size {size}; "
                        "run `glasslog verify`"
                    )
        return root

    def inclusion(self, seq: int, *, size: int | None = None) -> dict[str, Any]:
        """An inclusion proof for ``seq`` in the tree of ``size`` (default: latest checkpoint)."""
        tree_size = self._tree_size(size)
        if not 0 <= seq < tree_size:
            raise self._not_in_tree(seq, tree_size, given=size is not None)
        leaf = leaf_of(self.store.get(seq))
        reader = node_reader_for(self.store, tree_size)
        proof = merkle.inclusion_proof(seq, tree_size, reader)
        return {
            "seq": seq,
            "tree_size": tree_size,
            "leaf": _b64(leaf),
            "leaf_hash": _b64(merkle.leaf_hash(leaf)),
            "proof": [_b64(h) for h in proof],
            "root": _b64(self._root(tree_size)),
        }

    def _not_in_tree(self, seq: int, tree_size: int, *, given: bool) -> GlasslogError:
        """Why ``seq`` has no inclusion proof in the tree of ``tree_size``, and what would do."""
        stored = self.store.size()
        if seq >= stored:
            held = f"seqs 0 to {stored - 1}" if stored else "no events yet"
            return NotFoundError(f"no event with seq {seq}: the log holds {held}")
        latest = self.latest_checkpoint().size
        if seq < latest:  # only a --size below the event's can be the problem
            return ConfigError(
                f"seq {seq} is not in the tree of size {tree_size}: give a --size from "
                f"{seq + 1} to {latest} (the latest checkpoint), or leave --size out"
            )
        # Stored but not signed yet: an ingest was interrupted, or is still running.
        return ConfigError(
            f"seq {seq} is stored but not yet covered by a signed checkpoint (the latest "
            f"covers seqs 0 to {latest - 1}); every `glasslog ingest` signs one when it "
            "ends, so wait for a running ingest to finish, or run `glasslog ingest /dev/null`"
        )

    def consistency(self, size1: int, size2: int) -> dict[str, Any]:
        """A consistency proof between two tree sizes, both covered by a checkpoint."""
        self._tree_size(size2)
        if not 0 < size1 <= size2:
            raise ConfigError(
                f"a consistency proof needs 0 < OLD <= NEW; got OLD={size1}, NEW={size2}"
            )
        reader = node_reader_for(self.store, size2)
        proof = merkle.consistency_proof(size1, size2, reader)
        return {
            "size1": size1,
            "size2": size2,
            "root1": _b64(self._root(size1)),
            "root2": _b64(self._root(size2)),
            "proof": [_b64(h) for h in proof],
        }

    def verify_checkpoint_note(self, note: str) -> Checkpoint:
        """Open ``note`` with the key whose era covers its size (key rotation)."""
        return self.key_history().verify_checkpoint(note)

    def key_history(self) -> VkeyHistory:
        """The log's key history, shown to hold the data directory's key (key rotation)."""
        return history_trusting(self.store, self.datadir.vkey())

    # -- queries (docs/query.md) ---------------------------------------------------

    def _recheck(self, node: Node, rows: list[Row]) -> tuple[list[dict[str, Any]], list[int]]:
        """The events of ``rows`` whose body matches ``node``, and the seqs of the others.

        The store chose the rows from derived data that ``verify`` checks only when
        it runs; the body is what the tree covers. A body that is not a JSON object
        matches nothing (``verify`` fails on it too).
        """
        kept: list[dict[str, Any]] = []
        mismatched: list[int] = []
        dialect = self._search.dialect
        for seq, _, body in rows:
            event = _decode(body)
            if event is None or not matches(node, event, seq=seq, dialect=dialect):
                mismatched.append(seq)
            else:
                kept.append({"seq": seq, **event})
        return kept, mismatched

    def search(
        self,
        query: str,
        *,
        limit: int = 50,
        sort: str = "-time",
        cursor: str | None = None,
        now: datetime | None = None,
        unsafe_trust_indexes: bool = False,
    ) -> Page:
        """One page of matching events, newest first (``sort="time"``: oldest first).

        Pages are keyset-paginated on (time, seq): following the cursor never repeats
        or skips an event that existed when the first page was read, however many
        are ingested meanwhile. A full-text cursor also carries the span of seqs
        already read, so a deep page costs about as much as the first.

        Every row is rechecked against its signed body, and those that do not match
        are left out and listed in :attr:`Page.mismatched`; the cursor still moves
        past them, so a page may hold fewer than ``limit`` events before the end.
        ``unsafe_trust_indexes=True`` skips the recheck and logs a warning: it exists
        to measure what the recheck costs (bench/query.py), never to show results.
        """
        node = parse(query, now=now or datetime.now(UTC))
        return self.search_node(
            node,
            bind=query,
            limit=limit,
            sort=sort,
            cursor=cursor,
            unsafe_trust_indexes=unsafe_trust_indexes,
        )

    def search_node(
        self,
        node: Node,
        *,
        bind: str,
        limit: int = 50,
        sort: str = "-time",
        cursor: str | None = None,
        unsafe_trust_indexes: bool = False,
    ) -> Page:
        """:meth:`search` of a parsed query; cursors are bound to ``bind`` (the query's
        text, and for a principal its identity: one reader's cursor is refused to another).
        """
        if sort not in ("-time", "time"):
            raise ConfigError(
                f"sort must be 'time' (oldest first) or '-time' (newest first), not {sort!r}"
            )
        if not 1 <= limit <= MAX_PAGE:
            raise ConfigError(f"a page holds 1 to {MAX_PAGE} events; got {limit}")
        query = bind
        plan = compile_query(node, dialect=self._search.dialect)
        after = _decode_cursor(cursor, query, sort) if cursor else None
        rows, end = self._search.page(plan, size=limit, ascending=sort == "time", after=after)
        next_cursor = _encode_cursor(end, query, sort) if end is not None else None
        outside = tuple(row[0] for row in rows if row[0] < 0)
        inside = [row for row in rows if row[0] >= 0]
        if unsafe_trust_indexes:
            _log.warning("search results not rechecked against their bodies (unsafe)")
            return Page([_event(row) for row in inside], next_cursor, outside)
        events, mismatched = self._recheck(node, inside)
        return Page(events, next_cursor, outside, tuple(mismatched))

    def count(self, query: str, *, now: datetime | None = None, cap: int = COUNT_CAP) -> Count:
        """How many events match (exact up to ``cap``, then an estimate)."""
        return self.count_node(parse(query, now=now or datetime.now(UTC)), cap=cap)

    def count_node(self, node: Node, *, cap: int = COUNT_CAP) -> Count:
        """:meth:`count` of a parsed query."""
        n, exact = self._search.count(compile_query(node, dialect=self._search.dialect), cap=cap)
        return Count(n, exact)

    def count_by(
        self, query: str, field: str, *, top: int = 10, now: datetime | None = None
    ) -> list[tuple[Any, int]]:
        """The ``top`` most frequent values of ``field`` among the matches.

        Events that lack the field count under the value :data:`MISSING`; an explicit
        JSON ``null`` is the value ``None``.
        """
        return self.count_by_node(parse(query, now=now or datetime.now(UTC)), field, top=top)

    def count_by_node(self, node: Node, field: str, *, top: int = 10) -> list[tuple[Any, int]]:
        """:meth:`count_by` of a parsed query."""
        path = resolve_field(field)
        plan = compile_query(node, dialect=self._search.dialect)
        return self._search.count_by(plan, path, top=top)

    def histogram(
        self, query: str, *, now: datetime | None = None, bucket: timedelta | None = None
    ) -> Histogram:
        """Matches per time bucket; the bucket size adapts to the window (≤ 100 buckets)
        unless ``bucket`` fixes it."""
        return self.histogram_node(parse(query, now=now or datetime.now(UTC)), bucket=bucket)

    def histogram_node(self, node: Node, *, bucket: timedelta | None = None) -> Histogram:
        """:meth:`histogram` of a parsed query."""
        plan = compile_query(node, dialect=self._search.dialect)
        size_us = None if bucket is None else bucket // timedelta(microseconds=1)
        if size_us is not None and size_us < 1_000_000:
            raise QueryError("a histogram bucket is at least one second")
        size, _, buckets = self._search.histogram(plan, bucket=size_us)
        return Histogram(
            bucket_seconds=size / 1e6,
            buckets=[(_format_us(start), n) for start, n in buckets],
        )

    def follow(
        self, query: str, start: int, end: int, *, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The events with seq in [start, end) that match ``query``, in seq order, each
        with its seq: one step of the owner's live tail (``glasslog tail``)."""
        node = parse(query, now=now or datetime.now(UTC))
        found: list[dict[str, Any]] = []
        for stored in self.store.events(start, end):
            event = _decode(stored.body)
            if event is not None and matches(node, event, seq=stored.seq):
                found.append({"seq": stored.seq, **event})
        return found

    def trace(self, ident: str, *, limit: int = 10_000) -> Timeline:
        """Every event sharing a request id or trace id, oldest first.

        The store finds them by its request and trace columns; each body is rechecked
        for the id, as search results are (:attr:`Timeline.mismatched`).
        """
        node = Or((
            Match("context.request_id", ident, wildcard=False),
            Match("context.trace_id", ident, wildcard=False),
        ))  # fmt: skip
        events, mismatched = self._recheck(node, self._search.trace(ident, limit=limit))
        return Timeline(events, tuple(mismatched))


def _decode(body: str) -> dict[str, Any] | None:
    """A stored body as an event, or None when it is not a JSON object."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _event(row: Row) -> dict[str, Any]:
    seq, _, body = row
    event: dict[str, Any] = json.loads(body)
    return {"seq": seq, **event}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _format_us(us: int) -> str:
    # timedelta, not a float of seconds (which loses the µs centuries from 1970), and
    # isoformat, not strftime (whose %Y drops the leading zeros of the year 1).
    moment = _EPOCH + timedelta(microseconds=us)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _fingerprint(query: str, sort: str) -> str:
    return hashlib.sha256(f"{sort}\0{query}".encode()).hexdigest()[:12]


def _encode_cursor(after: After, query: str, sort: str) -> str:
    """``[1, fingerprint, time, seq]``, then the skip span's ends and its pending seqs."""
    fields: list[object] = [1, _fingerprint(query, sort), after.time, after.seq]
    if after.skip is not None:
        fields += [*after.skip, *after.pending]
    raw = json.dumps(fields, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, query: str, sort: str) -> After:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, fingerprint, time_us, seq, *skip = json.loads(raw)
        if version != 1 or type(time_us) is not int or type(seq) is not int:
            raise ValueError
        if not (-MAX_SEQ - 1 <= time_us <= MAX_SEQ and 0 <= seq <= MAX_SEQ):
            raise ValueError  # would overflow the database's 64-bit integers
        if skip and not _valid_skip(skip):
            raise ValueError
    except (ValueError, TypeError):
        raise ConfigError("the cursor is not one glasslog issued; start again without it") from None
    if fingerprint != _fingerprint(query, sort):
        raise ConfigError("the cursor belongs to another query or sort order; repeat that query")
    if not skip:
        return After(time_us, seq)
    return After(time_us, seq, (skip[0], skip[1]), tuple(skip[2:]))


def _valid_skip(fields: list[object]) -> bool:
    """Whether ``fields`` is a skip span's two ends, then pending seqs inside it."""
    numbers = [f for f in fields if isinstance(f, int) and not isinstance(f, bool)]
    if len(numbers) != len(fields) or not 2 <= len(numbers) <= 2 + MAX_PENDING:
        return False
    low, high, *pending = numbers
    return -1 <= low < high <= MAX_SEQ and all(low < p < high for p in pending)
