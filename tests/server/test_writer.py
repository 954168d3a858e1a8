"""The server's writer (issue 11 §2): a full queue answers 503 with Retry-After at once,
nothing is acknowledged before it is stored, and what was acknowledged is stored."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from glasslog.datadir import DataDir
from glasslog.log import Log
from glasslog.server import writer as writer_module
from tests.conftest import make_event
from tests.server.conftest import Site


def test_a_full_queue_answers_503_and_loses_nothing_acknowledged(sqlite_site: Site) -> None:
    site = sqlite_site
    first = [make_event() for _ in range(3)]
    answers: list[Any] = []
    with site.client(queue_capacity=5) as client:
        # Another writer holds the lock: the server's writer waits, and its queue fills.
        with DataDir(site.data).writer_lock():
            waiting = threading.Thread(target=lambda: answers.append(client.post(
                "/v1/events", json={"events": first}, headers=site.auth("writer"))))  # fmt: skip
            waiting.start()
            writer = client.app.state.service.writer  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while writer.depth < len(first) and time.monotonic() < deadline:
                time.sleep(0.01)
            more = {"events": [make_event() for _ in range(3)]}
            refused = client.post("/v1/events", json=more, headers=site.auth("writer"))
            assert refused is not None and refused.status_code == 503, refused
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert int(refused.headers["retry-after"]) >= 1
            assert "write queue is full" in refused.json()["detail"]
            assert not answers, "nothing is acknowledged while it is not stored"
        waiting.join(timeout=30)
        assert answers and answers[0].json()["accepted"] == 3
        total = client.get("/v1/count?q=service:payments", headers=site.auth("admin")).json()
    with Log.open(site.data) as log:
        stored = {e["id"] for e in log.search("service:payments", limit=100).events}
    assert {e["id"] for e in first} <= stored
    assert total["count"] == len(stored)


def test_the_writer_lets_reads_in_progress_finish_first(
    sqlite_site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction waits while a read is in progress, then writes; a read that does not
    end holds it up READS_FIRST seconds at most."""
    site = sqlite_site
    monkeypatch.setattr(writer_module, "READS_FIRST", 3.0)
    with site.client() as client:
        writer = client.app.state.service.writer  # type: ignore[attr-defined]
        answers: list[Any] = []

        def post() -> None:
            answers.append(client.post("/v1/events", json=make_event(),
                                       headers=site.auth("writer")))  # fmt: skip

        with writer.reading():
            posting = threading.Thread(target=post)
            posting.start()
            time.sleep(1.0)
            assert not answers, "the write waits for the read in progress"
        posting.join(timeout=30)
        assert answers and answers[0].json()["accepted"] == 1
        with writer.reading():  # never ends while the write is made
            started = time.monotonic()
            post()
            waited = time.monotonic() - started
        assert answers[1].json()["accepted"] == 1
        assert 2.5 < waited < 20, "the writer waited READS_FIRST, then wrote"
