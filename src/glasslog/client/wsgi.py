"""Audit middleware for WSGI applications (PEP 3333: Flask, Django).

The same behaviour as :mod:`glasslog.client.asgi`, over WSGI: around every request
it sets the glasslog context, echoes the request id in the response, and for the
chosen methods and routes logs one ``http.request`` event once the response body has
been sent and closed.

A WSGI response is produced lazily: the server iterates the body after the
application returned. So the context is not a ``with`` block around the call (it
would be gone by the time a streaming body runs) but a copied ``contextvars``
context in which the call, every step of the body and its ``close()`` run.
"""

from __future__ import annotations

import contextvars
import inspect
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from glasslog.client import context
from glasslog.client._http import (
    DEFAULT_METHODS,
    Actor,
    AuditLogger,
    Policy,
    client_address,
    request_ids,
)

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["AuditMiddleware"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


class AuditMiddleware:
    """``app.wsgi_app = AuditMiddleware(app.wsgi_app, actor=...)`` (Flask), or
    ``application = AuditMiddleware(get_wsgi_application(), ...)`` (Django).

    ``actor`` is called with the WSGI environ before the application runs, and once
    more after the response when it found nobody then (the application may set
    ``REMOTE_USER`` or its own key in the environ). ``client`` defaults to the
    process-wide client of ``glasslog.client.configure``, looked up per request.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        client: AuditLogger | None = None,
        actor: Callable[[WSGIEnvironment], Actor] | None = None,
        trusted_proxies: Sequence[str] = (),
        methods: Collection[str] = DEFAULT_METHODS,
        routes: Collection[str] | None = None,
        header: str = "X-Request-ID",
    ) -> None:
        if client is not None and inspect.iscoroutinefunction(client.log):
            raise TypeError(
                "the WSGI middleware needs a glasslog.client.Client, not an AsyncClient: "
                "WSGI code is synchronous and cannot await the event"
            )
        self.app = app
        self.policy = Policy(
            client=client,
            actor=actor,
            trusted_proxies=trusted_proxies,
            methods=methods,
            routes=routes,
            header=header,
        )
        self._environ_key = "HTTP_" + header.upper().replace("-", "_")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        policy = self.policy
        ids = request_ids(environ.get(self._environ_key), environ.get("HTTP_TRACEPARENT"))
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        address = client_address(
            environ.get("REMOTE_ADDR"), [forwarded] if forwarded else [], policy.trusted
        )
        source = policy.source(address, environ.get("HTTP_USER_AGENT"))
        actor = policy.actor(environ) if policy.actor is not None else None
        request = _Request(
            policy=policy,
            environ=environ,
            actor=actor,
            scope=context(
                request_id=ids.request_id,
                trace_id=ids.trace_id,
                span_id=ids.span_id,
                actor=actor,
                source=source or None,
            ),
            context=contextvars.copy_context(),
        )
        header = self.policy.header
        lowered = header.lower()

        def start_with_id(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            request.status = int(status.split(" ", 1)[0])
            headers[:] = [(n, v) for n, v in headers if n.lower() != lowered]
            headers.append((header, ids.request_id))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        request.context.run(request.scope.__enter__)
        try:
            body = request.context.run(self.app, environ, start_with_id)
        except BaseException as exc:
            request.finish(exc)
            raise
        return _Body(body, request)


class _Request:
    """One request in flight: its context, and what the event needs at the end."""

    def __init__(
        self,
        *,
        policy: Policy,
        environ: WSGIEnvironment,
        actor: Actor,
        scope: context,
        context: contextvars.Context,
    ) -> None:
        self.policy = policy
        self.environ = environ
        self.actor = actor
        self.scope = scope
        self.context = context
        self.status = 500  # what the server answers when the application sends nothing
        self.start = time.perf_counter()
        self.finished = False

    def finish(self, error: BaseException | None) -> None:
        """Log the event (once) and leave the request's context."""
        if self.finished:
            return
        self.finished = True
        self.context.run(self._finish, error)

    def _finish(self, error: BaseException | None) -> None:
        try:
            policy, environ = self.policy, self.environ
            method = environ.get("REQUEST_METHOD", "GET")
            path = _path(environ)
            if policy.chosen(method, path):
                actor = self.actor
                if actor is None and policy.actor is not None:
                    actor = policy.actor(environ)
                policy.record(
                    policy.event(
                        method=method,
                        path=path,
                        status=self.status,
                        duration=time.perf_counter() - self.start,
                        actor=actor,
                        error=error,
                    )
                )
        finally:
            self.scope.__exit__(None, None, None)


class _Body:
    """The application's response body, run inside the request's context; the event
    is logged when the server closes it (PEP 3333 requires servers to call close)."""

    def __init__(self, body: Iterable[bytes], request: _Request) -> None:
        self._body = body
        self._request = request
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        request = self._request
        if self._iterator is None:
            self._iterator = request.context.run(iter, self._body)
        try:
            return request.context.run(next, self._iterator)
        except StopIteration:
            raise
        except BaseException as exc:
            request.finish(exc)
            raise

    def close(self) -> None:
        request = self._request
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                request.context.run(close)
        except BaseException as exc:
            request.finish(exc)
            raise
        request.finish(None)


def _path(environ: WSGIEnvironment) -> str:
    """The request's full path, decoded as UTF-8 (PEP 3333 hands it over as latin-1)."""
    raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        return raw.encode("latin-1").decode("utf-8") or "/"
    except UnicodeError:
        return raw or "/"
