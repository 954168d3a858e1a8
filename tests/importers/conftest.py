"""Sample audit logs written from the documented formats (tests/importers/data/), and a
fresh data directory to import them into."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from glasslog.identity import initialise

DATA = Path(__file__).parent / "data"
K8S_LOG = DATA / "k8s-audit.log"
"""Seven requests of a cluster, 15 lines: every stage the API server writes."""
AWS_LOGS = DATA / "AWSLogs"
"""A trail's bucket: two regions, plain and gzip'd log files, and a digest file."""


def k8s_events() -> list[dict[str, Any]]:
    """The audit events of K8S_LOG, in order."""
    return [json.loads(line) for line in K8S_LOG.read_text().splitlines()]


def k8s_event(audit_id_prefix: str, stage: str = "ResponseComplete") -> dict[str, Any]:
    """The one audit event of the sample log with this auditID prefix and stage."""
    [found] = [
        e for e in k8s_events() if e["auditID"].startswith(audit_id_prefix) and e["stage"] == stage
    ]
    return found


def cloudtrail_records() -> list[dict[str, Any]]:
    """Every record of the sample trail's log files, in file order."""
    found: list[dict[str, Any]] = []
    for path in sorted((AWS_LOGS / "123456789012" / "CloudTrail").rglob("*.json*")):
        raw = path.read_bytes()
        document = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        found += document["Records"]
    return found


def cloudtrail_record(event_name: str) -> dict[str, Any]:
    """The first sample record of this eventName."""
    return next(r for r in cloudtrail_records() if r["eventName"] == event_name)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """An initialised, empty data directory."""
    directory = tmp_path / "log"
    initialise(directory, store=None, origin="test.example/import")
    return directory
