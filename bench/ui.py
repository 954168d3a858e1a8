"""Web UI benchmark (issue 13): the page of ``glasslog serve`` in Debian's Chromium.

Run: ``.venv/bin/python bench/ui.py [--dir DIR] [--rounds 20]``

The browser is Debian's ``chromium``, headless, driven by Playwright (as tests/ui/
drives it; Playwright never downloads a browser). The server is a ``glasslog serve
--rate 1000000`` subprocess on the embedded SQLite store (the rate limit is lifted so
that it does not interfere). Everything runs on this machine.

1. **First results after submit** (target: ≤ 300 ms on a store of about 1M events).
   ``--dir`` names a data directory holding at least 1,000,000 events; the default is
   /tmp/qb1m/data, the store bench/query.py builds with ``--dir /tmp/qb1m`` (demo
   events over the 30 days before 2026-11-01), made here with bench/query.py's
   ``build`` if missing (that takes minutes). A role ``bench-reader`` (search,
   aggregate, get, trace, tail over every service and action) is appended to its
   policy.toml unless there, and a key of it created in the store. The browser signs
   in with it; then, for each search of the mix (the six searches of bench/http.py,
   with bench/query.py's values and time windows inside the store's 30 days), the
   Query box is filled, a MutationObserver is installed on the results, and one
   ``page.evaluate`` takes ``performance.now()`` and submits the form
   (``requestSubmit()``, as Enter does): the figure is the page's own clock from that
   instant to the first callback that finds a row of the new results table in the DOM,
   so no Playwright round-trip is counted. (The next animation frame after it is
   recorded too, for information.) Before the next search the page must be quiet (no
   request in flight: the histogram and facets load after the rows). ``--rounds``
   rounds after one untimed round. p50/p95 per search and pooled; **the figure is the
   pooled p95.** Baseline, same run, interleaved with the UI's searches: the same
   search's API time alone, ``GET /v1/events?q=…&limit=50`` (the page's request) with
   httpx from Python, to the whole answer, pooled p95. The difference is the UI's own
   overhead (request set-up, JSON parsing, rendering).
2. **The page's own JavaScript and CSS** (target: ≤ 300 KB uncompressed). The sum of
   the sizes of src/glasslog/ui/static/**/*.js and *.css **without vendor/** (third-
   party code, not the page's own): that sum is the figure. The total with vendor/ is
   printed too, and a cross-check: the bodies of the .js and .css files under /ui/ the
   browser received while loading the page and signing in, which runs the empty search
   (Playwright's ``response`` events), with their Content-Encoding.
3. **Live tail at 1,000 events/s** (target: no long task over 200 ms). A fresh small
   data directory (``glasslog init``, a writer and a reader role, a key each, as
   bench/http.py sets up), its own server. The page signs in with the reader key and
   opens the live view (``#view=live&q=service:payments``); once it says "live", a
   PerformanceObserver for ``longtask`` entries (``buffered: true``) is installed in
   the page. A thread then POSTs 1,000 events/s for ``--tail-seconds`` seconds to
   ``/v1/events`` with the writer key: a batch of 100 every 0.1 s on a fixed schedule,
   each event a ``glasslog.demo`` event of service payments with a fresh UUIDv7 and
   dated now. Reported: the longest task (and the count of long tasks, > 50 ms by the
   browser's definition) from the POSTs' start until the page has shown every event
   (or 15 s more), the events the page counted ("N received") against those accepted,
   and the page's own events/s counter, read once a second.

Targets are printed in one table: figure, baseline (same run), ratio, target, met or
missed. Results go to bench/out/ui.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, this directory comes first on sys.path, where bench/http.py would
# shadow the standard library's ``http`` package that httpx imports: move it to the end
# (stable sort), where ``query`` is still found; bench/http.py is loaded by its path.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)

import httpx
from playwright.sync_api import Browser, Page, Response, sync_playwright

from glasslog.demo import generate
from glasslog.event import uuid7
from glasslog.log import Log
from query import END, PHRASES, SERVICES, WORDS, _hour, _percentiles, _stored_size, build

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "glasslog" / "ui" / "static"
DEFAULT_DIR = Path("/tmp/qb1m/data")
MIN_EVENTS = 1_000_000
TABLES = ["cards", "users", "keys", "audit"]
READER = """
[roles.bench-reader]
permissions = ["search", "aggregate", "get", "trace", "tail"]
services = ["*"]
actions = ["*"]
"""
TAIL_POLICY = """
[roles.writer]
permissions = ["ingest"]
services = ["*"]
actions = ["*"]

[roles.reader]
permissions = ["search", "aggregate", "get", "trace", "tail"]
services = ["*"]
actions = ["*"]
"""


def _http_module() -> Any:
    """bench/http.py (its Server, setup and helpers), loaded by path."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("bench_http", Path(__file__).with_name("http.py"))
    if spec is None or spec.loader is None:
        raise SystemExit("bench/http.py is missing: bench/ui.py uses its Server class")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench_http = _http_module()


# -- the browser ---------------------------------------------------------------------------


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless (tests/ui/conftest.py's way)."""
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit(
            "Chromium is not installed: run scripts/test or `apt-get install chromium` "
            "(Playwright's own download is not used)."
        )
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, url: str, key: str, path: str = "/") -> None:
    """Open ``path`` and sign in with ``key``; wait for the header to name the user."""
    page.goto(url + path)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator("#who").filter(has_text=re.compile(r"\S")).wait_for()


class Quiet:
    """Counts the page's requests in flight, to wait until none is."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.open = 0
        page.on("request", lambda _: self._add(1))
        page.on("requestfinished", lambda _: self._add(-1))
        page.on("requestfailed", lambda _: self._add(-1))

    def _add(self, n: int) -> None:
        self.open += n

    def wait(self, timeout: float = 30.0) -> None:
        """Return once no request has been in flight for 100 ms."""
        deadline = time.monotonic() + timeout
        calm = 0
        while calm < 2 and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
            calm = calm + 1 if self.open <= 0 else 0


# -- 1. first results after submit --------------------------------------------------------


def search_mix(request_ids: list[str]) -> list[tuple[str, Callable[[int], str]]]:
    """(name, query of round i): bench/http.py's six searches, with bench/query.py's values
    and windows inside the store's 30 days (it ends at query.END, not now)."""
    week = f"after:{END - timedelta(days=7):%Y-%m-%dT%H:%MZ} before:{END:%Y-%m-%dT%H:%MZ}"
    return [
        ("point lookup by request_id", lambda i: f"request:{request_ids[i % len(request_ids)]}"),
        ("service + 1 h window", lambda i: f"service:{SERVICES[i % 5]} {_hour(i)}"),
        ("service + action + outcome, 7 days",
         lambda i: f"service:{SERVICES[i % 5]} action:db.query outcome:failure {week}"),
        ("metadata field equality", lambda i: f"metadata.db.table:{TABLES[i % 4]}"),
        ("full-text phrase", lambda i: PHRASES[i % 4]),
        ("full-text word + service", lambda i: f"{WORDS[i % 5]} service:{SERVICES[i % 5]}"),
    ]  # fmt: skip


SUBMIT = """() => {
  const old = document.querySelector("#results tbody");
  return new Promise((resolve) => {
    const found = {};
    const observer = new MutationObserver(() => {
      const row = document.querySelector("#results tbody tr");
      if (found.row === undefined && row && row.parentElement !== old) {
        found.row = performance.now();
        observer.disconnect();
        requestAnimationFrame(() => { found.frame = performance.now(); resolve(found); });
      }
      const error = document.querySelector("#query-error");
      if (error && !error.hidden && found.row === undefined) {
        observer.disconnect();
        resolve({ error: error.textContent });
      }
    });
    observer.observe(document.body, { childList: true, subtree: true, characterData: true,
                                       attributes: true, attributeFilter: ["hidden"] });
    setTimeout(() => { observer.disconnect(); resolve({ timeout: true }); }, 60000);
    found.submit = performance.now();
    document.querySelector("#query-form").requestSubmit();
  });
}"""
"""Submit the query form and resolve with the page's clock at the submit, at the first row
of the new results (``row``) and at the next animation frame (``frame``)."""


def first_results(
    page: Page, url: str, key: str, mix: list[tuple[str, Callable[[int], str]]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """Seconds from submit to the first row, to the next frame, and of the API alone, by
    search: one untimed round, then ``rounds`` rounds, each search in the UI then the API."""
    quiet = Quiet(page)
    sign_in(page, url, key)
    quiet.wait()
    box = page.get_by_label("Query", exact=True)
    ui: dict[str, list[float]] = {name: [] for name, _ in mix}
    frame: dict[str, list[float]] = {name: [] for name, _ in mix}
    api: dict[str, list[float]] = {name: [] for name, _ in mix}
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=120) as h:
        for i in range(rounds + 1):
            for name, query in mix:
                q = query(i)
                box.fill(q)
                got = page.evaluate(SUBMIT)
                if "row" not in got:
                    raise SystemExit(f"the page showed no results for {q!r}: {got}")
                quiet.wait()
                started = time.perf_counter()
                answer = h.get("/v1/events", params={"q": q, "limit": 50})
                seconds = time.perf_counter() - started
                answer.raise_for_status()
                if not answer.json()["events"]:
                    raise SystemExit(f"{q!r} found nothing in the store: pick values it holds")
                if i:
                    ui[name].append((got["row"] - got["submit"]) / 1000)
                    frame[name].append((got["frame"] - got["submit"]) / 1000)
                    api[name].append(seconds)
            if i % 5 == 0:
                print(f"  round {i}/{rounds}", flush=True)
    return ui, frame, api


def reader_key(data: Path) -> str:
    """Append the bench-reader role to DATA's policy unless there; a new key of it."""
    policy = data / "policy.toml"
    if "[roles.bench-reader]" not in policy.read_text(encoding="utf-8"):
        with policy.open("a", encoding="utf-8") as f:
            f.write(READER)
    out = subprocess.run(
        [*bench_http._glasslog(), "keys", "create", "--role", "bench-reader", "--json",
         "--data", str(data)],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    key: str = json.loads(out)["key"]
    return key


def request_ids(data: Path, events: int, n: int = 40) -> list[str]:
    """Request ids of ``n`` events picked at random (seed 11, as bench/query.py does)."""
    rng = random.Random(11)
    with Log.open(data) as log:
        return [log.get(str(rng.randrange(events)))["context"]["request_id"] for _ in range(n)]


# -- 2. the page's own size ------------------------------------------------------------------


def static_sizes() -> dict[str, Any]:
    """Bytes of the static .js and .css files, without and with vendor/."""
    files = sorted(p for p in STATIC.rglob("*") if p.suffix in (".js", ".css") and p.is_file())
    own = {str(p.relative_to(STATIC)): p.stat().st_size for p in files if "vendor" not in p.parts}
    vendor = {str(p.relative_to(STATIC)): p.stat().st_size for p in files if "vendor" in p.parts}
    return {
        "own_bytes": sum(own.values()),
        "with_vendor_bytes": sum(own.values()) + sum(vendor.values()),
        "own_files": own,
        "vendor_files": vendor,
    }


def downloaded(browser: Browser, url: str, key: str) -> dict[str, dict[str, Any]]:
    """The .js and .css files under /ui/ the browser received loading the page and signing
    in (which runs the empty search): body size and Content-Encoding, by path."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    got: dict[str, dict[str, Any]] = {}

    def record(response: Response) -> None:
        path = response.url.removeprefix(url).split("?")[0]
        if path.startswith("/ui/") and path.endswith((".js", ".css")):
            with contextlib.suppress(Exception):
                got[path] = {
                    "bytes": len(response.body()),
                    "encoding": response.headers.get("content-encoding", "identity"),
                }

    try:
        page = context.new_page()
        quiet = Quiet(page)
        page.on("response", record)
        sign_in(page, url, key)
        quiet.wait()
    finally:
        context.close()
    return got


# -- 3. the live tail --------------------------------------------------------------------------


OBSERVE = """() => {
  window.benchLongTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.benchLongTasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask", buffered: true });
  return performance.now();
}"""


def post_load(
    url: str, key: str, seconds: float, rate: int, batch: int, out: dict[str, Any]
) -> None:
    """POST ``rate`` events/s for ``seconds``: ``batch`` events every ``batch / rate`` s on a
    fixed schedule; count the accepted ones into ``out``."""
    templates = list(generate(1_000, seed=13))
    auth = {"authorization": f"Bearer {key}"}
    interval = batch / rate
    accepted = late = 0
    errors: list[str] = []
    with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
        started = time.monotonic()
        for k in range(round(seconds / interval)):
            wait = started + k * interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                late += 1
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            events = [
                {**templates[(k * batch + j) % len(templates)], "id": str(uuid7()), "time": now,
                 "service": "payments"}
                for j in range(batch)
            ]  # fmt: skip
            answer = http.post("/v1/events", json={"events": events})
            if answer.status_code != 200:
                errors.append(f"{answer.status_code}: {answer.text[:200]}")
                continue
            accepted += answer.json()["accepted"]
        out.update(accepted=accepted, seconds=time.monotonic() - started, late_batches=late,
                   errors=errors[:5])  # fmt: skip


def received(page: Page) -> int:
    """The live view's "N received" counter."""
    text = page.locator("#live-view .count").inner_text()
    return int(text.split()[0].replace(",", ""))


def live_tail(browser: Browser, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Step 3 on a fresh data directory and server of its own."""
    data = work / "tail-data"
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(
        [*bench_http._glasslog(), "init", "--data", str(data)], check=True, capture_output=True
    )
    with (data / "policy.toml").open("a", encoding="utf-8") as policy:
        policy.write(TAIL_POLICY)
    keys = {}
    for role in ("writer", "reader"):
        out = subprocess.run(
            [*bench_http._glasslog(), "keys", "create", "--role", role, "--json", "--data",
             str(data)], check=True, capture_output=True,
        ).stdout  # fmt: skip
        keys[role] = json.loads(out)["key"]
    server = bench_http.Server(data, bench_http._free_port(), work / "serve-tail.log")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        sign_in(page, server.url, keys["reader"], "/#view=live&q=service:payments")
        page.locator(".live-state", has_text=re.compile(r"^live$")).wait_for()
        observed_from = page.evaluate(OBSERVE)
        load: dict[str, Any] = {}
        writer = threading.Thread(
            target=post_load,
            args=(server.url, keys["writer"], args.tail_seconds, 1_000, 100, load),
        )
        writer.start()
        rates: list[str] = []
        while writer.is_alive():
            page.wait_for_timeout(1_000)
            rates.append(page.locator("#live-view .rate").inner_text())
        writer.join()
        deadline, shown = time.monotonic() + 15, received(page)
        while shown < load["accepted"] and time.monotonic() < deadline:
            page.wait_for_timeout(250)
            shown = received(page)
        page.wait_for_timeout(500)  # the last frames, and their long tasks if any
        tasks = page.evaluate("() => window.benchLongTasks")
        rows = page.locator("#live-view tbody tr").count()
        state = page.locator(".live-state").inner_text()
    finally:
        context.close()
        server.stop()
    during = [d for start, d in tasks if start >= observed_from]
    peak_rate = max((float(r.split()[0]) for r in rates), default=0.0)
    return {
        **load,
        # Over the scheduled length, or the actual one if sending fell behind.
        "posted_per_s": load["accepted"] / max(load["seconds"], args.tail_seconds),
        "received": shown,
        "rows_in_table": rows,
        "state": state,
        "rate_counter": rates,
        "rate_counter_peak": peak_rate,
        "long_tasks": len(during),
        "longest_task_ms": max(during, default=0.0),
        "long_tasks_ms": during,
        "long_tasks_before": len(tasks) - len(during),
    }


# -- report --------------------------------------------------------------------------------------


def _ms(values: list[float]) -> dict[str, float]:
    p50, p95 = _percentiles(values) if values else (math.nan, math.nan)
    return {"n": len(values), "p50_ms": p50 * 1000, "p95_ms": p95 * 1000,
            "max_ms": max(values, default=math.nan) * 1000}  # fmt: skip


def _row(name: str, figure: str, baseline: str, ratio: str, target: str, met: bool) -> None:
    print(f"{name:44} {figure:>14} {baseline:>34} {ratio:>7} {target:>16}  "
          f"{'met' if met else 'MISSED'}")  # fmt: skip


def report(r: dict[str, Any]) -> None:
    print("\nresults (every baseline measured in this run):")
    print(f"{'target':44} {'figure':>14} {'baseline':>34} {'ratio':>7} {'target':>16}  met?")
    print("-" * 125)
    ui, api = r["first_results"]["pooled"], r["first_results"]["api_pooled"]
    _row(f"1. first results after submit, p95 ({r['store_events'] / 1e6:.1f}M)",
         f"{ui['p95_ms']:.1f} ms", f"API alone (httpx) p95 {api['p95_ms']:.1f} ms",
         f"{ui['p95_ms'] / api['p95_ms']:.2f}x", "<= 300 ms", ui["p95_ms"] <= 300)  # fmt: skip
    s = r["size"]
    _row("2. the page's own JS + CSS (without vendor/)", f"{s['own_bytes'] / 1000:.1f} KB",
         f"with vendor/ {s['with_vendor_bytes'] / 1000:.1f} KB",
         f"{s['own_bytes'] / s['with_vendor_bytes']:.2f}x", "<= 300 KB",
         s["own_bytes"] <= 300_000)  # fmt: skip
    t = r["tail"]
    _row("3. live tail at 1,000 ev/s: longest task", f"{t['longest_task_ms']:.0f} ms",
         f"{t['long_tasks']} long tasks (> 50 ms)", "", "none > 200 ms",
         t["longest_task_ms"] <= 200)  # fmt: skip

    print("\n1. submit -> first row in the DOM (the page's clock), next frame, and the API alone "
          "(ms):")  # fmt: skip
    print(f"{'search':38} {'UI p50':>8} {'p95':>8} {'frame p95':>10} {'API p50':>8} {'p95':>8}"
          f" {'UI - API p50':>13}")  # fmt: skip
    by = r["first_results"]["by_search"]
    for name, q in {**by, "all (pooled)": {
        "ui": ui, "frame": r["first_results"]["frame_pooled"], "api": api
    }}.items():  # fmt: skip
        print(f"{name:38} {q['ui']['p50_ms']:8.1f} {q['ui']['p95_ms']:8.1f} "
              f"{q['frame']['p95_ms']:10.1f} {q['api']['p50_ms']:8.1f} {q['api']['p95_ms']:8.1f} "
              f"{q['ui']['p50_ms'] - q['api']['p50_ms']:13.1f}")  # fmt: skip
    print(f"  {ui['n']} samples ({r['rounds']} rounds after one untimed round); the figure is "
          f"the pooled p95 of the UI column")  # fmt: skip

    print(f"\n2. sizes: own {s['own_bytes']:,} bytes in {len(s['own_files'])} files (the "
          f"figure), vendor/ {s['with_vendor_bytes'] - s['own_bytes']:,} bytes "
          f"({', '.join(s['vendor_files'])})")  # fmt: skip
    got = r["downloaded"]
    own = sum(v["bytes"] for k, v in got.items() if "/vendor/" not in k)
    encodings = sorted({v["encoding"] for v in got.values()})
    print(f"  the browser received {len(got)} .js/.css files under /ui/ on load, sign-in and "
          f"its first search: {sum(v['bytes'] for v in got.values()):,} bytes ({own:,} without "
          f"vendor/), Content-Encoding {', '.join(encodings)}")  # fmt: skip
    missing = sorted(set(s["own_files"]) - {k.removeprefix("/ui/") for k in got})
    if missing:
        print(f"  not loaded then (loaded on demand or unused): {', '.join(missing)}")

    print(f"\n3. live tail: {t['accepted']:,} events accepted in {t['seconds']:.1f} s "
          f"({t['posted_per_s']:,.0f} ev/s over {r['tail_seconds']:g} s; "
          f"{t['late_batches']} batches sent late); the page "
          f"received {t['received']:,}, its table holds {t['rows_in_table']} rows (it keeps "
          f"the newest 500), state {t['state']!r}")  # fmt: skip
    print(f"  the page's events/s counter, once a second: {', '.join(t['rate_counter'])}")
    print(f"  long tasks during the load: {t['long_tasks']} "
          f"({', '.join(f'{d:.0f}' for d in t['long_tasks_ms']) or 'none'} ms); before it "
          f"(page load, sign-in): {t['long_tasks_before']}")  # fmt: skip
    if t["errors"]:
        print(f"  POST errors: {t['errors']}")


def _pool(samples: dict[str, list[float]]) -> list[float]:
    return [s for values in samples.values() for s in values]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR,
        help=f"data directory of >= 1M events (default {DEFAULT_DIR}, built if missing)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds of the mix")
    parser.add_argument("--tail-seconds", type=float, default=10.0, help="length of step 3")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="glasslog-ui-bench-"))
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; work directory {work}")  # fmt: skip
    data: Path = args.dir
    if data.name != "data" and (data / "data" / "glasslog.db").exists():
        data = data / "data"  # bench/query.py's --dir, not its data directory
    size = _stored_size(data, None)
    if size is None and data == DEFAULT_DIR:
        build(data, 1_001_600, None)
        size = _stored_size(data, None)
    if size is None or size < MIN_EVENTS:
        raise SystemExit(
            f"{data} holds {size or 0:,} events; step 1 needs >= {MIN_EVENTS:,}: build one "
            "with .venv/bin/python bench/query.py --events 1001600 --build-only --dir DIR"
        )
    print(f"store: {data}, {size:,} events", flush=True)
    ids = request_ids(data, min(size, 1_001_600))
    mix = search_mix(ids)
    key = reader_key(data)
    r: dict[str, Any] = {"store": str(data), "store_events": size, "rounds": args.rounds,
                         "tail_seconds": args.tail_seconds,
                         "load_average_at_start": load}  # fmt: skip
    r["size"] = static_sizes()
    with chromium() as browser:
        server = bench_http.Server(data, bench_http._free_port(), work / "serve.log")
        try:
            print("1. first results after submit …", flush=True)
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(60_000)
            try:
                ui, frame, api = first_results(context.new_page(), server.url, key, mix,
                                               args.rounds)  # fmt: skip
            finally:
                context.close()
            print("2. what the browser downloads …", flush=True)
            r["downloaded"] = downloaded(browser, server.url, key)
        finally:
            server.stop()
        print(f"3. live tail at 1,000 events/s for {args.tail_seconds:g} s …", flush=True)
        r["tail"] = live_tail(browser, work, args)
    r["first_results"] = {
        "pooled": _ms(_pool(ui)),
        "frame_pooled": _ms(_pool(frame)),
        "api_pooled": _ms(_pool(api)),
        "by_search": {
            name: {"ui": _ms(ui[name]), "frame": _ms(frame[name]), "api": _ms(api[name])}
            for name in ui
        },
        "queries": {name: [query(i) for i in range(1, args.rounds + 1)] for name, query in mix},
    }
    report(r)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ui.json").write_text(json.dumps(r, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
