"""Whether one event matches a query, decided from the event itself in Python.

The stores answer queries from columns, indexes and full-text tables that are derived
from the signed bodies. Someone with write access to the database can change derived
data without touching a body, so every search result is checked again here, against
the body that verification covers, before it is returned (``Log.search``): an index
can then hide an event (which ``glasslog verify`` finds) but never show one that does
not match.

The semantics are those of the compiled SQL (``query/plan.py``), written once more
without SQL; tests hold the two to the same answers on generated queries and data.
"""

from __future__ import annotations

import json
import operator
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from glasslog.derived import search_text
from glasslog.event import epoch_us, parse_time
from glasslog.query.language import And, Compare, Everything, Has, Match, Node, Not, Or, Text
from glasslog.query.plan import ALWAYS_PRESENT
from glasslog.query.plan import _number as metadata_number
from glasslog.query.words import words

_MISSING = object()

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def matches(node: Node, event: dict[str, Any], *, seq: int) -> bool:
    """Whether the stored ``event`` (its body, decoded) at ``seq`` satisfies ``node``."""
    return _Matcher(event, seq).node(node)


class _Matcher:
    __slots__ = ("_event", "_seq", "_words")

    def __init__(self, event: dict[str, Any], seq: int) -> None:
        self._event = event
        self._seq = seq
        self._words: list[str] | None = None

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
            return not self.node(node.node)
        if isinstance(node, And):
            return all(self.node(n) for n in node.nodes)
        if isinstance(node, Or):
            return any(self.node(n) for n in node.nodes)
        if isinstance(node, Everything):
            return True
        raise TypeError(f"unsupported query element {type(node).__name__}")  # pragma: no cover

    def _get(self, path: str) -> Any:
        value: Any = self._event
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        return value

    def _match(self, node: Match) -> bool:
        name = node.field
        if name == "id":
            return uuid.UUID(node.value) == uuid.UUID(self._event["id"])
        if name == "seq":
            return int(node.value) == self._seq
        value = self._get(name)
        if name.startswith("metadata."):
            return _metadata_match(node, value)
        if value is _MISSING or value is None:
            return False
        text = _sql_text(value)
        return _glob(node.value, text) if node.wildcard else text == node.value

    def _compare(self, node: Compare) -> bool:
        name, op = node.field, _OPS[node.op]
        if name == "time":
            assert isinstance(node.value, datetime)
            return op(epoch_us(parse_time(self._event["time"])), epoch_us(node.value))
        if name == "received":
            assert isinstance(node.value, datetime)
            received = self._get("received")
            bound = node.value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return isinstance(received, str) and op(received, bound)
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
        want = words(text)
        if not want:
            return False
        if self._words is None:
            self._words = words(search_text(self._event))
        have = self._words
        first, n = want[0], len(want)
        return any(have[i : i + n] == want for i in range(len(have) - n + 1) if have[i] == first)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metadata_match(node: Match, value: Any) -> bool:
    """SQL: the path holds a scalar, or an array with such an element, equal to the value."""
    if value is _MISSING or value is None or isinstance(value, dict):
        return False
    number = None if node.wildcard else metadata_number(node.value)
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


def _sql_text(value: Any) -> str:
    """What ``json_extract`` yields for a value, as the text SQL compares with."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A query wildcard: every ``*`` is any run of characters, nothing else is special."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.S)


def _glob(pattern: str, value: str) -> bool:
    return _glob_regex(pattern).fullmatch(value) is not None
