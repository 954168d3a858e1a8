"""The SQLite store: append-only enforcement, durability settings, indexes and lookups."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from glasslog.errors import StoreError
from glasslog.ledger.tiles import Tile
from glasslog.store.base import EventRow
from glasslog.store.sqlite import SCHEMA_VERSION, SQLiteStore
from glasslog.testing import TemporaryLog, temporary_log
from glasslog.verify import verify_store
from tests.conftest import MakeEvent, make_event


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET service = 'x' WHERE seq = 0",
        "DELETE FROM events WHERE seq = 0",
        "UPDATE checkpoints SET note = 'x'",
        "DELETE FROM checkpoints",
        "UPDATE tiles SET width = 1",
        "DELETE FROM tiles",
    ],
)
def test_database_refuses_updates_and_deletes(
    sqlite_tlog: TemporaryLog, event: MakeEvent, statement: str
) -> None:
    """Triggers make events, tiles and checkpoints append-only even for raw SQL."""
    sqlite_tlog.submit([event() for _ in range(300)])
    sqlite_tlog.checkpoint()
    conn = sqlite3.connect(sqlite_tlog.datadir.db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute(statement)
    conn.close()


def test_wal_and_full_sync_are_on(sqlite_tlog: TemporaryLog) -> None:
    """The writer's connection uses WAL and fsyncs every commit."""
    assert isinstance(sqlite_tlog.store, SQLiteStore)
    conn = sqlite_tlog.store.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_indexes_cover_the_query_fields(sqlite_tlog: TemporaryLog) -> None:
    """service, action, actor, time, request_id and trace_id are indexed."""
    conn = sqlite3.connect(sqlite_tlog.datadir.db)
    indexed = {
        row[0]
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        for row in conn.execute(f"SELECT name FROM pragma_index_info('{name}')")
    }
    conn.close()
    assert {"service", "action", "actor_id", "time", "request_id", "trace_id", "id"} <= indexed


def test_full_text_finds_words_from_any_text_field(
    sqlite_tlog: TemporaryLog, event: MakeEvent
) -> None:
    """FTS5 indexes reason and metadata values; MATCH returns the event's seq."""
    sqlite_tlog.submit(
        [event(), event(reason="emergency rotation"), event(metadata={"db": "ledgerdb"})]
    )
    conn = sqlite3.connect(sqlite_tlog.datadir.db)
    find = "SELECT rowid FROM events_fts WHERE events_fts MATCH ?"
    assert [r[0] for r in conn.execute(find, ("emergency",))] == [1]
    assert [r[0] for r in conn.execute(find, ("ledgerdb",))] == [2]
    conn.close()


def test_opening_a_missing_store_says_run_init(tmp_path: Path) -> None:
    """A store that does not exist is not created by accident."""
    with pytest.raises(StoreError, match="run `glasslog init` first"):
        SQLiteStore.open(tmp_path / "nope.db")


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    """Opening garbage reports a corrupt database, not a traceback from sqlite3."""
    path = tmp_path / "glasslog.db"
    path.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(StoreError, match="corrupt"):
        SQLiteStore.open(path)


def test_create_is_idempotent(tmp_path: Path) -> None:
    """Creating the schema twice keeps the data."""
    path = tmp_path / "glasslog.db"
    SQLiteStore.open(path, create=True).close()
    store = SQLiteStore.open(path, create=True)
    assert store.size() == 0
    store.close()


def _row(seq: int, fields: tuple[tuple[str, str | int | float], ...]) -> EventRow:
    return EventRow(
        seq, bytes([seq]) * 16, 1_000 + seq, "svc", "a.b", "u", "success", None, None,
        "{}", "[]", b"", "text", fields,
    )  # fmt: skip


def test_field_keys_of_a_rolled_back_batch_are_not_reused(tmp_path: Path) -> None:
    """A batch that fails after creating a field key leaves no stale id in the cache."""
    store = SQLiteStore.open(tmp_path / "glasslog.db", create=True)
    tile = Tile(level=0, index=99, width=256, hashes=bytes(32 * 256))
    store.append([_row(0, ())], [tile])
    with pytest.raises(StoreError):  # the tile exists: fails after fields were written
        store.append([_row(1, (("metadata.alpha", "x"),))], [tile])
    store.append([_row(1, (("metadata.beta", "y"),))], [])
    store.append([_row(2, (("metadata.alpha", "x"),))], [])
    conn = store.connection
    paths = dict(conn.execute("SELECT path, id FROM field_keys").fetchall())
    assert len(set(paths.values())) == len(paths) == 2
    seqs = conn.execute(
        "SELECT f.seq FROM fields f JOIN field_keys k ON k.id = f.key WHERE k.path = ?",
        ("metadata.alpha",),
    ).fetchall()
    assert seqs == [(2,)]
    store.close()


def test_an_old_sqlite_is_refused_with_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python whose SQLite lacks what the queries use is refused up front, not mid-query."""
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(
        StoreError, match=r"needs SQLite 3\.38 or newer; this Python uses SQLite 3\.31"
    ):
        SQLiteStore.open(tmp_path / "glasslog.db", create=True)


def test_a_version_1_store_is_refused_then_upgraded_by_init(tmp_path: Path) -> None:
    """Version 1's field index turned "3.0" into 3; init rebuilds it from the events.

    The old store is made the way glasslog 1 made it: the index column declared ANY
    (numeric affinity) and the version row at 1.
    """
    events = [
        make_event(metadata={"v": "3.0", "tags": ["3", "x"]}),
        make_event(metadata={"v": 3}),
        make_event(metadata={"other": True}),
    ]
    with temporary_log() as tlog:
        assert all(r.ok for r in tlog.submit(events))
        tlog.checkpoint()
        spec, verifier = tlog.spec, tlog.datadir.verifier()
        tlog.store.close()
        tlog.log.close()
        # The log's own keys: init refuses a key that did not sign the store's checkpoints.
        shutil.copytree(tlog.data, tmp_path / "keys")
        old = tmp_path / "glasslog.db"
        shutil.copy(spec, old)
    conn = sqlite3.connect(old, isolation_level=None)
    rows = conn.execute("SELECT key, value, time, seq FROM fields").fetchall()
    conn.executescript(
        "DROP TRIGGER fields_no_update; DROP TRIGGER fields_no_delete; DROP TABLE fields;"
        "CREATE TABLE fields (key INTEGER NOT NULL, value ANY NOT NULL, time INTEGER NOT NULL,"
        " seq INTEGER NOT NULL, PRIMARY KEY (key, value, time, seq)) WITHOUT ROWID;"
        "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    conn.executemany("INSERT OR IGNORE INTO fields VALUES (?, ?, ?, ?)", rows)
    assert conn.execute("SELECT count(*) FROM fields WHERE typeof(value) = 'text'").fetchone() == (
        2,  # "x" and "true": "3.0" and "3" became numbers, the bug being fixed
    )
    conn.close()

    with pytest.raises(
        StoreError, match=rf"expected {SCHEMA_VERSION}, found 1; run `glasslog init` again"
    ):
        SQLiteStore.open(old)
    twin = tmp_path / "twin.db"
    shutil.copy(old, twin)
    said = subprocess.run(
        [sys.executable, "-m", "glasslog", "init", "--data", str(tmp_path / "keys"),
         "--store", str(twin)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "upgraded the store's schema from version 1" in said.stderr
    upgrading = SQLiteStore.open(old, create=True)
    assert upgrading.upgraded_from == 1
    upgrading.close()
    store = SQLiteStore.open(old)
    assert store.upgraded_from is None
    try:
        kept = store.connection.execute(
            "SELECT k.path, f.value, typeof(f.value), f.seq FROM fields f"
            " JOIN field_keys k ON k.id = f.key ORDER BY f.seq, k.path, f.value"
        ).fetchall()
        assert kept == [
            ("metadata.tags", "3", "text", 0),
            ("metadata.tags", "x", "text", 0),
            ("metadata.v", "3.0", "text", 0),
            ("metadata.v", 3, "integer", 1),
            ("metadata.other", "true", "text", 2),
        ]
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.connection.execute("DELETE FROM fields")
    finally:
        store.close()
    assert verify_store(old, verifier, workers=1).events == 3


def _old_text(event: dict[str, object]) -> str:
    """Version 3's full text: values in the order the keys were walked from the end."""
    parts: list[str] = []
    stack: list[object] = [v for k, v in event.items() if k not in ("id", "time", "received")]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(str(value))
    return " ".join(parts)


def test_a_version_3_store_gets_full_text_verify_can_check(tmp_path: Path) -> None:
    """Version 3 indexed words in arrival order, which no body keeps; init rebuilds them.

    The old store is made as glasslog with schema 3 made it: words in arrival order and
    the version row at 3. After the upgrade searches find the same events, and verify,
    which now checks the full-text index against the bodies' words, passes.
    """
    events = [make_event(reason=f"quarterly review {i}", metadata={"tags": ["b", "a"]})
              for i in range(40)]  # fmt: skip
    with temporary_log() as tlog:
        assert all(r.ok for r in tlog.submit(events))
        tlog.checkpoint()
        spec, verifier = tlog.spec, tlog.datadir.verifier()
        tlog.store.close()
        tlog.log.close()
        old = tmp_path / "glasslog.db"
        shutil.copy(spec, old)
    conn = sqlite3.connect(old, isolation_level=None)
    bodies = conn.execute("SELECT seq, body FROM events").fetchall()
    conn.executescript(
        "DROP TABLE events_fts;"
        "CREATE VIRTUAL TABLE events_fts USING fts5(text, content='', columnsize=0);"
        "UPDATE meta SET value = '3' WHERE key = 'schema_version';"
    )
    conn.executemany(
        "INSERT INTO events_fts (rowid, text) VALUES (?, ?)",
        [(seq, _old_text(make_event_order(json.loads(body)))) for seq, body in bodies],
    )
    conn.close()

    with pytest.raises(StoreError, match=rf"expected {SCHEMA_VERSION}, found 3"):
        SQLiteStore.open(old)
    upgrading = SQLiteStore.open(old, create=True)
    assert upgrading.upgraded_from == 3
    upgrading.close()
    store = SQLiteStore.open(old)
    try:
        found = store.connection.execute(
            "SELECT rowid FROM events_fts WHERE events_fts MATCH '\"quarterly review\"'"
        ).fetchall()
        assert len(found) == 40
    finally:
        store.close()
    # verify derives each event's words from its body in canonical key order and checks
    # the index against them: the old, arrival-order index would fail here.
    assert verify_store(old, verifier, workers=1).events == 40


def make_event_order(event: dict[str, object]) -> dict[str, object]:
    """The event with its keys in the order make_event sends them (arrival order)."""
    order = ["id", "time", "service", "action", "outcome", "actor", "source", "context",
             "metadata", "reason", "received"]  # fmt: skip
    return {k: event[k] for k in order if k in event} | event
