"""Running compiled queries: search pages, counts, histograms and traces, on any backend.

The planner (:mod:`glasslog.query.plan`) says *what* matches; an executor decides
*how* to read it fast and enforces the per-query time budget. :class:`Search`
holds what both backends share — the plain newest-first search, counts and their
estimates, aggregations over the hourly ``rollups``, histograms and traces, all
written once with ``?`` placeholders — and each backend adds its own way through
the field index and full text (:mod:`.sqlite_search`, :mod:`.postgres_search`).

Aggregations use the hourly ``rollups`` when the query constrains only time and the
grouping is a rolled-up column; the partial hours at the edges are counted exactly.
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

from glasslog.errors import QueryError
from glasslog.query.plan import COLUMNS, Compiled, Dialect, FieldDriver, TextDriver
from glasslog.store.base import HOUR_US, ROLLUP_DIMS

Row = tuple[int, int, str]
"""(seq, time µs, body)."""

SeqSpan = tuple[int, int]
"""An open interval of seqs ``(low, high)``: the seqs strictly between the two."""

MAX_PENDING = 32
"""The most late matches a cursor lists inside its skip span (see :class:`After`)."""


@dataclass(frozen=True, slots=True)
class After:
    """Where a page ended: the next page starts strictly past ``(time, seq)``.

    ``skip``, when set, is a span of seqs already read whose matches, but for the
    seqs in ``pending``, all come before that event in the result order: they were
    on this page or an earlier one. A full-text read jumps over the span and checks
    the pending seqs directly, instead of reading those matches again only to
    discard them, which made page 200 cost 200 first pages. ``pending`` holds the
    events that arrived late (an older time at a higher seq) and wait for a later
    page. Both are hints for speed: the keyset alone decides what is returned.
    """

    time: int
    seq: int
    skip: SeqSpan | None = None
    pending: tuple[int, ...] = ()

    @property
    def keyset(self) -> tuple[int, int]:
        return self.time, self.seq


@dataclass(frozen=True, slots=True)
class TextRead:
    """What a full-text read went through, for the next page's :class:`After`.

    Every match past ``after`` with a seq in ``span`` was read: it is among the rows
    returned, or was dropped for ranking lower. ``dropped`` holds the
    :data:`MAX_PENDING` + 1 dropped seqs nearest the scan's start (the highest
    newest first, the lowest oldest first).
    """

    span: SeqSpan
    dropped: list[int]


BUCKETS_US = [
    s * 1_000_000
    for s in (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
]
MAX_BUCKETS = 100
MAX_FIXED_BUCKETS: Final = 10_000
"""Buckets a histogram with a bucket size given by the reader may have."""
WEEK_US: Final = 7 * 86400 * 1_000_000
MIN_TIME_US: Final = -62_135_596_800_000_000
"""0001-01-01T00:00:00Z in µs since the epoch: the earliest time an event can have."""


class Missing(enum.Enum):
    """The type of :data:`MISSING` (an enum, so that it is one typed singleton)."""

    MISSING = "missing"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing.MISSING
"""The group, in ``count_by``, of events that lack the field (JSON ``null`` is ``None``)."""


def bucket_size(low: int, high: int) -> int:
    """The histogram bucket (µs) for the window [low, high): at most MAX_BUCKETS buckets.

    The smallest of :data:`BUCKETS_US` that fits, counting the bucket that the aligned
    start adds; past 100 weeks, a whole number of weeks.
    """

    def fits(size: int) -> bool:
        return -(-(high - bucket_start(low, size)) // size) <= MAX_BUCKETS

    for size in BUCKETS_US:
        if fits(size):
            return size
    # The aligned start adds up to one bucket: the span over 99 buckets always fits.
    weeks = -(-max(high - low, 1) // (MAX_BUCKETS * WEEK_US))
    while not fits(weeks * WEEK_US):
        weeks += 1
    return weeks * WEEK_US


def _after_cut(
    read: TextRead | None, shown: list[Row], beyond: list[Row], ascending: bool
) -> After:
    """The next page's start after ``shown``: its keyset, and what it may skip.

    The matches of ``read.span`` not shown are the dropped ones and ``beyond``.
    Those that rank after every shown row yet sit among their seqs arrived late:
    up to MAX_PENDING of them stay in the span as pending. The span's far end (in
    scan order) then moves past the other ones, so the next read resumes there.
    """
    seq, time_us, _ = shown[-1]
    if read is None:
        return After(time_us, seq)
    # In scan order the read goes down from the span's high end: negate for oldest first.
    sign = -1 if ascending else 1
    low, high = sorted((sign * read.span[0], sign * read.span[1]))
    unshown = {sign * s for s in [*read.dropped, *(r[0] for r in beyond)]}
    unshown = {s for s in unshown if low < s < high}
    furthest_shown = min(sign * r[0] for r in shown)  # along the scan
    late = sorted((s for s in unshown if s > furthest_shown), reverse=True)[:MAX_PENDING]
    low = max([low, *(unshown - set(late))])
    if high - low <= 1:
        return After(time_us, seq)
    skip = (low, high) if sign == 1 else (-high, -low)
    return After(time_us, seq, skip, tuple(sorted(sign * s for s in late)))


def bucket_start(low: int, size: int) -> int:
    """Where the first bucket starts: ``low`` rounded down to a multiple of ``size``.

    Not before 0001-01-01 (where times start), so that a window from the year 1 has a
    first bucket that can be written as a date.
    """
    start = low - low % size
    return start if start >= MIN_TIME_US else low


def timeout_error(timeout: float) -> QueryError:
    """The one message for a query cancelled at its time budget, whatever the backend."""
    return QueryError(
        f"the query ran longer than its {timeout:g} s budget and was cancelled; "
        "narrow it (a time range such as after:-24h, a service) or raise --timeout"
    )


class Search(ABC):
    """Executes compiled queries with a time budget per call. Subclass per backend."""

    dialect: Dialect

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.timeout = timeout

    # -- what each backend provides --------------------------------------------------

    @abstractmethod
    def _budget(self) -> AbstractContextManager[None]:
        """Run the calls inside under the time budget; map database errors to QueryError."""

    @abstractmethod
    def _all(self, sql: str, params: list[object]) -> list[Any]:
        """All rows of ``sql`` (``?`` placeholders) with ``params``."""

    @abstractmethod
    def _by_field(
        self,
        plan: Compiled,
        driver: FieldDriver,
        limit: int,
        ascending: bool,
        after: tuple[int, int] | None,
    ) -> list[Row]:
        """Newest (or oldest) first through the field index."""

    @abstractmethod
    def _by_text(
        self,
        plan: Compiled,
        driver: TextDriver,
        limit: int,
        ascending: bool,
        after: After | None,
    ) -> tuple[list[Row], TextRead | None]:
        """Newest (or oldest) first through the full-text index.

        Also what the read went through, if the backend tracks it (see :meth:`page`).
        """

    # -- search ----------------------------------------------------------------------

    def search(
        self, plan: Compiled, *, limit: int, ascending: bool, after: tuple[int, int] | None
    ) -> list[Row]:
        """Up to ``limit`` matching events in (time, seq) order, after the keyset ``after``."""
        with self._budget():
            rows, _ = self._find(plan, limit, ascending, None if after is None else After(*after))
        return rows

    def page(
        self, plan: Compiled, *, size: int, ascending: bool, after: After | None
    ) -> tuple[list[Row], After | None]:
        """Up to ``size`` matches past ``after``, and where the next page starts (None: the end)."""
        with self._budget():
            rows, read = self._find(plan, size + 1, ascending, after)
        if len(rows) <= size:
            return rows, None
        return rows[:size], _after_cut(read, rows[:size], rows[size:], ascending)

    def _find(
        self, plan: Compiled, limit: int, ascending: bool, after: After | None
    ) -> tuple[list[Row], TextRead | None]:
        keyset = None if after is None else after.keyset
        if isinstance(plan.driver, FieldDriver):
            return self._by_field(plan, plan.driver, limit, ascending, keyset), None
        if isinstance(plan.driver, TextDriver):
            return self._by_text(plan, plan.driver, limit, ascending, after)
        return self._plain(plan, limit, ascending, keyset), None

    time_bound_in_keyset = False
    """Whether to repeat the keyset's time as a plain bound (see :meth:`_keyset`)."""

    def _keyset(
        self, column: str, ascending: bool, after: tuple[int, int]
    ) -> tuple[str, list[object]]:
        """``(time, seq)`` past ``after``.

        PostgreSQL can start an index range only at a plain bound, so it also gets
        ``time <= t``; given that bound SQLite prefers the time index over
        ``(service, time)`` and a page 50 deep takes 6 ms instead of 0.5 ms.
        """
        op = ">" if ascending else "<"
        time_us, seq = after
        row = f" AND ({column}.time, {column}.seq) {op} (?, ?)"
        if not self.time_bound_in_keyset:
            return row, [time_us, seq]
        return f" AND {column}.time {op}= ?{row}", [time_us, time_us, seq]

    def _plain(
        self, plan: Compiled, limit: int, ascending: bool, after: tuple[int, int] | None
    ) -> list[Row]:
        where, params = plan.where, list(plan.params)
        if after is not None:
            extra, extra_params = self._keyset("e", ascending, after)
            where += extra
            params += extra_params
        order = "ASC" if ascending else "DESC"
        sql = (
            f"SELECT e.seq, e.time, e.body FROM events e WHERE {where}"
            f" ORDER BY e.time {order}, e.seq {order} LIMIT ?"
        )
        return self._all(sql, [*params, limit])

    # -- aggregations ----------------------------------------------------------------
    field_join = "JOIN"
    """How the field index joins to events (SQLite pins the loop order with CROSS JOIN)."""

    def _field_values(self, values: tuple[object, ...]) -> tuple[str, list[object]]:
        """Placeholders and parameters for ``fields.value IN (…)``."""
        return ", ".join("?" * len(values)), list(values)

    def _field_bounds(
        self, plan: Compiled, *, ascending: bool, after: tuple[int, int] | None
    ) -> tuple[str, list[object]]:
        """The query's time bounds, and the keyset ``after``, on field-index rows ``f``."""
        where, params = "", list[object]()
        if plan.time_low is not None:
            where += " AND f.time >= ?"
            params.append(plan.time_low)
        if plan.time_high is not None:
            where += " AND f.time < ?"
            params.append(plan.time_high)
        if after is not None:
            extra, extra_params = self._keyset("f", ascending, after)
            where += extra
            params += extra_params
        return where, params

    def _matches(self, plan: Compiled) -> tuple[str, list[object]]:
        """A statement listing ``(seq, time)`` of every match, once each.

        With a metadata equality in the query it reads the field index — all of it
        when that is the whole query (an index-only count), joined to the events
        otherwise — instead of testing every event's JSON.
        """
        driver = plan.driver
        if not isinstance(driver, FieldDriver):
            return f"SELECT e.seq AS seq, e.time AS time FROM events e WHERE {plan.where}", list(
                plan.params
            )
        marks, values = self._field_values(driver.values)
        bounds, bound_params = self._field_bounds(plan, ascending=False, after=None)
        where = (
            f"f.key = (SELECT id FROM field_keys WHERE path = ?) AND f.value IN ({marks}){bounds}"
        )
        params: list[object] = [driver.path, *values, *bound_params]
        source = "fields f"
        if not plan.rest_time_only:  # time alone is said by the f.time bounds above
            source += f" {self.field_join} events e ON e.seq = f.seq AND e.time = f.time"
            where += f" AND ({plan.rest})"
            params += plan.rest_params
        # An event is indexed once per value, so only two values ("3" and 3, both in
        # one array) can list it twice.
        distinct = "DISTINCT " if len(driver.values) > 1 else ""
        return f"SELECT {distinct}f.seq AS seq, f.time AS time FROM {source} WHERE {where}", params

    def count(self, plan: Compiled, *, cap: int) -> tuple[int, bool]:
        """(count, exact). Past ``cap`` matches the count is estimated from the time spread."""
        with self._budget():
            if plan.time_only:
                return self._rollup_total(plan), True
            matches, params = self._matches(plan)
            (n,) = self._all(f"SELECT count(*) FROM ({matches} LIMIT ?) s", [*params, cap + 1])[0]
            if n <= cap:
                return int(n), True
            # More than `cap`: the cap-th newest match is at time t_cap; assume matches
            # are spread evenly over the queried window and scale up.
            sql = (
                f"SELECT m.time FROM ({matches}) m"
                " ORDER BY m.time DESC, m.seq DESC LIMIT 1 OFFSET ?"
            )
            t_cap = int(self._all(sql, [*params, cap - 1])[0][0])
            low, high = self._window(plan)
            if high <= t_cap or low >= high:
                return cap, False
            return int(cap * (high - low) / (high - t_cap)), False

    def _window(self, plan: Compiled) -> tuple[int, int]:
        low, high = plan.time_low, plan.time_high
        # Two statements: SQLite answers a lone min() or max() from the index's ends,
        # but both in one statement make it scan the whole index.
        if low is None:
            low = int(self._all("SELECT min(time) FROM events", [])[0][0] or 0)
        if high is None:
            high = int(self._all("SELECT max(time) FROM events", [])[0][0] or 0) + 1
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
            params: list[object] = []

            def bind(value: object) -> str:
                params.append(value)
                return "?"

            if column is not None:
                expr, decode = f"e.{column}", False
            elif field in ("time", "seq", "id", "received"):
                raise QueryError(
                    f"count by {field} would count every event separately; use histogram"
                )
            else:
                expr, decode = self.dialect.json_text(bind, field), True
            # Ties in code-point order, absent values first: the same order on every backend.
            sql = (
                f"SELECT v, n FROM (SELECT {expr} AS v, count(*) AS n FROM events e"
                f" WHERE {plan.where} GROUP BY 1) g"
                f" ORDER BY n DESC, v{self.dialect.binary} NULLS FIRST LIMIT ?"
            )
            rows = self._all(sql, [*params, *plan.params, top])
            if decode:
                return [(MISSING if v is None else json.loads(v), int(n)) for v, n in rows]
            return [(MISSING if v is None else v, int(n)) for v, n in rows]

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

    def histogram(
        self, plan: Compiled, *, bucket: int | None = None
    ) -> tuple[int, int, list[tuple[int, int]]]:
        """(bucket size µs, first bucket start µs, [(bucket start, count)]) over the window.

        Every bucket from the window's start to its end is listed, empty ones with a
        count of 0: a gap in activity is an answer too. The window is the query's time
        bounds, or the first and last match where the query has none. ``bucket`` (µs)
        fixes the bucket size, which otherwise adapts to the window (≤ 100 buckets);
        a fixed size may give at most :data:`MAX_FIXED_BUCKETS`.
        """
        with self._budget():
            # The matches' times: from the field index for a metadata equality.
            source, params, where = "events e", list(plan.params), plan.where
            if isinstance(plan.driver, FieldDriver):
                matches, params = self._matches(plan)
                source, where = f"({matches}) e", self.dialect.true
            low, high = plan.time_low, plan.time_high
            if low is None or high is None:
                # Separate statements, so each can read one end of a time index.
                first, last = (
                    self._all(f"SELECT {f}(e.time) FROM {source} WHERE {where}", params)
                    for f in ("min", "max")
                )
                if first[0][0] is None:
                    return BUCKETS_US[0], 0, []
                low = int(first[0][0]) if low is None else low
                high = int(last[0][0]) + 1 if high is None else high
            size = bucket_size(low, high) if bucket is None else bucket
            start = bucket_start(low, size)
            if bucket is not None and -(-(high - start) // size) > MAX_FIXED_BUCKETS:
                raise QueryError(
                    f"a bucket of {bucket / 1e6:g} s cuts this window into more than "
                    f"{MAX_FIXED_BUCKETS:,} buckets; choose a larger bucket or a shorter window"
                )
            # No ORDER BY: at most 100 groups; without it PostgreSQL hashes the groups
            # instead of sorting every matching row by bucket (a third of the time).
            sql = (
                f"SELECT (e.time - ?) / ? AS b, count(*) FROM {source} WHERE {where}"
                " AND e.time >= ? AND e.time < ? GROUP BY b"
            )
            counts = {int(b): int(n) for b, n in self._all(sql, [start, size, *params, low, high])}
            n_buckets = max(0, -(-(high - start) // size))
            return size, start, [(start + i * size, counts.get(i, 0)) for i in range(n_buckets)]

    def trace(self, ident: str, *, limit: int) -> list[Row]:
        """Every event whose request_id or trace_id is ``ident``, oldest first."""
        with self._budget():
            return self._all(
                # +seq: a row outside the tree is never shown, and the guard must not
                # steer the planner away from the request and trace indexes.
                "SELECT seq, time, body FROM events WHERE (request_id = ? OR trace_id = ?)"
                " AND +seq >= 0 ORDER BY time, seq LIMIT ?",
                [ident, ident, limit],
            )
