"""Several ``glasslog serve`` nodes on one PostgreSQL database: every node accepts writes,
the database's advisory lock lets one sequence at a time, and ``kill -9`` of one node
mid-ingest, then its restart, loses nothing acknowledged and repeats nothing."""

from __future__ import annotations

import base64
import itertools
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from glasslog.datadir import DataDir
from glasslog.ingest import pipeline
from glasslog.ingest.pipeline import Preparer, Receipt, Sequencer, Settings, submit
from glasslog.ledger import merkle
from glasslog.ledger.note import verify_checkpoint
from glasslog.ledger.tiles import TreeBuilder
from glasslog.log import Log
from glasslog.server.service import Service
from glasslog.store import open_store
from glasslog.store.base import Store, restore_tree
from tests.conftest import make_event, scratch_database
from tests.processes import left_behind, start, still_running
from tests.server.conftest import Site, free_port, make_site
from tests.test_cli import run as glasslog

NODES = 3
CLIENTS = 4
EVENTS = 25_000
"""Per client."""
BATCH = 500
"""Events per request."""
RETRYABLE = frozenset({429, 503})
DEADLINE = 300.0
"""Seconds a client may spend before the test gives up on it."""


@dataclass
class Node:
    """One ``glasslog serve`` process (the latest started on ``port``)."""

    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, site: Site, mark: str) -> None:
        """Start the server and wait until it answers /readyz."""
        assert site.store is not None
        self.starts += 1
        args = ["serve", "--data", str(site.data), "--store", site.store, "--port", str(self.port)]
        with self.log.open("ab") as err:
            err.write(f"--- start {self.starts}\n".encode())
            err.flush()
            self.process = start(*args, mark=mark, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"node {self.port} did not start:\n{self.tail()}")
            time.sleep(0.05)

    def last_run(self) -> str:
        """What the latest process started here wrote to stderr."""
        return self.log.read_text(errors="replace").rpartition(f"--- start {self.starts}\n")[2]

    def tail(self) -> str:
        """The end of this node's stderr, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    acked: list[str] = field(default_factory=list)
    batches: dict[str, int] = field(default_factory=dict)
    """Batches acknowledged, per node."""
    duplicates: int = 0
    """Events a node said were stored already: resent after a node died having stored them."""
    in_flight: dict[str, int] = field(default_factory=dict)
    """Requests sent and not yet answered, per node."""
    retries: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def retried(self, why: str) -> None:
        with self.lock:
            self.retries[why] = self.retries.get(why, 0) + 1


def _client(
    number: int, events: list[dict[str, Any]], urls: list[str], auth: dict[str, str], tally: Tally
) -> None:
    """Post ``events`` in batches, round-robin over the nodes; resend a batch that failed
    (same events, same ids) to the next node until one acknowledges it."""
    turn = number
    deadline = time.monotonic() + DEADLINE
    try:
        with httpx.Client(timeout=60) as client:
            for first in range(0, len(events), BATCH):
                batch = events[first : first + BATCH]
                while True:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"client {number} ran out of time at event {first}")
                    url = urls[turn % len(urls)]
                    turn += 1
                    with tally.lock:
                        tally.in_flight[url] = tally.in_flight.get(url, 0) + 1
                    try:
                        answer = client.post(f"{url}/v1/events", json={"events": batch},
                                             headers=auth)  # fmt: skip
                    except httpx.TransportError as exc:
                        tally.retried(type(exc).__name__)
                        time.sleep(0.05)
                        continue
                    finally:
                        with tally.lock:
                            tally.in_flight[url] -= 1
                    if answer.status_code in RETRYABLE:
                        tally.retried(str(answer.status_code))
                        time.sleep(0.1)
                        continue
                    assert answer.status_code == 200, f"{url}: {answer.status_code} {answer.text}"
                    body = answer.json()
                    assert body["rejected"] == [], body["rejected"][:3]
                    assert body["accepted"] + body["duplicates"] == len(batch), body
                    with tally.lock:
                        tally.acked.extend(e["id"] for e in batch)
                        tally.batches[url] = tally.batches.get(url, 0) + 1
                        tally.duplicates += body["duplicates"]
                    break
    except BaseException as exc:
        with tally.lock:
            tally.failures.append(f"client {number}: {exc!r}")


@pytest.fixture
def pg_site(tmp_path: Path) -> Iterator[Site]:
    """A data directory on a scratch PostgreSQL database, whose keys every node shares."""
    with scratch_database() as url:
        yield make_site(tmp_path, url)


@pytest.mark.slow
def test_three_nodes_on_one_database_survive_kill_9_of_one(pg_site: Site, tmp_path: Path) -> None:
    """4 clients x 25,000 events over 3 nodes, one killed with SIGKILL and restarted midway:
    every acknowledged event is stored once, seqs are dense, and the log verifies."""
    site = pg_site
    assert site.store is not None
    mark = uuid.uuid4().hex
    nodes = [Node(free_port(), tmp_path / f"node{i}.log") for i in range(NODES)]
    workloads = [[make_event() for _ in range(EVENTS)] for _ in range(CLIENTS)]
    total = CLIENTS * EVENTS
    tally = Tally()
    started = time.monotonic()
    try:
        for node in nodes:
            node.start(site, mark)
        urls = [node.url for node in nodes]
        clients = [
            threading.Thread(target=_client, args=(i, workloads[i], urls, site.auth("writer"),
                                                   tally))
            for i in range(CLIENTS)
        ]  # fmt: skip
        for thread in clients:
            thread.start()
        victim = nodes[1]
        # Midway, and while the victim has a request in hand (its writer is likely mid-batch).
        while (len(tally.acked) < total // 2 or not tally.in_flight.get(victim.url)) and any(
            t.is_alive() for t in clients
        ):
            time.sleep(0.005)
        time.sleep(0.03)
        assert victim.process is not None
        os.kill(victim.process.pid, signal.SIGKILL)  # the PID alone, as the OOM killer does
        victim.process.wait(timeout=10)
        killed_at = len(tally.acked)
        victim.start(site, mark)  # while the other two keep writing
        served_before = tally.batches.get(victim.url, 0)
        for thread in clients:
            thread.join(timeout=DEADLINE + 60)
        ingested = time.monotonic() - started
        again = workloads[0][:BATCH]  # a client resending what a node already acknowledged
        for node in nodes:
            answer = httpx.post(f"{node.url}/v1/events", json={"events": again},
                                headers=site.auth("writer"), timeout=60)  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"accepted": 0, "duplicates": BATCH, "rejected": []}
        for node in nodes:  # a graceful stop signs what its writer wrote
            assert node.process is not None
            node.process.send_signal(signal.SIGTERM)
        for node in nodes:
            assert node.process is not None
            # uvicorn re-raises the SIGTERM it handled once the app has shut down.
            assert node.process.wait(timeout=60) in (0, -signal.SIGTERM), node.tail()
            assert "Application shutdown complete" in node.last_run(), node.tail()
    finally:
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait(timeout=10)
    print(  # shown with -s: how long the HTTP ingest took, and what the clients retried
        f"\n{total:,} events over {NODES} nodes in {ingested:.1f} s; a node killed at "
        f"{killed_at:,} acknowledged; batches per node {list(tally.batches.values())}; "
        f"retries {tally.retries}; {tally.duplicates} events resent were stored already"
    )
    assert tally.failures == [], "\n".join(tally.failures) + "\n" + nodes[1].tail()
    assert tally.batches.get(victim.url, 0) > served_before, "the restarted node took writes"
    assert not still_running(left_behind(mark), within=5), "no orphan survives the servers"
    acked = tally.acked
    assert len(acked) == total == len(set(acked)), "each event acknowledged once by its client"

    with psycopg.connect(site.store) as conn:
        n, low, high, distinct = conn.execute(
            "SELECT count(*), min(seq), max(seq), count(DISTINCT id) FROM glasslog.events"
        ).fetchone() or (0, None, None, 0)
        keys = conn.execute("SELECT count(*), max(seq) FROM glasslog.event_keys").fetchone()
        stored = [str(uuid.UUID(bytes=bytes(i))) for (i,) in conn.execute(
            "SELECT id FROM glasslog.events")]  # fmt: skip
    assert (n, low, high, distinct) == (total, 0, total - 1, total), "one dense seq range"
    assert keys == (total, total - 1)
    assert len(stored) == len(set(stored)), "every event once"
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events were lost"
    assert set(stored) == set(acked), "nothing stored that no client sent"

    verified = glasslog("verify", "--store", site.store, data=site.data)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    with Log.open(site.data, store=site.store) as log:
        verifier = log.datadir.verifier()
        checkpoints = [verify_checkpoint(c.note, verifier=verifier)
                       for c in log.store.checkpoints()]  # fmt: skip
        assert checkpoints[-1].size == total, "the graceful stops signed the whole log"
        sizes = [c.size for c in checkpoints]
        assert sizes == sorted(set(sizes)), "checkpoints grow, one per size"
        for old, new in itertools.pairwise(checkpoints):
            if old.size == 0:
                continue
            proof = log.consistency(old.size, new.size)
            merkle.verify_consistency(
                size1=old.size, size2=new.size, root1=old.root, root2=new.root,
                proof=[base64.b64decode(h) for h in proof["proof"]],
            )  # fmt: skip


def test_a_node_starting_beside_a_busy_one_reads_the_log_under_the_lock(
    pg_site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another node appending and signing between a starting node's read of the tree and
    its read of the checkpoints waits for the lock, instead of looking like deleted events."""
    site = pg_site
    datadir = DataDir(site.data)
    settings = Settings(checkpoint_every=1, checkpoint_interval=0.0)  # sign every batch
    preparer = Preparer(fingerprint_key=datadir.fingerprint_key(), settings=settings)
    store = open_store(site.spec)
    try:
        busy = Sequencer(store, datadir.signer(), settings=settings, datadir=datadir,
                         writer_lock=datadir.writer_lock)  # fmt: skip
        submit(busy, preparer, [make_event() for _ in range(5)])
        late: list[list[Receipt]] = []
        other = threading.Thread(target=lambda: late.append(submit(busy, preparer, [make_event()])))

        def restore_then_let_the_other_node_write(target: Store) -> TreeBuilder:
            tree = restore_tree(target)
            if other.ident is None:  # once: the first restore is the starting node's
                other.start()
                other.join(timeout=1.0)  # it waits for the lock, if we hold it
            return tree

        monkeypatch.setattr(pipeline, "restore_tree", restore_then_let_the_other_node_write)
        service = Service(site.config())
        service.writer.start()  # raises what building the sequencer raised
        monkeypatch.undo()
        other.join(timeout=60)
        assert [r.seq for r in late[0]] == [5]
        service.writer.stop()
    finally:
        store.close()
    verified = glasslog("verify", "--store", site.spec, data=site.data)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _connections(url: str) -> int:
    """Connections open to the database of ``url``, other than the one asking."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchone()
    return 0 if row is None else int(row[0])


def test_a_node_closes_the_connections_of_worker_threads_that_ended(pg_site: Site) -> None:
    """Worker threads come and go with bursts of requests; each new one closes the reader
    connections of those that ended, so nodes sharing a database do not pile them up."""
    site = pg_site
    assert site.store is not None
    service = Service(site.config())

    def read() -> None:
        service.log().store.size()  # in the thread: its own connection

    try:
        for _ in range(3):  # three bursts of ten worker threads, each reading once
            burst = [threading.Thread(target=read) for _ in range(10)]
            for thread in burst:
                thread.start()
            for thread in burst:
                thread.join()
        last = threading.Thread(target=read)
        last.start()
        last.join()
        deadline = time.monotonic() + 10
        while (open_now := _connections(site.store)) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # a backend ends a moment after its client closed it
        assert open_now == 1, "only the last thread's connection is left"
    finally:
        service.stop()
    deadline = time.monotonic() + 10
    while (open_now := _connections(site.store)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_now == 0
