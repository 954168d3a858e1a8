"""A log driven through the real ``glasslog`` CLI, on each backend in turn."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS


@dataclass
class CliLog:
    """A data directory (and, for PostgreSQL, a ``--store``) that commands run against."""

    data: Path
    store: list[str] = field(default_factory=list)

    def run(
        self, *args: str, stdin: bytes | None = None, prefix: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        """``glasslog ARGS --data … [--store …]``; ``prefix`` replaces ``-m glasslog``."""
        done = subprocess.run(
            [sys.executable, *(prefix or ("-m", "glasslog")), *args, "--data", str(self.data),
             *self.store],
            input=stdin, capture_output=True, check=False, timeout=600,
        )  # fmt: skip
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )

    def ingest(self, lines: bytes, *options: str) -> tuple[dict[str, Any], str]:
        """Ingest ``lines`` from stdin: the summary (exit 0 or 2) and stderr."""
        result = self.run("ingest", "-", *options, stdin=lines)
        assert result.returncode in (0, 2), result.stderr
        summary: dict[str, Any] = json.loads(result.stdout)
        return summary, result.stderr

    def verified(self) -> tuple[int, int]:
        """(events stored, events covered by the latest checkpoint), after ``glasslog verify``."""
        result = self.run("verify")
        assert result.returncode == 0, result.stderr
        found = re.search(r"intact: ([\d,]+) events.*latest covers ([\d,]+)", result.stdout)
        assert found is not None, result.stdout
        events, covered = (int(g.replace(",", "")) for g in found.groups())
        return events, covered


@pytest.fixture(params=BACKENDS)
def cli_log(request: pytest.FixtureRequest, tmp_path: Path) -> CliLog:
    """An initialised log on SQLite (in its data directory) or on a scratch PostgreSQL database."""
    store = [] if request.param == "sqlite" else ["--store", request.getfixturevalue("pg_database")]
    log = CliLog(tmp_path / "log", store)
    result = log.run("init", "--origin", "test.example/ingest")
    assert result.returncode == 0, result.stderr
    return log


def line(**fields: Any) -> bytes:
    """One valid event as a JSON line; keyword arguments add or replace fields."""
    event: dict[str, Any] = {"service": "payments", "action": "db.query", "actor": {"id": "u1"}}
    event.update(fields)
    return json.dumps(event).encode() + b"\n"


def rejected(summary: dict[str, Any]) -> dict[int, list[str]]:
    """The summary's rejections by line number."""
    return {r["line"]: r["errors"] for r in summary["rejected"]}
