"""Reads are audited (issue 10 §5): one audit.read event per read, refused ones too."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from glasslog.access.audit import Auditor
from glasslog.access.enforce import AccessDenied, Principal, Reader
from glasslog.access.policy import check_policy
from glasslog.errors import NotFoundError
from glasslog.testing import TemporaryLog
from tests.conftest import make_event
from tests.test_cli import run

POLICY = """\
[roles.dev]
permissions = ["search", "get"]
services = ["payments"]
actions = ["*"]

[roles.everything]
permissions = ["search", "aggregate"]
services = ["*"]
actions = ["*"]
"""

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _reader(tlog: TemporaryLog, role: str, records: list[dict[str, Any]]) -> Reader:
    auditor = Auditor(records.extend, batch=1)
    principal = Principal(
        id="key:abc", name="ci-bot", kind="service", roles=(check_policy(POLICY).roles[role],),
        grants=("grant-1",),
    )  # fmt: skip
    return Reader(tlog.log, principal, now=NOW, auditor=auditor)


def test_each_read_is_recorded_with_who_what_and_how_many(tlog: TemporaryLog) -> None:
    tlog.submit([make_event(reason="quarterly close") for _ in range(3)])
    records: list[dict[str, Any]] = []
    reader = _reader(tlog, "dev", records)
    assert len(reader.search("quarterly after:2026-11-01").events) == 3
    reader.get("0")
    with pytest.raises(AccessDenied):
        reader.count("")
    search, get, count = records
    assert search["service"] == "glasslog" and search["category"] == "audit"
    assert search["action"] == "audit.read" and search["outcome"] == "success"
    assert search["actor"] == {"id": "key:abc", "name": "ci-bot", "type": "service"}
    assert search["metadata"] == {
        "roles": ["dev"], "operation": "search", "query": "quarterly after:2026-11-01",
        "results": 3, "grants": ["grant-1"], "window": {"after": "2026-11-01T00:00:00Z"},
    }  # fmt: skip
    assert get["metadata"]["operation"] == "get" and get["metadata"]["results"] == 1
    assert count["outcome"] == "denied" and "may not aggregate" in count["reason"]
    assert "results" not in count["metadata"]
    assert all(r.ok for r in tlog.submit(records)), "each record is a valid event"


def test_audit_reads_do_not_pollute_their_readers_results(tlog: TemporaryLog) -> None:
    """Searching a word searched before does not return the audit.read events that hold
    it, unless the query asks for service:glasslog or category:audit."""
    tlog.submit([make_event(reason="quarterly close")])
    records: list[dict[str, Any]] = []
    reader = _reader(tlog, "everything", records)
    reader.search("quarterly")
    tlog.submit(records)
    assert [e["service"] for e in reader.search("quarterly").events] == ["payments"]
    assert reader.count("quarterly").count == 1
    audited = reader.search("quarterly service:glasslog").events
    assert [e["action"] for e in audited] == ["audit.read"]
    assert reader.count("category:audit").count == 1  # the first search: the one stored


def test_records_are_written_in_batches_and_flushed() -> None:
    batches: list[list[dict[str, Any]]] = []
    auditor = Auditor(batches.append, batch=3)
    for i in range(7):
        auditor.record({"n": i})
    assert [len(b) for b in batches] == [3, 3] and auditor.pending == 1
    auditor.flush()
    assert [len(b) for b in batches] == [3, 3, 1] and auditor.pending == 0
    auditor.flush()
    assert len(batches) == 3, "nothing pending, nothing written"


def test_the_cli_records_a_principals_reads_not_the_owners(tmp_path: Path) -> None:
    data = tmp_path / "log"

    glasslog = partial(run, data=data)

    assert glasslog("init").returncode == 0
    (data / "policy.toml").write_text(
        '[roles.admin]\npermissions=["admin"]\nservices=["*"]\nactions=["*"]\n' + POLICY
    )
    assert glasslog("ingest", "-", stdin=json.dumps(make_event()) + "\n").returncode == 0
    key = json.loads(glasslog("keys", "create", "--role", "dev", "--json").stdout)["key"]

    def audit() -> list[dict[str, Any]]:
        found = glasslog("search", "action:audit.read", "--json", "--sort", "time")
        return [json.loads(line) for line in found.stdout.splitlines()]

    assert glasslog("search", "service:payments").returncode == 0
    assert audit() == [], "owner reads are not audited"
    assert glasslog("search", "service:payments", "--key", key).returncode == 0
    assert glasslog("count", "", "--key", key).returncode == 1
    records = audit()
    assert [(r["metadata"]["operation"], r["outcome"]) for r in records] == [
        ("search", "success"),
        ("count", "denied"),
    ]
    assert records[0]["metadata"]["results"] == 1
    assert glasslog("verify").returncode == 0


def test_a_read_is_recorded_whatever_its_query_holds(tlog: TemporaryLog) -> None:
    """A NUL, a lone surrogate or a huge query cannot keep a read out of the audit trail."""
    records: list[dict[str, Any]] = []
    reader = _reader(tlog, "dev", records)
    for key in ("a\x00b", "x\ud800y", "k" * 10_000):
        with pytest.raises(NotFoundError):
            reader.get(key)
    assert len(records) == 3
    receipts = tlog.submit(records)
    assert all(r.ok for r in receipts), [r.problems for r in receipts if not r.ok]
    queries = [r["metadata"]["query"] for r in records]
    assert queries[:2] == ["a\ufffdb", "x\ufffdy"]
    assert queries[2].endswith("more characters)") and len(queries[2]) < 4_100
