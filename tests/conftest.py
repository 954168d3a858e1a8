"""Shared fixtures: real logs in temporary directories, and event builders."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glasslog.testing import TemporaryLog, temporary_log

_counter = itertools.count()

MakeEvent = Callable[..., dict[str, Any]]


def make_event(**overrides: Any) -> dict[str, Any]:
    """A small valid event with a fresh client id; keyword arguments replace fields."""
    n = next(_counter)
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "time": "2026-11-26T10:00:00.000001Z",
        "service": "payments",
        "action": "db.query",
        "outcome": "success",
        "actor": {"id": f"u-{n % 7}", "type": "user", "email": f"user{n}@example.com"},
        "source": {"ip": "192.0.2.10"},
        "context": {"request_id": f"req-{n // 3}", "trace_id": f"{n // 3:032x}"},
        "metadata": {"table": "cards", "rows": n},
    }
    event.update(overrides)
    return event


@pytest.fixture
def tlog() -> Iterator[TemporaryLog]:
    """A fresh log whose checkpoints are signed only on demand."""
    with temporary_log() as log:
        yield log


@pytest.fixture
def event() -> MakeEvent:
    return make_event
