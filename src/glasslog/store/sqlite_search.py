"""Running compiled queries on the SQLite store: search pages, counts, histograms, traces.

The planner (:mod:`glasslog.query.plan`) says *what* matches; this module decides
*how* to read it fast and enforces the per-query time budget. Three shapes of
newest-first search, after the plan's driver:

* field index: walk ``fields`` backwards on ``(key, value, time, seq)`` — already in
  result order — and check the rest of the query on each event;
* full text: stream FTS5 rowids (= seqs) from the newest, check each chunk, keep the
  best ``limit`` by time, and stop once ``seq_blocks`` proves that no older block
  holds a newer event than the worst one kept (events arrive roughly in time
  order, so this is usually after the first chunk; out-of-order events only make
  it read further, never give a wrong answer);
* otherwise one statement ordered by ``(time, seq)``, which SQLite serves from the
  composite indexes.

Aggregations use the hourly ``rollups`` when the query constrains only time and the
grouping is a rolled-up column; the partial hours at the edges are counted exactly.
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
from glasslog.query.plan import COLUMNS, Compiled, FieldDriver, TextDriver, json_path
from glasslog.store.base import HOUR_US, ROLLUP_DIMS, SEQ_BLOCK

Row = tuple[int, int, str]
"""(seq, time µs, body)."""

BUCKETS_US = [
    s * 1_000_000
    for s in (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
]
MAX_BUCKETS = 100


class SQLiteSearch:
    """Executes compiled queries on one connection with a time budget per call."""

    def __init__(self, conn: sqlite3.Connection, *, timeout: float = 5.0) -> None:
        self._conn = conn
        self.timeout = timeout
        self._deadline = 0.0

    @contextmanager
    def _budget(self) -> Iterator[None]:
        self._deadline = time.monotonic() + self.timeout
        self._conn.set_progress_handler(self._expired, 20_000)
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupt" in str(exc):
                raise self._timeout_error() from None
            raise QueryError(f"the database could not run this query: {exc}") from None
        finally:
            self._conn.set_progress_handler(None, 0)

    def _expired(self) -> int:
        return int(time.monotonic() > self._deadline)

    def _check_time(self) -> None:
        if self._expired():
            raise self._timeout_error()

    def _timeout_error(self) -> QueryError:
        return QueryError(
            f"the query ran longer than its {self.timeout:g} s budget and was cancelled; "
            "narrow it (a time range such as after:-24h, a service) or raise --timeout"
        )

    def _all(self, sql: str, params: list[object]) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    # -- search ----------------------------------------------------------------------

    def search(
        self, plan: Compiled, *, limit: int, ascending: bool, after: tuple[int, int] | None
    ) -> list[Row]:
        """Up to ``limit`` matching events in (time, seq) order, after the keyset ``after``."""
        with self._budget():
            if isinstance(plan.driver, FieldDriver):
                return self._by_field(plan, plan.driver, limit, ascending, after)
            if isinstance(plan.driver, TextDriver):
                return self._by_text(plan, plan.driver, limit, ascending, after)
            return self._plain(plan, limit, ascending, after)

    def _plain(
        self, plan: Compiled, limit: int, ascending: bool, after: tuple[int, int] | None
    ) -> list[Row]:
        where, params = plan.where, list(plan.params)
        if after is not None:
            where += f" AND (e.time, e.seq) {'>' if ascending else '<'} (?, ?)"
            params += list(after)
        order = "ASC" if ascending else "DESC"
        sql = (
            f"SELECT e.seq, e.time, e.body FROM events e WHERE {where}"
            f" ORDER BY e.time {order}, e.seq {order} LIMIT ?"
        )
        return self._all(sql, [*params, limit])

    def _by_field(
        self,
        plan: Compiled,
        driver: FieldDriver,
        limit: int,
        ascending: bool,
        after: tuple[int, int] | None,
    ) -> list[Row]:
        marks = ", ".join("?" * len(driver.values))
        where = (
            "f.key = (SELECT id FROM field_keys WHERE path = ?)"
            f" AND f.value IN ({marks}) AND ({plan.rest})"
        )
        params: list[object] = [driver.path, *driver.values, *plan.rest_params]
        if plan.time_low is not None:
            where += " AND f.time >= ?"
            params.append(plan.time_low)
        if plan.time_high is not None:
            where += " AND f.time < ?"
            params.append(plan.time_high)
        if after is not None:
            where += f" AND (f.time, f.seq) {'>' if ascending else '<'} (?, ?)"
            params += list(after)
        order = "ASC" if ascending else "DESC"
        # CROSS JOIN pins the loop order: walk the field index, look events up by seq.
        # DISTINCT: an array holding the value twice must not list its event twice.
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

    # -- aggregations ----------------------------------------------------------------

    def count(self, plan: Compiled, *, cap: int) -> tuple[int, bool]:
        """(count, exact). Past ``cap`` matches the count is estimated from the time spread."""
        with self._budget():
            if plan.time_only:
                return self._rollup_total(plan), True
            (n,) = self._all(
                f"SELECT count(*) FROM (SELECT 1 FROM events e WHERE {plan.where} LIMIT ?)",
                [*plan.params, cap + 1],
            )[0]
            if n <= cap:
                return int(n), True
            # More than `cap`: the cap-th newest match is at time t_cap; assume matches
            # are spread evenly over the queried window and scale up.
            sql = (
                f"SELECT e.time FROM events e WHERE {plan.where}"
                " ORDER BY e.time DESC, e.seq DESC LIMIT 1 OFFSET ?"
            )
            t_cap = int(self._all(sql, [*plan.params, cap - 1])[0][0])
            low, high = self._window(plan)
            if high <= t_cap or low >= high:
                return cap, False
            return int(cap * (high - low) / (high - t_cap)), False

    def _window(self, plan: Compiled) -> tuple[int, int]:
        low, high = plan.time_low, plan.time_high
        # Two statements: SQLite answers a lone min() or max() from the index's ends,
        # but both in one statement make it scan the whole index.
        if low is None:
            low = int(self._conn.execute("SELECT min(time) FROM events").fetchone()[0] or 0)
        if high is None:
            high = int(self._conn.execute("SELECT max(time) FROM events").fetchone()[0] or 0) + 1
        return low, high

    def _rollup_total(self, plan: Compiled) -> int:
        return sum(n for _, n in self._rollup_groups(plan, "outcome"))

    def count_by(self, plan: Compiled, field: str, *, top: int) -> list[tuple[Any, int]]:
        """The ``top`` most frequent values of ``field`` among matches, with their counts."""
        with self._budget():
            column = COLUMNS.get(field)
            if plan.time_only and column in ROLLUP_DIMS:
                groups = self._rollup_groups(plan, column)
                return sorted(groups, key=lambda g: (-g[1], str(g[0])))[:top]
            if column is not None:
                expr, params = f"e.{column}", []
            elif field in ("time", "seq", "id", "received"):
                raise QueryError(
                    f"count by {field} would count every event separately; use histogram"
                )
            else:
                expr, params = "json_extract(e.body, ?)", [json_path(field)]
            sql = (
                f"SELECT {expr} AS v, count(*) AS n FROM events e WHERE {plan.where}"
                " GROUP BY v ORDER BY n DESC, v LIMIT ?"
            )
            return [(v, int(n)) for v, n in self._all(sql, [*params, *plan.params, top])]

    def _rollup_groups(self, plan: Compiled, column: str) -> list[tuple[Any, int]]:
        """Exact counts per value: whole hours from rollups, partial edge hours from events."""
        low, high = self._window(plan)
        first_full = -(-low // HOUR_US)  # first hour starting at or after low
        last_full = high // HOUR_US  # hours before this one end at or before high
        counts: dict[Any, int] = {}
        if first_full < last_full:
            for value, n in self._all(
                "SELECT value, sum(count) FROM rollups WHERE dim = ? AND hour >= ? AND hour < ?"
                " GROUP BY value",
                [column, first_full, last_full],
            ):
                counts[value] = counts.get(value, 0) + int(n)
            edges = [(low, first_full * HOUR_US), (last_full * HOUR_US, high)]
        else:
            edges = [(low, high)]
        for start, end in edges:
            if start >= end:
                continue
            for value, n in self._all(
                f"SELECT e.{column}, count(*) FROM events e WHERE e.time >= ? AND e.time < ?"
                f" GROUP BY e.{column}",
                [start, end],
            ):
                counts[value] = counts.get(value, 0) + int(n)
        return list(counts.items())

    def histogram(self, plan: Compiled) -> tuple[int, int, list[tuple[int, int]]]:
        """(bucket size µs, first bucket start µs, [(bucket start, count)]) over the window."""
        with self._budget():
            low, high = plan.time_low, plan.time_high
            if low is None or high is None:
                # Separate statements, so each can read one end of a time index.
                first, last = (
                    self._all(f"SELECT {f}(e.time) FROM events e WHERE {plan.where}", plan.params)
                    for f in ("min", "max")
                )
                if first[0][0] is None:
                    return BUCKETS_US[0], 0, []
                low = int(first[0][0]) if low is None else low
                high = int(last[0][0]) + 1 if high is None else high
            span = max(high - low, 1)
            size = next((b for b in BUCKETS_US if span / b <= MAX_BUCKETS), BUCKETS_US[-1])
            start = low - low % size
            sql = (
                f"SELECT (e.time - ?) / ? AS b, count(*) FROM events e WHERE {plan.where}"
                " AND e.time >= ? AND e.time < ? GROUP BY b ORDER BY b"
            )
            rows = self._all(sql, [start, size, *plan.params, low, high])
            return size, start, [(start + int(b) * size, int(n)) for b, n in rows]

    def trace(self, ident: str, *, limit: int) -> list[Row]:
        """Every event whose request_id or trace_id is ``ident``, oldest first."""
        with self._budget():
            return self._all(
                "SELECT seq, time, body FROM events WHERE request_id = ? OR trace_id = ?"
                " ORDER BY time, seq LIMIT ?",
                [ident, ident, limit],
            )
