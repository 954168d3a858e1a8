"""Ingest benchmark: glasslog's full pipeline against raw SQLite inserts of the same rows.

Run: ``.venv/bin/python bench/ingest.py [--events 1000000]``

1. Generates realistic events as JSON lines (not timed).
2. Runs ``glasslog ingest`` on them as a subprocess — exactly the CLI path, with
   validation, secret scrubbing, commitments, leaf hashing, tree tiles, checkpoint
   signing and one fsync per batch — sampling the RSS of its whole process tree.
3. Baseline, same run: reads the rows glasslog stored back into memory and
   ``executemany``-inserts them into a fresh SQLite file with the same schema,
   indexes, full-text table, field index and rollups (the same ``write_rows`` the
   store uses), pragmas and batch size — no validation, hashing, commitments, tiles
   or checkpoints.
4. Times ``glasslog verify`` (every leaf recomputed from stored data).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from glasslog.datadir import DataDir
from glasslog.demo import write_jsonl
from glasslog.ingest.pipeline import _field_values, _search_text
from glasslog.store import sqlite as sqlite_store
from glasslog.store.base import EventRow
from glasslog.verify import verify_store


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker may exit between the two calls
            total += p.memory_info().rss
    return total


def run_glasslog(data: Path, source: Path, batch: int) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, "-m", "glasslog", "init", "--data", str(data)],
        check=True, capture_output=True,
    )  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "glasslog", "ingest", str(source), "--data", str(data),
         "--batch-size", str(batch)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    ps = psutil.Process(proc.pid)
    peak_tree = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):  # the process may just have exited
            peak_tree = max(peak_tree, _tree_rss(ps))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"glasslog ingest failed: {err.decode()}")
    summary = json.loads(out)
    return {"seconds": seconds, "summary": {k: summary[k] for k in ("accepted", "duplicates")},
            "peak_tree_rss": peak_tree}  # fmt: skip


def load_rows(db: Path) -> list[EventRow]:
    """The rows glasslog stored, with their derived search text and field values."""
    conn = sqlite3.connect(db)
    rows = [
        EventRow._make(
            (*r, _search_text(e := json.loads(r[9])), _field_values(e.get("metadata", {})))
        )
        for r in conn.execute(
            "SELECT seq, id, time, service, action, actor_id, outcome, request_id, trace_id,"
            " body, commits, salts FROM events ORDER BY seq"
        )
    ]
    conn.close()
    return rows


def run_baseline(path: Path, rows: list[EventRow], batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -65536")
    conn.executescript(sqlite_store._SCHEMA)
    keys: dict[str, int] = {}

    def field_key(path: str) -> int:
        if path not in keys:
            keys[path] = len(keys) + 1
            conn.execute("INSERT INTO field_keys (id, path) VALUES (?, ?)", (keys[path], path))
        return keys[path]

    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        sqlite_store.write_rows(conn, rows[i : i + batch], field_key)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def db_bytes(db: Path) -> tuple[int, int]:
    """(file size after folding the WAL in, canonical JSON bytes of the stored events)."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (json_bytes,) = conn.execute("SELECT sum(length(CAST(body AS BLOB))) FROM events").fetchone()
    conn.close()
    return db.stat().st_size, int(json_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="glasslog-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.events
    source = work / "events.jsonl"
    if not source.exists() or sum(1 for _ in source.open()) != n:
        write_jsonl(source, n, seed=7)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}")  # fmt: skip
    print(f"input: {n:,} events, {source.stat().st_size / n:.0f} bytes/event as JSON lines")

    data = work / "glasslog-data"
    ours = run_glasslog(data, source, args.batch)
    datadir = DataDir(data)
    size, json_bytes = db_bytes(datadir.db)
    rows = load_rows(datadir.db)
    base_db = work / "baseline.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{base_db}{suffix}").unlink(missing_ok=True)
    base_seconds = run_baseline(base_db, rows, args.batch)
    base_size, _ = db_bytes(base_db)
    del rows

    started = time.perf_counter()
    report = verify_store(datadir.db, datadir.verifier(), workers=os.cpu_count())
    verify_seconds = time.perf_counter() - started

    ours_rate = n / ours["seconds"]
    base_rate = n / base_seconds
    result = {
        "events": n,
        "glasslog_events_per_s": round(ours_rate),
        "baseline_events_per_s": round(base_rate),
        "ratio": round(ours_rate / base_rate, 3),
        "peak_rss_mb_process_tree": round(ours["peak_tree_rss"] / 2**20, 1),
        "disk_bytes_per_event": round(size / n),
        "canonical_json_bytes_per_event": round(json_bytes / n),
        "disk_over_canonical_json": round(size / json_bytes, 3),
        "baseline_disk_bytes_per_event": round(base_size / n),
        "verify_events_per_s": round(n / verify_seconds),
        "verify_report": report.summary(),
        "summary": ours["summary"],
    }
    print(json.dumps(result, indent=2))
    (Path("bench/out")).mkdir(parents=True, exist_ok=True)
    Path("bench/out/ingest.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
