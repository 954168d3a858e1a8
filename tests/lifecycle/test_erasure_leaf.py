"""Erasing stored values keeps the leaf: ``erase_body`` and ``leaf_from_body`` with stored
commitments, property-tested against the leaf of the event as it was logged."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glasslog.ledger.commit import (
    SALT_BYTES,
    Erased,
    committed_paths,
    decode_commits,
    encode_commits,
    encode_stored,
    erase_body,
    erased_commitments,
    is_erased,
    leaf_bytes,
    leaf_from_body,
)
from tests.ledger.test_commit import _json_values, _keys, sample_event

MOMENT = "2026-11-30T12:00:00.123456Z"


def _stored(event: dict[str, Any]) -> tuple[list[Any], str, bytes, list[Any], bytes]:
    paths = committed_paths(event, flagged=[("reason",)] if "reason" in event else [])
    salts = os.urandom(SALT_BYTES * len(paths))
    body, leaf, spans = encode_stored(event, paths, salts)
    return list(paths), body, leaf, list(spans), salts


@given(
    metadata=st.dictionaries(_keys, _json_values, max_size=6),
    reason=st.one_of(st.none(), st.text(max_size=20)),
    chosen=st.sets(st.integers(min_value=0, max_value=12)),
    again=st.sets(st.integers(min_value=0, max_value=12)),
)
def test_an_erased_row_yields_the_same_leaf(
    metadata: dict[str, Any], reason: str | None, chosen: set[int], again: set[int]
) -> None:
    """Any set of committed values erased, then more of them later, leaves the leaf as it
    was logged; the body stays JSON with a marker in place of each value, its salt zeros."""
    event = sample_event()
    event["metadata"] = metadata
    if reason is not None:
        event["reason"] = reason
    paths, body, leaf, spans, salts = _stored(event)
    first = {i for i in chosen if i < len(paths)}
    body2, spans2, salts2 = erase_body(body, spans, salts, first, MOMENT)
    assert leaf_from_body(body2, spans2, salts2) == leaf == leaf_bytes(event, paths, salts)
    decoded = json.loads(body2)
    for i, path in enumerate(paths):
        value: Any = decoded
        for key in path:
            value = value[key]
        assert is_erased(value) == (i in first)
        if i in first:
            assert salts2[i * SALT_BYTES : (i + 1) * SALT_BYTES] == bytes(SALT_BYTES)
    stored = encode_commits(paths, spans2)
    assert decode_commits(stored) == (paths, spans2)
    assert set(erased_commitments(stored)) == {paths[i] for i in first}
    second = {i for i in again if i < len(paths)} - first
    body3, spans3, salts3 = erase_body(body2, spans2, salts2, second, "2027-01-01T00:00:00Z")
    assert leaf_from_body(body3, spans3, salts3) == leaf


def test_an_erased_value_cannot_be_erased_twice() -> None:
    """A second erasure of the same field is refused: its value is gone already."""
    _, body, _, spans, salts = _stored(sample_event())
    body2, spans2, salts2 = erase_body(body, spans, salts, {0}, MOMENT)
    with pytest.raises(ValueError, match="erased already"):
        erase_body(body2, spans2, salts2, {0}, MOMENT)


def test_an_erased_span_must_hold_its_marker() -> None:
    """Text other than the marker in an erased span, or a commitment that is not base64,
    is refused: no byte of the body escapes the leaf through an erased span."""
    _, body, _, spans, salts = _stored(sample_event())
    body2, spans2, salts2 = erase_body(body, spans, salts, {0}, MOMENT)
    span = spans2[0]
    assert isinstance(span, Erased)
    forged = body2[: span.start] + '{"$erased":"2026-11-30T12:00:00.12345xZ"}' + body2[span.end :]
    forged_spans = [*spans2]
    forged_spans[0] = Erased(
        span.start, span.start + len(forged) - len(body2) + span.end - span.start, span.commitment
    )
    with pytest.raises(ValueError, match="marker"):
        leaf_from_body(forged, forged_spans, salts2)
    bad = [*spans2]
    bad[0] = Erased(span.start, span.end, 'x"}, "injected": {"a":"' + "A" * 20)
    with pytest.raises(ValueError, match="not base64"):
        leaf_from_body(body2, bad, salts2)


def test_a_changed_commitment_changes_the_leaf() -> None:
    """Another well-formed commitment in place of the erased one gives another leaf."""
    _, body, leaf, spans, salts = _stored(sample_event())
    body2, spans2, salts2 = erase_body(body, spans, salts, {1}, MOMENT)
    span = spans2[1]
    assert isinstance(span, Erased)
    forged = [*spans2]
    forged[1] = Erased(span.start, span.end, "A" * 43 + "=")
    assert leaf_from_body(body2, forged, salts2) != leaf


def test_the_marker_time_must_be_rfc3339_utc() -> None:
    """An erasure time that is not RFC 3339 UTC is refused before anything is written."""
    _, body, _, spans, salts = _stored(sample_event())
    with pytest.raises(ValueError, match="RFC 3339"):
        erase_body(body, spans, salts, {0}, "yesterday")
