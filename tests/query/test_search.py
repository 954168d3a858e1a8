"""Search, count, histogram and trace on a real store, checked against a Python reference.

The reference evaluator below states the query semantics independently of SQL; the
hypothesis tests generate queries and demand identical results from the database.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasslog.derived import search_text
from glasslog.errors import ConfigError, NotFoundError, QueryError
from glasslog.event import epoch_us, parse_time
from glasslog.log import MISSING, _fingerprint, _format_us
from glasslog.query.language import (
    And,
    Compare,
    Everything,
    Has,
    Match,
    Node,
    Not,
    Or,
    Text,
    parse,
)
from glasslog.query.plan import compile_query
from glasslog.store.search import BUCKETS_US, MAX_BUCKETS, bucket_size, bucket_start
from glasslog.testing import TemporaryLog
from tests.conftest import BACKENDS, backend_log

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SERVICES = ["payments", "auth", "billing"]
ACTIONS = ["db.query", "db.drop", "user.login", "user.logout"]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo"]


def _dataset() -> list[dict[str, Any]]:
    """120 events with variety: missing fields, arrays, numbers, booleans, out-of-order times."""
    events = []
    for i in range(120):
        meta: dict[str, Any] = {"rows": i % 7, "table": ["cards", "users", "orders"][i % 3]}
        if i % 4 == 0:
            meta["tags"] = [WORDS[i % 5], WORDS[(i + 1) % 5]]
        if i % 5 == 0:
            meta["ok"] = i % 2 == 0
        if i % 6 == 0:
            meta["db"] = {"table": "cards" if i % 12 == 0 else "keys", "ms": i / 8}
        # Mostly increasing times, with a few arriving late (older than their neighbours).
        minutes = i * 10 if i % 17 else i * 10 - 600
        event: dict[str, Any] = {
            "time": (NOW - timedelta(hours=24) + timedelta(minutes=minutes)).isoformat(),
            "service": SERVICES[i % 3],
            "action": ACTIONS[i % 4],
            "outcome": ["success", "failure", "denied"][i % 3 if i % 5 else 0],
            "actor": {"id": f"u-{i % 9}", "type": ["user", "service", "machine"][i % 3]},
            "context": {"request_id": f"req-{i // 4}", "trace_id": f"tr-{i // 6}"},
            "reason": f"{WORDS[i % 5]} {WORDS[(i * 3) % 5]} {WORDS[(i * 7) % 5]}",
            "metadata": meta,
        }
        if i % 8:
            event["target"] = {"type": "record", "id": f"rec-{i % 11}"}
        events.append(event)
    return events


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both backends: the same answers are the contract."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def loaded(backend: str) -> Iterator[tuple[TemporaryLog, list[dict[str, Any]]]]:
    with backend_log(backend) as tlog:
        receipts = tlog.submit(_dataset())
        assert all(r.ok for r in receipts)
        tlog.checkpoint()
        stored = [tlog.log.get(str(seq)) for seq in range(tlog.store.size())]
        yield tlog, stored


# -- the reference semantics -----------------------------------------------------------


def _get(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _glob(pattern: str, value: str) -> bool:
    return (
        re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value, re.S) is not None
    )


def _scalar_matches(node: Match, item: Any) -> bool:
    if isinstance(item, bool):
        return not node.wildcard and node.value == ("true" if item else "false")
    if isinstance(item, str):
        return _glob(node.value, item) if node.wildcard else item == node.value
    if isinstance(item, int | float) and not node.wildcard:
        try:
            return float(node.value) == item
        except ValueError:
            return False
    return False


def reference(node: Node, event: dict[str, Any]) -> bool:
    """Whether ``event`` matches ``node``: the documented semantics, in plain Python."""
    if isinstance(node, Everything):
        return True
    if isinstance(node, And):
        return all(reference(n, event) for n in node.nodes)
    if isinstance(node, Or):
        return any(reference(n, event) for n in node.nodes)
    if isinstance(node, Not):
        return not reference(node.node, event)
    if isinstance(node, Has):
        return node.field == "seq" or _get(event, node.field) is not None
    if isinstance(node, Text):
        words = _tokens(search_text({k: v for k, v in event.items() if k != "seq"}))
        want = _tokens(node.text)
        if not want:
            return False
        return any(words[i : i + len(want)] == want for i in range(len(words)))
    if isinstance(node, Compare):
        value = event["seq"] if node.field == "seq" else _get(event, node.field)
        if node.field == "time":
            value = datetime.fromisoformat(value)
        items = value if isinstance(value, list) else [value]
        ops = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
               "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}  # fmt: skip
        return any(
            (isinstance(v, datetime) or (isinstance(v, int | float) and not isinstance(v, bool)))
            and ops[node.op](v, node.value)
            for v in items
        )
    if isinstance(node, Match):
        value = str(event["seq"]) if node.field == "seq" else _get(event, node.field)
        if value is None or isinstance(value, dict):
            return False
        if node.field.startswith("metadata.") and isinstance(value, list):
            return any(_scalar_matches(node, v) for v in value if not isinstance(v, dict | list))
        return _scalar_matches(node, value)
    raise AssertionError(node)


def expected(stored: list[dict[str, Any]], query: str) -> list[int]:
    node = parse(query, now=NOW)
    hits = [e for e in stored if reference(node, e)]
    hits.sort(key=lambda e: (e["time"], e["seq"]), reverse=True)
    return [e["seq"] for e in hits]


def found(tlog: TemporaryLog, query: str, *, page: int = 1000) -> list[int]:
    seqs: list[int] = []
    cursor = None
    while True:
        result = tlog.log.search(query, limit=page, cursor=cursor, now=NOW)
        seqs += [e["seq"] for e in result.events]
        cursor = result.cursor
        if cursor is None:
            return seqs


QUERIES = [
    "",
    "service:payments",
    "service:pay*",
    "action:db.*",
    "-actor.type:machine",
    "service:payments action:db.* outcome:failure",
    "metadata.table:cards",
    "metadata.db.table:cards",
    "metadata.tags:alpha",
    "metadata.rows:3",
    "metadata.rows>4",
    "metadata.db.ms<2",
    "metadata.ok:true",
    "has:metadata.db",
    "-has:target",
    "target.id:rec-3",
    "target.id:rec-1*",
    "user:u-1 OR user:u-2",
    "(service:auth OR service:billing) -outcome:success",
    "alpha",
    '"alpha bravo"',
    "alpha service:auth",
    "request:req-3",
    "trace:tr-2",
    "after:-6h",
    "before:-20h",
    "after:-12h before:-6h service:payments",
    "seq>100",
    "seq:7",
    "metadata.table:cards alpha",
    "-alpha -metadata.table:users",
]


@pytest.mark.parametrize("query", QUERIES)
def test_search_matches_the_reference(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], query: str
) -> None:
    """Each query returns exactly the reference's events, newest first."""
    tlog, stored = loaded
    assert found(tlog, query) == expected(stored, query)


@pytest.mark.parametrize("query", ["", "alpha", "metadata.table:cards", "service:auth"])
def test_pages_through_cursors_give_the_same_order(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], query: str
) -> None:
    """Walking pages of 7 yields the same sequence as one big page."""
    tlog, stored = loaded
    assert found(tlog, query, page=7) == expected(stored, query)


def test_oldest_first_is_the_reverse(loaded: tuple[TemporaryLog, list[dict[str, Any]]]) -> None:
    """sort=time returns the same events in ascending (time, seq) order."""
    tlog, stored = loaded
    for query in ["", "alpha", "metadata.table:cards"]:
        page = tlog.log.search(query, limit=1000, sort="time", now=NOW)
        assert [e["seq"] for e in page.events] == expected(stored, query)[::-1]


def test_cursor_is_stable_while_events_are_ingested(backend: str) -> None:
    """New events arriving between pages neither repeat nor hide the ones being paged."""
    with backend_log(backend) as tlog:
        tlog.submit(_dataset()[:60])
        first = tlog.log.search("", limit=10, now=NOW)
        tlog.submit(_dataset()[60:])
        rest = []
        cursor = first.cursor
        while cursor:
            page = tlog.log.search("", limit=10, cursor=cursor, now=NOW)
            rest += page.events
            cursor = page.cursor
        seqs = [e["seq"] for e in first.events + rest]
        assert len(seqs) == len(set(seqs))
        assert set(range(60)) <= set(seqs)


def test_cursor_of_another_query_is_refused(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]],
) -> None:
    """A cursor only continues the query it came from."""
    tlog, _ = loaded
    page = tlog.log.search("service:auth", limit=5, now=NOW)
    assert page.cursor is not None
    with pytest.raises(Exception, match="another query"):
        tlog.log.search("service:payments", limit=5, cursor=page.cursor, now=NOW)


def test_count_and_count_by_match_the_reference(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]],
) -> None:
    """count and count by agree with the reference, through rollups and raw scans alike."""
    tlog, stored = loaded
    for query in ["", "after:-12h", "after:-10h30m before:-2h", "service:auth", "alpha",
                  "metadata.table:cards", "metadata.tags:alpha after:-12h", "metadata.rows:3",
                  "metadata.table:cards service:auth -alpha"]:  # fmt: skip
        try:
            want = expected(stored, query)
        except QueryError:
            continue
        assert tlog.log.count(query, now=NOW).count == len(want)
        by_actor: dict[str, int] = {}
        for e in stored:
            if e["seq"] in set(want):
                by_actor[e["actor"]["id"]] = by_actor.get(e["actor"]["id"], 0) + 1
        got = dict(tlog.log.count_by(query, "user", top=100, now=NOW))
        assert got == by_actor


def test_count_past_the_cap_is_an_estimate(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]],
) -> None:
    """Past the cap the count is marked as an estimate."""
    tlog, _ = loaded
    for query in ["service:auth", "metadata.table:cards", "metadata.table:cards -alpha"]:
        result = tlog.log.count(query, now=NOW, cap=10)
        assert not result.exact
        assert result.count >= 10


def test_histogram_buckets_add_up(loaded: tuple[TemporaryLog, list[dict[str, Any]]]) -> None:
    """The histogram's buckets sum to the count, with an adaptive bucket size."""
    tlog, stored = loaded
    result = tlog.log.histogram("after:-24h", now=NOW)
    assert sum(n for _, n in result.buckets) == len(expected(stored, "after:-24h"))
    assert len(result.buckets) <= 100
    assert result.bucket_seconds == 900
    for query in ["metadata.table:cards", "metadata.tags:alpha -service:auth", "metadata.rows:3"]:
        result = tlog.log.histogram(query, now=NOW)
        assert sum(n for _, n in result.buckets) == len(expected(stored, query)) > 0


def _reference_histogram(
    stored: list[dict[str, Any]], query: str, start: int, size: int, n: int
) -> list[tuple[str, int]]:
    """Every bucket of ``size`` µs from ``start``, with the matches that fall in it."""
    counts = [0] * n
    for e in stored:
        if e["seq"] in set(expected(stored, query)):
            bucket = (epoch_us(parse_time(e["time"])) - start) // size
            if 0 <= bucket < n:
                counts[bucket] += 1
    return [(_format_us(start + i * size), c) for i, c in enumerate(counts)]


@pytest.mark.parametrize(
    "query", ["after:-24h", "metadata.db.table:cards", "service:auth -alpha", "seq:7", "seq:0"]
)
def test_histogram_lists_every_bucket_of_the_window(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], query: str
) -> None:
    """Buckets run without a gap from the window's start to its end, empty ones with 0,
    and each holds exactly the matches in its time range."""
    tlog, stored = loaded
    result = tlog.log.histogram(query, now=NOW)
    size = int(result.bucket_seconds * 1_000_000)
    start = epoch_us(parse_time(result.buckets[0][0]))
    assert 0 < len(result.buckets) <= 100
    assert result.buckets == _reference_histogram(stored, query, start, size, len(result.buckets))
    if query in ("after:-24h", "metadata.db.table:cards"):
        assert any(n == 0 for _, n in result.buckets)


@pytest.mark.parametrize(
    "query",
    ["time>=0001-01-01", "after:1970-01-01 before:2100-01-01", "after:-700d", "after:-701d"],
)
def test_histogram_of_a_long_window_still_has_at_most_100_buckets(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], query: str
) -> None:
    """Past 100 weeks the bucket grows by whole weeks instead of the buckets multiplying."""
    tlog, stored = loaded
    result = tlog.log.histogram(query, now=NOW)
    assert 0 < len(result.buckets) <= 100
    assert sum(n for _, n in result.buckets) == len(expected(stored, query))
    assert result.bucket_seconds % (7 * 86400) == 0


def test_histogram_of_an_empty_window_is_all_zeros(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]],
) -> None:
    """A window with no match still lists its buckets; with no window there are none."""
    tlog, _ = loaded
    result = tlog.log.histogram("after:2020-01-01 before:2020-01-02", now=NOW)
    assert [n for _, n in result.buckets] == [0] * 96
    assert tlog.log.histogram("service:nobody", now=NOW).buckets == []


@given(low=st.integers(-(2**60), 2**60), span=st.integers(0, 2**60))
def test_bucket_size_fits_any_window(low: int, span: int) -> None:
    """Whatever the window, the chosen bucket gives at most 100 aligned buckets."""
    size = bucket_size(low, low + span)
    start = bucket_start(low, size)
    assert start <= low
    assert -(-(low + span - start) // size) <= MAX_BUCKETS
    assert size in BUCKETS_US or size % (7 * 86400 * 1_000_000) == 0


def test_count_by_keeps_events_without_the_field_apart(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]],
) -> None:
    """Events that lack the field are one group, MISSING, never confused with a value."""
    tlog, stored = loaded
    groups = dict(tlog.log.count_by("", "metadata.db.table", top=10, now=NOW))
    lacking = sum(1 for e in stored if "db" not in e["metadata"])
    assert groups[MISSING] == lacking
    assert None not in groups
    assert sum(groups.values()) == len(stored)
    requests = dict(tlog.log.count_by("", "context.span_id", top=10, now=NOW))
    assert requests == {MISSING: len(stored)}


HUGE = "99999999999999999999999"


def test_numbers_past_64_bits_are_refused_or_match_nothing(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]],
) -> None:
    """A number no database integer can hold never reaches the database: a seq is a query
    error with a caret, a metadata value matches nothing, a cursor or key is refused."""
    tlog, stored = loaded
    log = tlog.log
    with pytest.raises(QueryError, match=r"out of range[^\n]*\n  seq:9+\n      \^"):
        log.search(f"seq:{HUGE}", now=NOW)
    for query in [f"metadata.rows:{HUGE}", f"metadata.rows:-{HUGE}", f"-metadata.rows:{HUGE}"]:
        want = expected(stored, query)
        assert [e["seq"] for e in log.search(query, limit=1000, now=NOW).events] == want
        assert log.count(query, now=NOW).count == len(want)
        assert sum(n for _, n in log.histogram(query, now=NOW).buckets) == len(want)
        assert sum(n for _, n in log.count_by(query, "user", now=NOW)) == len(want)
    raw = f'[1,"{_fingerprint("", "-time")}",{HUGE},1]'.encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(ConfigError, match="not one glasslog issued"):
        log.search("", cursor=cursor, now=NOW)
    with pytest.raises(NotFoundError, match="a seq is at most 9223372036854775807"):
        log.get(HUGE)


def test_trace_is_a_timeline_of_one_request(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]],
) -> None:
    """trace returns every event sharing the id, oldest first."""
    tlog, stored = loaded
    events = tlog.log.trace("req-3")
    want = sorted(
        (e for e in stored if e["context"]["request_id"] == "req-3"),
        key=lambda e: (e["time"], e["seq"]),
    )
    assert [e["seq"] for e in events] == [e["seq"] for e in want]
    assert [e["seq"] for e in tlog.log.trace("tr-2")] == [
        e["seq"] for e in sorted(stored, key=lambda e: (e["time"], e["seq"]))
        if e["context"]["trace_id"] == "tr-2"
    ]  # fmt: skip


def test_query_over_budget_is_cancelled_with_a_clear_error(backend: str) -> None:
    """A query past its time budget fails with advice, not a hang."""
    with backend_log(backend) as tlog:
        for _ in range(20):
            tlog.submit(_dataset())
        tlog.log._search.timeout = 0.0
        with pytest.raises(QueryError, match="budget and was cancelled"):
            tlog.log.search("-metadata.table:nothing", limit=1000, now=NOW)


# -- generated queries -------------------------------------------------------------------

_values = st.sampled_from(
    ["payments", "auth", "cards", "users", "alpha", "bravo", "u-1", "rec-3", "3", "true", "db.*",
     "pay*", "'; DROP TABLE events; --", '"', "a b"]
)  # fmt: skip
_fields = st.sampled_from(
    ["service", "action", "user", "outcome", "metadata.table", "metadata.tags", "metadata.rows",
     "metadata.db.table", "target.id", "request", "metadata.ok", "actor.type"]
)  # fmt: skip


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_leaf = st.one_of(
    st.builds(
        lambda f, v: f"{f}:{_quote(v)}" if " " in v or '"' in v or "'" in v else f"{f}:{v}",
        _fields,
        _values,
    ),
    st.sampled_from(WORDS).map(str),
    st.builds(lambda a, b: f'"{a} {b}"', st.sampled_from(WORDS), st.sampled_from(WORDS)),
    st.sampled_from(["after:-6h", "before:-3h", "metadata.rows>2", "seq<50", "has:metadata.db"]),
)
_query = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} {b}", inner, inner),
        st.builds(lambda a, b: f"({a} OR {b})", inner, inner),
        st.builds(lambda a: f"-({a})", inner),
    ),
    max_leaves=5,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=_query)
def test_generated_queries_match_the_reference(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], query: str
) -> None:
    """Random queries (injection attempts included) give the reference's answer or a QueryError."""
    tlog, stored = loaded
    try:
        want = expected(stored, query)
    except QueryError:
        with pytest.raises(QueryError):
            tlog.log.search(query, limit=10, now=NOW)
        return
    assert found(tlog, query) == want
    assert tlog.store.size() == len(stored)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=60) | _query.map(lambda q: q.replace(" ", "")))
def test_any_text_runs_or_is_a_query_error(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], text: str
) -> None:
    """Any input either runs (SQL the database accepts) or is a QueryError from the parser."""
    tlog, stored = loaded
    try:
        compile_query(parse(text, now=NOW))
    except QueryError:
        return
    failure = ""
    try:
        tlog.log.search(text, limit=5, now=NOW)
        tlog.log.count(text, now=NOW)
    except QueryError as exc:
        failure = str(exc)
    assert "could not run" not in failure, f"the database rejected the SQL for {text!r}"
    assert tlog.store.size() == len(stored)


def test_the_field_index_keeps_strings_that_read_as_numbers_apart(backend: str) -> None:
    """ "3.0" (a string) is not the number 3: the field index must not convert it.

    SQLite once declared fields.value as ANY, which outside STRICT tables is numeric
    affinity: the string was stored as the integer 3 and matched metadata.v:3.
    """
    with backend_log(backend) as tlog:
        tlog.submit([{**_dataset()[0], "metadata": {"v": "3.0"}},
                     {**_dataset()[1], "metadata": {"v": 3}}])  # fmt: skip
        assert found(tlog, "metadata.v:3") == [1]
        assert found(tlog, "metadata.v:3.0") == [1, 0]  # the number 3 == 3.0, and the string
        assert found(tlog, 'metadata.v:"3.0" -metadata.v>2') == [0]


def test_the_rest_of_a_field_query_is_known_to_be_time_only() -> None:
    """Counting a metadata equality in a time window reads only the field index."""

    def rest_time_only(query: str) -> bool:
        return compile_query(parse(query, now=NOW)).rest_time_only

    assert rest_time_only("metadata.table:cards")
    assert rest_time_only("metadata.table:cards after:-12h before:-1h")
    assert not rest_time_only("metadata.table:cards service:auth")
    assert not rest_time_only("metadata.table:cards (after:-12h OR service:auth)")
