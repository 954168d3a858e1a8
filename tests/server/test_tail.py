"""The live tail over real sockets (issue 11 §1, §5): scope and masking, resume with
Last-Event-ID with no gap and no repeat, heartbeats, and a stalled client that is
dropped without slowing anyone else."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from glasslog.log import Log
from tests.conftest import make_event
from tests.server.conftest import Site, live


def _post(url: str, site: Site, events: list[dict[str, Any]]) -> None:
    answer = httpx.post(f"{url}/v1/events", json={"events": events}, headers=site.auth("writer"),
                        timeout=30)  # fmt: skip
    assert answer.status_code == 200 and not answer.json()["rejected"], answer.text


def _frames(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """SSE frames as {"id", "event", "data", "comment"}, parsed from the stream's lines."""
    frame: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            frame["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            frame[name] = value.removeprefix(" ")


class Tail:
    """A tail read on a thread, its frames queued, so a test can wait with a timeout."""

    def __init__(self, url: str, site: Site, role: str, *, query: str = "",
                 last: str | None = None) -> None:  # fmt: skip
        headers = site.auth(role)
        if last is not None:
            headers["Last-Event-ID"] = last
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.last: str | None = None
        """The newest id seen: what a browser would send as Last-Event-ID."""
        self._client = httpx.Client(timeout=None)
        self._response = self._client.send(
            self._client.build_request("GET", f"{url}/v1/tail", params={"q": query},
                                       headers=headers), stream=True,
        )  # fmt: skip
        assert self._response.status_code == 200, self._response.read()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in _frames(self._response.iter_lines()):
                if "id" in frame:
                    self.last = frame["id"]
                self.frames.put(frame)
        except httpx.HTTPError:
            pass

    def events(self, n: int, within: float = 20) -> list[dict[str, Any]]:
        """The next ``n`` events (frames with data), skipping comments and bare ids."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + within
        while len(got) < n:
            frame = self.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            if "data" in frame and "event" not in frame:
                got.append({"seq": int(frame["id"]), **json.loads(frame["data"])})
        return got

    def close(self) -> None:
        self._response.close()
        self._client.close()


def test_a_tail_shows_only_the_scope_masked(site: Site) -> None:
    with live(site) as url:
        tail = Tail(url, site, "dev")
        mine = make_event(service="payments")
        _post(url, site, [make_event(service="billing-eu"), mine, make_event(service="billing-us")])
        (got,) = tail.events(1)
        assert got["id"] == mine["id"]
        assert set(got["actor"]["email"]) == {"$commit"} and "ip" not in got.get("source", {})
        with Log.open(site.data, store=site.store) as log:
            assert got["seq"] == log.find(mine["id"]).seq
        narrow = Tail(url, site, "dev", query="action:refund")
        _post(url, site, [make_event(action="db.query"), make_event(action="refund")])
        (refund,) = narrow.events(1)
        assert refund["action"] == "refund"
        tail.close()
        narrow.close()
        refused = httpx.get(f"{url}/v1/tail", headers=site.auth("auditor"), timeout=10)
        assert refused.status_code == 403, "auditor has no tail permission"
        assert httpx.get(f"{url}/v1/tail", timeout=10).status_code == 401
    with Log.open(site.data, store=site.store) as log:
        opened = log.search("action:audit.read metadata.operation:tail", limit=10).events
    assert len(opened) == 3 and {e["outcome"] for e in opened} == {"success", "denied"}


def test_streams_sharing_a_step_each_see_their_own_view(site: Site) -> None:
    """The hub parses each event once for every stream (tail.TailHub.step): masking for
    one role must not change what another role reads from the same parsed events, in
    whichever order their steps run."""
    with live(site) as url:
        tails = [Tail(url, site, role) for role in ("dev", "admin", "dev", "admin")]
        for round_ in range(3):
            sent = [make_event(service="payments", metadata={"round": round_}) for _ in range(20)]
            _post(url, site, sent)
            emails = [e["actor"]["email"] for e in sent]
            for tail, role in zip(tails, ("dev", "admin", "dev", "admin"), strict=True):
                got = tail.events(len(sent))
                assert [e["id"] for e in got] == [e["id"] for e in sent]
                if role == "admin":
                    assert [e["actor"]["email"] for e in got] == emails
                    assert all("ip" in e["source"] for e in got)
                else:
                    assert all(set(e["actor"]["email"]) == {"$commit"} for e in got)
                    assert all("ip" not in e.get("source", {}) for e in got)
        for tail in tails:
            tail.close()


def test_resume_with_last_event_id_has_no_gap_and_no_repeat(site: Site) -> None:
    with live(site) as url:
        tail = Tail(url, site, "dev")
        first = [make_event() for _ in range(5)]
        _post(url, site, first)
        seen = tail.events(5)
        last = tail.last
        tail.close()
        assert last is not None and int(last) >= seen[-1]["seq"]
        missed = [make_event() for _ in range(7)] + [make_event(service="billing-eu")]
        _post(url, site, missed[:4])
        _post(url, site, missed[4:])
        resumed = Tail(url, site, "dev", last=last)
        again = resumed.events(7)
        assert [e["id"] for e in again] == [e["id"] for e in missed[:7]]
        assert not {e["id"] for e in again} & {e["id"] for e in seen}
        resumed.close()
        bad = httpx.get(f"{url}/v1/tail", headers={**site.auth("dev"), "Last-Event-ID": "x"},
                        timeout=10)  # fmt: skip
        assert bad.status_code == 400


def test_an_idle_tail_gets_heartbeats_and_ends_at_shutdown(sqlite_site: Site) -> None:
    site = sqlite_site
    with live(site, tail_heartbeat=0.3) as url:
        tail = Tail(url, site, "dev")
        time.sleep(1.2)
        comments = [f for f in list(tail.frames.queue) if f.get("comment") == "heartbeat"]
        assert len(comments) >= 2
    deadline = time.monotonic() + 10
    frames: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not any(f.get("event") == "shutdown" for f in frames):
        try:
            frames.append(tail.frames.get(timeout=0.5))
        except queue.Empty:
            continue
    assert any(f.get("event") == "shutdown" for f in frames)


def test_a_stalled_client_is_dropped_and_others_keep_up(sqlite_site: Site) -> None:
    """A client that stops reading fills its socket, is dropped after tail_stall, and a
    reader beside it receives every event in time all along."""
    site = sqlite_site
    padding = "x" * 3000
    with live(site, tail_stall=1.0) as url:
        stalled = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        request = (f"GET /v1/tail HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                   f"{site.keys['dev']}\r\n\r\n")  # fmt: skip
        stalled.sendall(request.encode())
        stalled.recv(100)  # the stream began; from here on it is not read
        healthy = Tail(url, site, "dev")
        sent = 0
        for _ in range(10):
            batch = [make_event(metadata={"pad": padding, "n": sent + i}) for i in range(500)]
            _post(url, site, batch)
            sent += len(batch)
            got = healthy.events(len(batch), within=30)
            assert [e["metadata"]["n"] for e in got] == list(range(sent - len(batch), sent))
        stalled.setblocking(False)
        time.sleep(1.5)
        received = bytearray()
        deadline = time.monotonic() + 30
        stalled.setblocking(True)
        stalled.settimeout(5)
        while b"event: dropped" not in received and time.monotonic() < deadline:
            try:
                chunk = stalled.recv(1 << 20)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        stalled.close()
        healthy.close()
    assert b"event: dropped" in received, "the stalled client was told it was dropped"
    assert len(received) < sent * len(padding), "it did not get the whole stream"
