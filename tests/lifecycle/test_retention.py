"""Retention: rules, a run through the real CLI on both backends, and verify afterwards."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from glasslog.errors import ConfigError
from glasslog.ledger.merkle import leaf_hash
from glasslog.lifecycle.retention import format_ranges, parse_ranges, parse_retention, to_ranges
from glasslog.store import open_store
from glasslog.store.base import leaf_of
from tests.conftest import make_event
from tests.lifecycle.conftest import NEW, Data, old_events


def test_the_longest_matching_selector_wins_and_default_only_when_none_matches() -> None:
    """A deploy in category auth is kept 2y (not 400d, not the default); others the default."""
    rules = parse_retention({"default": "90d", "action:deploy.*": "400d", "category:auth": "2y"})
    keep_for = rules.matcher(datetime.now(UTC))
    both = make_event(action="deploy.start", category="auth")
    assert keep_for(both, 0) == timedelta(days=730)
    assert keep_for(make_event(action="deploy.start"), 1) == timedelta(days=400)
    assert keep_for(make_event(action="login"), 2) == timedelta(days=90)
    no_default = parse_retention({"category:auth": "2y"}).matcher(datetime.now(UTC))
    assert no_default(make_event(action="login"), 3) is None  # kept for ever


def test_a_bad_rule_is_refused_naming_its_key() -> None:
    """A bad duration and a bad selector are both reported, each with its key."""
    with pytest.raises(ConfigError, match=r"retention\.default: .*not a duration") as caught:
        parse_retention({"default": "ninety days", '"unclosed': "1d"})
    assert "not a valid query" in str(caught.value)
    with pytest.raises(ConfigError, match="expected a duration as a string"):
        parse_retention({"default": 90})


def test_ranges_round_trip_as_the_prune_event_records_them() -> None:
    """Seqs → ranges → text → ranges, end exclusive, and malformed text is refused."""
    ranges = to_ranges([0, 1, 2, 5, 7, 8])
    assert ranges == [(0, 3), (5, 6), (7, 9)]
    assert format_ranges(ranges) == "0-2,5,7-8"
    assert parse_ranges("0-2,5,7-8") == ranges
    with pytest.raises(ValueError, match="not an increasing range"):
        parse_ranges("5-9,3-4")


def test_prune_then_verify(data: Data) -> None:
    """Old events are pruned, kept ones and lifecycle events stay, verify reports the
    pruned ranges as pruned, a pruned event says so when read, and a re-sent one is a
    duplicate, never stored again."""
    old = old_events(20)
    kept = [make_event(time=NEW) for _ in range(3)] + old_events(2, action="deploy.start")
    assert data.ingest(old + kept)["accepted"] == 25
    dry = data.json("retention", "run", "--dry-run")
    assert dry["pruned"] == 20 and dry["authorised_by"] == []
    summary = data.json("retention", "run")
    assert summary["pruned"] == 20 and summary["ranges"] == [[0, 20]]
    (by,) = summary["authorised_by"]
    verified = data.ok("verify")
    assert "intact: 26 events" in verified
    assert "20 events pruned by retention (seqs 0-19)" in verified
    gone = data.run("get", "3")
    assert gone.returncode != 0
    assert "event 3 was pruned by retention at 20" in gone.stderr
    by_id = data.run("get", old[3]["id"])
    assert "event 3 was pruned by retention" in by_id.stderr
    assert data.json("get", "21")["id"] == kept[1]["id"]
    record = data.json("get", str(by))
    assert record["action"] == "retention.prune" and record["metadata"]["ranges"] == "0-19"
    assert data.ingest(old[:5]) == {"accepted": 0, "duplicates": 5, "rejected": []}
    assert data.json("retention", "run")["pruned"] == 0  # lifecycle events are never pruned
    assert "intact: 26 events" in data.ok("verify")  # a run that prunes nothing records nothing


def test_a_hold_blocks_prune_until_released(data: Data) -> None:
    """Held events survive a run; once the hold is released the next run prunes them;
    both changes are events in the ledger."""
    data.ingest(old_events(6, service="payments") + old_events(4, service="billing-eu"))
    made = data.json("hold", "add", "service:billing-eu", "--reason", "case 42")
    assert made["active"] and made["query"] == "service:billing-eu"
    first = data.json("retention", "run")
    assert first["pruned"] == 6 and first["held"] == 4
    assert data.json("get", "7")["service"] == "billing-eu"
    listed = [json.loads(line) for line in data.ok("hold", "list", "--json").splitlines()]
    assert [h["id"] for h in listed] == [made["id"]]
    released = data.json("hold", "release", made["id"], "--reason", "case closed")
    assert not released["active"] and released["release_reason"] == "case closed"
    again = data.run("hold", "release", made["id"])
    assert again.returncode != 0 and "released already" in again.stderr
    second = data.json("retention", "run")
    assert second["pruned"] == 4 and second["held"] == 0
    changes = data.ok("search", "service:glasslog category:lifecycle", "--json")
    actions = sorted(json.loads(line)["action"] for line in changes.splitlines())
    assert actions == ["hold.add", "hold.release", "retention.prune", "retention.prune"]
    assert "10 events pruned by retention" in data.ok("verify")


def test_without_a_retention_table_nothing_is_pruned(tmp_path: Path) -> None:
    """No [retention]: the run refuses, saying how to configure it."""
    from glasslog.identity import initialise

    bare = Data(tmp_path / "bare", None)
    initialise(bare.path, store=None, origin="test.example/bare")
    bare.ingest(old_events(2))
    refused = bare.run("retention", "run")
    assert refused.returncode == 1
    assert "no [retention] table" in refused.stderr and "default" in refused.stderr
    assert bare.json("get", "0")["time"].startswith("2020")


def _sqlite(data: Data) -> sqlite3.Connection:
    return sqlite3.connect(data.path / "glasslog.db", isolation_level=None)


def _true_leaf(data: Data, seq: int) -> bytes:
    """The leaf hash the tree holds for ``seq``: what a careful forger would write."""
    store = open_store(str(data.path / "glasslog.db"), readonly=True)
    try:
        return leaf_hash(leaf_of(store.get(seq)))
    finally:
        store.close()


def test_a_delete_outside_retention_is_refused(sqlite_data: Data) -> None:
    """Deleting an event row through SQL, without a pruned row, is refused by the store."""
    sqlite_data.ingest(old_events(3))
    with _sqlite(sqlite_data) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM events WHERE seq = 1")


def test_a_deleted_row_with_a_forged_pruned_row_is_tampering(sqlite_data: Data) -> None:
    """Someone deletes a row and forges its pruned row (right leaf, a real prune event
    as authority): no retention.prune event lists the seq, so verify says TAMPERED."""
    sqlite_data.ingest(old_events(4) + [make_event(time=NEW) for _ in range(4)])
    summary = sqlite_data.json("retention", "run")
    assert summary["ranges"] == [[0, 4]]
    by = summary["authorised_by"][0]
    true_leaf = _true_leaf(sqlite_data, 5)
    conn = _sqlite(sqlite_data)
    row = conn.execute("SELECT id, time FROM events WHERE seq = 5").fetchone()
    conn.execute(
        "INSERT INTO pruned (seq, id, time, leaf, by, at) VALUES (5, ?, ?, ?, ?, 0)",
        (row[0], row[1], true_leaf, by),
    )
    conn.execute("DELETE FROM events WHERE seq = 5")
    conn.close()
    result = sqlite_data.run("verify")
    assert result.returncode != 0
    assert "TAMPERED" in result.stdout + result.stderr
    assert "seq 5" in result.stdout + result.stderr


def test_a_forged_pruned_leaf_is_tampering(sqlite_data: Data) -> None:
    """A pruned row whose leaf hash was changed no longer matches the tree: TAMPERED."""
    sqlite_data.ingest([*old_events(4), make_event(time=NEW)])
    sqlite_data.json("retention", "run")
    conn = _sqlite(sqlite_data)
    conn.execute("DROP TRIGGER pruned_no_update")
    conn.execute("UPDATE pruned SET leaf = zeroblob(32) WHERE seq = 2")
    conn.close()
    result = sqlite_data.run("verify")
    assert result.returncode != 0
    assert "seq 2" in result.stdout + result.stderr


def test_an_unauthorised_prune_is_tampering(sqlite_data: Data) -> None:
    """A pruned row naming an ordinary event as its authority is refused by verify."""
    sqlite_data.ingest(old_events(3) + [make_event(time=NEW) for _ in range(3)])
    conn = _sqlite(sqlite_data)
    conn.execute(
        "INSERT INTO pruned (seq, id, time, leaf, by, at)"
        " SELECT 1, id, time, ?, 4, 0 FROM events WHERE seq = 1",
        (_true_leaf(sqlite_data, 1),),
    )
    conn.execute("DELETE FROM events WHERE seq = 1")
    conn.close()
    result = sqlite_data.run("verify")
    assert result.returncode != 0
    assert "not a signed retention.prune event" in result.stdout + result.stderr


def test_space_is_reclaimed_on_sqlite(sqlite_data: Data) -> None:
    """Pruning most of a store gives its pages back: the database file shrinks."""
    filler = "x" * 2000
    sqlite_data.ingest([*old_events(1500, reason=filler), make_event(time=NEW)])
    db = sqlite_data.path / "glasslog.db"
    sqlite_data.ok("checkpoint")
    with _sqlite(sqlite_data) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.stat().st_size
    summary = sqlite_data.json("retention", "run")
    assert summary["pruned"] == 1500
    after = db.stat().st_size
    assert after < before / 4, (before, after)
    assert "intact" in sqlite_data.ok("verify")


def test_a_store_made_before_auto_vacuum_is_converted_once(sqlite_data: Data) -> None:
    """A store without incremental auto-vacuum is converted by the first run, which says so."""
    sqlite_data.ingest([*old_events(50), make_event(time=NEW)])
    with _sqlite(sqlite_data) as conn:
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    summary = sqlite_data.json("retention", "run")
    assert any("converted" in line for line in summary["reclaimed"])
    with _sqlite(sqlite_data) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert "intact" in sqlite_data.ok("verify")


def test_a_fully_pruned_month_partition_is_dropped_on_postgres(tmp_path: Path) -> None:
    """On PostgreSQL the partition of a month whose every event was pruned is dropped;
    a month with a kept event stays."""
    import psycopg

    from glasslog.identity import initialise
    from tests.conftest import scratch_database
    from tests.lifecycle.conftest import RETENTION

    with scratch_database() as url:
        pg = Data(tmp_path / "data", url)
        initialise(pg.path, store=url, origin="test.example/partitions")
        pg.policy(RETENTION)
        march = [make_event(time="2020-03-10T00:00:00Z") for _ in range(5)]
        april = [make_event(time="2020-04-10T00:00:00Z") for _ in range(5)]
        april.append(make_event(time="2020-04-11T00:00:00Z", action="deploy.start"))
        pg.ingest(march + april)
        summary = pg.json("retention", "run")
        assert summary["pruned"] == 10
        assert any("2020-03" in line for line in summary["reclaimed"])
        with psycopg.connect(url) as conn:
            names = {
                row[0]
                for row in conn.execute(
                    "SELECT relname FROM pg_class WHERE relname ~ '^events_2020_0[34]$'"
                )
            }
        assert names == {"events_2020_04"}
        assert "10 events pruned by retention" in pg.ok("verify")
        store = open_store(url, readonly=True)
        try:
            assert store.size() == 12
        finally:
            store.close()
