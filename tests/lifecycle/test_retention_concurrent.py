"""A retention run on a log that other processes are writing: real ``glasslog ingest``
processes append while the run deletes, and afterwards verify passes and every event
an ingest acknowledged is there."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from glasslog.cli import _owner, _record
from glasslog.datadir import DataDir
from glasslog.lifecycle.retention import load_retention, run_retention
from glasslog.store import open_store
from tests.conftest import make_event
from tests.lifecycle.conftest import NEW, Data, old_events
from tests.processes import start

GROUP = 50
"""Lines an ingest commits at once (its --batch-size): many small turns at the lock."""


class _Feeder:
    """Feeds one ``glasslog ingest -`` process new events until told to stop."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.ids: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        assert self.process.stdin is not None
        while True:
            stopping = self.stop.is_set()
            group = [make_event(time=NEW) for _ in range(GROUP)]
            self.ids.extend(e["id"] for e in group)
            self.process.stdin.write(b"".join(json.dumps(e).encode() + b"\n" for e in group))
            self.process.stdin.flush()
            if stopping:  # one group more after the run: it ends after the run's last chunk
                self.process.stdin.close()
                self.process.stdin = None  # closed: communicate() must not flush it
                return
            time.sleep(0.02)

    def acknowledged(self) -> int:
        self.stop.set()
        self.thread.join(timeout=60)
        out, err = self.process.communicate(timeout=300)
        assert self.process.returncode == 0, err.decode()
        accepted: int = json.loads(out)["accepted"]
        return accepted


def test_a_run_beside_writing_processes_loses_nothing(data: Data) -> None:
    """Two ingest processes append in small batches during a run that prunes in small
    chunks; every acknowledged event is stored, the old ones are pruned, verify passes."""
    store_flags = ["--store", data.store] if data.store else []
    data.ingest(old_events(1000))
    feeders = [
        _Feeder(
            start(
                "ingest", "-", "--json", "--batch-size", str(GROUP), "--data", str(data.path),
                *store_flags,
                mark=f"retention-{uuid.uuid4()}",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
        )
        for _ in range(2)
    ]  # fmt: skip
    store = open_store(DataDir(data.path).store_spec(data.store))
    sizes: list[int] = []

    @contextmanager
    def lock() -> Iterator[None]:
        with DataDir(data.path).writer_lock(wait=120), store.lock_writer():
            sizes.append(store.size())
            yield

    try:
        deadline = time.monotonic() + 120
        while store.size() <= 1000:  # both ingests are under way before the run starts
            assert time.monotonic() < deadline, "the ingest processes wrote nothing"
            time.sleep(0.05)
        rules = load_retention(data.path / "policy.toml")
        assert rules is not None
        summary = run_retention(
            store,
            rules,
            actor=_owner(),
            record=lambda events: _recorded(data, events),
            lock=lock,
            chunk=50,
        )
        acknowledged = [feeder.acknowledged() for feeder in feeders]
        assert summary.pruned == 1000 and summary.ranges == [(0, 1000)]
        assert acknowledged == [len(feeder.ids) for feeder in feeders]
        ids = [uuid.UUID(i).bytes for feeder in feeders for i in feeder.ids]
        found = store.find_ids(ids)
        assert len(found) == len(ids) and all(stored.body for stored in found.values())
        assert len(sizes) > 2 and sizes[-1] > sizes[0], "no ingest batch landed during the run"
    finally:
        for feeder in feeders:
            if feeder.process.poll() is None:
                feeder.process.kill()
        store.close()
    verified = data.ok("verify")
    assert "1,000 events pruned by retention (seqs 0-999)" in verified


def _recorded(data: Data, events: list[dict[str, Any]]) -> list[int]:
    """The CLI's way to record lifecycle events (signed at the end), and their seqs."""
    _record(data.path, data.store, *events)
    target = open_store(DataDir(data.path).store_spec(data.store), readonly=True)
    try:
        return [target.get_by_id(uuid.UUID(str(e["id"])).bytes).seq for e in events]
    finally:
        target.close()
