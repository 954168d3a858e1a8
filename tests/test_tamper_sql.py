"""Tampering through SQL, on both backends, is found by verify and located at its seq.

Each attack is written once per backend's SQL dialect and run against a fresh copy
of one pristine log (1000 events, a checkpoint every 200): on SQLite a copy of the
file with the append-only triggers dropped, as an attacker with file access would;
on PostgreSQL a database cloned from a template, edited by a superuser who skips
the triggers with ``session_replication_role = replica``. Attacks below the SQL
level (bits flipped in the SQLite file) are in tests/test_tamper.py.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql as pgsql

from glasslog.datadir import DataDir
from glasslog.derived import search_text
from glasslog.errors import IntegrityError, NotFoundError
from glasslog.ingest.pipeline import Settings
from glasslog.ledger.note import Signer, Verifier
from glasslog.log import Log
from glasslog.store import open_store
from glasslog.verify import verify_store
from tests.attacker import run_as_attacker
from tests.conftest import BACKENDS, admin_dsn, backend_log, make_event

N = 1000


@dataclass
class Built:
    backend: str
    spec: str
    verifier: Verifier

    def sql(self, attack: dict[str, list[str]]) -> None:
        """Run the attack's statements for this backend, bypassing the triggers."""
        run_as_attacker(self.spec, attack[self.backend])

    def verify_fails_at(self, seq: int | None, match: str) -> None:
        with pytest.raises(IntegrityError, match=match) as info:
            verify_store(self.spec, self.verifier, workers=1)
        assert info.value.seq == seq


@pytest.fixture(scope="module", params=BACKENDS)
def pristine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    """The pristine log on one backend: a file to copy, or a database to clone."""
    backend: str = request.param
    settings = Settings(checkpoint_every=200, checkpoint_interval=1e9)
    with backend_log(backend, settings=settings) as tlog:
        for i in range(N // 100):
            tlog.submit(
                [make_event(metadata={"marker": f"mark-{i * 100 + j:05d}"}) for j in range(100)]
            )
        verifier = tlog.datadir.verifier()
        tlog.store.close()
        tlog.log.close()
        if backend == "sqlite":
            out = tmp_path_factory.mktemp("pristine") / "glasslog.db"
            shutil.copy(tlog.spec, out)
            yield Built(backend, str(out), verifier)
        else:
            yield Built(backend, tlog.spec, verifier)


@pytest.fixture
def built(pristine: Built, tmp_path: Path) -> Iterator[Built]:
    """A copy of the pristine log that the test may wreck."""
    if pristine.backend == "sqlite":
        shutil.copy(pristine.spec, tmp_path / "glasslog.db")
        yield Built("sqlite", str(tmp_path / "glasslog.db"), pristine.verifier)
        return
    template = urlsplit(pristine.spec).path.lstrip("/")
    name = f"glasslog_tamper_{secrets.token_hex(6)}"
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(
            pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                pgsql.Identifier(name), pgsql.Identifier(template)
            )
        )
    try:
        yield Built("postgres", urlunsplit(urlsplit(pristine.spec)._replace(path=f"/{name}")),
                    pristine.verifier)  # fmt: skip
    finally:
        with psycopg.connect(admin_dsn(), autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier(name)))


def test_untouched_copy_verifies(built: Built) -> None:
    """The baseline: the copied log is intact."""
    report = verify_store(built.spec, built.verifier, workers=1)
    assert (report.events, report.checkpoints, report.pending) == (N, 5, 0)


def test_changed_event_body_is_found(built: Built) -> None:
    """Editing one event's JSON names that event's seq."""
    edit = "UPDATE events SET body = replace(body, 'payments', 'paymentz') WHERE seq = 437"
    built.sql({"sqlite": [edit], "postgres": [edit]})
    built.verify_fails_at(437, "seq 437: the stored event does not match")


def test_changed_salt_is_found(built: Built) -> None:
    """Replacing a field's salt changes its commitment and is located."""
    built.sql({
        "sqlite": ["UPDATE events SET salts = zeroblob(length(salts)) WHERE seq = 10"],
        "postgres": ["UPDATE events SET salts = decode(repeat('00', length(salts)), 'hex')"
                     " WHERE seq = 10"],
    })  # fmt: skip
    built.verify_fails_at(10, "seq 10")


def test_uncommitting_a_field_is_found(built: Built) -> None:
    """Dropping a path from the committed list (to reveal it in the leaf) is found."""
    built.sql({
        "sqlite": ["UPDATE events SET commits = '[]', salts = x'' WHERE seq = 612"],
        "postgres": ["UPDATE events SET commits = '[]', salts = '' WHERE seq = 612"],
    })  # fmt: skip
    built.verify_fails_at(612, "seq 612")


def test_changed_event_after_last_full_tile_is_found(built: Built) -> None:
    """An edit in the partial right-edge tile is caught via the checkpoint's partial tile."""
    edit = "UPDATE events SET body = replace(body, 'db.query', 'db.qwery') WHERE seq = 990"
    built.sql({"sqlite": [edit], "postgres": [edit]})
    built.verify_fails_at(990, "seq 990")


def test_deleted_event_is_found(built: Built) -> None:
    """Deleting a row leaves a gap that is named."""
    built.sql({
        "sqlite": ["DELETE FROM events WHERE seq = 300"],
        "postgres": ["DELETE FROM events WHERE seq = 300",
                     "DELETE FROM event_keys WHERE seq = 300"],
    })  # fmt: skip
    built.verify_fails_at(300, "seq 300 is missing")


def test_deleted_tail_is_found(built: Built) -> None:
    """Deleting the newest events contradicts the checkpoint that covered them."""
    built.sql({
        "sqlite": ["DELETE FROM events WHERE seq >= 990"],
        "postgres": ["DELETE FROM events WHERE seq >= 990",
                     "DELETE FROM event_keys WHERE seq >= 990"],
    })  # fmt: skip
    built.verify_fails_at(990, "covers events that are missing")


def test_inserted_event_is_found(built: Built) -> None:
    """Inserting a row in the middle (renumbering the rest) is found where it starts."""
    columns = "time, service, action, actor_id, outcome, request_id, trace_id, body, commits, salts"
    built.sql({
        "sqlite": [
            "UPDATE events SET seq = seq + 1000000 WHERE seq >= 500",
            "UPDATE events SET seq = seq - 999999 WHERE seq >= 1000000",
            f"INSERT INTO events (seq, id, {columns}) SELECT 500, randomblob(16), {columns}"
            " FROM events WHERE seq = 499",
        ],
        "postgres": [
            "UPDATE events SET seq = seq + 1000000 WHERE seq >= 500",
            "UPDATE events SET seq = seq - 999999 WHERE seq >= 1000000",
            "UPDATE event_keys SET seq = seq + 1000000 WHERE seq >= 500",
            "UPDATE event_keys SET seq = seq - 999999 WHERE seq >= 1000000",
            f"INSERT INTO events (seq, id, {columns}, tsv) SELECT 500, gen_random_uuid()::text"
            f"::bytea, {columns}, tsv FROM events WHERE seq = 499",
            "INSERT INTO event_keys (seq, id, time) SELECT seq, id, time FROM events"
            " WHERE seq = 500 AND id NOT IN (SELECT id FROM event_keys)",
        ],
    })  # fmt: skip
    built.verify_fails_at(500, "seq 500")


def test_reordered_events_are_found(built: Built) -> None:
    """Swapping two events' contents names the first of them."""
    built.sql({
        "sqlite": [
            "UPDATE events SET seq = 1000000 WHERE seq = 100",
            "UPDATE events SET seq = 100 WHERE seq = 101",
            "UPDATE events SET seq = 101 WHERE seq = 1000000",
        ],
        "postgres": [
            "UPDATE events e SET body = o.body, commits = o.commits, salts = o.salts"
            " FROM events o WHERE (e.seq, o.seq) IN ((100, 101), (101, 100))"
        ],
    })  # fmt: skip
    built.verify_fails_at(100, "seq 100")


def test_changed_tile_is_found(built: Built) -> None:
    """Editing a stored leaf hash in a tile names the leaf it belongs to."""
    built.sql({
        "sqlite": ["UPDATE tiles SET hashes ="
                   " CAST(substr(hashes, 1, 160) || zeroblob(32) || substr(hashes, 193) AS BLOB)"
                   " WHERE level = 0 AND idx = 1 AND width = 256"],
        "postgres": ["UPDATE tiles SET hashes = overlay(hashes placing"
                     " decode(repeat('00', 32), 'hex') from 161 for 32)"
                     " WHERE level = 0 AND idx = 1 AND width = 256"],
    })  # fmt: skip
    built.verify_fails_at(256 + 5, "seq 261")


def test_forged_checkpoint_is_found(built: Built) -> None:
    """A checkpoint note whose text was changed no longer carries a valid signature."""
    built.sql({
        "sqlite": ["UPDATE checkpoints SET note = replace(note, char(10) || '600' || char(10),"
                   " char(10) || '601' || char(10)) WHERE size = 600"],
        "postgres": ["UPDATE checkpoints SET note = replace(note, E'\\n600\\n', E'\\n601\\n')"
                     " WHERE size = 600"],
    })  # fmt: skip
    with pytest.raises(IntegrityError, match="checkpoint at size 600"):
        verify_store(built.spec, built.verifier, workers=1)


def test_checkpoint_from_another_key_is_refused(built: Built) -> None:
    """Verifying against a different log's key fails on the first checkpoint."""
    other = Verifier.from_vkey(Signer.generate(name="test.example/log").vkey)
    with pytest.raises(IntegrityError, match="checkpoint at size 200"):
        verify_store(built.spec, other, workers=1)


def test_tamper_found_by_parallel_workers_names_the_seq(built: Built) -> None:
    """With worker processes, the error and its seq still reach the caller."""
    edit = "UPDATE events SET body = replace(body, 'payments', 'paymentz') WHERE seq = 901"
    built.sql({"sqlite": [edit], "postgres": [edit]})
    with pytest.raises(IntegrityError, match="seq 901") as info:
        verify_store(built.spec, built.verifier, workers=2)
    assert info.value.seq == 901


def test_deleted_unsigned_tail_is_found_through_the_tiles(backend: str) -> None:
    """Rows deleted after the last checkpoint are still missed by a full tile that recorded them."""
    with backend_log(backend) as tlog:
        tlog.submit([make_event() for _ in range(100)])
        tlog.checkpoint()
        tlog.submit([make_event() for _ in range(200)])  # completes tile 0/0, no checkpoint
        built = Built(backend, tlog.spec, tlog.datadir.verifier())
        tlog.store.close()
        tlog.log.close()
        built.sql({
            "sqlite": ["DELETE FROM events WHERE seq >= 200"],
            "postgres": ["DELETE FROM events WHERE seq >= 200",
                         "DELETE FROM event_keys WHERE seq >= 200"],
        })  # fmt: skip
        built.verify_fails_at(200, "seq 200 is missing")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


# -- issue 9 §1: rows outside the tree -----------------------------------------------------

_COLUMNS = "time, service, action, actor_id, outcome, request_id, trace_id, body, commits, salts"
_FORGED_ROW = {
    "sqlite": f"INSERT INTO events (seq, id, {_COLUMNS}) SELECT -1, randomblob(16), {_COLUMNS}"
    " FROM events WHERE seq = 599",
    "postgres": f"INSERT INTO events (seq, id, {_COLUMNS}, tsv) SELECT -1,"
    " decode(replace(gen_random_uuid()::text, '-', ''), 'hex'),"
    f" {_COLUMNS}, tsv FROM events WHERE seq = 599",
}


def test_a_row_below_seq_0_is_refused_by_the_schema(built: Built) -> None:
    """INSERT rights alone (every trigger in place) cannot add a row outside the tree."""
    if built.backend == "sqlite":
        conn = sqlite3.connect(built.spec, isolation_level=None)
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(_FORGED_ROW["sqlite"])
        conn.close()
        return
    with psycopg.connect(built.spec, autocommit=True) as pg:
        pg.execute("SET search_path TO glasslog")
        with pytest.raises(psycopg.errors.CheckViolation):
            pg.execute(_FORGED_ROW["postgres"].encode())


def test_a_row_outside_the_tree_is_named_by_verify(built: Built) -> None:
    """With the schema's guard removed, the row at seq -1 is named instead of passing unseen."""
    built.sql({
        "sqlite": ["PRAGMA ignore_check_constraints = ON", _FORGED_ROW["sqlite"]],
        "postgres": ["ALTER TABLE events DROP CONSTRAINT events_seq_in_tree",
                     _FORGED_ROW["postgres"]],
    })  # fmt: skip
    built.verify_fails_at(-1, "seq -1: a row outside the tree")


def test_reads_never_show_a_row_outside_the_tree(built: Built, tmp_path: Path) -> None:
    """get by id, trace and search skip the forged row at seq -1 that verify names."""
    built.sql({
        "sqlite": ["PRAGMA ignore_check_constraints = ON", _FORGED_ROW["sqlite"]],
        "postgres": ["ALTER TABLE events DROP CONSTRAINT events_seq_in_tree",
                     "ALTER TABLE event_keys DROP CONSTRAINT event_keys_seq_in_tree",
                     _FORGED_ROW["postgres"],
                     "INSERT INTO event_keys (seq, id, time) SELECT seq, id, time FROM events"
                     " WHERE seq = -1"],
    })  # fmt: skip
    data = tmp_path / "keys"
    data.mkdir()
    (data / "signing.key").touch(mode=0o600)  # Log.open wants an initialised directory
    (data / "log.vkey").write_text(built.verifier.vkey + "\n")
    log = Log(DataDir(data), open_store(built.spec))
    try:
        forged = _forged(built)
        with pytest.raises(NotFoundError):
            log.get(forged["id"])
        request = forged["context"]["request_id"]
        traced = [e["seq"] for e in log.trace(request)]
        assert 599 in traced
        assert -1 not in traced
        page = log.search(f"request:{request}")
        assert -1 not in [e["seq"] for e in page.events]
        assert page.outside == (-1,), "the row is reported, not silently dropped"
    finally:
        log.close()


def _forged(built: Built) -> dict[str, Any]:
    """The forged row's event, read straight from the database."""
    if built.backend == "sqlite":
        conn = sqlite3.connect(built.spec)
        (body, key) = conn.execute("SELECT body, id FROM events WHERE seq = -1").fetchone()
        conn.close()
    else:
        with psycopg.connect(built.spec) as pg:
            row = pg.execute("SELECT body, id FROM glasslog.events WHERE seq = -1").fetchone()
            assert row is not None
            body, key = row
    event: dict[str, Any] = json.loads(body)
    event["id"] = str(uuid.UUID(bytes=bytes(key)))
    return event


def test_a_second_row_for_one_seq_is_found(built: Built) -> None:
    """PostgreSQL's partitioned events accept a seq twice (with another time): verify counts."""
    columns = "service, action, actor_id, outcome, request_id, trace_id, body, commits, salts"
    built.sql({
        "sqlite": [f"INSERT INTO events (seq, id, time, {columns}) SELECT 5000, randomblob(16),"
                   f" time, {columns} FROM events WHERE seq = 599"],
        "postgres": [f"INSERT INTO events (seq, id, time, {columns}, tsv) SELECT 599,"
                     f" gen_random_uuid()::text::bytea, time + 1, {columns}, tsv"
                     " FROM events WHERE seq = 599"],
    })  # fmt: skip
    if built.backend == "sqlite":  # seq is unique there: a far row leaves a gap, named
        built.verify_fails_at(1000, "seq 1000 is missing")
    else:
        built.verify_fails_at(None, "a seq stored twice")


# -- issue 9 §2: counters only grow, for everyone but someone who drops the guards ---------


def test_counters_cannot_be_lowered_or_deleted_through_sql(built: Built) -> None:
    """rollups and seq_blocks refuse UPDATE that lowers and any DELETE, triggers in place."""
    statements = [
        "UPDATE rollups SET count = 0 WHERE dim = 'actor_id'",
        "DELETE FROM rollups WHERE dim = 'service'",
        "UPDATE seq_blocks SET max_time = 0",
        "DELETE FROM seq_blocks",
        "DELETE FROM meta WHERE key = 'vkey'",
        "UPDATE meta SET value = 'forged' WHERE key = 'vkey'",
    ]
    for statement in statements:
        if built.backend == "sqlite":
            conn = sqlite3.connect(built.spec, isolation_level=None)
            with pytest.raises(sqlite3.IntegrityError, match="glasslog"):
                conn.execute(statement)
            conn.close()
            continue
        with psycopg.connect(built.spec, autocommit=True) as pg:
            pg.execute("SET search_path TO glasslog")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="glasslog"):
                pg.execute(statement.encode())
    test_untouched_copy_verifies(built)


def test_the_app_role_has_no_update_or_delete_on_any_table() -> None:
    """On PostgreSQL the application role may only SELECT and INSERT, and call the counters."""
    with backend_log("postgres") as tlog, psycopg.connect(tlog.spec, autocommit=True) as pg:
        tlog.submit([make_event() for _ in range(10)])  # the counters' functions ran
        rows = pg.execute(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = 'glasslog_app' AND table_schema = 'glasslog'"
            " AND privilege_type NOT IN ('SELECT', 'INSERT')"
        ).fetchall()
        counters = pg.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = 'glasslog_app' AND table_name IN ('rollups', 'seq_blocks')"
            " AND privilege_type <> 'SELECT'"
        ).fetchall()
        (rollups,) = pg.execute("SELECT sum(count) FROM glasslog.rollups").fetchone() or (0,)
    assert rows == []
    assert counters == []
    assert rollups == 40  # 10 events x 4 dimensions, added through add_rollups


# -- issue 9 §2: derived data that queries read, recomputed by verify from the bodies ------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("service", "'billing'"),
        ("action", "'auth.login'"),
        ("actor_id", "'nobody'"),
        ("outcome", "'failure'"),
        ("request_id", "'req-forged'"),
        ("trace_id", "NULL"),
        ("time", "time - 1"),
    ],
)
def test_a_changed_column_is_named(built: Built, column: str, value: str) -> None:
    """Each indexed column that disagrees with its signed body is tampering at its seq."""
    edit = f"UPDATE events SET {column} = {value} WHERE seq = 595"
    built.sql({"sqlite": [edit], "postgres": [edit]})
    built.verify_fails_at(595, f"seq 595: the stored {column} column does not match")


def test_the_reviewed_column_attack_is_named(built: Built) -> None:
    """The review's attack: outcome, actor and time changed together, update trigger dropped."""
    built.sql({
        "sqlite": ["UPDATE events SET outcome = 'failure', actor_id = 'nobody', time = 0"
                   " WHERE seq = 595"],
        # time = 0 has no partition on PostgreSQL; a minute earlier stays in the month.
        "postgres": ["UPDATE events SET outcome = 'failure', actor_id = 'nobody',"
                     " time = time - 60000000 WHERE seq = 595"],
    })  # fmt: skip
    built.verify_fails_at(595, "seq 595: the stored time column")


def test_a_changed_lookup_id_is_named(built: Built) -> None:
    """The id a lookup by id goes through must be the body's: on SQLite the events.id column,
    on PostgreSQL also event_keys, its second copy of id and time."""
    built.sql({
        "sqlite": ["UPDATE events SET id = randomblob(16) WHERE seq = 595"],
        "postgres": ["UPDATE event_keys SET time = time + 1 WHERE seq = 595"],
    })  # fmt: skip
    match = {"sqlite": "the stored id column", "postgres": "the id or time kept for lookups"}
    built.verify_fails_at(595, f"seq 595: {match[built.backend]}")


def _actor_of(seq: int) -> str:
    return f"(SELECT actor_id FROM events WHERE seq = {seq})"


@pytest.mark.parametrize(
    "attack",
    [
        "UPDATE rollups SET count = 0 WHERE dim = 'actor_id' AND value = {actor}",
        "UPDATE rollups SET count = count + 1 WHERE dim = 'outcome'",
        "DELETE FROM rollups WHERE dim = 'actor_id' AND value = {actor}",
        "INSERT INTO rollups (dim, hour, value, count) SELECT dim, hour, 'mallory', 1"
        " FROM rollups WHERE dim = 'actor_id' LIMIT 1",
    ],
    ids=["zeroed", "raised", "deleted", "inserted"],
)
def test_a_changed_rollup_is_found(built: Built, attack: str) -> None:
    """Counts per hour that disagree with the signed events are tampering."""
    edit = attack.format(actor=_actor_of(595))
    built.sql({"sqlite": [edit], "postgres": [edit]})
    built.verify_fails_at(None, "rollups")


def test_narrowed_seq_blocks_are_found(built: Built) -> None:
    """A block's time bounds narrowed (to hide its events from full-text scans) are named."""
    edit = "UPDATE seq_blocks SET min_time = max_time + 1 WHERE block = 0"
    built.sql({"sqlite": [edit], "postgres": [edit]})
    built.verify_fails_at(0, "seq_blocks")


_MARKER_KEY = "(SELECT id FROM field_keys WHERE path = 'metadata.marker')"


def test_an_added_field_row_is_named(built: Built) -> None:
    """The review's attack: metadata.marker:admin-override made to find event 595."""
    built.sql({
        "sqlite": [f"INSERT INTO fields (key, value, time, seq) SELECT {_MARKER_KEY},"
                   " 'admin-override', time, seq FROM events WHERE seq = 595"],
        "postgres": [f"INSERT INTO fields (key, value, time, seq) SELECT {_MARKER_KEY},"
                     " '\"admin-override\"'::jsonb, time, seq FROM events WHERE seq = 595"],
    })  # fmt: skip
    built.verify_fails_at(595, "seq 595: the field index holds 2 values for the event, its signed")


def test_a_removed_field_row_is_named(built: Built) -> None:
    """An event hidden from metadata queries (its field row deleted) is named."""
    edit = "DELETE FROM fields WHERE seq = 595"
    built.sql({"sqlite": [edit], "postgres": [edit]})
    built.verify_fails_at(595, "seq 595: the field index lacks a value of metadata.marker")


def test_a_renamed_field_key_is_found(built: Built) -> None:
    """Renaming a path in field_keys moves every value under it to another path."""
    edit = "UPDATE field_keys SET path = 'metadata.tag' WHERE path = 'metadata.marker'"
    built.sql({"sqlite": [edit], "postgres": [edit]})
    built.verify_fails_at(0, "seq 0: the field index")


def test_a_field_row_outside_the_tree_is_found(built: Built) -> None:
    """A row for a seq the tree does not hold yet would make a future event match."""
    built.sql({
        "sqlite": [f"INSERT INTO fields (key, value, time, seq) VALUES ({_MARKER_KEY},"
                   " 'admin-override', 0, 5000)"],
        "postgres": [f"INSERT INTO fields (key, value, time, seq) VALUES ({_MARKER_KEY},"
                     " '\"admin-override\"'::jsonb, 0, 5000)"],
    })  # fmt: skip
    built.verify_fails_at(5000, "the field index holds a row for seq 5000, outside the tree")


def test_changed_full_text_words_are_found(built: Built) -> None:
    """Words added to an event's full-text entry (so a search finds it) are found."""
    built.sql({
        "sqlite": ["INSERT INTO events_fts (rowid, text) VALUES (595, 'zebraword')"],
        "postgres": ["UPDATE events SET tsv = tsv || 'zebraword'::tsvector WHERE seq = 595"],
    })  # fmt: skip
    if built.backend == "sqlite":  # one index for all events: checked whole
        built.verify_fails_at(None, "the full-text index does not match the words")
    else:  # tsv per event row: named
        built.verify_fails_at(595, "seq 595: its full-text entry is not the words of its signed")


def test_an_event_hidden_from_full_text_is_found(built: Built) -> None:
    """Removing an event's words from the full-text index is found.

    On SQLite the attacker removes exactly its entries (a contentless FTS5 'delete' with
    the words it was indexed with), which FTS5's integrity check against the bodies'
    words finds; on PostgreSQL the words are the row's own tsv, compared per event.
    """
    if built.backend == "postgres":
        built.sql({"postgres": ["UPDATE events SET tsv = ''::tsvector WHERE seq = 595"]})
        built.verify_fails_at(595, "seq 595: its full-text entry")
        return
    conn = sqlite3.connect(built.spec)
    (body,) = conn.execute("SELECT body FROM events WHERE seq = 595").fetchone()
    conn.close()
    words = search_text(json.loads(body)).replace("'", "''")
    built.sql({
        "sqlite": ["INSERT INTO events_fts (events_fts, rowid, text)"
                   f" VALUES ('delete', 595, '{words}')"],
    })  # fmt: skip
    built.verify_fails_at(None, "the full-text index does not match the words")


def test_verify_needs_no_write_access(built: Built) -> None:
    """Every check runs read-only: on SQLite over a read-only connection (``mode=ro``, where
    FTS5's integrity check, an INSERT, would fail: it runs on a copy in TEMP), and on a
    read-only file for good measure (root ignores the mode; the connection does not); on
    PostgreSQL in a session whose transactions are all read-only."""
    if built.backend == "postgres":
        spec = built.spec + "?options=-c%20default_transaction_read_only%3Don"
        assert verify_store(spec, built.verifier, workers=2).events == N
        return
    Path(built.spec).chmod(0o400)
    try:
        report = verify_store(built.spec, built.verifier, workers=2)
    finally:
        Path(built.spec).chmod(0o600)
    assert report.events == N
