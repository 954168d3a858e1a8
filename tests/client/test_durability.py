"""Nothing is lost on the way (issue 12 §8): the server restarts while a client logs, and a
client process is killed with ``kill -9`` mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from glasslog.client import Client
from tests.client.conftest import Server, stored_ids
from tests.server.conftest import Site, free_port, live

EVENTS = 10_000


def test_a_server_restart_loses_nothing_and_stores_each_event_once(
    sqlite_site: Site, tmp_path: Path
) -> None:
    """10,000 events logged with a spool while ``glasslog serve`` is stopped (SIGTERM) and
    started again all arrive, each exactly once."""
    server = Server(sqlite_site, free_port())
    server.start()
    ids: list[str] = []
    restarted_at: list[int] = []

    def restart() -> None:
        while len(ids) < 2_000:
            time.sleep(0.01)
        server.stop()
        time.sleep(1.0)  # logging goes on against a server that is not there
        restarted_at.append(len(ids))
        server.start()

    restarter = threading.Thread(target=restart)
    restarter.start()
    try:
        with Client(server.url, sqlite_site.keys["writer"], service="payments",
                    spool=tmp_path / "spool", flush_interval=0.2) as client:  # fmt: skip
            for i in range(EVENTS):
                ids.append(client.log("invoice.refund", actor="alice", n=i))
            restarter.join(timeout=120)
            assert client.flush(timeout=300)
            assert client.rejected == 0 and client.dropped == 0
    finally:
        restarter.join(timeout=120)
        server.stop()
    assert restarted_at and restarted_at[0] < EVENTS, "the outage happened mid-stream"
    stored = stored_ids(sqlite_site)
    assert len(stored) == EVENTS
    assert set(stored) == set(ids)


CHILD = """
import os, sys
from glasslog.client import Client
client = Client(sys.argv[1], os.environ["GLASSLOG_TEST_KEY"], service="payments",
                spool=sys.argv[2], batch_size=200, flush_interval=0.5)
for i in range(1_000_000):
    print(client.log("invoice.refund", actor="alice", n=i), flush=True)
"""


def test_kill_9_of_the_client_then_a_new_client_delivers_the_rest_once(
    sqlite_site: Site, tmp_path: Path
) -> None:
    """A client process killed with kill -9 mid-stream: a new client on its spool delivers
    the rest; every event whose log() had returned is stored, each exactly once."""
    spool = tmp_path / "spool"
    with live(sqlite_site) as url:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(spool)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "GLASSLOG_TEST_KEY": sqlite_site.keys["writer"]},
        )  # fmt: skip
        assert child.stdout is not None
        returned: list[str] = []
        while len(returned) < 1_500:
            line = child.stdout.readline()
            assert line, "the client process ended early"
            returned.append(line.decode().strip())
        os.kill(child.pid, signal.SIGKILL)  # the PID alone, mid-stream
        child.wait(timeout=10)
        returned += [line.strip() for line in child.stdout.read().decode().splitlines()]
        returned = [r for r in returned if len(r) == 36]  # a line cut by the kill is not an id
        with Client(url, sqlite_site.keys["writer"], service="payments", spool=spool) as client:
            replayed = client.pending
            assert client.flush(timeout=120)
    stored = stored_ids(sqlite_site)
    assert replayed > 0, "the new client had events left to deliver"
    assert len(stored) == len(set(stored)), "each event once"
    assert not set(returned) - set(stored), "every event log() returned for is stored"
    assert len(set(stored) - set(returned)) <= 1, "at most the one being logged at the kill"
