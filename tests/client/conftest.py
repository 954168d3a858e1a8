"""Helpers for the client's tests: a glasslog server that can be stopped and started
again on the same port, and a fake server (httpx.MockTransport) for retry logic."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.processes import start
from tests.server import conftest as server
from tests.server.conftest import Site
from tests.server.test_process import _stored_ids

sqlite_site = server.sqlite_site
"""The fixture of tests/server/conftest.py: a fresh SQLite site with a key per role."""


class Server:
    """``glasslog serve`` on ``site`` as a subprocess, on a port kept across restarts."""

    def __init__(self, site: Site, port: int) -> None:
        self.site, self.port = site, port
        self.url = f"http://127.0.0.1:{port}"
        self.mark = uuid.uuid4().hex
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["serve", "--data", str(self.site.data), "--port", str(self.port)]
        self.process = start(*args, mark=self.mark, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("glasslog serve did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, as a deployment stops it, and wait for the exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def serving(site: Site, port: int) -> Iterator[Server]:
    server = Server(site, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def stored_ids(site: Site) -> list[str]:
    """The ids of every stored event of the service payments (duplicates would show twice)."""
    return _stored_ids(site, "service:payments")


Handler = Callable[[httpx.Request, list[dict[str, Any]]], httpx.Response]


class FakeServer:
    """An in-process stand-in for ``POST /v1/events`` whose answers a test scripts:
    ``answers`` are returned in turn (then 200s); every request is recorded."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[float, list[dict[str, Any]], httpx.Headers]] = []
        self.stored: dict[str, dict[str, Any]] = {}
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        if request.headers.get("content-encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        events = json.loads(body)["events"]
        self.requests.append((time.monotonic(), events, request.headers))
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            if answer.status_code != 200:
                return answer
        duplicates = sum(e["id"] in self.stored for e in events)
        for event in events:
            self.stored[event["id"]] = event
        return httpx.Response(200, json={"accepted": len(events) - duplicates,
                                         "duplicates": duplicates, "rejected": []})  # fmt: skip
