"""HTTP service benchmark (issue 11): ``glasslog serve`` under ingest, search and tail load.

Run: ``.venv/bin/python bench/http.py [--events 100000] [--tails 100] [--dir DIR]``

Everything runs on this machine: the server is a ``glasslog serve --rate 1000000``
subprocess on the embedded SQLite store (the rate limit is lifted so that it does not
interfere); the clients are threads of this process (httpx), except the tail stream
of step 4 and the quiet streams of step 6, which run in two processes of their own so
that no client's work delays the clock of the measured stream. The events:
``glasslog.demo.write_jsonl`` of 3N + 210 events (N = ``--events``), cut in order into
N events for steps 1 and 2, 210 for steps 4 and 7, N for step 5 and N for step 6; made
once per work directory. The CLI ingests them as generated. Over HTTP each request's
events are dated at the moment it is sent (the ``time`` field rewritten, same length),
as a live service receives them: the server's own ``audit.read`` events are dated now,
and historical events interleaved with them make full-text searches read most of the
store (measured in docs/benchmarks.md), which would measure the data, not the server.

1. **CLI baseline.** ``glasslog ingest FILE`` of the first N events into a fresh data
   directory, as a subprocess, exactly as bench/ingest.py runs it (process start
   included): events/s.
2. **HTTP ingest** (target 1: at least 0.6 times the CLI). A fresh data directory with
   a writer role (``ingest``) and a reader role (``search``, ``tail``), a key each; the
   server started; ``--clients`` threads POST the same N events to ``/v1/events`` as
   ``{"events": [...]}`` of ``--batch`` events each (split before the clock starts;
   each body is joined, dated, as it is sent), each waiting for its answer before
   sending the next. Events/s = accepted events / (last answer - first request).
   Nothing else runs.
3. **Unloaded search** (the baseline of target 2). The reader key runs a fixed mix of
   six searches over HTTP (``GET /v1/events?q=…``, pages of 50): a request-id lookup,
   service + last hour, service + action + outcome over the last 7 days, a metadata
   field, a full-text phrase, a word + service (bench/query.py's values);
   ``--rounds`` rounds after one untimed round, one request at a time, client-side
   time to the whole answer. Run before step 5 and after it (the store then holds N and
   2N events; the loaded searches saw every size between); the two runs are pooled
   into the baseline.
4. **Idle tail** (the baseline of target 3). One tail stream (``GET /v1/tail``, the
   reader key, no query) stays open from here to the end, parsing every event. 20
   POSTs of 10 events, 0.2 s apart: arrival on the stream - answer of the POST that
   carried the event, matched by event id.
5. **Under ingest load** (targets 2 and 3). Step 2's load with the next N events,
   while the reader runs the search mix in a loop (one request at a time) and the tail
   stream of step 4 receives every event. Search p95 loaded against unloaded (all
   searches of the mix pooled; each query is shown too); tail latency p95 (an event
   that has not arrived ``--catch-up`` seconds after the load counts as infinitely
   late). A negative latency is an event that reached the stream before the POST that
   carried it was answered.
6. **100 tail streams** (target 4). ``--tails`` - 1 more streams (each filtered to one
   service, so each receives about 1/20 of the events; read and counted, not parsed,
   in a separate process) join the stream of step 4, and the load of step 5 (ingest
   and searches) runs again with the last N events, for ``--tail-seconds`` at most.
   The server's RSS is sampled (psutil, every 50 ms) throughout the run; the target is
   its peak in this step, the baseline its RSS right after start-up. Ingest rate,
   search p95 and tail latency of this step are printed too, for information.
7. **After step 6** the quiet streams disconnect; one more POST of 10 events must still
   reach the stream of step 4 within 10 s, and the server must stop within 120 s of
   SIGTERM. Both are printed: not targets, but a run once found neither to hold.

Targets are printed in one table: figure, baseline (same run), ratio, target, met or
missed. Results go to bench/out/http.json. ``--py-spy DIR`` (``pip install py-spy``)
records where the server's threads hold the GIL during steps 2, 5 and 6, as collapsed
stacks in DIR; it slows the server a little, so its figures are not the benchmark's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# This file is named http.py. Run as a script, its directory comes first on sys.path,
# where it would shadow the standard library's ``http`` package that httpx imports:
# move it to the end (stable sort), where ``ingest`` and ``query`` are still found.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)

import httpx
import psutil

from glasslog.demo import SERVICES as ALL_SERVICES
from glasslog.demo import write_jsonl
from ingest import run_glasslog
from query import PHRASES, SERVICES, WORDS, _percentiles

JSON = {"content-type": "application/json"}
TABLES = ["cards", "users", "keys", "audit"]
POLICY = """
[roles.writer]
permissions = ["ingest"]
services = ["*"]
actions = ["*"]

[roles.reader]
permissions = ["search", "tail"]
services = ["*"]
actions = ["*"]
"""


# -- events ---------------------------------------------------------------------------


IDLE = 210
"""Events of step 4 (20 requests of 10) and of the check after step 6 (one of 10)."""
GRACE = 120.0
"""Seconds the server may take to stop after SIGTERM before it is killed."""


def sources(work: Path, n: int) -> list[Path]:
    """The files of steps 1-2, 4 (and 7), 5 and 6: ``write_jsonl(3n + IDLE, seed=7)`` cut
    in four, in order."""
    sizes = {"a": n, "idle": IDLE, "b": n, "c": n}
    parts = [work / f"events-{3 * n + IDLE}-{name}.jsonl" for name in sizes]
    if all(part.exists() for part in parts):
        return parts
    whole = work / f"events-{3 * n + IDLE}.jsonl"
    write_jsonl(whole, 3 * n + IDLE, seed=7)
    with whole.open("rb") as lines:
        for part, size in zip(parts, sizes.values(), strict=True):
            part.write_bytes(b"".join(next(lines) for _ in range(size)))
    whole.unlink()
    return parts


TIME = slice(53, 80)
"""Where a generated line holds its time: after ``{"id":"<36 characters>","time":"``."""


@dataclass(slots=True)
class Batch:
    ids: list[str]
    lines: list[bytes]

    def body(self) -> bytes:
        """The request body, every event dated now (as a live service receives them)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        return b'{"events":[' + b",".join(
            line[: TIME.start] + now + line[TIME.stop :] for line in self.lines
        ) + b"]}"  # fmt: skip


def batches(path: Path, size: int) -> list[Batch]:
    """The file's events in batches of ``size``, with their ids."""
    lines = path.read_bytes().splitlines()
    events = [json.loads(line) for line in lines]
    for line, event in zip(lines, events, strict=True):  # the layout that TIME assumes
        if line[TIME].decode() != event["time"] or line[TIME.start - 10 : TIME.start] != (
            b'","time":"'
        ):
            raise SystemExit(f"unexpected layout of a generated event: {line[:100]!r}")
    return [
        Batch([e["id"] for e in events[i : i + size]], lines[i : i + size])
        for i in range(0, len(lines), size)
    ]


# -- the server -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _glasslog() -> list[str]:
    script = Path(sys.executable).with_name("glasslog")
    return [str(script)] if script.exists() else [sys.executable, "-m", "glasslog"]


def setup(data: Path) -> dict[str, str]:
    """A fresh data directory with the writer and reader roles; their keys."""
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run([*_glasslog(), "init", "--data", str(data)], check=True, capture_output=True)
    with (data / "policy.toml").open("a", encoding="utf-8") as policy:
        policy.write(POLICY)
    keys = {}
    for role in ("writer", "reader"):
        out = subprocess.run(
            [*_glasslog(), "keys", "create", "--role", role, "--json", "--data", str(data)],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        keys[role] = json.loads(out)["key"]
    return keys


class Server:
    """``glasslog serve`` as a subprocess, its RSS sampled every 50 ms by a thread."""

    def __init__(self, data: Path, port: int, log: Path, py_spy: Path | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.py_spy = py_spy
        self._log = log.open("wb")
        command = [*_glasslog(), "serve", "--data", str(data), "--port", str(port)]
        self.proc = subprocess.Popen(
            [*command, "--rate", "1000000"], stdout=self._log, stderr=subprocess.STDOUT
        )
        self.ps = psutil.Process(self.proc.pid)
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self.timeline: list[tuple[str, float]] = []
        """(step, RSS in MB), one a second."""
        self._done = threading.Event()
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"glasslog serve did not get ready; see {log}")
            time.sleep(0.1)
        self.idle_rss = self.rss()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss(self) -> int:
        total = 0
        for p in [self.ps, *self.ps.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def _sample(self) -> None:
        started = time.monotonic()
        while not self._done.wait(0.05):
            with contextlib.suppress(psutil.Error):
                rss = self.rss()
                self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
                if time.monotonic() - started >= len(self.timeline):  # one a second
                    self.timeline.append((self.phase, round(_mb(rss), 1)))

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Label the RSS samples with ``name``; with ``--py-spy DIR``, record where the
        server's threads hold the GIL during the step into DIR/NAME.txt (collapsed stacks)."""
        self.phase = name
        if self.py_spy is None:
            yield
            return
        self.py_spy.mkdir(parents=True, exist_ok=True)
        out = self.py_spy / f"{name.replace(' ', '-')}.txt"
        spy = Path(sys.executable).with_name("py-spy")
        recorder = subprocess.Popen(
            [str(spy), "record", "--pid", str(self.proc.pid), "--gil", "--threads",
             "--nonblocking", "--rate", "100", "--format", "raw", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)  # attached
        try:
            yield
        finally:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(60)

    def stop(self) -> tuple[float, bool]:
        """SIGTERM: the seconds the server took to exit, and whether it had to be killed
        (still running :data:`GRACE` seconds later)."""
        self._done.set()
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        killed = False
        try:
            self.proc.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            killed = True
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        return time.perf_counter() - started, killed


# -- ingest over HTTP ---------------------------------------------------------------------


@dataclass
class Ingest:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    retries: int = 0
    seconds: float = 0.0
    acks: dict[int, float] = field(default_factory=dict)
    """Batch index -> time.monotonic() of the answer."""
    errors: list[str] = field(default_factory=list)


def ingest(
    url: str, key: str, work: list[Batch], clients: int, *, seconds: float | None = None
) -> Ingest:
    """POST every batch of ``work`` from ``clients`` threads, each one request at a time
    (or stop taking new batches after ``seconds``)."""
    result = Ingest()
    lock = threading.Lock()
    taken = 0
    started = time.monotonic()
    deadline = None if seconds is None else started + seconds

    def client() -> None:
        nonlocal taken
        auth = {"authorization": f"Bearer {key}", **JSON}
        with httpx.Client(base_url=url, headers=auth, timeout=300) as http:
            while True:
                with lock:
                    if taken == len(work) or (deadline and time.monotonic() > deadline):
                        return
                    i = taken
                    taken += 1
                while True:
                    try:
                        answer = http.post("/v1/events", content=work[i].body())
                    except httpx.HTTPError as exc:
                        result.errors.append(repr(exc))
                        return
                    if answer.status_code in (429, 503):  # back-pressure: retry as told
                        with lock:
                            result.retries += 1
                        time.sleep(float(answer.headers.get("retry-after", "1")))
                        continue
                    break
                done = time.monotonic()
                if answer.status_code != 200:
                    result.errors.append(f"{answer.status_code}: {answer.text[:200]}")
                    return
                body = answer.json()
                with lock:
                    result.acks[i] = done
                    result.accepted += body["accepted"]
                    result.duplicates += body["duplicates"]
                    result.rejected += len(body["rejected"])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = max(result.acks.values(), default=started) - started
    if result.errors:
        print(f"  ingest errors ({len(result.errors)}): {result.errors[0]}")
    return result


# -- searches ---------------------------------------------------------------------------


def search_mix(request_ids: list[str]) -> list[tuple[str, Callable[[int], str]]]:
    """(name, query of run i): bench/query.py's searches, over the events of this run."""
    return [
        ("point lookup by request_id", lambda i: f"request:{request_ids[i % len(request_ids)]}"),
        ("service + 1 h window", lambda i: f"service:{SERVICES[i % 5]} after:-1h"),
        ("service + action + outcome, 7 days",
         lambda i: f"service:{SERVICES[i % 5]} action:db.query outcome:failure after:-7d"),
        ("metadata field equality", lambda i: f"metadata.db.table:{TABLES[i % 4]}"),
        ("full-text phrase", lambda i: PHRASES[i % 4]),
        ("full-text word + service", lambda i: f"{WORDS[i % 5]} service:{SERVICES[i % 5]}"),
    ]  # fmt: skip


Samples = dict[str, list[float]]


def search(
    url: str,
    key: str,
    mix: list[tuple[str, Callable[[int], str]]],
    *,
    rounds: int | None = None,
    stop: threading.Event | None = None,
) -> Samples:
    """Seconds per search, by name: ``rounds`` rounds of the mix, or rounds until ``stop``."""
    samples: Samples = {name: [] for name, _ in mix}
    auth = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=auth, timeout=120) as http:
        i = 0
        while (rounds is None or i < rounds) and not (stop is not None and stop.is_set()):
            for name, query in mix:
                started = time.perf_counter()
                answer = http.get("/v1/events", params={"q": query(i)})
                samples[name].append(time.perf_counter() - started)
                answer.raise_for_status()
            i += 1
    return samples


def _pooled(*runs: Samples) -> list[float]:
    return [s for run in runs for values in run.values() for s in values]


def _p95_ms(samples: list[float]) -> float:
    return _percentiles(samples)[1] * 1000 if samples else math.nan


# -- tails ------------------------------------------------------------------------------


class Tail:
    """One live-tail stream, read in a process of its own, so that the threads of this one
    do not delay its clock (``time.monotonic`` is the same clock in every process)."""

    def __init__(self, url: str, key: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self._proc = context.Process(target=_tail, args=(url, key, theirs), daemon=True)
        self._proc.start()
        self.notes: list[str] = self._conn.recv() if self._conn.poll(60) else ["no answer"]
        if self.notes:
            raise SystemExit(f"the tail stream did not open: {self.notes}")

    def latencies(
        self, work: list[Batch], acks: dict[int, float], catch_up: float
    ) -> tuple[list[float], float]:
        """Seconds from each acknowledged event's answer to its arrival, and how long the
        stream took to deliver the last of them after the load; missing events are inf."""
        wanted = [(ident, acks[i]) for i in acks for ident in work[i].ids]
        started = time.monotonic()
        self._conn.send(([ident for ident, _ in wanted], started + catch_up))
        arrivals, self.notes = self._conn.recv()
        waited = time.monotonic() - started
        return [arrivals.get(ident, math.inf) - acked for ident, acked in wanted], waited

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._proc.join(10)


def _tail(url: str, key: str, conn: Any) -> None:
    """Child process: read the stream in a thread, note when each event arrives, and
    answer the parent's requests for the arrival times of ids (until it sends None)."""
    arrivals: dict[str, float] = {}
    notes: list[str] = []
    opened = threading.Event()

    def read() -> None:
        auth = {"authorization": f"Bearer {key}"}
        timeout = httpx.Timeout(30, read=None)
        try:
            with (
                httpx.Client(base_url=url, headers=auth, timeout=timeout) as http,
                http.stream("GET", "/v1/tail") as answer,
            ):
                if answer.status_code != 200:
                    notes.append(f"status {answer.status_code}")
                    return
                for line in answer.iter_lines():
                    if line.startswith("data: "):
                        arrived = time.monotonic()
                        ident = json.loads(line[6:]).get("id")
                        if isinstance(ident, str):
                            arrivals.setdefault(ident, arrived)
                    elif line.startswith("event: "):
                        notes.append(line)
                    elif line.startswith(": glasslog live tail"):
                        opened.set()
        except httpx.HTTPError as exc:
            notes.append(repr(exc))
        finally:
            opened.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    opened.wait(30)
    conn.send(list(notes))
    while (request := conn.recv()) is not None:
        ids, deadline = request
        waiting = set(ids)
        while waiting and time.monotonic() < deadline and reader.is_alive():
            time.sleep(0.05)
            waiting = {i for i in waiting if i not in arrivals}
        conn.send(({i: arrivals[i] for i in ids if i in arrivals}, list(notes)))


def _quiet_tails(url: str, key: str, queries: list[str], ready: Any, stop: Any, out: Any) -> None:
    """Child process: one stream per query, read and counted until ``stop`` is set."""
    out.put(asyncio.run(_quiet_streams(url, key, queries, ready, stop)))


async def _quiet_streams(
    url: str, key: str, queries: list[str], ready: Any, stop: Any
) -> dict[str, Any]:
    stats: dict[str, Any] = {"opened": 0, "bytes": 0, "events": 0, "notes": []}
    auth = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(60, read=None)

    async def one(http: httpx.AsyncClient, query: str) -> None:
        try:
            async with http.stream("GET", "/v1/tail", params={"q": query}) as answer:
                if answer.status_code != 200:
                    stats["notes"].append(f"status {answer.status_code}")
                    return
                first = True
                async for chunk in answer.aiter_raw():
                    if first:
                        first = False
                        stats["opened"] += 1
                        if stats["opened"] == len(queries):
                            ready.set()
                    stats["bytes"] += len(chunk)
                    stats["events"] += chunk.count(b"\ndata: ") + chunk.startswith(b"data: ")
                    if b"event: dropped" in chunk:
                        stats["notes"].append("dropped")
        except httpx.HTTPError as exc:
            stats["notes"].append(repr(exc))

    async with httpx.AsyncClient(
        base_url=url, headers=auth, limits=limits, timeout=timeout
    ) as http:
        tasks = [asyncio.create_task(one(http, q)) for q in queries]
        await asyncio.to_thread(stop.wait)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return stats


# -- one loaded step ---------------------------------------------------------------------


@dataclass
class Loaded:
    ingest: Ingest
    searches: Samples
    tail: list[float]
    catch_up: float
    cpu: float


def loaded(
    server: Server,
    keys: dict[str, str],
    work: list[Batch],
    tail: Tail,
    mix: list[tuple[str, Callable[[int], str]]],
    args: argparse.Namespace,
    *,
    seconds: float | None = None,
) -> Loaded:
    """The ingest load, with the search mix in a loop beside it and ``tail`` open."""
    cpu = server.cpu()
    stop = threading.Event()
    found: list[Samples] = []
    reader = threading.Thread(
        target=lambda: found.append(search(server.url, keys["reader"], mix, stop=stop))
    )
    reader.start()
    result = ingest(server.url, keys["writer"], work, args.clients, seconds=seconds)
    stop.set()
    reader.join()
    latencies, waited = tail.latencies(work, result.acks, args.catch_up)
    return Loaded(result, found[0], latencies, waited, server.cpu() - cpu)


# -- report ----------------------------------------------------------------------------------


def _ms(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if math.isfinite(v)]
    p50, p95 = _percentiles(values) if values else (math.nan, math.nan)
    return {
        "n": len(values),
        "missing": len(values) - len(finite),
        "p50_ms": p50 * 1000,
        "p95_ms": p95 * 1000,
        "min_ms": min(finite, default=math.nan) * 1000,
        "max_ms": max(finite, default=math.nan) * 1000,
    }


def _mb(n: int) -> float:
    return n / 2**20


def _row(name: str, figure: str, baseline: str, ratio: str, target: str, met: bool) -> None:
    print(f"{name:44} {figure:>18} {baseline:>30} {ratio:>8} {target:>14}  "
          f"{'met' if met else 'MISSED'}")  # fmt: skip


def report(r: dict[str, Any]) -> None:
    cli, http = r["cli"], r["http_ingest"]
    print("\nresults (every baseline measured in this run):")
    print(f"{'target':44} {'figure':>18} {'baseline':>30} {'ratio':>8} {'target':>14}  met?")
    print("-" * 125)
    ratio = http["events_per_s"] / cli["events_per_s"]
    _row("1. HTTP ingest, 8 clients x 1,000 events", f"{http['events_per_s']:,.0f} ev/s",
         f"CLI ingest {cli['events_per_s']:,.0f} ev/s", f"{ratio:.3f}x", ">= 0.6 x",
         ratio >= 0.6)  # fmt: skip
    s_loaded, s_idle = r["search_loaded"]["p95_ms"], r["search_unloaded"]["p95_ms"]
    _row("2. search p95 under ingest load", f"{s_loaded:.1f} ms", f"unloaded {s_idle:.1f} ms",
         f"{s_loaded / s_idle:.2f}x", "<= 2 x", s_loaded <= 2 * s_idle)  # fmt: skip
    t_loaded, t_idle = r["tail_loaded"]["p95_ms"], r["tail_idle"]["p95_ms"]
    _row("3. tail latency p95 under ingest load", f"{t_loaded:,.0f} ms",
         f"idle server {t_idle:,.0f} ms", f"{t_loaded / t_idle:.1f}x", "<= 500 ms",
         t_loaded <= 500)  # fmt: skip
    peak, idle = r["rss"]["peak_mb_100_tails"], r["rss"]["idle_mb"]
    _row(f"4. server peak RSS, load + {r['tails']} tail streams", f"{peak:.1f} MB",
         f"idle server {idle:.1f} MB", f"{peak / idle:.2f}x", "<= 300 MB",
         peak <= 300)  # fmt: skip

    print("\nsearch mix (ms, client-side; loaded = beside the ingest of step 5; "
          "w/ tails = step 6):")  # fmt: skip
    print(f"{'query':38} {'unloaded p50':>12} {'p95':>7} {'loaded p50':>11} {'p95':>7} "
          f"{'ratio':>6} {'w/ tails p50':>14} {'p95':>8}")  # fmt: skip
    for name, q in r["search_by_query"].items():
        u, lo, t = q["unloaded"], q["loaded"], q["tails"]
        print(f"{name:38} {u['p50_ms']:12.1f} {u['p95_ms']:7.1f} {lo['p50_ms']:11.1f} "
              f"{lo['p95_ms']:7.1f} {lo['p95_ms'] / u['p95_ms']:5.2f}x {t['p50_ms']:14.1f} "
              f"{t['p95_ms']:8.1f}")  # fmt: skip
    print(f"{'all (pooled)':38} {'':12} {s_idle:7.1f} {'':11} {s_loaded:7.1f} "
          f"{s_loaded / s_idle:5.2f}x {'':14} {r['search_tails']['p95_ms']:8.1f}")  # fmt: skip
    print(f"  samples: unloaded {r['search_unloaded']['n']} (before: p95 "
          f"{r['search_unloaded_before']['p95_ms']:.1f} ms, after: "
          f"{r['search_unloaded_after']['p95_ms']:.1f} ms), loaded "
          f"{r['search_loaded']['n']}, with tails {r['search_tails']['n']}")  # fmt: skip

    print("\ntail latency, answer of the POST -> arrival on the stream (ms):")
    for label, key in (("idle server", "tail_idle"), ("under ingest load", "tail_loaded"),
                       (f"load + {r['tails']} streams", "tail_100")):  # fmt: skip
        t = r[key]
        print(f"  {label:24} p50 {t['p50_ms']:9,.1f}  p95 {t['p95_ms']:9,.1f}  min "
              f"{t['min_ms']:9,.1f}  max {t['max_ms']:9,.1f}  events {t['n']:,}, never "
              f"arrived {t['missing']:,}")  # fmt: skip

    print("\nsteps:")
    print(f"  1. CLI ingest: {cli['seconds']:.2f} s, CPU {cli['cpu_s']:.1f} s, peak RSS "
          f"(process tree) {cli['peak_rss_mb']:.1f} MB")  # fmt: skip
    for label, key in (("2. HTTP ingest alone", "http_ingest"),
                       ("5. HTTP ingest + searches + 1 tail", "step5"),
                       (f"6. HTTP ingest + searches + {r['tails']} tails", "step6")):  # fmt: skip
        s = r[key]
        print(f"  {label:40} {s['accepted']:>8,} events in {s['seconds']:6.2f} s = "
              f"{s['events_per_s']:7,.0f} ev/s; server CPU {s['server_cpu_s']:6.1f} s "
              f"({s['server_cpu_us_per_event']:,.0f} µs/event); 503/429 retries "
              f"{s['retries']}; peak RSS {s['peak_rss_mb']:.1f} MB"
              + (f"; tail caught up {s['catch_up_s']:.1f} s after" if "catch_up_s" in s
                 else ""))  # fmt: skip
    q = r["quiet_tails"]
    print(f"  step 6 quiet streams: {q['opened']} opened, {q['events']:,} events "
          f"({_mb(q['bytes']):.1f} MB) received; notes {q['notes'][:3]}")  # fmt: skip
    print(f"  RSS peaks by step (MB): {r['rss']['by_step']}")
    a = r["after_disconnects"]
    print(
        f"  after the {r['tails'] - 1} quiet streams disconnected: {a['arrived_within_10_s']} "
        f"of {a['sent']} new events reached the stream of step 4 within 10 s"
        + ("" if a["arrived_within_10_s"] == a["sent"] else "  <-- the live tail is stuck")
    )
    print(f"  SIGTERM: the server stopped in {r['stop_s']:.1f} s" + (
        f"  <-- did not stop within {GRACE:g} s: killed" if r["killed"] else ""
    ))  # fmt: skip


def _step(result: Ingest, cpu: float, peak: int) -> dict[str, Any]:
    n = result.accepted
    return {
        "accepted": n,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "retries": result.retries,
        "seconds": result.seconds,
        "events_per_s": n / result.seconds if result.seconds else 0.0,
        "server_cpu_s": cpu,
        "server_cpu_us_per_event": cpu * 1e6 / max(n, 1),
        "peak_rss_mb": _mb(peak),
        "errors": result.errors[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1_000, help="events per request")
    parser.add_argument("--tails", type=int, default=100, help="open tail streams in step 6")
    parser.add_argument("--tail-seconds", type=float, default=30.0, help="length of step 6")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the unloaded mix")
    parser.add_argument(
        "--catch-up", type=float, default=60.0,
        help="seconds the tail may take after the load to deliver the last event",
    )  # fmt: skip
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    parser.add_argument(
        "--py-spy", type=Path, default=None, metavar="DIR",
        help="record the server with py-spy (--gil, collapsed stacks) during steps 2, 5 and "
        "6 into DIR (pip install py-spy); slows the server a little",
    )  # fmt: skip
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="glasslog-http-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; work directory {work}")  # fmt: skip
    n = args.events
    files = sources(work, n)
    idle_file = files.pop(1)
    print(f"input: write_jsonl({3 * n + IDLE:,}) cut in {n:,} events for "
          f"steps 1-2, {IDLE} for steps 4 and 7, {n:,} for step 5, {n:,} for step 6; "
          f"{files[0].stat().st_size / n:.0f} bytes/event")  # fmt: skip

    # 1. the CLI
    print("1. glasslog ingest FILE (CLI) …", flush=True)
    cli = run_glasslog(work / "cli-data", files[0], None, [])
    if cli["summary"]["accepted"] != n:
        raise SystemExit(f"the CLI accepted {cli['summary']}")
    r: dict[str, Any] = {
        "events": n,
        "clients": args.clients,
        "batch": args.batch,
        "tails": args.tails,
        "load_average_at_start": load,
        "cli": {
            "seconds": cli["seconds"],
            "events_per_s": n / cli["seconds"],
            "cpu_s": cli["cpu"],
            "peak_rss_mb": _mb(cli["peak_tree_rss"]),
        },
    }

    # 2. HTTP ingest alone
    data = work / "http-data"
    keys = setup(data)
    server = Server(data, args.port or _free_port(), work / "serve.log", args.py_spy)
    print(f"server up, RSS {_mb(server.idle_rss):.1f} MB; 2. HTTP ingest …", flush=True)
    tail: Tail | None = None
    try:
        first = batches(files[0], args.batch)
        cpu = server.cpu()
        with server.step("2 ingest"):
            alone = ingest(server.url, keys["writer"], first, args.clients)
        r["http_ingest"] = _step(alone, server.cpu() - cpu, server.peaks.get("2 ingest", 0))
        if alone.accepted != n:
            raise SystemExit(f"HTTP ingest accepted {alone.accepted:,} of {n:,} events")

        del first
        lines = files[0].read_bytes().splitlines()
        rng = random.Random(11)
        request_ids = [
            json.loads(lines[rng.randrange(n)])["context"]["request_id"] for _ in range(40)
        ]
        mix = search_mix(request_ids)

        # 3. and 4. the baselines
        server.phase = "3-4 unloaded"
        tail = Tail(server.url, keys["reader"])
        search(server.url, keys["reader"], mix, rounds=1)  # warm-up, untimed
        print("3. unloaded searches, 4. idle tail …", flush=True)
        before = search(server.url, keys["reader"], mix, rounds=args.rounds)
        idle_work = batches(idle_file, 10)
        idle_acks: dict[int, float] = {}
        auth = {"authorization": f"Bearer {keys['writer']}", **JSON}
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
            for i, b in enumerate(idle_work[:-1]):
                http.post("/v1/events", content=b.body()).raise_for_status()
                idle_acks[i] = time.monotonic()
                time.sleep(0.2)
        idle_tail, _ = tail.latencies(idle_work, idle_acks, args.catch_up)

        # 5. under ingest load
        print("5. ingest + searches + 1 tail …", flush=True)
        second = batches(files[1], args.batch)
        with server.step("5 loaded"):
            step5 = loaded(server, keys, second, tail, mix, args)
        del second
        server.phase = "3 unloaded after"
        after = search(server.url, keys["reader"], mix, rounds=args.rounds)

        # 6. with the quiet tail streams
        print(f"6. ingest + searches + {args.tails} tails for {args.tail_seconds:g} s …",
              flush=True)  # fmt: skip
        third = batches(files[2], args.batch)
        context = multiprocessing.get_context("spawn")
        ready, stop, out = context.Event(), context.Event(), context.Queue()
        queries = [f"service:{ALL_SERVICES[i % 20]}" for i in range(args.tails - 1)]
        child = context.Process(
            target=_quiet_tails, args=(server.url, keys["reader"], queries, ready, stop, out)
        )
        with server.step("6 tails"):
            child.start()
            if not ready.wait(60):
                raise SystemExit("the quiet tail streams did not all open")
            step6 = loaded(server, keys, third, tail, mix, args, seconds=args.tail_seconds)
            stop.set()
            quiet = out.get(timeout=60)
            child.join(30)
        peaks = dict(server.peaks)

        # After the quiet streams disconnected: does the first stream still deliver?
        time.sleep(1)
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
            http.post("/v1/events", content=idle_work[-1].body()).raise_for_status()
            check = {len(idle_work) - 1: time.monotonic()}
        late, _ = tail.latencies(idle_work, check, 10.0)
        r["after_disconnects"] = {"sent": len(late), "arrived_within_10_s": sum(
            math.isfinite(x) for x in late
        )}  # fmt: skip
    finally:
        r["stop_s"], r["killed"] = server.stop()
        if tail is not None:
            tail.close()

    r["step5"] = _step(step5.ingest, step5.cpu, peaks.get("5 loaded", 0))
    r["step5"]["catch_up_s"] = step5.catch_up
    r["step6"] = _step(step6.ingest, step6.cpu, peaks.get("6 tails", 0))
    r["step6"]["catch_up_s"] = step6.catch_up
    r["quiet_tails"] = quiet
    r["search_unloaded_before"] = _ms(_pooled(before))
    r["search_unloaded_after"] = _ms(_pooled(after))
    r["search_unloaded"] = _ms(_pooled(before, after))
    r["search_loaded"] = _ms(_pooled(step5.searches))
    r["search_tails"] = _ms(_pooled(step6.searches))
    r["search_by_query"] = {
        name: {
            "unloaded": _ms(before[name] + after[name]),
            "loaded": _ms(step5.searches[name]),
            "tails": _ms(step6.searches[name]),
        }
        for name in before
    }
    r["tail_idle"] = _ms(idle_tail)
    r["tail_loaded"] = _ms(step5.tail)
    r["tail_100"] = _ms(step6.tail)
    r["tail_notes"] = tail.notes
    r["rss"] = {
        "idle_mb": _mb(server.idle_rss),
        "peak_mb_100_tails": _mb(peaks.get("6 tails", 0)),
        "by_step": {k: round(_mb(v), 1) for k, v in peaks.items()},
        "timeline_mb": server.timeline,
    }
    report(r)
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/http.json").write_text(json.dumps(r, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
