"""Logs for the lifecycle tests: a data directory on each backend, written and pruned
through the real ``glasslog`` command, with events old enough to fall past retention."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glasslog.identity import initialise
from tests.conftest import make_event, scratch_database

OLD = "2020-01-15T10:00:00.000000Z"
"""A time past any retention rule of these tests."""
NEW = "2099-01-15T10:00:00.000000Z"
"""A time no retention rule reaches."""

RETENTION = """
[retention]
default = "90d"
"action:deploy.*" = "400y"
"""


@dataclass
class Data:
    """A data directory and its store (None: the embedded SQLite file)."""

    path: Path
    store: str | None

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``glasslog ARGS --data D [--store S]`` as a real process."""
        extra = ["--data", str(self.path)] + (["--store", self.store] if self.store else [])
        return subprocess.run(
            [sys.executable, "-m", "glasslog", *args, *extra],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env={**os.environ},
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """Run, expect success, give stdout."""
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def ingest(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        lines = "".join(json.dumps(e) + "\n" for e in events)
        result: dict[str, Any] = json.loads(self.ok("ingest", "-", "--json", stdin=lines))
        return result

    def policy(self, extra: str) -> None:
        """Append ``extra`` (a [retention] table) to the data directory's policy."""
        policy = self.path / "policy.toml"
        policy.write_text(policy.read_text() + extra)


def old_events(count: int, **overrides: Any) -> list[dict[str, Any]]:
    """``count`` events past retention (by default), each with a fresh id."""
    return [make_event(id=str(uuid.uuid4()), time=OLD, **overrides) for _ in range(count)]


@pytest.fixture(params=["sqlite", "postgres"])
def data(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Data]:
    """A fresh data directory with a [retention] policy, on each backend in turn."""
    if request.param == "sqlite":
        made = Data(tmp_path / "data", None)
        initialise(made.path, store=None, origin="test.example/lifecycle")
        made.policy(RETENTION)
        yield made
        return
    with scratch_database() as url:
        made = Data(tmp_path / "data", url)
        initialise(made.path, store=url, origin="test.example/lifecycle")
        made.policy(RETENTION)
        yield made


@pytest.fixture
def sqlite_data(tmp_path: Path) -> Data:
    """A fresh data directory with a [retention] policy, on SQLite."""
    made = Data(tmp_path / "data", None)
    initialise(made.path, store=None, origin="test.example/lifecycle")
    made.policy(RETENTION)
    return made
