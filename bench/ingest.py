"""Ingest benchmark: ``glasslog ingest`` against plain SQLite, and against its own schema.

Run: ``.venv/bin/python bench/ingest.py [--events 100000 1000000] [--plain] [--repeat 3]``

1. Generates realistic events as JSON lines (not timed): ``glasslog.demo.write_jsonl``,
   with metadata, secrets to scrub and free text.
2. Runs ``glasslog ingest FILE`` as a subprocess with its default options — exactly
   what a user runs, process start included — with validation, secret scrubbing,
   commitments, leaf hashing, tree tiles, checkpoint signing and one fsync per batch,
   sampling the RSS of its whole process tree.
3. **Plain baseline** (issue 8), same run: a small script, also a subprocess
   (``sys.executable -c``), reads the same file, ``json.loads`` each line for its
   columns and inserts it into one table (id unique, time, service, action, actor id,
   request id, trace id and the raw line) with indexes on time, (service, time),
   (action, time), (actor, time), request id and trace id, and an FTS5 table over
   the raw line; WAL mode, one transaction. This is what a user would write instead
   of glasslog. ``--plain`` runs only this comparison.
4. **Schema baseline** (issue 2), same run: reads the rows glasslog stored back into
   memory and ``executemany``-inserts them into a fresh SQLite file with glasslog's
   own schema, indexes, full-text table, field index and rollups (the same
   ``write_rows`` the store uses), pragmas and batch size — no validation, hashing,
   commitments, tiles or checkpoints, no parsing, no process start. It answers a
   different question: what the ledger costs on top of glasslog's own storage.
5. Times ``glasslog verify`` (every leaf recomputed from stored data).

With ``--repeat N`` the glasslog and plain runs alternate N times and the medians
are compared, which steadies the ratio on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import psutil

from glasslog.datadir import DataDir
from glasslog.demo import write_jsonl
from glasslog.derived import field_values, search_text
from glasslog.ingest.pipeline import Settings
from glasslog.store import sqlite as sqlite_store
from glasslog.store.base import EventRow
from glasslog.verify import verify_store


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker may exit between the two calls
            total += p.memory_info().rss
    return total


class Run(NamedTuple):
    """What one timed subprocess took."""

    seconds: float
    """Wall clock, process start to exit."""
    cpu: float
    """CPU seconds (user + system) of its whole process tree."""
    written: int
    """Bytes its process tree wrote to the disk (WAL, database, checkpoints)."""
    peak_rss: int
    """Peak RSS of its process tree, sampled every 50 ms."""
    stdout: bytes


def _children_usage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_oublock * 512


def _timed(command: list[str]) -> Run:
    """Run ``command`` and measure it. RSS is sampled by a thread, so the time of the
    exit is not rounded up to the sampling interval. Workers are reaped by their
    parent, so their CPU and writes count."""
    cpu, written = _children_usage()
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            with contextlib.suppress(psutil.Error):  # the process may just have exited
                peak = max(peak, _tree_rss(ps))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    cpu_after, written_after = _children_usage()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} … failed: {err.decode()}")
    return Run(seconds, cpu_after - cpu, written_after - written, peak, out)


def run_glasslog(data: Path, source: Path, batch: int | None, store: list[str]) -> dict[str, Any]:
    """``glasslog ingest`` of ``source`` into a fresh data directory (``init`` is not timed).

    With ``batch`` None the command runs with its defaults, as a user runs it.
    """
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "glasslog", "init", "--data", str(data), *store],
        check=True, capture_output=True,
    )  # fmt: skip
    options = [] if batch is None else ["--batch-size", str(batch)]
    run = _timed(
        [sys.executable, "-m", "glasslog", "ingest", str(source), "--data", str(data),
         *options, *store]
    )  # fmt: skip
    summary = json.loads(run.stdout)
    return {"seconds": run.seconds, "cpu": run.cpu, "written": run.written,
            "peak_tree_rss": run.peak_rss,
            "summary": {k: summary[k] for k in ("accepted", "duplicates")}}  # fmt: skip


PLAIN_SCRIPT = r'''
import json, sqlite3, sys

source, db = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.executescript("""
CREATE TABLE events (
    id TEXT NOT NULL UNIQUE, time TEXT NOT NULL, service TEXT NOT NULL,
    action TEXT NOT NULL, actor_id TEXT NOT NULL, request_id TEXT, trace_id TEXT,
    line TEXT NOT NULL
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_service_time ON events (service, time);
CREATE INDEX events_action_time ON events (action, time);
CREATE INDEX events_actor_time ON events (actor_id, time);
CREATE INDEX events_request ON events (request_id);
CREATE INDEX events_trace ON events (trace_id);
CREATE VIRTUAL TABLE events_fts USING fts5(line);
""")
INSERT = ("INSERT INTO events (rowid, id, time, service, action, actor_id, request_id,"
          " trace_id, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
rows = []


def flush():
    conn.executemany(INSERT, rows)
    conn.executemany("INSERT INTO events_fts (rowid, line) VALUES (?, ?)",
                     [(row[0], row[8]) for row in rows])
    rows.clear()


n = 0
conn.execute("BEGIN")
with open(source, encoding="utf-8") as lines:
    for n, line in enumerate(lines, 1):
        event = json.loads(line)
        context = event.get("context") or {}
        rows.append((n, event["id"], event["time"], event["service"], event["action"],
                     event["actor"]["id"], context.get("request_id"),
                     context.get("trace_id"), line))
        if len(rows) == 10_000:
            flush()
flush()
conn.execute("COMMIT")
conn.close()
print(n)
'''
"""What a user might write instead of glasslog (issue 8 §4): parse each line for its
columns, insert it into one indexed table and an FTS5 table, all in one transaction."""


def run_plain(db: Path, source: Path) -> dict[str, Any]:
    """The plain script on ``source`` into a fresh ``db``, as a subprocess."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    run = _timed([sys.executable, "-c", PLAIN_SCRIPT, str(source), str(db)])
    return {"seconds": run.seconds, "cpu": run.cpu, "written": run.written,
            "peak_tree_rss": run.peak_rss, "rows": int(run.stdout)}  # fmt: skip


def compare_plain(
    work: Path, source: Path, n: int, repeat: int, batch: int | None
) -> dict[str, Any]:
    """``glasslog ingest`` and the plain script, alternating ``repeat`` times; medians.

    The store of glasslog's last run stays in ``work / "glasslog-data"`` for the schema
    comparison and verify.
    """
    ours: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    for _ in range(repeat):
        ours.append(run_glasslog(work / "glasslog-data", source, batch, []))
        plain.append(run_plain(work / "plain.db", source))
        if ours[-1]["summary"]["accepted"] != n or plain[-1]["rows"] != n:
            raise SystemExit(f"expected {n} events on both sides: {ours[-1]}, {plain[-1]}")
    ours_s = statistics.median(r["seconds"] for r in ours)
    plain_s = statistics.median(r["seconds"] for r in plain)
    return {
        "events": n,
        "glasslog_events_per_s": round(n / ours_s),
        "plain_events_per_s": round(n / plain_s),
        "ratio": round(plain_s / ours_s, 3),
        "glasslog_seconds": [round(r["seconds"], 2) for r in ours],
        "plain_seconds": [round(r["seconds"], 2) for r in plain],
        "glasslog_cpu_us_per_event": round(statistics.median(r["cpu"] for r in ours) * 1e6 / n),
        "plain_cpu_us_per_event": round(statistics.median(r["cpu"] for r in plain) * 1e6 / n),
        "glasslog_written_mb": round(statistics.median(r["written"] for r in ours) / 2**20),
        "plain_written_mb": round(statistics.median(r["written"] for r in plain) / 2**20),
        "peak_rss_mb_process_tree": round(max(r["peak_tree_rss"] for r in ours) / 2**20, 1),
        "plain_peak_rss_mb": round(max(r["peak_tree_rss"] for r in plain) / 2**20, 1),
        "summary": ours[-1]["summary"],
    }


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


def postgres_main(args: argparse.Namespace, work: Path, source: Path, n: int) -> dict[str, Any]:
    """The schema comparison on PostgreSQL: baseline = COPY of the same rows, same schema."""
    import psycopg  # noqa: PLC0415

    from glasslog.store.postgres import PostgresStore  # noqa: PLC0415

    batch = args.batch or Settings().batch_size
    ours_dsn = _pg_database(args.store, "glasslog_bench")
    base_dsn = _pg_database(args.store, "glasslog_bench_baseline")
    data = work / "glasslog-data-pg"
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
    for i in range(0, len(rows), batch):
        base.append(rows[i : i + batch], [])  # the store's own COPY path, no tiles
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


def compare_schema(work: Path, n: int, plain: dict[str, Any], batch: int | None) -> dict[str, Any]:
    """Issue 2's comparison, on the store of the plain comparison's last glasslog run:
    the same rows into glasslog's own schema without the ledger; then verify."""
    datadir = DataDir(work / "glasslog-data")
    size, json_bytes = db_bytes(datadir.db)
    rows = load_rows(datadir.db)
    base_db = work / "baseline.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{base_db}{suffix}").unlink(missing_ok=True)
    base_seconds = run_baseline(base_db, rows, batch or Settings().batch_size)
    base_size, _ = db_bytes(base_db)
    del rows

    started = time.perf_counter()
    report = verify_store(datadir.db, datadir.verifier(), workers=os.cpu_count())
    verify_seconds = time.perf_counter() - started

    ours_rate = plain["glasslog_events_per_s"]
    base_rate = n / base_seconds
    return {
        "events": n,
        "glasslog_events_per_s": round(ours_rate),
        "baseline_events_per_s": round(base_rate),
        "ratio": round(ours_rate / base_rate, 3),
        "peak_rss_mb_process_tree": plain["peak_rss_mb_process_tree"],
        "disk_bytes_per_event": round(size / n),
        "canonical_json_bytes_per_event": round(json_bytes / n),
        "disk_over_canonical_json": round(size / json_bytes, 3),
        "baseline_disk_bytes_per_event": round(base_size / n),
        "verify_events_per_s": round(n / verify_seconds),
        "verify_report": report.summary(),
        "summary": plain["summary"],
    }


def _source(work: Path, n: int) -> Path:
    """``n`` generated events as JSON lines, made once per work directory and size."""
    source = work / f"events-{n}.jsonl"
    if not source.exists() or sum(1 for _ in source.open("rb")) != n:
        write_jsonl(source, n, seed=7)
    return source


def _print_plain(result: dict[str, Any]) -> None:
    n = result["events"]
    print(
        f"{n:>10,} events  glasslog ingest {result['glasslog_events_per_s']:>7,}/s  "
        f"plain SQLite {result['plain_events_per_s']:>7,}/s  "
        f"ratio {result['ratio']:.3f}x (target >= 0.6)  "
        f"runs: glasslog {result['glasslog_seconds']} s, plain {result['plain_seconds']} s; "
        f"CPU per event: glasslog {result['glasslog_cpu_us_per_event']} µs (all processes), "
        f"plain {result['plain_cpu_us_per_event']} µs; written to disk: glasslog "
        f"{result['glasslog_written_mb']:,} MB, plain {result['plain_written_mb']:,} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="pass --batch-size to glasslog ingest (default: the command's own default)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="only the plain-SQLite comparison (issue 8), not the schema baseline or verify",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="alternate the glasslog and plain runs this many times and compare medians",
    )
    parser.add_argument(
        "--store",
        help="a PostgreSQL server's admin URL: benchmark PostgreSQL (two scratch databases "
        "are created on it) instead of SQLite",
    )
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="glasslog-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}")  # fmt: skip
    results: list[dict[str, Any]] = []
    for n in args.events:
        source = _source(work, n)
        print(f"input: {n:,} events, {source.stat().st_size / n:.0f} bytes/event as JSON lines")
        if args.store:
            result = postgres_main(args, work, source, n)
            print(json.dumps(result, indent=2))
            Path("bench/out").mkdir(parents=True, exist_ok=True)
            Path("bench/out/ingest-postgres.json").write_text(json.dumps(result, indent=2) + "\n")
            continue
        plain = compare_plain(work, source, n, args.repeat, args.batch)
        _print_plain(plain)
        result = {"plain": plain}
        if not args.plain:
            result["schema"] = compare_schema(work, n, plain, args.batch)
            print("against glasslog's own schema without the ledger (issue 2):")
            print(json.dumps(result["schema"], indent=2))
        results.append(result)
    if results:
        print("\nsummary (plain SQLite baseline, same run):")
        for result in results:
            _print_plain(result["plain"])
        Path("bench/out").mkdir(parents=True, exist_ok=True)
        Path("bench/out/ingest.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
