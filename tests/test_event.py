"""Tests for glasslog.event: schema v1 validation, time and id helpers, RFC 8785."""

from __future__ import annotations

import copy
import json
import math
import re
import struct
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum, StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glasslog import event as event_module
from glasslog.errors import CanonicalError, EventError
from glasslog.event import (
    DEFAULT_LIMITS,
    SCHEMA_VERSION,
    Limits,
    canonical,
    format_time,
    parse_time,
    uuid7,
    validate,
)

NOW = datetime(2026, 11, 26, 10, 59, 15, 123456, tzinfo=UTC)
NOW_TEXT = "2026-11-26T10:59:15.123456Z"
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def typical() -> dict[str, Any]:
    """A typical client event: ten top-level fields and four metadata keys."""
    return {
        "id": "0192F0C1-8A3B-7C4D-9E2F-0123456789AB",
        "time": "2026-11-26T11:59:15.5+01:00",
        "service": "payments",
        "environment": "prod",
        "action": "db.query",
        "category": "data_access",
        "outcome": "success",
        "actor": {"id": "u_123", "type": "user", "name": "Alice", "email": "alice@example.com"},
        "source": {"ip": "203.0.113.5", "user_agent": "Mozilla/5.0"},
        "context": {"request_id": "req-8f2a", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        "metadata": {"rows": 42, "query": "SELECT 1", "duration_ms": 12.5, "tags": ["a", "b"]},
    }


def minimal(**fields: Any) -> dict[str, Any]:
    """The smallest valid event, plus ``fields``."""
    return {"service": "svc", "action": "user.login", "actor": {"id": "u1"}, **fields}


def problems(raw: object, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, str]:
    """Validate ``raw``, expecting failure, and map each problem path to its message."""
    with pytest.raises(EventError) as caught:
        validate(raw, limits=limits, now=NOW)
    return {p.path: p.message for p in caught.value.problems}


# --------------------------------------------------------------------------------------
# canonical: RFC 8785
# --------------------------------------------------------------------------------------

# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical form.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_numbers_match_rfc8785_appendix_b(bits: str, expected: str) -> None:
    """Every finite sample of RFC 8785 Appendix B serializes exactly as published."""
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonical(value) == expected.encode()
    assert canonical([value]) == f"[{expected}]".encode()
    assert canonical({"n": value}) == f'{{"n":{expected}}}'.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (1e-5, "0.00001"),
        (1e-4, "0.0001"),
        (0.5, "0.5"),
        (1e15, "1000000000000000"),
        (1e16, "10000000000000000"),
        (1.5e16, "15000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (1.2345e-10, "1.2345e-10"),
        (9007199254740991, "9007199254740991"),
        (-9007199254740991, "-9007199254740991"),
        (0, "0"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
    ],
)
def test_numbers_and_literals_follow_ecmascript(value: object, expected: str) -> None:
    """Numbers print as ECMAScript Number::toString does, wherever they occur."""
    assert canonical(value) == expected.encode()
    assert canonical([value]) == f"[{expected}]".encode()


def test_full_example_of_rfc8785_section_3_2_2() -> None:
    """The example of RFC 8785 §3.2.2 canonicalizes to the published bytes."""
    text = r"""{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"""
    # The bytes as RFC 8785 prints them in hexadecimal.
    expected = bytes.fromhex(
        "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 75 65 2c 66 61 6c 73 65 5d"
        "2c 22 6e 75 6d 62 65 72 73 22 3a 5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33"
        "2c 31 65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 5d 2c 22 73 74 72 69"
        "6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f"
        "22 7d"
    )
    assert canonical(json.loads(text)) == expected


def test_string_escaping_of_rfc8785() -> None:
    """Only quote, backslash and controls are escaped; controls without a short form use \\u00xx."""
    value = '\u20ac$\u000f\nA\'B"\\\\"/\x00\x1f\x7f\u2028\U0001f600\b\t\f\r'
    expected = '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/\\u0000\\u001f\x7f\u2028\U0001f600\\b\\t\\f\\r"'
    assert canonical(value) == expected.encode()
    assert canonical([value]) == f"[{expected}]".encode()


def test_keys_sort_by_utf16_code_units_as_in_rfc8785_section_3_2_3() -> None:
    """Keys sort by UTF-16 code units, so an emoji sorts before U+FB33 (RFC 8785 §3.2.3)."""
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = list(json.loads(canonical(value)).values())
    assert order == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]


def test_nested_values_are_compact_and_sorted() -> None:
    """Objects nest with sorted keys and no whitespace; tuples encode as arrays."""
    value = {"b": [1, {"d": None, "c": (True, "x")}], "a": {}}
    assert canonical(value) == b'{"a":{},"b":[1,{"c":[true,"x"],"d":null}]}'


def test_typical_event_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A validated event with ordinary values is encoded without the slow exact encoder."""
    event = validate(typical(), now=NOW)

    def refuse(value: object) -> bytes:
        raise AssertionError("exact encoder used")

    monkeypatch.setattr(event_module, "_encode_exact", refuse)
    assert json.loads(canonical(event)) == event


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "not a JSON number"),
        ({"x": math.inf}, r"at \$\.x is not a JSON number"),
        ([-math.inf], "not a JSON number"),
        (2**53, r"outside ±\(2\*\*53-1\)"),
        ({"a": [-(2**53)]}, r"integer -9007199254740992 at \$\.a\[0\]"),
        ({1: "x"}, "keys must be strings; found int key 1"),
        ({"a": {None: 1}}, r"found NoneType key None at \$\.a"),
        ("\ud800", "lone surrogate U\\+D800"),
        ({"k\udfff": 1}, "lone surrogate U\\+DFFF"),
        (["ok", "\udc00"], r"string at \$\[1\] contains a lone surrogate"),
        ({"x": b"bytes"}, r"bytes at \$\.x has no JSON form"),
        ({1, 2}, "set at \\$ has no JSON form"),
        ({"when": NOW}, r"datetime at \$\.when has no JSON form"),
    ],
)
def test_values_without_a_canonical_form_are_refused(value: object, message: str) -> None:
    """NaN, infinities, unsafe integers, non-string keys, lone surrogates and other types raise."""
    with pytest.raises(CanonicalError, match=message):
        canonical(value)


def test_a_value_that_contains_itself_is_refused() -> None:
    """A cycle raises CanonicalError instead of recursing forever."""
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(CanonicalError, match="nested too deeply, or contains itself"):
        canonical({"a": loop})


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1.0, -0.0, 1e-5, 1e-7, 1e16, 1e21, 5e-324, 0.1, 123.456])
    | st.text()
)
key_text = st.text() | st.sampled_from(["\U0001f600", "\ufb33", "\ue000", "\uffff", "a", "1"])
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(key_text, inner, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_fast_path_equals_exact_encoder(value: object) -> None:
    """For any JSON value, canonical() gives the same bytes as the rule-by-rule encoder."""
    assert canonical(value) == event_module._encode_exact(value)


@given(json_values)
def test_canonical_output_parses_back_to_an_equal_value(value: object) -> None:
    """Canonical JSON is valid JSON that an I-JSON reader (numbers as doubles) reads back."""
    assert json.loads(canonical(value).decode("utf-8"), parse_int=float) == value


@given(st.dictionaries(key_text, json_values, max_size=6))
def test_canonical_is_independent_of_key_insertion_order(value: dict[str, object]) -> None:
    """Two dicts with the same members encode identically, whatever their insertion order."""
    reordered = dict(reversed(list(value.items())))
    assert canonical(reordered) == canonical(value)


# --------------------------------------------------------------------------------------
# Time and ids
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T10:59:15.123456Z",
        "2026-11-26t10:59:15.123456z",
        "2026-11-26 10:59:15.123456Z",
        "2026-11-26T11:59:15.123456+01:00",
        "2026-11-26T05:29:15.123456-05:30",
        "2026-11-26T10:59:15.123456-00:00",
        "2026-11-26T10:59:15.123456789Z",
        "2026-11-26T10:59:15.1234569+00:00",
    ],
)
def test_parse_time_accepts_rfc3339_and_returns_utc(text: str) -> None:
    """Any RFC 3339 offset and precision parses to the same UTC instant, truncated to µs."""
    parsed = parse_time(text)
    assert parsed == NOW
    assert parsed.tzinfo is UTC


def test_parse_time_accepts_whole_seconds_and_short_fractions() -> None:
    """A missing or short fraction means zero microseconds beyond its digits."""
    assert parse_time("2026-11-26T10:59:15Z") == NOW.replace(microsecond=0)
    assert parse_time("2026-11-26T10:59:15.5Z") == NOW.replace(microsecond=500000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-26", "expected an RFC 3339 timestamp"),
        ("2026-11-26T10:59:15", "expected an RFC 3339 timestamp"),
        ("2026-11-26T10:59Z", "expected an RFC 3339 timestamp"),
        ("2026-11-26T24:00:00Z", "expected an RFC 3339 timestamp"),
        ("2026-11-26T10:59:15.Z", "expected an RFC 3339 timestamp"),
        ("2026-11-26T10:59:15.1234567890Z", "expected an RFC 3339 timestamp"),
        ("2026-11-26T10:59:15+0100", "expected an RFC 3339 timestamp"),
        ("20261126T105915Z", "expected an RFC 3339 timestamp"),
        ("\uff12\uff1026-11-26T10:59:15Z", "expected an RFC 3339 timestamp"),
        ("2026-02-30T10:59:15Z", "invalid date or time"),
        ("2026-13-01T10:59:15Z", "invalid date or time"),
        ("0001-01-01T00:00:00+01:00", "invalid date or time"),
        ("2016-12-31T23:59:60Z", "leap seconds are not supported"),
    ],
)
def test_parse_time_refuses_anything_else(text: str, message: str) -> None:
    """Malformed, impossible or unrepresentable timestamps raise ValueError."""
    with pytest.raises(ValueError, match=message):
        parse_time(text)


def test_format_time_writes_utc_with_six_digits() -> None:
    """format_time converts to UTC and always writes six fractional digits and Z."""
    assert format_time(NOW) == NOW_TEXT
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert format_time(plus_two) == NOW_TEXT
    assert format_time(datetime(5, 1, 2, tzinfo=UTC)) == "0005-01-02T00:00:00.000000Z"


def test_format_time_refuses_naive_datetimes() -> None:
    """A naive datetime is refused rather than assumed to be UTC."""
    with pytest.raises(ValueError, match="naive datetime"):
        format_time(datetime(2026, 11, 26))


@given(st.datetimes(timezones=st.just(UTC)))
def test_format_and_parse_time_round_trip(moment: datetime) -> None:
    """parse_time(format_time(t)) is t, and the text has the fixed normal form."""
    text = format_time(moment)
    assert len(text) == 27
    assert parse_time(text) == moment


def test_uuid7_has_version_variant_and_time() -> None:
    """uuid7 is lowercase 8-4-4-4-12 with version 7, RFC variant and the ms timestamp."""
    text = uuid7(NOW)
    assert UUID_TEXT.fullmatch(text)
    millis = int(text.replace("-", "")[:12], 16)
    assert millis == (NOW - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def test_uuid7_sorts_by_time_and_is_unique() -> None:
    """Ids of later instants sort later (to the µs); ids of one instant still differ."""
    times = [NOW + timedelta(microseconds=i) for i in range(0, 5000, 7)]
    ids = [uuid7(moment) for moment in times]
    assert ids == sorted(ids)
    assert len({uuid7(NOW) for _ in range(1000)}) == 1000
    assert UUID_TEXT.fullmatch(uuid7())


def test_uuid7_refuses_naive_and_pre_epoch_times() -> None:
    """uuid7 cannot encode a naive time or a time before 1970."""
    with pytest.raises(ValueError, match="aware datetime"):
        uuid7(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="before 1970"):
        uuid7(datetime(1969, 12, 31, tzinfo=UTC))


# --------------------------------------------------------------------------------------
# validate: normalization
# --------------------------------------------------------------------------------------


def test_schema_version_is_one() -> None:
    """This module implements schema v1."""
    assert SCHEMA_VERSION == 1


def test_typical_event_is_normalized() -> None:
    """A valid event comes back with normalized id, time and ip, and received set to now."""
    event = validate(typical(), now=NOW)
    assert event == {
        "id": "0192f0c1-8a3b-7c4d-9e2f-0123456789ab",
        "time": "2026-11-26T10:59:15.500000Z",
        "received": NOW_TEXT,
        "service": "payments",
        "environment": "prod",
        "action": "db.query",
        "category": "data_access",
        "outcome": "success",
        "actor": {"id": "u_123", "type": "user", "name": "Alice", "email": "alice@example.com"},
        "source": {"ip": "203.0.113.5", "user_agent": "Mozilla/5.0"},
        "context": {"request_id": "req-8f2a", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        "metadata": {"rows": 42, "query": "SELECT 1", "duration_ms": 12.5, "tags": ["a", "b"]},
    }


def test_missing_id_time_and_outcome_get_defaults() -> None:
    """Without id, time and outcome the server assigns a UUIDv7, the receive time and unknown."""
    event = validate(minimal(), now=NOW)
    assert UUID_TEXT.fullmatch(event["id"])
    assert event["id"][:13] == uuid7(NOW)[:13]  # same millisecond timestamp
    assert event["time"] == NOW_TEXT
    assert event["received"] == NOW_TEXT
    assert event["outcome"] == "unknown"


def test_received_is_always_the_server_time() -> None:
    """A client's received value is overwritten, never trusted or checked."""
    event = validate(minimal(received="1999-01-01T00:00:00Z"), now=NOW)
    assert event["received"] == NOW_TEXT
    assert validate(minimal(received=12), now=NOW)["received"] == NOW_TEXT


def test_received_defaults_to_the_current_time() -> None:
    """Without now, received is the current UTC time."""
    before = datetime.now(UTC)
    received = parse_time(validate(minimal())["received"])
    assert before - timedelta(microseconds=1) <= received <= datetime.now(UTC)


def test_null_optional_fields_are_dropped() -> None:
    """A JSON null for an optional field means the field is absent."""
    raw = minimal(
        id=None,
        time=None,
        environment=None,
        reason=None,
        source={"ip": None, "host": "h"},
        actor={"id": "u1", "email": None},
        metadata=None,
    )
    event = validate(raw, now=NOW)
    assert "environment" not in event
    assert "reason" not in event
    assert "metadata" not in event
    assert event["source"] == {"host": "h"}
    assert event["actor"] == {"id": "u1"}
    assert event["time"] == NOW_TEXT


def test_null_inside_metadata_is_data() -> None:
    """Within metadata a null is a value like any other and is kept."""
    event = validate(minimal(metadata={"x": None, "y": [None]}), now=NOW)
    assert event["metadata"] == {"x": None, "y": [None]}


def test_result_shares_no_containers_with_the_input() -> None:
    """The returned event is a fresh structure: changing it leaves the input untouched."""
    raw = typical()
    raw["metadata"]["nested"] = {"list": [1, {"deep": "x"}]}
    original = copy.deepcopy(raw)
    event = validate(raw, now=NOW)
    event["actor"]["id"] = "changed"
    event["metadata"]["nested"]["list"][1]["deep"] = "changed"
    event["metadata"]["tags"].append("c")
    event["context"].clear()
    assert raw == original


def test_integral_floats_become_ints_and_others_stay() -> None:
    """2.0 becomes 2; fractions, huge floats and booleans keep their type."""
    metadata = {"a": 2.0, "b": -0.0, "c": 0.25, "d": 1e300, "e": True, "f": 9007199254740991.0}
    result = validate(minimal(metadata=metadata), now=NOW)["metadata"]
    assert result == metadata
    assert [type(result[k]) for k in "abcdef"] == [int, int, float, float, bool, int]


def test_python_enums_and_tuples_are_accepted_as_plain_json() -> None:
    """StrEnum/IntEnum members become plain str/int and tuples become lists."""

    class Outcome(StrEnum):
        SUCCESS = "success"

    class Level(IntEnum):
        HIGH = 3

    event = validate(minimal(outcome=Outcome.SUCCESS, metadata={"l": Level.HIGH, "t": (1, 2)}))
    assert type(event["outcome"]) is str
    assert type(event["metadata"]["l"]) is int
    assert event["metadata"]["t"] == [1, 2]


def test_time_may_be_an_aware_datetime() -> None:
    """Python callers may pass time as an aware datetime; it is formatted like text."""
    event = validate(minimal(time=NOW.astimezone(timezone(timedelta(hours=-3)))), now=NOW)
    assert event["time"] == NOW_TEXT
    assert "naive datetime" in problems(minimal(time=datetime(2026, 1, 1)))["$.time"]


@pytest.mark.parametrize(
    ("ip", "normal"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("fe80::1%eth0", "fe80::1%eth0"),
    ],
)
def test_source_ip_is_normalized(ip: str, normal: str) -> None:
    """IP addresses are stored in their compressed, lowercase form; IPv4-mapped as IPv4."""
    assert validate(minimal(source={"ip": ip}), now=NOW)["source"]["ip"] == normal


# --------------------------------------------------------------------------------------
# validate: refusals
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, [], "event", 42, True])
def test_non_object_input_is_one_problem_at_the_root(raw: object) -> None:
    """Anything but a JSON object is refused with a single problem at $."""
    found = problems(raw)
    assert list(found) == ["$"]
    assert found["$"].startswith("expected a JSON object, found ")


def test_every_problem_is_listed_with_its_json_path() -> None:
    """validate reports all problems at once, each at its JSON path."""
    raw = {
        "id": "not-a-uuid",
        "time": "yesterday",
        "service": "",
        "action": "User Login",
        "outcome": "ok",
        "actor": {"type": "robot", "nickname": "x"},
        "source": {"ip": "999.1.1.1"},
        "metadata": {"db": {"rows": 2**60}, "items": [1, 2, 3, math.nan], "user-agent": "\x00"},
        "extra": 1,
    }
    found = problems(raw)
    assert set(found) == {
        "$.id",
        "$.time",
        "$.service",
        "$.action",
        "$.outcome",
        "$.actor.type",
        "$.actor.nickname",
        "$.actor.id",
        "$.source.ip",
        "$.metadata.db.rows",
        "$.metadata.items[3]",
        '$.metadata["user-agent"]',
        "$.extra",
    }
    assert found["$.actor.id"] == "required field is missing"
    assert "send big numbers as strings" in found["$.metadata.db.rows"]
    assert "NUL" in found['$.metadata["user-agent"]']


def test_unknown_fields_are_refused_and_point_to_metadata() -> None:
    """Unknown top-level and sub-object fields fail closed with a hint to use metadata."""
    found = problems(minimal(user="bob", target={"kind": "table"}, context={"span": "1"}))
    assert found["$.user"] == "unknown field 'user'; put custom data under metadata"
    assert found["$.target.kind"] == "unknown field 'kind'; put custom data under metadata"
    assert "$.context.span" in found


def test_unknown_field_set_to_null_is_still_unknown() -> None:
    """A null does not excuse an unknown field name."""
    assert "$.color" in problems(minimal(color=None))


def test_non_string_keys_are_refused() -> None:
    """Python callers cannot smuggle in non-string keys."""
    raw: dict[Any, Any] = {**minimal(), 7: "x"}
    found = problems(raw)
    assert found["$"] == "keys must be strings; found number 7"
    found = problems(minimal(metadata={1: "x"}))
    assert found["$.metadata"] == "keys must be strings; found number 1"


@pytest.mark.parametrize("name", ["service", "action", "actor"])
def test_required_fields_are_required(name: str) -> None:
    """service, action and actor must be present (and not null)."""
    raw = minimal()
    del raw[name]
    assert problems(raw) == {f"$.{name}": "required field is missing"}
    assert problems(minimal(**{name: None})) == {f"$.{name}": "required field is missing"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("service", "pay ments", "expected a name of 1 to 128"),
        ("service", "-payments", "expected a name"),
        ("service", 5, "expected a string, found number"),
        ("environment", "", "expected a name"),
        ("category", "a" * 129, "expected a name of 1 to 128"),
        ("action", "User.Login", "expected a dotted lowercase verb"),
        ("action", "user..login", "expected a dotted lowercase verb"),
        ("action", "user.", "expected a dotted lowercase verb"),
        ("action", "db.*", "expected a dotted lowercase verb"),
        ("outcome", "SUCCESS", "expected one of success, failure, denied, unknown"),
        ("outcome", True, "found boolean"),
        ("id", "00000000-0000-0000-0000-000000000000", "placeholder"),
        ("id", "0192f0c18a3b7c4d9e2f0123456789ab", "expected a UUID"),
        ("id", "{0192f0c1-8a3b-7c4d-9e2f-0123456789ab}", "expected a UUID"),
        ("id", 12, "expected a UUID"),
        ("time", 1764154755, "expected an RFC 3339 timestamp string, found number"),
        ("reason", ["x"], "expected a string, found array"),
        ("actor", "alice", "expected an object, found string"),
        ("metadata", [1], "expected an object, found array"),
    ],
)
def test_bad_top_level_values_are_refused(field: str, value: object, message: str) -> None:
    """Each top-level field checks its type, pattern or enumeration."""
    assert message in problems(minimal(**{field: value}))[f"$.{field}"]


@pytest.mark.parametrize(
    ("actor", "path", "message"),
    [
        ({"id": ""}, "$.actor.id", "must not be empty"),
        ({"id": 5}, "$.actor.id", "expected a string, found number"),
        ({"id": "u", "type": "bot"}, "$.actor.type", "expected one of user, service, machine"),
        ({"id": "u", "email": {"a": 1}}, "$.actor.email", "expected a string, found object"),
    ],
)
def test_bad_actor_values_are_refused(actor: object, path: str, message: str) -> None:
    """actor.id is a non-empty string and actor.type one of user, service, machine."""
    assert message in problems(minimal(actor=actor))[path]


@pytest.mark.parametrize("ip", ["010.0.0.1", "1.2.3", "example.com", "1.2.3.4/24", ""])
def test_bad_ip_addresses_are_refused(ip: str) -> None:
    """source.ip must be a single IPv4 or IPv6 address."""
    assert "expected an IPv4 or IPv6 address" in problems(minimal(source={"ip": ip}))["$.source.ip"]


def test_strings_with_nul_or_lone_surrogates_are_refused() -> None:
    """NUL and lone surrogates are refused in values and in keys, at any depth."""
    found = problems(
        minimal(reason="a\x00b", actor={"id": "é\ud800"}, metadata={"k\udc00": 1, "n": ["\x00"]})
    )
    assert "NUL" in found["$.reason"]
    assert "lone surrogate" in found["$.actor.id"]
    assert "lone surrogate" in found["$.metadata"]
    assert "NUL" in found["$.metadata.n[0]"]


def test_non_finite_floats_are_refused() -> None:
    """NaN and infinities are not JSON numbers."""
    found = problems(minimal(metadata={"a": math.inf, "b": -math.inf, "c": math.nan}))
    assert set(found) == {"$.metadata.a", "$.metadata.b", "$.metadata.c"}
    assert "not a JSON number" in found["$.metadata.c"]


def test_integers_beyond_2_53_are_refused() -> None:
    """Integers must be within ±(2**53-1); the message says to send them as strings."""
    event = validate(minimal(metadata={"max": 2**53 - 1, "min": -(2**53) + 1}), now=NOW)
    assert event["metadata"] == {"max": 2**53 - 1, "min": -(2**53) + 1}
    found = problems(minimal(metadata={"big": 2**53, "list": [-(2**53)]}))
    assert "send big numbers as strings" in found["$.metadata.big"]
    assert "$.metadata.list[0]" in found


def test_metadata_keys_starting_with_dollar_or_empty_are_refused() -> None:
    """'$' keys are reserved for commitments, so a client cannot forge an erased field."""
    found = problems(minimal(metadata={"x": {"$commit": "AAAA"}, "": 1}))
    assert "reserved for glasslog" in found["$.metadata.x"]
    assert "empty key" in found["$.metadata"]


def test_other_python_types_are_refused() -> None:
    """Values with no JSON form are named by their Python type."""
    found = problems(minimal(metadata={"when": NOW, "raw": b"x", "s": {1}}))
    assert found["$.metadata.when"] == "expected a JSON value, found Python datetime"
    assert found["$.metadata.raw"] == "expected a JSON value, found Python bytes"
    assert found["$.metadata.s"] == "expected a JSON value, found Python set"


# --------------------------------------------------------------------------------------
# validate: limits
# --------------------------------------------------------------------------------------


def test_long_strings_are_refused() -> None:
    """A string longer than max_string_length is refused, in any field."""
    limits = Limits(max_string_length=10)
    assert validate(minimal(reason="x" * 10), limits=limits, now=NOW)["reason"] == "x" * 10
    found = problems(minimal(reason="x" * 11, metadata={"a": ["y" * 11]}), limits=limits)
    assert found["$.reason"] == "string has 11 characters; at most 10 are allowed"
    assert "$.metadata.a[0]" in found


def test_long_metadata_keys_are_refused() -> None:
    """A metadata key longer than max_key_length is refused at its parent path."""
    found = problems(minimal(metadata={"k" * 129: 1}))
    assert "has 129 characters; at most 128 are allowed" in found["$.metadata"]


def test_metadata_depth_is_limited() -> None:
    """metadata nests at most max_metadata_depth levels, metadata itself being level 1."""
    limits = Limits(max_metadata_depth=3)
    ok = {"a": {"b": [1]}}
    assert validate(minimal(metadata=ok), limits=limits, now=NOW)["metadata"] == ok
    found = problems(minimal(metadata={"a": {"b": [[1]]}}), limits=limits)
    assert found == {"$.metadata.a.b[0]": "nested deeper than 3 levels; flatten the metadata"}


def test_metadata_key_count_is_limited_across_all_objects() -> None:
    """Keys of nested metadata objects count towards max_metadata_keys."""
    limits = Limits(max_metadata_keys=4)
    ok = {"a": 1, "b": {"c": 1, "d": [{}]}}
    assert validate(minimal(metadata=ok), limits=limits, now=NOW)["metadata"] == ok
    found = problems(minimal(metadata={"a": 1, "b": {"c": 1, "d": {"e": 1}}}), limits=limits)
    assert found == {"$.metadata": "has 5 keys in all; at most 4 are allowed"}


def test_array_length_is_limited() -> None:
    """An array longer than max_array_length is refused."""
    limits = Limits(max_array_length=3)
    found = problems(minimal(metadata={"a": [1, 2, 3, 4]}), limits=limits)
    assert found == {"$.metadata.a": "array has 4 items; at most 3 are allowed"}


def test_event_size_is_limited_exactly() -> None:
    """An event is refused when its canonical encoding exceeds max_event_bytes, not before."""
    raw = minimal(id="0192f0c1-8a3b-7c4d-9e2f-0123456789ab", metadata={"blob": "x" * 5000})
    size = len(canonical(validate(raw, now=NOW)))
    assert validate(raw, limits=Limits(max_event_bytes=size), now=NOW)
    found = problems(raw, limits=Limits(max_event_bytes=size - 1))
    assert found == {
        "$": f"event is {size} bytes as canonical JSON; at most {size - 1} are allowed "
        "(shrink metadata or long strings)"
    }


@given(
    st.dictionaries(
        st.text(min_size=1).filter(lambda k: k[0] != "$"),
        st.text() | st.integers(-(2**53) + 1, 2**53 - 1) | st.floats(allow_nan=False),
        max_size=8,
    ).map(lambda d: {k: v for k, v in d.items() if not (isinstance(v, float) and math.isinf(v))}),
    st.text(),
)
def test_size_limit_is_never_missed(metadata: dict[str, object], reason: str) -> None:
    """An event one byte over the limit is always refused, whatever its content."""
    raw = minimal(id="0192f0c1-8a3b-7c4d-9e2f-0123456789ab", reason=reason, metadata=metadata)
    try:
        size = len(canonical(validate(raw, now=NOW)))
    except EventError:
        return  # NUL or a lone surrogate among the generated text
    with pytest.raises(EventError, match="bytes as canonical JSON"):
        validate(raw, limits=Limits(max_event_bytes=size - 1), now=NOW)


def test_problem_list_is_capped() -> None:
    """A hostile event yields at most 100 problems and a note that there were more."""
    raw = minimal(**{f"x{i}": 1 for i in range(500)})
    with pytest.raises(EventError) as caught:
        validate(raw, now=NOW)
    found = caught.value.problems
    assert len(found) == 101
    assert found[-1].message == "more problems; only the first 100 are listed"


def test_limits_must_be_positive() -> None:
    """A zero or negative limit is a configuration error."""
    with pytest.raises(ValueError, match=r"Limits\.max_array_length must be a positive integer"):
        Limits(max_array_length=0)
