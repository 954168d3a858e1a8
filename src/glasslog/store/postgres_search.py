"""The PostgreSQL executor: one read-only snapshot per call, under ``statement_timeout``.

The shared statements of :class:`~glasslog.store.search.Search` run unchanged;
what differs from SQLite:

* **Placeholders.** The planner and the shared code write ``?``; :func:`pg_sql`
  turns them into psycopg's ``%s`` (and doubles any ``%``) in this one place.
* **Snapshots.** Every call is one ``REPEATABLE READ, READ ONLY`` transaction, so
  an answer made of several statements (rollups plus the exact edge hours; a
  count and its estimate) sees one state of the log while writers go on.
* **Time budget.** ``statement_timeout`` set for that transaction, and lowered
  before each later statement of the call to what is left of the budget; the
  server cancels the statement, which surfaces as the same QueryError as on SQLite.
* **Field index.** ``fields`` holds jsonb values, so ``metadata.rows:3`` matches
  the string ``"3"`` and the number ``3`` through two index ranges, merged
  newest-first (``UNION ALL`` under ``ORDER BY``) and joined to ``events`` on the
  primary key — the partition is known from the row's time.
* **Full text.** The ``tsv @@ tsquery`` condition is already in the ``where``
  expression; the planner chooses between the GIN index and walking the time
  index backwards, which is what the SQLite executor does by hand.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pgerrors

from glasslog.errors import QueryError
from glasslog.query.plan import POSTGRES, Compiled, FieldDriver, TextDriver
from glasslog.store.search import After, Row, Search, TextRead, timeout_error

__all__ = ["PostgresSearch", "Row", "pg_sql"]


def pg_sql(sql: str) -> str:
    """``sql`` with ``?`` placeholders in psycopg's ``%s`` style.

    Sound because no fragment glasslog writes holds a literal ``?`` or ``%`` (the
    planner binds every value, and jsonb's ``?`` operators are never used).
    """
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresSearch(Search):
    """Executes compiled queries on one PostgreSQL connection (autocommit mode)."""

    dialect = POSTGRES
    time_bound_in_keyset = True

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]], *, timeout: float = 5.0) -> None:
        super().__init__(timeout=timeout)
        self._conn = conn
        self._deadline = 0.0
        self._limit_ms = 0

    @contextmanager
    def _budget(self) -> Iterator[None]:
        self._deadline = time.monotonic() + self.timeout
        try:
            with self._conn.transaction():
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                self._statement_timeout(self.timeout)
                yield
        except pgerrors.QueryCanceled:
            raise timeout_error(self.timeout) from None
        except psycopg.Error as exc:
            diag = getattr(exc, "diag", None)
            text = (diag.message_primary if diag is not None else None) or type(exc).__name__
            raise QueryError(f"the database could not run this query: {text}") from None

    def _field_values(self, values: tuple[object, ...]) -> tuple[str, list[object]]:
        return ", ".join(["?::jsonb"] * len(values)), [json.dumps(v) for v in values]

    def _statement_timeout(self, seconds: float) -> None:
        # 0 would mean "no limit" to PostgreSQL: never ask for less than 1 ms.
        self._limit_ms = max(1, math.ceil(seconds * 1000))
        self._conn.execute(
            "SELECT set_config('statement_timeout', %s, true)", (str(self._limit_ms),)
        )

    def _all(self, sql: str, params: list[object]) -> list[Any]:
        # The budget is per call, and a call may run several statements: each one
        # gets only what its predecessors left.
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise timeout_error(self.timeout)
        if remaining * 1000 < self._limit_ms - 50:
            self._statement_timeout(remaining)
        return self._conn.execute(pg_sql(sql), params).fetchall()

    def _serial(self) -> None:
        """No parallel workers for this transaction's statements.

        A page of results is a LIMIT query that reads a few hundred index entries;
        starting workers for it costs more (≈10 ms) than the whole read. Scans for
        aggregations keep them.
        """
        self._conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")

    def _plain(
        self, plan: Compiled, limit: int, ascending: bool, after: tuple[int, int] | None
    ) -> list[Row]:
        self._serial()
        return super()._plain(plan, limit, ascending, after)

    def _by_text(
        self,
        plan: Compiled,
        driver: TextDriver,
        limit: int,
        ascending: bool,
        after: After | None,
    ) -> tuple[list[Row], TextRead | None]:
        # One statement with the keyset bound (see the module docstring): a deep page
        # starts its index range at the cursor, so it never needs a span to skip.
        return self._plain(plan, limit, ascending, None if after is None else after.keyset), None

    def _by_field(
        self,
        plan: Compiled,
        driver: FieldDriver,
        limit: int,
        ascending: bool,
        after: tuple[int, int] | None,
    ) -> list[Row]:
        self._serial()
        found = self._all("SELECT id FROM field_keys WHERE path = ?", [driver.path])
        if not found:
            return []  # no event ever had this field
        key = found[0][0]
        order = "ASC" if ascending else "DESC"
        branches: list[str] = []
        params: list[object] = []
        bounds, bound_params = self._field_bounds(plan, ascending=ascending, after=after)
        for value in driver.values:
            branches.append(
                f"SELECT f.time, f.seq FROM fields f WHERE f.key = ? AND f.value = ?::jsonb{bounds}"
            )
            params += [key, json.dumps(value), *bound_params]
        # DISTINCT ON: an event holding both values ("3" and 3, in one array) is listed once.
        sql = (
            f"SELECT DISTINCT ON (c.time, c.seq) e.seq, e.time, e.body"
            f" FROM ({' UNION ALL '.join(branches)}) c"
            f" JOIN events e ON e.seq = c.seq AND e.time = c.time WHERE ({plan.rest})"
            f" ORDER BY c.time {order}, c.seq {order} LIMIT ?"
        )
        return self._all(sql, [*params, *plan.rest_params, limit])
