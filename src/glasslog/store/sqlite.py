"""The embedded store: one SQLite file in WAL mode, one writer, FTS5 for free text.

Append-only is enforced by the database itself: triggers refuse every UPDATE and
DELETE on the event, tile and checkpoint tables, so a bug (or a careless operator
using the ``sqlite3`` shell) cannot rewrite history through SQL. Someone editing the
file's bytes directly is caught by ``glasslog verify`` instead.

Durability: ``synchronous=FULL`` in WAL mode makes every COMMIT fsync the WAL, and
the pipeline commits once per batch, so the cost is one fsync per batch (group
commit) and an acknowledged event survives a crash or power loss.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, NamedTuple

from glasslog.derived import field_values, search_text
from glasslog.errors import ConflictError, DuplicateIdError, StoreError
from glasslog.ledger.tiles import Tile
from glasslog.store.base import (
    ApiKey,
    Erasure,
    EventRow,
    FieldRow,
    Grant,
    Hold,
    Pruned,
    Rewrite,
    StoredCheckpoint,
    StoredEvent,
    VerifyRow,
    no_event_at,
    no_event_with_id,
    pruned_error,
    rollup_counts,
    seq_block_bounds,
    tile_not_stored,
    unsupported_version,
)

SCHEMA_VERSION = 6
"""1: the first schema. 2: ``fields.value`` without type affinity (see ``_migrate_to_2``).
3: every table guarded by triggers, and no event row outside the tree (``_GUARDS``).
4: full text derived in canonical key order, so that ``verify`` and the search recheck
derive the same words from the body (see ``_migrate_to_4``).
5: API keys (their hashes), break-glass grants, and their revocations, append-only.
6: the lifecycle: retention (pruned payloads, legal holds) and erasure
(``_RETENTION``, ``_ERASURE``; docs/retention.md, docs/erasure.md)."""

_RETENTION = """
-- Retention and legal holds (docs/retention.md). A pruned event keeps its place in the
-- tree through this row (its leaf hash), and its id stays taken.
CREATE TABLE IF NOT EXISTS pruned (
    seq  INTEGER PRIMARY KEY,
    id   BLOB NOT NULL UNIQUE,
    time INTEGER NOT NULL,   -- the event's time, microseconds since the epoch
    leaf BLOB NOT NULL,      -- the 32-byte leaf hash the tree holds
    by   INTEGER NOT NULL,   -- seq of the retention.prune event that authorised it
    at   INTEGER NOT NULL    -- when it was pruned, microseconds since the epoch
);
CREATE TABLE IF NOT EXISTS holds (
    id      TEXT PRIMARY KEY,
    query   TEXT NOT NULL,
    reason  TEXT NOT NULL,
    created INTEGER NOT NULL,
    by      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hold_releases (
    id     TEXT PRIMARY KEY,
    time   INTEGER NOT NULL,
    by     TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS pruned_no_update BEFORE UPDATE ON pruned
BEGIN SELECT RAISE(ABORT, 'glasslog: pruned are append-only; UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS pruned_no_delete BEFORE DELETE ON pruned
BEGIN SELECT RAISE(ABORT, 'glasslog: pruned are append-only; DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS holds_no_update BEFORE UPDATE ON holds
BEGIN SELECT RAISE(ABORT, 'glasslog: holds are append-only; UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS holds_no_delete BEFORE DELETE ON holds
BEGIN SELECT RAISE(ABORT, 'glasslog: holds are append-only; DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS hold_releases_no_update BEFORE UPDATE ON hold_releases
BEGIN SELECT RAISE(ABORT, 'glasslog: hold_releases are append-only; UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS hold_releases_no_delete BEFORE DELETE ON hold_releases
BEGIN SELECT RAISE(ABORT, 'glasslog: hold_releases are append-only; DELETE refused'); END;
-- Only retention deletes an event (or its field rows), and only once its pruned row
-- is written: these replace the plain refusals of the append-only tables.
DROP TRIGGER IF EXISTS events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    WHEN NOT EXISTS (SELECT 1 FROM pruned WHERE seq = OLD.seq)
BEGIN SELECT RAISE(ABORT, 'glasslog: events are append-only; DELETE refused'); END;
DROP TRIGGER IF EXISTS fields_no_delete;
CREATE TRIGGER fields_no_delete BEFORE DELETE ON fields
    WHEN NOT EXISTS (SELECT 1 FROM pruned WHERE seq = OLD.seq)
BEGIN SELECT RAISE(ABORT, 'glasslog: fields are append-only; DELETE refused'); END;
-- A pruned event's id stays taken: a re-sent event is a duplicate, never a new row.
CREATE TRIGGER IF NOT EXISTS events_id_not_pruned BEFORE INSERT ON events
    WHEN EXISTS (SELECT 1 FROM pruned WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: events.id (pruned by retention)'); END;
"""
_ERASURE = """
-- Erasure of a data subject's personal fields (docs/erasure.md): one row per erased
-- field, written in the transaction that rewrites the event row, before it.
CREATE TABLE IF NOT EXISTS erasures (
    seq    INTEGER NOT NULL,   -- the event whose field was erased
    path   TEXT NOT NULL,      -- the field, as a JSON Pointer
    time   INTEGER NOT NULL,   -- when: the erasure.erase event's time, microseconds
    by_seq INTEGER NOT NULL,   -- seq of the erasure.erase event that authorised it
    PRIMARY KEY (seq, path)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS erasures_no_update BEFORE UPDATE ON erasures
BEGIN SELECT RAISE(ABORT, 'glasslog: erasures are append-only; UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS erasures_no_delete BEFORE DELETE ON erasures
BEGIN SELECT RAISE(ABORT, 'glasslog: erasures are append-only; DELETE refused'); END;
-- An event row changes only by erasure: once its erasures rows are written, and only
-- in body, commits and salts (the leaf stays the same; verify checks every byte).
DROP TRIGGER IF EXISTS events_no_update;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    WHEN NOT EXISTS (SELECT 1 FROM erasures WHERE seq = OLD.seq)
      OR NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.time IS NOT OLD.time
      OR NEW.service IS NOT OLD.service OR NEW.action IS NOT OLD.action
      OR NEW.actor_id IS NOT OLD.actor_id OR NEW.outcome IS NOT OLD.outcome
      OR NEW.request_id IS NOT OLD.request_id OR NEW.trace_id IS NOT OLD.trace_id
BEGIN SELECT RAISE(ABORT, 'glasslog: events are append-only; UPDATE refused'); END;
"""

_APPEND_ONLY = (
    "events",
    "tiles",
    "checkpoints",
    "fields",
    "field_keys",
    "api_keys",
    "api_key_revocations",
    "grants",
    "grant_revocations",
)

_GUARDS = """
-- A row below seq 0 would be shown by reads but never verified (verify walks the tree
-- from 0): refused, as the CHECK on events.seq does for stores created since version 3.
CREATE TRIGGER IF NOT EXISTS events_seq_in_tree BEFORE INSERT ON events
    WHEN NEW.seq < 0
BEGIN SELECT RAISE(ABORT, 'glasslog: an event seq is a leaf index, never below 0'); END;

-- Counters only grow: an upsert may add to a count, nothing may lower or move one.
CREATE TRIGGER IF NOT EXISTS rollups_only_grow BEFORE UPDATE ON rollups
    WHEN NEW.count < OLD.count OR NEW.dim IS NOT OLD.dim OR NEW.hour IS NOT OLD.hour
      OR NEW.value IS NOT OLD.value
BEGIN SELECT RAISE(ABORT, 'glasslog: rollups only grow; UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS rollups_no_delete BEFORE DELETE ON rollups
BEGIN SELECT RAISE(ABORT, 'glasslog: rollups only grow; DELETE refused'); END;

-- A block's time bounds only widen as events arrive.
CREATE TRIGGER IF NOT EXISTS seq_blocks_only_widen BEFORE UPDATE ON seq_blocks
    WHEN NEW.min_time > OLD.min_time OR NEW.max_time < OLD.max_time
      OR NEW.block IS NOT OLD.block
BEGIN SELECT RAISE(ABORT, 'glasslog: seq_blocks only widen; UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS seq_blocks_no_delete BEFORE DELETE ON seq_blocks
BEGIN SELECT RAISE(ABORT, 'glasslog: seq_blocks only widen; DELETE refused'); END;

-- meta holds the store's identity: only a migration moves the schema version.
CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta
    WHEN OLD.key <> 'schema_version' OR NEW.key <> OLD.key
BEGIN SELECT RAISE(ABORT, 'glasslog: meta is append-only; UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta
BEGIN SELECT RAISE(ABORT, 'glasslog: meta is append-only; DELETE refused'); END;
"""

_FIELDS = """
CREATE TABLE IF NOT EXISTS fields (
    key   INTEGER NOT NULL,
    value NOT NULL,  -- no declared type, so no affinity: the string '3' stays a string
    time  INTEGER NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (key, value, time, seq)
) WITHOUT ROWID;"""

_FTS = "CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(text, content='', columnsize=0)"
"""Full text, contentless: the words live once, in ``events.body``, and the index maps
them to seqs. ``verify`` checks the index against the bodies (``check_text_index``)."""


def _append_only_triggers(table: str) -> list[str]:
    """The statements creating triggers that refuse UPDATE and DELETE on ``table``."""
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}"
        f" BEGIN SELECT RAISE(ABORT, 'glasslog: {table} are append-only; {op} refused'); END"
        for op in ("UPDATE", "DELETE")
    ]


def _append_only(table: str) -> str:
    return "".join(f"\n{statement};\n" for statement in _append_only_triggers(table))


_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY CHECK (seq >= 0),  -- leaf index, dense from 0
    id         BLOB NOT NULL,         -- 16-byte UUID, the idempotency key
    time       INTEGER NOT NULL,      -- event time, microseconds since the epoch (UTC)
    service    TEXT NOT NULL,
    action     TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    request_id TEXT,
    trace_id   TEXT,
    body       TEXT NOT NULL,         -- RFC 8785 JSON of the stored event
    commits    TEXT NOT NULL,         -- committed paths, JSON
    salts      BLOB NOT NULL          -- one 16-byte salt per committed path
);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (id);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
CREATE INDEX IF NOT EXISTS events_service_time ON events (service, time);
CREATE INDEX IF NOT EXISTS events_action_time ON events (action, time);
CREATE INDEX IF NOT EXISTS events_actor_time ON events (actor_id, time);
CREATE INDEX IF NOT EXISTS events_request ON events (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_trace ON events (trace_id) WHERE trace_id IS NOT NULL;

-- Full text, contentless: the words (glasslog.derived.search_text of the body) by seq.
%(fts)s;

-- Derived: one row per scalar metadata value (and per scalar element of an array),
-- ordered so that "metadata.x:v newest first" reads one index range backwards.
CREATE TABLE IF NOT EXISTS field_keys (
    id   INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE
);
%(fields)s

-- Derived: event counts per hour for the ROLLUP_DIMS columns (aggregations).
CREATE TABLE IF NOT EXISTS rollups (
    dim   TEXT NOT NULL,
    hour  INTEGER NOT NULL,
    value TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (dim, hour, value)
) WITHOUT ROWID;

-- Derived: the time range of each block of SEQ_BLOCK seqs. Events arrive roughly in
-- time order, so streaming full-text matches newest-seq-first can stop as soon as no
-- older block can hold a newer event than the ones already found.
CREATE TABLE IF NOT EXISTS seq_blocks (
    block    INTEGER PRIMARY KEY,
    min_time INTEGER NOT NULL,
    max_time INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS tiles (
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    width  INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (level, idx, width)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS checkpoints (
    size      INTEGER PRIMARY KEY,
    note      TEXT NOT NULL
);

-- API keys: the SHA-256 of each key's secret part, never the key (docs/access.md).
CREATE TABLE IF NOT EXISTS api_keys (
    id      TEXT PRIMARY KEY,
    hash    BLOB NOT NULL,
    role    TEXT NOT NULL,
    name    TEXT NOT NULL,
    created INTEGER NOT NULL,   -- microseconds since the epoch
    expires INTEGER             -- microseconds since the epoch, or NULL: never
);
CREATE TABLE IF NOT EXISTS api_key_revocations (
    id   TEXT PRIMARY KEY,
    time INTEGER NOT NULL
);

-- Break-glass grants: a second role for a principal, until expires (docs/access.md).
CREATE TABLE IF NOT EXISTS grants (
    id        TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    role      TEXT NOT NULL,
    reason    TEXT NOT NULL,
    created   INTEGER NOT NULL,
    expires   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_principal ON grants (principal);
CREATE TABLE IF NOT EXISTS grant_revocations (
    id   TEXT PRIMARY KEY,
    time INTEGER NOT NULL
);
""".replace("%(fields)s", _FIELDS).replace("%(fts)s", _FTS)
    + _RETENTION
    + _ERASURE
    + "".join(_append_only(table) for table in _APPEND_ONLY)
    + _GUARDS
)

_INSERT_EVENT = (
    "INSERT INTO events (seq, id, time, service, action, actor_id, outcome, request_id,"
    " trace_id, body, commits, salts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_FTS = "INSERT INTO events_fts (rowid, text) VALUES (?, ?)"
_KEYS = (
    "SELECT k.id, CAST(k.hash AS BLOB), k.role, k.name, k.created, k.expires, r.time"
    " FROM api_keys k LEFT JOIN api_key_revocations r ON r.id = k.id"
)
_GRANTS = (
    "SELECT g.id, g.principal, g.role, g.reason, g.created, g.expires, r.time"
    " FROM grants g LEFT JOIN grant_revocations r ON r.id = g.id"
)

_FTS_TWIN = (
    "DROP TABLE IF EXISTS temp.glasslog_fts",
    "DROP VIEW IF EXISTS temp.glasslog_fts_text",
    "CREATE TEMP VIEW glasslog_fts_text AS"
    " SELECT seq AS id, glasslog_search_text(body) AS text FROM main.events",
    "CREATE VIRTUAL TABLE temp.glasslog_fts USING fts5(text, content='glasslog_fts_text',"
    " content_rowid='id', columnsize=0)",
    "DELETE FROM temp.glasslog_fts_data",
    "INSERT INTO temp.glasslog_fts_data SELECT * FROM main.events_fts_data",
    "DELETE FROM temp.glasslog_fts_idx",
    "INSERT INTO temp.glasslog_fts_idx SELECT * FROM main.events_fts_idx",
)
"""A TEMP twin of ``events_fts`` whose content is the bodies' words, holding a copy of
``events_fts``'s index tables (replacing those of the empty twin)."""


@contextmanager
def suspended_triggers(conn: sqlite3.Connection, *names: str) -> Iterator[None]:
    """Drop the named guard triggers for a moment of the caller's transaction, then make
    them again from their own SQL (as ``_migrate_to_2`` does): the one way the store
    itself lowers a counter, inside the transaction that removes what was counted."""
    marks = ",".join("?" * len(names))
    guards = conn.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({marks})",  # noqa: S608
        names,
    ).fetchall()
    for name, _ in guards:
        conn.execute(f'DROP TRIGGER "{name}"')
    yield
    for _, sql in guards:
        conn.execute(sql)


_STORED = "SELECT seq, body, commits, salts FROM events"
_PRUNE_READ = "SELECT seq, id, time, service, action, actor_id, outcome, body FROM events"


class _CountedRow(NamedTuple):
    """The columns a rollup counts, read back from a row about to be pruned."""

    time_us: int
    service: str
    action: str
    actor_id: str
    outcome: str


def _text_of(body: str) -> str:
    try:
        return search_text(json.loads(body))
    except (ValueError, TypeError, AttributeError):
        return ""


def _decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _wrap(exc: sqlite3.Error, doing: str) -> StoreError:
    """Map a sqlite3 error to ours, keeping the database's own words (never any data)."""
    text = str(exc)
    if "malformed" in text or "not a database" in text:
        return StoreError(
            f"{doing}: the database file is corrupt ({text}); restore it from a backup "
            "and run `glasslog verify`"
        )
    return StoreError(f"{doing}: {text}")


MIN_SQLITE = (3, 38)
"""The oldest SQLite with everything the store and queries use: JSON functions built in
and the ``->`` operator (3.38), ``NULLS FIRST`` (3.30), FTS5 and row values."""


class SQLiteStore:
    """A glasslog store in one SQLite file. Create with :meth:`open`."""

    shared = False  # one data directory, one writer: its writer.lock is enough
    per_row_text = False  # one contentless index: check_text_index checks it whole

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._field_keys: dict[str, int] = {}
        self.upgraded_from: int | None = None

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for the query executor (reads only)."""
        return self._conn

    @classmethod
    def open(
        cls, path: Path, *, create: bool = False, readonly: bool = False, cache_mib: int = 64
    ) -> SQLiteStore:
        """Open (or with ``create``, create) the store file at ``path``.

        ``readonly`` connections are for verification and reads running beside a
        writer; WAL lets them see a consistent snapshot without blocking it. A writer's
        connection caches ``cache_mib`` MiB of pages, so that index pages stay hot.
        """
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"glasslog needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer; this Python "
                f"uses SQLite {sqlite3.sqlite_version}: use a Python built with a newer SQLite "
                "(python.org and pyenv builds are), or the PostgreSQL store"
            )
        if not create and not path.exists():
            raise StoreError(f"no glasslog store at {path}; run `glasslog init` first")
        if create:
            # SQLite would create the file with the umask's mode (0644 by default), and
            # gives -wal, -shm and -journal files the database file's mode: made 0600
            # first, all four are private. An empty file is an empty SQLite database.
            with suppress(OSError):  # it exists; or SQLite says below why it cannot be made
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            if readonly:
                conn = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Tolerant decoding: a row whose text was corrupted on disk must reach verify
            # (which names its seq), not fail the whole read with a decode error.
            conn.text_factory = _decode_text
            conn.execute("PRAGMA busy_timeout = 30000")
            if create and path.stat().st_size == 0:
                # Retention deletes payloads, and only a database made with auto_vacuum
                # gives freed pages back to the file system (``PRAGMA incremental_vacuum``)
                # without rewriting the whole file. It must be set before WAL mode and
                # before the first table.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute(f"PRAGMA cache_size = {-1024 * int(cache_mib)}")  # KiB
                # Copy WAL pages into the database once per ~100 MB, not after every
                # commit: a page rewritten by consecutive batches is copied once.
                conn.execute("PRAGMA wal_autocheckpoint = 25000")
            store = cls(conn, path)
            if create:
                store._create()
            store._check_version()
        except sqlite3.Error as exc:
            raise _wrap(exc, f"opening {path}") from exc
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            # A warning, not a refusal: an operator may share it with a group on purpose.
            # Python shows a warning once per message, so once per file and process.
            warnings.warn(
                f"{path} is open to other users (mode {mode:o}), and holds personal data "
                f"and the salts that keep committed fields private; run `chmod 600 {path}*`",
                UserWarning,
                stacklevel=2,
            )
        return store

    def _create(self) -> None:
        found = self._stored_version()
        if found is not None and found > SCHEMA_VERSION:
            raise self._version_problem(found)
        # executescript runs its own statements; BEGIN/COMMIT inside the script keeps
        # the schema atomic. Every statement is idempotent, so a crash before the
        # version row is written is repaired by running init again.
        self._conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
        with self._transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        if found == 1:
            self._migrate_to_2()
        if found is not None and found < 4:
            self._migrate_to_4()
        # Versions 3, 5 and 6 only added triggers and tables, which the script above created.
        if found is not None and found < SCHEMA_VERSION:
            with self._transaction():
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )
            self.upgraded_from = found

    def _migrate_to_2(self) -> None:
        """Rebuild the field index from the events, keeping each value's JSON type.

        Version 1 declared ``fields.value`` as ``ANY``, which outside STRICT tables is
        numeric affinity: the string ``"3.0"`` was stored as the number 3, so it
        matched ``metadata.x:3``. The converted rows cannot be told apart, so the
        index — derived data, never part of a leaf — is dropped and recomputed from
        the stored bodies in one transaction (327 s for 10M events on 2 cores).
        """
        conn = self._conn
        insert = "INSERT INTO fields (key, value, time, seq) VALUES (?, ?, ?, ?)"
        try:
            with self._transaction():
                conn.execute("DROP TRIGGER IF EXISTS fields_no_update")
                conn.execute("DROP TRIGGER IF EXISTS fields_no_delete")
                conn.execute("DROP TABLE fields")
                for statement in (_FIELDS, *_append_only_triggers("fields")):
                    conn.execute(statement)
                rows: list[tuple[int, object, int, int]] = []
                events = conn.execute("SELECT seq, time, body FROM events ORDER BY seq")
                for seq, time_us, body in events:
                    metadata = json.loads(body).get("metadata")
                    if metadata:
                        for path, value in field_values(metadata):
                            rows.append((self._field_key(path), value, time_us, seq))
                    if len(rows) >= 10_000:
                        conn.executemany(insert, rows)
                        rows.clear()
                conn.executemany(insert, rows)
                conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        except BaseException:
            self._field_keys.clear()  # ids created in the rolled-back transaction
            raise

    def _migrate_to_4(self) -> None:
        """Rebuild the full-text index from the bodies, words in canonical key order.

        Up to version 3 each event's words followed its keys in the order they arrived,
        which the stored body no longer has, so neither ``verify`` nor the search
        recheck could derive the same words from the body. Derived data, never part of
        a leaf, so it is recomputed in one transaction. A body that cannot be decoded
        gets no words; ``verify`` names its seq.
        """
        conn = self._conn
        with self._transaction():
            conn.execute("DROP TABLE IF EXISTS events_fts")
            conn.execute(_FTS)
            start = 0
            while True:
                page = conn.execute(
                    "SELECT seq, body FROM events WHERE seq >= ? ORDER BY seq LIMIT 10000",
                    (start,),
                ).fetchall()
                if not page:
                    break
                conn.executemany(_INSERT_FTS, [(seq, _text_of(body)) for seq, body in page])
                start = page[-1][0] + 1
            conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")

    def _stored_version(self) -> int | None:
        exists = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if exists is None:
            return None
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return None if row is None else int(row[0])

    def _version_problem(self, found: int) -> StoreError:
        return unsupported_version(
            str(self.path),
            found,
            SCHEMA_VERSION,
            "run `glasslog init` again (same --data) to upgrade it",
        )

    def _check_version(self) -> None:
        found = self._stored_version()
        if found is None:
            raise StoreError(f"no glasslog store in {self.path}; run `glasslog init` first")
        if found != SCHEMA_VERSION:
            raise self._version_problem(found)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def size(self) -> int:
        # A pruned event keeps its seq: the newest may be pruned, never forgotten.
        row = self._query_one(
            "SELECT max(coalesce((SELECT max(seq) FROM events), -1),"
            " coalesce((SELECT max(seq) FROM pruned), -1))",
            (),
        )
        return int(row[0]) + 1

    def append(self, rows: Sequence[EventRow], tiles: Sequence[Tile]) -> None:
        known = len(self._field_keys)
        try:
            self._append(rows, tiles)
        except BaseException:
            # Keys created inside the rolled-back transaction no longer exist; SQLite
            # would hand their ids to other paths. Forget them (and re-read on use).
            if len(self._field_keys) != known:
                self._field_keys.clear()
            raise

    def _append(self, rows: Sequence[EventRow], tiles: Sequence[Tile]) -> None:
        try:
            with self._transaction():
                write_rows(self._conn, rows, self._field_key)
                self._conn.executemany(
                    "INSERT INTO tiles (level, idx, width, hashes) VALUES (?,?,?,?)",
                    ((t.level, t.index, t.width, t.hashes) for t in tiles),
                )
        except sqlite3.IntegrityError as exc:
            if "events.id" in str(exc):
                raise DuplicateIdError("an event id in this batch is already stored") from exc
            if "events.seq" in str(exc):
                raise StoreError(
                    "another process wrote events to this store; only one writer may sequence "
                    "at a time (hold the data directory's writer lock)"
                ) from exc
            raise _wrap(exc, "writing events") from exc
        except sqlite3.Error as exc:
            raise _wrap(exc, "writing events") from exc

    def _field_key(self, path: str) -> int:
        """The id of a metadata path in ``field_keys``, created on first use (cached)."""
        key = self._field_keys.get(path)
        if key is None:
            row = self._conn.execute("SELECT id FROM field_keys WHERE path = ?", (path,)).fetchone()
            if row is None:
                cur = self._conn.execute("INSERT INTO field_keys (path) VALUES (?)", (path,))
                key = int(cur.lastrowid or 0)
            else:
                key = int(row[0])
            self._field_keys[path] = key
        return key

    def find_ids(self, ids: Sequence[bytes]) -> dict[bytes, StoredEvent]:
        found: dict[bytes, StoredEvent] = {}
        # Stay well under SQLite's bound-parameter limit.
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            # Only '?' placeholders are spliced into the SQL; the ids are bound parameters.
            sql = f"SELECT id, seq, body, commits, salts FROM events WHERE id IN ({marks})"  # noqa: S608
            for row in self._query(sql, chunk):
                found[row[0]] = StoredEvent(row[1], row[2], row[3], row[4])
            # A pruned event's id stays taken (retention): known, with no body left.
            sql = f"SELECT CAST(id AS BLOB), seq FROM pruned WHERE id IN ({marks})"  # noqa: S608
            for event_id, seq in self._query(sql, chunk):
                found[event_id] = StoredEvent(seq, "", "", b"")
        return found

    def get(self, seq: int) -> StoredEvent:
        row = self._query_one("SELECT seq, body, commits, salts FROM events WHERE seq = ?", (seq,))
        if row is None:
            record = self.pruned_record(seq=seq)
            raise no_event_at(seq, self.size()) if record is None else pruned_error(record)
        return StoredEvent(*row)

    def get_by_id(self, event_id: bytes) -> StoredEvent:
        row = self._query_one(
            # Never a row outside the tree, which verify would not cover.
            "SELECT seq, body, commits, salts FROM events WHERE id = ? AND seq >= 0",
            (event_id,),
        )
        if row is None:
            record = self.pruned_record(event_id=event_id)
            raise no_event_with_id() if record is None else pruned_error(record)
        return StoredEvent(*row)

    def events(self, start: int, end: int) -> Iterator[StoredEvent]:
        try:
            cur = self._conn.execute(
                "SELECT seq, body, commits, salts FROM events WHERE seq >= ? AND seq < ?"
                " ORDER BY seq",
                (start, end),
            )
            for row in cur:
                yield StoredEvent(*row)
        except sqlite3.Error as exc:
            raise _wrap(exc, f"reading events {start}..{end}") from exc

    def verify_rows(self, start: int, end: int) -> Iterator[VerifyRow]:
        try:
            cur = self._conn.execute(
                "SELECT seq, id, time, service, action, actor_id, outcome, request_id, trace_id,"
                " body, commits, salts, 1 FROM events WHERE seq >= ? AND seq < ? ORDER BY seq",
                (start, end),
            )
            yield from cur
        except sqlite3.Error as exc:
            raise _wrap(exc, f"reading events {start}..{end}") from exc

    def missing_fields(self, rows: Sequence[FieldRow]) -> list[FieldRow]:
        """Probe the field index's primary key for each row, in SQLite: the rows go into
        a TEMP table (writable on a read-only connection) and one anti-join finds those
        absent, without an index by seq that would cost every ingest and 5 % more disk."""
        conn = self._conn
        keys = dict(self._query("SELECT path, id FROM field_keys", ()))
        missing = [row for row in rows if row[1] not in keys]
        paths = {key: path for path, key in keys.items()}
        opened = not conn.in_transaction  # inside verify's snapshot, or not
        try:
            if opened:
                conn.execute("BEGIN")
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS glasslog_expected (key, value, time, seq)"
            )
            conn.execute("DELETE FROM temp.glasslog_expected")
            conn.executemany(
                "INSERT INTO temp.glasslog_expected VALUES (?, ?, ?, ?)",
                [(keys[path], value, time, seq) for seq, path, value, time in rows if path in keys],
            )
            absent = conn.execute(
                "SELECT x.seq, x.key, x.value, x.time FROM temp.glasslog_expected x WHERE NOT"
                " EXISTS (SELECT 1 FROM main.fields f WHERE f.key = x.key AND f.value = x.value"
                " AND f.time = x.time AND f.seq = x.seq)"
            ).fetchall()
            conn.execute("DELETE FROM temp.glasslog_expected")
        except sqlite3.Error as exc:
            raise _wrap(exc, "reading the field index") from exc
        finally:
            if opened and conn.in_transaction:
                conn.execute("COMMIT")
        return missing + [(seq, paths[key], value, time) for seq, key, value, time in absent]

    def field_count(self) -> int:
        return int(self._query_one("SELECT count(*) FROM fields", ())[0])

    def field_counts(self) -> Iterator[tuple[int, int]]:
        yield from self._query("SELECT seq, count(*) FROM fields GROUP BY seq ORDER BY seq", ())

    def repeated_field_paths(self) -> list[str]:
        return [
            str(path)
            for (path,) in self._query(
                "SELECT path FROM field_keys GROUP BY path HAVING count(*) > 1", ()
            )
        ]

    def text_mismatches(self, start: int, texts: Sequence[str]) -> list[int]:
        del start, texts  # no words per row: check_text_index compares them all with the bodies
        return []

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: WAL keeps every read inside it at one moment."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")

    def rollups(self) -> Iterator[tuple[str, int, str, int]]:
        try:
            yield from self._conn.execute("SELECT dim, hour, value, count FROM rollups")
        except sqlite3.Error as exc:
            raise _wrap(exc, "reading rollups") from exc

    def seq_blocks(self) -> dict[int, tuple[int, int]]:
        return {
            block: (low, high)
            for block, low, high in self._query(
                "SELECT block, min_time, max_time FROM seq_blocks", ()
            )
        }

    def check_text_index(self) -> str | None:
        """Run FTS5's integrity check of the full-text index against the bodies' words.

        The index is contentless, so FTS5 can check it against content only through a
        twin with external content: a TEMP full-text table whose content is a TEMP view
        deriving each event's words from its body (``glasslog.derived.search_text``,
        the function ingest indexed), over copies of the index's own tables. TEMP,
        because the check is an INSERT: on the store it would need the write lock,
        stall a concurrent ingest for the whole check and fail on a read-only copy.
        Runs inside :meth:`snapshot`, whose end discards the twin. The check compares
        checksums (see docs/ledger.md for what that leaves open).
        """
        conn = self._conn
        try:
            conn.create_function("glasslog_search_text", 1, _text_of, deterministic=True)
            for statement in _FTS_TWIN:
                conn.execute(statement)
        except sqlite3.Error as exc:
            raise _wrap(exc, "copying the full-text index") from exc
        try:
            conn.execute(
                "INSERT INTO temp.glasslog_fts (glasslog_fts, rank) VALUES ('integrity-check', 1)"
            )
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return None

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        row = self._query_one(
            "SELECT CAST(hashes AS BLOB) FROM tiles WHERE level = ? AND idx = ? AND width >= ?"
            " ORDER BY width LIMIT 1",
            (level, index, width),
        )
        if row is None:
            raise tile_not_stored(level, index, width)
        hashes: bytes = row[0]
        return hashes

    def tiles(self) -> Iterator[Tile]:
        try:
            for level, idx, width, hashes in self._conn.execute(
                "SELECT level, idx, width, CAST(hashes AS BLOB) FROM tiles"
                " ORDER BY level, idx, width"
            ):
                yield Tile(level=level, index=idx, width=width, hashes=hashes)
        except sqlite3.Error as exc:
            raise _wrap(exc, "reading tiles") from exc

    def add_checkpoint(self, size: int, note: str, partial: Sequence[Tile]) -> None:
        try:
            with self._transaction():
                self._conn.execute(
                    "INSERT INTO checkpoints (size, note) VALUES (?, ?)", (size, note)
                )
                self._conn.executemany(
                    "INSERT OR IGNORE INTO tiles (level, idx, width, hashes) VALUES (?,?,?,?)",
                    ((t.level, t.index, t.width, t.hashes) for t in partial),
                )
        except sqlite3.Error as exc:
            raise _wrap(exc, "storing a checkpoint") from exc

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self._query_one("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1", ())
        return None if row is None else StoredCheckpoint(int(row[0]), str(row[1]))

    def checkpoints(self) -> list[StoredCheckpoint]:
        return [
            StoredCheckpoint(int(size), str(note))
            for size, note in self._query("SELECT size, note FROM checkpoints ORDER BY size", ())
        ]

    def seq_bounds(self) -> tuple[int, int, int | None, int | None]:
        count, low, high = self._query_one("SELECT count(*), min(seq), max(seq) FROM events", ())
        return self.size(), int(count), low, high

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        row = self._query_one("SELECT size, note FROM checkpoints WHERE size = ?", (size,))
        return None if row is None else StoredCheckpoint(int(row[0]), str(row[1]))

    def identity(self) -> str | None:
        row = self._query_one("SELECT value FROM meta WHERE key = 'vkey'", ())
        return None if row is None else str(row[0])

    def bind_identity(self, vkey: str) -> str:
        try:
            with self._transaction():
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('vkey', ?)", (vkey,)
                )
        except sqlite3.Error as exc:
            raise _wrap(exc, "recording the log's verifier key") from exc
        bound = self.identity()
        assert bound is not None  # inserted above, or already there
        return bound

    # --- Key rotation (issue 14, part 1): the key history in append-only meta rows ---

    def vkey_records(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT value FROM meta WHERE key GLOB 'vkeys.[0-9]*' ORDER BY key"
        ).fetchall()
        return [str(row[0]) for row in rows]

    def add_vkey_record(self, number: int, history: str) -> None:
        try:
            with self._transaction():
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)", (f"vkeys.{number:06d}", history)
                )
        except sqlite3.IntegrityError:
            raise ConflictError(
                f"the key history changed while this change was made (version {number} exists "
                "already); run the command again"
            ) from None
        except sqlite3.Error as exc:
            raise _wrap(exc, "recording the key history") from exc

    # --- Retention and legal holds (issue 14, part 2; docs/retention.md) ---

    def prune(self, leaves: Sequence[tuple[int, bytes]], *, by: int, at_us: int) -> int:
        """Record each event as pruned, then delete its row and what was derived from it.

        Full text is contentless, so FTS5's ``delete`` needs the event's words: they are
        derived from the body before the row goes, as ingest derived them. The rollups
        only grow under their guard triggers; the counts of the pruned events are taken
        off with the guards dropped and recreated inside this transaction (as
        ``_migrate_to_2`` does), so counts stay equal to what searches find. Time bounds
        of ``seq_blocks`` are left wider than needed, which costs nothing but a block read.
        """
        conn = self._conn
        wanted = dict(leaves)
        if not wanted:
            return 0
        try:
            with self._transaction():
                rows = []
                seqs = sorted(wanted)
                for start in range(0, len(seqs), 500):
                    chunk = seqs[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    # Only '?' placeholders are spliced into the SQL; seqs are parameters.
                    sql = _PRUNE_READ + f" WHERE seq IN ({marks})"
                    rows.extend(conn.execute(sql, chunk).fetchall())
                if not rows:
                    return 0
                conn.executemany(
                    "INSERT INTO pruned (seq, id, time, leaf, by, at) VALUES (?, ?, ?, ?, ?, ?)",
                    [(r[0], r[1], r[2], wanted[r[0]], by, at_us) for r in rows],
                )
                words: list[tuple[int, str]] = []
                fields: list[tuple[int, object, int, int]] = []
                keys = dict(conn.execute("SELECT path, id FROM field_keys").fetchall())
                for r in rows:
                    try:
                        event = json.loads(r[7])
                        text = search_text(event)
                    except (ValueError, TypeError, AttributeError):
                        event, text = None, ""  # as _text_of: an undecodable body has no words
                    words.append((r[0], text))
                    metadata = event.get("metadata") if isinstance(event, dict) else None
                    if isinstance(metadata, dict):
                        fields.extend(
                            (keys[path], value, r[2], r[0])
                            for path, value in field_values(metadata)
                            if path in keys
                        )
                conn.executemany(
                    "INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', ?, ?)",
                    words,
                )
                conn.executemany(
                    "DELETE FROM fields WHERE key = ? AND value = ? AND time = ? AND seq = ?",
                    fields,
                )
                self._take_off_counts(rows)
                conn.executemany("DELETE FROM events WHERE seq = ?", [(r[0],) for r in rows])
        except sqlite3.Error as exc:
            raise _wrap(exc, "pruning events") from exc
        return len(rows)

    def _take_off_counts(self, rows: Sequence[Sequence[Any]]) -> None:
        """Lower the rollups by the pruned events' counts (inside the caller's transaction)."""
        conn = self._conn
        counted = [
            _CountedRow(time_us=r[2], service=r[3], action=r[4], actor_id=r[5], outcome=r[6])
            for r in rows
        ]
        with suspended_triggers(conn, "rollups_only_grow", "rollups_no_delete"):
            conn.executemany(
                "UPDATE rollups SET count = count - ? WHERE dim = ? AND hour = ? AND value = ?",
                [(n, dim, hour, value) for (dim, hour, value), n in rollup_counts(counted).items()],
            )
            conn.execute("DELETE FROM rollups WHERE count <= 0")

    def pruned_leaves(self, start: int, end: int) -> list[tuple[int, bytes, int]]:
        return [
            (int(seq), bytes(leaf), int(by))
            for seq, leaf, by in self._query(
                "SELECT seq, CAST(leaf AS BLOB), by FROM pruned WHERE seq >= ? AND seq < ?"
                " ORDER BY seq",
                (start, end),
            )
        ]

    def pruned_record(
        self, *, seq: int | None = None, event_id: bytes | None = None
    ) -> Pruned | None:
        column, key = ("seq", seq) if seq is not None else ("id", event_id)
        row = self._query_one(
            f"SELECT seq, CAST(id AS BLOB), time, CAST(leaf AS BLOB), by, at FROM pruned"  # noqa: S608
            f" WHERE {column} = ?",
            (key,),
        )
        return None if row is None else Pruned(*row)

    def prune_candidates(self, before_us: int) -> list[int]:
        return [
            int(seq)
            for (seq,) in self._query(
                "SELECT seq FROM events INDEXED BY events_time WHERE time < ? ORDER BY seq",
                (before_us,),
            )
        ]

    def events_at(self, seqs: Sequence[int]) -> list[StoredEvent]:
        found: list[StoredEvent] = []
        ordered = sorted(seqs)
        for start in range(0, len(ordered), 500):  # well under SQLite's parameter limit
            chunk = ordered[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = _STORED + f" WHERE seq IN ({marks}) ORDER BY seq"
            found.extend(StoredEvent(*row) for row in self._query(sql, chunk))
        return found

    def reclaim_space(
        self, locked: Callable[[], AbstractContextManager[object]], *, pause: float
    ) -> list[str]:
        """Merge the full-text index into one segment (FTS5's ``optimize``, so that deleted
        words leave it), give free pages back to the file system, and truncate the WAL.

        One step under the writer locks: an incremental FTS5 ``merge`` interleaved with
        other writers' inserts was seen to corrupt the index in testing, so the merge is
        never split. Only a database made with ``auto_vacuum = INCREMENTAL`` can give
        pages back without a rewrite; an older one is converted once with ``VACUUM``,
        which needs as much free disk as the file.
        """
        del pause  # one step
        conn = self._conn
        done: list[str] = []
        try:
            with locked():
                if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
                    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                    conn.execute("VACUUM")
                    done.append(
                        "converted the store to incremental auto-vacuum with one VACUUM "
                        "(a store made before schema 6); later runs reclaim space in place"
                    )
                pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
                conn.execute("INSERT INTO events_fts (events_fts) VALUES ('optimize')")
                # Each step of this pragma frees one page, and Python's execute() steps a
                # statement without result columns once: sqlite3_exec steps it to the end.
                conn.executescript("PRAGMA incremental_vacuum;")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                after = int(conn.execute("PRAGMA page_count").fetchone()[0])
                size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        except sqlite3.Error as exc:
            raise _wrap(exc, "reclaiming space") from exc
        done.append(f"gave {max(pages - after, 0) * size:,} bytes back to the file system")
        return done

    def add_hold(self, hold: Hold) -> None:
        try:
            with self._transaction():
                self._conn.execute(
                    "INSERT INTO holds (id, query, reason, created, by) VALUES (?, ?, ?, ?, ?)",
                    (hold.id, hold.query, hold.reason, hold.created_us, hold.by),
                )
        except sqlite3.Error as exc:
            raise _wrap(exc, "storing a hold") from exc

    def holds(self) -> list[Hold]:
        return [
            Hold(*row)
            for row in self._query(
                "SELECT h.id, h.query, h.reason, h.created, h.by, r.time, r.by, r.reason"
                " FROM holds h LEFT JOIN hold_releases r ON r.id = h.id ORDER BY h.created, h.id",
                (),
            )
        ]

    def release_hold(self, hold_id: str, *, time_us: int, by: str, reason: str) -> bool:
        try:
            with self._transaction():
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO hold_releases (id, time, by, reason)"
                    " SELECT id, ?, ?, ? FROM holds WHERE id = ?",
                    (time_us, by, reason, hold_id),
                )
        except sqlite3.Error as exc:
            raise _wrap(exc, "releasing a hold") from exc
        return cur.rowcount == 1

    # --- Erasure of a data subject's personal fields (issue 14, part 3; docs/erasure.md) ---

    def erase(self, rewrites: Sequence[Rewrite]) -> None:
        """Rewrite the rows in one transaction with ``secure_delete`` on, so that SQLite
        zeroes the overwritten and freed bytes instead of leaving them in free space.

        ``events_no_update`` lets a row change once its ``erasures`` rows exist. The
        field index's guard against deletes belongs to retention: it is lifted for this
        transaction only (dropped and recreated from its own SQL, as ``prune`` does).
        The full text is contentless: FTS5 deletes the old words given the old text,
        then indexes the new; :meth:`scrub` merges the segments so the old words go.
        """
        conn = self._conn
        if not rewrites:
            return
        try:
            secure = int(conn.execute("PRAGMA secure_delete").fetchone()[0])
            conn.execute("PRAGMA secure_delete = ON")
            try:
                with self._transaction():
                    self._erase(rewrites)
            finally:
                conn.execute(f"PRAGMA secure_delete = {secure}")
        except sqlite3.Error as exc:
            raise _wrap(exc, "erasing fields") from exc

    def _erase(self, rewrites: Sequence[Rewrite]) -> None:
        conn = self._conn
        guards = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            " AND name = 'fields_no_delete'"
        ).fetchall()
        for name, _ in guards:
            conn.execute(f"DROP TRIGGER {name}")
        keys = dict(conn.execute("SELECT path, id FROM field_keys").fetchall())
        for r in rewrites:
            conn.executemany(
                "INSERT INTO erasures (seq, path, time, by_seq) VALUES (?, ?, ?, ?)",
                [(e.seq, e.path, e.time_us, e.by) for e in r.erased],
            )
            cur = conn.execute(
                "UPDATE events SET body = ?, commits = ?, salts = ? WHERE seq = ?",
                (r.body, r.commits, r.salts, r.seq),
            )
            if cur.rowcount != 1:
                raise StoreError(f"erasing fields of seq {r.seq}: the event is not stored")
            conn.execute(
                "INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', ?, ?)",
                (r.seq, r.old_text),
            )
            conn.execute(_INSERT_FTS, (r.seq, r.text))
            new = set(r.fields)
            conn.executemany(
                "DELETE FROM fields WHERE key = ? AND value = ? AND time = ? AND seq = ?",
                [
                    (keys[path], value, r.time_us, r.seq)
                    for path, value in r.old_fields
                    if path in keys and (path, value) not in new
                ],
            )
            old = set(r.old_fields)
            conn.executemany(
                "INSERT INTO fields (key, value, time, seq) VALUES (?, ?, ?, ?)",
                [
                    (self._field_key(path), value, r.time_us, r.seq)
                    for path, value in r.fields
                    if (path, value) not in old
                ],
            )
        for _, sql in guards:
            conn.execute(sql)

    def erasures(self) -> list[Erasure]:
        return [
            Erasure(int(seq), str(path), int(time_us), int(by))
            for seq, path, time_us, by in self._query(
                "SELECT seq, path, time, by_seq FROM erasures ORDER BY seq, path", ()
            )
        ]

    def actor_events(self, actor_id: str, after: int, limit: int) -> list[StoredEvent]:
        return [
            StoredEvent(*row)
            for row in self._query(
                "SELECT seq, body, commits, salts FROM events WHERE actor_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (actor_id, after, limit),
            )
        ]

    def scrub(self, rewrites: Sequence[Rewrite]) -> list[str]:
        """Merge the full-text index into one segment, so no deleted word stays in an old
        one, with ``secure_delete`` on; then copy the WAL into the database and truncate
        it, so that no page image of the old rows is left in ``-wal``.

        A reader holding an old snapshot (a long search in a server) keeps the WAL from
        being truncated: retried for a few seconds, then said.
        """
        del rewrites  # the whole index is merged; which rows changed does not matter here
        conn = self._conn
        done: list[str] = []
        try:
            secure = int(conn.execute("PRAGMA secure_delete").fetchone()[0])
            conn.execute("PRAGMA secure_delete = ON")
            try:
                with self._transaction():
                    conn.execute("INSERT INTO events_fts (events_fts) VALUES ('optimize')")
            finally:
                conn.execute(f"PRAGMA secure_delete = {secure}")
            done.append("merged the full-text index, so erased words left its segments")
            for attempt in range(50):
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    done.append("copied the WAL into the database and truncated it")
                    break
                time.sleep(0.1 * min(attempt + 1, 5))
            else:
                done.append(
                    "could not truncate the WAL: a reader holds an old snapshot; the old "
                    "page images stay in the -wal file until the next checkpoint overwrites them"
                )
        except sqlite3.Error as exc:
            raise _wrap(exc, "scrubbing erased values from the files") from exc
        return done

    def commitments(self, seqs: Sequence[int]) -> dict[int, tuple[str, bytes]]:
        found: dict[int, tuple[str, bytes]] = {}
        for start in range(0, len(seqs), 500):  # well under SQLite's parameter limit
            chunk = list(seqs[start : start + 500])
            marks = ",".join("?" * len(chunk))
            # Only '?' placeholders are spliced into the SQL; the seqs are bound parameters.
            sql = f"SELECT seq, commits, salts FROM events WHERE seq IN ({marks})"  # noqa: S608
            for seq, commits, salts in self._query(sql, chunk):
                found[seq] = (commits, salts)
        return found

    def add_api_key(self, key: ApiKey) -> None:
        try:
            with self._transaction():
                self._conn.execute(
                    "INSERT INTO api_keys (id, hash, role, name, created, expires)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (key.id, key.hash, key.role, key.name, key.created_us, key.expires_us),
                )
        except sqlite3.Error as exc:
            raise _wrap(exc, "storing an API key") from exc

    def api_key(self, key_id: str) -> ApiKey | None:
        row = self._query_one(_KEYS + " WHERE k.id = ?", (key_id,))
        return None if row is None else ApiKey(*row)

    def api_keys(self) -> list[ApiKey]:
        return [ApiKey(*row) for row in self._query(_KEYS + " ORDER BY k.created, k.id", ())]

    def revoke_api_key(self, key_id: str, time_us: int) -> bool:
        try:
            with self._transaction():
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO api_key_revocations (id, time) VALUES (?, ?)",
                    (key_id, time_us),
                )
        except sqlite3.Error as exc:
            raise _wrap(exc, "revoking an API key") from exc
        return cur.rowcount == 1

    def add_grant(self, grant: Grant) -> None:
        try:
            with self._transaction():
                self._conn.execute(
                    "INSERT INTO grants (id, principal, role, reason, created, expires)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (grant.id, grant.principal, grant.role, grant.reason, grant.created_us,
                     grant.expires_us),
                )  # fmt: skip
        except sqlite3.Error as exc:
            raise _wrap(exc, "storing a grant") from exc

    def grants(self, principal: str | None = None) -> list[Grant]:
        if principal is None:
            rows = self._query(_GRANTS + " ORDER BY g.created, g.id", ())
        else:
            rows = self._query(_GRANTS + " WHERE g.principal = ? ORDER BY g.created", (principal,))
        return [Grant(*row) for row in rows]

    def revoke_grant(self, grant_id: str, time_us: int) -> bool:
        try:
            with self._transaction():
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO grant_revocations (id, time) VALUES (?, ?)",
                    (grant_id, time_us),
                )
        except sqlite3.Error as exc:
            raise _wrap(exc, "revoking a grant") from exc
        return cur.rowcount == 1

    def lock_writer(self, *, wait: float = 30.0) -> AbstractContextManager[None]:
        """Nothing to take here: an embedded store has one data directory, whose
        ``writer.lock`` (:meth:`glasslog.datadir.DataDir.writer_lock`) every writer
        already holds. PostgreSQL, shared by several hosts, needs its own lock."""
        del wait
        return nullcontext()

    def optimize(self, *, written: int | None = None) -> None:
        """Refresh the query planner's statistics where they are missing or stale.

        Bounded (``analysis_limit``) so it takes milliseconds even on a large store,
        whatever ``written`` is; without statistics SQLite may pick a poor index for
        multi-field queries.
        """
        del written
        try:
            self._conn.execute("PRAGMA analysis_limit = 1000")
            self._conn.execute("PRAGMA optimize")
        except sqlite3.Error as exc:
            raise _wrap(exc, "refreshing query statistics") from exc

    def close(self) -> None:
        self._conn.close()

    def _query(self, sql: str, params: Sequence[object]) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _wrap(exc, "reading the store") from exc

    def _query_one(self, sql: str, params: Sequence[object]) -> Any:
        rows = self._query(sql, params)
        return rows[0] if rows else None


def write_rows(
    conn: sqlite3.Connection, rows: Sequence[EventRow], field_key: Callable[[str], int]
) -> None:
    """Insert event rows and everything derived from them, inside the caller's transaction.

    Shared by the store and the ingest benchmark's baseline, so both write exactly
    the same tables and indexes.
    """
    # Lists rather than generators, and field keys looked up in a local dict first:
    # this runs in the single writer for every event, where each microsecond counts.
    conn.executemany(_INSERT_EVENT, [r[:12] for r in rows])
    conn.executemany(_INSERT_FTS, [(r.seq, r.text) for r in rows])
    keys: dict[str, int] = {}
    fields: list[tuple[int, str | int | float, int, int]] = []
    for r in rows:
        for path, value in r.fields:
            key = keys.get(path)
            if key is None:
                key = keys[path] = field_key(path)
            fields.append((key, value, r.time_us, r.seq))
    conn.executemany("INSERT INTO fields (key, value, time, seq) VALUES (?, ?, ?, ?)", fields)
    conn.executemany(
        "INSERT INTO rollups (dim, hour, value, count) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (dim, hour, value) DO UPDATE SET count = count + excluded.count",
        ((dim, hour, value, n) for (dim, hour, value), n in rollup_counts(rows).items()),
    )
    conn.executemany(
        "INSERT INTO seq_blocks (block, min_time, max_time) VALUES (?, ?, ?)"
        " ON CONFLICT (block) DO UPDATE SET min_time = min(min_time, excluded.min_time),"
        " max_time = max(max_time, excluded.max_time)",
        (
            (block, low, high)
            for block, (low, high) in seq_block_bounds((r.seq, r.time_us) for r in rows).items()
        ),
    )
