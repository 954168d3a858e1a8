"""The Python matcher against the compiled SQL: the same answers, on both backends.

``glasslog.query.match`` rechecks every search result against its signed body, so
it must agree with the SQL that chose the result: where it is stricter, honest
events are reported as tampering; where it is looser, tampering goes unseen. The
differential test loads one messy dataset (test_differential.py's values) into each
backend and demands, for generated queries, that the matcher picks out exactly the
events the database returns with the recheck off. Unit cases below pin each node
type on its own.

Phrases are drawn from words that occur in ``reason`` only, so that no phrase can
match across two values: where one value's words end and the next one's begin
depends on the order in which ``search_text`` walks the event, which these tests
do not fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasslog.errors import QueryError
from glasslog.log import Log
from glasslog.query.language import Match, Node, Or, Text, parse
from glasslog.query.match import matches
from glasslog.query.plan import POSTGRES, SQLITE, Dialect, compile_query
from glasslog.query.words import MAX_POSITION
from glasslog.store.base import event_of
from glasslog.testing import TemporaryLog
from tests.conftest import BACKENDS, backend_log
from tests.query.test_differential import _dataset as _events
from tests.query.test_differential import _fields, _term, _values
from tests.query.test_search import _quote

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
REASON_WORDS = ["alpha", "Bravo", "naïve", "ÆØ", "x1", "rotation", "zulu"]
"""Words of ``reason`` and of no other value (see the module docstring)."""
OTHER_WORDS = ["café", "db.query", "pay", "3", "rec", "two", "ünïcode", "success", "u-3"]
"""Words found in other values: searched alone, never in a phrase."""


def _dataset() -> list[dict[str, Any]]:
    return _events(seed=20261127, count=300, words=REASON_WORDS, trace_ids=True)


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request: pytest.FixtureRequest) -> Iterator[tuple[TemporaryLog, list[dict[str, Any]]]]:
    """The dataset on one backend, with each stored body as the recheck decodes it."""
    with backend_log(request.param) as tlog:
        assert all(r.ok for r in tlog.submit(_dataset()))
        bodies = [event_of(tlog.store.get(seq)) for seq in range(tlog.store.size())]
        yield tlog, bodies


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """A test that builds its own log runs on each backend in turn."""
    name: str = request.param
    return name


def _dialect(log: Log) -> Dialect:
    return log._search.dialect


def _sql(log: Log, query: str) -> list[int] | str:
    """The seqs the database returns with the recheck off, or its QueryError."""
    seqs: list[int] = []
    cursor = None
    try:
        while True:
            page = log.search(query, limit=1000, cursor=cursor, now=NOW, unsafe_trust_indexes=True)
            seqs += [e["seq"] for e in page.events]
            cursor = page.cursor
            if cursor is None:
                return sorted(seqs)
    except QueryError as exc:
        return str(exc)


def _python(log: Log, bodies: list[dict[str, Any]], query: str) -> list[int] | str:
    """The seqs whose body the matcher accepts, or the QueryError the query compiles to."""
    try:
        node = parse(query, now=NOW)
        compile_query(node, dialect=_dialect(log))
    except QueryError as exc:
        return str(exc)
    dialect = _dialect(log)
    return [seq for seq, body in enumerate(bodies) if matches(node, body, seq=seq, dialect=dialect)]


_IDS = [e["id"] for e in _dataset()[:3]] + ["0192f0c1-8a3b-7c4d-9e2f-0123456789ab"]
_FIXED = [
    "after:-36h", "before:-12h", "time>=-2d", "time<=-30h", "seq<200", "seq>=250", "seq:7",
    "received<2000-01-01", "received>=2000-01-01", '""', '"--"',
]  # fmt: skip
_leaf = st.one_of(
    st.builds(lambda f, v: f"{f}:{_term(v)}", _fields, _values),
    st.builds(
        lambda f, op, n: f"metadata.{f}{op}{n}",
        st.sampled_from(["a", "n", "tags", "db.n", "b"]),
        st.sampled_from([">", ">=", "<", "<="]),
        st.sampled_from(["0", "2.5", "3", "-1", "1000"]),
    ),
    st.builds(_term, st.sampled_from([*REASON_WORDS, *OTHER_WORDS])),
    st.builds(
        lambda a, b: _quote(f"{a} {b}"),
        st.sampled_from(REASON_WORDS),
        st.sampled_from(REASON_WORDS),
    ),
    st.builds(lambda f: f"has:{f}", st.one_of(_fields, st.just("trace"), st.just("target"))),
    st.builds(lambda t: f"trace:{t}", st.sampled_from(["tr-1", "tr-7", "req-3"])),
    st.builds(lambda i: f"id:{i}", st.sampled_from(_IDS)),
    st.sampled_from(_FIXED),
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


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=_query)
def test_the_matcher_picks_exactly_what_the_database_returns(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], query: str
) -> None:
    """For generated queries, the matcher accepts exactly the events the SQL returns
    (or both refuse the query), so the recheck drops nothing on an intact store."""
    tlog, bodies = loaded
    want = _sql(tlog.log, query)
    assert _python(tlog.log, bodies, query) == want
    if isinstance(want, list):
        page = tlog.log.search(query, limit=1000, now=NOW)
        assert page.mismatched == ()


@pytest.mark.parametrize(
    "query",
    ["metadata.a:3", "metadata.tags:true", "metadata.a:caf*", "metadata.n>2.5", "café",
     '"alpha bravo"', "service:a_*", "service:Pay*", "target.id:a_b", "target.id:3",
     "-has:metadata.db", "has:metadata.db.a", "metadata.db.a:*", "has:target", "trace:tr-1",
     "after:-36h -alpha", "rec", "x1 OR zulu"],
)  # fmt: skip
def test_chosen_queries_agree_and_match_some_events(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], query: str
) -> None:
    """Hand-picked edge cases agree, each matching some events but not all (so agreement
    is not that of two empty answers)."""
    tlog, bodies = loaded
    want = _sql(tlog.log, query)
    assert isinstance(want, list)
    assert 0 < len(want) < len(bodies)
    assert _python(tlog.log, bodies, query) == want


def test_phrases_past_postgres_position_cap_agree(backend: str) -> None:
    """In an event of more than 16,383 words, PostgreSQL caps word positions and the
    matcher, told the dialect, caps them too: a phrase past the cap matches (or not)
    on both alike, negated or not, while the uncapped reading differs."""
    filler = " ".join(["w"] * 4000)
    strings = {f"s{j}": f"{filler} p{j} q{j}" for j in range(5)}
    event = {"service": "big", "action": "db.query", "actor": {"id": "u"},
             "reason": strings.pop("s0"), "metadata": strings}  # fmt: skip
    with backend_log(backend) as tlog:
        assert all(r.ok for r in tlog.submit([event]))
        body = event_of(tlog.store.get(0))
        dialect = _dialect(tlog.log)
        for j in range(5):
            for query in (f'"p{j} q{j}"', f'-"p{j} q{j}"', f'"w p{j}"', f"p{j}"):
                assert _python(tlog.log, [body], query) == _sql(tlog.log, query), query
        capped = [
            j
            for j in range(5)
            if matches(Text(f"p{j} q{j}", phrase=True), body, seq=0, dialect=SQLITE)
            != matches(Text(f"p{j} q{j}", phrase=True), body, seq=0, dialect=POSTGRES)
        ]
        assert len(capped) == 1, "one value's words lie past the cap, whatever the order"
        assert (_sql(tlog.log, f'"p{capped[0]} q{capped[0]}"') == []) is (dialect is POSTGRES)


# -- each node type on its own ------------------------------------------------------------

EVENT: dict[str, Any] = {
    "id": "0192f0c1-8a3b-7c4d-9e2f-0123456789ab",
    "time": "2026-11-26T10:00:00.000000Z",
    "received": "2026-11-26T10:00:01.000000Z",
    "service": "payments",
    "action": "db.query",
    "outcome": "failure",
    "actor": {"id": "u-1", "type": "user"},
    "context": {"request_id": "req-9"},
    "target": {"type": "record", "id": "a*b"},
    "reason": "Rotated the naïve keys",
    "metadata": {
        "table": "cards",
        "rows": 3,
        "ratio": 2.5,
        "ok": True,
        "none": None,
        "tags": ["x", 7, False, ["nested"], {"k": "v"}],
        "db": {"name": "main", "ms": 12},
    },
}


def _holds(query: str, event: dict[str, Any] = EVENT, *, seq: int = 42) -> bool:
    node = parse(query, now=NOW)
    compile_query(node)  # a query the matcher sees has compiled
    return matches(node, event, seq=seq)


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("service:payments", True), ("service:Payments", False), ("service:pay*", True),
        ("service:*ments", True), ("service:*x*", False), ("action:db.*", True),
        ("user:u-1", True), ("user:u-*", True), ("outcome:failure", True),
        ("request:req-9", True), ("trace:req-9", False), ("actor.type:user", True),
        ("target.id:a\\*b", True), ('target.id:"a*b"', True), ("target.id:axb", False),
        ("target.id:a*", True), ("reason:Rotated*", True), ("context.span_id:*", False),
        ("id:0192F0C1-8A3B-7C4D-9E2F-0123456789AB", True),
        ("id:0192f0c1-8a3b-7c4d-9e2f-0123456789ac", False),
        ("seq:42", True), ("seq:41", False),
    ],
)  # fmt: skip
def test_match_on_schema_fields(query: str, want: bool) -> None:
    """field:value on schema fields: exact text, or a pattern where only '*' is special."""
    assert _holds(query) is want


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("metadata.table:cards", True), ("metadata.table:card*", True),
        ("metadata.rows:3", True), ("metadata.rows:3.0", True), ("metadata.rows:\"3\"", True),
        ("metadata.rows:3*", False), ("metadata.ratio:2.5", True), ("metadata.ok:true", True),
        ("metadata.ok:1", False), ("metadata.tags:x", True), ("metadata.tags:7", True),
        ("metadata.tags:false", True), ("metadata.tags:nested", False), ("metadata.tags:v", False),
        ("metadata.tags.k:v", False), ("metadata.db.name:main", True), ("metadata.db:main", False),
        ("metadata.none:null", False), ("metadata.missing:x", False),
    ],
)  # fmt: skip
def test_match_on_metadata(query: str, want: bool) -> None:
    """metadata.x:v matches a scalar, or a scalar element of an array, as text, number or
    boolean; never inside nested arrays or objects, and a pattern matches strings only."""
    assert _holds(query) is want


def test_schema_fields_match_strings_only() -> None:
    """A number where the schema has text matches nothing: PostgreSQL reads such fields as
    strings only, and SQLite's json_extract yields a number that equals no text."""
    event = {**EVENT, "target": {"id": 3}}
    assert not _holds("target.id:3", event)
    assert not _holds("target.id:3*", event)


def test_a_body_without_a_valid_id_or_time_matches_no_condition_on_them() -> None:
    """A body that verify would refuse makes the recheck drop the row, not crash."""
    event = {k: v for k, v in EVENT.items() if k != "id"} | {"time": "yesterday"}
    assert not _holds("id:0192f0c1-8a3b-7c4d-9e2f-0123456789ab", event)
    assert not _holds("after:2000-01-01", event)
    assert not _holds("before:2100-01-01", event)


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("after:2026-11-26T10:00", True), ("after:2026-11-26T10:00:01", False),
        ("before:2026-11-26T10:00", False), ("time<=2026-11-26T10:00", True),
        ("time>2026-11-26T10:00", False), ("received>2026-11-26T10:00", True),
        ("received<2026-11-26T10:00:01", False), ("received<=2026-11-26T10:00:01", True),
        ("seq>41", True), ("seq>=43", False), ("metadata.rows>2", True),
        ("metadata.rows<3", False), ("metadata.ratio<=2.5", True), ("metadata.tags>6", True),
        ("metadata.ok>0", False), ("metadata.db>0", False), ("metadata.table>0", False),
    ],
)  # fmt: skip
def test_compare(query: str, want: bool) -> None:
    """Times compare as instants, seqs and metadata numbers (or array elements) as numbers;
    booleans, strings and objects never compare."""
    assert _holds(query) is want


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("has:target", True), ("has:source", False), ("has:trace", False),
        ("has:request", True), ("has:metadata.none", True), ("has:metadata.db.ms", True),
        ("has:metadata.tags.k", False), ("has:id", True), ("has:seq", True),
    ],
)  # fmt: skip
def test_has(query: str, want: bool) -> None:
    """has:FIELD is true when the path exists through objects, an explicit null included."""
    assert _holds(query) is want


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("rotated", True), ("NAIVE", True), ("naïve", True), ('"the naive keys"', True),
        ('"keys naive"', False), ("cards", True), ("12", True), ("db", True),
        ('"db query"', True), ("u", True), ("record", True), ("0192f0c1", False),
        ("2026", False), ('"--"', False), ("nested", True), ("true", False),
    ],
)  # fmt: skip
def test_text(query: str, want: bool) -> None:
    """Words and phrases are found in the strings and numbers of the event, not its id,
    times or booleans; a phrase without words matches nothing."""
    assert _holds(query) is want


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("", True), ("-service:auth", True), ("-has:source", True), ("-metadata.missing:x", True),
        ("service:payments outcome:success", False), ("service:auth OR outcome:failure", True),
        ("NOT (service:auth OR rotated)", False), ("-(-service:payments)", True),
    ],
)  # fmt: skip
def test_structure(query: str, want: bool) -> None:
    """NOT (which keeps events lacking the field), AND, OR and the empty query."""
    assert _holds(query) is want


def test_trace_recheck_needs_either_id() -> None:
    """The node that trace rechecks with accepts an event holding the id in either field."""
    node: Node = Or(
        (Match("context.request_id", "x", False), Match("context.trace_id", "x", False))
    )
    assert matches(node, {"context": {"trace_id": "x"}}, seq=0)
    assert matches(node, {"context": {"request_id": "x"}}, seq=0)
    assert not matches(node, {"context": {"request_id": "y", "trace_id": "x-1"}}, seq=0)


def test_postgres_phrase_positions_are_capped() -> None:
    """Past word 16,383 PostgreSQL keeps every word at position 16,383: two words there are
    no longer adjacent, and a word keeps its lowest 256 positions only."""
    head = " ".join(["w"] * (MAX_POSITION - 1))
    event = {"reason": f"{head} a b c"}  # a at 16,383; b and c capped to 16,383
    assert matches(Text("a b", phrase=True), event, seq=0, dialect=SQLITE)
    assert not matches(Text("a b", phrase=True), event, seq=0, dialect=POSTGRES)
    assert matches(Text("w a", phrase=True), event, seq=0, dialect=SQLITE)
    assert not matches(Text("w a", phrase=True), event, seq=0, dialect=POSTGRES)
    assert matches(Text("w w", phrase=True), event, seq=0, dialect=POSTGRES)
    assert matches(Text("c", phrase=False), event, seq=0, dialect=POSTGRES)
