"""Access benchmark (issue 10): what enforcement and read auditing cost a query.

Run: ``.venv/bin/python bench/access.py [--dir DIR]`` on a store built by
``bench/query.py`` (the same ``--dir``; ``--events`` there sets its size).

Two measurements, each against a baseline measured in the same run, alternating so
that both see the same caches and machine load:

1. **Enforcement.** bench/query.py's query mix as the owner of the data directory
   (``Log``, no rules) and as a principal with a scoped, masking role (``Reader``:
   15 of the 20 services, every action, two environments, 30 days, two masked fields
   and one hidden one), p50 and p95 side by side. Target: the role's p95 at most 1.10
   times the owner's.
2. **Read auditing.** The same principal's searches with and without an ``Auditor``
   whose batches (100 reads) are appended to the ledger in this process, as a server
   would: the difference per read, with the batch appends spread over their reads.
   Target: at most 1 ms at p95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from glasslog.access.audit import Auditor
from glasslog.access.enforce import Principal, Reader
from glasslog.access.policy import check_policy
from glasslog.datadir import DataDir
from glasslog.demo import SERVICES as ALL_SERVICES
from glasslog.ingest.pipeline import Preparer, Sequencer, submit
from glasslog.log import Log
from query import END, PHRASES, RUNS, SERVICES, WORDS, _hour

LEFT_OUT = ("admin", "fraud", "ledger", "storage", "scheduler")
ROLE = f"""\
[roles.scoped]
permissions  = ["search", "aggregate"]
services     = {[s for s in ALL_SERVICES if s not in LEFT_OUT]!r}
actions      = ["*"]
environments = ["prod", "staging"]
max_age      = "30d"
mask         = ["/actor/email", "/source/ip"]
hide         = ["/metadata/region"]
""".replace("'", '"')

Query = Callable[[Any, int], Any]


def mix(request_ids: list[str]) -> list[tuple[str, Query]]:
    """bench/query.py's mix, callable on a Log and on a Reader alike."""
    return [
        ("point lookup by request_id",
         lambda r, i: r.search(f"request:{request_ids[i]}", now=END)),
        ("service + 1 h window",
         lambda r, i: r.search(f"service:{SERVICES[i % 5]} {_hour(i)}", now=END)),
        ("service + action + outcome, 7 days", lambda r, i: r.search(
            f"service:{SERVICES[i % 5]} action:db.query outcome:failure after:-7d", now=END)),
        ("metadata field equality", lambda r, i: r.search(
            f"metadata.db.table:{['cards', 'users', 'keys', 'audit'][i % 4]}", now=END)),
        ("full-text phrase", lambda r, i: r.search(PHRASES[i % 4], now=END)),
        ("full-text word + service", lambda r, i: r.search(
            f"{WORDS[i % 5]} service:{SERVICES[i % 5]}", now=END)),
        ("count by actor, 7 days",
         lambda r, i: r.count_by("after:-7d", "actor.id", top=10, now=END)),
        ("histogram, 24 h", lambda r, i: r.histogram("after:-24h", now=END)),
    ]  # fmt: skip


def _p(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/glasslog-query-bench"))
    args = parser.parse_args()
    data = args.dir / "data"
    role = check_policy(ROLE).roles["scoped"]
    principal = Principal(id="key:bench", name="bench", kind="service", roles=(role,))
    with Log.open(data) as log:
        size = log.store.size()
        request_ids = [
            log.get(str(s))["context"]["request_id"] for s in range(0, size, size // RUNS)
        ][:RUNS]
        reader = Reader(log, principal, now=END)
        for _, run in mix(request_ids):  # warm both paths, as a running server would be
            for i in range(RUNS):
                run(log, i)
                run(reader, i)
        print(f"store: {size:,} events; role: {len(role.services)} of {len(ALL_SERVICES)} "
              "services, 2 environments, 30 days, 2 masked fields, 1 hidden")  # fmt: skip
        heads = f"{'owner p50':>10} {'p95':>7} {'role p50':>9} {'p95':>7} {'p95 ratio':>10}"
        print(f"{'query':38} {heads}")
        worst = 0.0
        for name, run in mix(request_ids):
            owner: list[float] = []
            scoped: list[float] = []
            for i in range(RUNS):
                for target, samples in ((log, owner), (reader, scoped)):
                    started = time.perf_counter()
                    run(target, i)
                    samples.append(time.perf_counter() - started)
            o50, o95 = _p(owner)
            s50, s95 = _p(scoped)
            worst = max(worst, s95 / o95)
            print(f"{name:38} {o50:10.2f} {o95:7.2f} {s50:9.2f} {s95:7.2f} {s95 / o95:9.2f}x")
        print(f"worst p95 ratio: {worst:.2f}x (target <= 1.10x)")

    datadir = DataDir(data)
    with Log.open(data) as log, datadir.writer_lock():
        sequencer = Sequencer(log.store, datadir.signer(), datadir=datadir)
        preparer = Preparer(fingerprint_key=datadir.fingerprint_key())

        def append(events: list[dict[str, Any]]) -> None:
            submit(sequencer, preparer, events)

        auditor = Auditor(append, batch=100)
        plain = Reader(log, principal, now=END)
        audited = Reader(log, principal, now=END, auditor=auditor)
        without: list[float] = []
        with_audit: list[float] = []
        queries = [run for _, run in mix(request_ids)[:6]]  # the searches
        for i in range(RUNS * 10):
            run = queries[i % len(queries)]
            for target, samples in ((plain, without), (audited, with_audit)):
                started = time.perf_counter()
                run(target, i % RUNS)
                samples.append(time.perf_counter() - started)
        auditor.flush()
        cost = sorted(w - p for w, p in zip(with_audit, without, strict=True))
        p50 = statistics.median(cost) * 1000
        p95 = cost[round(0.95 * (len(cost) - 1))] * 1000
        mean = statistics.fmean(cost) * 1000
        print(f"audit.read: {len(cost)} searches, batches of 100 appended in-process; cost "
              f"per read p50 {p50:.3f} ms, p95 {p95:.3f} ms, mean {mean:.3f} ms "
              "(target p95 <= 1 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
