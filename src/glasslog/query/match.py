"""Whether one event matches a query, decided from the event itself in Python.

The stores answer queries from columns, indexes and full-text tables that are derived
from the signed bodies. Someone with write access to the database can change derived
data without touching a body, so every search result is checked again here, against
the body that verification covers, before it is returned (``Log.search``): an index
can then hide an event (which ``glasslog verify`` finds) but never show one that does
not match.

The semantics are those of the compiled SQL (``query/plan.py``), written once more
without SQL; tests hold the two to the same answers on generated queries and data
(tests/query/test_match.py). Where the backends themselves differ, the matcher
follows the dialect it is given: on PostgreSQL a phrase is matched on the word
positions a ``tsvector`` keeps (capped at 16,383, at most 256 per word), so that
the recheck never rejects what the database rightly returned. Where the matcher
errs, it must err towards a match: a result it rejects is reported as tampering.
"""

from __future__ import annotations

import operator
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from glasslog.derived import search_text
from glasslog.event import epoch_us, parse_time
from glasslog.query.language import And, Compare, Everything, Has, Match, Node, Not, Or, Text
from glasslog.query.plan import ALWAYS_PRESENT, SQLITE, Dialect, PostgresDialect
from glasslog.query.plan import _number as metadata_number
from glasslog.query.words import MAX_POSITION, words

__all__ = ["matches"]

_MISSING: Final = object()

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

MAX_POSITIONS_PER_WORD: Final = 256
"""PostgreSQL keeps a word's lowest 256 distinct positions in a ``tsvector``, no more."""


def matches(node: Node, event: dict[str, Any], *, seq: int, dialect: Dialect = SQLITE) -> bool:
    """Whether the stored ``event`` (its body, decoded) at ``seq`` satisfies ``node``.

    ``node`` is a query that compiled (``compile_query`` refuses the others), and
    ``dialect`` the backend whose answer is being rechecked.
    """
    return _Matcher(event, seq, capped=isinstance(dialect, PostgresDialect)).node(node)


_ONE_FIELD: dict[int, tuple[Or, tuple[str, frozenset[str]] | None]] = {}
"""Memo of :func:`_one_field_values` by node identity: hashing a large query on every
event would cost more than the lookup saves. The node is kept, so its id stays its own."""


def _one_field_values(node: Or) -> tuple[str, frozenset[str]] | None:
    """``(field, values)`` when ``node`` is only literal matches of one schema field (a
    role's list of services, say), which set membership decides exactly."""
    known = _ONE_FIELD.get(id(node))
    if known is not None and known[0] is node:
        return known[1]
    if len(_ONE_FIELD) >= 1024:
        _ONE_FIELD.clear()
    found = _one_field_values_of(node)
    _ONE_FIELD[id(node)] = (node, found)
    return found


def _one_field_values_of(node: Or) -> tuple[str, frozenset[str]] | None:
    fields = {n.field for n in node.nodes if isinstance(n, Match) and not n.wildcard}
    if len(fields) != 1 or len(node.nodes) < 2:
        return None
    (name,) = fields
    if (
        name in ("id", "seq")
        or name.startswith("metadata.")
        or not all(isinstance(n, Match) and not n.wildcard for n in node.nodes)
    ):
        return None
    return name, frozenset(n.value for n in node.nodes if isinstance(n, Match))


class _Matcher:
    __slots__ = ("_capped", "_event", "_joined", "_seq", "_words")

    def __init__(self, event: dict[str, Any], seq: int, *, capped: bool) -> None:
        self._event = event
        self._seq = seq
        self._capped = capped
        self._words: list[str] = []
        self._joined: str | None = None

    def node(self, node: Node) -> bool:
        if isinstance(node, Match):
            return self._match(node)
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, Has):
            return node.field in ALWAYS_PRESENT or self._get(node.field) is not _MISSING
        if isinstance(node, Text):
            return self._text(node.text)
        if isinstance(node, Not):
            # SQL: NOT COALESCE(x, FALSE). Every leaf here already reads NULL as False.
            return not self.node(node.node)
        if isinstance(node, And):
            return all(self.node(n) for n in node.nodes)
        if isinstance(node, Or):
            same = _one_field_values(node)
            if same is not None:  # a list of values of one schema field: one set lookup
                value = self._get(same[0])
                return isinstance(value, str) and value in same[1]
            return any(self.node(n) for n in node.nodes)
        if isinstance(node, Everything):
            return True
        raise TypeError(f"unsupported query element {type(node).__name__}")  # pragma: no cover

    def _get(self, path: str) -> Any:
        """The value at a dotted path, through objects only (as ``json_extract`` goes)."""
        value: Any = self._event
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        return value

    def _match(self, node: Match) -> bool:
        name = node.field
        if name == "id":
            stored = self._get("id")
            return isinstance(stored, str) and _uuid(stored) == _uuid(node.value)
        if name == "seq":
            return int(node.value) == self._seq
        value = self._get(name)
        if name.startswith("metadata."):
            return _metadata_match(node, value)
        # SQL reads schema fields as text: PostgreSQL takes strings only, and in SQLite
        # json_extract's number never equals a text value nor falls in a text range.
        if not isinstance(value, str):
            return False
        return _glob(node.value, value) if node.wildcard else value == node.value

    def _compare(self, node: Compare) -> bool:
        name, op = node.field, _OPS[node.op]
        if name == "time":
            stored = self._get("time")
            if not isinstance(node.value, datetime) or not isinstance(stored, str):
                return False
            try:
                moment = parse_time(stored)
            except ValueError:
                return False  # no body that verify accepts holds such a time
            return op(epoch_us(moment), epoch_us(node.value))
        if name == "received":
            received = self._get("received")
            if not isinstance(node.value, datetime) or not isinstance(received, str):
                return False
            # Stored times are normalized RFC 3339 with µs and Z: text order is time order.
            bound = node.value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return op(received, bound)
        if name == "seq":
            return op(self._seq, node.value)
        value = self._get(name)
        if value is _MISSING or isinstance(value, dict):
            return False
        return any(
            _is_number(item) and op(item, node.value)
            for item in (value if isinstance(value, list) else (value,))
        )

    def _text(self, text: str) -> bool:
        """The event's words hold the words of ``text`` at consecutive positions."""
        want = _query_words(text)
        if not want:
            return False  # FTS5 matches nothing for a phrase without words; nor does PG
        if self._joined is None:
            self._words = words(search_text(self._event))
            self._joined = f" {' '.join(self._words)} "
        # Words hold no space: a match of the padded phrase is a run of adjacent words.
        found = f" {' '.join(want)} " in self._joined
        n = len(self._words)
        if not self._capped or n <= MAX_POSITIONS_PER_WORD:
            return found  # too few words for either of PostgreSQL's caps to bite
        if not found and n <= MAX_POSITION:
            return False  # below the position cap, dropping positions only loses matches
        positions = _positions(self._words)
        rest = [set(positions.get(word, ())) for word in want[1:]]
        return any(
            all(start + k in later for k, later in enumerate(rest, 1))
            for start in positions.get(want[0], ())
        )


@lru_cache(maxsize=256)
def _query_words(text: str) -> tuple[str, ...]:
    """The words of a query's text, computed once for all the rows of a page."""
    return tuple(words(text))


@lru_cache(maxsize=256)
def _number(text: str) -> int | float | None:
    """A metadata value as the number it reads as (plan's rule), once for all the rows."""
    return metadata_number(text)


def _positions(found: list[str]) -> dict[str, list[int]]:
    """Each word's positions in ``found`` as a PostgreSQL ``tsvector`` keeps them.

    Positions count from 1 and are capped at MAX_POSITION; a word keeps its lowest
    MAX_POSITIONS_PER_WORD distinct ones. Past either cap a phrase may match words
    that are not adjacent, or miss words that are (docs/query.md).
    """
    out: dict[str, list[int]] = {}
    for i, word in enumerate(found, 1):
        kept = out.setdefault(word, [])
        position = min(i, MAX_POSITION)
        if len(kept) < MAX_POSITIONS_PER_WORD and (not kept or kept[-1] != position):
            kept.append(position)
    return out


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metadata_match(node: Match, value: Any) -> bool:
    """SQL: the path holds a scalar, or an array with such an element, equal to the value.

    Strings compare as text (or by pattern), numbers as numbers when the value reads
    as one, booleans with ``true``/``false``; a pattern matches strings only.
    """
    if value is _MISSING or value is None or isinstance(value, dict):
        return False
    number = None if node.wildcard else _number(node.value)
    for item in value if isinstance(value, list) else (value,):
        if isinstance(item, str):
            if _glob(node.value, item) if node.wildcard else item == node.value:
                return True
        elif node.wildcard:
            continue
        elif isinstance(item, bool):
            if node.value == ("true" if item else "false"):
                return True
        elif isinstance(item, int | float) and number is not None and item == number:
            return True
    return False


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A query wildcard: every ``*`` is any run of characters, nothing else is special."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.S)


def _glob(pattern: str, value: str) -> bool:
    return _glob_regex(pattern).fullmatch(value) is not None
