"""The lifecycle of stored events after their append: retention, legal holds, erasure.

Every lifecycle change is itself an event in the ledger, of glasslog's own
(``service: glasslog``, ``category: lifecycle``): retention never prunes those events
and erasure never erases them, so the record of what was removed, and by whom, stays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from glasslog.event import format_time, uuid7

LIFECYCLE_SERVICE = "glasslog"
LIFECYCLE_CATEGORY = "lifecycle"


def lifecycle_event(
    action: str,
    actor: dict[str, str],
    *,
    reason: str | None = None,
    target: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A lifecycle event, ready to append: a fresh id, so that its seq can be found after."""
    event: dict[str, Any] = {
        "id": uuid7(),
        "service": LIFECYCLE_SERVICE,
        "category": LIFECYCLE_CATEGORY,
        "action": action,
        "outcome": "success",
        "actor": actor,
    }
    if reason:
        event["reason"] = reason
    if target:
        event["target"] = target
    if metadata:
        event["metadata"] = metadata
    return event


def is_lifecycle(event: dict[str, Any]) -> bool:
    """Whether ``event`` (a decoded body) records a lifecycle change: never pruned or erased."""
    return event.get("service") == LIFECYCLE_SERVICE and event.get("category") == LIFECYCLE_CATEGORY


def rfc3339_us(us: int | None) -> str | None:
    """Microseconds since the epoch as RFC 3339 UTC with ``Z`` (None stays None)."""
    if us is None:
        return None
    return format_time(datetime.fromtimestamp(us / 1_000_000, UTC))
