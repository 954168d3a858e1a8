"""What every importer's mapping shares: ids derived from the source's own ids, the
problems of a record that cannot be mapped, and fitting bulky details into an event.

Ids are name-based UUIDs (version 5, RFC 9562 §5.5) in glasslog's own namespace, of a
name made from the source's unique id: ``k8s-audit/<auditID>/<stage>`` or
``cloudtrail/<eventID>``. The same record therefore always becomes the same event id,
whichever file it is read from and however often, and the pipeline stores it once.
Nothing else about the import (the file's name, the time of the import) may go into an
event, or a second import would be the same id with different content: a conflict.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Final

from glasslog.errors import EventError, Problem
from glasslog.event import DEFAULT_LIMITS, Limits, _json_type, normalize_ip, validate

NAMESPACE: Final = uuid.UUID("b71f1fca-fc53-49a6-95ab-d2840902429b")
"""glasslog's namespace for the ids of imported events. Never change it: every event
imported before would come back with a new id, and be stored twice."""

OMITTED: Final = "omitted"
"""The metadata key that names the details left out to fit an event's limits."""


def event_id(source: str, *parts: str) -> str:
    """The id of the event made from the record with these source ids."""
    return str(uuid.uuid5(NAMESPACE, "/".join((source, *parts))))


def problem(path: str, message: str) -> EventError:
    """A record that cannot be mapped, for one reason."""
    return EventError([Problem(path, message)])


def type_name(value: object) -> str:
    """The JSON type of a value, for a message (never the value: it may be a secret);
    worded as schema validation words it."""
    return _json_type(value)


def require_text(
    record: object, key: str, why: str, problems: list[Problem], *, at: str = "$"
) -> str:
    """``record[key]`` when it is a non-empty string; else a problem at ``at.key`` saying
    ``why`` it is needed (and "" to carry on, so that every problem is named at once)."""
    value = record.get(key) if isinstance(record, dict) else None
    if isinstance(value, str) and value:
        return value
    found = "it is missing" if value is None else f"found {type_name(value)}"
    problems.append(Problem(f"{at}.{key}", f"required ({why}) as a non-empty string; {found}"))
    return ""


def text(obj: object, key: str) -> str | None:
    """``obj[key]`` when ``obj`` is an object and the value a non-empty string."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def is_ip(candidate: str) -> bool:
    """Whether ``candidate`` is an IPv4 or IPv6 address, as the schema's ``source.ip`` takes."""
    try:
        normalize_ip(candidate)
    except ValueError:
        return False
    return True


def without_none(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without its None and empty-object values (a schema field that says nothing)."""
    return {k: v for k, v in obj.items() if v is not None and v != {}}


def fit(
    event: dict[str, Any], droppable: Sequence[str], *, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """``event``, with the bulky metadata it cannot hold left out, in ``droppable`` order.

    While the event breaks a limit of docs/events.md (its size, metadata keys, nesting,
    array or string length) in its metadata, the next of the ``droppable`` keys present
    is removed and named under ``metadata.omitted``. Any other problem is left for the
    pipeline to report, in its words, with the record's file and line. Deterministic: the
    same record always fits the same way, so a re-import stays a duplicate.
    """
    metadata = event.get("metadata")
    if not isinstance(metadata, dict):
        return event
    omitted: list[str] = []
    pending = [key for key in droppable if key in metadata]
    while True:
        try:
            validate(event, limits=limits)
        except EventError as exc:
            if not pending or not any(_bulk(p, pending) for p in exc.problems):
                return event
            key = pending.pop(0)
            del metadata[key]
            omitted.append(key)
            metadata[OMITTED] = list(omitted)
            continue
        return event


def _bulk(problem: Problem, keys: list[str]) -> bool:
    """Whether leaving out one of ``keys`` may cure ``problem``."""
    if problem.path == "$":  # the whole event is too big
        return True
    if problem.path == "$.metadata":  # too many keys in all
        return True
    return any(
        problem.path == f"$.metadata.{key}" or problem.path.startswith((f"$.metadata.{key}.",
                                                                        f"$.metadata.{key}["))
        for key in keys
    )  # fmt: skip
