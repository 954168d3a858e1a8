"""``POST /v1/exports``: a verifiable bundle of the events the caller may see.

The body is ``{"query": "...", "comment": "..."}`` (comment optional); the answer is
the bundle itself, ``application/gzip``, as ``glasslog export QUERY --key K`` writes
it (:mod:`glasslog.bundle`, docs/verify.md). The caller needs a role with ``export``
(or ``admin``): the events are scoped and masked by the roles that allow it, the read
is audited (operation ``export``), and the export is recorded as an ``export.create``
lifecycle event through the server's single writer, with the caller as its actor.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

from glasslog.access.enforce import Principal
from glasslog.bundle import MAX_COMMENT, export_event, principal_json, write_bundle
from glasslog.identity import vkey_history
from glasslog.server.problems import PROBLEM, TITLES, Problem
from glasslog.server.service import Service

__all__ = ["router"]

log = logging.getLogger("glasslog.server")

GZIP: Final = "application/gzip"
RECORDED_WITHIN: Final = 60.0
"""Seconds to wait for the writer to store the ``export.create`` event."""


class ExportRequest(BaseModel):
    query: str = Field(description="The events to export: a query of the query language.")
    comment: str = Field(
        default="", max_length=MAX_COMMENT, description="Free text for the manifest (not signed)."
    )


def router(service: Service, principal: Callable[..., Principal]) -> APIRouter:
    """The export route over ``service``; ``principal`` is the app's caller dependency."""
    exports = APIRouter()
    who = Depends(principal)

    @exports.post(
        "/v1/exports",
        summary="A verifiable bundle of the matching events the caller may see",
        description="As `glasslog export QUERY --key K`: each event as evidence with its "
        "inclusion proof to one signed checkpoint, the key history and a signed manifest "
        "(docs/verify.md). Needs a role with `export` (or `admin`); audited, and recorded "
        "as an `export.create` event.",
        response_class=Response,
        responses={
            200: {"content": {GZIP: {"schema": {"type": "string", "format": "binary"}}}},
            **_problems(400, 401, 403, 422, 429, 503),
        },
    )
    def export(request: ExportRequest, caller: Principal = who) -> Response:
        reader = service.reader(caller)
        manifest_who = principal_json(caller, {})
        # Not under writer.reading(): an export takes seconds, and ingest must go on
        # meanwhile. It reads a fixed prefix of the log (the checkpoint's tree) anyway.
        with tempfile.TemporaryDirectory(prefix="glasslog-export-") as scratch:
            written = write_bundle(
                Path(scratch) / "bundle.tar.gz",
                log=reader.log,
                reader=reader,
                query=request.query,
                principal=manifest_who,
                history=vkey_history(reader.log.store),
                signer=service.datadir.signer(),
                comment=request.comment,
            )
            body = written.path.read_bytes()
        event = export_event(written, query=request.query, who=manifest_who)
        receipts = service.write([event]).result(timeout=RECORDED_WITHIN)
        if not all(r.ok for r in receipts):
            log.error("the export.create event was refused: %s", receipts[0].problems)
            raise Problem(503, "the export could not be recorded in the ledger; retry it")
        return Response(
            body,
            media_type=GZIP,
            headers={
                "Content-Disposition": 'attachment; filename="bundle.tar.gz"',
                "Cache-Control": "no-store",
            },
        )

    return exports


def _problems(*codes: int) -> dict[int | str, dict[str, object]]:
    """The documented error answers: problem details (RFC 9457), for each of ``codes``."""
    return {
        code: {"content": {PROBLEM: {}}, "description": TITLES.get(code, "Error")} for code in codes
    }
