"""Context through sync, threaded and async code, and OpenTelemetry's span ids."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import glasslog
from glasslog.client import current_context
from glasslog.testing import InMemoryClient


def test_blocks_nest_and_restore() -> None:
    """An inner block overrides and merges source; leaving it restores the outer values."""
    with glasslog.context(request_id="outer", actor="alice", source={"ip": "192.0.2.1"}):
        with glasslog.context(request_id="inner", source={"user_agent": "ua"}):
            inner = current_context()
        outer = current_context()
    assert inner == {"request_id": "inner", "actor": "alice",
                     "source": {"ip": "192.0.2.1", "user_agent": "ua"}}  # fmt: skip
    assert outer == {"request_id": "outer", "actor": "alice", "source": {"ip": "192.0.2.1"}}
    assert current_context() == {}


def test_asyncio_tasks_each_keep_their_own_context() -> None:
    """Concurrent tasks see their own request id, and the parent's actor."""
    client = InMemoryClient(service="payments")

    async def handle(request_id: str) -> None:
        with glasslog.context(request_id=request_id):
            await asyncio.sleep(0.01)
            client.log("a.b")

    async def main() -> None:
        with glasslog.context(actor="alice"):
            await asyncio.gather(*(handle(f"r{i}") for i in range(5)))

    asyncio.run(main())
    assert sorted(e["context"]["request_id"] for e in client.events) == [f"r{i}" for i in range(5)]
    assert {e["actor"]["id"] for e in client.events} == {"alice"}


def test_threads_see_the_context_only_when_it_is_copied() -> None:
    """A plain thread starts with an empty context; one run in copy_context() sees it."""
    seen: dict[str, dict[str, object]] = {}
    with glasslog.context(request_id="r1"):
        plain = threading.Thread(target=lambda: seen.__setitem__("plain", current_context()))
        copied_context = contextvars.copy_context()

        def look() -> None:
            seen["copied"] = current_context()

        copied = threading.Thread(target=copied_context.run, args=(look,))
        for thread in (plain, copied):
            thread.start()
            thread.join()
    assert seen == {"plain": {}, "copied": {"request_id": "r1"}}


def test_opentelemetry_span_ids_are_used() -> None:
    """With a real OpenTelemetry SDK span active, its trace and span ids fill the context,
    unless set explicitly."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    client = InMemoryClient(service="payments")
    with tracer.start_as_current_span("refund") as span:
        client.log("a.b", actor="alice")
        with glasslog.context(trace_id="explicit"):
            client.log("a.b", actor="alice")
        ids = span.get_span_context()
    client.log("a.b", actor="alice")  # no span active any more
    traced, explicit, outside = (e["context"] for e in client.events)
    assert traced["trace_id"] == f"{ids.trace_id:032x}" and len(traced["trace_id"]) == 32
    assert traced["span_id"] == f"{ids.span_id:016x}" and len(traced["span_id"]) == 16
    assert explicit["trace_id"] == "explicit" and explicit["span_id"] == traced["span_id"]
    assert "trace_id" not in outside
    assert trace.get_current_span().get_span_context().is_valid is False
