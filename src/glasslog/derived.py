"""What the indexes derive from an event: metadata field values and full-text words.

Derived data is never part of a leaf: it is recomputed from the stored body
whenever it is needed again (a schema migration rebuilding the field index, and
``verify`` checking that what queries read still matches what was signed). So the
derivation lives here, below both the ingest pipeline that writes it and the stores
that rebuild it, and both call the same functions.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final, NamedTuple

from glasslog.event import epoch_us

FIELD_VALUE_MAX = 256
"""Metadata strings longer than this are not put in the field index (queries scan for them)."""

FieldValue = tuple[str, str | int | float]
"""A metadata path (``metadata.db.table``) and one scalar value found there."""

_NOT_TEXT = frozenset({"id", "time", "received"})
"""Fields never searched as free text: identifiers and timestamps only add noise."""

_FIELD_KEY = re.compile(r"[A-Za-z0-9_-]+")


def field_values(metadata: Any) -> tuple[FieldValue, ...]:
    """Scalar metadata values by dotted path, for the field index (store ``fields``).

    Array elements are indexed under the array's path, so ``metadata.tags:x`` finds
    an event whose tags contain x; a value repeated in an array is indexed once.
    Keys that the query language cannot name (with dots or spaces) and strings
    longer than FIELD_VALUE_MAX are left out; queries for them fall back to
    scanning, so results stay complete.
    """
    out: dict[FieldValue, None] = {}  # ordered, without repeats
    stack: list[tuple[str, Any]] = [("metadata", metadata)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(
                (child, v) for k, v in value.items() if (child := _child_path(path, k)) is not None
            )
            continue
        for item in value if isinstance(value, list) else (value,):
            kind = type(item)
            if kind is str:
                if len(item) <= FIELD_VALUE_MAX:
                    out[path, item] = None
            elif kind is int or kind is float:
                out[path, item] = None
            elif item is True or item is False:
                out[path, "true" if item else "false"] = None
            elif isinstance(item, str):
                if len(item) <= FIELD_VALUE_MAX:
                    out[path, item] = None
            elif isinstance(item, int | float):
                out[path, item] = None
    return tuple(out)


_children: dict[str, dict[str, str | None]] = {}
"""Memo of :func:`_child_path`: the same few metadata keys recur in every event."""
_MEMO_LIMIT = 4096


def _child_path(path: str, key: str) -> str | None:
    """``path.key``, or None when the query language cannot name ``key``."""
    known = _children.get(path)
    if known is None:
        if len(_children) >= _MEMO_LIMIT:  # keys come from clients: bound the memo
            _children.clear()
        known = _children[path] = {}
    child = known.get(key, _UNKNOWN)
    if child is _UNKNOWN:
        if len(known) >= _MEMO_LIMIT:
            known.clear()
        child = known[key] = f"{path}.{key}" if _FIELD_KEY.fullmatch(key) else None
    return child


_UNKNOWN: Final = "\x00"  # never a path: paths are made of query-language keys


def search_text(event: dict[str, Any]) -> str:
    """Every string and number of the event except ids and timestamps, for full text.

    Objects are walked in sorted key order, so the text depends only on the event's
    content, not on the order its keys arrived in: ingest derives it from the event
    as sent, ``verify`` and the search recheck from the stored body (whose keys are in
    RFC 8785 order), and all three must produce the same words in the same positions.
    """
    parts: list[str] = []
    stack: list[Any] = [event[k] for k in sorted(event, reverse=True) if k not in _NOT_TEXT]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            stack.extend(value[k] for k in sorted(value, reverse=True))
        elif isinstance(value, list):
            stack.extend(reversed(value))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(str(value))
    return " ".join(parts)


class Columns(NamedTuple):
    """The event's values that stores keep in columns of their own, for indexes."""

    id: bytes
    time_us: int
    service: str
    action: str
    actor_id: str
    outcome: str
    request_id: str | None
    trace_id: str | None


COLUMN_NAMES: Final = Columns._fields


def columns(event: dict[str, Any]) -> Columns:
    """The indexed columns of a validated event (or of a stored body, decoded).

    One function for ingest, which writes them, and ``verify``, which recomputes them
    from the signed body and compares: a column that disagrees with its body was
    changed behind glasslog's back.
    """
    ctx = event.get("context") or {}
    return Columns(
        bytes.fromhex(event["id"].replace("-", "")),  # a validated, canonical UUID
        epoch_us(datetime.fromisoformat(event["time"])),  # validated: UTC, with Z
        event["service"],
        event["action"],
        event["actor"]["id"],
        event["outcome"],
        ctx.get("request_id"),
        ctx.get("trace_id"),
    )
