"""Query planning: the AST of :mod:`glasslog.query.language` → parameterized SQL.

Pure: no I/O. Every value from the query travels as a bound parameter; the SQL text
is assembled only from fixed fragments chosen by the AST's shape, so a query can
never change the statement (tests fuzz this). Backend differences go through a
:class:`Dialect`: :data:`SQLITE` and :data:`POSTGRES`. Placeholders are always
``?``; the PostgreSQL executor turns them into psycopg's ``%s`` in one place
(:func:`glasslog.store.postgres_search.pg_sql`), so no fragment here may contain
a literal ``?`` or ``%``.

A compiled query has two parts:

* ``where``: one boolean SQL expression over the events table (alias ``e``) that is
  exactly the query's meaning, usable in any statement (search, count, group by);
* a *driver*: how to produce candidates newest-first without sorting everything —
  the field index for ``metadata.x:v`` equality, full-text for words and phrases, or
  the events table's own indexes otherwise. The executor picks the statement shape
  from the driver; the ``where`` expression keeps the answer exact whichever it picks.

Semantics worth knowing (docs/query.md): ``field:value`` on a metadata path matches
a scalar equal to the value (as text, as a number when it reads as one, or as a
boolean for true/false), or any such element of an array. NOT includes events that
lack the field (``-actor.type:bot`` keeps events without actor.type).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from glasslog.derived import FIELD_VALUE_MAX
from glasslog.errors import QueryError
from glasslog.event import MAX_SAFE_INTEGER, epoch_us
from glasslog.query.language import And, Compare, Everything, Has, Match, Node, Not, Or, Text
from glasslog.query.words import tsquery_phrase

COLUMNS: dict[str, str] = {
    "service": "service",
    "action": "action",
    "actor.id": "actor_id",
    "outcome": "outcome",
    "context.request_id": "request_id",
    "context.trace_id": "trace_id",
}
"""Fields stored in their own indexed column."""

ALWAYS_PRESENT = frozenset(
    {"id", "seq", "time", "received", "service", "action", "outcome", "actor.id"}
)


def json_path(field_path: str) -> str:
    """The SQLite JSON path of a dotted field, each key quoted (keys may hold ``-``)."""
    return "$" + "".join(f'."{key}"' for key in field_path.split("."))


def glob_pattern(value: str) -> str:
    """A query wildcard (only ``*``) as a GLOB pattern with every other character literal."""
    out = []
    for ch in value:
        if ch == "*":
            out.append("*")
        elif ch in "?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def literal_prefix(value: str) -> str:
    """The part of a wildcard value before its first ``*``."""
    return value.split("*", 1)[0]


def prefix_bounds(prefix: str) -> tuple[str, str] | None:
    """``(low, high)`` with ``low <= s < high`` exactly for strings starting with ``prefix``."""
    if not prefix:
        return None
    last = prefix[-1]
    if ord(last) >= 0x10FFFF:
        return None
    return prefix, prefix[:-1] + chr(ord(last) + 1)


def fts_expression(text: str) -> str:
    """An FTS5 query string matching ``text`` as one phrase (a single word is a phrase too).

    Everything is inside double quotes, so FTS5 syntax in user input (OR, NEAR,
    column filters, ``^``, ``*``) is inert; a quote is escaped by doubling it.
    """
    return '"' + text.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class FieldDriver:
    """Candidates from the field index: one metadata path equal to one or two values."""

    path: str
    values: tuple[str | int | float, ...]


@dataclass(frozen=True, slots=True)
class TextDriver:
    """Candidates from full text, streamed in seq order (see the executor)."""

    match: str


Driver = FieldDriver | TextDriver | None


@dataclass(slots=True)
class Compiled:
    """A query compiled to SQL: the exact predicate, its parameters and a driver.

    ``where``/``params`` is the whole query; ``rest``/``rest_params`` is the query
    without the driving term, for statements whose candidates already satisfy it.
    """

    where: str
    params: list[object]
    rest: str
    rest_params: list[object]
    driver: Driver = None
    time_low: int | None = None
    """Lower bound on e.time (µs, inclusive) from top-level conditions, if any."""
    time_high: int | None = None
    """Upper bound on e.time (µs, exclusive) from top-level conditions, if any."""
    time_only: bool = False
    rest_time_only: bool = False
    """True when ``rest`` constrains nothing but time, so ``time_low``/``time_high`` say
    all of it (a field-index read then needs no event rows)."""
    """True when the query constrains nothing but time (aggregations may use rollups)."""


Bind = Callable[[object], str]
"""Appends a parameter and returns its placeholder; call it in SQL text order."""


class Dialect(Protocol):
    """The SQL that differs between backends. Each method binds its values via ``bind``."""

    true: str
    false: str
    binary: str
    """Suffix making a text comparison order by code point (byte order of UTF-8)."""

    def json_value(self, bind: Bind, field_path: str) -> str:
        """The scalar at ``field_path`` in the event body, as SQL text (NULL when absent)."""
        ...

    def json_present(self, bind: Bind, field_path: str) -> str:
        """True when the body has ``field_path`` (any JSON type but null)."""
        ...

    def wildcard(self, expr: str, bind: Bind, value: str) -> str:
        """``expr`` matches ``value`` where only ``*`` is special (any run of characters)."""
        ...

    def metadata_match(
        self, bind: Bind, field_path: str, text: str, number: float | None, wildcard: bool
    ) -> str:
        """A metadata scalar (or a scalar element of an array) equals / matches the value."""
        ...

    def metadata_compare(self, bind: Bind, field_path: str, op: str, number: float) -> str:
        """A numeric metadata scalar (or array element) compares with ``number``."""
        ...

    def full_text(self, bind: Bind, text: str) -> str:
        """The event's text contains ``text`` as a phrase."""
        ...

    def event_id(self, bind: Bind, value: bytes) -> str:
        """The event's id is ``value`` (16 bytes), through whichever index holds ids."""
        ...

    def json_text(self, bind: Bind, field_path: str) -> str:
        """The JSON text of the value at ``field_path`` (NULL when absent), for grouping."""
        ...


class SQLiteDialect:
    """SQLite: JSON1 functions, GLOB, and the FTS5 table ``events_fts`` (rowid = seq)."""

    true = "1"
    false = "0"
    binary = ""  # SQLite compares text with memcmp unless told otherwise

    def json_value(self, bind: Bind, field_path: str) -> str:
        return f"json_extract(e.body, {bind(json_path(field_path))})"

    def json_present(self, bind: Bind, field_path: str) -> str:
        return f"json_type(e.body, {bind(json_path(field_path))}) IS NOT NULL"

    def wildcard(self, expr: str, bind: Bind, value: str) -> str:
        return f"{expr} GLOB {bind(glob_pattern(value))}"

    def metadata_match(
        self, bind: Bind, field_path: str, text: str, number: float | None, wildcard: bool
    ) -> str:
        path = json_path(field_path)
        shape = f"json_type(e.body, {bind(path)}) NOT IN ('object', 'null')"
        each = f"json_each(e.body, {bind(path)})"
        if wildcard:
            cond = f"j.type = 'text' AND j.atom GLOB {bind(glob_pattern(text))}"
        else:
            options = [f"(j.type = 'text' AND j.atom = {bind(text)})"]
            if number is not None:
                options.append(f"(j.type IN ('integer', 'real') AND j.atom = {bind(number)})")
            if text in ("true", "false"):
                options.append(f"j.type = {bind(text)}")
            cond = " OR ".join(options)
        return f"({shape} AND EXISTS (SELECT 1 FROM {each} j WHERE {cond}))"

    def metadata_compare(self, bind: Bind, field_path: str, op: str, number: float) -> str:
        # json_each would walk an object's values too: objects never compare.
        shape = f"json_type(e.body, {bind(json_path(field_path))}) <> 'object'"
        each = f"json_each(e.body, {bind(json_path(field_path))})"
        return (
            f"({shape} AND EXISTS (SELECT 1 FROM {each} j"
            f" WHERE j.type IN ('integer', 'real') AND j.atom {op} {bind(number)}))"
        )

    def full_text(self, bind: Bind, text: str) -> str:
        match = bind(fts_expression(text))
        return f"e.seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH {match})"

    def event_id(self, bind: Bind, value: bytes) -> str:
        return f"e.id = {bind(value)}"

    def json_text(self, bind: Bind, field_path: str) -> str:
        return f"(e.body -> {bind(json_path(field_path))})"


SQLITE = SQLiteDialect()


def jsonpath(field_path: str) -> str:
    """A strict SQL/JSON path to a dotted field, each key a quoted string literal.

    Strict, unlike PostgreSQL's default lax mode: lax would look through arrays on
    the way (``metadata.x.y`` finding ``y`` inside ``x: [{"y": …}]``), which the
    field syntax does not mean and SQLite's ``json_extract`` does not do.
    """
    return "strict $" + "".join(
        "." + json.dumps(k, ensure_ascii=False) for k in field_path.split(".")
    )


def like_pattern(value: str) -> str:
    """A query wildcard (only ``*``) as a LIKE pattern, every other character literal."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _regex(value: str) -> str:
    """A query wildcard as an anchored regular expression (for SQL/JSON ``like_regex``)."""
    literal = [
        "".join(ch if ch.isalnum() else "\\" + ch for ch in part) for part in value.split("*")
    ]
    return "^" + ".*".join(literal) + "$"


class PostgresDialect:
    """PostgreSQL: SQL/JSON paths over ``body::jsonb``, LIKE, and the ``tsv`` column.

    Metadata conditions are one ``jsonb_path_exists`` each, in strict mode with
    errors silenced (a missing key, or a key looked up in an array, is simply no
    match): ``@ == $v`` compares the scalar itself, ``exists (@[*] ? (@ == $v))``
    its elements when it is an array; strings never equal numbers, and numbers
    compare as numbers — the semantics of the SQLite dialect.
    """

    true = "TRUE"
    false = "FALSE"
    binary = ' COLLATE "C"'  # the database's collation may be linguistic; ranges must not be

    def _path_exists(self, bind: Bind, path: str, variables: dict[str, object]) -> str:
        return (
            f"jsonb_path_exists(e.body::jsonb, {bind(path)}::jsonpath,"
            f" {bind(json.dumps(variables))}::jsonb, TRUE)"
        )

    def json_value(self, bind: Bind, field_path: str) -> str:
        # Strings only, as json_extract's text never equals a number or boolean there.
        path = jsonpath(field_path) + ' ? (@.type() == "string")'
        return (
            f"(jsonb_path_query_first(e.body::jsonb, {bind(path)}::jsonpath, '{{}}', TRUE)"
            " #>> '{}')"
        )

    def json_present(self, bind: Bind, field_path: str) -> str:
        return self._path_exists(bind, jsonpath(field_path), {})

    def wildcard(self, expr: str, bind: Bind, value: str) -> str:
        return f"{expr} LIKE {bind(like_pattern(value))}"

    def metadata_match(
        self, bind: Bind, field_path: str, text: str, number: float | None, wildcard: bool
    ) -> str:
        if wildcard:
            test = f'@ like_regex {json.dumps(_regex(text), ensure_ascii=False)} flag "s"'
            variables: dict[str, object] = {}
        else:
            variables = {"t": text}
            options = ["@ == $t"]
            if number is not None:
                variables["n"] = number
                options.append("@ == $n")
            if text in ("true", "false"):
                options.append(f"@ == {text}")
            test = " || ".join(options)
        path = f"{jsonpath(field_path)} ? ({test} || exists (@[*] ? ({test})))"
        return self._path_exists(bind, path, variables)

    def metadata_compare(self, bind: Bind, field_path: str, op: str, number: float) -> str:
        test = f"@ {op} $n"
        path = f"{jsonpath(field_path)} ? ({test} || exists (@[*] ? ({test})))"
        return self._path_exists(bind, path, {"n": number})

    def full_text(self, bind: Bind, text: str) -> str:
        phrase = tsquery_phrase(text)
        if phrase is None:
            return self.false  # no words: FTS5 matches nothing either
        return f"e.tsv @@ {bind(phrase)}::tsquery"

    def event_id(self, bind: Bind, value: bytes) -> str:
        # events.id has no index of its own: event_keys holds the unique one.
        return f"e.seq = (SELECT k.seq FROM event_keys k WHERE k.id = {bind(value)})"

    def json_text(self, bind: Bind, field_path: str) -> str:
        return (
            f"(jsonb_path_query_first(e.body::jsonb, {bind(jsonpath(field_path))}::jsonpath,"
            " '{}', TRUE)::text)"
        )


POSTGRES = PostgresDialect()


class _Builder:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.params: list[object] = []

    def bind(self, value: object) -> str:
        self.params.append(value)
        return "?"

    # -- leaves ----------------------------------------------------------------------

    def match(self, node: Match) -> str:
        name = node.field
        if name in ("time", "received"):
            raise QueryError(
                f"{name} takes a range, not a value: use after:/before: or {name}>=…, {name}<…"
            )
        if name == "id":
            if node.wildcard:
                raise QueryError("id does not take wildcards; give the whole UUID")
            try:
                value = uuid.UUID(node.value).bytes
            except ValueError:
                raise QueryError(
                    f"id:{node.value} is not a UUID such as 0192f0c1-8a3b-7c4d-9e2f-0123456789ab"
                ) from None
            return self.d.event_id(self.bind, value)
        if name == "seq":
            if node.wildcard or not node.value.isdigit():
                raise QueryError(f"seq takes a number, got {node.value!r}")
            return f"e.seq = {self.bind(int(node.value))}"
        if name.startswith("metadata."):
            number = None if node.wildcard else _number(node.value)
            return self.d.metadata_match(self.bind, name, node.value, number, node.wildcard)
        if name in COLUMNS:
            return self._match_expr(lambda: f"e.{COLUMNS[name]}", node)
        return self._match_expr(lambda: self.d.json_value(self.bind, name), node)

    def _match_expr(self, expr: Callable[[], str], node: Match) -> str:
        """``expr = value``, or a wildcard match with an index-friendly prefix range.

        ``expr`` is called once per use so that its own placeholders are bound each
        time, in the order they appear in the SQL text.
        """
        if not node.wildcard:
            return f"{expr()} = {self.bind(node.value)}"
        parts = []
        bounds = prefix_bounds(literal_prefix(node.value))
        if bounds is not None:  # lets the database use an index range for the prefix
            low, high = bounds
            parts.append(f"{expr()}{self.d.binary} >= {self.bind(low)}")
            parts.append(f"{expr()}{self.d.binary} < {self.bind(high)}")
        parts.append(self.d.wildcard(expr(), self.bind, node.value))
        return "(" + " AND ".join(parts) + ")"

    def compare(self, node: Compare) -> str:
        op = node.op
        name = node.field
        if name in ("time", "received"):
            if not isinstance(node.value, datetime):
                raise QueryError(f"{name} compares with a time, such as 2026-11-01 or -24h")
            if name == "time":
                return f"e.time {op} {self.bind(epoch_us(node.value))}"
            # Stored times are normalized RFC 3339 with µs and Z: text order is time order.
            text = node.value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            value = self.d.json_value(self.bind, name)
            return f"{value}{self.d.binary} {op} {self.bind(text)}"
        if isinstance(node.value, datetime):
            raise QueryError(f"{name} compares with a number, not a time")
        if not math.isfinite(node.value):
            raise QueryError(f"{name}{op}{node.value}: compare with a finite number")
        if name == "seq":
            return f"e.seq {op} {self.bind(node.value)}"
        if name.startswith("metadata."):
            return self.d.metadata_compare(self.bind, name, op, node.value)
        raise QueryError(
            f"{name} cannot be compared with {op}: only time, received, seq and metadata "
            "numbers compare; use field:value for the others"
        )

    def has(self, node: Has) -> str:
        name = node.field
        if name in ALWAYS_PRESENT:
            return self.d.true
        if name in COLUMNS:
            return f"e.{COLUMNS[name]} IS NOT NULL"
        return self.d.json_present(self.bind, name)

    # -- structure -------------------------------------------------------------------

    def node(self, node: Node) -> str:
        if isinstance(node, Match):
            return self.match(node)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Has):
            return self.has(node)
        if isinstance(node, Text):
            return self.d.full_text(self.bind, node.text)
        if isinstance(node, Not):
            # COALESCE: a missing field yields NULL, and NOT NULL would drop the event.
            return f"NOT COALESCE(({self.node(node.node)}), {self.d.false})"
        if isinstance(node, And):
            return "(" + " AND ".join(self.node(n) for n in node.nodes) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.node(n) for n in node.nodes) + ")"
        if isinstance(node, Everything):
            return self.d.true
        raise QueryError(f"unsupported query element {type(node).__name__}")  # pragma: no cover


def _number(text: str) -> int | float | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN and 1e999: no stored number can equal them (JSON has none)
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        # Events hold no integer this large, and as a bound parameter it would overflow
        # SQLite's and PostgreSQL's 64-bit integers: match it as text only.
        return None
    return value


def _top_level(node: Node) -> tuple[Node, ...]:
    return node.nodes if isinstance(node, And) else (node,)


def compile_query(node: Node, *, dialect: Dialect = SQLITE) -> Compiled:
    """Compile an AST into SQL; raise QueryError for queries that cannot mean anything."""
    terms = _top_level(node)
    parts: list[tuple[str, list[object]]] = []
    for term in terms:
        builder = _Builder(dialect)
        parts.append((builder.node(term), builder.params))
    low: int | None = None
    high: int | None = None
    time_only = True
    other: list[int] = []  # terms that constrain something besides time
    for i, term in enumerate(terms):
        if isinstance(term, Compare) and term.field == "time" and isinstance(term.value, datetime):
            us = epoch_us(term.value)
            if term.op in (">", ">="):
                us += term.op == ">"
                low = us if low is None else max(low, us)
            else:
                us += term.op == "<="
                high = us if high is None else min(high, us)
        elif not isinstance(term, Everything):
            time_only = False
            other.append(i)
    driver, index = _choose_driver(terms)
    where, params = _conjunction(parts, dialect.true)
    rest, rest_params = _conjunction([p for i, p in enumerate(parts) if i != index], dialect.true)
    return Compiled(
        where=where,
        params=params,
        rest=rest,
        rest_params=rest_params,
        driver=driver,
        time_low=low,
        time_high=high,
        time_only=time_only,
        rest_time_only=all(i == index for i in other),
    )


def _conjunction(parts: list[tuple[str, list[object]]], true: str) -> tuple[str, list[object]]:
    if not parts:
        return true, []
    return " AND ".join(f"({sql})" for sql, _ in parts), [p for _, ps in parts for p in ps]


def _choose_driver(terms: tuple[Node, ...]) -> tuple[Driver, int | None]:
    """Prefer the field index (exact and time-ordered), then full text, then plain SQL."""
    for i, term in enumerate(terms):
        if (
            isinstance(term, Match)
            and term.field.startswith("metadata.")
            and not term.wildcard
            and len(term.value) <= FIELD_VALUE_MAX
        ):
            number = _number(term.value)
            values: tuple[str | int | float, ...] = (term.value,)
            if number is not None:
                values = (term.value, number)
            return FieldDriver(term.field, values), i
    for i, term in enumerate(terms):
        if isinstance(term, Text):
            return TextDriver(fts_expression(term.text)), i
    return None, None
