"""Client SDK benchmark (issue 12): what ``glasslog.client`` costs the application.

Run: ``.venv/bin/python bench/client.py [--calls 20000] [--spool-calls 5000] [--imports 30]
[--dir DIR]``

1. **log() cost to the caller** (targets: p99 <= 20 µs without a spool, <= 50 µs with
   one). A fresh data directory and a ``glasslog serve`` subprocess on it (the rate
   limit lifted, as bench/http.py does; the data directory on /dev/shm when there is
   one, so that the server's own fsyncs do not queue on the disk the spool is measured
   on: in production the server is another machine); a
   :class:`glasslog.client.Client` with its default batching (100 events or 1 s) whose
   background sender really sends to that server while this thread calls
   ``client.log()`` ``--calls`` times in a loop (actor, target, two metadata fields,
   inside a ``glasslog.context`` block), each call timed alone with
   ``perf_counter_ns``. Then the same with ``spool=DIR``, a directory in the work
   directory (``--dir``, by default under bench/out: a real disk, not a tmpfs): every
   call appends and ``fdatasync``s before it returns. The machine's own ``write`` +
   ``fdatasync`` of one 300-byte record in that directory is measured alone too, as
   context: the spool cannot be cheaper than it. p50, p99 and max are reported; the
   figure is p99, and every call counts (GC pauses and the sender thread's share of
   the interpreter lock included). For information, both runs are repeated with 5,000
   calls paced at 2,000 a second (the thread sleeps between calls, as an application
   waits for I/O), where the sender's work rarely coincides with a call.
2. **Import time** (target: ``import glasslog.client`` <= 1.2 x ``import httpx``
   alone). Each import runs in a fresh interpreter (``sys.executable -c``, the clock
   around the import statement only), ``--imports`` times each, alternating, in the
   same run; the medians are compared. Bytecode is cached for both, as after
   ``pip install`` (a cache directory in the work directory, filled first).

Further measurements (the OTLP comparison of issue 12, bench/otlp.py's
``run(work_dir) -> dict``) join in :func:`measurements`: each returns a dict whose
``rows`` are printed in the targets table; the whole dict goes to bench/out/client.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# bench/http.py, beside this file, would shadow the standard library's ``http`` package
# that httpx imports: move this directory to the end of sys.path (as bench/http.py does).
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)


import glasslog.client
from otlp import server, setup

HERE = Path(__file__).resolve().parent


Row = tuple[str, str, str, str, str, bool]


# -- the server (bench/otlp.py's, as bench/http.py starts it) --------------------------------


@contextlib.contextmanager
def serving(data: Path) -> Iterator[tuple[str, str]]:
    """A fresh data directory served by ``glasslog serve``: (url, writer key).

    The data directory goes on /dev/shm (tmpfs) when there is one: in production the
    server runs on another machine, and its fsyncs on this disk would otherwise be
    measured as the spool's."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        data = Path(tempfile.mkdtemp(prefix="glasslog-bench-client-", dir=shm)) / "data"
    key = setup(data)  # bench/otlp.py's: the same writer role
    try:
        with server(data, data.parent / "serve.log") as url:
            yield url, key
    finally:
        if data.parent.parent == shm:
            shutil.rmtree(data.parent, ignore_errors=True)


# -- 1. log() -------------------------------------------------------------------------------

PACED_RATE = 2_000.0
"""Calls per second of the paced runs (information, not the targets' figure)."""
PACED_CALLS = 5_000


def _stats_us(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)
    return {
        "n": n,
        "p50_us": ordered[n // 2] / 1000,
        "p99_us": ordered[min(n - 1, round(0.99 * (n - 1)))] / 1000,
        "max_us": ordered[-1] / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
    }


def _time_logs(client: glasslog.client.Client, calls: int, rate: float = 0) -> list[int]:
    """Each call's duration; with ``rate``, calls start 1/rate s apart (the thread sleeps
    between them, as an application waits for I/O), else back to back."""
    clock = time.perf_counter_ns
    samples = [0] * calls
    gap = int(1e9 / rate) if rate else 0
    next_start = clock()
    with glasslog.client.context(request_id="req-bench", actor={"id": "alice", "type": "user"}):
        for i in range(calls):
            if gap:
                next_start += gap
                pause = next_start - clock()
                if pause > 0:
                    time.sleep(pause / 1e9)
            started = clock()
            client.log("invoice.refund", target=("invoice", f"in_{i}"), amount=i, currency="EUR")
            samples[i] = clock() - started
    return samples


def fsync_cost(directory: Path, rounds: int = 1000) -> dict[str, float]:
    """``write`` + ``fdatasync`` of one 300-byte record, appended, as the spool does."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    record = b"x" * 300
    samples = []
    try:
        for _ in range(rounds):
            started = time.perf_counter_ns()
            os.write(fd, record)
            os.fdatasync(fd)
            samples.append(time.perf_counter_ns() - started)
    finally:
        os.close(fd)
        path.unlink()
    return _stats_us(samples)


def measure_log(work: Path, calls: int, spool_calls: int) -> dict[str, Any]:
    with serving(work / "data") as (url, key):
        with glasslog.client.Client(url, key, service="payments") as client:
            _time_logs(client, 1000)  # warm-up: first batches, connection
            plain = _time_logs(client, calls)
            paced = _time_logs(client, PACED_CALLS, rate=PACED_RATE)
            delivered = client.flush(120)
        spool = work / "spool"
        shutil.rmtree(spool, ignore_errors=True)
        with glasslog.client.Client(url, key, service="payments", spool=spool) as client:
            _time_logs(client, 200)
            spooled = _time_logs(client, spool_calls)
            spool_paced = _time_logs(client, PACED_CALLS, rate=PACED_RATE)
            delivered = client.flush(120) and delivered
        fsync = fsync_cost(work)
    without, with_spool = _stats_us(plain), _stats_us(spooled)
    rows: list[Row] = [
        ("1a. client.log() p99, no spool", f"{without['p99_us']:.1f} µs",
         f"p50 {without['p50_us']:.1f} µs", "", "<= 20 µs", without["p99_us"] <= 20),
        ("1b. client.log() p99, spool (fdatasync)", f"{with_spool['p99_us']:.1f} µs",
         f"fdatasync alone p99 {fsync['p99_us']:.1f} µs",
         f"{with_spool['p99_us'] / fsync['p99_us']:.2f}x", "<= 50 µs",
         with_spool["p99_us"] <= 50),
    ]  # fmt: skip
    return {"no_spool": without, "spool": with_spool, "fdatasync": fsync,
            "no_spool_paced": _stats_us(paced), "spool_paced": _stats_us(spool_paced),
            "paced_rate": PACED_RATE, "all_delivered": delivered, "rows": rows}  # fmt: skip


# -- 2. import time -------------------------------------------------------------------------

_IMPORT = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def _import_seconds(module: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", _IMPORT.format(module)], check=True,
                         capture_output=True, text=True, env=env).stdout  # fmt: skip
    return float(out)


def measure_import(rounds: int, work: Path) -> dict[str, Any]:
    # As installed: bytecode cached for both (pip compiles it). PYTHONDONTWRITEBYTECODE,
    # if set here, would make glasslog compile from source on every start while httpx's
    # site-packages bytecode was cached, so both get a cache outside the source tree.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    for module in ("glasslog.client", "httpx"):
        _import_seconds(module, env)  # fills the cache
    client, alone = [], []
    for _ in range(rounds):
        client.append(_import_seconds("glasslog.client", env))
        alone.append(_import_seconds("httpx", env))
    c, h = statistics.median(client) * 1000, statistics.median(alone) * 1000
    rows: list[Row] = [
        ("2. import glasslog.client (median)", f"{c:.1f} ms", f"import httpx {h:.1f} ms",
         f"{c / h:.2f}x", "<= 1.2 x", c <= 1.2 * h),
    ]  # fmt: skip
    return {"glasslog_client_ms": c, "httpx_ms": h, "ratio": c / h, "rounds": rounds,
            "glasslog_client_min_ms": min(client) * 1000, "httpx_min_ms": min(alone) * 1000,
            "rows": rows}  # fmt: skip


# -- the run --------------------------------------------------------------------------------


def measurements(args: argparse.Namespace, work: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    """Every measurement of this benchmark, by name, in the order they run."""
    found: dict[str, Callable[[], dict[str, Any]]] = {
        "log": lambda: measure_log(work, args.calls, args.spool_calls),
        "import": lambda: measure_import(args.imports, work),
    }
    otlp = HERE / "otlp.py"
    if otlp.exists() and not args.skip_otlp:  # issue 12's third target, from bench/otlp.py
        spec = importlib.util.spec_from_file_location("otlp_bench", otlp)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found["otlp"] = lambda: _with_otlp_rows(dict(module.run(work / "otlp")))
    return found


def _with_otlp_rows(result: dict[str, Any]) -> dict[str, Any]:
    """bench/otlp.py's result, with its row of the targets table (unless it gives its own)."""
    if "rows" not in result and {"native", "otlp", "ratio"} <= result.keys():
        otlp, native = result["otlp"]["events_per_second"], result["native"]["events_per_second"]
        result["rows"] = [
            ("3. OTLP ingest vs native POST /v1/events", f"{otlp:,.0f} ev/s",
             f"native {native:,.0f} ev/s", f"{result['ratio']:.2f}x", ">= 0.5 x",
             result["ratio"] >= 0.5),
        ]  # fmt: skip
    return result


def _row(name: str, figure: str, baseline: str, ratio: str, target: str, met: bool) -> None:
    print(f"{name:42} {figure:>12} {baseline:>30} {ratio:>8} {target:>10}  "
          f"{'met' if met else 'MISSED'}")  # fmt: skip


def report(results: dict[str, dict[str, Any]]) -> None:
    print("\nresults (every baseline measured in this run):")
    print(f"{'target':42} {'figure':>12} {'baseline':>30} {'ratio':>8} {'target':>10}  met?")
    print("-" * 112)
    for result in results.values():
        for row in result.get("rows", []):
            _row(*row)
    if "log" in results:
        r = results["log"]
        print("\nclient.log() to the caller (µs):")
        rate = f"{r['paced_rate']:,.0f}/s"
        for label, key in (("no spool", "no_spool"), (f"no spool, {rate}", "no_spool_paced"),
                           ("spool", "spool"), (f"spool, {rate}", "spool_paced"),
                           ("write + fdatasync alone", "fdatasync")):  # fmt: skip
            s = r[key]
            print(f"  {label:24} p50 {s['p50_us']:8.1f}  p99 {s['p99_us']:8.1f}  max "
                  f"{s['max_us']:9.1f}  mean {s['mean_us']:8.1f}  calls {s['n']:,}")  # fmt: skip
        print(f"  every event acknowledged by the server: {r['all_delivered']}")
    if "import" in results:
        r = results["import"]
        fastest, alone = r["glasslog_client_min_ms"], r["httpx_min_ms"]
        print(f"\nimport, fastest of {r['rounds']}: glasslog.client {fastest:.1f} ms, httpx "
              f"{alone:.1f} ms ({fastest / alone:.2f}x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000, help="log() calls, no spool")
    parser.add_argument("--spool-calls", type=int, default=5_000, help="log() calls, spool")
    parser.add_argument("--imports", type=int, default=30, help="fresh interpreters per import")
    parser.add_argument("--dir", type=Path, help="work directory on the disk to measure")
    parser.add_argument("--skip-otlp", action="store_true", help="skip bench/otlp.py")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        work = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="glasslog-bench-client-", dir=HERE / "out")))  # fmt: skip
        work.mkdir(parents=True, exist_ok=True)
        results: dict[str, dict[str, Any]] = {}
        for name, measure in measurements(args, work).items():
            print(f"measuring {name}…", flush=True)
            results[name] = measure()
        report(results)
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        **results,
    }  # fmt: skip
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "client.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print("\nwritten: bench/out/client.json")


if __name__ == "__main__":
    main()
