"""``POST /v1/erasures``: erase a data subject's personal fields (docs/erasure.md).

Admin only. The work is :func:`glasslog.lifecycle.erasure.erase_subject`'s; here the
``erasure.erase`` events go through the service's writer, as every event of the
server does, and the rows are rewritten under the same writer locks a CLI erasure
takes, so ingest goes on between batches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

from glasslog.access.enforce import Principal
from glasslog.errors import ConfigError, ConflictError, GlasslogError, StoreError
from glasslog.lifecycle.erasure import Lock, Record, erase_subject, load_personal_metadata
from glasslog.server.problems import PROBLEM
from glasslog.server.refusal import Problem
from glasslog.server.service import Service
from glasslog.store import open_store
from glasslog.store.base import Store

__all__ = ["router"]

JSON: Final = "application/json"

SIGNED_WITHIN: Final = 60.0
"""Seconds to wait for the writer to sign a checkpoint over the erasure.erase events."""


class ErasureRequest(BaseModel):
    """The body of ``POST /v1/erasures``."""

    subject: str = Field(description="The data subject, as actor.id=ID.", max_length=1024)
    reason: str = Field(
        description="The request it answers; recorded in the ledger.", max_length=4096
    )
    dry_run: bool = Field(default=False, description="Say what would be erased; change nothing.")


_PROBLEM_SCHEMA: Final = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}

_SUMMARY: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "What was erased (or, dry, would be): counts per field, and the seqs "
        "of the erasure.erase events that authorise it",
        "content": {JSON: {"schema": {"type": "object"}}},
    },
    **{
        code: {
            "description": words,
            "content": {PROBLEM: {"schema": _PROBLEM_SCHEMA}},
        }
        for code, words in (
            (400, "The subject is not actor.id=ID, or the reason is empty"),
            (401, "No valid credential"),
            (403, "The caller has no role with admin"),
            (409, "A legal hold covers one of the subject's events; nothing was erased"),
            (422, "The body is not {subject, reason, dry_run}"),
            (429, "Over the request rate"),
            (503, "The erasure events could not be written or signed in time; retry"),
        )
    },
}


def _recorder(service: Service, store: Store) -> Record:
    """Append through the service's writer; the seqs once a signed checkpoint covers them."""

    def record(events: list[dict[str, Any]]) -> list[int]:
        try:
            receipts = service.writer.submit(list(events), priority=True).result(
                timeout=SIGNED_WITHIN
            )
        except TimeoutError:
            raise GlasslogError(
                "the writer did not store the erasure events in time, so nothing was erased; "
                "retry the request"
            ) from None
        refused = [p for r in receipts for p in r.problems]
        if refused:
            raise GlasslogError(f"could not record the erasure in the ledger: {refused[0]}")
        seqs = [r.seq for r in receipts if r.seq is not None]
        deadline = time.monotonic() + SIGNED_WITHIN
        while True:
            latest = store.latest_checkpoint()
            if latest is not None and latest.size > max(seqs):
                return seqs
            if time.monotonic() > deadline:
                raise GlasslogError(
                    "the erasure.erase events were appended but not signed in time, so nothing "
                    "was erased; retry the request"
                )
            time.sleep(0.05)

    return record


def _locker(service: Service, store: Store) -> Lock:
    """The writer locks a batch takes: the data directory's, then the store's."""

    @contextmanager
    def lock() -> Iterator[None]:
        with service.datadir.writer_lock(), store.lock_writer():
            yield

    return lock


def router(service: Service, principal: Callable[..., Principal]) -> APIRouter:
    """The erasure route over ``service``; ``principal`` is the app's caller dependency."""
    routes = APIRouter()
    who = Depends(principal)

    @routes.post(
        "/v1/erasures",
        summary="Erase a data subject's personal fields (admin)",
        description="Deletes the values and salts of actor.name, actor.email, source.ip, "
        "source.user_agent and the policy's personal metadata keys in every event whose "
        "actor.id is the subject; leaves, tree and proofs stay valid, reads show "
        '{"$erased": time}. Refused (409) when a legal hold covers one of the events. '
        "Recorded first as signed erasure.erase events.",
        responses=_SUMMARY,
    )
    def erasures(request: ErasureRequest, caller: Principal = who) -> Response:
        if not any(role.may("admin") for role in caller.roles):
            raise Problem(403, f"{caller.name} may not erase: erasure needs a role with admin")
        actor = {"id": caller.id, "type": "user" if caller.kind == "user" else "service"}
        store = open_store(service.spec)
        try:
            summary = erase_subject(
                store,
                request.subject,
                reason=request.reason,
                actor=actor,
                record=_recorder(service, store),
                lock=_locker(service, store),
                personal_metadata=load_personal_metadata(service.policy_path),
                dry_run=request.dry_run,
            )
        except ConflictError as exc:
            raise Problem(409, str(exc)) from None
        except (ConfigError, StoreError):
            raise  # 400 and 503, by the app's problem handlers
        except GlasslogError as exc:  # the erasure events could not be written or signed
            raise Problem(503, str(exc), headers={"Retry-After": "5"}) from None
        finally:
            store.close()
        return Response(json.dumps(summary.to_json(), ensure_ascii=False), media_type=JSON)

    return routes
