"""The PostgreSQL store against a real server: schema, append-only, roles, partitions, lock.

Each test gets its own freshly created database on the cluster that
``GLASSLOG_TEST_POSTGRES`` names (``scripts/test`` starts one), dropped afterwards.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import make_conninfo

from glasslog.errors import DuplicateIdError, NotFoundError, StoreError
from glasslog.ingest.pipeline import Prepared, Preparer, Sequencer, Settings
from glasslog.ledger import merkle
from glasslog.ledger.note import Signer, Verifier, verify_checkpoint
from glasslog.ledger.tiles import TILE_WIDTH
from glasslog.query.language import parse
from glasslog.query.plan import POSTGRES, compile_query
from glasslog.store import postgres
from glasslog.store.base import EventRow, leaf_of, restore_tree
from glasslog.store.postgres import (
    APP_ROLE,
    SCHEMA_VERSION,
    WRITER_LOCK_KEY,
    PostgresStore,
    describe_dsn,
)
from glasslog.store.postgres_search import PostgresSearch
from tests.conftest import admin_dsn, make_event

ORIGIN = "test.example/pg"


def _admin(dsn: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture
def database(pg_database: str) -> str:
    """The DSN of a new, empty database, dropped after the test."""
    return pg_database


@pytest.fixture
def store(database: str) -> Iterator[PostgresStore]:
    s = PostgresStore.open(database, create=True)
    yield s
    s.close()


@pytest.fixture
def login_role(database: str) -> Iterator[str]:
    """The DSN of a new login role that is only a member of glasslog_app."""
    admin = admin_dsn()
    name = f"glasslog_svc_{secrets.token_hex(4)}"
    with _admin(admin) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(name), sql.Identifier(APP_ROLE)
            )
        )
    try:
        yield make_conninfo(database, user=name)
    finally:
        with _admin(admin) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _preparer() -> Preparer:
    return Preparer(fingerprint_key=b"k" * 32)


def _sequencer(store: PostgresStore, signer: Signer | None = None) -> Sequencer:
    settings = Settings(checkpoint_every=1 << 40, checkpoint_interval=1e9)
    return Sequencer(store, signer or Signer.generate(name=ORIGIN), settings=settings)


def _prepared(n: int, **overrides: Any) -> list[Prepared]:
    preparer = _preparer()
    return [preparer.prepare(make_event(**overrides)) for _ in range(n)]


def _row(seq: int, item: Prepared) -> EventRow:
    return EventRow(seq, *item.row)


def _count(dsn: str, table: str) -> int:
    with _admin(dsn) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM glasslog.{}").format(sql.Identifier(table))
        ).fetchone()
    assert row is not None
    return int(row[0])


def _stored_root(store: PostgresStore) -> bytes:
    return merkle.root_of([merkle.leaf_hash(leaf_of(e)) for e in store.events(0, store.size())])


def test_create_is_idempotent_and_keeps_data(database: str) -> None:
    """Creating the schema twice changes nothing and keeps the events already stored."""
    first = PostgresStore.open(database, create=True)
    _sequencer(first).commit(_prepared(3))
    first.close()
    again = PostgresStore.open(database, create=True)
    assert again.size() == 3
    again.close()
    with _admin(database) as conn:
        row = conn.execute(
            "SELECT value FROM glasslog.meta WHERE key = 'schema_version'"
        ).fetchone()
    assert row == (str(SCHEMA_VERSION),)


OLD_ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'glasslog_app') THEN
        CREATE ROLE glasslog_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
GRANT USAGE ON SCHEMA glasslog TO glasslog_app;
GRANT SELECT ON meta TO glasslog_app;
GRANT SELECT, INSERT ON events, event_keys, tiles, checkpoints, fields, field_keys
    TO glasslog_app;
GRANT SELECT, INSERT, UPDATE ON rollups, seq_blocks TO glasslog_app;
GRANT EXECUTE ON FUNCTION ensure_month(integer, integer) TO glasslog_app;
"""
OLD_UPSERT_ROLLUPS = (
    "INSERT INTO rollups (dim, hour, value, count)"
    " SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::bigint[])"
    " ON CONFLICT (dim, hour, value) DO UPDATE SET count = rollups.count + excluded.count"
)
OLD_UPSERT_BLOCKS = (
    "INSERT INTO seq_blocks (block, min_time, max_time)"
    " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])"
    " ON CONFLICT (block) DO UPDATE SET"
    " min_time = least(seq_blocks.min_time, excluded.min_time),"
    " max_time = greatest(seq_blocks.max_time, excluded.max_time)"
)


def test_an_older_store_is_migrated_in_place_and_keeps_its_events(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store made by a glasslog that knew only migration 1 is refused until create
    applies the rest; its events survive and the text columns become code-point ordered."""
    from glasslog.store import postgres

    monkeypatch.setattr(postgres, "_MIGRATIONS", postgres._MIGRATIONS[:1])
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", 1)
    # What glasslog 0.1 granted and ran before migration 4's counter functions existed.
    monkeypatch.setattr(postgres, "_ROLES", OLD_ROLES)
    monkeypatch.setattr(postgres, "_UPSERT_ROLLUPS", OLD_UPSERT_ROLLUPS)
    monkeypatch.setattr(postgres, "_UPSERT_BLOCKS", OLD_UPSERT_BLOCKS)
    old = PostgresStore.open(database, create=True)
    _sequencer(old).commit(_prepared(5))
    root = _stored_root(old)
    old.close()
    monkeypatch.undo()
    with pytest.raises(StoreError, match=r"expected \d+, found 1; run create again"):
        PostgresStore.open(database)
    upgraded = PostgresStore.open(database, create=True)
    assert upgraded.upgraded_from == 1
    assert upgraded.size() == 5
    assert _stored_root(upgraded) == root
    _sequencer(upgraded).commit(_prepared(1, time="2030-06-01T00:00:00Z"))  # a new partition
    upgraded.close()
    with _admin(database) as conn:
        collations = conn.execute(
            "SELECT a.attname, c.collname FROM pg_attribute a"
            " JOIN pg_collation c ON c.oid = a.attcollation"
            " WHERE a.attrelid = 'glasslog.events'::regclass"
            " AND a.attname IN ('service', 'action', 'actor_id', 'outcome')"
        ).fetchall()
        version = conn.execute(
            "SELECT value FROM glasslog.meta WHERE key = 'schema_version'"
        ).fetchone()
        options = dict(
            conn.execute(
                "SELECT c.relname, c.reloptions FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'glasslog.events'::regclass"
            ).fetchall()
        )
        analysed = conn.execute(
            "SELECT count(*) FROM pg_stats WHERE schemaname = 'glasslog'"
            " AND tablename = 'events' AND attname = 'request_id'"
        ).fetchone()
        # The prefix range of a wildcard can now be served by the (service, time) index.
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(
            "EXPLAIN SELECT seq FROM glasslog.events WHERE service COLLATE \"C\" >= 'pay'"
            " AND service COLLATE \"C\" < 'paz'"
        ).fetchall()
    assert sorted(c for _, c in collations) == ["C"] * 4
    # Migration 3: the old partitions and the new one are vacuumed every 50,000 inserts.
    assert set(options) >= {"events_2026_11", "events_2030_06", "events_2030_07"}
    assert all(
        opts is not None and "autovacuum_vacuum_insert_threshold=50000" in opts
        for opts in options.values()
    )
    assert version == (str(SCHEMA_VERSION),)
    assert analysed == (1,)  # statistics exist after the type change (or lookups scan)
    assert any("events_service_time" in line or "service_time" in line for (line,) in plan)


def test_opening_a_database_without_the_schema_says_create_it(database: str) -> None:
    """A database without glasslog's schema is not created by accident."""
    with pytest.raises(StoreError, match=r"no glasslog store in .*create it first"):
        PostgresStore.open(database)


def test_a_newer_schema_version_is_refused(store: PostgresStore, database: str) -> None:
    """Opening a store migrated by a newer glasslog says to upgrade, and create leaves it alone."""
    with _admin(database) as conn:
        conn.execute("UPDATE glasslog.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=rf"expected {SCHEMA_VERSION}, found 99; upgrade glasslog"):
        PostgresStore.open(database)
    with pytest.raises(StoreError, match=rf"expected {SCHEMA_VERSION}, found 99"):
        PostgresStore.open(database, create=True)


def test_append_then_every_read_method_returns_what_was_written(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """size, get, get_by_id, find_ids, events, read_tile, tiles and checkpoints read back."""
    items = _prepared(300)
    sequencer = _sequencer(store)
    receipts = sequencer.commit(items)
    assert [r.seq for r in receipts] == list(range(300))
    cp = sequencer.checkpoint()

    assert store.size() == 300
    for seq in (0, 255, 256, 299):
        got = store.get(seq)
        assert (got.seq, got.body, got.commits, got.salts) == (
            seq,
            items[seq].body,
            items[seq].row[9],
            items[seq].row[10],
        )
        assert store.get_by_id(items[seq].id) == got
    found = store.find_ids([items[3].id, items[7].id, bytes(16)])
    assert {k: v.seq for k, v in found.items()} == {items[3].id: 3, items[7].id: 7}
    assert store.find_ids([]) == {}

    monkeypatch.setattr(postgres, "_EVENTS_PAGE", 7)  # force several pages
    assert [e.seq for e in store.events(250, 270)] == list(range(250, 270))
    assert [e.seq for e in store.events(0, 1000)] == list(range(300))
    assert list(store.events(5, 5)) == []

    leaves = [merkle.leaf_hash(leaf_of(store.get(i))) for i in range(TILE_WIDTH)]
    assert store.read_tile(0, 0, TILE_WIDTH) == b"".join(leaves)
    assert store.read_tile(0, 0, 10) == b"".join(leaves)  # the wider stored tile serves
    assert store.read_tile(0, 1, 44)[: 44 * 32] == b"".join(
        merkle.leaf_hash(leaf_of(store.get(i))) for i in range(256, 300)
    )
    assert [(t.level, t.index, t.width) for t in store.tiles()] == [
        (0, 0, 256),
        (0, 1, 44),
        (1, 0, 1),
    ]
    assert store.latest_checkpoint() == cp
    assert store.checkpoints() == [cp]


def test_lookups_of_missing_events_say_what_exists(store: PostgresStore) -> None:
    """get and get_by_id raise NotFoundError with the same messages as SQLite."""
    _sequencer(store).commit(_prepared(1))
    with pytest.raises(NotFoundError, match="no event with seq 5; the log holds seq 0 to 0"):
        store.get(5)
    with pytest.raises(NotFoundError, match="no event with that id"):
        store.get_by_id(bytes(16))
    with pytest.raises(NotFoundError, match="tile 0/0 of width 1 is not stored"):
        store.read_tile(0, 0, 1)
    assert store.latest_checkpoint() is None


def test_a_reused_id_refuses_the_whole_batch(store: PostgresStore, database: str) -> None:
    """A batch holding an already-stored id raises DuplicateIdError and writes nothing."""
    first, second, third = _prepared(3, metadata={"table": "cards", "rows": 1})
    store.append([_row(0, first)], [])
    counts = {t: _count(database, t) for t in ("events", "event_keys", "fields", "rollups")}
    with pytest.raises(DuplicateIdError, match="already stored"):
        store.append([_row(1, second), _row(2, third)._replace(id=first.id)], [])
    assert store.size() == 1
    assert {t: _count(database, t) for t in counts} == counts
    assert store.find_ids([second.id]) == {}


def test_a_reused_seq_says_another_writer_is_active(store: PostgresStore) -> None:
    """Two writers sequencing at once collide on seq, and the error says why."""
    a, b = _prepared(2)
    store.append([_row(0, a)], [])
    with pytest.raises(StoreError, match="only one writer may sequence at a time"):
        store.append([_row(0, b)], [])


def test_the_pipeline_resolves_a_retry_through_find_ids(store: PostgresStore) -> None:
    """Sending an event again returns its original seq and stores nothing new."""
    sequencer = _sequencer(store)
    items = _prepared(3)
    sequencer.commit(items)
    again = sequencer.commit([items[1], *_prepared(1)])
    assert (again[0].seq, again[0].duplicate) == (1, True)
    assert (again[1].seq, again[1].duplicate) == (3, False)
    assert store.size() == 4


_REFUSED = [
    ("UPDATE glasslog.events SET service = 'x'", "events are append-only; UPDATE refused"),
    ("DELETE FROM glasslog.events", "events are append-only; DELETE refused"),
    ("TRUNCATE glasslog.events", "events are append-only; TRUNCATE refused"),
    ("UPDATE glasslog.events_2026_11 SET service = 'x'", "events are append-only; UPDATE"),
    ("DELETE FROM glasslog.events_2026_11", "events are append-only; DELETE refused"),
    ("TRUNCATE glasslog.events_2026_11", "events are append-only; TRUNCATE refused"),
    ("UPDATE glasslog.event_keys SET seq = seq + 1", "event_keys are append-only; UPDATE"),
    ("DELETE FROM glasslog.event_keys", "event_keys are append-only; DELETE refused"),
    ("TRUNCATE glasslog.event_keys", "event_keys are append-only; TRUNCATE refused"),
    ("UPDATE glasslog.tiles SET width = 1", "tiles are append-only; UPDATE refused"),
    ("DELETE FROM glasslog.tiles", "tiles are append-only; DELETE refused"),
    ("TRUNCATE glasslog.tiles", "tiles are append-only; TRUNCATE refused"),
    ("UPDATE glasslog.checkpoints SET note = 'x'", "checkpoints are append-only; UPDATE"),
    ("DELETE FROM glasslog.checkpoints", "checkpoints are append-only; DELETE refused"),
    ("TRUNCATE glasslog.checkpoints", "checkpoints are append-only; TRUNCATE refused"),
    ("UPDATE glasslog.fields SET seq = 0", "fields are append-only; UPDATE refused"),
    ("DELETE FROM glasslog.fields", "fields are append-only; DELETE refused"),
    ("TRUNCATE glasslog.fields", "fields are append-only; TRUNCATE refused"),
]


@pytest.mark.parametrize(("statement", "message"), _REFUSED)
def test_triggers_refuse_changes_even_for_the_admin(
    store: PostgresStore, database: str, statement: str, message: str
) -> None:
    """Triggers make the ledger tables append-only for every role, superuser included."""
    sequencer = _sequencer(store)
    sequencer.commit(_prepared(300))
    sequencer.checkpoint()
    with (
        _admin(database) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match=message),
    ):
        conn.execute(statement)
    assert store.size() == 300


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE glasslog.events SET service = 'x'",
        "DELETE FROM glasslog.events",
        "UPDATE glasslog.event_keys SET seq = seq + 1",
        "DELETE FROM glasslog.checkpoints",
        "UPDATE glasslog.tiles SET width = 1",
        "DELETE FROM glasslog.fields",
        "UPDATE glasslog.meta SET value = '2'",
        "SELECT * FROM glasslog.events_2026_11",
    ],
)
def test_the_app_role_may_not_change_history(
    store: PostgresStore, database: str, statement: str
) -> None:
    """glasslog_app is refused by its grants before any trigger runs."""
    _sequencer(store).commit(_prepared(5))
    with _admin(database) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(APP_ROLE)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(statement)


def test_a_member_of_the_app_role_can_run_the_pipeline(
    store: PostgresStore, login_role: str
) -> None:
    """A login role holding only glasslog_app appends, creates partitions and checkpoints."""
    app = PostgresStore.open(login_role)
    try:
        sequencer = _sequencer(app)
        sequencer.commit(_prepared(5, time="2030-03-01T00:00:00Z", metadata={"tags": ["a", "a"]}))
        sequencer.checkpoint()
        assert app.size() == 5
        # ...and queries: every kind of statement the executor emits, with its grants.
        search = PostgresSearch(app.connection)
        for query in ["metadata.tags:a", "service:pay*", "payments", "after:2030-01-01"]:
            plan = compile_query(parse(query, now=datetime.now(UTC)), dialect=POSTGRES)
            assert len(search.search(plan, limit=10, ascending=False, after=None)) == 5
            assert search.count(plan, cap=100) == (5, True)
            assert sum(n for _, n in search.count_by(plan, "metadata.tags", top=3)) == 5
            assert sum(n for _, n in search.histogram(plan)[2]) == 5
        with pytest.raises(StoreError, match="permission denied"):
            PostgresStore.open(login_role, create=True)
    finally:
        app.close()


def _partitions(dsn: str) -> dict[str, str]:
    with _admin(dsn) as conn:
        return dict(
            conn.execute(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'glasslog.events'::regclass"
            ).fetchall()
        )


def test_partitions_exist_for_the_months_written_and_one_ahead(
    store: PostgresStore, database: str
) -> None:
    """Each month a batch touches gets a partition, plus the month after the newest."""
    items = [
        *_prepared(2, time="2026-11-30T23:59:59.999999Z"),
        *_prepared(1, time="2027-01-01T00:00:00Z"),
    ]
    _sequencer(store).commit(items)
    parts = _partitions(database)
    assert sorted(parts) == ["events_2026_11", "events_2027_01", "events_2027_02"]
    assert parts["events_2027_01"] == (
        "FOR VALUES FROM ('1798761600000000') TO ('1801440000000000')"
    )
    with _admin(database) as conn:
        placed = conn.execute(
            "SELECT seq, tableoid::regclass::text FROM glasslog.events ORDER BY seq"
        ).fetchall()
    assert placed == [
        (0, "glasslog.events_2026_11"),
        (1, "glasslog.events_2026_11"),
        (2, "glasslog.events_2027_01"),
    ]


def test_the_full_text_and_field_indexes_are_filled(store: PostgresStore, database: str) -> None:
    """Words reach the tsvector, metadata values the typed field index, counts the rollups."""
    _sequencer(store).commit(
        [
            *_prepared(1, reason="Emergency rotation", metadata={"rows": 5}),
            *_prepared(1, metadata={"db": "ledgerdb", "rows": "5", "note": "Café.Rotation"}),
        ]
    )
    with _admin(database) as conn:
        find = "SELECT seq FROM glasslog.events WHERE tsv @@ %s::tsquery ORDER BY seq"
        assert conn.execute(find, ("emergency",)).fetchall() == [(0,)]
        assert conn.execute(find, ("ledgerdb",)).fetchall() == [(1,)]
        # glasslog's own words (FTS5's rules), not PostgreSQL's parser: the dot
        # separates, case and accents fold, and positions make phrases work.
        assert conn.execute(find, ("rotation",)).fetchall() == [(0,), (1,)]
        assert conn.execute(find, ("'cafe' <-> 'rotation'",)).fetchall() == [(1,)]
        assert conn.execute(find, ("'rotation' <-> 'cafe'",)).fetchall() == []
        fields = conn.execute(
            "SELECT k.path, f.value, f.seq FROM glasslog.fields f"
            " JOIN glasslog.field_keys k ON k.id = f.key ORDER BY f.seq, k.path"
        ).fetchall()
        rollup = conn.execute(
            "SELECT count FROM glasslog.rollups WHERE dim = 'service' AND value = 'payments'"
        ).fetchone()
        blocks = conn.execute("SELECT block FROM glasslog.seq_blocks").fetchall()
    assert fields == [
        ("metadata.rows", 5, 0),
        ("metadata.db", "ledgerdb", 1),
        ("metadata.note", "Café.Rotation", 1),
        ("metadata.rows", "5", 1),
    ]
    assert rollup == (2,)
    assert blocks == [(0,)]


def test_the_writer_lock_admits_one_sequencer(store: PostgresStore, database: str) -> None:
    """While one store holds the writer lock, no other session can take it."""
    other = PostgresStore.open(database)
    try:
        with _admin(database) as probe:
            with store.lock_writer():
                taken = probe.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,))
                assert taken.fetchone() == (False,)
                with (
                    pytest.raises(StoreError, match="another glasslog sequencer holds"),
                    other.lock_writer(wait=0.1),
                ):
                    pass
            taken = probe.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,))
            assert taken.fetchone() == (True,)
    finally:
        other.close()


def test_the_pipeline_commits_across_tiles_and_checkpoints_verify(database: str) -> None:
    """Sequencer on PostgreSQL: the restored tree and every checkpoint match the stored leaves."""
    signer = Signer.generate(name=ORIGIN)
    verifier = Verifier.from_vkey(signer.vkey)
    store = PostgresStore.open(database, create=True)
    with store.lock_writer():
        sequencer = _sequencer(store, signer)
        for _ in range(4):
            sequencer.commit(_prepared(97))
            sequencer.checkpoint()
    store.close()

    store = PostgresStore.open(database)
    with store.lock_writer():
        sequencer = _sequencer(store, signer)  # restores the tree from the tiles
        sequencer.commit(_prepared(150))
        sequencer.checkpoint()
    assert store.size() == 538
    assert restore_tree(store).root() == _stored_root(store)
    leaves = [merkle.leaf_hash(leaf_of(e)) for e in store.events(0, store.size())]
    sizes = []
    for stored in store.checkpoints():
        cp = verify_checkpoint(stored.note, verifier=verifier)
        assert cp.size == stored.size
        assert cp.root == merkle.root_of(leaves[: cp.size])
        sizes.append(cp.size)
    assert sizes == [97, 194, 291, 388, 538]
    store.close()


def _vacuumed(dsn: str) -> int:
    with _admin(dsn) as conn:
        row = conn.execute(
            "SELECT vacuum_count FROM pg_stat_user_tables"
            " WHERE schemaname = 'glasslog' AND relname = 'event_keys'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_optimize_after_a_small_load_is_left_to_autovacuum(
    store: PostgresStore, database: str
) -> None:
    """VACUUM ANALYZE runs when asked, or after a load of a tenth of the store or more."""
    _sequencer(store).commit(_prepared(40))
    store.optimize(written=3)  # 3 of 40: skipped
    assert _vacuumed(database) == 0
    store.optimize(written=4)  # 4 of 40: a tenth
    assert _vacuumed(database) == 1
    store.optimize()
    assert _vacuumed(database) == 2


def test_connection_errors_never_show_the_password() -> None:
    """A failed connection names the database but not the password from the DSN."""
    with pytest.raises(StoreError, match=r"connecting to postgresql://u@127\.0\.0\.1:1/x") as e:
        PostgresStore.open("postgresql://u:s3cret-pw@127.0.0.1:1/x?connect_timeout=2")
    assert "s3cret-pw" not in str(e.value)
    with pytest.raises(StoreError, match="DSN could not be parsed") as e:
        PostgresStore.open("host=x password=s3cret-pw 'unterminated")
    assert "s3cret-pw" not in str(e.value)


@given(st.text(alphabet=string.ascii_letters + string.digits, min_size=6))
def test_describe_dsn_drops_the_password(password: str) -> None:
    """Whatever the password, the printable form of a DSN leaves it out."""
    dsn = make_conninfo("host=db.example port=5432 dbname=audit user=svc", password=password)
    assert describe_dsn(dsn) == "postgresql://svc@db.example:5432/audit"


def test_the_dba_setup_in_the_docs_works_without_a_superuser() -> None:
    """A plain owner role creates the schema; a member of glasslog_app then writes."""
    admin = admin_dsn()
    tag = secrets.token_hex(4)
    owner, service, dbname = f"glasslog_owner_{tag}", f"glasslog_svc_{tag}", f"glasslog_dba_{tag}"
    with _admin(admin) as conn:
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'glasslog_app')"
            " THEN CREATE ROLE glasslog_app NOLOGIN; END IF; END $$"
        )
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE glasslog_app").format(sql.Identifier(service))
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(owner)
            )
        )
    try:
        PostgresStore.open(make_conninfo(admin, dbname=dbname, user=owner), create=True).close()
        app = PostgresStore.open(make_conninfo(admin, dbname=dbname, user=service))
        try:
            sequencer = _sequencer(app)
            sequencer.commit(_prepared(3))
            sequencer.checkpoint()
            assert [e.seq for e in app.events(0, 3)] == [0, 1, 2]
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                app.connection.execute("DELETE FROM glasslog.events")
        finally:
            app.close()
        with (
            psycopg.connect(make_conninfo(admin, dbname=dbname, user=owner)) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
        ):
            conn.execute("DELETE FROM glasslog.events")
    finally:
        with _admin(admin) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
            conn.execute(
                sql.SQL("DROP ROLE {}, {}").format(sql.Identifier(service), sql.Identifier(owner))
            )
