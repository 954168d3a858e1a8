"""Client and AsyncClient against a real server (the app on uvicorn, tests/server/conftest.py)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import glasslog.client
from glasslog.client import AsyncClient, Client, ClientError
from glasslog.log import Log
from glasslog.testing import InMemoryClient
from tests.server.conftest import Site, live

HEAVY = ("glasslog.server", "glasslog.store", "glasslog.cli", "fastapi", "starlette", "uvicorn",
         "sqlite3", "psycopg", "cryptography", "opentelemetry")  # fmt: skip


def stored(site: Site, query: str = "service:payments") -> list[dict[str, Any]]:
    with Log.open(site.data, store=site.store) as log:
        return list(log.search(query, limit=1000, sort="time").events)


def test_import_is_light() -> None:
    """``import glasslog.client`` loads no server, store, database, web framework or OTel."""
    code = ("import glasslog.client, sys; "
            "print('\\n'.join(sys.modules))")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()  # fmt: skip
    heavy = [m for m in loaded if m in HEAVY or m.startswith(tuple(h + "." for h in HEAVY))]
    assert heavy == []
    assert "httpx" in loaded and "glasslog.client" in loaded


def test_events_reach_the_server_with_their_context(
    sqlite_site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logged events are stored with actor, target, source, metadata and the context's fields."""
    monkeypatch.setenv("GLASSLOG_VERSION", "1.4.2")
    with live(sqlite_site) as url, Client(url, sqlite_site.keys["writer"], service="payments",
                                          environment="prod", host="web-1") as client:  # fmt: skip
        with glasslog.client.context(request_id="req-1", actor={"id": "alice", "type": "user"},
                                     source={"ip": "192.0.2.7"}):  # fmt: skip
            first = client.log("invoice.refund", target=("invoice", "in_42"), category="billing",
                               source={"user_agent": "curl/8"}, metadata={"amount": 10},
                               currency="EUR", reason="duplicate charge")  # fmt: skip
        second = client.log("invoice.view", actor="bob", target="in_43", outcome="denied")
        assert client.flush(30)
    events = {e["id"]: e for e in stored(sqlite_site)}
    one, two = events[first], events[second]
    assert one["actor"] == {"id": "alice", "type": "user"}
    assert one["target"] == {"type": "invoice", "id": "in_42"}
    assert one["source"] == {"ip": "192.0.2.7", "user_agent": "curl/8"}
    assert one["metadata"] == {"amount": 10, "currency": "EUR"}
    assert one["context"] == {"request_id": "req-1", "version": "1.4.2", "host": "web-1",
                              **({"commit": one["context"]["commit"]}
                                 if "commit" in one["context"] else {})}  # fmt: skip
    assert one["environment"] == "prod" and one["category"] == "billing"
    assert one["reason"] == "duplicate charge"
    assert two["outcome"] == "denied" and two["target"] == {"id": "in_43"}
    assert two["actor"] == {"id": "bob"}
    assert "request_id" not in two["context"]


def test_log_without_an_actor_says_how_to_give_one() -> None:
    """log() with no actor and none in the context raises ValueError naming both ways."""
    with (
        Client("http://127.0.0.1:9", "k", service="payments") as client,
        pytest.raises(ValueError, match=r"no actor .*glasslog.context\(actor=...\)"),
    ):
        client.log("invoice.refund")


def test_the_version_defaults_to_the_git_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a checkout without GLASSLOG_VERSION, the version is the commit read from .git."""
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text("ab" * 20 + "\n")
    monkeypatch.chdir(tmp_path / ".git" / "refs")
    monkeypatch.delenv("GLASSLOG_VERSION", raising=False)
    from glasslog.client import _core

    _core._git_commit.cache_clear()
    try:
        client = InMemoryClient()
        client.log("a.b", actor="alice")
    finally:
        _core._git_commit.cache_clear()
    assert client.events[0]["context"]["version"] == "ab" * 20
    assert client.events[0]["context"]["commit"] == "ab" * 20


def test_async_client_sends_and_flushes(sqlite_site: Site) -> None:
    """AsyncClient logs from a coroutine, with a spool, and the events are stored."""

    async def main(url: str, spool: Path) -> list[str]:
        async with AsyncClient(url, sqlite_site.keys["writer"], service="payments",
                               spool=spool) as client:  # fmt: skip
            with glasslog.client.context(actor="carol"):
                ids = [await client.log("invoice.refund", target=str(i)) for i in range(5)]
            assert await client.flush(30)
            return ids

    with live(sqlite_site) as url:
        ids = asyncio.run(main(url, sqlite_site.data.parent / "spool"))
    assert {e["id"] for e in stored(sqlite_site)} == set(ids)


def test_a_key_without_ingest_for_the_service_is_rejected_and_counted(
    sqlite_site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Events of a service the key may not write are rejected, counted and warned, never retried."""
    key = sqlite_site.keys["writer"]
    with (
        caplog.at_level(logging.WARNING, "glasslog.client"),
        live(sqlite_site) as url,
        Client(url, key, service="inventory") as client,
    ):
        client.log("stock.move", actor="alice", secret_note="do-not-log-me")
        assert client.flush(30)
        assert client.rejected == 1
        shown = repr(client)
    assert "rejected event" in caplog.text
    assert "do-not-log-me" not in caplog.text
    assert key not in caplog.text and key not in shown


def test_default_client() -> None:
    """get_client() without configure() says how to configure; configure() sets it."""
    from glasslog.client import _core

    previous = _core._set_default(None)
    try:
        with pytest.raises(ClientError, match=r"configure\(url, key, service=...\)"):
            glasslog.client.get_client()
        client = glasslog.client.configure("http://127.0.0.1:9", "k", service="payments")
        assert glasslog.client.get_client() is client
        client.close(timeout=0.1)
    finally:
        _core._set_default(previous)
