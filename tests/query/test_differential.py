"""Differential test: random queries over the same random events, SQLite against PostgreSQL.

test_search.py checks each backend against a Python reference on a tidy dataset;
this one needs no reference. It loads one seeded, deliberately messy dataset —
numbers that read as strings and strings that read as numbers, arrays, nested
objects, accents, LIKE and GLOB metacharacters, out-of-order times — into both
backends, then demands identical answers to generated queries: search results
in both orders and through cursors, counts, count by and histograms.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasslog.errors import QueryError
from glasslog.testing import TemporaryLog
from tests.conftest import backend_log
from tests.query.test_search import _quote

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STRINGS = ["pay-x", "Pay", "3", "3.0", "true", "café", "Cafe", "a%b", "a_b", "a*b", "x\\y",
           "rec-1", "rec-10", "", "two words", "ünïcode", "[bracket]", "?q"]  # fmt: skip
WORDS = ["alpha", "Bravo", "db.query", "café", "naïve", "ÆØ", "x1", "7", "3.5", "rotation"]
KEYS = ["a", "b", "n", "tags", "db", "ok"]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 2 else 5)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice([3, -1, 0, 2, 10, 1000000])
    if kind == 2:
        return rng.choice([3.0, 2.5, -0.5, 1e-3])
    if kind == 3:
        return rng.random() < 0.5
    if kind == 4:
        return rng.choice(STRINGS[:6])
    if kind in (5, 6):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {k: _value(rng, depth + 1) for k in rng.sample(KEYS, rng.randrange(1, 3))}


def _dataset(
    *,
    seed: int = 20261126,
    count: int = 400,
    words: list[str] | None = None,
    trace_ids: bool = False,
) -> list[dict[str, Any]]:
    """The messy events both backends must agree on (test_match.py draws its own: other
    ``reason`` words, and trace ids too)."""
    rng = random.Random(seed)
    reasons = WORDS if words is None else words
    events = []
    for _ in range(count):
        event: dict[str, Any] = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time": (NOW - timedelta(seconds=rng.randrange(3 * 86400))).isoformat(),
            "service": rng.choice(["payments", "pay-x", "Payments", "auth", "a_b", "pay_x"]),
            "action": rng.choice(["db.query", "db.drop", "user.login", "dbxquery"]),
            "outcome": rng.choice(["success", "failure", "denied"]),
            "actor": {"id": f"u-{rng.randrange(12)}", "type": rng.choice(["user", "service"])},
            "context": {"request_id": f"req-{rng.randrange(60)}"},
            "reason": " ".join(rng.choice(reasons) for _ in range(rng.randrange(6))),
            "metadata": {k: _value(rng) for k in rng.sample(KEYS, rng.randrange(len(KEYS)))},
        }
        if rng.random() < 0.7:
            event["target"] = {"type": "record", "id": rng.choice(STRINGS)}
        if trace_ids and rng.random() < 0.3:
            event["context"]["trace_id"] = f"tr-{rng.randrange(20)}"
        events.append(event)
    return events


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[TemporaryLog, TemporaryLog]]:
    """The dataset in SQLite and in PostgreSQL: the same events under the same seqs."""
    events = _dataset()
    with backend_log("sqlite") as lite, backend_log("postgres") as pg:
        for log in (lite, pg):
            for start in range(0, len(events), 100):
                assert all(r.ok for r in log.submit(events[start : start + 100]))
        assert lite.store.size() == pg.store.size() == len(events)
        yield lite, pg


def _term(value: str) -> str:
    plain = value and all(ch.isalnum() or ch in "-.*%_?" for ch in value)
    return value if plain else _quote(value)


_fields = st.sampled_from(
    ["service", "action", "outcome", "user", "actor.type", "target.id", "request",
     *[f"metadata.{k}" for k in KEYS], "metadata.db.a", "metadata.db.n", "metadata.tags.a"]
)  # fmt: skip
_values = st.sampled_from(
    [*STRINGS, "pay*", "*y-*", "Pay*", "*", "a%*", "a_*", "rec-1*", "caf*", "-1", "0", "1e6",
     "false", "payments", "db.*", "u-1", "req-7"]
)  # fmt: skip
_leaf = st.one_of(
    st.builds(lambda f, v: f"{f}:{_term(v)}", _fields, _values),
    st.builds(
        lambda f, op, n: f"metadata.{f}{op}{n}",
        st.sampled_from(["a", "n", "tags", "db.n", "b"]),
        st.sampled_from([">", ">=", "<", "<="]),
        st.sampled_from(["0", "2.5", "3", "-1", "1000"]),
    ),
    st.builds(_term, st.sampled_from(WORDS)),
    st.builds(lambda a, b: _quote(f"{a} {b}"), st.sampled_from(WORDS), st.sampled_from(WORDS)),
    st.builds(lambda f: f"has:{f}", _fields),
    st.sampled_from(["after:-36h", "before:-12h", "seq<200", "seq>=350", "received<2000-01-01"]),
)
_query = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} {b}", inner, inner),
        st.builds(lambda a, b: f"({a} OR {b})", inner, inner),
        st.builds(lambda a: f"-({a})", inner),
    ),
    max_leaves=4,
)


def _all(log: TemporaryLog, query: str, *, sort: str = "-time", page: int = 1000) -> list[int]:
    seqs: list[int] = []
    cursor = None
    while True:
        result = log.log.search(query, limit=page, sort=sort, cursor=cursor, now=NOW)
        seqs += [e["seq"] for e in result.events]
        cursor = result.cursor
        if cursor is None:
            return seqs


def _answers(log: TemporaryLog, query: str) -> dict[str, Any] | str:
    """Everything the query answers on one backend, or its QueryError message."""
    try:
        newest = _all(log, query)
        return {
            "newest first": newest,
            "oldest first": _all(log, query, sort="time"),
            "pages of 7": _all(log, query, page=7),
            "count": log.log.count(query, now=NOW),
            "by user": log.log.count_by(query, "user", top=5, now=NOW),
            "by metadata.a": log.log.count_by(query, "metadata.a", top=100, now=NOW),
            "histogram": log.log.histogram(query, now=NOW),
        }
    except QueryError as exc:
        return str(exc)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=_query)
def test_both_backends_give_the_same_answers(
    pair: tuple[TemporaryLog, TemporaryLog], query: str
) -> None:
    """SQLite and PostgreSQL agree on every answer (or on the error) for generated queries."""
    lite, pg = pair
    want = _answers(lite, query)
    assert "could not run" not in str(want), want
    assert _answers(pg, query) == want


@pytest.mark.parametrize(
    "query",
    ["", "metadata.a:3", "metadata.tags:true", "metadata.a:caf*", "metadata.n>2.5", "café",
     '"db query"', "service:a_*", "service:Pay*", "service:pay_*", "target.id:a_b",
     "-has:metadata.db", "has:metadata.db.a", "metadata.db.a:*", "has:target"],
)  # fmt: skip
def test_chosen_queries_agree_and_match_something(
    pair: tuple[TemporaryLog, TemporaryLog], query: str
) -> None:
    """Hand-picked edge cases agree, and each matches some events but not all of them
    (so agreement is not the trivial agreement of two empty answers)."""
    lite, pg = pair
    want = _answers(lite, query)
    assert isinstance(want, dict)
    assert 0 < len(want["newest first"]) < (400 if query else 401)
    assert _answers(pg, query) == want
