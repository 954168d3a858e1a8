"""Tests for glasslog.derived: what the field index and full text derive from an event."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from glasslog import derived
from glasslog.derived import FIELD_VALUE_MAX, field_values, search_text
from glasslog.event import canonical


def test_field_values_index_scalars_by_dotted_path() -> None:
    """Nested scalars, array elements once each, and booleans as true/false are indexed."""
    metadata = {
        "db": {"table": "users", "rows": 3, "ratio": 0.5},
        "tags": ["a", "b", "a"],
        "ok": True,
        "off": False,
        "none": None,
    }
    assert sorted(field_values(metadata), key=repr) == sorted(
        [
            ("metadata.db.table", "users"),
            ("metadata.db.rows", 3),
            ("metadata.db.ratio", 0.5),
            ("metadata.tags", "a"),
            ("metadata.tags", "b"),
            ("metadata.ok", "true"),
            ("metadata.off", "false"),
        ],
        key=repr,
    )


def test_field_values_leave_out_what_queries_cannot_name() -> None:
    """Keys with dots or spaces (and all below them) and over-long strings are left out."""
    metadata = {
        "a.b": 1,
        "with space": {"x": 2},
        "long": "x" * (FIELD_VALUE_MAX + 1),
        "fine": "x" * FIELD_VALUE_MAX,
    }
    assert field_values(metadata) == (("metadata.fine", "x" * FIELD_VALUE_MAX),)


def test_field_values_stay_right_beyond_the_memo_of_key_paths() -> None:
    """More distinct keys than the memo holds are still indexed, and the memo stays bounded."""
    many = 3 * derived._MEMO_LIMIT
    metadata: dict[str, Any] = {f"k{i}": i for i in range(many)}
    metadata["bad key"] = 1
    found = field_values(metadata)
    assert sorted(found) == sorted((f"metadata.k{i}", i) for i in range(many))
    assert all(len(children) <= derived._MEMO_LIMIT for children in derived._children.values())
    assert field_values({"bad key": 1, "k1": 1}) == (("metadata.k1", 1),)


_names = st.text(alphabet="ab.- _", min_size=1, max_size=4)
_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)


@given(
    st.dictionaries(
        _names, _scalars | st.lists(_scalars, max_size=3) | st.dictionaries(_names, _scalars)
    )
)
def test_field_values_match_a_plain_walk(metadata: dict[str, Any]) -> None:
    """The memoised walk finds exactly what a plain recursive walk finds."""

    def walk(path: str, value: Any) -> set[tuple[str, Any]]:
        if isinstance(value, dict):
            return {
                found
                for k, v in value.items()
                if derived._FIELD_KEY.fullmatch(k)
                for found in walk(f"{path}.{k}", v)
            }
        items = value if isinstance(value, list) else [value]
        out: set[tuple[str, Any]] = set()
        for item in items:
            if isinstance(item, bool):
                out.add((path, "true" if item else "false"))
            elif isinstance(item, int | float) or (
                isinstance(item, str) and len(item) <= FIELD_VALUE_MAX
            ):
                out.add((path, item))
        return out

    found = field_values(metadata)
    assert len(found) == len(set(found))
    assert set(found) == walk("metadata", metadata)


def test_search_text_holds_strings_and_numbers_but_not_ids_or_times() -> None:
    """Full text gets every string and number (not booleans), never id, time or received."""
    event = {
        "id": "0192f0c1-8a3b-7c4d-9e2f-0123456789ab",
        "time": "2026-11-26T10:59:15.123456Z",
        "received": "2026-11-26T10:59:16.000000Z",
        "service": "payments",
        "reason": "on call",
        "metadata": {"n": 42, "ok": True, "tags": ["x", "y"]},
    }
    assert search_text(event) == "42 x y on call payments"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=6), _JSON, max_size=6), st.randoms(use_true_random=False))
def test_search_text_depends_on_content_not_key_order(event: dict[str, Any], rng: Any) -> None:
    """The words in the order ingest indexes them (keys as sent) are the words that verify
    and the search recheck derive from the stored body (keys in RFC 8785 order)."""

    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rng.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    stored = json.loads(canonical(event))
    assert search_text(shuffled(event)) == search_text(stored)


def test_columns_are_what_the_stores_index() -> None:
    """id as 16 bytes, time in microseconds, and the context ids when present."""
    event = {
        "id": "0192f0c1-8a3b-7c4d-9e2f-0123456789ab",
        "time": "2026-11-26T10:59:15.123456Z",
        "service": "payments",
        "action": "charge.create",
        "actor": {"id": "u-1"},
        "outcome": "failure",
        "context": {"request_id": "r-1"},
    }
    assert derived.columns(event) == (
        bytes.fromhex("0192f0c18a3b7c4d9e2f0123456789ab"),
        1_795_690_755_123_456,
        "payments",
        "charge.create",
        "u-1",
        "failure",
        "r-1",
        None,
    )
