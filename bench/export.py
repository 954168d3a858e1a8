"""Export benchmark (issue 14 §4): a bundle of 100,000 events with proofs, and its check.

Run: ``.venv/bin/python bench/export.py [--events 100000] [--dir DIR] [--runs 3]``

Builds the store with ``glasslog ingest`` of generated events (bench/query.py's
``build``, reused on later runs), then, alternating so that both sides of each pair
see the same caches and machine load:

1. **Export** of every event (``glasslog.bundle.write_bundle``, as ``glasslog export ''``
   does, without appending its ``export.create`` event so that the store stays the same
   between runs), beside its baseline: a plain search of the same events, paged to
   the end (``Log.search``, 1,000 a page), which reads and rechecks them but builds no
   evidence and no proof. Target: ≤ 30 s.
2. **Verification** of the bundle (``glasslog.bundle.verify_bundle`` with the log's
   key, ``--workers`` processes as ``glasslog verify`` uses), beside its baseline:
   decompressing the bundle and parsing each line of its events as JSON. Target: ≤ 10 s.

Prints the median of the runs, the bundle's size and the machine's load average (a
busy shared machine stretches every figure; the baselines show by how much).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from glasslog.bundle import verify_bundle, write_bundle
from glasslog.datadir import DataDir
from glasslog.identity import vkey_history
from glasslog.log import MAX_PAGE, Log
from query import build

EXPORT_TARGET = 30.0
VERIFY_TARGET = 10.0


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children (workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


CPU: dict[str, list[float]] = {}


def _timed(run: Callable[[], object], key: str) -> float:
    """Wall seconds of ``run``; its CPU seconds go to :data:`CPU` under ``key``."""
    cpu, started = _cpu(), time.perf_counter()
    run()
    CPU.setdefault(key, []).append(_cpu() - cpu)
    return time.perf_counter() - started


def _search_all(log: Log) -> int:
    """The baseline of an export: every event, paged, as a plain search returns them."""
    seen, cursor = 0, None
    while True:
        page = log.search("", limit=MAX_PAGE, sort="time", cursor=cursor)
        seen += len(page.events)
        if page.cursor is None:
            return seen
        cursor = page.cursor


def _parse_all(bundle: bytes) -> int:
    """The baseline of a verification: decompress and parse every event as JSON."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(bundle)), mode="r:") as tar:
        for member in tar:
            if member.name == "events.jsonl":
                file = tar.extractfile(member)
                assert file is not None
                return sum(1 for line in file.read().splitlines() if json.loads(line))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/glasslog-export-bench"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    data = args.dir / "data"
    build(data, args.events, None)
    datadir = DataDir(data)
    vkey = datadir.vkey()
    times: dict[str, list[float]] = {"export": [], "search": [], "verify": [], "parse": []}
    size = events = 0
    with Log.open(data) as log, tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "bundle.tar.gz"
        history, signer = vkey_history(log.store), datadir.signer()
        for run in range(args.runs):

            def export() -> None:
                nonlocal events
                written = write_bundle(
                    out,
                    log=log,
                    reader=None,
                    query="",
                    principal={"id": "owner:bench", "type": "user", "roles": []},
                    history=history,
                    signer=signer,
                    comment="bench/export.py",
                )
                events = written.events

            times["search"].append(_timed(lambda: _search_all(log), "search"))
            times["export"].append(_timed(export, "export"))
            bundle = out.read_bytes()
            size = len(bundle)
            times["parse"].append(_timed(lambda: _parse_all(bundle), "parse"))  # noqa: B023
            times["verify"].append(
                _timed(
                    lambda: verify_bundle(bundle, trusted=vkey, workers=args.workers),  # noqa: B023
                    "verify",
                )
            )
            print(
                f"run {run + 1}/{args.runs}: export {times['export'][-1]:.1f} s "
                f"(search {times['search'][-1]:.1f} s), verify {times['verify'][-1]:.1f} s "
                f"(parse {times['parse'][-1]:.1f} s)",
                flush=True,
            )

    def median(key: str) -> float:
        return statistics.median(times[key])

    load = os.getloadavg()
    print()
    print(
        f"{events:,} events, bundle {size / 1e6:.1f} MB; median of {args.runs} runs; "
        f"{os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in load)}"
    )
    print(f"{'':34} {'seconds':>8} {'baseline':>9} {'ratio':>6} {'target':>7}  {'CPU s':>6}")
    for name, key, base, target in (
        ("export (evidence + proofs)", "export", "search", EXPORT_TARGET),
        (f"verify ({args.workers} workers)", "verify", "parse", VERIFY_TARGET),
    ):
        ok = "ok" if median(key) <= target else "MISSED"
        print(
            f"{name:34} {median(key):8.1f} {median(base):9.1f} "
            f"{median(key) / median(base):6.1f} {target:5.0f} s {ok:6}  "
            f"{statistics.median(CPU[key]):6.1f}"
        )
    print("baselines: a plain search of the same events paged to the end; decompressing "
          "the bundle and parsing its events as JSON. CPU s: user + system seconds of the "
          "process and its workers, which a loaded machine does not stretch")  # fmt: skip


if __name__ == "__main__":
    main()
