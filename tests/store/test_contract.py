"""The storage contract that both backends keep, run through the pipeline on each in turn.

The ``tlog`` fixture is parametrized over SQLite and PostgreSQL (tests/conftest.py),
so every test here — like those of tests/ingest and tests/query — runs on both.
"""

from __future__ import annotations

import json
import uuid

import pytest

from glasslog.errors import NotFoundError
from glasslog.testing import TemporaryLog
from tests.conftest import MakeEvent


def test_lookups_of_missing_events_say_what_exists(tlog: TemporaryLog, event: MakeEvent) -> None:
    """get and get_by_id raise NotFoundError with the valid range."""
    tlog.submit([event()])
    with pytest.raises(NotFoundError, match="no event with seq 5; the log holds seq 0 to 0"):
        tlog.store.get(5)
    with pytest.raises(NotFoundError, match="no event with that id"):
        tlog.store.get_by_id(bytes(16))


def test_repeated_array_values_do_not_break_the_batch(tlog: TemporaryLog, event: MakeEvent) -> None:
    """An array holding the same value twice is stored, indexed once and found once."""
    receipts = tlog.submit([event(metadata={"tags": ["a", "a", 1, 1.0, True, "true"]}), event()])
    assert all(r.ok for r in receipts)
    page = tlog.log.search("metadata.tags:a")
    assert [e["seq"] for e in page.events] == [0]


def test_a_batch_reads_back_exactly_as_written(tlog: TemporaryLog, event: MakeEvent) -> None:
    """Bodies read back byte for byte, by seq, by id and in ranges."""
    events = [event(reason=f'read back {i} ünïcode \u2028 "quoted"') for i in range(5)]
    receipts = tlog.submit(events)
    stored = list(tlog.store.events(0, 5))
    assert [s.seq for s in stored] == [r.seq for r in receipts] == [0, 1, 2, 3, 4]
    for original, row in zip(events, stored, strict=True):
        assert json.loads(row.body)["reason"] == original["reason"]
        assert tlog.store.get(row.seq) == row
        assert tlog.store.get_by_id(uuid.UUID(original["id"]).bytes) == row
    assert list(tlog.store.events(2, 4)) == stored[2:4]
