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
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

from glasslog.datadir import DataDir
from glasslog.demo import write_jsonl
from glasslog.derived import field_values, search_text
from glasslog.store import sqlite as sqlite_store
from glasslog.store.base import EventRow
from glasslog.verify import verify_store


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker may exit between the two calls
            total += p.memory_info().rss
    return total


def run_glasslog(data: Path, source: Path, batch: int, store: list[str]) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, "-m", "glasslog", "init", "--data", str(data), *store],
        check=True, capture_output=True,
    )  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "glasslog", "ingest", str(source), "--data", str(data),
         "--batch-size", str(batch), *store],
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
            (*r, search_text(e := json.loads(r[9])), field_values(e.get("metadata", {})))
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


def _pg_database(admin: str, name: str) -> str:
    """A fresh database on the server of ``admin`` (a postgresql:// URL); its URL."""
    import psycopg  # noqa: PLC0415 - optional dependency, only for --store
    from psycopg import sql  # noqa: PLC0415

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))


def postgres_main(args: argparse.Namespace, work: Path, source: Path) -> dict[str, Any]:
    """The same comparison on PostgreSQL: baseline = COPY of the same rows, same schema."""
    import psycopg  # noqa: PLC0415

    from glasslog.store.postgres import PostgresStore  # noqa: PLC0415

    n = args.events
    ours_dsn = _pg_database(args.store, "glasslog_bench")
    base_dsn = _pg_database(args.store, "glasslog_bench_baseline")
    data = work / "glasslog-data-pg"
    shutil.rmtree(data, ignore_errors=True)
    ours = run_glasslog(data, source, args.batch, ["--store", ours_dsn])
    with psycopg.connect(ours_dsn) as conn:
        rows = [
            EventRow._make(
                (*r[:9], r[9], r[10], bytes(r[11]), search_text(e := json.loads(r[9])),
                 field_values(e.get("metadata", {})))
            )
            for r in conn.execute(
                "SELECT seq, id, time, service, action, actor_id, outcome, request_id, trace_id,"
                " body, commits, salts FROM glasslog.events ORDER BY seq"
            )
        ]  # fmt: skip
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        body = conn.execute("SELECT sum(octet_length(body)) FROM glasslog.events").fetchone()
    base = PostgresStore.open(base_dsn, create=True)
    started = time.perf_counter()
    for i in range(0, len(rows), args.batch):
        base.append(rows[i : i + args.batch], [])  # the store's own COPY path, no tiles
    base_seconds = time.perf_counter() - started
    base.close()
    del rows
    with psycopg.connect(base_dsn) as conn:
        base_size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    started = time.perf_counter()
    report = verify_store(ours_dsn, DataDir(data).verifier(), workers=os.cpu_count())
    verify_seconds = time.perf_counter() - started
    size_b = int(size[0]) if size else 0
    json_bytes = int(body[0]) if body else 1
    return {
        "backend": "postgresql",
        "events": n,
        "glasslog_events_per_s": round(n / ours["seconds"]),
        "baseline_events_per_s": round(n / base_seconds),
        "ratio": round(base_seconds / ours["seconds"], 3),
        "peak_rss_mb_process_tree": round(ours["peak_tree_rss"] / 2**20, 1),
        "disk_bytes_per_event": round(size_b / n),
        "canonical_json_bytes_per_event": round(json_bytes / n),
        "disk_over_canonical_json": round(size_b / json_bytes, 3),
        "baseline_disk_bytes_per_event": round((int(base_size[0]) if base_size else 0) / n),
        "verify_events_per_s": round(n / verify_seconds),
        "verify_report": report.summary(),
        "summary": ours["summary"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    parser.add_argument(
        "--store",
        help="a PostgreSQL server's admin URL: benchmark PostgreSQL (two scratch databases "
        "are created on it) instead of SQLite",
    )
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
    if args.store:
        result = postgres_main(args, work, source)
        print(json.dumps(result, indent=2))
        Path("bench/out").mkdir(parents=True, exist_ok=True)
        Path("bench/out/ingest-postgres.json").write_text(json.dumps(result, indent=2) + "\n")
        return

    data = work / "glasslog-data"
    ours = run_glasslog(data, source, args.batch, [])
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
