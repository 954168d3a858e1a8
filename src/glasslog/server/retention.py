"""Retention and legal holds over HTTP, and the server's retention schedule.

``POST /v1/retention/run``, ``GET /v1/holds``, ``POST /v1/holds`` and
``POST /v1/holds/{id}/release`` need a principal with ``admin``: they change what the
log keeps. The work is :mod:`glasslog.lifecycle`'s, as for the CLI; the lifecycle
events (``retention.prune``, ``hold.add``, ``hold.release``) go through the server's
single writer, like every other event, with the caller as their actor.

The schedule (``schedule = "1h"`` in the policy's ``[retention]`` table) runs the same
retention in a background thread of the server while its writer runs. One run at a
time: a request arriving during one is answered 409.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from glasslog.access.enforce import Principal
from glasslog.errors import ConfigError, GlasslogError
from glasslog.lifecycle.holds import add_hold, hold_json, holds_json, list_holds, release_hold
from glasslog.lifecycle.retention import RunSummary, load_retention, run_retention
from glasslog.server.problems import Problem, documented
from glasslog.server.service import Service
from glasslog.store import open_store
from glasslog.store.base import Store

__all__ = ["RetentionRunner", "router"]

log = logging.getLogger("glasslog.server")

SIGNED_WITHIN: Final = 60.0
"""Seconds to wait for a signed checkpoint covering a lifecycle event before giving up."""


class RunRequest(BaseModel):
    dry_run: bool = False


class HoldRequest(BaseModel):
    query: str = Field(description="The events to hold: a query of the query language.")
    reason: str = Field(description="The matter the hold is for (recorded in the ledger).")


class ReleaseRequest(BaseModel):
    reason: str = ""


class RetentionRunner:
    """Runs retention and hold changes in the server, one at a time."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None

    def _record(self, store: Store) -> Callable[[list[dict[str, Any]]], list[int]]:
        """Append through the writer; wait for their receipts and a covering checkpoint."""

        def record(events: list[dict[str, Any]]) -> list[int]:
            receipts = self.service.write(list(events)).result(timeout=SIGNED_WITHIN)
            refused = [r for r in receipts if not r.ok]
            if refused:
                raise GlasslogError(
                    f"the lifecycle event was refused: {'; '.join(refused[0].problems)}"
                )
            seqs = [store.get_by_id(uuid.UUID(e["id"]).bytes).seq for e in events]
            deadline = time.monotonic() + SIGNED_WITHIN
            while True:
                latest = store.latest_checkpoint()
                if latest is not None and latest.size > max(seqs):
                    return seqs
                if time.monotonic() > deadline:
                    raise GlasslogError(
                        "no checkpoint covering the lifecycle event was signed within "
                        f"{SIGNED_WITHIN:.0f} s; nothing was pruned: try again"
                    )
                time.sleep(0.05)

        return record

    def _lock(self, store: Store) -> Callable[[], AbstractContextManager[object]]:
        @contextmanager
        def lock() -> Iterator[None]:
            with self.service.datadir.writer_lock(), store.lock_writer():
                yield

        return lock

    @contextmanager
    def _store(self) -> Iterator[Store]:
        store = open_store(self.service.spec)
        try:
            yield store
        finally:
            store.close()

    def run(self, actor: dict[str, str], *, dry_run: bool) -> RunSummary:
        """One retention run with the policy file's rules, as they are now."""
        rules = load_retention(self.service.policy_path)
        if rules is None:
            raise ConfigError(
                f"{self.service.policy_path} has no [retention] table, so nothing is ever "
                'pruned; add one such as [retention] default = "90d"'
            )
        if not self._busy.acquire(blocking=False):
            raise Problem(409, "a retention run is in progress; try again when it has ended")
        try:
            with self._store() as store:
                return run_retention(
                    store,
                    rules,
                    dry_run=dry_run,
                    actor=actor,
                    record=self._record(store),
                    lock=self._lock(store),
                )
        finally:
            self._busy.release()

    def hold(self, actor: dict[str, str], query: str, reason: str) -> dict[str, Any]:
        with self._store() as store:
            record = self._record(store)
            return hold_json(
                add_hold(store, query, reason, actor=actor, record=lambda e: record([e]))
            )

    def release(self, actor: dict[str, str], hold_id: str, reason: str) -> dict[str, Any]:
        with self._store() as store:
            record = self._record(store)
            released = release_hold(
                store, hold_id, actor=actor, reason=reason, record=lambda e: record([e])
            )
            return hold_json(released)

    def holds(self) -> list[dict[str, Any]]:
        with self._store() as store:
            return holds_json(list_holds(store))

    def schedule(self) -> None:
        """Start the schedule of the policy's ``[retention] schedule``, if it has one.

        A daemon thread that waits for the server's writer, then runs retention every
        period while the writer runs; a failed run is logged and tried next period.
        """
        try:
            rules = load_retention(self.service.policy_path)
        except ConfigError as exc:
            log.error("retention is not scheduled: %s", exc)
            return
        if rules is None or rules.schedule is None:
            return
        period = rules.schedule.total_seconds()
        self._thread = threading.Thread(
            target=self._every, args=(period,), name="glasslog-retention", daemon=True
        )
        self._thread.start()

    def _every(self, period: float) -> None:
        writer = self.service.writer
        while not writer.alive:
            time.sleep(0.5)
        actor = {"id": "glasslog:retention-schedule", "type": "service"}
        next_run = time.monotonic()
        while writer.alive:
            if time.monotonic() >= next_run:
                next_run = time.monotonic() + period
                try:
                    summary = self.run(actor, dry_run=False)
                    log.info("scheduled retention: %s", summary.summary())
                except (GlasslogError, Problem) as exc:
                    log.error("scheduled retention failed: %s", exc)
                except Exception:
                    log.exception("scheduled retention failed")
            time.sleep(0.5)


def _actor(caller: Principal) -> dict[str, str]:
    return {"id": caller.id, "name": caller.name, "type": caller.kind}


def _admin(caller: Principal, what: str) -> None:
    if not any(role.may("admin") for role in caller.roles):
        raise Problem(403, f"{caller.name} may not {what}: it needs a role with admin")


def router(service: Service, principal: Callable[..., Principal]) -> APIRouter:
    """The retention and hold routes over ``service``; starts the schedule if configured."""
    routes = APIRouter(tags=["lifecycle"])
    runner = RetentionRunner(service)
    runner.schedule()
    # A default, not Annotated (as in server/tiles.py): FastAPI would take the local
    # ``principal`` for a query parameter.
    who = Depends(principal)

    @routes.post(
        "/v1/retention/run",
        summary="Prune events past retention (admin)",
        responses=documented(400, 401, 403, 409, 422, 429, 503),
    )
    async def retention_run(body: RunRequest, caller: Principal = who) -> JSONResponse:
        """Run retention now with the policy's ``[retention]`` rules; ``dry_run`` only says
        what would be pruned. Answers the run's summary."""
        _admin(caller, "run retention")
        summary = await asyncio.to_thread(runner.run, _actor(caller), dry_run=body.dry_run)
        return JSONResponse(summary.to_json())

    @routes.get(
        "/v1/holds", summary="List legal holds (admin)", responses=documented(401, 403, 429)
    )
    async def holds(caller: Principal = who) -> JSONResponse:
        """Every legal hold, oldest first, with its release if released."""
        _admin(caller, "list legal holds")
        return JSONResponse({"holds": await asyncio.to_thread(runner.holds)})

    @routes.post(
        "/v1/holds",
        summary="Place a legal hold (admin)",
        status_code=201,
        responses=documented(400, 401, 403, 422, 429, 503),
    )
    async def hold_add(body: HoldRequest, caller: Principal = who) -> JSONResponse:
        """Hold the events matching ``query`` (recorded in the ledger as ``hold.add``)."""
        _admin(caller, "place legal holds")
        try:
            made = await asyncio.to_thread(runner.hold, _actor(caller), body.query, body.reason)
        except ValueError as exc:
            raise Problem(400, str(exc)) from None
        return JSONResponse(made, status_code=201)

    @routes.post(
        "/v1/holds/{hold_id}/release",
        summary="Release a legal hold (admin)",
        responses=documented(400, 401, 403, 404, 409, 422, 429, 503),
    )
    async def hold_release(
        hold_id: str, body: ReleaseRequest | None = None, caller: Principal = who
    ) -> JSONResponse:
        """Release the hold (recorded in the ledger as ``hold.release``)."""
        _admin(caller, "release legal holds")
        reason = body.reason if body is not None else ""
        try:
            released = await asyncio.to_thread(runner.release, _actor(caller), hold_id, reason)
        except ValueError as exc:
            raise Problem(409, str(exc)) from None
        return JSONResponse(released)

    return routes
