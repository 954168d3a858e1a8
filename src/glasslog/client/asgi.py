"""Audit middleware for ASGI applications (Starlette, FastAPI): a plain ASGI callable.

Around every HTTP request it sets the glasslog context (request id, trace and span
ids, actor, source address and user agent), so that every event the application logs
while serving the request carries them; it echoes the request id in the response;
and for the chosen methods and routes it logs one ``http.request`` event once the
response has been sent. Lifespan and websocket scopes pass through untouched. The
decisions shared with the WSGI middleware live in :mod:`glasslog.client._http`;
docs/integrations.md explains them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping, Sequence
from typing import Any

from glasslog.client import context
from glasslog.client._http import (
    DEFAULT_METHODS,
    Actor,
    AuditLogger,
    Policy,
    client_address,
    request_ids,
)

__all__ = ["AuditMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AuditMiddleware:
    """``app.add_middleware(AuditMiddleware, actor=..., trusted_proxies=[...])``.

    ``actor`` is called with the ASGI scope before the application runs, and once more
    after it when it found nobody then (an authentication layer inside may have set
    ``scope["user"]`` meanwhile). ``client`` defaults to the process-wide client of
    ``glasslog.client.configure``, looked up per request.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: AuditLogger | None = None,
        actor: Callable[[Scope], Actor] | None = None,
        trusted_proxies: Sequence[str] = (),
        methods: Collection[str] = DEFAULT_METHODS,
        routes: Collection[str] | None = None,
        header: str = "X-Request-ID",
    ) -> None:
        self.app = app
        self.policy = Policy(
            client=client,
            actor=actor,
            trusted_proxies=trusted_proxies,
            methods=methods,
            routes=routes,
            header=header,
        )
        self._header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        headers: dict[bytes, list[str]] = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name.lower(), []).append(value.decode("latin-1"))
        ids = request_ids(
            _first(headers, self._header),
            _first(headers, b"traceparent"),
        )
        peer = scope.get("client")
        address = client_address(
            peer[0] if peer else None, headers.get(b"x-forwarded-for", []), policy.trusted
        )
        source = policy.source(address, _first(headers, b"user-agent"))
        actor = policy.actor(scope) if policy.actor is not None else None
        method: str = scope.get("method", "GET")
        path: str = scope.get("path", "/")
        echoed = ids.request_id.encode("latin-1")
        status = 500  # what the server answers when the application sends nothing

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                kept = [(n, v) for n, v in message.get("headers", ()) if n.lower() != self._header]
                message["headers"] = [*kept, (self._header, echoed)]
            await send(message)

        with context(
            request_id=ids.request_id,
            trace_id=ids.trace_id,
            span_id=ids.span_id,
            actor=actor,
            source=source or None,
        ):
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                await self.app(scope, receive, send_with_id)
            except BaseException as exc:
                error = exc
                raise
            finally:
                if policy.chosen(method, path):
                    if actor is None and policy.actor is not None:
                        actor = policy.actor(scope)
                    await policy.record_async(
                        policy.event(
                            method=method,
                            path=path,
                            status=status,
                            duration=time.perf_counter() - start,
                            actor=actor,
                            error=error,
                        )
                    )


def _first(headers: dict[bytes, list[str]], name: bytes) -> str | None:
    values = headers.get(name)
    return values[0] if values else None
