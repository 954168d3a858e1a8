"""kill -9 of a running ``glasslog ingest`` never leaves a broken or double-written log."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glasslog.datadir import DataDir
from glasslog.demo import write_jsonl
from glasslog.verify import verify_store

N = 20_000
KILLS = 20


def _ingest(data: Path, file: Path, store: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "glasslog", "ingest", str(file), "--data", str(data),
         "--batch-size", "500", *store],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


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


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_during_ingest_loses_nothing_and_stores_each_event_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """20 kills at random moments: the store opens, verifies, and a rerun completes exactly."""
    data = tmp_path / "log"
    spec = request.getfixturevalue("pg_database") if backend == "postgres" else ""
    store = ["--store", spec] if spec else []
    subprocess.run(
        [sys.executable, "-m", "glasslog", "init", "--data", str(data), *store],
        check=True, timeout=60,
    )  # fmt: skip
    source = tmp_path / "events.jsonl"
    write_jsonl(source, N, seed=11)
    originals = {json.loads(line)["id"]: json.loads(line) for line in source.open()}
    datadir = DataDir(data)
    rng = random.Random(2026)
    kills = 0
    attempts = 0
    sizes = []
    while kills < KILLS and attempts < 3 * KILLS:
        attempts += 1
        proc = _ingest(data, source, store)
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        proc.stdout and proc.stdout.close()
        proc.stderr and proc.stderr.close()
        report = verify_store(spec or datadir.db, datadir.verifier(), workers=1)
        sizes.append(report.events)
        bodies, distinct = _rows(spec, datadir.db)
        assert distinct == report.events, "an event was stored twice"
        for body in bodies:
            stored = json.loads(body)
            original = originals[stored["id"]]
            assert stored["service"] == original["service"]
            assert stored["action"] == original["action"]
            assert stored["actor"]["id"] == original["actor"]["id"]
    assert kills >= KILLS, f"only {kills} runs were still running when killed"
    assert sizes == sorted(sizes), "the log shrank after a crash"

    final = subprocess.run(
        [sys.executable, "-m", "glasslog", "ingest", str(source), "--data", str(data), *store],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert summary["rejected"] == []
    assert summary["accepted"] + summary["duplicates"] == N
    assert summary["accepted"] == N - sizes[-1]
    report = verify_store(spec or datadir.db, datadir.verifier(), workers=1)
    assert report.events == N and report.pending == 0
