"""The production store: PostgreSQL through psycopg 3, with the guarantees of the SQLite store.

Same contract as :mod:`glasslog.store.sqlite` (see :class:`~glasslog.store.base.Store`):
dense seqs from 0, one transaction per batch, events/tiles/checkpoints append-only.
What PostgreSQL changes (docs/architecture.md; the DBA's view is ``docs/postgres.md``):

* **Partitions.** ``events`` is partitioned by RANGE on ``time`` (microseconds since
  the epoch), one partition per calendar month (UTC). Before each batch the store
  creates the partitions the batch touches plus the month after the newest one,
  through a ``SECURITY DEFINER`` function, so the application role never needs DDL
  rights. A partitioned table cannot have a unique index that leaves out the
  partition key, so global uniqueness of ``seq`` and ``id`` lives in the plain
  table ``event_keys``, written in the same transaction.
* **Append-only, twice.** Triggers refuse UPDATE, DELETE and TRUNCATE on every
  ledger table, even for the owner; and the role ``glasslog_app`` that the service
  logs in through is granted only SELECT and INSERT, and writes the two derived
  counters, ``rollups`` and ``seq_blocks``, only through owner functions that can add
  to them and nothing else (migration 4).
* **Batches through COPY.** Rows are COPY'd into a session-local staging table and
  moved with two ``INSERT … SELECT`` statements (keys first, so a reused id fails
  before any event row is written). The full-text words travel as a ``tsvector``
  literal made by :mod:`glasslog.query.words` — the same tokenizer as SQLite's
  FTS5 — and are stored only there, never as a second copy of the text.
* **One sequencer.** The writer holds a session-level advisory lock
  (:meth:`PostgresStore.lock_writer`) while it sequences; a second writer waits.
* **Versioned schema.** ``meta.schema_version`` records the last migration applied;
  ``create`` applies the missing ones in order, in one transaction, under an
  advisory lock, and opening a store of another version is refused.

Durability: every batch is one transaction committed with ``synchronous_commit =
on``, so an acknowledged batch is in the server's WAL on disk (group commit).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict

from glasslog.derived import field_values
from glasslog.errors import ConfigError, ConflictError, DuplicateIdError, StoreError
from glasslog.ledger.tiles import Tile
from glasslog.query.words import tsvector_literal
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

SCHEMA = "glasslog"
"""The PostgreSQL schema holding every glasslog table (one log per database)."""

APP_ROLE = "glasslog_app"
"""The NOLOGIN group role whose members may only read and append."""

WRITER_LOCK_KEY = 0x676C_6173_736C_6F67  # "glasslog" in ASCII
"""Session advisory-lock key held by the one sequencer (``pg_advisory_lock``)."""

_MIGRATION_LOCK_KEY = WRITER_LOCK_KEY + 1
_PARTITION_LOCK_KEY = WRITER_LOCK_KEY + 2

_EVENTS_PAGE = 2_000
"""Rows per round trip when streaming events, so a full scan never holds the log in memory."""

_APPEND_ONLY = ("events", "event_keys", "tiles", "checkpoints", "fields", "field_keys")

_ENSURE_MONTH = """%(create)s FUNCTION ensure_month(y integer, m integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, glasslog AS $f$
DECLARE
    first timestamptz;
    part  text;
BEGIN
    IF y NOT BETWEEN 1 AND 9999 OR m NOT BETWEEN 1 AND 12 THEN
        RAISE EXCEPTION 'glasslog: no partition for month %-%', y, m;
    END IF;
    part := format('events_%s_%s', lpad(y::text, 4, '0'), lpad(m::text, 2, '0'));
    IF to_regclass(format('glasslog.%I', part)) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(%(partition_lock)s);
    IF to_regclass(format('glasslog.%I', part)) IS NOT NULL THEN
        RETURN;
    END IF;
    first := make_timestamptz(y, m, 1, 0, 0, 0, 'UTC');
    EXECUTE format(
        'CREATE TABLE glasslog.%I PARTITION OF glasslog.events FOR VALUES FROM (%s) TO (%s)',
        part,
        (extract(epoch FROM first) * 1000000)::bigint,
        (extract(epoch FROM first + interval '1 month') * 1000000)::bigint
    );
    EXECUTE format(
        'CREATE TRIGGER no_truncate BEFORE TRUNCATE ON glasslog.%I'
        ' FOR EACH STATEMENT EXECUTE FUNCTION glasslog.refuse_change(%L)',
        part, 'events'
    );%(extra)s
END
$f$;"""


def _ensure_month(create: str, extra: str) -> str:
    """The partition function's SQL: ``create`` is CREATE or CREATE OR REPLACE; ``extra``
    runs after a new partition is made. One text, so migrations differ only in ``extra``."""
    return (
        _ENSURE_MONTH.replace("%(create)s", create)
        .replace("%(extra)s", extra)
        .replace("%(partition_lock)s", str(_PARTITION_LOCK_KEY))
    )


# Migration 1: the whole schema as of glasslog 0.1. Later migrations are appended to
# _MIGRATIONS and never edited, so every store reaches the same schema by the same steps.
_SCHEMA_V1 = (
    """
CREATE TABLE events (
    seq        bigint NOT NULL,       -- leaf index, dense from 0
    id         bytea NOT NULL,        -- 16-byte UUID, the idempotency key
    time       bigint NOT NULL,       -- event time, microseconds since the epoch (UTC)
    service    text NOT NULL,
    action     text NOT NULL,
    actor_id   text NOT NULL,
    outcome    text NOT NULL,
    request_id text,
    trace_id   text,
    body       text NOT NULL,         -- RFC 8785 JSON of the stored event
    commits    text NOT NULL,         -- committed paths, JSON
    salts      bytea NOT NULL,        -- one 16-byte salt per committed path
    tsv        tsvector NOT NULL,     -- full-text words of the event (never part of the leaf)
    PRIMARY KEY (seq, time)
) PARTITION BY RANGE (time);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_service_time ON events (service, time);
CREATE INDEX events_action_time ON events (action, time);
CREATE INDEX events_actor_time ON events (actor_id, time);
CREATE INDEX events_request ON events (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX events_trace ON events (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX events_tsv ON events USING gin (tsv);

-- Global uniqueness the partitioned table cannot enforce; time finds the partition.
CREATE TABLE event_keys (
    seq  bigint NOT NULL CONSTRAINT event_keys_seq PRIMARY KEY,
    id   bytea NOT NULL CONSTRAINT event_keys_id UNIQUE,
    time bigint NOT NULL
);

CREATE TABLE field_keys (
    id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path text NOT NULL UNIQUE
);
-- One row per scalar metadata value (and per scalar array element); jsonb keeps
-- strings and numbers apart, as SQLite's untyped fields.value column does.
CREATE TABLE fields (
    key   integer NOT NULL,
    value jsonb NOT NULL,
    time  bigint NOT NULL,
    seq   bigint NOT NULL
);
CREATE INDEX fields_key_value_time ON fields (key, value, time, seq);

CREATE TABLE rollups (
    dim   text NOT NULL,
    hour  bigint NOT NULL,
    value text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (dim, hour, value)
);

CREATE TABLE seq_blocks (
    block    bigint PRIMARY KEY,
    min_time bigint NOT NULL,
    max_time bigint NOT NULL
);

CREATE TABLE tiles (
    level  integer NOT NULL,
    idx    bigint NOT NULL,
    width  integer NOT NULL,
    hashes bytea NOT NULL,
    PRIMARY KEY (level, idx, width)
);

CREATE TABLE checkpoints (
    size bigint PRIMARY KEY,
    note text NOT NULL
);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION 'glasslog: % are append-only; % refused', TG_ARGV[0], TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$f$;

-- Creates the month partition holding (y, m) if absent. SECURITY DEFINER: it runs
-- with the schema owner's rights, so the application role needs no DDL privilege.
-- Row triggers are cloned onto new partitions by PostgreSQL; statement (TRUNCATE)
-- triggers are not, so each partition gets its own.
%(ensure_month_v1)s
REVOKE ALL ON FUNCTION ensure_month(integer, integer) FROM PUBLIC;
""".replace("%(ensure_month_v1)s", _ensure_month("CREATE", ""))
    + "".join(
        f"""
CREATE TRIGGER no_update BEFORE UPDATE ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_change('{table}');
CREATE TRIGGER no_delete BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_change('{table}');
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('{table}');
"""
        for table in _APPEND_ONLY
    )
)

# Migration 2: code-point ("C") collation for the indexed text columns. Query
# wildcards compare prefixes by code point (``service:pay*`` is a range on the
# column); under a linguistic collation an index cannot serve that range, and its
# order would depend on the server's locale. Equality is unchanged. Only the
# indexes are rebuilt; rows are not rewritten. Changing a column's type drops its
# planner statistics, and without them PostgreSQL walks the whole time index for a
# request-id lookup: ANALYZE puts them back in the same transaction.
_COLLATE_C = """
ALTER TABLE events
    ALTER COLUMN service TYPE text COLLATE "C",
    ALTER COLUMN action TYPE text COLLATE "C",
    ALTER COLUMN actor_id TYPE text COLLATE "C",
    ALTER COLUMN outcome TYPE text COLLATE "C",
    ALTER COLUMN request_id TYPE text COLLATE "C",
    ALTER COLUMN trace_id TYPE text COLLATE "C";
ANALYZE events;
"""

# Migration 3: autovacuum each partition every 50,000 inserted rows (the default is
# 20% of the partition, millions of rows in a busy month). Vacuum is what marks pages
# all-visible, and an index-only scan (a histogram over the last day counting the
# time index) must visit every page not so marked: on 333,000 fresh events that is
# 280 ms instead of 50 ms. Vacuuming insert-only pages is cheap; the rest are skipped.
_VACUUM_INSERTS = (
    "autovacuum_vacuum_insert_threshold = 50000, autovacuum_vacuum_insert_scale_factor = 0"
)
_FRESH_VISIBILITY = (
    _ensure_month(  # noqa: S608 - fixed text: nothing from outside reaches this SQL
        "CREATE OR REPLACE",
        """
    EXECUTE format('ALTER TABLE glasslog.%I SET (%(vacuum)s)', part);""",
    )
    + """
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits
                WHERE inhparent = 'glasslog.events'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (%(vacuum)s)', part);
    END LOOP;
END
$$;
"""
).replace("%(vacuum)s", _VACUUM_INSERTS)

# Migration 4: nothing the application role can do may change a query's answer
# unnoticed. No event row below seq 0 (reads would show it, verify never walks it). The
# counters are written only through two SECURITY DEFINER functions that can add to a
# count or widen a block and nothing else, so the role loses UPDATE on every table;
# triggers hold even the owner to the same rules, and keep meta (the store's identity)
# append-only apart from the schema version.
_COUNTER_FUNCTIONS = """
ALTER TABLE events ADD CONSTRAINT events_seq_in_tree CHECK (seq >= 0);
ALTER TABLE event_keys ADD CONSTRAINT event_keys_seq_in_tree CHECK (seq >= 0);

CREATE FUNCTION add_rollups(dims text[], hours bigint[], vals text[], counts bigint[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, glasslog AS $f$
BEGIN
    IF EXISTS (SELECT FROM unnest(counts) AS c(n) WHERE n IS NULL OR n <= 0) THEN
        RAISE EXCEPTION 'glasslog: rollup increments must be positive'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO rollups (dim, hour, value, count)
        SELECT * FROM unnest(dims, hours, vals, counts)
        ON CONFLICT (dim, hour, value) DO UPDATE SET count = rollups.count + excluded.count;
END
$f$;
CREATE FUNCTION widen_seq_blocks(blocks bigint[], mins bigint[], maxs bigint[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, glasslog AS $f$
BEGIN
    INSERT INTO seq_blocks (block, min_time, max_time)
        SELECT * FROM unnest(blocks, mins, maxs)
        ON CONFLICT (block) DO UPDATE SET
            min_time = least(seq_blocks.min_time, excluded.min_time),
            max_time = greatest(seq_blocks.max_time, excluded.max_time);
END
$f$;
REVOKE ALL ON FUNCTION add_rollups(text[], bigint[], text[], bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION widen_seq_blocks(bigint[], bigint[], bigint[]) FROM PUBLIC;

"""
_ONLY_GROW = {
    "rollups": "NEW.count < OLD.count OR NEW.dim <> OLD.dim OR NEW.hour <> OLD.hour"
    " OR NEW.value <> OLD.value",
    "seq_blocks": "NEW.min_time > OLD.min_time OR NEW.max_time < OLD.max_time"
    " OR NEW.block <> OLD.block",
    "meta": "OLD.key <> 'schema_version' OR NEW.key <> OLD.key",
}
"""Per table, the UPDATEs refused: a counter only grows, a block only widens, and only
a migration moves meta's schema version."""
_COUNTER_TRIGGERS = "".join(
    f"""
CREATE FUNCTION {table}_only_grow() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF {refused} THEN
        RAISE EXCEPTION 'glasslog: {table} only grow; this UPDATE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$f$;
CREATE TRIGGER only_grow BEFORE UPDATE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {table}_only_grow();
CREATE TRIGGER no_delete BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_change('{table}');
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('{table}');
"""
    for table, refused in _ONLY_GROW.items()
)
_GUARDED_COUNTERS = _COUNTER_FUNCTIONS + _COUNTER_TRIGGERS

# Migration 5: API keys, stored as the SHA-256 of their secret part, break-glass
# grants, and their revocations; append-only like the ledger, so a revoked key or
# grant stays revoked.
_KEY_TABLES = ("api_keys", "api_key_revocations", "grants", "grant_revocations")
_API_KEYS = """
CREATE TABLE api_keys (
    id      text PRIMARY KEY,
    hash    bytea NOT NULL,
    role    text NOT NULL,
    name    text NOT NULL,
    created bigint NOT NULL,
    expires bigint
);
CREATE TABLE api_key_revocations (
    id   text PRIMARY KEY,
    time bigint NOT NULL
);
CREATE TABLE grants (
    id        text PRIMARY KEY,
    principal text NOT NULL,
    role      text NOT NULL,
    reason    text NOT NULL,
    created   bigint NOT NULL,
    expires   bigint NOT NULL
);
CREATE INDEX grants_principal ON grants (principal);
CREATE TABLE grant_revocations (
    id   text PRIMARY KEY,
    time bigint NOT NULL
);
""" + "".join(
    f"""
CREATE TRIGGER no_update BEFORE UPDATE ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_change('{table}');
CREATE TRIGGER no_delete BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_change('{table}');
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('{table}');
"""
    for table in _KEY_TABLES
)

# Migration 6: the lifecycle of events past the ledger's append: retention (pruned
# payloads, legal holds) and erasure of a data subject's personal fields
# (docs/retention.md, docs/erasure.md). Each part is written where its feature lives below.
_RETENTION = (
    """
-- Retention and legal holds (docs/retention.md). A pruned event keeps its event_keys
-- row (its id stays taken, its seq counted) and gets a pruned row with its leaf hash.
CREATE TABLE pruned (
    seq  bigint PRIMARY KEY,
    id   bytea NOT NULL UNIQUE,
    time bigint NOT NULL,   -- the event's time, microseconds since the epoch
    leaf bytea NOT NULL,    -- the 32-byte leaf hash the tree holds
    by   bigint NOT NULL,   -- seq of the retention.prune event that authorised it
    at   bigint NOT NULL    -- when it was pruned, microseconds since the epoch
);
CREATE TABLE holds (
    id      text PRIMARY KEY,
    query   text NOT NULL,
    reason  text NOT NULL,
    created bigint NOT NULL,
    by      text NOT NULL
);
CREATE TABLE hold_releases (
    id     text PRIMARY KEY,
    time   bigint NOT NULL,
    by     text NOT NULL,
    reason text NOT NULL
);

-- Only retention deletes an event row or its field rows, once its pruned row exists.
CREATE FUNCTION refuse_unpruned_delete() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF NOT EXISTS (SELECT FROM glasslog.pruned WHERE seq = OLD.seq) THEN
        RAISE EXCEPTION 'glasslog: % are append-only; DELETE refused', TG_ARGV[0]
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END
$f$;
DROP TRIGGER no_delete ON events;
CREATE TRIGGER no_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_unpruned_delete('events');
DROP TRIGGER no_delete ON fields;
CREATE TRIGGER no_delete BEFORE DELETE ON fields
    FOR EACH ROW EXECUTE FUNCTION refuse_unpruned_delete('fields');

-- Counters only grow, except by what prune_events takes off for the events it prunes.
CREATE OR REPLACE FUNCTION rollups_only_grow() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF (NEW.count < OLD.count AND current_setting('glasslog.pruning', true) IS DISTINCT FROM 'on')
       OR NEW.count < 0 OR NEW.dim <> OLD.dim OR NEW.hour <> OLD.hour OR NEW.value <> OLD.value
    THEN
        RAISE EXCEPTION 'glasslog: rollups only grow; this UPDATE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$f$;

-- The application role has no DELETE: it prunes through this owner function, which
-- records each event as pruned (with the leaf hash the caller computed: verify checks
-- it against the tree), deletes the field rows the caller derived from the bodies,
-- takes the events' counts off the rollups, and deletes the rows (tsv goes with them).
CREATE FUNCTION prune_events(
    p_seqs bigint[], p_leaves bytea[], p_by bigint, p_at bigint,
    p_keys integer[], p_values jsonb[], p_times bigint[], p_fseqs bigint[]
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, glasslog AS $f$
DECLARE
    n integer;
BEGIN
    IF NOT EXISTS (SELECT FROM event_keys WHERE seq = p_by) THEN
        RAISE EXCEPTION 'glasslog: pruning needs the authorising retention.prune event';
    END IF;
    CREATE TEMPORARY TABLE IF NOT EXISTS glasslog_pruning (seq bigint, time bigint)
        ON COMMIT DELETE ROWS;
    DELETE FROM glasslog_pruning;
    INSERT INTO glasslog_pruning
        SELECT k.seq, k.time FROM unnest(p_seqs) AS t(seq)
        JOIN event_keys k ON k.seq = t.seq
        WHERE t.seq < p_by AND NOT EXISTS (SELECT FROM pruned p WHERE p.seq = t.seq);
    INSERT INTO pruned (seq, id, time, leaf, by, at)
        SELECT k.seq, k.id, k.time, t.leaf, p_by, p_at
        FROM unnest(p_seqs, p_leaves) AS t(seq, leaf)
        JOIN glasslog_pruning g ON g.seq = t.seq JOIN event_keys k ON k.seq = t.seq;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM fields f
        USING unnest(p_keys, p_values, p_times, p_fseqs) AS t(key, value, time, seq)
        JOIN glasslog_pruning g ON g.seq = t.seq
        WHERE f.key = t.key AND f.value = t.value AND f.time = t.time AND f.seq = t.seq;
    PERFORM set_config('glasslog.pruning', 'on', true);
    UPDATE rollups r SET count = r.count - c.n
        FROM (SELECT d.dim, floor(e.time::numeric / 3600000000)::bigint AS hour, d.value,
                     count(*) AS n
              FROM glasslog_pruning g JOIN events e ON e.seq = g.seq AND e.time = g.time
              CROSS JOIN LATERAL (VALUES ('service', e.service), ('action', e.action),
                  ('actor_id', e.actor_id), ('outcome', e.outcome)) AS d(dim, value)
              GROUP BY 1, 2, 3) c
        WHERE r.dim = c.dim AND r.hour = c.hour AND r.value = c.value;
    PERFORM set_config('glasslog.pruning', 'off', true);
    DELETE FROM events e USING glasslog_pruning g WHERE e.seq = g.seq AND e.time = g.time;
    RETURN n;
END
$f$;
REVOKE ALL ON FUNCTION prune_events(bigint[], bytea[], bigint, bigint, integer[], jsonb[],
    bigint[], bigint[]) FROM PUBLIC;

-- Drops the partition of month (y, m) once every event of it was pruned (it is empty
-- and every key of that month has a pruned row): its space goes back at once.
CREATE FUNCTION drop_pruned_month(y integer, m integer) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, glasslog AS $f$
DECLARE
    part  text;
    first bigint;
    last  bigint;
    empty boolean;
BEGIN
    part := format('events_%s_%s', lpad(y::text, 4, '0'), lpad(m::text, 2, '0'));
    IF to_regclass(format('glasslog.%I', part)) IS NULL THEN
        RETURN false;
    END IF;
    first := (extract(epoch FROM make_timestamptz(y, m, 1, 0, 0, 0, 'UTC')) * 1000000)::bigint;
    last := (extract(epoch FROM make_timestamptz(y, m, 1, 0, 0, 0, 'UTC') + interval '1 month')
             * 1000000)::bigint;
    IF last > (extract(epoch FROM now()) * 1000000)::bigint THEN
        RETURN false;  -- the current month, or a later one: events may still arrive
    END IF;
    EXECUTE format('SELECT NOT EXISTS (SELECT FROM glasslog.%I)', part) INTO empty;
    IF NOT empty OR EXISTS (
        SELECT FROM event_keys k WHERE k.time >= first AND k.time < last
            AND NOT EXISTS (SELECT FROM pruned p WHERE p.seq = k.seq)
    ) THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE glasslog.%I', part);
    RETURN true;
END
$f$;
REVOKE ALL ON FUNCTION drop_pruned_month(integer, integer) FROM PUBLIC;
"""  # noqa: S608 - fixed text: nothing from outside reaches this SQL
    + "".join(
        f"""
CREATE TRIGGER no_update BEFORE UPDATE ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_change('{table}');
CREATE TRIGGER no_delete BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_change('{table}');
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('{table}');
"""
        for table in ("pruned", "holds", "hold_releases")
    )
)
_ERASURE = """
-- Erasure (docs/erasure.md): one row per erased field, written by erase_event in the
-- transaction that rewrites the event row, before it.
CREATE TABLE erasures (
    seq    bigint NOT NULL,   -- the event whose field was erased
    path   text NOT NULL,     -- the field, as a JSON Pointer
    time   bigint NOT NULL,   -- when: the erasure.erase event's time, microseconds
    by_seq bigint NOT NULL,   -- seq of the erasure.erase event that authorised it
    PRIMARY KEY (seq, path)
);
CREATE TRIGGER no_update BEFORE UPDATE ON erasures
    FOR EACH ROW EXECUTE FUNCTION refuse_change('erasures');
CREATE TRIGGER no_delete BEFORE DELETE ON erasures
    FOR EACH ROW EXECUTE FUNCTION refuse_change('erasures');
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON erasures
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('erasures');

-- An event row changes only by erasure: once its erasures rows exist, and only in
-- body, commits, salts and tsv (the leaf stays the same; verify checks every byte).
CREATE FUNCTION events_erased_only() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF NOT EXISTS (SELECT FROM glasslog.erasures WHERE seq = OLD.seq)
       OR (NEW.seq, NEW.id, NEW.time, NEW.service, NEW.action, NEW.actor_id, NEW.outcome,
           NEW.request_id, NEW.trace_id)
          IS DISTINCT FROM (OLD.seq, OLD.id, OLD.time, OLD.service, OLD.action,
           OLD.actor_id, OLD.outcome, OLD.request_id, OLD.trace_id) THEN
        RAISE EXCEPTION 'glasslog: events are append-only; UPDATE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$f$;
DROP TRIGGER no_update ON events;
CREATE TRIGGER no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_erased_only();

-- The application role has no UPDATE or DELETE: it erases through this owner function,
-- which records the erased fields, rewrites the row, and deletes the field-index rows
-- the old body yielded and the new one does not. The field index's own guard against
-- deletes (retention's) is lifted for this transaction only: ALTER TABLE takes a lock
-- held to the end of the transaction, so no other session sees it lifted.
CREATE FUNCTION erase_event(p_seq bigint, p_body text, p_commits text, p_salts bytea,
    p_words text, p_paths text[], p_time bigint, p_by bigint, p_gone_keys integer[],
    p_gone_values jsonb[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, glasslog AS $f$
DECLARE
    ev_time bigint;
BEGIN
    SELECT k.time INTO ev_time FROM event_keys k WHERE k.seq = p_seq;
    IF ev_time IS NULL THEN
        RAISE EXCEPTION 'glasslog: no event with seq % to erase', p_seq;
    END IF;
    IF NOT EXISTS (SELECT FROM event_keys k WHERE k.seq = p_by AND k.seq > p_seq) THEN
        RAISE EXCEPTION 'glasslog: the erasure event % is not stored after seq %', p_by, p_seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF coalesce(cardinality(p_paths), 0) = 0 THEN
        RAISE EXCEPTION 'glasslog: an erasure names the fields it erases';
    END IF;
    INSERT INTO erasures (seq, path, time, by_seq)
        SELECT p_seq, path, p_time, p_by FROM unnest(p_paths) AS u(path);
    UPDATE events SET body = p_body, commits = p_commits, salts = p_salts,
        tsv = p_words::tsvector
        WHERE seq = p_seq AND time = ev_time;
    IF coalesce(cardinality(p_gone_keys), 0) > 0 THEN
        ALTER TABLE glasslog.fields DISABLE TRIGGER USER;
        DELETE FROM fields f USING unnest(p_gone_keys, p_gone_values) AS g(key, value)
            WHERE f.key = g.key AND f.value = g.value AND f.time = ev_time AND f.seq = p_seq;
        ALTER TABLE glasslog.fields ENABLE TRIGGER USER;
    END IF;
END
$f$;
REVOKE ALL ON FUNCTION erase_event(bigint, text, text, bytea, text, text[], bigint, bigint,
    integer[], jsonb[]) FROM PUBLIC;
"""

_MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, _SCHEMA_V1),
    (2, _COLLATE_C),
    (3, _FRESH_VISIBILITY),
    (4, _GUARDED_COUNTERS),
    (5, _API_KEYS),
    (6, _RETENTION + _ERASURE),
)
"""``(version, SQL)`` in order; ``create`` applies those above the stored version."""

SCHEMA_VERSION = _MIGRATIONS[-1][0]

# Idempotent on every ``create``: the role may exist already (made by a DBA, or by
# another database of the same cluster), and GRANT of a held privilege is a no-op.
_ROLES = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created concurrently by an init of another database
END
$$;
GRANT USAGE ON SCHEMA {SCHEMA} TO {APP_ROLE};
GRANT SELECT ON meta TO {APP_ROLE};
GRANT SELECT, INSERT ON {", ".join((*_APPEND_ONLY, *_KEY_TABLES))} TO {APP_ROLE};
GRANT SELECT ON rollups, seq_blocks TO {APP_ROLE};
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON rollups, seq_blocks FROM {APP_ROLE};
GRANT EXECUTE ON FUNCTION add_rollups(text[], bigint[], text[], bigint[]) TO {APP_ROLE};
GRANT EXECUTE ON FUNCTION widen_seq_blocks(bigint[], bigint[], bigint[]) TO {APP_ROLE};
GRANT EXECUTE ON FUNCTION ensure_month(integer, integer) TO {APP_ROLE};
GRANT SELECT ON pruned TO {APP_ROLE};
GRANT SELECT, INSERT ON holds, hold_releases TO {APP_ROLE};
GRANT EXECUTE ON FUNCTION prune_events(bigint[], bytea[], bigint, bigint, integer[], jsonb[],
    bigint[], bigint[]) TO {APP_ROLE};
GRANT EXECUTE ON FUNCTION drop_pruned_month(integer, integer) TO {APP_ROLE};
GRANT SELECT ON erasures TO {APP_ROLE};
GRANT EXECUTE ON FUNCTION erase_event(bigint, text, text, bytea, text, text[], bigint, bigint,
    integer[], jsonb[]) TO {APP_ROLE};
"""  # noqa: S608 - fixed names only, nothing from outside

_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS glasslog_batch (
    seq bigint, id bytea, time bigint, service text, action text, actor_id text,
    outcome text, request_id text, trace_id text, body text, commits text, salts bytea,
    words text
) ON COMMIT DELETE ROWS
"""

_COPY_BATCH = (
    "COPY glasslog_batch (seq, id, time, service, action, actor_id, outcome, request_id,"
    " trace_id, body, commits, salts, words) FROM STDIN"
)
_INSERT_KEYS = "INSERT INTO event_keys (seq, id, time) SELECT seq, id, time FROM glasslog_batch"
_INSERT_EVENTS = (
    "INSERT INTO events (seq, id, time, service, action, actor_id, outcome, request_id,"
    " trace_id, body, commits, salts, tsv)"
    " SELECT seq, id, time, service, action, actor_id, outcome, request_id, trace_id, body,"
    " commits, salts, words::tsvector FROM glasslog_batch"
)
_COPY_FIELDS = "COPY fields (key, value, time, seq) FROM STDIN"
# Through the owner's functions (migration 4): the application role may add to the
# counters but cannot set them.
_UPSERT_ROLLUPS = "SELECT add_rollups(%s::text[], %s::bigint[], %s::text[], %s::bigint[])"
_UPSERT_BLOCKS = "SELECT widen_seq_blocks(%s::bigint[], %s::bigint[], %s::bigint[])"
_INSERT_TILES = (
    "INSERT INTO tiles (level, idx, width, hashes)"
    " SELECT * FROM unnest(%s::integer[], %s::bigint[], %s::integer[], %s::bytea[])"
)
# Joining through event_keys gives the planner the partition key, so a lookup by seq
# or id probes one partition instead of every month's index.
_BY_SEQ = (
    "SELECT e.seq, e.body, e.commits, e.salts FROM event_keys k"
    " JOIN events e ON e.time = k.time AND e.seq = k.seq WHERE k.seq = %s"
)
_BY_ID = (
    "SELECT e.seq, e.body, e.commits, e.salts FROM event_keys k"
    " JOIN events e ON e.time = k.time AND e.seq = k.seq WHERE k.id = %s AND k.seq >= 0"
)
_BY_IDS = (
    "SELECT k.id, e.seq, e.body, e.commits, e.salts FROM event_keys k"
    " JOIN events e ON e.time = k.time AND e.seq = k.seq WHERE k.id = ANY(%s)"
)

_KEYS = (
    "SELECT k.id, k.hash, k.role, k.name, k.created, k.expires, r.time"
    " FROM api_keys k LEFT JOIN api_key_revocations r ON r.id = k.id"
)
_GRANTS = (
    "SELECT g.id, g.principal, g.role, g.reason, g.created, g.expires, r.time"
    " FROM grants g LEFT JOIN grant_revocations r ON r.id = g.id"
)

_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def describe_dsn(dsn: str) -> str:
    """The DSN as ``postgresql://user@host:port/dbname``: safe to print (no password).

    Every message that names a database goes through here, so a password given in
    the DSN never reaches a log file or a terminal.
    """
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparsable DSN, not shown>"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


def _wrap(exc: psycopg.Error, doing: str) -> StoreError:
    """Map a psycopg error to ours, keeping the server's primary message only.

    The DETAIL line of a constraint error quotes the offending row's values, so it
    is left out: error messages end up in logs that not every reader may see.
    """
    if isinstance(exc, pgerrors.ReadOnlySqlTransaction):
        return StoreError(
            f"{doing}: this database accepts only reads (a read replica, or a read-only "
            "session); glasslog writes to the primary: give ingest and init its URL"
        )
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None else None) or str(exc).split("\n")[0]
    return StoreError(f"{doing}: {text}")


def _month_of_day(day: int) -> tuple[int, int]:
    d = _EPOCH + timedelta(days=day)
    return d.year, d.month


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


class PostgresStore:
    """A glasslog store in one PostgreSQL database (schema ``glasslog``). Open with :meth:`open`."""

    shared = True  # several hosts may write: the sequencer locks and catches up per batch
    per_row_text = True  # tsv, one per event row

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]], dsn: str) -> None:
        self._conn = conn
        self.where = describe_dsn(dsn)
        """The database, credentials removed: for messages."""
        self._field_keys: dict[str, int] = {}
        self._months: set[tuple[int, int]] = set()
        self._staging = False
        self.upgraded_from: int | None = None

    @property
    def connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The underlying connection, for the query executor (reads only)."""
        return self._conn

    @classmethod
    def open(cls, dsn: str, *, create: bool = False) -> PostgresStore:
        """Connect to the store in the database ``dsn`` names.

        With ``create``, first create the schema, apply any missing migration and set
        up the ``glasslog_app`` role and its grants — all idempotent, so running it
        again (or on an up-to-date store) changes nothing. ``create`` needs a role
        that may create schemas and roles; the service should then connect as a
        login role that is a member of ``glasslog_app`` (``docs/postgres.md``).
        """
        where = describe_dsn(dsn)
        try:
            conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.ProgrammingError:
            # libpq quotes the malformed conninfo text, which may hold a password.
            raise StoreError(
                "the PostgreSQL DSN could not be parsed; expected "
                "postgresql://user@host:port/dbname or 'host=… dbname=…' pairs"
            ) from None
        except psycopg.Error as exc:
            message = _wrap(exc, f"connecting to {where}")
            password = _password_of(dsn)
            if password:
                message = StoreError(str(message).replace(password, "***"))
            raise message from None
        store = cls(conn, dsn)
        try:
            # Never weaker than the server default: an acknowledged batch is on disk.
            conn.execute(f"SET search_path TO {SCHEMA}")
            conn.execute("SET synchronous_commit TO on")
            if create:
                store._create()
            store._check_version()
        except psycopg.Error as exc:
            conn.close()
            raise _wrap(exc, f"opening the store in {where}") from exc
        except BaseException:
            conn.close()
            raise
        return store

    def _create(self) -> None:
        with self._conn.transaction():
            # Two inits racing would both see version 0; the lock serialises them.
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
            self._conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)"
            )
            current = self._stored_version() or 0
            if current > SCHEMA_VERSION:
                raise self._version_problem(current)
            for version, sql in _MIGRATIONS:
                if version > current:
                    self._conn.execute(sql)
            if 0 < current < SCHEMA_VERSION:
                self.upgraded_from = current
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            self._conn.execute(_ROLES)

    def _stored_version(self) -> int | None:
        if self._conn.execute("SELECT to_regclass('glasslog.meta')").fetchone() == (None,):
            return None
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return None if row is None else int(row[0])

    def _version_problem(self, found: int) -> StoreError:
        return unsupported_version(
            self.where,
            found,
            SCHEMA_VERSION,
            "run create again as the schema owner to apply the missing migrations",
        )

    def _check_version(self) -> None:
        found = self._stored_version()
        if found is None:
            raise StoreError(
                f"no glasslog store in {self.where}; create it first with an administrator "
                "role (PostgresStore.open(dsn, create=True); see docs/postgres.md)"
            )
        if found != SCHEMA_VERSION:
            raise self._version_problem(found)

    # --- Erasure of a data subject's personal fields (issue 14, part 3; docs/erasure.md) ---

    def erase(self, rewrites: Sequence[Rewrite]) -> None:
        """Rewrite the rows through the owner's ``erase_event`` (the application role has
        no UPDATE), in one transaction; new field-index rows, if the new body yields
        any, are inserted as ingest does."""
        if not rewrites:
            return
        dumps = json.dumps
        try:
            self._ensure_field_keys(
                {path for r in rewrites for path, _ in (*r.old_fields, *r.fields)}
            )
            keys = self._field_keys
            with self._conn.transaction(), self._conn.cursor() as cur:
                for r in rewrites:
                    new, old = set(r.fields), set(r.old_fields)
                    gone = [(p, v) for p, v in r.old_fields if (p, v) not in new and p in keys]
                    cur.execute(
                        "SELECT erase_event(%s, %s, %s, %s, %s, %s::text[], %s, %s,"
                        " %s::integer[], %s::jsonb[])",
                        (
                            r.seq, r.body, r.commits, r.salts, tsvector_literal(r.text),
                            [e.path for e in r.erased], r.erased[0].time_us, r.erased[0].by,
                            [keys[p] for p, _ in gone], [dumps(v) for _, v in gone],
                        ),
                    )  # fmt: skip
                    added = [(p, v) for p, v in r.fields if (p, v) not in old]
                    if added:
                        cur.executemany(
                            "INSERT INTO fields (key, value, time, seq) VALUES (%s, %s, %s, %s)",
                            [(keys[p], dumps(v), r.time_us, r.seq) for p, v in added],
                        )
        except psycopg.Error as exc:
            raise _wrap(exc, "erasing fields") from exc

    def _ensure_field_keys(self, paths: set[str]) -> None:
        """Make sure each metadata path has its ``field_keys`` id (cached)."""
        wanted = sorted(paths - self._field_keys.keys())
        if not wanted:
            return
        with self._conn.transaction():
            self._conn.execute(
                "INSERT INTO field_keys (path) SELECT unnest(%s::text[])"
                " ON CONFLICT (path) DO NOTHING",
                (wanted,),
            )
            found = self._conn.execute(
                "SELECT path, id FROM field_keys WHERE path = ANY(%s)", (wanted,)
            ).fetchall()
        self._field_keys.update(found)

    def erasures(self) -> list[Erasure]:
        return [
            Erasure(int(seq), str(path), int(time_us), int(by))
            for seq, path, time_us, by in self._query(
                "SELECT seq, path, time, by_seq FROM erasures ORDER BY seq, path", ()
            )
        ]

    def actor_events(self, actor_id: str, after: int, limit: int) -> list[StoredEvent]:
        return [
            StoredEvent(seq, body, commits, bytes(salts))
            for seq, body, commits, salts in self._query(
                "SELECT seq, body, commits, salts FROM events WHERE actor_id = %s AND seq > %s"
                " ORDER BY seq LIMIT %s",
                (actor_id, after, limit),
            )
        ]

    def scrub(self, rewrites: Sequence[Rewrite]) -> list[str]:
        """VACUUM the month partitions that held the rewritten rows, and the field index,
        so that the old row versions are removed, when this role owns them (vacuum
        needs the owner). PostgreSQL's WAL and any base backup keep the old values
        until they are recycled or expire: docs/erasure.md says how long."""
        months = sorted({_month_of_day(r.time_us // _DAY_US) for r in rewrites})
        tables = [f"events_{y:04d}_{m:02d}" for y, m in months] + ["fields"]
        done: list[str] = []
        skipped: list[str] = []
        try:
            for table in tables:
                owned = self._query_one(
                    "SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = %s AND c.relname = %s",
                    (SCHEMA, table),
                )
                if owned is None:
                    continue
                if not owned[0]:
                    skipped.append(table)
                    continue
                # A fixed name built from digits above, never from input.
                self._conn.execute(f"VACUUM {SCHEMA}.{table}")
                done.append(table)
        except psycopg.Error as exc:
            raise _wrap(exc, "vacuuming after an erasure") from exc
        said = []
        if done:
            said.append(f"vacuumed {', '.join(done)}: the old row versions are gone")
        if skipped:
            said.append(
                f"could not vacuum {', '.join(skipped)} (this role does not own them): "
                "autovacuum removes the old row versions later, or run VACUUM as the owner"
            )
        said.append(
            "PostgreSQL's WAL and backups keep the old values until they are recycled "
            "or expire (docs/erasure.md)"
        )
        return said

    # --- Retention and legal holds (issue 14, part 2; docs/retention.md) ---

    def prune(self, leaves: Sequence[tuple[int, bytes]], *, by: int, at_us: int) -> int:
        """Through the owner's ``prune_events`` (migration 6): the application role has
        no DELETE. The field rows to delete are derived here from the bodies, so the
        function deletes them by the index's key instead of scanning for their seqs."""
        wanted = dict(leaves)
        if not wanted:
            return 0
        seqs = sorted(wanted)
        try:
            with self._conn.transaction():
                rows = self._conn.execute(
                    "SELECT e.seq, e.time, e.body FROM event_keys k"
                    " JOIN events e ON e.time = k.time AND e.seq = k.seq WHERE k.seq = ANY(%s)",
                    (seqs,),
                ).fetchall()
                keys = dict(self._conn.execute("SELECT path, id FROM field_keys").fetchall())
                fields: list[tuple[int, str, int, int]] = []
                for seq, time_us, body in rows:
                    try:
                        metadata = json.loads(body).get("metadata")
                    except (ValueError, AttributeError):
                        metadata = None
                    if isinstance(metadata, dict):
                        fields.extend(
                            (keys[path], json.dumps(value), time_us, seq)
                            for path, value in field_values(metadata)
                            if path in keys
                        )
                found = self._conn.execute(
                    "SELECT prune_events(%s::bigint[], %s::bytea[], %s, %s, %s::integer[],"
                    " %s::jsonb[], %s::bigint[], %s::bigint[])",
                    (
                        seqs,
                        [wanted[seq] for seq in seqs],
                        by,
                        at_us,
                        [f[0] for f in fields],
                        [f[1] for f in fields],
                        [f[2] for f in fields],
                        [f[3] for f in fields],
                    ),
                ).fetchone()
        except psycopg.Error as exc:
            raise _wrap(exc, "pruning events") from exc
        return int(found[0]) if found is not None else 0

    def pruned_leaves(self, start: int, end: int) -> list[tuple[int, bytes, int]]:
        return [
            (int(seq), bytes(leaf), int(by))
            for seq, leaf, by in self._query(
                "SELECT seq, leaf, by FROM pruned WHERE seq >= %s AND seq < %s ORDER BY seq",
                (start, end),
            )
        ]

    def pruned_record(
        self, *, seq: int | None = None, event_id: bytes | None = None
    ) -> Pruned | None:
        if seq is not None:
            row = self._query_one(
                "SELECT seq, id, time, leaf, by, at FROM pruned WHERE seq = %s", (seq,)
            )
        else:
            row = self._query_one(
                "SELECT seq, id, time, leaf, by, at FROM pruned WHERE id = %s", (event_id,)
            )
        if row is None:
            return None
        return Pruned(
            int(row[0]), bytes(row[1]), int(row[2]), bytes(row[3]), int(row[4]), int(row[5])
        )

    def prune_candidates(self, before_us: int) -> list[int]:
        return [
            int(seq)
            for (seq,) in self._query(
                "SELECT seq FROM events WHERE time < %s ORDER BY seq", (before_us,)
            )
        ]

    def events_at(self, seqs: Sequence[int]) -> list[StoredEvent]:
        if not seqs:
            return []
        return [
            StoredEvent(*row)
            for row in self._query(
                "SELECT e.seq, e.body, e.commits, e.salts FROM event_keys k"
                " JOIN events e ON e.time = k.time AND e.seq = k.seq WHERE k.seq = ANY(%s)"
                " ORDER BY e.seq",
                (sorted(seqs),),
            )
        ]

    def reclaim_space(
        self, locked: Callable[[], AbstractContextManager[object]], *, pause: float
    ) -> list[str]:
        """Drop the month partitions whose every event was pruned (their space goes back
        at once), then vacuum what rows were deleted from, so new rows reuse the space.

        The drops run under the writer locks (no batch may be writing into a month
        while it is found empty and dropped); the vacuum does not: it takes minutes on a
        large store and never blocks inserts. Only the tables' owner may vacuum them:
        for another role PostgreSQL skips them with a warning, and autovacuum does it.
        """
        del pause  # one step each
        done: list[str] = []
        try:
            dropped = []
            with locked():
                parts = self._query(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'glasslog.events'::regclass ORDER BY c.relname",
                    (),
                )
                for (name,) in parts:
                    year, month = (int(x) for x in str(name).split("_")[1:3])
                    row = self._query_one("SELECT drop_pruned_month(%s, %s)", (year, month))
                    if row is not None and row[0]:
                        dropped.append(f"{year:04d}-{month:02d}")
                        self._months.discard((year, month))
            if dropped:
                done.append(f"dropped the partitions of {', '.join(dropped)}: every event pruned")
            self._conn.execute("VACUUM events, fields, rollups")
            done.append("vacuumed events, fields and rollups (their space is reused)")
        except psycopg.Error as exc:
            raise _wrap(exc, "reclaiming space") from exc
        return done

    def add_hold(self, hold: Hold) -> None:
        try:
            self._conn.execute(
                "INSERT INTO holds (id, query, reason, created, by) VALUES (%s, %s, %s, %s, %s)",
                (hold.id, hold.query, hold.reason, hold.created_us, hold.by),
            )
        except psycopg.Error as exc:
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
            cur = self._conn.execute(
                "INSERT INTO hold_releases (id, time, by, reason)"
                " SELECT id, %s, %s, %s FROM holds WHERE id = %s ON CONFLICT (id) DO NOTHING",
                (time_us, by, reason, hold_id),
            )
        except psycopg.Error as exc:
            raise _wrap(exc, "releasing a hold") from exc
        return cur.rowcount == 1

    def commitments(self, seqs: Sequence[int]) -> dict[int, tuple[str, bytes]]:
        if not seqs:
            return {}
        rows = self._query(
            "SELECT k.seq, e.commits, e.salts FROM event_keys k"
            " JOIN events e ON e.time = k.time AND e.seq = k.seq WHERE k.seq = ANY(%s)",
            (list(seqs),),
        )
        return {int(seq): (commits, bytes(salts)) for seq, commits, salts in rows}

    def add_api_key(self, key: ApiKey) -> None:
        try:
            self._conn.execute(
                "INSERT INTO api_keys (id, hash, role, name, created, expires)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (key.id, key.hash, key.role, key.name, key.created_us, key.expires_us),
            )
        except psycopg.Error as exc:
            raise _wrap(exc, "storing an API key") from exc

    def api_key(self, key_id: str) -> ApiKey | None:
        row = self._query_one(_KEYS + " WHERE k.id = %s", (key_id,))
        return None if row is None else ApiKey(*row)

    def api_keys(self) -> list[ApiKey]:
        return [ApiKey(*row) for row in self._query(_KEYS + " ORDER BY k.created, k.id", ())]

    def revoke_api_key(self, key_id: str, time_us: int) -> bool:
        try:
            cur = self._conn.execute(
                "INSERT INTO api_key_revocations (id, time) VALUES (%s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (key_id, time_us),
            )
        except psycopg.Error as exc:
            raise _wrap(exc, "revoking an API key") from exc
        return cur.rowcount == 1

    def add_grant(self, grant: Grant) -> None:
        try:
            self._conn.execute(
                "INSERT INTO grants (id, principal, role, reason, created, expires)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (grant.id, grant.principal, grant.role, grant.reason, grant.created_us,
                 grant.expires_us),
            )  # fmt: skip
        except psycopg.Error as exc:
            raise _wrap(exc, "storing a grant") from exc

    def grants(self, principal: str | None = None) -> list[Grant]:
        if principal is None:
            rows = self._query(_GRANTS + " ORDER BY g.created, g.id", ())
        else:
            rows = self._query(_GRANTS + " WHERE g.principal = %s ORDER BY g.created", (principal,))
        return [Grant(*row) for row in rows]

    def revoke_grant(self, grant_id: str, time_us: int) -> bool:
        try:
            cur = self._conn.execute(
                "INSERT INTO grant_revocations (id, time) VALUES (%s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (grant_id, time_us),
            )
        except psycopg.Error as exc:
            raise _wrap(exc, "revoking a grant") from exc
        return cur.rowcount == 1

    @contextmanager
    def lock_writer(self, *, wait: float = 30.0) -> Iterator[None]:
        """Hold the database's single-sequencer lock; wait up to ``wait`` seconds for it.

        A session-level advisory lock on :data:`WRITER_LOCK_KEY`: several service
        nodes may share one database, but the sequencer keeps the tree's right edge
        in memory, so exactly one may write at a time. Take the lock *before*
        building the :class:`~glasslog.ingest.pipeline.Sequencer`, so it restores
        the tree the previous writer left. PostgreSQL releases the lock when this
        connection ends, so a crashed writer never blocks its successor.
        """
        deadline = time.monotonic() + wait
        try:
            while True:
                taken = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,))
                if taken.fetchone() == (True,):
                    break
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"another glasslog sequencer holds the writer lock on {self.where}; "
                        "only one may write at a time: wait for it to stop and try again"
                    )
                time.sleep(0.05)
        except psycopg.Error as exc:
            raise _wrap(exc, "taking the writer lock") from exc
        try:
            yield
        finally:
            if not self._conn.closed:
                try:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK_KEY,))
                except psycopg.Error as exc:
                    raise _wrap(exc, "releasing the writer lock") from exc

    def size(self) -> int:
        row = self._query_one("SELECT max(seq) FROM event_keys", ())
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def append(self, rows: Sequence[EventRow], tiles: Sequence[Tile]) -> None:
        if not rows and not tiles:
            return
        try:
            # Committed on their own: a partition or field key nobody uses yet is
            # harmless, and the caches then never name something rolled back.
            self._prepare(rows)
            with self._conn.transaction(), self._conn.cursor() as cur:
                if rows:
                    self._write_rows(cur, rows)
                if tiles:
                    cur.execute(
                        _INSERT_TILES,
                        (
                            [t.level for t in tiles],
                            [t.index for t in tiles],
                            [t.width for t in tiles],
                            [t.hashes for t in tiles],
                        ),
                    )
        except pgerrors.UniqueViolation as exc:
            constraint = exc.diag.constraint_name
            if constraint == "event_keys_id":
                raise DuplicateIdError("an event id in this batch is already stored") from exc
            if constraint == "event_keys_seq":
                raise StoreError(
                    "another process wrote events to this store; only one writer may sequence "
                    "at a time (hold PostgresStore.lock_writer while sequencing)"
                ) from exc
            raise _wrap(exc, "writing events") from exc
        except psycopg.Error as exc:
            raise _wrap(exc, "writing events") from exc

    def _prepare(self, rows: Sequence[EventRow]) -> None:
        """Create the staging table, month partitions and field keys ``rows`` need.

        Each is cached per session once committed.
        """
        if not self._staging and rows:
            self._conn.execute(_STAGING)
            self._staging = True
        days = {r.time_us // _DAY_US for r in rows}
        months = {_month_of_day(day) for day in days}
        if months:
            months.add(_next_month(*max(months)))
        missing = sorted(months - self._months)
        if missing:
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.executemany("SELECT ensure_month(%s, %s)", missing)
            self._months.update(missing)
        paths = {path for r in rows for path, _ in r.fields} - self._field_keys.keys()
        if paths:
            wanted = sorted(paths)
            with self._conn.transaction():
                self._conn.execute(
                    "INSERT INTO field_keys (path) SELECT unnest(%s::text[])"
                    " ON CONFLICT (path) DO NOTHING",
                    (wanted,),
                )
                found = self._conn.execute(
                    "SELECT path, id FROM field_keys WHERE path = ANY(%s)", (wanted,)
                ).fetchall()
            self._field_keys.update(found)

    def _write_rows(self, cur: psycopg.Cursor[tuple[Any, ...]], rows: Sequence[EventRow]) -> None:
        """COPY the batch, then move it into ``event_keys`` and ``events``; add derived rows.

        Keys go first: a reused id violates ``event_keys_id`` before any event row
        exists, and the whole transaction rolls back either way.
        """
        with cur.copy(_COPY_BATCH) as copy:
            for r in rows:
                copy.write_row((*r[:12], tsvector_literal(r.text)))
        cur.execute(_INSERT_KEYS)
        cur.execute(_INSERT_EVENTS)
        keys = self._field_keys
        if any(r.fields for r in rows):
            dumps = json.dumps
            with cur.copy(_COPY_FIELDS) as copy:
                for r in rows:
                    for path, value in r.fields:
                        copy.write_row((keys[path], dumps(value), r.time_us, r.seq))
        counts = rollup_counts(rows)
        blocks = seq_block_bounds((r.seq, r.time_us) for r in rows)
        cur.execute(
            _UPSERT_ROLLUPS,
            (
                [k[0] for k in counts],
                [k[1] for k in counts],
                [k[2] for k in counts],
                list(counts.values()),
            ),
        )
        cur.execute(
            _UPSERT_BLOCKS,
            (list(blocks), [b[0] for b in blocks.values()], [b[1] for b in blocks.values()]),
        )

    def find_ids(self, ids: Sequence[bytes]) -> dict[bytes, StoredEvent]:
        if not ids:
            return {}
        found = {
            row[0]: StoredEvent(row[1], row[2], row[3], row[4])
            for row in self._query(_BY_IDS, (list(ids),))
        }
        # A pruned event's id stays taken (retention): known, with no body left.
        for event_id, seq in self._query(
            "SELECT id, seq FROM pruned WHERE id = ANY(%s)", (list(ids),)
        ):
            found[bytes(event_id)] = StoredEvent(int(seq), "", "", b"")
        return found

    def get(self, seq: int) -> StoredEvent:
        row = self._query_one(_BY_SEQ, (seq,))
        if row is None:
            record = self.pruned_record(seq=seq)
            raise no_event_at(seq, self.size()) if record is None else pruned_error(record)
        return StoredEvent(*row)

    def get_by_id(self, event_id: bytes) -> StoredEvent:
        row = self._query_one(_BY_ID, (event_id,))
        if row is None:
            record = self.pruned_record(event_id=event_id)
            raise no_event_with_id() if record is None else pruned_error(record)
        return StoredEvent(*row)

    def events(self, start: int, end: int) -> Iterator[StoredEvent]:
        # Pages keyed on seq: each is one short statement, so no transaction (or
        # server-side cursor) stays open while the caller works through the events.
        while start < end:
            page = self._query(
                "SELECT seq, body, commits, salts FROM events WHERE seq >= %s AND seq < %s"
                " ORDER BY seq LIMIT %s",
                (start, end, _EVENTS_PAGE),
            )
            for row in page:
                yield StoredEvent(*row)
            if len(page) < _EVENTS_PAGE:
                return
            start = page[-1][0] + 1

    def verify_rows(self, start: int, end: int) -> Iterator[VerifyRow]:
        # event_keys holds a second copy of each id and time (for lookups): it must agree.
        while start < end:
            page = self._query(
                "SELECT e.seq, e.id, e.time, e.service, e.action, e.actor_id, e.outcome,"
                " e.request_id, e.trace_id, e.body, e.commits, e.salts,"
                " k.id IS NOT DISTINCT FROM e.id AND k.time IS NOT DISTINCT FROM e.time"
                " FROM events e LEFT JOIN event_keys k ON k.seq = e.seq"
                " WHERE e.seq >= %s AND e.seq < %s ORDER BY e.seq LIMIT %s",
                (start, end, _EVENTS_PAGE),
            )
            yield from page
            if len(page) < _EVENTS_PAGE:
                return
            start = page[-1][0] + 1

    def missing_fields(self, rows: Sequence[FieldRow]) -> list[FieldRow]:
        # One anti-join over the primary-key-like index (key, value, time, seq).
        keys = dict(self._query("SELECT path, id FROM field_keys", ()))
        missing = [row for row in rows if row[1] not in keys]
        probe = [row for row in rows if row[1] in keys]
        if not probe:
            return missing
        dumps = json.dumps
        absent = self._query(
            "SELECT t.n FROM unnest(%s::integer[], %s::jsonb[], %s::bigint[], %s::bigint[])"
            " WITH ORDINALITY AS t(key, value, time, seq, n) WHERE NOT EXISTS (SELECT 1 FROM"
            " fields f WHERE f.key = t.key AND f.value = t.value AND f.time = t.time"
            " AND f.seq = t.seq)",
            (
                [keys[row[1]] for row in probe],
                [dumps(row[2]) for row in probe],
                [row[3] for row in probe],
                [row[0] for row in probe],
            ),
        )
        return missing + [probe[int(n) - 1] for (n,) in absent]

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
        # The server compares: a tsvector's text form depends on its normalisation.
        seqs = list(range(start, start + len(texts)))
        literals = [tsvector_literal(text) for text in texts]
        return [
            int(seq)
            for (seq,) in self._query(
                # The range on seq lets each partition's primary key serve the join;
                # through event_keys every partition would be scanned for every range.
                "SELECT t.seq FROM unnest(%s::bigint[], %s::text[]) AS t(seq, words)"
                " LEFT JOIN (SELECT seq, tsv FROM events WHERE seq >= %s AND seq < %s) e"
                " ON e.seq = t.seq WHERE e.tsv IS DISTINCT FROM t.words::tsvector"
                " ORDER BY t.seq",
                (seqs, literals, start, start + len(texts)),
            )
        ]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A repeatable-read transaction: every read inside it sees one snapshot."""
        self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield
        finally:
            self._conn.execute("ROLLBACK")

    def rollups(self) -> Iterator[tuple[str, int, str, int]]:
        yield from self._query("SELECT dim, hour, value, count FROM rollups", ())

    def seq_blocks(self) -> dict[int, tuple[int, int]]:
        return {
            int(block): (int(low), int(high))
            for block, low, high in self._query(
                "SELECT block, min_time, max_time FROM seq_blocks", ()
            )
        }

    def check_text_index(self) -> str | None:
        return None  # tsv is per row: text_mismatches compares every one

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        row = self._query_one(
            "SELECT hashes FROM tiles WHERE level = %s AND idx = %s AND width >= %s"
            " ORDER BY width LIMIT 1",
            (level, index, width),
        )
        if row is None:
            raise tile_not_stored(level, index, width)
        hashes: bytes = row[0]
        return hashes

    def tiles(self) -> Iterator[Tile]:
        # Tiles are 8 KiB each and few (n/256 + n/65536 + …): one read is fine.
        for level, idx, width, hashes in self._query(
            "SELECT level, idx, width, hashes FROM tiles ORDER BY level, idx, width", ()
        ):
            yield Tile(level=level, index=idx, width=width, hashes=hashes)

    def add_checkpoint(self, size: int, note: str, partial: Sequence[Tile]) -> None:
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.execute("INSERT INTO checkpoints (size, note) VALUES (%s, %s)", (size, note))
                cur.execute(
                    _INSERT_TILES + " ON CONFLICT DO NOTHING",
                    (
                        [t.level for t in partial],
                        [t.index for t in partial],
                        [t.width for t in partial],
                        [t.hashes for t in partial],
                    ),
                )
        except psycopg.Error as exc:
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
        top, count, low, high = self._query_one(
            "SELECT (SELECT max(seq) FROM event_keys), count(*), min(seq), max(seq) FROM events",
            (),
        )
        return (0 if top is None else int(top) + 1), int(count), low, high

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        row = self._query_one("SELECT size, note FROM checkpoints WHERE size = %s", (size,))
        return None if row is None else StoredCheckpoint(int(row[0]), str(row[1]))

    def identity(self) -> str | None:
        row = self._query_one("SELECT value FROM meta WHERE key = 'vkey'", ())
        return None if row is None else str(row[0])

    def bind_identity(self, vkey: str) -> str:
        """Record the log's key; the app role may only read ``meta``, so this is init's job."""
        try:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('vkey', %s) ON CONFLICT (key) DO NOTHING",
                (vkey,),
            )
        except psycopg.Error as exc:
            raise _wrap(exc, "recording the log's verifier key") from exc
        bound = self.identity()
        assert bound is not None  # inserted above, or already there
        return bound

    # --- Key rotation (issue 14, part 1): the key history in append-only meta rows ---

    def vkey_records(self) -> list[str]:
        try:
            rows = self._conn.execute(
                "SELECT value FROM meta WHERE key ~ '^vkeys\\.[0-9]+$' ORDER BY key"
            ).fetchall()
        except psycopg.Error as exc:
            raise _wrap(exc, "reading the key history") from exc
        return [str(row[0]) for row in rows]

    def add_vkey_record(self, number: int, history: str) -> None:
        """Append a version of the key history; ``meta`` is the owner's, like ``vkey``."""
        try:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s)", (f"vkeys.{number:06d}", history)
            )
        except psycopg.errors.UniqueViolation:
            raise ConflictError(
                f"the key history changed while this change was made (version {number} exists "
                "already); run the command again"
            ) from None
        except psycopg.errors.InsufficientPrivilege:
            raise ConfigError(
                "recording the key history: this role may not write the store's meta table; "
                "rotate or revoke keys with the schema owner's DSN (the one `glasslog init` used)"
            ) from None
        except psycopg.Error as exc:
            raise _wrap(exc, "recording the key history") from exc

    def optimize(self, *, written: int | None = None) -> None:
        """Refresh the planner's statistics and the visibility map (VACUUM ANALYZE).

        Skipped when ``written`` is under a tenth of the store: on a large store the
        vacuum and the sampling take seconds, and for a small load autovacuum keeps
        up on its own (migration 3). ``glasslog ingest`` passes what it wrote.

        Autovacuum analyses each partition but never the partitioned ``events``
        parent, whose statistics the planner uses for queries across months; and
        after a bulk load the newest pages are not yet marked all-visible, which
        makes index-only scans (counts, histograms) read the table as well. Only
        the tables' owner may vacuum and analyse them; for other roles PostgreSQL
        skips them with a warning, so run this as the owner (or from a scheduled
        job). Vacuum never removes anything here: nothing is ever deleted.
        """
        if written is not None and written * 10 < self.size():
            return
        try:
            self._conn.execute("VACUUM (ANALYZE) events, event_keys, fields, rollups, seq_blocks")
        except psycopg.Error as exc:
            raise _wrap(exc, "refreshing query statistics") from exc

    def close(self) -> None:
        self._conn.close()

    def _query(self, sql: str, params: Sequence[object]) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise _wrap(exc, "reading the store") from exc

    def _query_one(self, sql: str, params: Sequence[object]) -> Any:
        rows = self._query(sql, params)
        return rows[0] if rows else None


def _password_of(dsn: str) -> str | None:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return None
    return str(password) if password else None
