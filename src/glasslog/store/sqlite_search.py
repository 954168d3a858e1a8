"""The SQLite executor: the field index and FTS5, under a progress-handler time budget.

Newest-first search has three shapes, after the plan's driver:

* field index: walk ``fields`` backwards on ``(key, value, time, seq)`` — already in
  result order — and check the rest of the query on each event;
* full text: stream FTS5 rowids (= seqs) from the newest, check each chunk, keep the
  best ``limit`` by time, and stop once ``seq_blocks`` proves that no older block
  holds a newer event than the worst one kept (events arrive roughly in time
  order, so this is usually after the first chunk; out-of-order events only make
  it read further, never give a wrong answer);
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
from glasslog.store.search import Row, Search, timeout_error

__all__ = ["Row", "SQLiteSearch"]


class SQLiteSearch(Search):
    """Executes compiled queries on one SQLite connection."""

    dialect = SQLITE
    field_join = "CROSS JOIN"

    def __init__(self, conn: sqlite3.Connection, *, timeout: float = 5.0) -> None:
        super().__init__(timeout=timeout)
        self._conn = conn
        self._deadline = 0.0

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

    def _seq_window(self, plan: Compiled) -> tuple[int, int]:
        """The seq range that can hold events inside the query's time bounds."""
        low_seq, high_seq = 0, 1 << 62
        if plan.time_low is not None:
            row = self._conn.execute(
                "SELECT min(block) FROM seq_blocks WHERE max_time >= ?", (plan.time_low,)
            ).fetchone()
            low_seq = high_seq if row[0] is None else int(row[0]) * SEQ_BLOCK
        if plan.time_high is not None:
            row = self._conn.execute(
                "SELECT max(block) FROM seq_blocks WHERE min_time < ?", (plan.time_high,)
            ).fetchone()
            high_seq = 0 if row[0] is None else (int(row[0]) + 1) * SEQ_BLOCK
        return low_seq, high_seq

    def _by_text(
        self,
        plan: Compiled,
        driver: TextDriver,
        limit: int,
        ascending: bool,
        after: tuple[int, int] | None,
    ) -> list[Row]:
        low_seq, high_seq = self._seq_window(plan)
        sign = -1 if ascending else 1
        # Keep the `limit` best candidates in a min-heap of rank keys: the worst on top.
        # Newest first ranks by (time, seq); oldest first by (-time, -seq).
        best: list[tuple[int, int]] = []
        # CROSS JOIN from the candidate list pins the plan to primary-key lookups; with a
        # plain `seq IN (...)` SQLite may prefer scanning an index of the other terms.
        check = (
            "SELECT e.seq, e.time FROM json_each(?) AS c CROSS JOIN events e ON e.seq = c.value"
            f" WHERE ({plan.rest})"
        )
        if after is not None:
            check += f" AND (e.time, e.seq) {'>' if ascending else '<'} (?, ?)"
        tail = list(after) if after is not None else []
        chunk = 256
        position = low_seq - 1 if ascending else high_seq
        while True:
            self._check_time()
            ids = self._fts_chunk(driver.match, position, low_seq, high_seq, chunk, ascending)
            if not ids:
                break
            position = ids[-1]
            candidates = json.dumps(ids)
            for seq, t in self._all(check, [candidates, *plan.rest_params, *tail]):
                key = (sign * t, sign * seq)
                if len(best) < limit:
                    heapq.heappush(best, key)
                elif key > best[0]:
                    heapq.heapreplace(best, key)
            if len(ids) < chunk:
                break
            if len(best) >= limit and self._no_better_beyond(
                position, sign * best[0][0], ascending
            ):
                break
            chunk = min(chunk * 2, 8192)
        ranked = sorted(best, reverse=True)
        return self._bodies([(sign * t, sign * seq) for t, seq in ranked])

    def _fts_chunk(
        self, match: str, position: int, low: int, high: int, chunk: int, ascending: bool
    ) -> list[int]:
        """The next ``chunk`` full-text matches past ``position`` in scan order."""
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

    def _no_better_beyond(self, position: int, worst_time: int, ascending: bool) -> bool:
        """Whether no event past ``position`` (in scan order) can outrank ``worst_time``."""
        block = position // SEQ_BLOCK
        if ascending:
            row = self._conn.execute(
                "SELECT min(min_time) FROM seq_blocks WHERE block >= ?", (block,)
            ).fetchone()
            return row[0] is None or int(row[0]) >= worst_time
        row = self._conn.execute(
            "SELECT max(max_time) FROM seq_blocks WHERE block <= ?", (block,)
        ).fetchone()
        return row[0] is None or int(row[0]) <= worst_time

    def _bodies(self, keys: list[tuple[int, int]]) -> list[Row]:
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        bodies = dict(
            self._all(f"SELECT seq, body FROM events WHERE seq IN ({marks})", [s for _, s in keys])
        )
        return [(seq, t, bodies[seq]) for t, seq in keys]
