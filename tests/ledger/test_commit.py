"""Tests for glasslog.ledger.commit: salted field commitments and redactable leaves."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glasslog.errors import CanonicalError
from glasslog.event import Event, canonical, validate
from glasslog.ledger.commit import (
    DEFAULT_SENSITIVE,
    SALT_BYTES,
    Path,
    commitment,
    committed_paths,
    decode_commits,
    decode_paths,
    encode_commits,
    encode_paths,
    encode_stored,
    is_commitment,
    leaf_bytes,
    leaf_from_body,
    leaf_object,
)

NOW = datetime(2026, 11, 26, 10, 59, 15, 123456, tzinfo=UTC)


def sample_event() -> Event:
    """A validated event with every default-sensitive field and three metadata keys."""
    return validate(
        {
            "id": "0192f0c1-8a3b-7c4d-9e2f-0123456789ab",
            "service": "payments",
            "action": "user.login",
            "reason": "on call",
            "actor": {"id": "u1", "name": "Alice", "email": "alice@example.com"},
            "source": {"ip": "203.0.113.5", "user_agent": "Mozilla/5.0", "host": "gw"},
            "target": {"type": "account", "id": "a1"},
            "metadata": {"db": {"rows": 2, "user": "app"}, "ok": True, "tags": ["x"]},
        },
        now=NOW,
    )


def salts_for(paths: list[Path], seed: int = 1) -> bytes:
    """Deterministic, distinct salts, one per path."""
    return b"".join(bytes([seed, i]) * (SALT_BYTES // 2) for i in range(len(paths)))


def masked(event: Event, path: Path, salt: bytes) -> Event:
    """``event`` as a reader without access to ``path`` sees it: value replaced by commitment."""
    result = copy.deepcopy(event)
    parent = result
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = {"$commit": commitment(salt, parent[path[-1]])}
    return result


def test_commitment_is_base64_sha256_of_salt_and_canonical_value() -> None:
    """commitment = standard base64 of SHA-256(salt || JCS(value)), pinned by known answers."""
    salt = bytes(range(16))
    assert commitment(salt, "alice@example.com") == "VMQvFmyHy/Q5Sls5SeXhgI3LhjauH0EkNzSlFfeEmqs="
    value = {"rows": 42, "ok": True}
    digest = hashlib.sha256(bytes(16) + b'{"ok":true,"rows":42}').digest()
    assert commitment(bytes(16), value) == base64.b64encode(digest).decode()
    assert commitment(bytes(16), value) == "gaGXq+vZqtMDgMPtKigFFQyYtn2NVPl37vkr8uauRMk="


def test_a_different_salt_or_value_changes_the_commitment() -> None:
    """Salt and value both bind the commitment; equal numbers in any spelling do not differ."""
    salt = bytes(16)
    base = commitment(salt, "alice@example.com")
    assert commitment(bytes(15) + b"\x01", "alice@example.com") != base
    assert commitment(salt, "alice@example.org") != base
    assert commitment(salt, 2) == commitment(salt, 2.0)  # one JSON number, one encoding


@pytest.mark.parametrize("size", [0, 15, 17, 32])
def test_commitment_refuses_a_salt_of_the_wrong_size(size: int) -> None:
    """A salt must be exactly SALT_BYTES long."""
    with pytest.raises(ValueError, match=f"salt must be 16 bytes, got {size}"):
        commitment(bytes(size), "x")


def test_is_commitment_recognizes_only_commit_objects() -> None:
    """Only an object whose single member is a string $commit counts as a commitment."""
    assert is_commitment({"$commit": "abc="})
    assert not is_commitment({"$commit": 1})
    assert not is_commitment({"$commit": "abc=", "x": 1})
    assert not is_commitment("abc=")


def test_committed_paths_are_sensitive_fields_and_metadata_keys() -> None:
    """By default the four sensitive fields and each top-level metadata key are committed."""
    assert committed_paths(sample_event()) == [
        ("actor", "email"),
        ("actor", "name"),
        ("metadata", "db"),
        ("metadata", "ok"),
        ("metadata", "tags"),
        ("source", "ip"),
        ("source", "user_agent"),
    ]


def test_committed_paths_skip_fields_the_event_lacks() -> None:
    """A sensitive path the event does not have is not committed."""
    event = validate({"service": "s", "action": "a", "actor": {"id": "u"}}, now=NOW)
    assert committed_paths(event) == []
    assert committed_paths(event, flagged=[("source", "ip"), ("metadata", "x")]) == []


def test_flagged_paths_are_widened_to_depth_two_sorted_and_deduplicated() -> None:
    """Deep flags commit their depth-two ancestor; object flags their members; no repeats."""
    paths = committed_paths(
        sample_event(),
        sensitive=[("actor", "email"), ("actor", "email")],
        flagged=[
            ("metadata", "db", "user"),
            ("reason",),
            ("reason", "deeper"),
            ("target",),
            ("actor", "email"),
        ],
    )
    assert paths == [
        ("actor", "email"),
        ("metadata", "db"),
        ("metadata", "ok"),
        ("metadata", "tags"),
        ("reason",),
        ("target", "id"),
        ("target", "type"),
    ]


def test_an_empty_path_is_refused() -> None:
    """The whole event cannot be one committed field."""
    with pytest.raises(ValueError, match="empty path"):
        committed_paths(sample_event(), flagged=[()])


def test_leaf_replaces_each_path_by_its_commitment_and_nothing_else() -> None:
    """The leaf has commitments at the paths, original values elsewhere, and is valid JCS."""
    event = sample_event()
    paths = committed_paths(event)
    salts = salts_for(paths)
    leaf = leaf_object(event, paths, salts)
    assert leaf["actor"] == {
        "id": "u1",
        "name": {"$commit": commitment(salts[16:32], "Alice")},
        "email": {"$commit": commitment(salts[0:16], "alice@example.com")},
    }
    assert leaf["metadata"]["db"] == {
        "$commit": commitment(salts[32:48], {"rows": 2, "user": "app"})
    }
    assert leaf["source"]["host"] == "gw"
    assert leaf["reason"] == "on call"
    assert leaf_bytes(event, paths, salts) == canonical(leaf)


def test_leaf_object_copies_only_along_the_paths() -> None:
    """The event is not modified; untouched objects are shared, touched ones are copies."""
    event = sample_event()
    before = copy.deepcopy(event)
    paths = committed_paths(event)
    leaf = leaf_object(event, paths, salts_for(paths))
    assert event == before
    assert leaf["target"] is event["target"]
    assert leaf["actor"] is not event["actor"]


def test_masked_field_gives_the_same_leaf() -> None:
    """A reader who sees a commitment instead of the value recomputes the same leaf."""
    event = sample_event()
    paths = committed_paths(event)
    salts = salts_for(paths)
    full = leaf_bytes(event, paths, salts)
    for index, path in enumerate(paths):
        salt = salts[index * SALT_BYTES : (index + 1) * SALT_BYTES]
        view = masked(event, path, salt)
        withheld = salts[: index * SALT_BYTES] + bytes(SALT_BYTES) + salts[(index + 1) * 16 :]
        assert leaf_bytes(view, paths, withheld) == full, path


def test_erased_fields_give_the_same_leaf() -> None:
    """Erasing every committed field (value and salt) leaves the leaf unchanged."""
    event = sample_event()
    paths = committed_paths(event)
    salts = salts_for(paths)
    erased = event
    for index, path in enumerate(paths):
        erased = masked(erased, path, salts[index * SALT_BYTES : (index + 1) * SALT_BYTES])
    assert committed_paths(erased) == paths
    assert leaf_bytes(erased, paths, bytes(len(salts))) == leaf_bytes(event, paths, salts)


def test_changed_value_or_salt_changes_the_leaf() -> None:
    """Tampering with a committed value or its salt gives a different leaf."""
    event = sample_event()
    paths = committed_paths(event)
    salts = salts_for(paths)
    full = leaf_bytes(event, paths, salts)
    assert leaf_bytes(event, paths, salts_for(paths, seed=2)) != full
    changed = copy.deepcopy(event)
    changed["actor"]["email"] = "mallory@example.com"
    assert leaf_bytes(changed, paths, salts) != full


@given(st.sets(st.integers(min_value=0, max_value=6)))
def test_any_mix_of_masked_fields_gives_the_same_leaf(hidden: set[int]) -> None:
    """Whichever committed fields a reader is denied, the leaf stays the same."""
    event = sample_event()
    paths = committed_paths(event)
    salts = salts_for(paths)
    view = event
    withheld = bytearray(salts)
    for index in hidden:
        start = index * SALT_BYTES
        view = masked(view, paths[index], salts[start : start + SALT_BYTES])
        withheld[start : start + SALT_BYTES] = bytes(SALT_BYTES)
    assert leaf_bytes(view, paths, bytes(withheld)) == leaf_bytes(event, paths, salts)


@pytest.mark.parametrize("extra", [-1, 1, -16, 16])
def test_salts_of_the_wrong_length_are_refused(extra: int) -> None:
    """salts must hold exactly one 16-byte salt per path."""
    event = sample_event()
    paths = committed_paths(event)
    with pytest.raises(
        ValueError, match=f"salts must be 7 x 16 = 112 bytes for 7 paths, got {112 + extra}"
    ):
        leaf_object(event, paths, bytes(112 + extra))


_BAD_PATHS = [
    ([("actor", "name"), ("actor", "name")], "paths repeat: actor.name, actor.name"),
    ([("actor",), ("actor", "name")], "path actor contains other paths"),
    ([("actor", "name"), ("actor",)], "path actor contains other paths"),
    ([("actor", "nickname")], "path actor.nickname is not in the event"),
    ([("context", "host")], "path context.host is not in the event"),
    ([("reason", "x")], "path reason.x is not in the event"),
    ([("nothing",)], "path nothing is not in the event"),
    ([("metadata", "db", "rows")], "must be one or two keys deep"),
    ([()], "must be one or two keys deep"),
]


@pytest.mark.parametrize(("paths", "message"), _BAD_PATHS)
def test_bad_paths_are_refused(paths: list[Path], message: str) -> None:
    """Repeated, nested, missing or too deep paths raise ValueError naming the path."""
    with pytest.raises(ValueError, match=message):
        leaf_object(sample_event(), paths, bytes(SALT_BYTES * len(paths)))


@pytest.mark.parametrize(("paths", "message"), _BAD_PATHS)
def test_encode_stored_refuses_bad_paths_as_leaf_object_does(
    paths: list[Path], message: str
) -> None:
    """The one-pass encoder refuses the same paths, with the same message, as leaf_object."""
    with pytest.raises(ValueError, match=re.escape(message)):
        encode_stored(sample_event(), paths, bytes(SALT_BYTES * len(paths)))


def test_paths_round_trip_through_storage() -> None:
    """encode_paths writes compact JSON that decode_paths reads back."""
    paths: list[Path] = [("actor", "email"), ("metadata", "naïve key"), ("reason",)]
    text = encode_paths(paths)
    assert text == '[["actor","email"],["metadata","naïve key"],["reason"]]'
    assert decode_paths(text) == paths
    assert decode_paths(encode_paths([])) == []


@pytest.mark.parametrize(
    "text", ["", "{}", '[["a"], "b"]', "[[]]", '[["a", 1]]', "[null]", '{"a": 1}', "[[", "3"]
)
def test_decode_paths_refuses_anything_else(text: str) -> None:
    """Stored paths that are not a JSON array of non-empty string arrays raise ValueError."""
    with pytest.raises(ValueError, match="stored paths"):
        decode_paths(text)


def test_default_sensitive_paths_are_the_documented_ones() -> None:
    """The defaults are actor.name, actor.email, source.ip and source.user_agent."""
    assert set(DEFAULT_SENSITIVE) == {
        ("actor", "name"),
        ("actor", "email"),
        ("source", "ip"),
        ("source", "user_agent"),
    }


def test_leaf_is_canonical_json_of_the_committed_event() -> None:
    """The leaf parses as JSON and every committed member is a $commit object."""
    event = sample_event()
    paths = committed_paths(event)
    leaf: dict[str, Any] = json.loads(leaf_bytes(event, paths, salts_for(paths)))
    for head, *rest in paths:
        value = leaf[head][rest[0]] if rest else leaf[head]
        assert is_commitment(value)


_keys = st.text(
    alphabet=st.characters(categories=("L", "M", "N", "P", "S", "Z", "Cc"), exclude_characters="$"),
    min_size=1,
    max_size=6,
).filter(lambda k: not k.startswith("$"))
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8,
)


@given(metadata=st.dictionaries(_keys, _values, max_size=6), reason=st.text(max_size=20))
def test_encode_stored_matches_separate_encodings(metadata: dict[str, Any], reason: str) -> None:
    """The one-pass body and leaf equal canonical(event) and leaf_bytes for any metadata."""
    event = sample_event()
    event["metadata"] = metadata
    event["reason"] = reason
    paths = committed_paths(event, flagged=[("reason",)])
    salts = salts_for(paths)
    body, leaf, spans = encode_stored(event, paths, salts)
    assert body.encode("utf-8") == canonical(event)
    assert leaf == leaf_bytes(event, paths, salts)
    assert leaf_from_body(body, spans, salts) == leaf
    for path, span in zip(paths, spans, strict=True):
        assert span is not None
        value: Any = event
        for key in path:
            value = value[key]
        assert body[span[0] : span[1]].encode("utf-8") == canonical(value)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)


@given(
    metadata=st.dictionaries(_keys, _json_values, max_size=6),
    target=st.dictionaries(_keys, _json_values, max_size=3),
    flag_target=st.booleans(),
)
def test_encode_stored_matches_separate_encodings_for_any_json(
    metadata: dict[str, Any], target: dict[str, Any], flag_target: bool
) -> None:
    """Floats of every magnitude, astral keys and nested values, committed or in clear,
    give the same body, leaf and spans as the separate RFC 8785 encodings."""
    event = sample_event()
    event["metadata"] = metadata
    event["target"] = target
    paths = committed_paths(event, flagged=[("target",)] if flag_target else [])
    salts = salts_for(paths)
    body, leaf, spans = encode_stored(event, paths, salts)
    assert body.encode("utf-8") == canonical(event)
    assert leaf == leaf_bytes(event, paths, salts)
    assert leaf_from_body(body, spans, salts) == leaf


def test_encode_stored_orders_keys_by_utf16_code_units() -> None:
    """A key beyond U+FFFF sorts before one in U+E000-U+FFFF, as RFC 8785 §3.2.3 says."""
    event = sample_event()
    event["metadata"] = {"\uff61": 1, "\U00010000": {"\uff61": 2, "\U00010000": 3}, "a": 4}
    paths = committed_paths(event)
    body, leaf, _ = encode_stored(event, paths, salts_for(paths))
    assert body.index('"\U00010000":{"\U00010000":3,"\uff61":2}') < body.index('"\uff61":1')
    assert body.encode("utf-8") == canonical(event)
    assert leaf == leaf_bytes(event, paths, salts_for(paths))


def test_encode_stored_names_a_lone_surrogate() -> None:
    """A string that is not Unicode text is a CanonicalError naming where it is."""
    event = sample_event()
    event["reason"] = "bad \ud800 text"
    paths = committed_paths(event)
    with pytest.raises(CanonicalError, match=r"\$\.reason contains a lone surrogate U\+D800"):
        encode_stored(event, paths, salts_for(paths))


def test_leaf_from_body_detects_any_change() -> None:
    """Editing the body, a span or a salt changes the recomputed leaf."""
    event = sample_event()
    paths = committed_paths(event)
    salts = salts_for(paths)
    body, leaf, spans = encode_stored(event, paths, salts)
    assert leaf_from_body(body, spans, salts) == leaf
    edited_value = body.replace("alice@", "alicf@")
    edited_clear = body.replace('"payments"', '"paymentz"')
    assert leaf_from_body(edited_value, spans, salts) != leaf
    assert leaf_from_body(edited_clear, spans, salts) != leaf
    first = spans[0]
    assert first is not None
    moved = [(first[0] + 1, first[1]), *spans[1:]]
    assert leaf_from_body(body, moved, salts) != leaf
    assert leaf_from_body(body, spans, bytes(len(salts))) != leaf


def test_leaf_from_body_refuses_overlapping_spans() -> None:
    """Spans that overlap or run past the body are an error, not a silent leaf."""
    with pytest.raises(ValueError, match="out of order or out of range"):
        leaf_from_body("0123456789", [(0, 5), (3, 8)], bytes(32))
    with pytest.raises(ValueError, match="out of order or out of range"):
        leaf_from_body("0123", [(2, 9)], bytes(16))


def test_erased_value_keeps_its_commitment_in_body_and_leaf() -> None:
    """A field that already is a commitment stays literal in the body and has no span."""
    event = sample_event()
    paths = committed_paths(event)
    salts = salts_for(paths)
    i = paths.index(("actor", "email"))
    erased = masked(event, paths[i], salts[i * SALT_BYTES : (i + 1) * SALT_BYTES])
    body, leaf, spans = encode_stored(erased, paths, salts)
    assert spans[i] is None
    assert leaf == leaf_bytes(event, paths, salts)
    assert leaf_from_body(body, spans, salts) == leaf


@given(
    paths=st.lists(st.lists(_keys, min_size=1, max_size=2).map(tuple), max_size=6),
    data=st.data(),
)
def test_encode_commits_is_compact_json(paths: list[Path], data: st.DataObject) -> None:
    """encode_commits writes exactly json.dumps(..., ensure_ascii=False, separators=(",", ":"))."""
    spans: list[tuple[int, int] | None] = [
        data.draw(st.none() | st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)))
        for _ in paths
    ]
    items = [list(p) if s is None else [*p, *s] for p, s in zip(paths, spans, strict=True)]
    expected = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    assert encode_commits(paths, spans) == expected


def test_commits_round_trip_through_storage() -> None:
    """Paths with spans, and erased paths without, survive encode/decode."""
    paths: list[Path] = [("actor", "email"), ("reason",)]
    spans: list[tuple[int, int] | None] = [(3, 9), None]
    assert decode_commits(encode_commits(paths, spans)) == (paths, spans)


@pytest.mark.parametrize("text", ["{", "{}", "[[]]", "[[1,2]]", "[5]"])
def test_decode_commits_refuses_anything_else(text: str) -> None:
    """Malformed stored commitments are a ValueError naming the problem."""
    with pytest.raises(ValueError, match="stored commitment"):
        decode_commits(text)
