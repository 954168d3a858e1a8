"""kill -9 of a running ``glasslog ingest`` never leaves a broken or double-written log, a
held lock, or a process behind: the next ingest starts at once and completes."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from glasslog.datadir import DataDir
from glasslog.demo import write_jsonl
from glasslog.verify import verify_store
from tests.processes import MARK, left_behind, lock_is_free, sqlite_events, start, wait_for_events

TRIALS = 8
"""Kills, each followed at once by the full ingest of the file it interrupted. Fewer than
the 20 kills of a resumed single file this test once made, because every trial now also
runs the rerun to completion; the kills land mid-write (or, one in three, mid-start-up)
by watching the store, rather than at random times that often missed."""

PER_TRIAL = 2_500  # events in each trial's file: 20,000 in all


def _rows(spec: str, db: Path) -> tuple[list[str], int]:
    """50 random stored bodies and the number of distinct ids, on either backend."""
    if spec.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(spec) as pg:
            bodies = [
                r[0]
                for r in pg.execute(
                    "SELECT body FROM glasslog.events ORDER BY random() LIMIT 50"
                ).fetchall()
            ]
            row = pg.execute("SELECT count(DISTINCT id) FROM glasslog.event_keys").fetchone()
        return bodies, int(row[0]) if row else 0
    conn = sqlite3.connect(db)
    bodies = [r[0] for r in conn.execute("SELECT body FROM events ORDER BY random() LIMIT 50")]
    (distinct,) = conn.execute("SELECT count(DISTINCT id) FROM events").fetchone()
    conn.close()
    return bodies, int(distinct)  # fmt: skip


class _Watch:
    """Reads of the store from outside, which never disturb its writer."""

    def __init__(self, spec: str, db: Path) -> None:
        self._db = db
        self._pg: Any = None
        if spec:
            import psycopg

            self._pg = psycopg.connect(spec, autocommit=True)

    def events(self) -> int:
        if self._pg is None:
            return sqlite_events(self._db)
        return int(self._pg.execute("SELECT count(*) FROM glasslog.events").fetchone()[0])

    def settle(self) -> None:
        """Wait until the killed writer's PostgreSQL session has ended.

        The server completes on its own time a statement the writer sent before it
        died (its last COMMIT, say); until then the store may still grow.
        """
        others = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        deadline = time.monotonic() + 60
        while self._pg is not None and self._pg.execute(others).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed writer's session never ended"
            time.sleep(0.01)

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_during_ingest_loses_nothing_and_leaves_nothing_behind(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Kills of the PID alone and of the group: store intact, lock free, rerun exact, no orphan."""
    data = tmp_path / "log"
    spec = request.getfixturevalue("pg_database") if backend == "postgres" else ""
    store = ["--store", spec] if spec else []
    mark = uuid.uuid4().hex
    env = {**os.environ, MARK: mark}
    subprocess.run(
        [sys.executable, "-m", "glasslog", "init", "--data", str(data), *store],
        check=True, timeout=60, env=env,
    )  # fmt: skip
    source = tmp_path / "events.jsonl"
    write_jsonl(source, TRIALS * PER_TRIAL, seed=11)
    lines = source.read_bytes().splitlines(keepends=True)
    originals = {json.loads(line)["id"]: json.loads(line) for line in lines}
    datadir = DataDir(data)
    watch = _Watch(spec, datadir.db)
    request.addfinalizer(watch.close)
    rng = random.Random(2026)
    kills = 0
    total = 0
    for trial in range(TRIALS):
        part = tmp_path / f"part-{trial}.jsonl"
        part.write_bytes(b"".join(lines[trial * PER_TRIAL : (trial + 1) * PER_TRIAL]))
        ingest = start(
            "ingest", str(part), "--data", str(data), "--batch-size", "250", *store,
            mark=mark, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if trial % 3 == 2:  # while it starts: importing, forking its workers
            time.sleep(rng.uniform(0.05, 0.6))
        else:  # while it writes, somewhere in the first half of its file
            wait_for_events(watch.events, total + rng.choice([1, 250, 750, 1250]))
        if ingest.poll() is None:
            if trial % 2:
                os.killpg(ingest.pid, signal.SIGKILL)  # the whole group, as a terminal's job
            else:
                os.kill(ingest.pid, signal.SIGKILL)  # the PID alone, as the OOM killer does
            kills += 1
        ingest.wait(timeout=60)

        # At once, with no sleep: nothing holds the dead writer's lock.
        assert lock_is_free(data), f"trial {trial}: the writer lock outlived its writer"
        watch.settle()
        report = verify_store(spec or datadir.db, datadir.verifier(), workers=1)
        assert total <= report.events <= total + PER_TRIAL, "the log shrank or grew wrongly"
        stored = report.events - total
        rerun = subprocess.run(
            [sys.executable, "-m", "glasslog", "ingest", str(part), "--data", str(data), *store],
            capture_output=True, text=True, check=False, timeout=600, env=env,
        )  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        summary = json.loads(rerun.stdout)
        assert summary == {"accepted": PER_TRIAL - stored, "duplicates": stored, "rejected": []}
        total += PER_TRIAL

        bodies, distinct = _rows(spec, datadir.db)
        assert distinct == total, "an event was stored twice"
        for body in bodies:
            stored_event = json.loads(body)
            original = originals[stored_event["id"]]
            assert stored_event["service"] == original["service"]
            assert stored_event["action"] == original["action"]
            assert stored_event["actor"]["id"] == original["actor"]["id"]
    assert kills >= TRIALS - 1, f"only {kills} ingests were still running when killed"

    report = verify_store(spec or datadir.db, datadir.verifier(), workers=1)
    assert report.events == total == len(originals) and report.pending == 0
    assert left_behind(mark) == []
