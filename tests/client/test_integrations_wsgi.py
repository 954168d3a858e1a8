"""glasslog.client.wsgi.AuditMiddleware on a real Flask app and a real Django project:
over real WSGI servers into a real glasslog server, and through werkzeug's test
client with glasslog.testing's in-memory client for the finer cases."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import make_server as wsgiref_server

import httpx
import pytest
from flask import Flask, Response, abort, stream_with_context
from werkzeug.serving import make_server
from werkzeug.test import Client as WerkzeugClient

from glasslog.client import AsyncClient, Client, current_context
from glasslog.client.wsgi import AuditMiddleware
from glasslog.log import Log
from glasslog.testing import InMemoryClient
from tests.client import django_project
from tests.server.conftest import Site, live

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Boom(Exception):
    """What the app raises, to see it come out unchanged."""


def user_from_header(environ: dict[str, Any]) -> str | None:
    """The test actor function: the X-User header, as an authentication layer would."""
    user: str | None = environ.get("HTTP_X_USER")
    return user


def make_flask(client: Client | InMemoryClient, **options: Any) -> tuple[Flask, dict[str, Any]]:
    """A Flask app whose views log an event of their own, wrapped in the middleware;
    the dict collects what the views saw."""
    app = Flask(__name__)
    app.testing = True  # exceptions propagate out of Flask, as under a debugger
    seen: dict[str, Any] = {}

    @app.post("/orders/<order_id>")
    def create(order_id: str) -> dict[str, Any]:
        seen["context"] = current_context()
        # The actor comes from the middleware's context; "anonymous" when it found none.
        actor = None if "actor" in seen["context"] else "anonymous"
        seen["event"] = client.log("order.create", actor=actor, target=("order", order_id))
        return {"id": order_id}

    @app.get("/orders/<order_id>")
    def read(order_id: str) -> dict[str, Any]:
        return {"id": order_id}

    @app.delete("/orders/<order_id>")
    def forbidden(order_id: str) -> dict[str, Any]:
        abort(401)

    @app.post("/boom")
    def boom() -> dict[str, Any]:
        seen["error"] = Boom("kaput")
        raise seen["error"]

    @app.post("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            yield "a"
            seen["streaming"] = current_context()
            client.log("export.chunk", actor="exporter", target=("export", "e-1"))
            yield "b"

        return Response(stream_with_context(chunks()))

    app.wsgi_app = AuditMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, client=client, actor=user_from_header, **options
    )
    return app, seen


@contextmanager
def serve(app: Any, *, server: str = "werkzeug") -> Iterator[str]:
    """``app`` on a real WSGI server (werkzeug's or the stdlib's) on a free loopback
    port, in a thread."""
    if server == "werkzeug":
        # One request at a time, handled in the serving thread: shutdown() then returns
        # only once the request in flight (and its body's close) is done.
        running: Any = make_server("127.0.0.1", 0, app)
    else:

        class Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        running = wsgiref_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{running.server_port}"
    finally:
        running.shutdown()
        running.server_close()
        thread.join(timeout=30)


def stored(site: Site, request_id: str) -> dict[str, dict[str, Any]]:
    """The events stored under ``request_id``, by action."""
    with Log.open(site.data) as log:
        return {event["action"]: event for event in log.trace(request_id)}


def check_request_arrived(
    site: Site, app: Any, client: Client, seen: dict[str, Any], *, server: str
) -> None:
    """Serve ``app`` on a real server, make one request, and find its events in glasslog.

    The http.request event is logged when the server closes the response body, which
    may be just after the client has read the response: so the server is shut down
    (its request threads joined) before the client is flushed.
    """
    with serve(app, server=server) as url:
        response = httpx.post(
            f"{url}/orders/o-17?token=s3cret",
            headers={"X-Request-ID": "req-real-1", "X-User": "alice", "User-Agent": "shop/2.0",
                     "Cookie": "session=hunter2"},
        )  # fmt: skip
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-real-1"
    assert client.flush(timeout=30)
    events = stored(site, "req-real-1")
    assert set(events) == {"order.create", "http.request"}
    view = events["order.create"]
    assert view["id"] == seen["event"]
    assert view["actor"]["id"] == "alice"
    assert view["source"] == {"ip": "127.0.0.1", "user_agent": "shop/2.0"}
    request = events["http.request"]
    assert request["actor"]["id"] == "alice"
    assert request["target"] == {"type": "route", "id": "/orders/o-17"}
    assert request["outcome"] == "success"
    assert request["source"] == {"ip": "127.0.0.1", "user_agent": "shop/2.0"}
    assert request["metadata"]["method"] == "POST"
    assert request["metadata"]["status"] == 200
    body = json.dumps(events)
    assert "s3cret" not in body and "hunter2" not in body


def test_flask_events_arrive_at_a_real_glasslog_server(sqlite_site: Site) -> None:
    """Flask on werkzeug's real server: the request id is echoed, and the view's event
    and the http.request event arrive at glasslog with it, the actor and the source."""
    site = sqlite_site
    with live(site) as url:
        client = Client(url, site.keys["writer"], service="payments")
        try:
            app, seen = make_flask(client)
            check_request_arrived(site, app, client, seen, server="werkzeug")
        finally:
            client.close()


def test_django_events_arrive_at_a_real_glasslog_server(sqlite_site: Site) -> None:
    """Django's WSGI handler on the stdlib's real WSGI server: the same, for a Django view."""
    site = sqlite_site
    with live(site) as url:
        client = Client(url, site.keys["writer"], service="billing-api")
        django_project.CLIENT = client
        try:
            app = AuditMiddleware(django_project.application(), actor=user_from_header,
                                  client=client)  # fmt: skip
            check_request_arrived(site, app, client, django_project.SEEN, server="wsgiref")
        finally:
            django_project.CLIENT = None
            client.close()


def flask_with_memory(**options: Any) -> tuple[WerkzeugClient, InMemoryClient, dict[str, Any]]:
    client = InMemoryClient(service="payments")
    app, seen = make_flask(client, **options)
    return WerkzeugClient(app), client, seen


def post(web: WerkzeugClient, path: str, peer: str = "198.51.100.7", **headers: str) -> Any:
    """POST from ``peer``. Requests here are ``buffered``: only then does werkzeug's test
    client close the body, as every real server does, and the event is logged on close."""
    return web.post(path, headers=headers, environ_base={"REMOTE_ADDR": peer}, buffered=True)


def http_requests(client: InMemoryClient) -> list[dict[str, Any]]:
    return [event for event in client.events if event["action"] == "http.request"]


def test_request_id_is_echoed_and_carried_into_the_views_events() -> None:
    """An X-Request-ID is echoed and set as the context of the Flask view's events."""
    web, client, seen = flask_with_memory()
    response = post(web, "/orders/o-1", **{"X-Request-ID": "abc-123", "X-User": "bob"})
    assert response.headers["X-Request-ID"] == "abc-123"
    assert seen["context"]["request_id"] == "abc-123"
    assert seen["context"]["source"]["ip"] == "198.51.100.7"
    view = next(e for e in client.events if e["action"] == "order.create")
    assert view["context"]["request_id"] == "abc-123"
    assert view["actor"]["id"] == "bob"


def test_a_new_request_id_is_made_when_none_or_an_unsafe_one_is_sent() -> None:
    """Without an X-Request-ID, or with one that could inject headers, a new UUID is used."""
    web, client, _ = flask_with_memory()
    fresh = post(web, "/orders/o-1").headers["X-Request-ID"]
    unsafe = post(web, "/orders/o-1", **{"X-Request-ID": "a\tb"}).headers["X-Request-ID"]
    assert UUID.fullmatch(fresh) and UUID.fullmatch(unsafe) and fresh != unsafe
    assert [e["context"]["request_id"] for e in http_requests(client)] == [fresh, unsafe]


def test_traceparent_gives_the_trace_and_span_ids() -> None:
    """A W3C traceparent sets trace_id and span_id, and its trace id is the request id."""
    web, client, _ = flask_with_memory()
    response = post(web, "/orders/o-1", traceparent=f"00-{TRACE_ID}-{PARENT_ID}-01")
    assert response.headers["X-Request-ID"] == TRACE_ID
    view = next(e for e in client.events if e["action"] == "order.create")
    assert view["context"]["request_id"] == TRACE_ID
    assert (view["context"]["trace_id"], view["context"]["span_id"]) == (TRACE_ID, PARENT_ID)


def test_x_forwarded_for_is_trusted_only_from_a_trusted_proxy() -> None:
    """A direct client's X-Forwarded-For is ignored; a trusted proxy's gives the right-most
    untrusted address."""
    web, client, _ = flask_with_memory(trusted_proxies=["10.0.0.0/8", "::1/128"])
    spoof = {"X-Forwarded-For": "10.0.0.1, 192.0.2.1"}
    post(web, "/orders/o-1", **spoof)
    post(web, "/orders/o-2", peer="10.1.2.3", **{"X-Forwarded-For": "6.6.6.6, 203.0.113.9"})
    post(web, "/orders/o-3", peer="::1", **{"X-Forwarded-For": "2001:db8::7"})
    addresses = [event["source"]["ip"] for event in http_requests(client)]
    assert addresses == ["198.51.100.7", "203.0.113.9", "2001:db8::7"]


def test_non_chosen_methods_are_not_logged_but_get_a_request_id() -> None:
    """A GET gets its request id but no event; a chosen DELETE answered 401 is denied."""
    web, client, _ = flask_with_memory()
    response = web.get("/orders/o-1", buffered=True)
    assert UUID.fullmatch(response.headers["X-Request-ID"])
    assert http_requests(client) == []
    assert web.delete("/orders/o-1", buffered=True).status_code == 401
    (event,) = http_requests(client)
    assert event["outcome"] == "denied"
    assert event["actor"] == {"id": "anonymous", "type": "user"}


def test_an_app_exception_is_re_raised_unchanged_and_recorded_as_a_failure() -> None:
    """Flask's propagated exception object comes out of the middleware, and the event
    records the failure with the exception's type only."""
    web, client, seen = flask_with_memory()
    with pytest.raises(Boom) as raised:
        post(web, "/boom")
    assert raised.value is seen["error"]
    (event,) = http_requests(client)
    assert event["outcome"] == "failure"
    assert event["metadata"]["exception"] == f"{Boom.__module__}.Boom"
    assert "kaput" not in json.dumps(event)


def test_a_streamed_body_runs_in_the_request_context_and_is_logged_after_it() -> None:
    """Events logged while the body streams carry the request id, and the http.request
    event comes after the last chunk."""
    web, client, _ = flask_with_memory()
    response = post(web, "/stream", **{"X-Request-ID": "stream-1"})
    assert response.get_data() == b"ab"
    actions = [(e["action"], e["context"]["request_id"]) for e in client.events]
    assert actions == [("export.chunk", "stream-1"), ("http.request", "stream-1")]


def test_django_view_gets_the_context_and_a_failure_is_recorded() -> None:
    """Through Django's handler: the view sees the request id and actor, a GET is not
    logged, and a view that fails (Django answers 500) is recorded as a failure."""
    client = InMemoryClient(service="payments")
    django_project.CLIENT = client
    try:
        web = WerkzeugClient(
            AuditMiddleware(
                django_project.application(),
                client=client,
                actor=user_from_header,
                routes=["/orders", "/fail"],
            )
        )
        response = web.post(
            "/orders/o-9", headers={"X-Request-ID": "dj-1", "X-User": "dora"}, buffered=True
        )
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] == "dj-1"
        assert django_project.SEEN["context"]["request_id"] == "dj-1"
        assert django_project.SEEN["context"]["actor"] == "dora"
        assert web.get("/orders/o-9/show", buffered=True).status_code == 200
        assert web.post("/fail", buffered=True).status_code == 500
    finally:
        django_project.CLIENT = None
    requests = http_requests(client)
    assert [(e["target"]["id"], e["outcome"]) for e in requests] == [
        ("/orders/o-9", "success"),
        ("/fail", "failure"),
    ]
    assert requests[1]["metadata"]["status"] == 500


def test_an_async_client_is_refused_at_construction() -> None:
    """An AsyncClient's events could never be awaited under WSGI, so it is refused."""
    client = AsyncClient("http://127.0.0.1:9", "unused", service="payments")
    try:
        with pytest.raises(TypeError, match="not an AsyncClient"):
            AuditMiddleware(Flask(__name__).wsgi_app, client=client)
    finally:
        client.sync.close(timeout=0)
