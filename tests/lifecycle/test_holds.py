"""Legal holds: which events a hold covers, and how holds are added and released."""

from __future__ import annotations

import pytest

from glasslog.errors import NotFoundError, QueryError
from glasslog.lifecycle.holds import add_hold, is_held, list_holds, release_hold
from glasslog.testing import TemporaryLog
from tests.conftest import make_event

OWNER = {"id": "owner:test", "type": "user"}


def test_an_event_is_held_only_while_a_matching_hold_is_active(tlog: TemporaryLog) -> None:
    """is_held follows the query of each active hold, and a released hold holds nothing."""
    recorded: list[dict[str, object]] = []
    made = add_hold(
        tlog.store, "service:billing-* actor.id:u-1", "case 7", actor=OWNER, record=recorded.append
    )
    assert [e["action"] for e in recorded] == ["hold.add"]
    assert recorded[0]["target"] == {"type": "hold", "id": made.id}
    billing = make_event(service="billing-eu", actor={"id": "u-1"})
    assert is_held(tlog.store, billing, seq=0)
    assert not is_held(tlog.store, make_event(service="payments", actor={"id": "u-1"}), seq=1)
    assert not is_held(tlog.store, make_event(service="billing-eu", actor={"id": "u-2"}), seq=2)
    release_hold(tlog.store, made.id, actor=OWNER, reason="settled", record=recorded.append)
    assert [e["action"] for e in recorded] == ["hold.add", "hold.release"]
    assert not is_held(tlog.store, billing, seq=0)
    (listed,) = list_holds(tlog.store)
    assert listed.released_by == OWNER["id"] and listed.release_reason == "settled"
    assert list_holds(tlog.store, active_only=True) == []


def test_a_hold_needs_a_valid_query_and_a_reason(sqlite_tlog: TemporaryLog) -> None:
    """Nothing is recorded or stored for a hold that is refused."""
    recorded: list[dict[str, object]] = []
    with pytest.raises(QueryError, match="unknown field"):
        add_hold(sqlite_tlog.store, "nosuchfield:x", "case", actor=OWNER, record=recorded.append)
    with pytest.raises(ValueError, match="needs a reason"):
        add_hold(sqlite_tlog.store, "service:x", "  ", actor=OWNER, record=recorded.append)
    with pytest.raises(NotFoundError, match="no hold with id"):
        release_hold(sqlite_tlog.store, "hold-none", actor=OWNER, record=recorded.append)
    assert recorded == [] and list_holds(sqlite_tlog.store) == []


def test_holds_are_append_only_in_sqlite(sqlite_tlog: TemporaryLog) -> None:
    """A hold row cannot be deleted through SQL: its history stays."""
    import sqlite3

    add_hold(sqlite_tlog.store, "service:x", "case", actor=OWNER, record=lambda e: None)
    with (
        sqlite3.connect(sqlite_tlog.spec, isolation_level=None) as conn,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        conn.execute("DELETE FROM holds")
