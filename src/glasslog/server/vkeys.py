"""The log's key history over HTTP: ``GET /v1/vkeys`` (public) and rotation for admins.

A verifier that pins one key of the log (out of band) needs every key the log has
signed with to check old and new checkpoints alike: ``GET /v1/vkeys`` answers the
history (:meth:`glasslog.ledger.vkeys.VkeyHistory.to_json`), each era with the
rotation statement both keys signed. It is public, as ``/v1/vkey`` and
``/checkpoint`` are: it holds public keys and signatures only, and monitors need it
without an account.

``POST /v1/vkeys/rotate`` and ``POST /v1/vkeys/revoke`` need a principal with
``admin``. They do what ``glasslog key rotate`` and ``key revoke`` do
(:mod:`glasslog.signing`), under the data directory's writer lock, so the server's
own writer waits meanwhile and signs with the new key from its next checkpoint on;
their ``key.rotate`` and ``key.revoke`` events go through the server's single writer
with the caller as actor. On PostgreSQL the history lives in ``meta``, which only the
schema owner may write: the server must then run with the owner's DSN to rotate.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

from glasslog.access.enforce import Principal
from glasslog.errors import ConflictError, GlasslogError, InputError, NoteError
from glasslog.identity import vkey_history
from glasslog.server import problems
from glasslog.server.problems import Problem
from glasslog.server.service import Service
from glasslog.signing import revoke_event, revoke_key, rotate_event, rotate_key, size_at
from glasslog.store import open_store

__all__ = ["router"]

JSON: Final = "application/json"

_HISTORY: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The key history: the log's origin and its keys, oldest first",
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "required": ["origin", "keys"],
                    "properties": {
                        "origin": {"type": "string"},
                        "keys": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    }
}


RECORDED_WITHIN: Final = 60.0
"""Seconds to wait for the writer to store a ``key.*`` lifecycle event."""


class RevokeRequest(BaseModel):
    vkey: str = Field(description="The old verifier key to revoke.")
    after_size: int | None = Field(
        default=None, ge=0, description="Refuse its checkpoints above this tree size."
    )
    from_time: str | None = Field(
        default=None,
        alias="from",
        description="Or: refuse its checkpoints of trees larger than the log had at this "
        "RFC 3339 time (the events received by then).",
    )
    reason: str = Field(min_length=1, description="Why (recorded in the ledger).")


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: RFC 9457 problem details."""
    return {
        code: {
            "description": problems.TITLES.get(code, "Error"),
            "content": {problems.PROBLEM: {"schema": {"type": "object"}}},
        }
        for code in codes
    }


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type=JSON)


def _admin(caller: Principal, what: str) -> None:
    if not any(role.may("admin") for role in caller.roles):
        raise Problem(403, f"{caller.name} may not {what}: it needs a role with admin")


def _actor(caller: Principal) -> dict[str, str]:
    return {"id": caller.id, "name": caller.name, "type": caller.kind}


def _record(service: Service, event: dict[str, Any]) -> None:
    """Append ``event`` through the server's writer and wait until it is stored."""
    receipts = service.write([event]).result(timeout=RECORDED_WITHIN)
    refused = [r for r in receipts if not r.ok]
    if refused:
        raise GlasslogError(f"the key event was refused: {'; '.join(refused[0].problems)}")


def router(service: Service, principal: Callable[..., Principal]) -> APIRouter:
    """The key-history routes over ``service``; ``principal`` is the app's caller dependency."""
    routes = APIRouter()

    @routes.get(
        "/v1/vkeys",
        summary="The log's key history (public)",
        description="Every verifier key the log has signed checkpoints with, the tree "
        "sizes each may sign, the rotation statements (signed by both keys) and any "
        "revocation. Verifiers check a checkpoint with the key whose era covers its size.",
        responses=_HISTORY,
    )
    def vkeys() -> Response:
        with service.writer.reading():
            history = vkey_history(service.log().store)
        return _json(history.to_json())

    who = Depends(principal)  # a default, not Annotated: as in server/tiles.py

    def rotate(caller: Principal) -> dict[str, Any]:
        store = open_store(service.spec)
        try:
            rotation = rotate_key(service.datadir, store)
        finally:
            store.close()
        _record(service, rotate_event(rotation, _actor(caller)))
        return rotation.to_json()

    def revoke(caller: Principal, body: RevokeRequest) -> dict[str, Any]:
        store = open_store(service.spec)
        try:
            size = (
                body.after_size
                if body.after_size is not None
                else size_at(store, str(body.from_time))
            )
            revocation = revoke_key(service.datadir, store, body.vkey, after_size=size)
        finally:
            store.close()
        _record(service, revoke_event(revocation, _actor(caller), body.reason))
        return revocation.to_json()

    @routes.post(
        "/v1/vkeys/rotate",
        summary="Rotate the log's signing key (admin)",
        description="Hands the log to a new signing key from the current tree size on, as "
        "`glasslog key rotate` does; answers {previous, vkey, at_size, archived, keys}.",
        tags=["lifecycle"],
        responses=_problems(400, 401, 403, 409, 429, 503),
    )
    async def vkeys_rotate(caller: Principal = who) -> Response:
        _admin(caller, "rotate the log's signing key")
        try:
            return _json(await asyncio.to_thread(rotate, caller))
        except (NoteError, ConflictError) as exc:
            raise Problem(409, str(exc)) from None

    @routes.post(
        "/v1/vkeys/revoke",
        summary="Revoke an old signing key (admin)",
        description="Refuses the old key's checkpoints above a tree size (after_size, or "
        "the size at the time `from`), signed by the current key, as `glasslog key revoke` "
        "does; answers {vkey, revoked_after, revoked_at}.",
        tags=["lifecycle"],
        responses=_problems(400, 401, 403, 409, 422, 429, 503),
    )
    async def vkeys_revoke(body: RevokeRequest, caller: Principal = who) -> Response:
        _admin(caller, "revoke a signing key")
        if (body.after_size is None) == (body.from_time is None):
            raise Problem(400, 'give exactly one of "after_size" and "from"')
        try:
            return _json(await asyncio.to_thread(revoke, caller, body))
        except InputError as exc:
            raise Problem(400, str(exc)) from None
        except (NoteError, ConflictError) as exc:
            raise Problem(409, str(exc)) from None

    return routes
