"""Several writer processes on one PostgreSQL log: one dense seq range, one consistent tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from glasslog.datadir import DataDir
from glasslog.demo import write_jsonl
from glasslog.verify import verify_store

WRITERS = 4
EVENTS = 50_000


@pytest.mark.slow
def test_four_writers_make_one_dense_log(tmp_path: Path, pg_database: str) -> None:
    """4 processes x 50,000 events, as if on 4 hosts sharing the key: no gap, no repeat."""
    first = tmp_path / "host0"
    subprocess.run(
        [sys.executable, "-m", "glasslog", "init", "--data", str(first), "--store", pg_database],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    hosts = [first]
    for i in range(1, WRITERS):  # every host holds the same keys, as a deployment would
        shutil.copytree(first, tmp_path / f"host{i}")
        hosts.append(tmp_path / f"host{i}")
    sources = []
    for i in range(WRITERS):
        source = tmp_path / f"events{i}.jsonl"
        write_jsonl(source, EVENTS, seed=100 + i)
        sources.append(source)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "glasslog",
                "ingest",
                str(source),
                "--data",
                str(host),
                "--store",
                pg_database,
                "--workers",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for host, source in zip(hosts, sources, strict=True)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err.decode()
        assert json.loads(out)["accepted"] == EVENTS
    with psycopg.connect(pg_database) as conn:
        n, low, high, ids = conn.execute(
            "SELECT count(*), min(seq), max(seq), count(DISTINCT id) FROM glasslog.events"
        ).fetchone() or (0, 0, 0, 0)
    total = WRITERS * EVENTS
    assert (n, low, high, ids) == (total, 0, total - 1, total)
    report = verify_store(pg_database, DataDir(first).verifier(), workers=2)
    assert report.events == total
    assert report.pending == 0
