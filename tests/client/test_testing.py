"""glasslog.testing: capture_events() and InMemoryClient, for users' own tests."""

from __future__ import annotations

import pytest

import glasslog
from glasslog.client import Client, audited
from glasslog.testing import InMemoryClient, capture_events


def test_capture_events_takes_what_any_client_would_send() -> None:
    """Events of a real Client, and of @audited code with no client configured, are
    captured as dicts and not sent."""

    @audited("invoice.refund")
    def refund() -> None:
        pass

    with capture_events() as events, glasslog.context(actor="alice"):
        with Client("http://127.0.0.1:9", "k", service="payments") as client:
            sent = client.log("invoice.view", target=("invoice", "1"))
            assert client.pending == 0
        refund()
    assert [e["action"] for e in events] == ["invoice.view", "invoice.refund"]
    assert events[0]["id"] == sent and events[0]["target"] == {"type": "invoice", "id": "1"}
    with pytest.raises(glasslog.client.ClientError):
        refund()  # outside the block, unconfigured again


def test_in_memory_client_keeps_events_as_sent() -> None:
    """InMemoryClient keeps JSON round-tripped events and refuses what could not be sent."""
    client = InMemoryClient(service="payments")
    client.log("a.b", actor="alice", when=(1, 2))
    assert client.events[0]["metadata"] == {"when": [1, 2]}
    with pytest.raises(TypeError, match="not JSON"):
        client.log("a.b", actor="alice", when=object())
    assert client.flush() is True
