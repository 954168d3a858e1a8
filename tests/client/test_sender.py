"""The sender's retries, against a scripted fake server (httpx.MockTransport)."""

from __future__ import annotations

import logging

import httpx
import pytest

from glasslog.client import Client
from tests.client.conftest import FakeServer

KEY = "gl_test_secret_key_0123456789"


def client(fake: FakeServer, **options: object) -> Client:
    return Client("http://audit.test", KEY, service="payments", transport=fake.transport,
                  flush_interval=0.05, **options)  # type: ignore[arg-type]  # fmt: skip


def test_503_is_retried_after_retry_after_and_stored_once() -> None:
    """A 503 with Retry-After is retried no sooner than asked, and the batch is then stored."""
    fake = FakeServer(httpx.Response(503, headers={"retry-after": "0.3"}))
    with client(fake) as c:
        ids = [c.log("invoice.refund", actor="alice") for _ in range(3)]
        assert c.flush(10)
    (first, events, _), (second, again, _) = fake.requests
    assert second - first >= 0.3
    assert [e["id"] for e in events] == [e["id"] for e in again] == ids
    assert set(fake.stored) == set(ids)


def test_network_errors_and_5xx_back_off_and_retry() -> None:
    """Connection errors and 500s are retried with growing pauses until the server answers."""
    fake = FakeServer(httpx.ConnectError("refused"), httpx.ConnectError("refused"),
                      httpx.Response(500), httpx.Response(429))  # fmt: skip
    with client(fake) as c:
        event_id = c.log("invoice.refund", actor="alice")
        assert c.flush(30)
    times = [t for t, _, _ in fake.requests]
    assert len(times) == 5
    assert list(fake.stored) == [event_id]


def test_rejected_events_are_counted_warned_and_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An event the server rejects is counted in ``rejected`` and logged without its content."""

    def answer(request: httpx.Request) -> httpx.Response:
        problem = "$.metadata.note: the value 'hunter2-secret' is bad"
        rejected = [{"index": 1, "errors": [problem]}]
        return httpx.Response(200, json={"accepted": 1, "duplicates": 0, "rejected": rejected})

    fake = FakeServer()
    fake.transport = httpx.MockTransport(lambda r: (fake.handle(r), answer(r))[1])
    with caplog.at_level(logging.WARNING, "glasslog.client"), client(fake) as c:
        c.log("a.b", actor="alice")
        bad = c.log("a.b", actor="alice", note="hunter2-secret")
        assert c.flush(10)
        assert c.rejected == 1
    assert len(fake.requests) == 1
    assert bad in caplog.text and "$.metadata.note" in caplog.text
    assert "hunter2" not in caplog.text


def test_a_refused_request_is_split_to_find_the_bad_event() -> None:
    """A 413 for the whole batch is split until the one refused event is isolated."""
    # the whole batch, then its halves: the first half passes, the second is split again
    fake = FakeServer(*(httpx.Response(s) for s in (413, 200, 413, 413)))
    with client(fake, batch_size=4) as c:
        ids = [c.log("a.b", actor="alice") for _ in range(4)]
        assert c.flush(10)
        assert c.rejected == 1
    assert set(fake.stored) == set(ids) - {ids[2]}


def test_large_batches_are_gzipped() -> None:
    """A body over the threshold goes gzip-encoded, and arrives intact."""
    fake = FakeServer()
    with client(fake, batch_size=200) as c:
        for i in range(200):
            c.log("a.b", actor="alice", text="x" * 200, n=i)
        assert c.flush(10)
    assert any(h.get("content-encoding") == "gzip" for _, _, h in fake.requests)
    assert len(fake.stored) == 200


def test_the_key_is_sent_but_never_shown(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is in the Authorization header only: not in repr, logs or errors."""
    monkeypatch.setattr("glasslog.client._sender.MAX_WAIT", 0.2)  # the pause after a 401
    fake = FakeServer(httpx.Response(401), httpx.ConnectError("down"))
    with caplog.at_level(logging.DEBUG), client(fake) as c:
        c.log("a.b", actor="alice")
        assert c.flush(20)
        shown = repr(c) + str(vars(c)) + str(vars(c._sender))
    assert fake.requests[0][2]["authorization"] == f"Bearer {KEY}"
    assert "refused the client's key (401" in caplog.text
    assert KEY not in caplog.text
    assert KEY not in shown
