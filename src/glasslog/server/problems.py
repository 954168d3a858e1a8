"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error a client can see comes from here, with a status code and words chosen for
it. Nothing else reaches the client: no exception text that was not written to be shown,
and never a traceback.

Authentication failures are one answer for every cause. A missing key, an unknown key,
a wrong secret, a revoked or expired key and a forged token all get the same 401, so
a guesser learns nothing. The real cause goes to the server's log, which the operator
reads.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from glasslog.access.enforce import AccessDenied
from glasslog.access.keys import AuthError
from glasslog.display import pointed
from glasslog.errors import ConfigError, NotFoundError, PrunedError, QueryError, StoreError
from glasslog.server.refusal import Problem
from glasslog.server.writer import QueueFull, WriterStopped

__all__ = ["PROBLEM", "Problem", "install", "problem_response"]

log = logging.getLogger("glasslog.server")

PROBLEM: Final = "application/problem+json"

TITLES: Final = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    410: "Gone",
    405: "Method not allowed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}

UNAUTHORIZED: Final = (
    "send Authorization: Bearer <API key or OIDC token> with a credential that is valid now"
)
"""The one 401 text: it does not say which part of a credential was wrong."""


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's documented error answers (its ``responses=``): problem details for each
    of ``codes``, so that the OpenAPI document names their content type."""
    return {
        code: {"content": {PROBLEM: {}}, "description": TITLES.get(code, "Error")} for code in codes
    }


def problem_response(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """The problem+json response for ``status``."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(extra or {})
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="glasslog"', **(headers or {})}
    return Response(
        json.dumps(body, ensure_ascii=False), status_code=status, headers=headers,
        media_type=PROBLEM,
    )  # fmt: skip


def _query_detail(exc: QueryError) -> str:
    if exc.query is None or exc.column is None:
        return exc.message
    return pointed(exc.message, exc.query, exc.column)


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(
            exc.status, exc.detail, instance=request.url.path, headers=exc.headers,
            extra=exc.extra,
        )  # fmt: skip

    @app.exception_handler(QueryError)
    async def _query(request: Request, exc: QueryError) -> Response:
        return problem_response(400, _query_detail(exc), instance=request.url.path)

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> Response:
        # Parameter problems the library words for its users (a bad cursor, a limit).
        return problem_response(400, str(exc), instance=request.url.path)

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> Response:
        log.info("refused a credential from %s: %s", _client(request), exc)
        return problem_response(401, UNAUTHORIZED, instance=request.url.path)

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> Response:
        # About the caller's own roles only (GET /v1/me shows them too).
        return problem_response(403, str(exc), instance=request.url.path)

    @app.exception_handler(PrunedError)
    async def _pruned(request: Request, exc: PrunedError) -> Response:
        # The event existed: its seq and leaf stay in the tree, its payload is gone.
        return problem_response(410, str(exc), instance=request.url.path)

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> Response:
        return problem_response(404, str(exc), instance=request.url.path)

    @app.exception_handler(QueueFull)
    async def _full(request: Request, exc: QueueFull) -> Response:
        return problem_response(
            503, str(exc), instance=request.url.path, headers={"Retry-After": "1"}
        )

    @app.exception_handler(WriterStopped)
    async def _stopped(request: Request, exc: WriterStopped) -> Response:
        return problem_response(
            503, str(exc), instance=request.url.path, headers={"Retry-After": "5"}
        )

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        reference = uuid.uuid4().hex[:12]
        log.error("store error (reference %s): %s", reference, exc)
        return problem_response(
            503,
            f"the store could not answer; retry shortly (reference {reference})",
            instance=request.url.path,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return problem_response(
            422, "; ".join(problems) or "invalid request", instance=request.url.path,
            extra={"errors": problems},
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            # Starlette names the methods of the first route on the path only; a path with
            # one route per method (GET and POST /v1/events) allows all of theirs.
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
        return problem_response(
            exc.status_code, detail, instance=request.url.path, headers=headers or None
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        reference = uuid.uuid4().hex[:12]
        log.exception("unexpected error (reference %s) on %s", reference, request.url.path)
        return problem_response(
            500,
            f"an unexpected error; the server's log has the details (reference {reference})",
            instance=request.url.path,
        )


def _flat_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, those of included routers too (FastAPI keeps an included router as
    one entry, whose ``original_router`` holds its routes; none is included with a prefix)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flat_routes(inner.routes)
        else:
            yield route


def _allowed_methods(request: Request) -> list[str]:
    """The methods of every route on the request's path."""
    methods: set[str] = set()
    for route in _flat_routes(request.app.router.routes):
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": next(iter(route.methods))})
            if match is Match.FULL:
                methods |= route.methods
    return sorted(methods)


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
