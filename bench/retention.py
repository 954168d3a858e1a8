"""Retention benchmark: prune the oldest 10 % of a store and measure the space reclaimed.

Run: ``.venv/bin/python bench/retention.py [--events 10000000] [--dir /tmp/ret10m]``

Reuses the store ``bench/query.py --events N --dir DIR --build-only`` builds (and
builds it so when it is missing): N generated events over the 30 days before
``query.END``. Retention is run through the library (``run_retention``, the path of
``glasslog retention run``) as of ``query.END``, with one rule, ``default`` = the
span minus the fraction to prune, so that the oldest ``--fraction`` of the events fall
past it.

Reported, for the target "pruning 10 % reclaims ≥ 80 % of their bytes" (issue 14):

* **their bytes**: the share of the store the pruned events held before the run: the
  file's size (WAL checkpointed) less the tree and checkpoints, which stay by design,
  times the pruned fraction of the events (the generated events are alike in size);
  beside it, the raw payload of their rows (body, commits, salts), an exact lower bound;
* **reclaimed**: the file's size before less its size after;
* the ratio, and the time of the run (events pruned per second).

Pruning changes the store for good: a second run on it has nothing to prune. ``--copy``
runs on a copy of the store (it needs as much free disk again).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path

from glasslog.datadir import DataDir
from glasslog.ingest.bulk import ingest_lines
from glasslog.ingest.pipeline import Settings
from glasslog.lifecycle.retention import RetentionPolicy, Rule, run_retention
from glasslog.store import open_store
from query import END, build

SPAN = timedelta(days=30)
"""What the generated events span (``glasslog.demo.generate``)."""


def _file_bytes(db: Path) -> int:
    """The store file's size with its WAL copied in and truncated."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return db.stat().st_size + sum(
        p.stat().st_size for p in db.parent.glob(db.name + "-*") if p.exists()
    )


def _measure(db: Path, before_us: int) -> dict[str, int]:
    """Counts and sizes of the store that the run does not change, or will remove."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
        (size,) = conn.execute("SELECT max(size) FROM checkpoints").fetchone()
        (tree,) = conn.execute("SELECT coalesce(sum(length(hashes)), 0) FROM tiles").fetchone()
        (notes,) = conn.execute("SELECT coalesce(sum(length(note)), 0) FROM checkpoints").fetchone()
        (payload, doomed) = conn.execute(
            "SELECT coalesce(sum(length(body) + length(commits) + length(salts)), 0), count(*)"
            " FROM events WHERE time < ?",
            (before_us,),
        ).fetchone()
        (pruned,) = conn.execute("SELECT count(*) FROM pruned").fetchone()
    return {
        "events": int(events),
        "size": int(size or 0),
        "tree_bytes": int(tree) + int(notes),
        "payload_bytes": int(payload),
        "doomed": int(doomed),
        "pruned": int(pruned),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/ret10m"))
    parser.add_argument("--fraction", type=float, default=0.10, help="share of events to prune")
    parser.add_argument("--copy", action="store_true", help="prune a copy of the store")
    args = parser.parse_args()
    source = args.dir / "data"
    build(source, args.events, None)
    data = source
    if args.copy:
        data = args.dir / "data-retention-copy"
        shutil.rmtree(data, ignore_errors=True)
        with closing(sqlite3.connect(source / "glasslog.db", isolation_level=None)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        shutil.copytree(source, data)
    db = data / "glasslog.db"
    keep_hours = round(SPAN / timedelta(hours=1) * (1 - args.fraction))
    keep = timedelta(hours=keep_hours)
    before_us = int((END - keep).timestamp() * 1_000_000)
    measured = _measure(db, before_us)
    if measured["pruned"]:
        sys.exit(
            f"{db} was pruned by an earlier run ({measured['pruned']:,} events): rebuild it "
            "(delete it and run again), or use --copy on a fresh one"
        )
    before = _file_bytes(db)
    share = (before - measured["tree_bytes"]) * measured["doomed"] / max(measured["events"], 1)
    policy = RetentionPolicy(default=Rule("", keep, f"{keep_hours}h"), rules=())
    store = open_store(DataDir(data).store_spec(None))

    @contextmanager
    def lock() -> Iterator[None]:
        with DataDir(data).writer_lock(), store.lock_writer():
            yield

    def record(events: list[dict[str, object]]) -> list[int]:
        # As `glasslog retention run` records them (cli._record): ingested, then signed.
        # (cli itself is not imported: bench/http.py would shadow the standard library's.)
        lines = io.BytesIO(b"".join(json.dumps(e).encode() + b"\n" for e in events))
        with tempfile.TemporaryFile("w+", encoding="utf-8") as rejected:
            ingest_lines(DataDir(data), lines, settings=Settings(), workers=1, rejected=rejected)
        return [store.get_by_id(uuid.UUID(str(e["id"])).bytes).seq for e in events]

    started = time.perf_counter()
    try:
        summary = run_retention(
            store,
            policy,
            now=END,
            actor={"id": "owner:bench", "type": "user"},
            record=record,
            lock=lock,
        )
    finally:
        store.close()
    seconds = time.perf_counter() - started
    after = _file_bytes(db)
    reclaimed = before - after
    result = {
        "events": measured["events"],
        "pruned": summary.pruned,
        "rule": f"default = {keep_hours}h as of {END:%Y-%m-%d}",
        "file_bytes_before": before,
        "file_bytes_after": after,
        "pruned_share_bytes": round(share),
        "pruned_payload_bytes": measured["payload_bytes"],
        "reclaimed_bytes": reclaimed,
        "reclaimed_of_share": round(reclaimed / share, 3) if share else None,
        "seconds": round(seconds, 1),
        "events_per_second": round(summary.pruned / seconds) if seconds else None,
        "reclaim_steps": summary.reclaimed,
    }
    print(
        f"pruned {summary.pruned:,} of {measured['events']:,} events in {seconds:.1f} s "
        f"({result['events_per_second']:,} events/s)\n"
        f"their bytes: {share / 1e6:,.1f} MB of the store (raw payload "
        f"{measured['payload_bytes'] / 1e6:,.1f} MB)\n"
        f"reclaimed: {reclaimed / 1e6:,.1f} MB ({before / 1e6:,.1f} MB → {after / 1e6:,.1f} MB): "
        f"{100 * reclaimed / share if share else 0:.0f} % of their bytes (target ≥ 80 %)"
    )
    out = Path("bench/out/retention.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
