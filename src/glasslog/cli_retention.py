"""``glasslog retention run`` and ``glasslog hold add|list|release`` (docs/retention.md).

Thin: options parsed here, the work done by :mod:`glasslog.lifecycle`. What the CLI
does is done as the data directory's owner, and every change is first recorded in the
ledger (``retention.prune``, ``hold.add``, ``hold.release``) through the path every
writer takes (``cli._record``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import click

from glasslog.cli import (
    _emit,
    _fail,
    _owner,
    _policy_path,
    _record,
    _table,
    data_option,
    json_option,
    policy_option,
    store_option,
)
from glasslog.datadir import DataDir
from glasslog.display import printable
from glasslog.lifecycle.holds import add_hold, hold_json, list_holds, release_hold
from glasslog.lifecycle.retention import load_retention, run_retention
from glasslog.store import open_store
from glasslog.store.base import Store

__all__ = ["hold", "retention"]


def _recorder(
    data: Path, store: str | None, target: Store
) -> Callable[[list[dict[str, Any]]], list[int]]:
    """Append lifecycle events (signed: ``_record`` ends with a checkpoint); their seqs."""

    def record(events: list[dict[str, Any]]) -> list[int]:
        _record(data, store, *events)
        return [target.get_by_id(uuid.UUID(e["id"]).bytes).seq for e in events]

    return record


def _locker(data: Path, target: Store) -> Callable[[], AbstractContextManager[object]]:
    """The writer locks, taken per chunk: the data directory's, then the store's."""

    @contextmanager
    def lock() -> Iterator[None]:
        with DataDir(data).writer_lock(), target.lock_writer():
            yield

    return lock


@click.group()
def retention() -> None:
    """Remove the payloads of events past the retention rules of the policy file."""


@retention.command("run")
@data_option
@store_option
@policy_option
@click.option("--dry-run", is_flag=True, help="Say what would be pruned; change nothing.")
@json_option
def retention_run(
    data: Path, store: str | None, policy: Path | None, dry_run: bool, as_json: bool
) -> None:
    """Prune events past the [retention] rules of the policy (docs/retention.md).

    Their seq, leaf hash, the tree and checkpoints stay, so every other event's proofs
    stay valid and `glasslog verify` reports the ranges as pruned. Events under a legal
    hold and glasslog's lifecycle events are kept. The run is recorded first as signed
    retention.prune events; space is reclaimed at the end.

    JSON: {"dry_run", "now", "rules", "examined", "held", "pruned", "ranges",
    "authorised_by", "reclaimed", "seconds"}.
    """
    path = _policy_path(data, policy)
    rules = load_retention(path)
    if rules is None:
        _fail(f"{path} has no [retention] table, so nothing is ever pruned; add one such as "
              '[retention] default = "90d"')  # fmt: skip
        return
    target = open_store(DataDir(data).store_spec(store))
    try:
        summary = run_retention(
            target,
            rules,
            dry_run=dry_run,
            actor=_owner(),
            record=_recorder(data, store, target),
            lock=_locker(data, target),
        )
    finally:
        target.close()
    if as_json:
        _emit(summary.to_json(), compact=True)
    else:
        click.echo(summary.summary())


@click.group()
def hold() -> None:
    """Legal holds: events matching a hold's query are never pruned or erased."""


@hold.command("add")
@data_option
@store_option
@click.argument("query")
@click.option(
    "--reason", required=True, help="The matter the hold is for (recorded in the ledger)."
)
@json_option
def hold_add(data: Path, store: str | None, query: str, reason: str, as_json: bool) -> None:
    """Hold the events matching QUERY (now and later ones) until released.

    JSON: the hold: {"id", "query", "reason", "created", "by", "active", …}.
    """
    target = open_store(DataDir(data).store_spec(store))
    try:
        made = add_hold(
            target, query, reason, actor=_owner(), record=lambda e: _record(data, store, e)
        )
    except ValueError as exc:
        _fail(str(exc))
        return
    finally:
        target.close()
    if as_json:
        _emit(hold_json(made), compact=True)
    else:
        click.echo(f"placed hold {made.id} on {printable(query) or 'every event'}")


@hold.command("list")
@data_option
@store_option
@click.option("--active", "active_only", is_flag=True, help="Only the holds in force.")
@json_option
def hold_list(data: Path, store: str | None, active_only: bool, as_json: bool) -> None:
    """List the legal holds, oldest first.

    JSON: one hold per line: {"id", "query", "reason", "created", "by", "active",
    "released", "released_by", "release_reason"}.
    """
    target = open_store(DataDir(data).store_spec(store), readonly=True)
    try:
        found = [hold_json(h) for h in list_holds(target, active_only=active_only)]
    finally:
        target.close()
    if as_json:
        for row in found:
            _emit(row, compact=True)
    elif found:
        columns = ["id", "query", "reason", "created", "state"]
        _table(
            [
                [printable(str(r[c])) for c in columns[:4]]
                + ["active" if r["active"] else f"released {r['released']}"]
                for r in found
            ],
            columns,
        )
    else:
        click.echo("no legal holds; place one with `glasslog hold add QUERY --reason R`", err=True)


@hold.command("release")
@data_option
@store_option
@click.argument("hold_id", metavar="ID")
@click.option("--reason", default="", help="Why it ends (recorded in the ledger).")
@json_option
def hold_release(data: Path, store: str | None, hold_id: str, reason: str, as_json: bool) -> None:
    """Release the hold ID: its events may be pruned or erased again.

    JSON: the released hold.
    """
    target = open_store(DataDir(data).store_spec(store))
    try:
        released = release_hold(
            target, hold_id, actor=_owner(), reason=reason,
            record=lambda e: _record(data, store, e),
        )  # fmt: skip
    except ValueError as exc:
        _fail(str(exc))
        return
    finally:
        target.close()
    if as_json:
        _emit(hold_json(released), compact=True)
    else:
        click.echo(f"released hold {released.id}")
