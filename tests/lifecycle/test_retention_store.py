"""Retention at the library level: the store API, the tree afterwards, PostgreSQL's app role."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from glasslog.ledger.merkle import leaf_hash
from glasslog.lifecycle.retention import parse_retention, run_retention
from glasslog.store.base import Store, leaf_of, restore_tree
from glasslog.store.postgres import APP_ROLE, PostgresStore
from glasslog.testing import TemporaryLog
from glasslog.verify import verify_store
from tests.conftest import admin_dsn, backend_log, make_event
from tests.lifecycle.conftest import NEW, OLD

RULES = parse_retention({"default": "90d"})
OWNER = {"id": "owner:test", "type": "user"}


def _recorder(tlog: TemporaryLog) -> Callable[[list[dict[str, Any]]], list[int]]:
    """Append through the log's sequencer and sign, as the CLI and server do."""

    def record(events: list[dict[str, Any]]) -> list[int]:
        receipts = tlog.submit(events)
        tlog.checkpoint()
        return [r.seq for r in receipts if r.seq is not None]

    return record


def _unlocked() -> Callable[[], AbstractContextManager[object]]:
    """The temporary log's own writer holds the locks for its whole life."""

    @contextmanager
    def lock() -> Iterator[None]:
        yield

    return lock


def test_the_tree_is_restored_over_pruned_leaves(tlog: TemporaryLog) -> None:
    """A writer restarting after a prune, with events not yet signed, rebuilds the same
    tree: the pruned leaves come from their pruned rows."""
    tlog.submit([make_event(time=OLD) for _ in range(6)] + [make_event(time=NEW)])
    tlog.checkpoint()
    summary = run_retention(
        tlog.store, RULES, actor=OWNER, record=_recorder(tlog), lock=_unlocked()
    )
    assert summary.pruned == 6
    tlog.submit([make_event(time=NEW) for _ in range(3)])  # after the last checkpoint
    restored = restore_tree(tlog.store)
    assert restored.size == 11
    assert restored.root() == tlog.sequencer._tree.root()
    pruned = tlog.store.pruned_record(seq=2)
    assert pruned is not None and pruned.by == 7
    assert tlog.store.find_ids([pruned.id])[pruned.id].seq == 2  # the id stays taken
    report = verify_store(tlog.spec, tlog.datadir.verifier(), workers=1)
    assert report.pruned == [(0, 6)] and report.events == 11


def test_prune_skips_what_is_already_pruned(tlog: TemporaryLog) -> None:
    """Pruning a seq twice changes nothing the second time."""
    tlog.submit([make_event(time=OLD) for _ in range(3)] + [make_event(time=NEW)])
    by = _recorder(tlog)([make_event(time=NEW)])[0]
    leaves = [(seq, leaf_hash(leaf_of(tlog.store.get(seq)))) for seq in range(2)]
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    assert tlog.store.prune(leaves, by=by, at_us=now_us) == 2
    assert tlog.store.prune(leaves, by=by, at_us=now_us) == 0
    assert [seq for seq, _, _ in tlog.store.pruned_leaves(0, 10)] == [0, 1]


@contextmanager
def _app_role(database: str) -> Iterator[str]:
    """The DSN of a new login role that is only a member of glasslog_app."""
    name = f"glasslog_ret_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(name), sql.Identifier(APP_ROLE)
            )
        )
    try:
        yield make_conninfo(database, user=name)
    finally:
        with psycopg.connect(admin_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_the_app_role_prunes_only_through_the_owner_function() -> None:
    """glasslog_app cannot DELETE an event, yet a run as that role prunes, holds work,
    and verify passes."""
    with backend_log("postgres") as tlog, _app_role(tlog.spec) as dsn:
        tlog.submit([make_event(time=OLD) for _ in range(4)] + [make_event(time=NEW)])
        tlog.checkpoint()
        app: Store = PostgresStore.open(dsn)
        try:
            try:
                app.connection.execute("DELETE FROM events WHERE seq = 0")  # type: ignore[attr-defined]
                raise AssertionError("the app role deleted an event")
            except psycopg.errors.InsufficientPrivilege:
                pass
            from glasslog.lifecycle.holds import add_hold

            add_hold(app, f"id:{uuid.UUID(int=0)}", "none held", actor=OWNER, record=lambda e: None)
            summary = run_retention(
                app, RULES, actor=OWNER, record=_recorder(tlog), lock=_unlocked()
            )
            assert summary.pruned == 4
            assert len(app.holds()) == 1
        finally:
            app.close()
        assert verify_store(tlog.spec, tlog.datadir.verifier(), workers=1).pruned == [(0, 4)]
