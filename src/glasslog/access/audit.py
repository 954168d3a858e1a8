"""Reads are audited: every read by a principal becomes an ``audit.read`` event.

The event goes into the same ledger as everything else, so the trail of who read what
is as tamper-evident as what was read::

    {"service": "glasslog", "category": "audit", "action": "audit.read",
     "outcome": "success" | "denied",
     "actor": {"id": <principal id>, "name": <its name>, "type": "service" | "user"},
     "metadata": {"roles": [...], "operation": "search", "query": <as given>,
                  "results": <events returned or counted>, "window": {"after", "before"},
                  "grants": [<break-glass grant ids>]}}

Refused reads are recorded too, as ``denied``. Records are collected by an
:class:`Auditor` and written in batches (one append for many reads), so auditing does
not serialise reads; :meth:`Auditor.flush` writes what is pending and is called when
the process stops cleanly. Reads by the owner of the data directory (no principal)
are not audited: that user can read the files anyway (docs/access.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["AUDIT_ACTION", "AUDIT_SERVICE", "Auditor", "read_event"]

AUDIT_SERVICE = "glasslog"
AUDIT_ACTION = "audit.read"


def read_event(
    *,
    principal_id: str,
    name: str,
    kind: str,
    roles: list[str],
    operation: str,
    query: str,
    results: int | None,
    window: dict[str, str | None] | None,
    grants: list[str],
    denied: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ``audit.read`` event of one read (``denied``: why it was refused).

    The query is the reader's own text, and the event must be stored whatever it holds:
    a NUL or a lone surrogate (which events may not carry) becomes U+FFFD, and a query
    longer than :data:`QUERY_KEPT` characters is cut, saying how much was left out.
    """
    metadata: dict[str, Any] = {
        "roles": roles,
        "operation": operation,
        "query": loggable(query),
        "grants": grants,
    }
    if results is not None:
        metadata["results"] = results
    if window is not None:
        metadata["window"] = {k: v for k, v in window.items() if v is not None}
    event: dict[str, Any] = {
        "time": (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "service": AUDIT_SERVICE,
        "category": "audit",
        "action": AUDIT_ACTION,
        "outcome": "denied" if denied else "success",
        "actor": {"id": principal_id, "name": loggable(name), "type": kind},
        "metadata": metadata,
    }
    if denied:
        event["reason"] = loggable(denied)
    return event


QUERY_KEPT = 4_000
"""Characters of a query kept in its audit.read event (far above any real query)."""


def loggable(text: str, *, limit: int = QUERY_KEPT) -> str:
    """``text`` as an event may hold it: no NUL, no lone surrogate, at most ``limit``
    characters (then a note of how many more there were)."""
    clean = "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in text)
    if len(clean) > limit:
        clean = f"{clean[:limit]}… ({len(clean) - limit:,} more characters)"
    return clean


class Auditor:
    """Collects read events and hands them to ``write`` in batches.

    ``write`` appends a list of events to the ledger (the CLI's goes through the ingest
    path; a server's through its sequencer). A batch is written once ``batch`` records
    are pending, and at :meth:`flush`. Thread-safe: readers on many threads share one.
    """

    def __init__(self, write: Callable[[list[dict[str, Any]]], None], *, batch: int = 100) -> None:
        self._write = write
        self._batch = batch
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._pending.append(event)
            full = len(self._pending) >= self._batch
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every pending record now (at a clean stop, and when a batch is full)."""
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            self._write(pending)

    @property
    def pending(self) -> int:
        return len(self._pending)
