"""Queries, proofs and verification from a PostgreSQL read replica (docs/postgres.md).

scripts/postgres starts a hot standby that streams the primary's WAL; a log written
on the primary is read from the standby with nothing but a different URL, and a
writer pointed at the standby by mistake gets one clear error, not a traceback.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from glasslog.errors import StoreError
from glasslog.log import Log
from glasslog.store import open_store
from glasslog.testing import temporary_log
from glasslog.verify import verify_store
from tests.conftest import make_event
from tests.test_cli import _jsonl, run


def _replica_of(primary: str) -> str:
    """The URL of the same database on the read replica."""
    replica = os.environ.get("GLASSLOG_TEST_POSTGRES_REPLICA")
    if not replica:
        pytest.fail(
            "GLASSLOG_TEST_POSTGRES_REPLICA is not set: run scripts/test (its throwaway "
            'cluster has a streaming replica), or eval "$(scripts/postgres start)"'
        )
    return urlunsplit(urlsplit(replica)._replace(path=urlsplit(primary).path))


def _caught_up(primary: str, replica: str, timeout: float = 30.0) -> None:
    """Wait until the replica has replayed everything the primary has written."""
    with psycopg.connect(primary, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(replica, autocommit=True) as conn:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                ).fetchone()
            if done == (True,):
                return
        except psycopg.OperationalError:
            pass  # the database itself may not have reached the replica yet
        assert time.monotonic() < deadline, "the replica did not catch up in time"
        time.sleep(0.05)


def test_a_replica_answers_queries_proofs_and_verify(pg_database: str) -> None:
    """Everything that only reads works on the standby and gives the primary's answers."""
    events = [
        make_event(service="billing" if i % 3 else "auth", reason=f"replica check {i}")
        for i in range(120)
    ]
    with temporary_log(store=pg_database) as tlog:
        assert all(r.ok for r in tlog.submit(events))
        tlog.checkpoint()
        datadir = tlog.datadir
        replica = _replica_of(pg_database)
        _caught_up(pg_database, replica)
        with Log(datadir, open_store(replica)) as log:
            page = log.search("service:auth replica", limit=1000)
            assert [e["seq"] for e in page.events] == [
                e["seq"] for e in tlog.log.search("service:auth replica", limit=1000).events
            ]
            assert len(page.events) == 40
            assert log.count("service:billing").count == 80
            assert sum(n for _, n in log.histogram("").buckets) == 120
            assert log.inclusion(7) == tlog.log.inclusion(7)
        report = verify_store(replica, datadir.verifier(), workers=1)
        assert (report.events, report.checkpoints) == (120, 1)


def test_writing_to_a_replica_is_one_clear_error(tmp_path: Path, pg_database: str) -> None:
    """An ingest pointed at the standby fails with a one-line error and stores nothing."""
    data = tmp_path / "keys"
    assert run("init", "--store", pg_database, data=data).returncode == 0
    stored = run("ingest", "-", "--store", pg_database, data=data, stdin=_jsonl([make_event()]))
    assert stored.returncode == 0, stored.stderr
    replica = _replica_of(pg_database)
    _caught_up(pg_database, replica)
    result = run("ingest", "-", "--store", replica, data=data, stdin=_jsonl([make_event()]))
    assert result.returncode == 1, result.stderr
    assert "accepts only reads (a read replica" in result.stderr
    assert "give ingest and init its URL" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(StoreError, match="accepts only reads"):
        open_store(replica, create=True)
