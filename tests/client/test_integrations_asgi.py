"""glasslog.client.asgi.AuditMiddleware on a real FastAPI app: over a real uvicorn
server into a real glasslog server, and through Starlette's TestClient with
glasslog.testing's in-memory client for the finer cases."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from starlette.websockets import WebSocket

from glasslog.client import AsyncClient, Client, current_context
from glasslog.client.asgi import AuditMiddleware
from glasslog.log import Log
from glasslog.testing import InMemoryClient, capture_events
from tests.server.conftest import Site, free_port, live, running

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Boom(Exception):
    """What the app raises, to see it come out unchanged."""


def user_from_header(scope: MutableMapping[str, Any]) -> dict[str, Any] | None:
    """The test actor function: the X-User header, as an authentication layer would."""
    for name, value in scope["headers"]:
        if name == b"x-user":
            return {"id": value.decode(), "type": "user"}
    return None


def make_app(client: Client | InMemoryClient, **options: Any) -> tuple[FastAPI, dict[str, Any]]:
    """A FastAPI app that logs an event of its own in its views, wrapped in the
    middleware; the dict collects what the views saw."""
    seen: dict[str, Any] = {"started": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        seen["started"] = True
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/orders/{order_id}")
    def create(order_id: str) -> dict[str, Any]:
        seen["context"] = current_context()
        # The actor comes from the middleware's context; "anonymous" when it found none.
        actor = None if "actor" in seen["context"] else "anonymous"
        seen["event"] = client.log("order.create", actor=actor, target=("order", order_id))
        return {"id": order_id}

    @app.get("/orders/{order_id}")
    async def read(order_id: str) -> dict[str, Any]:
        return {"id": order_id}

    @app.delete("/orders/{order_id}")
    async def forbidden(order_id: str) -> dict[str, Any]:
        raise HTTPException(403, "not yours")

    @app.post("/boom")
    async def boom() -> None:
        seen["error"] = Boom("kaput")
        raise seen["error"]

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app.add_middleware(AuditMiddleware, client=client, actor=user_from_header, **options)
    return app, seen


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` on a real uvicorn server on a free loopback port, in a thread."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    with running(uvicorn.Server(config)) as url:
        yield url


def stored(site: Site, request_id: str) -> dict[str, dict[str, Any]]:
    """The events stored under ``request_id``, by action."""
    with Log.open(site.data) as log:
        return {event["action"]: event for event in log.trace(request_id)}


def test_events_of_a_request_arrive_at_a_real_glasslog_server(sqlite_site: Site) -> None:
    """Over real uvicorn servers, the request id is echoed, and both the view's event and
    the http.request event arrive at glasslog carrying it, the actor and the source."""
    site = sqlite_site
    with live(site) as url:
        client = Client(url, site.keys["writer"], service="payments")
        try:
            app, seen = make_app(client)
            with serve(app) as app_url:
                response = httpx.post(
                    f"{app_url}/orders/o-17?token=s3cret",
                    headers={"X-Request-ID": "req-real-1", "X-User": "alice",
                             "User-Agent": "shop/2.0", "Authorization": "Bearer hunter2"},
                )  # fmt: skip
            assert response.status_code == 200
            assert response.headers["x-request-id"] == "req-real-1"
            assert client.flush(timeout=30)
        finally:
            client.close()
        events = stored(site, "req-real-1")
    assert set(events) == {"order.create", "http.request"}
    view = events["order.create"]
    assert view["id"] == seen["event"]
    assert view["actor"]["id"] == "alice"
    assert view["source"] == {"ip": "127.0.0.1", "user_agent": "shop/2.0"}
    request = events["http.request"]
    assert request["actor"] == {"id": "alice", "type": "user"}
    assert request["target"] == {"type": "route", "id": "/orders/o-17"}
    assert request["outcome"] == "success"
    assert request["source"] == {"ip": "127.0.0.1", "user_agent": "shop/2.0"}
    assert request["metadata"]["method"] == "POST"
    assert request["metadata"]["status"] == 200
    assert request["metadata"]["duration_ms"] >= 0
    body = json.dumps(events)
    assert "s3cret" not in body and "hunter2" not in body


def app_with_memory(**options: Any) -> tuple[TestClient, InMemoryClient, dict[str, Any]]:
    peer = options.pop("peer", ("198.51.100.7", 4000))
    client = InMemoryClient(service="payments")
    app, seen = make_app(client, **options)
    return TestClient(app, client=peer), client, seen


def http_requests(client: InMemoryClient) -> list[dict[str, Any]]:
    return [event for event in client.events if event["action"] == "http.request"]


def test_request_id_is_echoed_and_carried_into_the_views_events() -> None:
    """An X-Request-ID is echoed and set as the context of the view's events."""
    web, client, seen = app_with_memory()
    response = web.post("/orders/o-1", headers={"X-Request-ID": "abc-123", "X-User": "bob"})
    assert response.headers["x-request-id"] == "abc-123"
    assert seen["context"]["request_id"] == "abc-123"
    assert seen["context"]["actor"] == {"id": "bob", "type": "user"}
    view = next(e for e in client.events if e["action"] == "order.create")
    assert view["context"]["request_id"] == "abc-123"
    assert view["actor"]["id"] == "bob"


def test_a_new_request_id_is_made_when_none_or_an_unsafe_one_is_sent() -> None:
    """Without an X-Request-ID, or with one that could inject headers, a new UUID is used."""
    web, client, _ = app_with_memory()
    fresh = web.post("/orders/o-1").headers["x-request-id"]
    unsafe = web.post("/orders/o-1", headers={"X-Request-ID": "a b"}).headers["x-request-id"]
    huge = web.post("/orders/o-1", headers={"X-Request-ID": "x" * 129}).headers["x-request-id"]
    assert all(UUID.fullmatch(rid) for rid in (fresh, unsafe, huge))
    assert len({fresh, unsafe, huge}) == 3
    assert [e["context"]["request_id"] for e in http_requests(client)] == [fresh, unsafe, huge]


def test_traceparent_gives_the_trace_and_span_ids_and_stands_in_for_the_request_id() -> None:
    """A W3C traceparent sets trace_id and span_id; its trace id is the request id when
    no X-Request-ID came, and a malformed traceparent is ignored."""
    web, client, seen = app_with_memory()
    header = f"00-{TRACE_ID}-{PARENT_ID}-01"
    response = web.post("/orders/o-1", headers={"traceparent": header})
    assert response.headers["x-request-id"] == TRACE_ID
    assert seen["context"]["trace_id"] == TRACE_ID
    assert seen["context"]["span_id"] == PARENT_ID
    both = web.post("/orders/o-2", headers={"traceparent": header, "X-Request-ID": "r-2"})
    assert both.headers["x-request-id"] == "r-2"
    assert seen["context"]["trace_id"] == TRACE_ID
    web.post("/orders/o-3", headers={"traceparent": f"00-{'0' * 32}-{PARENT_ID}-01"})
    assert "trace_id" not in seen["context"]
    first, second, third = http_requests(client)
    assert first["context"]["request_id"] == TRACE_ID
    assert (first["context"]["trace_id"], first["context"]["span_id"]) == (TRACE_ID, PARENT_ID)
    assert second["context"]["request_id"] == "r-2"
    assert "trace_id" not in third["context"]


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    """An attacker connecting directly cannot choose its recorded address by sending
    X-Forwarded-For, even when some proxies are trusted."""
    web, client, _ = app_with_memory(trusted_proxies=["10.0.0.0/8"])
    web.post("/orders/o-1", headers={"X-Forwarded-For": "10.0.0.1, 192.0.2.1"})
    (event,) = http_requests(client)
    assert event["source"]["ip"] == "198.51.100.7"


def test_a_trusted_proxy_s_x_forwarded_for_gives_the_client_address() -> None:
    """Behind trusted proxies, the right-most untrusted X-Forwarded-For entry is the
    client; entries left of it were written by the client and are ignored."""
    web, client, _ = app_with_memory(trusted_proxies=["10.0.0.0/8"], peer=("10.0.0.5", 4000))
    web.post("/orders/o-1", headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.7"})
    web.post("/orders/o-2", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.10"})
    web.post("/orders/o-3", headers={"X-Forwarded-For": "not-an-ip, 10.0.0.8"})
    addresses = [event["source"]["ip"] for event in http_requests(client)]
    assert addresses == ["203.0.113.9", "203.0.113.10", "10.0.0.8"]


def test_the_actor_function_names_the_actor_and_anonymous_stands_in_otherwise() -> None:
    """The actor function's answer is the actor of the http.request event; without one
    the event is recorded with the anonymous user."""
    web, client, _ = app_with_memory()
    web.post("/orders/o-1", headers={"X-User": "carol"})
    web.post("/orders/o-2")
    actors = [event["actor"] for event in http_requests(client)]
    assert actors == [{"id": "carol", "type": "user"}, {"id": "anonymous", "type": "user"}]


def test_only_the_chosen_methods_and_routes_are_logged() -> None:
    """GET is not logged by default; with routes, only matching paths are."""
    web, client, _ = app_with_memory()
    assert web.get("/orders/o-1").headers["x-request-id"]
    assert http_requests(client) == []
    web, client, _ = app_with_memory(methods=["GET"], routes=["/orders/*/x", "/orders"])
    web.get("/orders/o-1")
    web.get("/ordersx/o-1")
    web.post("/orders/o-1")
    assert [event["target"]["id"] for event in http_requests(client)] == ["/orders/o-1"]


def test_an_app_exception_is_re_raised_unchanged_and_recorded_as_a_failure() -> None:
    """The app's own exception object comes out of the middleware, and the event
    records the failure with the exception's type only."""
    web, client, seen = app_with_memory()
    with pytest.raises(Boom) as raised:
        web.post("/boom")
    assert raised.value is seen["error"]
    (event,) = http_requests(client)
    assert event["outcome"] == "failure"
    assert event["metadata"]["status"] == 500
    assert event["metadata"]["exception"] == f"{Boom.__module__}.Boom"
    assert "kaput" not in json.dumps(event)


def test_401_and_403_are_denied_and_other_errors_failures() -> None:
    """The outcome follows the status: 403 is a refusal, 404 a failure."""
    web, client, _ = app_with_memory(methods=["DELETE", "PUT"])
    assert web.delete("/orders/o-1").status_code == 403
    assert web.put("/orders/o-1").status_code == 405
    assert [e["outcome"] for e in http_requests(client)] == ["denied", "failure"]


def test_lifespan_and_websockets_pass_through_untouched() -> None:
    """Startup runs and a websocket echoes through the middleware, with no event."""
    web, client, seen = app_with_memory(methods=["GET", "POST"])
    with web:
        assert seen["started"]
        with web.websocket_connect("/ws") as socket:
            socket.send_text("ping")
            assert socket.receive_text() == "ping"
    assert client.events == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trusted_proxies": ["10.0.0.0/33"]}, "not an IP address or CIDR"),
        ({"trusted_proxies": "10.0.0.0/8"}, "list of CIDRs"),
        ({"methods": []}, "non-empty list"),
        ({"routes": ["admin"]}, "must start with '/'"),
        ({"header": "X Request"}, "not an HTTP header name"),
    ],
)
def test_bad_configuration_is_refused_at_construction(
    options: dict[str, Any], message: str
) -> None:
    """A misconfigured middleware fails when the app is built, not on a request."""
    with pytest.raises((ValueError, TypeError), match=message):
        AuditMiddleware(FastAPI(), **options)


def test_the_default_client_is_used_when_none_is_given() -> None:
    """Without client=, the http.request event goes to the process-wide client, looked
    up per request."""
    app = FastAPI()

    @app.put("/settings")
    async def update() -> dict[str, str]:
        return {}

    app.add_middleware(AuditMiddleware, actor=lambda scope: "ops")
    web = TestClient(app)
    with capture_events() as events:
        web.put("/settings", headers={"X-Request-ID": "d-1"})
    assert [(e["action"], e["actor"]["id"], e["context"]["request_id"]) for e in events] == [
        ("http.request", "ops", "d-1")
    ]


def test_an_async_client_s_log_is_awaited() -> None:
    """With an AsyncClient, the middleware awaits log(), so the event is not lost."""
    client = AsyncClient("http://127.0.0.1:9", "unused", service="payments")
    app = FastAPI()

    @app.post("/jobs")
    async def start() -> dict[str, str]:
        return {}

    app.add_middleware(AuditMiddleware, client=client, actor=lambda scope: "ops")
    try:
        with capture_events() as events:
            assert TestClient(app).post("/jobs").status_code == 200
    finally:
        client.sync.close(timeout=0)
    assert [(e["action"], e["actor"]["id"]) for e in events] == [("http.request", "ops")]


def test_a_failure_to_record_is_logged_and_the_response_still_goes_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the client refuses the http.request event, the response is unchanged and the
    error is logged on the glasslog.client logger."""
    web, client, _ = app_with_memory()
    with caplog.at_level(logging.ERROR, logger="glasslog.client"):
        response = web.delete("/orders/o-1", headers={"X-User": ""})  # an actor without id
    assert response.status_code == 403
    assert http_requests(client) == []
    (record,) = [r for r in caplog.records if r.name == "glasslog.client"]
    assert "could not record the http.request event for DELETE /orders/o-1" in record.message
    assert record.exc_info is not None
