"""Legal holds: events matching an active hold's query are never pruned or erased.

A hold is a query of the query language (docs/query.md) with a reason, kept in the
append-only ``holds`` table; releasing it appends a row to ``hold_releases``, so the
history of every hold stays. Each change is also an event in the ledger
(``hold.add``, ``hold.release``), appended by the caller's ``record`` before the store
changes, so no hold exists that the ledger does not show. Whether an event is held is
decided from its decoded body (``glasslog.query.match``), the way search rechecks
results, so a hold never depends on derived indexes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from glasslog.errors import NotFoundError
from glasslog.event import epoch_us
from glasslog.lifecycle import lifecycle_event, rfc3339_us
from glasslog.query.language import Node, parse
from glasslog.query.match import matches
from glasslog.query.plan import compile_query
from glasslog.store.base import Hold, Store

__all__ = [
    "ActiveHolds",
    "add_hold",
    "hold_json",
    "holds_json",
    "is_held",
    "list_holds",
    "release_hold",
]

Record = Callable[[dict[str, Any]], object]
"""Appends one lifecycle event to the ledger (the CLI's ``_record``, the server's writer)."""


def _compiled(query: str, now: datetime) -> Node:
    """The query's AST, refused (QueryError, with a caret) unless it parses and compiles."""
    node = parse(query, now=now)
    compile_query(node)  # what the matcher accepts: a query the stores could run
    return node


@dataclass(frozen=True, slots=True)
class ActiveHolds:
    """The holds in force at one moment, parsed once for matching many events."""

    holds: tuple[tuple[Hold, Node], ...]

    @classmethod
    def of(cls, store: Store, *, now: datetime | None = None) -> ActiveHolds:
        at = now or datetime.now(UTC)
        return cls(tuple((h, _compiled(h.query, at)) for h in store.holds() if h.active))

    def holding(self, event: dict[str, Any], *, seq: int) -> Hold | None:
        """The first active hold whose query matches ``event`` (its decoded body), or None."""
        for hold, node in self.holds:
            if matches(node, event, seq=seq):
                return hold
        return None


def is_held(store: Store, event: dict[str, Any], *, seq: int | None = None) -> bool:
    """Whether an active legal hold covers ``event`` (a decoded body, with or without
    its ``seq``): such an event is never pruned or erased."""
    at = seq if seq is not None else int(event.get("seq", 0))
    return ActiveHolds.of(store).holding(event, seq=at) is not None


def add_hold(
    store: Store,
    query: str,
    reason: str,
    *,
    actor: dict[str, str],
    record: Record,
    now: datetime | None = None,
) -> Hold:
    """Place a hold on the events matching ``query``: record ``hold.add``, then store it."""
    at = now or datetime.now(UTC)
    if not reason.strip():
        raise ValueError("a hold needs a reason (the matter or case it is for): give --reason")
    _compiled(query, at)
    hold = Hold(
        id=f"hold-{secrets.token_hex(6)}",
        query=query,
        reason=reason,
        created_us=epoch_us(at),
        by=actor["id"],
    )
    record(
        lifecycle_event(
            "hold.add",
            actor,
            reason=reason,
            target={"type": "hold", "id": hold.id},
            metadata={"query": query},
        )
    )
    store.add_hold(hold)
    return hold


def release_hold(
    store: Store,
    hold_id: str,
    *,
    actor: dict[str, str],
    record: Record,
    reason: str = "",
    now: datetime | None = None,
) -> Hold:
    """Release an active hold: record ``hold.release``, then store the release."""
    at = now or datetime.now(UTC)
    found = next((h for h in store.holds() if h.id == hold_id), None)
    if found is None:
        raise NotFoundError(f"no hold with id {hold_id!r}; `glasslog hold list` shows them")
    if not found.active:
        raise ValueError(f"hold {hold_id} was released already, at {rfc3339_us(found.released_us)}")
    record(
        lifecycle_event(
            "hold.release",
            actor,
            reason=reason or None,
            target={"type": "hold", "id": hold_id},
            metadata={"query": found.query},
        )
    )
    store.release_hold(hold_id, time_us=epoch_us(at), by=actor["id"], reason=reason)
    return next(h for h in store.holds() if h.id == hold_id)


def list_holds(store: Store, *, active_only: bool = False) -> list[Hold]:
    """Every hold, oldest first (or only those in force)."""
    return [h for h in store.holds() if h.active or not active_only]


def hold_json(hold: Hold) -> dict[str, Any]:
    """A hold as the CLI's ``--json`` and the API show it."""
    return {
        "id": hold.id,
        "query": hold.query,
        "reason": hold.reason,
        "created": rfc3339_us(hold.created_us),
        "by": hold.by,
        "active": hold.active,
        "released": rfc3339_us(hold.released_us) if hold.released_us is not None else None,
        "released_by": hold.released_by,
        "release_reason": hold.release_reason or None,
    }


def holds_json(holds: Sequence[Hold]) -> list[dict[str, Any]]:
    """Holds as the API's ``GET /v1/holds`` lists them."""
    return [hold_json(h) for h in holds]
