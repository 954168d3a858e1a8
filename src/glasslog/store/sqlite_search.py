"""The SQLite executor: the field index and FTS5, under a progress-handler time budget.

Newest-first search has three shapes, after the plan's driver:

* field index: walk ``fields`` backwards on ``(key, value, time, seq)`` — already in
  result order — and check the rest of the query on each event;
* full text: stream FTS5 rowids (= seqs) from the newest, check each chunk, keep the
  best ``limit`` by time, and stop once ``seq_blocks`` proves that no older block
  holds a newer event than the worst one kept (events arrive roughly in time
  order, so this is usually after the first chunk; out-of-order events only make
  it read further, never give a wrong answer). A later page resumes the stream
  where the page before left it: its cursor carries the span of seqs already read
  whose matches were all shown, but for a few late ones it lists
  (:class:`~glasslog.store.search.After`), and the cursor's time leaves out the
  blocks of newer events, so page 200 reads about as much as page 1;
* otherwise the shared plain statement ordered by ``(time, seq)``, which SQLite
  serves from the composite indexes (:class:`~glasslog.store.search.Search`).
"""

from __future__ import annotations

import heapq
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from glasslog.errors import QueryError
from glasslog.query.plan import SQLITE, Compiled, FieldDriver, TextDriver
from glasslog.store.base import SEQ_BLOCK
from glasslog.store.search import (
    MAX_PENDING,
    After,
    Row,
    Search,
    SeqSpan,
    TextRead,
    timeout_error,
)

__all__ = ["Row", "SQLiteSearch"]

_PROBE = 2 * SEQ_BLOCK
"""The most time-index entries one stop check reads (see ``_no_better_beyond``)."""


class SQLiteSearch(Search):
    """Executes compiled queries on one SQLite connection."""

    dialect = SQLITE
    field_join = "CROSS JOIN"

    def __init__(self, conn: sqlite3.Connection, *, timeout: float = 5.0) -> None:
        super().__init__(timeout=timeout)
        self._conn = conn
        self._deadline = 0.0
        self.text_rows_read = 0
        """Full-text matches the last search read: what a deep page must not multiply."""

    @contextmanager
    def _budget(self) -> Iterator[None]:
        self._deadline = time.monotonic() + self.timeout
        self._conn.set_progress_handler(self._expired, 20_000)
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupt" in str(exc):
                raise timeout_error(self.timeout) from None
            raise QueryError(f"the database could not run this query: {exc}") from None
        finally:
            self._conn.set_progress_handler(None, 0)

    def _expired(self) -> int:
        return int(time.monotonic() > self._deadline)

    def _check_time(self) -> None:
        if self._expired():
            raise timeout_error(self.timeout)

    def _all(self, sql: str, params: list[object]) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    def _by_field(
        self,
        plan: Compiled,
        driver: FieldDriver,
        limit: int,
        ascending: bool,
        after: tuple[int, int] | None,
    ) -> list[Row]:
        marks, values = self._field_values(driver.values)
        bounds, bound_params = self._field_bounds(plan, ascending=ascending, after=after)
        where = (
            "f.key = (SELECT id FROM field_keys WHERE path = ?)"
            f" AND f.value IN ({marks}) AND ({plan.rest}){bounds}"
        )
        params: list[object] = [driver.path, *values, *plan.rest_params, *bound_params]
        order = "ASC" if ascending else "DESC"
        # CROSS JOIN pins the loop order: walk the field index, look events up by seq.
        # DISTINCT: an event holding both values ("3" and 3, in one array) is listed once.
        sql = (
            "SELECT DISTINCT e.seq, e.time, e.body FROM fields f CROSS JOIN events e"
            f" ON e.seq = f.seq WHERE {where} ORDER BY f.time {order}, f.seq {order} LIMIT ?"
        )
        return self._all(sql, [*params, limit])

    def _seq_window(self, plan: Compiled, ascending: bool, after: After | None) -> SeqSpan:
        """The seqs ``[low, high)`` that can hold matches within the time bounds.

        Past a cursor the bounds narrow to its time: a page deep into the past then
        leaves out the blocks of everything newer, including events that arrived
        after the first page. ``high`` never passes the events stored when the read
        starts, so a span read now cannot later gain an unread event.
        """
        time_low, time_high = plan.time_low, plan.time_high
        if after is not None and ascending:
            time_low = after.time if time_low is None else max(time_low, after.time)
        elif after is not None:
            # time <= after.time, as an exclusive bound that still fits in 64 bits.
            keyset_high = min(after.time + 1, 2**63 - 1)
            time_high = keyset_high if time_high is None else min(time_high, keyset_high)
        (last,) = self._conn.execute("SELECT max(seq) FROM events").fetchone()
        low_seq, high_seq = 0, 0 if last is None else int(last) + 1
        # ORDER BY … LIMIT 1, not min()/max(): the walk stops at the first block found.
        if time_low is not None:
            row = self._conn.execute(
                "SELECT block FROM seq_blocks WHERE max_time >= ? ORDER BY block LIMIT 1",
                (time_low,),
            ).fetchone()
            low_seq = high_seq if row is None else int(row[0]) * SEQ_BLOCK
        if time_high is not None:
            row = self._conn.execute(
                "SELECT block FROM seq_blocks WHERE min_time < ? ORDER BY block DESC LIMIT 1",
                (time_high,),
            ).fetchone()
            high_seq = 0 if row is None else min(high_seq, (int(row[0]) + 1) * SEQ_BLOCK)
        return low_seq, high_seq

    def _by_text(
        self,
        plan: Compiled,
        driver: TextDriver,
        limit: int,
        ascending: bool,
        after: After | None,
    ) -> tuple[list[Row], TextRead | None]:
        low_seq, high_seq = self._seq_window(plan, ascending, after)
        sign = -1 if ascending else 1
        # Keep the `limit` best candidates in a min-heap of rank keys: the worst on top.
        # Newest first ranks by (time, seq); oldest first by (-time, -seq).
        best: list[tuple[int, int]] = []
        # And the signed seqs of the matches dropped nearest the scan's start (a min-heap
        # of the largest): the next page's cursor must not skip them (see TextRead).
        dropped: list[int] = []
        # CROSS JOIN from the candidate list pins the plan to primary-key lookups; with a
        # plain `seq IN (...)` SQLite may prefer scanning an index of the other terms.
        check = (
            "SELECT e.seq, e.time FROM json_each(?) AS c CROSS JOIN events e ON e.seq = c.value"
            f" WHERE ({plan.rest})"
        )
        if after is not None:
            check += f" AND (e.time, e.seq) {'>' if ascending else '<'} (?, ?)"
        tail = list(after.keyset) if after is not None else []

        def take(ids: list[int]) -> None:
            self.text_rows_read += len(ids)
            for seq, t in self._all(check, [json.dumps(ids), *plan.rest_params, *tail]):
                key = (sign * t, sign * seq)
                if len(best) < limit:
                    heapq.heappush(best, key)
                    continue
                worst = heapq.heappushpop(best, key)  # the new one, or the one it displaced
                if len(dropped) <= MAX_PENDING:
                    heapq.heappush(dropped, worst[1])
                else:
                    heapq.heappushpop(dropped, worst[1])

        self.text_rows_read = 0
        skip = None if after is None else after.skip
        if after is not None and skip is not None and after.pending:
            # Matches the last page read and left for a later one: they sit inside the
            # skipped span, so they are checked first and directly.
            take(list(after.pending))
        reached = low_seq if ascending else high_seq
        chunks = self._text_chunks(driver.match, low_seq, high_seq, skip, ascending)
        for ids, reached in chunks:
            if ids:
                take(ids)
            if len(best) >= limit and self._no_better_beyond(reached, sign * best[0][0], ascending):
                break
        ranked = sorted(best, reverse=True)
        rows = self._bodies([(sign * t, sign * seq) for t, seq in ranked])
        read_span = (low_seq - 1, reached) if ascending else (reached - 1, high_seq)
        return rows, TextRead(read_span, [sign * d for d in dropped])

    def _text_chunks(
        self, match: str, low: int, high: int, skip: SeqSpan | None, ascending: bool
    ) -> Iterator[tuple[list[int], int]]:
        """Full-text matches in ``[low, high)`` outside ``skip``, in scan order, by chunks.

        With each chunk comes how far the read has got: every match from the start of
        the scan up to that seq (exclusive) has been yielded, the skipped span aside.
        Chunks start small, since one often suffices, and double.
        """
        spans = [(low, high)]
        if skip is not None:
            spans = [(low, min(high, skip[0] + 1)), (max(low, skip[1]), high)]
        if not ascending:
            spans.reverse()
        chunk = 256
        for span_low, span_high in spans:
            if span_low >= span_high:
                continue
            position = span_low - 1 if ascending else span_high
            while True:
                self._check_time()
                ids = self._fts_chunk(match, position, span_low, span_high, chunk, ascending)
                if len(ids) < chunk:  # the span is exhausted
                    yield ids, span_high if ascending else span_low
                    break
                position = ids[-1]
                yield ids, position + 1 if ascending else position
                chunk = min(chunk * 2, 8192)

    def _fts_chunk(
        self, match: str, position: int, low: int, high: int, chunk: int, ascending: bool
    ) -> list[int]:
        """The next ``chunk`` full-text matches in ``[low, high)`` past ``position``."""
        if ascending:
            sql = (
                "SELECT rowid FROM events_fts WHERE events_fts MATCH ?"
                " AND rowid > ? AND rowid < ? ORDER BY rowid ASC LIMIT ?"
            )
            return [r[0] for r in self._all(sql, [match, position, high, chunk])]
        sql = (
            "SELECT rowid FROM events_fts WHERE events_fts MATCH ?"
            " AND rowid < ? AND rowid >= ? ORDER BY rowid DESC LIMIT ?"
        )
        return [r[0] for r in self._all(sql, [match, position, low, chunk])]

    def _no_better_beyond(self, reached: int, worst_time: int, ascending: bool) -> bool:
        """Whether no event not yet read, past ``reached`` in scan order, can outrank
        the worst row kept, whose time is ``worst_time``.

        An event at that very time is taken to outrank it: a pending row kept may have
        a lower seq than an unread one. ``seq_blocks`` bounds the whole blocks past the
        one that ``reached`` is in. That block itself is partly read; its unread seqs
        are looked up in the time index between ``worst_time`` and the block's own
        bound — about a block's worth of index entries at most when events arrive in
        time order — so a read can stop in the middle of a block instead of reading
        on to its end. A larger range (a clock far off) is not searched: the read
        goes on instead.
        """
        if ascending:
            block = reached // SEQ_BLOCK
            beyond = "SELECT min(min_time) FROM seq_blocks WHERE block > ?"
            bound = "SELECT min_time FROM seq_blocks WHERE block = ?"
            unread = (reached, (block + 1) * SEQ_BLOCK)
        else:
            if reached <= 0:
                return True
            block = (reached - 1) // SEQ_BLOCK
            beyond = "SELECT max(max_time) FROM seq_blocks WHERE block < ?"
            bound = "SELECT max_time FROM seq_blocks WHERE block = ?"
            unread = (block * SEQ_BLOCK, reached)
        (far,) = self._conn.execute(beyond, (block,)).fetchone()
        if far is not None and (far <= worst_time if ascending else far >= worst_time):
            return False
        row = self._conn.execute(bound, (block,)).fetchone()
        if row is None or (row[0] > worst_time if ascending else row[0] < worst_time):
            return True
        low, high = (row[0], worst_time) if ascending else (worst_time, row[0])
        # The time index, pinned: a primary-key range would read whole event rows.
        found, seen = self._conn.execute(
            "SELECT max(seq >= ? AND seq < ?), count(*) FROM"
            " (SELECT seq FROM events INDEXED BY events_time WHERE time >= ? AND time <= ?"
            " LIMIT ?)",
            (*unread, low, high, _PROBE + 1),
        ).fetchone()
        return not found and seen <= _PROBE

    def _bodies(self, keys: list[tuple[int, int]]) -> list[Row]:
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        bodies = dict(
            self._all(f"SELECT seq, body FROM events WHERE seq IN ({marks})", [s for _, s in keys])
        )
        return [(seq, t, bodies[seq]) for t, seq in keys]
