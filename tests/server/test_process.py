"""``glasslog serve`` as a real process (issue 11 §2, §5): SIGTERM stops it gracefully,
``kill -9`` of its PID mid-ingest loses nothing acknowledged, and the CLI writes to the
same SQLite store while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from glasslog.log import Log
from tests.conftest import make_event
from tests.processes import left_behind, start, still_running
from tests.server.conftest import Site, free_port
from tests.test_cli import run as glasslog


@contextmanager
def serving(site: Site, mark: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``glasslog serve`` on a free port until the block ends (then SIGKILL if still up)."""
    port = free_port()
    args = ["serve", "--data", str(site.data), "--port", str(port)]
    if site.store is not None:
        args += ["--store", site.store]
    process = start(*args, mark=mark, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _, err = process.communicate(timeout=5)
            raise AssertionError(f"the server did not start: {err.decode()[-2000:]}")
        time.sleep(0.05)
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def test_sigterm_writes_what_was_acknowledged_and_signs(site: Site) -> None:
    mark = uuid.uuid4().hex
    ids: list[str] = []
    with serving(site, mark) as (process, url):
        for _ in range(5):
            batch = [make_event() for _ in range(50)]
            answer = httpx.post(f"{url}/v1/events", json={"events": batch},
                                headers=site.auth("writer"), timeout=30)  # fmt: skip
            assert answer.json()["accepted"] == 50
            ids += [e["id"] for e in batch]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    with Log.open(site.data, store=site.store) as log:
        assert log.latest_checkpoint().size == log.store.size()
        stored = {e["id"] for e in log.search("service:payments", limit=1000).events}
    assert stored == set(ids)
    assert not still_running(left_behind(mark), within=5)


def _stored_ids(site: Site, query: str) -> list[str]:
    """The ids of every stored event matching ``query``, oldest first, page by page."""
    ids: list[str] = []
    cursor = None
    with Log.open(site.data, store=site.store) as log:
        while True:
            page = log.search(query, limit=1000, sort="time", cursor=cursor)
            ids += [e["id"] for e in page.events]
            cursor = page.cursor
            if cursor is None:
                return ids


def _client(url: str, site: Site, acked: list[str], stop: threading.Event) -> None:
    """Post batches until ``stop``; record the ids of every batch the server acknowledged."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            batch = [make_event() for _ in range(100)]
            try:
                answer = client.post(f"{url}/v1/events", json={"events": batch},
                                     headers=site.auth("writer"))  # fmt: skip
            except httpx.TransportError:
                continue  # the server died mid-request: not acknowledged, may or may not be stored
            if answer.status_code == 200 and answer.json()["accepted"] == len(batch):
                acked.extend(e["id"] for e in batch)


@pytest.mark.slow
def test_kill_9_of_the_server_mid_ingest_loses_nothing_acknowledged(site: Site) -> None:
    mark = uuid.uuid4().hex
    acked: list[str] = []
    stop = threading.Event()
    with serving(site, mark) as (process, url):
        clients = [threading.Thread(target=_client, args=(url, site, acked, stop))
                   for _ in range(3)]  # fmt: skip
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acked) < 1500 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)  # the PID alone, as the OOM killer does
        process.wait(timeout=10)
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
    assert len(acked) >= 1500
    assert not still_running(left_behind(mark), within=5), "no orphan survives the server"
    with serving(site, mark) as (_, url):  # a restart recovers and serves
        more = [make_event() for _ in range(10)]
        answer = httpx.post(f"{url}/v1/events", json={"events": more},
                            headers=site.auth("writer"), timeout=30)  # fmt: skip
        assert answer.json()["accepted"] == 10
        acked += [e["id"] for e in more]
    stored = _stored_ids(site, "service:payments")
    assert len(stored) == len(set(stored)), "every event once"
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events were lost"
    args = ["verify"] + (["--store", site.store] if site.store else [])
    verified = glasslog(*args, data=site.data)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_cli_writes_beside_a_running_server(sqlite_site: Site, tmp_path: Path) -> None:
    """On SQLite the server takes the writer lock per batch, so keys create, grant and
    ingest work while it runs and ingests, and the log stays one verified tree."""
    site = sqlite_site
    mark = uuid.uuid4().hex
    acked: list[str] = []
    stop = threading.Event()
    lines = tmp_path / "events.jsonl"
    batch = [make_event(service="billing-eu") for _ in range(2000)]
    lines.write_text("".join(json.dumps(e) + "\n" for e in batch))
    with serving(site, mark) as (_, url):
        client = threading.Thread(target=_client, args=(url, site, acked, stop))
        client.start()
        try:
            made = glasslog("keys", "create", "--role", "dev", "--json", data=site.data)
            assert made.returncode == 0, made.stderr
            ingested = glasslog("ingest", str(lines), data=site.data)
            assert ingested.returncode == 0, ingested.stderr
            key_id = json.loads(made.stdout)["id"]
            granted = glasslog("grant", "--principal", key_id, "--role", "auditor", "--for",
                               "1h", "--reason", "incident 7", data=site.data)  # fmt: skip
            assert granted.returncode == 0, granted.stderr
        finally:
            stop.set()
            client.join(timeout=30)
        key = json.loads(made.stdout)["key"]
        me = httpx.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert me.json()["roles"] == ["dev", "auditor"]
    assert acked
    with Log.open(site.data) as log:
        assert log.count("service:billing-eu").count == 2000
        assert log.count("service:payments").count == len(acked)
    verified = glasslog("verify", data=site.data)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert not [p for p in still_running(left_behind(mark), within=5) if p.pid != os.getpid()]
    assert psutil.pid_exists(os.getpid())
