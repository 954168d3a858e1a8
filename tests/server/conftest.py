"""A real server over a real store: a data directory with a policy and one key per role.

``site`` builds the directory (on SQLite or on a scratch PostgreSQL database);
``site.client()`` runs the real app, lifespan included (the writer thread starts and
stops), through Starlette's TestClient. Tests that need a real process and real
signals start ``glasslog serve`` instead (test_process.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from glasslog.access.keys import make_key
from glasslog.datadir import DataDir
from glasslog.identity import initialise
from glasslog.server.app import create_app
from glasslog.server.run import TailingServer
from glasslog.server.service import Service, ServiceConfig
from glasslog.store import open_store
from tests.conftest import scratch_database

POLICY = """\
[roles.admin]
permissions = ["admin"]
services = ["*"]
actions = ["*"]

[roles.writer]
permissions = ["ingest"]
services = ["payments", "billing-*"]
actions = ["*"]

[roles.dev]
permissions = ["search", "get", "aggregate", "trace", "proof", "tail"]
services = ["payments"]
actions = ["*"]
mask = ["/actor/email"]
hide = ["/source/ip"]

[roles.auditor]
permissions = ["search", "aggregate"]
services = ["glasslog"]
actions = ["*"]

[roles.nothing]
permissions = ["search"]
services = []
actions = []
"""


@dataclass
class Site:
    """A data directory ready to serve."""

    data: Path
    store: str | None
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return DataDir(self.data).store_spec(self.store)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def config(self, **changes: Any) -> ServiceConfig:
        return ServiceConfig(data=self.data, store=self.store, **changes)

    @contextmanager
    def client(self, **changes: Any) -> Iterator[TestClient]:
        """The app over this site, started and, at the end, stopped gracefully."""
        service = Service(self.config(**changes))
        with TestClient(create_app(service), raise_server_exceptions=False) as client:
            yield client


def make_site(root: Path, store: str | None, policy: str = POLICY) -> Site:
    data = root / "data"
    initialise(data, store=store, origin="test.example/server")
    (data / "policy.toml").write_text(policy)
    site = Site(data=data, store=store)
    target = open_store(site.spec)
    try:
        for role in ("admin", "writer", "dev", "auditor", "nothing"):
            made = make_key(role=role, name=f"{role}-key", expires=None)
            target.add_api_key(made.stored)
            site.keys[role] = made.text
    finally:
        target.close()
    return site


@pytest.fixture(params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """A site on each backend in turn."""
    if request.param == "sqlite":
        yield make_site(tmp_path, None)
        return
    with scratch_database() as url:
        yield make_site(tmp_path, url)


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Site:
    return make_site(tmp_path, None)


def free_port() -> int:
    """A loopback port that was free a moment ago (a server started next will take it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def live(site: Site, **changes: Any) -> Iterator[str]:
    """The app on a real uvicorn server, on a free loopback port, in a thread: real
    sockets and real streaming, with the service settings a test needs."""
    service = Service(site.config(**changes))
    port = free_port()
    server = TailingServer(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning",
                       timeout_graceful_shutdown=5),
        service,
    )  # fmt: skip
    with running(server) as url:
        yield url


@contextmanager
def running(server: uvicorn.Server) -> Iterator[str]:
    """``server`` run in a thread until the block ends; its URL once it accepts."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{server.config.host}:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def signed_checkpoint(client: httpx.Client, size: int) -> str:
    """The checkpoint once a live server's writer has signed one covering ``size`` events
    (≤ 20 s: the machine may be busy; test_api's helper takes a TestClient, 10 s)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = client.get("/checkpoint")
        if answer.status_code == 200 and int(answer.text.splitlines()[1]) >= size:
            return str(answer.text)
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint covering {size} events within 20 s")
