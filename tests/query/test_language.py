"""Tests for glasslog.query.language: the query language parsed to an AST."""

from __future__ import annotations

import dataclasses
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glasslog.errors import QueryError
from glasslog.event import validate
from glasslog.query.language import (
    ALIASES,
    KNOWN_FIELDS,
    MAX_DEPTH,
    MAX_QUERY_LENGTH,
    MAX_TERMS,
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
    resolve_field,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def p(query: str) -> Node:
    """Parse against the fixed ``NOW``."""
    return parse(query, now=NOW)


def w(text: str) -> Text:
    return Text(text, phrase=False)


def m(field: str, value: str, wildcard: bool = False) -> Match:
    return Match(field, value, wildcard)


def error_of(query: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        p(query)
    return info.value


# --------------------------------------------------------------------------------------
# Terms
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", " ", "\t\n ", "\u3000"])
def test_empty_query_is_everything(query: str) -> None:
    """A query of nothing but whitespace matches every event."""
    assert p(query) == Everything()


def test_bare_word_is_full_text() -> None:
    """A word without a colon is full text, not a phrase."""
    assert p("timeout") == w("timeout")


def test_quoted_phrase_is_full_text_phrase() -> None:
    """Quotes make a phrase; the words inside keep their spaces."""
    assert p('"drop  table"') == Text("drop  table", phrase=True)


def test_escapes_inside_quotes() -> None:
    """Inside quotes, backslash escapes a quote and a backslash."""
    assert p(r'"say \"hi\" \\ bye"') == Text('say "hi" \\ bye', phrase=True)


def test_field_value_is_a_match() -> None:
    """field:value matches the field exactly."""
    assert p("service:payments") == m("service", "payments")


def test_quoted_value() -> None:
    """A quoted value may hold spaces and escaped quotes."""
    assert p(r'reason:"on call \"P1\""') == m("reason", 'on call "P1"')


def test_empty_quoted_value_matches_the_empty_string() -> None:
    """field:"" is how to match an empty value."""
    assert p('reason:""') == m("reason", "")


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("source.ip:::1", "::1"),
        ("reason:a:b:c", "a:b:c"),
        ("metadata.url:https://example.com/x?a=b", "https://example.com/x?a=b"),
        ("reason:a<b>c", "a<b>c"),
    ],
)
def test_only_the_first_colon_splits_field_and_value(query: str, value: str) -> None:
    """Colons (and < >) after the first colon belong to the value."""
    node = p(query)
    assert isinstance(node, Match)
    assert node.value == value


@pytest.mark.parametrize("field", [f for f in KNOWN_FIELDS if f not in {"time", "received"}])
def test_every_known_field_can_be_matched(field: str) -> None:
    """Every schema field except the times takes field:value."""
    value = {
        "outcome": "failure",
        "actor.type": "user",
        "seq": "12",
        "source.ip": "203.0.113.5",
        "id": "0192f0c1-8a3b-7c4d-9e2f-0123456789ab",
    }.get(field, "x1")
    assert p(f"{field}:{value}") == m(field, value)


@pytest.mark.parametrize(("alias", "field"), sorted(ALIASES.items()))
def test_aliases_resolve_to_canonical_paths(alias: str, field: str) -> None:
    """An alias in a query becomes the canonical field path in the AST."""
    value = "203.0.113.5" if field == "source.ip" else "x1"
    assert p(f"{alias}:{value}") == m(field, value)


def test_issue_aliases_are_present() -> None:
    """The aliases the issue promises map to the fields it names."""
    assert {
        "type": "action",
        "user": "actor.id",
        "ip": "source.ip",
        "request": "context.request_id",
        "trace": "context.trace_id",
        "version": "context.version",
        "function": "context.function",
    }.items() <= ALIASES.items()


def test_known_fields_are_the_event_schema() -> None:
    """KNOWN_FIELDS are exactly the paths of a fully populated validated event, plus seq."""
    event = validate(
        {
            "service": "s",
            "environment": "prod",
            "action": "a.b",
            "category": "c",
            "outcome": "success",
            "time": "2026-11-26T10:00:00Z",
            "reason": "r",
            "actor": {
                "id": "u",
                "type": "user",
                "name": "n",
                "email": "e@example.com",
                "session_id": "s",
            },
            "source": {"ip": "192.0.2.1", "user_agent": "ua", "host": "h"},
            "target": {"type": "t", "id": "i", "name": "n"},
            "context": {
                "request_id": "r",
                "trace_id": "t",
                "span_id": "s",
                "function": "f",
                "module": "m",
                "version": "v",
                "commit": "c",
                "host": "h",
            },
        },
        now=NOW,
    )
    paths = {
        f"{key}.{sub}" if isinstance(value, dict) else key
        for key, value in event.items()
        for sub in (value if isinstance(value, dict) else [None])
    }
    assert paths | {"seq"} == set(KNOWN_FIELDS)


@pytest.mark.parametrize(
    "path", ["metadata.rows", "metadata.db.table", "metadata.user-agent", "metadata.a_1.B-2.c"]
)
def test_metadata_paths(path: str) -> None:
    """Any dotted path of letters, digits, _ and - under metadata is a field."""
    assert p(f"{path}:cards") == m(path, "cards")


def test_has_field() -> None:
    """has:FIELD resolves aliases and accepts metadata paths."""
    assert p("has:user has:metadata.db has:reason") == And(
        (Has("actor.id"), Has("metadata.db"), Has("reason"))
    )


def test_outcome_and_actor_type_values_are_accepted() -> None:
    """Every outcome and actor type of the event schema is a valid value."""
    for outcome in ("success", "failure", "denied", "unknown"):
        assert p(f"outcome:{outcome}") == m("outcome", outcome)
    for kind in ("user", "service", "machine"):
        assert p(f"actor.type:{kind}") == m("actor.type", kind)


def test_id_is_lowercased_like_stored_ids() -> None:
    """Event ids are stored in lowercase, so the query value is lowercased too."""
    assert p("id:0192F0C1-8A3B-7C4D-9E2F-0123456789AB") == m(
        "id", "0192f0c1-8a3b-7c4d-9e2f-0123456789ab"
    )


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("ip:2001:DB8:0::1", "2001:db8::1"),
        ("ip:::ffff:203.0.113.5", "203.0.113.5"),
        ("source.ip:203.0.113.5", "203.0.113.5"),
    ],
)
def test_ip_is_normalized_like_ingest(query: str, value: str) -> None:
    """An IP address is written as ingest stores it, so that any spelling finds it."""
    assert p(query) == m("source.ip", value)


def test_seq_match_is_a_number() -> None:
    """seq:N matches one sequence number; leading zeros do not matter."""
    assert p("seq:007") == m("seq", "7")


# --------------------------------------------------------------------------------------
# Wildcards and escapes
# --------------------------------------------------------------------------------------


def test_star_is_a_wildcard() -> None:
    """An unescaped * in a value makes a wildcard match; the value keeps the star."""
    assert p("action:db.*") == m("action", "db.*", wildcard=True)


def test_several_stars() -> None:
    """Every unescaped star is a wildcard."""
    assert p("actor.email:*@example.*") == m("actor.email", "*@example.*", wildcard=True)


def test_escaped_star_is_literal() -> None:
    r"""\* is a literal star: the value holds * and the match is not a wildcard."""
    assert p(r"action:db.\*") == m("action", "db.*")


def test_star_in_quotes_is_literal() -> None:
    """A quoted value is exact: stars in it are literal."""
    assert p('reason:"5 * 3"') == m("reason", "5 * 3")


def test_mixed_stars_are_refused() -> None:
    """A value with both a wildcard and a literal star cannot be represented, so it fails."""
    error = error_of(r"action:a*\*")
    assert "cannot mix wildcard" in error.message
    assert error.column == 8


def test_wildcard_ip() -> None:
    """An IP wildcard is kept as a pattern (not parsed as an address)."""
    assert p("ip:10.0.*") == m("source.ip", "10.0.*", wildcard=True)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        (r"foo\:bar", "foo:bar"),
        (r"\-5", "-5"),
        (r"a\(b\)", "a(b)"),
        (r"\"x\"", '"x"'),
        (r"a\\b", "a\\b"),
        (r"x\*", "x*"),
    ],
)
def test_escapes_in_bare_words(query: str, text: str) -> None:
    """A backslash makes the next special character literal in a bare word."""
    assert p(query) == w(text)


def test_bare_word_wildcard_is_refused() -> None:
    """Full-text words take no wildcard; the error says how to write a literal star."""
    with pytest.raises(QueryError, match=r"works only in field:value terms") as info:
        p(r"x\* db.*")
    assert info.value.column == 7


def test_unknown_escape_is_refused() -> None:
    """A backslash before an ordinary character is refused, not dropped."""
    with pytest.raises(QueryError, match=r"a backslash must escape one of") as info:
        p(r'reason:"C:\temp"')
    assert info.value.column == 10


# --------------------------------------------------------------------------------------
# Boolean structure
# --------------------------------------------------------------------------------------


def test_implicit_and() -> None:
    """Terms side by side are ANDed, in order."""
    assert p("a b c") == And((w("a"), w("b"), w("c")))


def test_explicit_and_is_the_same_as_implicit() -> None:
    """AND may be written out."""
    assert p("a AND b c") == p("a b c")


def test_or() -> None:
    """OR gives an Or node."""
    assert p("a OR b") == Or((w("a"), w("b")))


def test_and_binds_tighter_than_or() -> None:
    """a b OR c d is (a b) OR (c d)."""
    assert p("a b OR c d") == Or((And((w("a"), w("b"))), And((w("c"), w("d")))))


def test_not_binds_tighter_than_and() -> None:
    """NOT a b is (NOT a) b, and -a OR b is (NOT a) OR b."""
    assert p("NOT a b") == And((Not(w("a")), w("b")))
    assert p("-a OR b") == Or((Not(w("a")), w("b")))


def test_parentheses_override_precedence() -> None:
    """a (b OR c) keeps the OR inside the AND."""
    assert p("a (b OR c)") == And((w("a"), Or((w("b"), w("c")))))


def test_negation_forms() -> None:
    """-term, -(group), -"phrase" and NOT term all negate."""
    assert p("-actor.type:machine") == Not(m("actor.type", "machine"))
    assert p("-(a OR b)") == Not(Or((w("a"), w("b"))))
    assert p('-"drop table"') == Not(Text("drop table", phrase=True))
    assert p("NOT a") == Not(w("a"))
    assert p("NOT(a b)") == Not(And((w("a"), w("b"))))


def test_double_negation_cancels() -> None:
    """--a, NOT -a and -(-a) are a: the tree never holds Not(Not(...))."""
    assert p("--a") == w("a")
    assert p("NOT -a") == w("a")
    assert p("-(-(a))") == w("a")
    assert p("---a") == Not(w("a"))


def test_and_is_flattened() -> None:
    """Nested ANDs, parenthesized or not, become one And."""
    assert p("(a b) (c (d e))") == And((w("a"), w("b"), w("c"), w("d"), w("e")))


def test_or_is_flattened() -> None:
    """Nested ORs become one Or."""
    assert p("(a OR b) OR (c OR (d OR e))") == Or((w("a"), w("b"), w("c"), w("d"), w("e")))


def test_single_group_is_its_content() -> None:
    """(a) is a; ((a)) too."""
    assert p("((a))") == w("a")


def test_negated_and_is_not_flattened_into_its_parent() -> None:
    """-(a b) c keeps the negated group whole."""
    assert p("-(a b) c") == And((Not(And((w("a"), w("b")))), w("c")))


@pytest.mark.parametrize("query", ["a or b", "a and b", "a not b", "Or", "nOT"])
def test_lowercase_keywords_are_words(query: str) -> None:
    """Only uppercase OR, AND and NOT are keywords."""
    node = p(query)
    words = node.nodes if isinstance(node, And) else (node,)
    assert all(isinstance(n, Text) for n in words)


def test_keyword_prefix_is_a_word() -> None:
    """ORACLE and NOTE are words, not keywords."""
    assert p("ORACLE NOTE") == And((w("ORACLE"), w("NOTE")))


def test_quoted_keyword_is_a_phrase() -> None:
    """To search for the word OR, quote it."""
    assert p('a "OR" b') == And((w("a"), Text("OR", phrase=True), w("b")))


@pytest.mark.parametrize("space", ["\u00a0", "\u2003", "\u3000", "\n", "\t", "\r\n", "\x1f"])
def test_any_unicode_whitespace_separates_terms(space: str) -> None:
    """Every character Python calls whitespace separates terms."""
    assert p(f"service:a{space}OR{space}b") == Or((m("service", "a"), w("b")))


@given(st.characters())
def test_word_ends_agree_with_whitespace_skipping(char: str) -> None:
    """The lexer's regexes and its skipping agree on whitespace, so lexing always advances."""
    assert (re.match(r"\s", char) is not None) == char.isspace()
    if char.isspace():
        assert p(f"a{char}b") == And((w("a"), w("b")))
    else:
        parses_or_refuses(f"a{char}b")


def test_parentheses_need_no_spaces() -> None:
    """(a OR b)c is the group ANDed with c; keywords may touch parentheses."""
    assert p("(a OR b)c") == And((Or((w("a"), w("b"))), w("c")))
    assert p("a OR(b)") == Or((w("a"), w("b")))


def test_design_example() -> None:
    """The example in docs/query.md (with a valid actor type) parses to the expected AST."""
    node = p(
        'service:payments action:db.* -actor.type:machine outcome:failure after:-24h "drop table"'
    )
    assert node == And(
        (
            m("service", "payments"),
            m("action", "db.*", wildcard=True),
            Not(m("actor.type", "machine")),
            m("outcome", "failure"),
            Compare("time", ">=", NOW - timedelta(hours=24)),
            Text("drop table", phrase=True),
        )
    )


# --------------------------------------------------------------------------------------
# Times and numbers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-90s", NOW - timedelta(seconds=90)),
        ("-30m", NOW - timedelta(minutes=30)),
        ("-24h", NOW - timedelta(hours=24)),
        ("-7d", NOW - timedelta(days=7)),
        ("-2w", NOW - timedelta(weeks=2)),
        ("-0h", NOW),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T10:00Z", datetime(2026, 11, 1, 10, 0, tzinfo=UTC)),
        ("2026-11-01t10:00z", datetime(2026, 11, 1, 10, 0, tzinfo=UTC)),
        ("2026-11-01T10:00", datetime(2026, 11, 1, 10, 0, tzinfo=UTC)),
        ("2026-11-01T10:00:30", datetime(2026, 11, 1, 10, 0, 30, tzinfo=UTC)),
        ("2026-11-01T10:00:00.5+02:00", datetime(2026, 11, 1, 8, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-01T00:30-01:00", datetime(2026, 11, 1, 1, 30, tzinfo=UTC)),
        ("2026-11-01T10:00:00.123456789Z", datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ('"2026-11-01 10:00Z"', datetime(2026, 11, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_time_forms(text: str, expected: datetime) -> None:
    """after: takes relative times against now and RFC 3339-like absolute times, in UTC."""
    node = p(f"after:{text}")
    assert node == Compare("time", ">=", expected)
    assert isinstance(node, Compare)
    assert isinstance(node.value, datetime)
    assert node.value.tzinfo is UTC


def test_before_is_strictly_less() -> None:
    """before:X is time < X; after:X is time >= X."""
    assert p("after:-24h before:-1h") == And(
        (
            Compare("time", ">=", NOW - timedelta(hours=24)),
            Compare("time", "<", NOW - timedelta(hours=1)),
        )
    )


@pytest.mark.parametrize("op", [">", ">=", "<", "<="])
@pytest.mark.parametrize("field", ["time", "received"])
def test_time_comparisons(field: str, op: str) -> None:
    """time and received compare with every operator, relative times included."""
    assert p(f"{field}{op}2026-11-01") == Compare(field, op, datetime(2026, 11, 1, tzinfo=UTC))  # type: ignore[arg-type]
    assert p(f"{field}{op}-1h") == Compare(field, op, NOW - timedelta(hours=1))  # type: ignore[arg-type]


def test_now_in_another_zone_is_converted_to_utc() -> None:
    """A now with an offset gives the same instant, in UTC."""
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    node = parse("after:now", now=plus_two)
    assert node == Compare("time", ">=", NOW)
    assert isinstance(node, Compare)
    assert isinstance(node.value, datetime)
    assert node.value.tzinfo is UTC


def test_naive_now_is_a_programming_error() -> None:
    """A naive now is refused: it would shift every relative time by the local offset."""
    with pytest.raises(ValueError, match="aware datetime"):
        parse("after:-1h", now=datetime(2026, 11, 26, 12, 0))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("seq>100", Compare("seq", ">", 100)),
        ("seq<=0", Compare("seq", "<=", 0)),
        ("metadata.rows>100", Compare("metadata.rows", ">", 100)),
        ("metadata.rows>=-5", Compare("metadata.rows", ">=", -5)),
        ("metadata.duration_ms<0.5", Compare("metadata.duration_ms", "<", 0.5)),
        ("metadata.x<.5", Compare("metadata.x", "<", 0.5)),
        ("metadata.x>1e3", Compare("metadata.x", ">", 1000.0)),
        ("metadata.x>2.0", Compare("metadata.x", ">", 2.0)),
    ],
)
def test_number_comparisons(query: str, expected: Compare) -> None:
    """Integral text gives an int, anything else numeric a float."""
    node = p(query)
    assert node == expected
    assert isinstance(node, Compare)
    assert type(node.value) is type(expected.value)


# --------------------------------------------------------------------------------------
# Errors: message and caret column
# --------------------------------------------------------------------------------------


ERRORS: list[tuple[str, str, int]] = [
    # syntax
    ("a OR", "expected a term after OR, found the end of the query", 4),
    ("OR b", "expected a term before OR", 0),
    ("a AND", "expected a term after AND, found the end of the query", 5),
    ("a AND OR b", "expected a term after AND, found OR", 6),
    ("a OR OR b", "expected a term after OR, found OR", 5),
    ("NOT", "expected a term after NOT, found the end of the query", 3),
    ("a (OR b)", "expected a term before OR", 3),
    ("a (b OR)", "expected a term after OR, found ')'", 7),
    ("()", "empty group: expected a term between '(' and ')'", 1),
    ("a (b", "this '(' is never closed", 2),
    ("a b)", "unexpected ')': there is no '(' for it to close", 3),
    ("(a))", "unexpected ')'", 3),
    ("-", "expected a term or '(' right after '-'", 0),
    ("a - b", "expected a term or '(' right after '-'", 2),
    ("-)", "expected a term or '(' right after '-'", 0),
    ("-OR", "found the keyword OR", 1),
    ('reason:"on call', "unterminated quote", 7),
    ('"abc\\', "unterminated quote", 0),
    ('"a"b', "expected a space or ')' after the closing quote", 3),
    ('""', "empty phrase", 0),
    ('ab"cd"', "unexpected '\"' inside a word", 2),
    ("f(x)", "unexpected '(' inside a word", 1),
    ("action:(a OR b)", "a value cannot be a group", 7),
    ("a\\", "a backslash must escape", 1),
    # fields
    ("actr.id:x", "unknown field 'actr.id'; did you mean 'actor.id'?", 0),
    ("a -Service:x", "unknown field 'Service'; did you mean 'service'?", 3),
    ("host:x", "did you mean 'source.host' or 'context.host'?", 0),
    ("meta.rows>1", "did you mean 'metadata.rows'?", 0),
    ("aftr:-1h", "did you mean 'after'?", 0),
    ("zzzz:1", "unknown field 'zzzz'; known fields are service", 0),
    ("https://example.com", 'quote it: "https://example.com"', 0),
    (":x", "expected a field name before ':'", 0),
    ("<3", "expected a field name before '<'", 0),
    (r"a\-b:c", "unexpected ':' in a word that is not a field term", 4),
    ("metadata:x", "needs a key path", 0),
    ("metadata.:x", "needs a key path", 0),
    ("metadata..a:x", "invalid metadata path", 0),
    ("metadata.a$b:x", "invalid metadata path", 0),
    ("has:actr.id", "unknown field 'actr.id'; did you mean 'actor.id'?", 4),
    ("has:", "expected a field name after 'has:'", 4),
    ("has>x", "has is written with ':'", 3),
    ("service=payments", "':' means equals: write service:payments", 0),
    # values
    ("service:", "expected a value after 'service:'", 8),
    ("(service:)", "expected a value after 'service:'", 9),
    ("outcome:failed", "outcome takes one of success, failure, denied, unknown", 8),
    ("outcome:fail*", "no wildcards", 8),
    ("-actor.type:bot", "actor.type takes one of user, service, machine; found 'bot'", 12),
    ("seq:x", "expected a sequence number", 4),
    ("seq:-1", "expected a sequence number", 4),
    ("seq:99999999999999999999999", "out of range: a seq is at most 9223372036854775807", 4),
    ("seq:9223372036854775808", "out of range", 4),
    ("id:0192f0c1-*", "without wildcards", 12),
    ("a id:*", "without wildcards", 5),
    ("id:not-a-uuid", "expected an event id (a UUID", 3),
    ('-id:""', "expected an event id", 4),
    ("ip:nope", "expected an IP address after 'ip:'", 3),
    # times
    ("time:2026-11-01", "time: cannot match a value; use after:/before:", 4),
    ("received:x", "received: cannot match a value", 8),
    ("after:", "expected a time after 'after:'", 6),
    ("after:yesterday", "expected a time after 'after:' such as -24h", 6),
    ("after:-24", "expected a time after 'after:'", 6),
    ("after:-1y", "expected a time after 'after:'", 6),
    ("after:2026-13-01", "expected a time after 'after:'", 6),
    ("after:2026-11-01T24:00Z", "expected a time after 'after:'", 6),
    ("after:2026-11-01T10:00:60Z", "expected a time after 'after:'", 6),
    ("before:2026-02-30", "is not a valid date", 7),
    ("after:0000-01-01", "is not a valid date", 6),
    ("after:-999999999w", "reaches before the year 1", 6),
    ("time>=", "expected a time after 'time>='", 6),
    ("time>=x", "expected a time after 'time>='", 6),
    ("after>-1h", "after is written with ':'", 5),
    # comparisons
    ("metadata.rows>abc", "expected a number after 'metadata.rows>', found 'abc'", 14),
    ("metadata.rows>", "expected a number after 'metadata.rows>', found nothing", 14),
    ("metadata.rows>1e999", "too large a number", 14),
    ("metadata.rows>inf", "expected a number", 14),
    ("metadata.rows>1_000", "expected a number", 14),
    ("metadata.rows>99999999999999999999", "is outside ±(2**53-1)", 14),
    ("seq>1.5", "expected an integer after 'seq>'", 4),
    ("service>x", "service cannot be compared with >", 7),
    ("user<=x", "user cannot be compared with <=", 4),
    # text
    ("a\x00b", "NUL character", 1),
    ("ab\ud800", "lone surrogate (U+D800)", 2),
    # limits
    ("a " * 3000, "at most 4096 are allowed", MAX_QUERY_LENGTH),
]


@pytest.mark.parametrize(("query", "message", "column"), ERRORS)
def test_errors_say_what_was_expected_at_the_right_column(
    query: str, message: str, column: int
) -> None:
    """Each error's message says what went wrong, and its caret is under the culprit."""
    error = error_of(query)
    assert message in error.message
    assert error.column == column


def test_every_query_error_shows_a_caret() -> None:
    """No query error lacks its caret: every error above, raised by the parser or by the
    planner on either backend, has a column and draws the query with '^' under it."""
    from glasslog.query.plan import POSTGRES, SQLITE, compile_query

    for query, _, _ in ERRORS:
        with pytest.raises(QueryError) as info:
            [compile_query(p(query), dialect=d) for d in (SQLITE, POSTGRES)]
        error = info.value
        assert error.query is not None and error.column is not None, query
        assert str(error).endswith(f"\n  {error.query}\n  {' ' * error.column}^"), query


def test_the_largest_seq_is_accepted() -> None:
    """seq:2**63-1 is a valid (if unlikely) seq; one more is out of range."""
    assert p(f"seq:{2**63 - 1}") == m("seq", str(2**63 - 1))
    assert p("seq:007") == m("seq", "7")


def test_a_query_over_the_length_limit_shows_only_its_start() -> None:
    """The length error points at the first character over the limit, not at 10 MB of text."""
    error = error_of("a" * 10_000_000)
    assert error.column == MAX_QUERY_LENGTH
    assert error.query is not None and len(error.query) == MAX_QUERY_LENGTH + 1


def test_error_str_draws_the_query_with_a_caret() -> None:
    """str(QueryError) shows the query and a caret under the column."""
    error = error_of("service:payments actr.id:alice")
    assert str(error) == (
        "unknown field 'actr.id'; did you mean 'actor.id'?\n"
        "  service:payments actr.id:alice\n"
        "                   ^"
    )


def test_error_display_keeps_columns_for_tabs_and_newlines() -> None:
    """Whitespace is shown as a space so the caret still lines up."""
    error = error_of("a\tb\nactr.id:x")
    assert error.query == "a b actr.id:x"
    assert str(error).endswith("\n  a b actr.id:x\n      ^")


def test_resolve_field_names_aliases_and_metadata() -> None:
    """resolve_field maps aliases and accepts canonical fields and metadata paths."""
    assert resolve_field("user") == "actor.id"
    assert resolve_field("context.trace_id") == "context.trace_id"
    assert resolve_field("metadata.db.table") == "metadata.db.table"


def test_resolve_field_refuses_unknown_with_caret() -> None:
    """resolve_field raises with a suggestion and places the caret when told where."""
    with pytest.raises(QueryError, match=r"did you mean 'actor.id'\?\n  has:actr.id\n      \^"):
        resolve_field("actr.id", query="has:actr.id", column=4)


def test_resolve_field_does_not_offer_query_keywords() -> None:
    """after, before and has are query syntax, not fields: resolve_field refuses them."""
    with pytest.raises(QueryError, match="unknown field 'after'"):
        resolve_field("after")


# --------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------


def test_query_length_limit() -> None:
    """A query longer than MAX_QUERY_LENGTH is refused before parsing."""
    assert p("a" * MAX_QUERY_LENGTH) == w("a" * MAX_QUERY_LENGTH)
    with pytest.raises(QueryError, match=f"at most {MAX_QUERY_LENGTH} are allowed"):
        p("a" * (MAX_QUERY_LENGTH + 1))


def test_depth_limit() -> None:
    """MAX_DEPTH nested groups parse; one more is a QueryError at that '('."""
    assert p("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == w("a")
    query = "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)
    error = error_of(query)
    assert "nested more than 32 deep" in error.message
    assert error.column == MAX_DEPTH


def test_deep_nesting_far_beyond_the_limit_is_a_query_error() -> None:
    """Thousands of parentheses or negations never reach a RecursionError."""
    error_of("(" * 2000 + "a" + ")" * 2000)
    assert p("-" * 3000 + "a") == w("a")
    assert p("-(" * 32 + "a" + ")" * 32) == w("a")


def test_term_limit() -> None:
    """MAX_TERMS terms parse; the next one is refused at its column."""
    node = p(" ".join(["a"] * MAX_TERMS))
    assert isinstance(node, And)
    assert len(node.nodes) == MAX_TERMS
    error = error_of(" ".join(["a"] * (MAX_TERMS + 1)))
    assert "more than 100 terms" in error.message
    assert error.column == 2 * MAX_TERMS


# --------------------------------------------------------------------------------------
# The AST types
# --------------------------------------------------------------------------------------


def test_nodes_are_frozen_slotted_and_hashable() -> None:
    """AST nodes are immutable values: equal when equal, usable as dict keys."""
    node = p("a (b OR -c)")
    assert hash(node) == hash(p("a (b OR -c)"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.nodes = ()  # type: ignore[misc,union-attr]
    for cls in (Text, Match, Compare, Has, Not, And, Or, Everything):
        assert "__slots__" in vars(cls)


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

_FIELD_NAMES = set(KNOWN_FIELDS)
OBJECT_FIELDS = frozenset({"source", "target", "context", "metadata"})  # has:target: any target


def check_tree(node: Node, depth: int = 0) -> int:
    """Assert the AST invariants and return the number of leaf terms."""
    assert depth <= 4 * MAX_DEPTH + 4
    if isinstance(node, And | Or):
        assert len(node.nodes) >= 2
        assert all(type(child) is not type(node) for child in node.nodes)
        assert all(not isinstance(child, Everything) for child in node.nodes)
        return sum(check_tree(child, depth + 1) for child in node.nodes)
    if isinstance(node, Not):
        assert not isinstance(node.node, Not | Everything)
        return check_tree(node.node, depth + 1)
    if isinstance(node, Has) and node.field in OBJECT_FIELDS:
        return 1  # has:source — the event has the object at all
    if isinstance(node, Match | Compare | Has):
        assert node.field in _FIELD_NAMES or node.field.startswith("metadata.")
    if isinstance(node, Compare):
        assert node.op in {">", ">=", "<", "<="}
        if isinstance(node.value, datetime):
            assert node.value.tzinfo is UTC
        else:
            assert node.field == "seq" or node.field.startswith("metadata.")
    if isinstance(node, Match):
        assert not node.wildcard or "*" in node.value
    if isinstance(node, Text):
        assert node.text
    return 0 if isinstance(node, Everything) else 1


def parses_or_refuses(query: str) -> None:
    """The property: a valid AST, or a QueryError whose caret is inside the query."""
    try:
        node = p(query)
    except QueryError as caught:
        error = caught
    else:
        assert check_tree(node) <= MAX_TERMS
        return
    if len(query) > MAX_QUERY_LENGTH:
        return
    assert error.column is not None
    assert error.query is not None
    assert 0 <= error.column <= len(query)
    assert len(error.query) == len(query)
    assert str(error).endswith(f"\n  {error.query}\n  {' ' * error.column}^")


@given(st.text())
def test_any_text_parses_or_raises_query_error(query: str) -> None:
    """No input string raises anything but QueryError."""
    parses_or_refuses(query)


_FRAGMENTS = [
    "(", ")", "-", " ", " ", "\t", "\u00a0", "OR", "AND", "NOT", '"', "\\", "*", ":", ">", ">=",
    "<", "<=", "=", "service", "action:", "db.*", "time>=", "received<", "after:", "before:",
    "has:", "metadata.", "metadata.rows>", "seq>", "seq:", "-24h", "now", "2026-11-01",
    "T10:00Z", "x", "user:", "ip:", "::1", "outcome:", "failure", "1e999", "9" * 20, "0.5",
    "\x00", "\ud800", "Service", "actr.id", "\\*", '\\"', "\\\\", "meta.", "é",
]  # fmt: skip


@settings(max_examples=500)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30).map("".join))
def test_token_soup_parses_or_raises_query_error(query: str) -> None:
    """Random mixtures of the language's own pieces never crash the parser."""
    parses_or_refuses(query)


# A grammar-aware strategy: each draw is (query text, the AST it must parse to).
Case = tuple[str, Node]

_WORDS = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_PLAIN_FIELDS = [
    f
    for f in KNOWN_FIELDS
    if f not in {"time", "received", "seq", "id", "outcome", "actor.type", "source.ip"}
]


def _and(*nodes: Node) -> Node:
    flat: list[Node] = []
    for node in nodes:
        flat.extend(node.nodes if isinstance(node, And) else (node,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(*nodes: Node) -> Node:
    flat: list[Node] = []
    for node in nodes:
        flat.extend(node.nodes if isinstance(node, Or) else (node,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _not(node: Node) -> Node:
    return node.node if isinstance(node, Not) else Not(node)


@st.composite
def leaves(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["word", "phrase", "match", "alias", "meta", "cmp", "has", "time"]))
    word = draw(_WORDS)
    if kind == "word":
        return word, w(word)
    if kind == "phrase":
        words = draw(st.lists(_WORDS, min_size=1, max_size=3))
        return f'"{" ".join(words)}"', Text(" ".join(words), phrase=True)
    if kind in ("match", "alias", "meta"):
        if kind == "match":
            name = draw(st.sampled_from(_PLAIN_FIELDS))
            field = name
        elif kind == "alias":
            name = draw(st.sampled_from(sorted(a for a, f in ALIASES.items() if f != "source.ip")))
            field = ALIASES[name]
        else:
            name = field = f"metadata.{word}"
        star = draw(st.booleans())
        value = draw(_WORDS) + ("*" if star else "")
        return f"{name}:{value}", m(field, value, wildcard=star)
    if kind == "cmp":
        op = draw(st.sampled_from([">", ">=", "<", "<="]))
        number = draw(st.integers(-(2**53) + 1, 2**53 - 1))
        return f"metadata.{word}{op}{number}", Compare(f"metadata.{word}", op, number)  # type: ignore[arg-type]
    if kind == "has":
        name = draw(st.sampled_from([*KNOWN_FIELDS, *ALIASES]))
        return f"has:{name}", Has(ALIASES.get(name, name))
    hours = draw(st.integers(0, 10_000))
    after = draw(st.booleans())
    return (
        f"{'after' if after else 'before'}:-{hours}h",
        Compare("time", ">=" if after else "<", NOW - timedelta(hours=hours)),
    )


def _grouped(case: Case) -> str:
    """The case's text as an operand of '-' or NOT: a group, or a term ('-NOT a' is refused)."""
    text, node = case
    return f"({text})" if isinstance(node, And | Or) or text.startswith("NOT") else text


def _extend(children: st.SearchStrategy[Case]) -> st.SearchStrategy[Case]:
    negated = st.tuples(st.sampled_from(["-", "NOT ", "-", "NOT("]), children).map(
        lambda t: (
            f"NOT ({t[1][0]})" if t[0] == "NOT(" else f"{t[0]}{_grouped(t[1])}",
            _not(t[1][1]),
        )
    )
    anded = st.tuples(
        st.sampled_from([" ", " AND ", "  "]), st.lists(children, min_size=2, max_size=4)
    ).map(
        lambda t: (
            t[0].join(f"({c[0]})" if isinstance(c[1], Or) else c[0] for c in t[1]),
            _and(*(c[1] for c in t[1])),
        )
    )
    ored = st.lists(children, min_size=2, max_size=4).map(
        lambda cs: (" OR ".join(c[0] for c in cs), _or(*(c[1] for c in cs)))
    )
    grouped: st.SearchStrategy[Case] = children.map(lambda c: (f"({c[0]})", c[1]))
    return negated | anded | ored | grouped


queries: st.SearchStrategy[Case] = st.recursive(leaves(), _extend, max_leaves=25)


@settings(max_examples=300)
@given(queries)
def test_grammar_generated_queries_parse_to_the_expected_tree(case: Case) -> None:
    """A query built from the grammar parses to exactly the tree it was built from."""
    text, expected = case
    assert p(text) == expected
    check_tree(expected)


@given(queries, st.sampled_from([" ", "\n", "\u3000", "\t "]))
def test_surrounding_whitespace_does_not_matter(case: Case, space: str) -> None:
    """Whitespace around a query changes nothing."""
    text, expected = case
    assert p(f"{space}{text}{space}") == expected


@given(queries, st.integers(min_value=0))
def test_truncated_queries_parse_or_raise_query_error(case: Case, cut: int) -> None:
    """Cutting a valid query anywhere gives a valid tree or a QueryError, never a crash."""
    text = case[0]
    parses_or_refuses(text[: cut % (len(text) + 1)])


# --------------------------------------------------------------------------------------
# docs/query.md
# --------------------------------------------------------------------------------------

_DOC = Path(__file__).parents[2] / "docs" / "query.md"


def _doc_blocks(language: str) -> list[str]:
    """The ``language`` code blocks of docs/query.md that document this parser."""
    text = _DOC.read_text(encoding="utf-8")
    text = text.partition("## Results, pagination, aggregations and correlation")[0]
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_every_documented_query_parses() -> None:
    """Every example query in docs/query.md parses (the docs cannot drift from the parser)."""
    lines = [line for block in _doc_blocks("query") for line in block.splitlines() if line]
    assert len(lines) > 40
    for line in lines:
        check_tree(p(line))


def test_every_documented_error_is_the_real_error() -> None:
    """Each error shown in docs/query.md is exactly what the parser says for its query."""
    blocks = _doc_blocks("query-error")
    assert len(blocks) >= 5
    for block in blocks:
        query = block.splitlines()[1].removeprefix("  ")
        assert str(error_of(query)) == block.rstrip("\n")


def test_docs_list_every_field_and_alias() -> None:
    """The field table in docs/query.md names every known field and alias."""
    text = _DOC.read_text(encoding="utf-8")
    for name in (*KNOWN_FIELDS, *ALIASES):
        assert f"`{name}`" in text
