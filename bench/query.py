"""Query benchmark: a fixed mix of investigations on a 10,000,000-event store.

Run: ``.venv/bin/python bench/query.py [--events 10000000] [--dir DIR]``

Builds the store once (``glasslog ingest`` fed by the demo generator through a
pipe) and reuses it on later runs. Each query runs 40 times with varying parameters
after one untimed warm-up pass of the whole mix on the same connection. Reports
p50/p95 per query, and in the same run the baseline a user without glasslog has:
``grep`` and ``jq`` over the same kind of events as JSON lines — measured on
1,000,000 events and extrapolated linearly to the store's size (said so in the
output).

Deep pages (issue 8 §7): for full-text queries, page 1 and page 200 of 50 — reached
by following 199 cursors, untimed — each timed 40 times, side by side, with the
full-text matches each read (SQLite). ``--deep-only`` runs just this part.

The recheck (issue 9 §2): every search result is checked against its signed body
before it is returned. Each search of the mix also runs with the recheck off
(``Log.search(unsafe_trust_indexes=True)``), alternating with the timed runs above, and the
table shows both p50/p95 and the ratio of the p50s: what the recheck costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from glasslog.demo import generate
from glasslog.log import Log
from glasslog.store.postgres import describe_dsn


def _stored_size(data: Path, store: str | None) -> int | None:
    """The largest checkpointed tree size of the bench store, or None if there is none."""
    if store is None:
        db = data / "glasslog.db"
        if not db.exists():
            return None
        with closing(sqlite3.connect(db)) as conn:
            (size,) = conn.execute("SELECT max(size) FROM checkpoints").fetchone()
        return None if size is None else int(size)
    import psycopg  # noqa: PLC0415 - optional dependency, only for --store

    try:
        with psycopg.connect(store) as conn:
            row = conn.execute("SELECT max(size) FROM glasslog.checkpoints").fetchone()
    except psycopg.Error:
        return None
    return None if row is None or row[0] is None else int(row[0])


def _pg_bench_database(admin: str) -> str:
    """The URL of the query bench's database on the server of ``admin``."""
    return urlunsplit(urlsplit(admin)._replace(path="/glasslog_query_bench"))


def _recreate_pg_database(admin: str) -> None:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS glasslog_query_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE glasslog_query_bench")


def build(data: Path, n: int, admin: str | None) -> None:
    """Create the store with ``n`` generated events unless it already holds them."""
    store = _pg_bench_database(admin) if admin else None
    if _stored_size(data, store) == n:
        print(f"reusing {describe_dsn(store) if store else data} ({n:,} events)")
        return
    shutil.rmtree(data, ignore_errors=True)
    if admin:
        _recreate_pg_database(admin)
    flags = ["--store", store] if store else []
    subprocess.run(
        [sys.executable, "-m", "glasslog", "init", "--data", str(data), *flags], check=True
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "glasslog", "ingest", "-", "--data", str(data), *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None
    for event in generate(n, seed=7, start=END):
        proc.stdin.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
    proc.stdin.close()
    out = proc.stdout.read() if proc.stdout else b""
    if proc.wait() != 0:
        raise SystemExit("building the store failed")
    print(f"built in {time.perf_counter() - started:.0f} s: {out.decode().strip()[:80]}")
    if store:
        # Planner statistics for the partitioned parent (autovacuum never gathers them).
        with Log.open(data, store=store) as log:
            log.store.optimize()


END = datetime(2026, 11, 1, tzinfo=UTC)
"""The generated events span the 30 days before this instant; relative times use it as now."""

RUNS = 40


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def _hour(i: int) -> str:
    start = END - timedelta(days=1 + i % 25, hours=i * 7 % 24)
    end = start + timedelta(hours=1)
    return f"after:{start:%Y-%m-%dT%H:%MZ} before:{end:%Y-%m-%dT%H:%MZ}"


SERVICES = ["payments", "billing", "auth", "users", "orders"]
PHRASES = [
    '"scheduled maintenance"',
    '"customer request"',
    '"incident review"',
    '"rotated credentials"',
]
WORDS = ["emergency", "rollback", "migration", "compliance", "quarterly"]


Run = Callable[[Any, int, bool], Any]
"""run(log, i, recheck): one query of the mix; aggregations have nothing to recheck."""


def mix(request_ids: list[str]) -> list[tuple[str, str, Run]]:
    """(name, kind, run) for each query of the fixed mix."""
    return [
        ("point lookup by request_id", "filtered",
         lambda log, i, r: log.search(f"request:{request_ids[i]}", now=END,
                                      unsafe_trust_indexes=not r)),
        ("service + 1 h window", "filtered",
         lambda log, i, r: log.search(f"service:{SERVICES[i % 5]} {_hour(i)}", now=END,
                                      unsafe_trust_indexes=not r)),
        ("service + action + outcome, 7 days", "filtered",
         lambda log, i, r: log.search(
             f"service:{SERVICES[i % 5]} action:db.query outcome:failure after:-7d", now=END,
             unsafe_trust_indexes=not r)),
        ("metadata field equality", "filtered",
         lambda log, i, r: log.search(
             f"metadata.db.table:{['cards', 'users', 'keys', 'audit'][i % 4]}", now=END,
             unsafe_trust_indexes=not r)),
        ("full-text phrase", "full text",
         lambda log, i, r: log.search(PHRASES[i % 4], now=END, unsafe_trust_indexes=not r)),
        ("full-text word + service", "full text",
         lambda log, i, r: log.search(f"{WORDS[i % 5]} service:{SERVICES[i % 5]}", now=END,
                                      unsafe_trust_indexes=not r)),
        ("count by actor, 7 days", "aggregation",
         lambda log, i, r: log.count_by("after:-7d", "actor.id", top=10, now=END)),
        ("histogram, 24 h", "aggregation",
         lambda log, i, r: log.histogram("after:-24h", now=END)),
    ]  # fmt: skip


def page_through(log: Any, pages: int) -> dict[bool, list[float]]:
    """Seconds per page of 50, following cursors ``pages`` deep, with the recheck on
    (True) and off (False): each page is read both ways, one after the other."""
    times: dict[bool, list[float]] = {True: [], False: []}
    cursor = None
    for _ in range(pages):
        for recheck in (True, False):
            started = time.perf_counter()
            page = log.search("service:payments", limit=50, cursor=cursor, now=END,
                              unsafe_trust_indexes=not recheck)  # fmt: skip
            times[recheck].append(time.perf_counter() - started)
        cursor = page.cursor
    return times


def _timed(samples: dict[bool, list[float]]) -> dict[str, float]:
    """p50/p95 in ms with the recheck on, and off when it was measured (not aggregations)."""
    p50, p95 = _percentiles(samples[True])
    out = {"p50_ms": p50 * 1000, "p95_ms": p95 * 1000}
    if samples[False]:
        off50, off95 = _percentiles(samples[False])
        out |= {"unchecked_p50_ms": off50 * 1000, "unchecked_p95_ms": off95 * 1000}
    return out


DEEP_PAGE = 200
"""The page compared with the first: 200 pages of 50 is 10,000 events into the result."""

DEEP_QUERIES: list[tuple[str, Callable[[int], str]]] = [
    ("full-text word", lambda v: WORDS[v]),
    ("full-text word + service", lambda v: f"{WORDS[v]} service:{SERVICES[v]}"),
    ("full-text phrase", lambda v: PHRASES[v % 4]),
    ("full-text phrase + outcome", lambda v: f"{PHRASES[v % 4]} outcome:success"),
]
"""A word and a phrase, alone and with another filter; five variants each (v = 0..4)."""


def deep_pages(log: Any) -> dict[str, dict[str, Any]]:
    """Page 1 against page DEEP_PAGE of each deep-page query: p50/p95 ms and matches read."""
    out: dict[str, dict[str, Any]] = {}
    for name, query_of in DEEP_QUERIES:
        cursors: list[str | None] = []
        for v in range(5):
            cursor = None
            for _ in range(DEEP_PAGE - 1):
                cursor = log.search(query_of(v), limit=50, cursor=cursor, now=END).cursor
                assert cursor is not None, f"{query_of(v)!r} has fewer than {DEEP_PAGE} pages"
            cursors.append(cursor)
        times: dict[str, list[float]] = {"first": [], "deep": []}
        reads: dict[str, list[int]] = {"first": [], "deep": []}
        for i in range(RUNS):
            for which, cursor in (("first", None), ("deep", cursors[i % 5])):
                started = time.perf_counter()
                log.search(query_of(i % 5), limit=50, cursor=cursor, now=END)
                times[which].append(time.perf_counter() - started)
                # Only SQLite counts them (older versions of glasslog did not).
                reads[which].append(getattr(log._search, "text_rows_read", -1))
        row: dict[str, Any] = {}
        for which in ("first", "deep"):
            p50, p95 = _percentiles(times[which])
            row[which] = {
                "p50_ms": p50 * 1000,
                "p95_ms": p95 * 1000,
                "rows_read_p50": statistics.median(reads[which]),
            }
        out[name] = row
    return out


def print_deep(deep: dict[str, dict[str, Any]]) -> None:
    print(f"\ndeep pages: page 1 against page {DEEP_PAGE} of 50 (reached through cursors)")
    print(f"{'query':28} {'page 1 p50':>10} {'p95':>6} {f'page {DEEP_PAGE} p50':>12} {'p95':>6}"
          f" {'p95 ratio':>9}   full-text matches read, p50 (page 1 / {DEEP_PAGE})")  # fmt: skip
    for name, r in deep.items():
        first, last = r["first"], r["deep"]
        ratio = last["p95_ms"] / max(first["p95_ms"], 1e-6)
        read = " / ".join(
            "-" if x["rows_read_p50"] < 0 else f"{x['rows_read_p50']:,.0f}" for x in (first, last)
        )
        print(f"{name:28} {first['p50_ms']:10.1f} {first['p95_ms']:6.1f} {last['p50_ms']:12.1f}"
              f" {last['p95_ms']:6.1f} {ratio:8.2f}x   {read}")  # fmt: skip


def baseline(source: Path, request_id: str) -> list[tuple[str, str]]:
    """The same questions as shell pipelines over JSON lines (what a user would do)."""
    day = (END - timedelta(days=3)).strftime("%Y-%m-%d")
    week = (END - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S")
    last = (END - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    f = str(source)
    return [
        ("point lookup by request_id", f"grep -F '\"request_id\":\"{request_id}\"' {f}"),
        ("service + 1 h window",
         f"jq -c 'select(.service==\"payments\" and .time>=\"{day}T10\" "
         f"and .time<\"{day}T11\")' {f}"),
        ("service + action + outcome, 7 days",
         f"jq -c 'select(.service==\"billing\" and .action==\"db.query\" and .outcome==\"failure\" "
         f"and .time>=\"{week}\")' {f}"),
        ("metadata field equality", f"jq -c 'select(.metadata.db.table==\"cards\")' {f}"),
        ("full-text phrase", f"grep -F 'scheduled maintenance' {f}"),
        ("full-text word + service", f"grep -F emergency {f} | jq -c 'select(.service==\"auth\")'"),
        ("count by actor, 7 days",
         f"jq -r 'select(.time>=\"{week}\") | .actor.id' {f} | sort | uniq -c | sort -rn | head"),
        ("histogram, 24 h",
         f"jq -r 'select(.time>=\"{last}\") | .time[0:13]' {f} | sort | uniq -c"),
        ("page of 50 through a cursor",
         f"jq -c 'select(.service==\"payments\")' {f} | tail -n +2451 | head -50"),
    ]  # fmt: skip


def run_baseline(source: Path, request_id: str, scale: float) -> dict[str, float]:
    if shutil.which("jq") is None:
        raise SystemExit("the baseline needs jq: apt-get install jq")
    out = {}
    result = source.with_name("baseline.out")
    for name, command in baseline(source, request_id):
        # Into a real file: GNU grep stops at the first match when writing to /dev/null.
        started = time.perf_counter()
        subprocess.run(["bash", "-c", f"{command} > {result}"], check=False)
        out[name] = (time.perf_counter() - started) * scale
    result.unlink(missing_ok=True)
    return out


def _sizes(data: Path, store: str | None) -> tuple[int, int]:
    """(bytes the store occupies, bytes of the events' canonical JSON)."""
    if store is None:
        db = data / "glasslog.db"
        with closing(sqlite3.connect(db)) as conn:
            (body,) = conn.execute("SELECT sum(length(CAST(body AS BLOB))) FROM events").fetchone()
        return db.stat().st_size, int(body)
    import psycopg  # noqa: PLC0415

    with psycopg.connect(store) as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()),"
            " (SELECT sum(octet_length(body)) FROM glasslog.events)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def main() -> None:
    # The runs without the recheck warn each time (Log.search(unsafe_trust_indexes=True)):
    # measured on purpose here, so not printed.
    logging.getLogger("glasslog").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--baseline-events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/glasslog-query-bench"))
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument(
        "--deep-only", action="store_true", help="only page 1 against page 200 of full text"
    )
    parser.add_argument(
        "--no-deep",
        action="store_true",
        help="leave out the deep pages, which need 10,000 matches a query (about 2M events)",
    )
    parser.add_argument(
        "--store",
        help="a PostgreSQL server's admin URL: benchmark PostgreSQL (database "
        "glasslog_query_bench on that server, built once and reused)",
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    data = args.dir / ("data-pg" if args.store else "data")
    store = _pg_bench_database(args.store) if args.store else None
    build(data, args.events, args.store)
    if args.build_only:
        return
    report = Path(f"bench/out/query{'-postgres' if store else ''}.json")
    if args.deep_only:
        with Log.open(data, store=store) as log:
            deep = deep_pages(log)
        print_deep(deep)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.with_name(f"{report.stem}-deep.json").write_text(json.dumps(deep, indent=2) + "\n")
        return
    rng = random.Random(11)
    with Log.open(data, store=store) as log:
        request_ids = [
            log.get(str(rng.randrange(args.events)))["context"]["request_id"] for _ in range(RUNS)
        ]

    results: dict[str, dict[str, Any]] = {}
    with Log.open(data, store=store) as log:
        # One untimed pass first, as a running server would have done: it loads SQLite's
        # schema, statement cache and FTS5 structure records once per connection.
        for _, _, run in mix(request_ids):
            for i in range(len(request_ids)):
                run(log, i, True)
        for name, kind, run in mix(request_ids):
            samples: dict[bool, list[float]] = {True: [], False: []}
            # Alternating, so that both settings see the same caches and machine load.
            settings = (True,) if kind == "aggregation" else (True, False)
            for i in range(RUNS):
                for recheck in settings:
                    started = time.perf_counter()
                    run(log, i, recheck)
                    samples[recheck].append(time.perf_counter() - started)
            results[name] = {"kind": kind, **_timed(samples)}
        results["page of 50 through a cursor"] = {
            "kind": "filtered", **_timed(page_through(log, 50)),
        }  # fmt: skip
        deep = {} if args.no_deep else deep_pages(log)

    source = args.dir / "baseline.jsonl"
    if not source.exists() or sum(1 for _ in source.open()) != args.baseline_events:
        with source.open("w") as out:
            for event in generate(args.baseline_events, seed=7, start=END):
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
    scale = args.events / args.baseline_events
    base = run_baseline(source, request_ids[0], scale)

    size, body_bytes = _sizes(data, store)
    backend = "PostgreSQL" if store else "SQLite"
    print(f"store: {args.events:,} events on {backend}, {size / 2**30:.2f} GiB on disk, "
          f"raw event bytes {body_bytes / 2**30:.2f} GiB, index + full-text overhead "
          f"{(size - body_bytes) / body_bytes:.2f} x the raw event bytes")  # fmt: skip
    print(f"baseline: grep/jq on {args.baseline_events:,} events, extrapolated linearly "
          f"x{scale:g} to {args.events:,}")  # fmt: skip
    print("p50/p95: searches recheck every result against its signed body; 'unchecked' is "
          "the same search trusting the indexes, 'recheck' the ratio of the p50s")  # fmt: skip
    print(f"{'query':38} {'kind':12} {'p50 ms':>9} {'p95 ms':>9} {'grep/jq s':>10} "
          f"{'speed-up':>10} {'unchecked p50':>14} {'p95':>7} {'recheck':>8}")  # fmt: skip
    for name, r in results.items():
        b = base[name]
        cost = ""
        if "unchecked_p50_ms" in r:
            ratio = r["p50_ms"] / max(r["unchecked_p50_ms"], 1e-6)
            cost = (f"{r['unchecked_p50_ms']:14.1f} {r['unchecked_p95_ms']:7.1f} "
                    f"{ratio:7.2f}x")  # fmt: skip
        print(f"{name:38} {r['kind']:12} {r['p50_ms']:9.1f} {r['p95_ms']:9.1f} {b:10.1f} "
              f"{b * 1000 / max(r['p95_ms'], 1e-3):9.0f}x {cost}".rstrip())  # fmt: skip
        r["baseline_s"] = b
    if deep:
        print_deep(deep)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({**results, "deep pages": deep}, indent=2) + "\n")


if __name__ == "__main__":
    main()
