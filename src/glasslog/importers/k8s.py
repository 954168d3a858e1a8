"""Kubernetes audit events (``audit.k8s.io/v1`` ``Event``, one JSON object per line, as
the API server's log backend writes them) mapped onto glasslog's event schema.

The API server writes up to four stages of one request under one ``auditID``:
``RequestReceived``, ``ResponseStarted`` (long-running requests only),
``ResponseComplete`` and ``Panic``. Only the last two carry the outcome, so only they
become events; the others are counted as skipped. The mapping, field by field, is in
docs/import.md; in short:

=====================================  ==============================================
``user.username``                      ``actor.id`` (type from the name's prefix)
``sourceIPs[0]``, ``userAgent``        ``source.ip``, ``source.user_agent``
``objectRef.resource``, ``verb``       ``action``: ``k8s.<resource>[.<subresource>].<verb>``
``objectRef``                          ``target``: type resource, id ``namespace/name``
``responseStatus.code``, stage         ``outcome``; ``responseStatus.message`` → reason
``auditID``, ``stageTimestamp``        ``context.request_id``, ``time``
everything else but the objects        ``metadata``, under its own name
=====================================  ==============================================

``requestObject`` and ``responseObject`` are never imported: at the ``Request`` and
``RequestResponse`` levels they hold whole API objects, Secrets' data included, which
an audit trail must not keep and which would not fit an event's 64 KiB.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

from glasslog.errors import EventError, Problem
from glasslog.importers.mapping import (
    event_id,
    is_ip,
    problem,
    require_text,
    text,
    type_name,
    without_none,
)

SERVICE: Final = "kubernetes"
"""The service of imported events unless ``--service`` names another (one per cluster)."""

STAGES: Final = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
IMPORTED: Final = frozenset({"ResponseComplete", "Panic"})
"""The stages that carry the outcome of a request; the others are skipped."""

API_VERSION: Final = "audit.k8s.io/v1"

_NOT_METADATA: Final = frozenset({
    # carried by the schema's own fields
    "auditID", "stageTimestamp", "userAgent", "sourceIPs",
    # always the same
    "kind", "apiVersion",
    # whole API objects: secrets and size (see the module docstring)
    "requestObject", "responseObject",
})  # fmt: skip

_ACTION_UNSAFE: Final = re.compile(r"[^a-z0-9_-]")


def map_event(record: object, *, service: str = SERVICE) -> dict[str, Any] | None:
    """The glasslog event of one audit event; None for a stage that is skipped.

    Raises :class:`~glasslog.errors.EventError` naming every source field that is
    missing or of the wrong type, at its path in the record.
    """
    if not isinstance(record, dict):
        raise problem("$", f"expected an {API_VERSION} Event object, found {type_name(record)}")
    problems: list[Problem] = []
    if record.get("kind", "Event") != "Event":
        problems.append(Problem("$.kind", "expected Event (one event per line, as the log "
                                          "backend writes them)"))  # fmt: skip
    if record.get("apiVersion", API_VERSION) != API_VERSION:
        problems.append(Problem("$.apiVersion", f"expected {API_VERSION}, the only version "
                                                "the importer reads"))  # fmt: skip
    stage = record.get("stage")
    if stage not in STAGES:
        problems.append(Problem("$.stage", f"expected one of {', '.join(STAGES)}"))
    elif stage not in IMPORTED and not problems:
        return None
    audit_id = require_text(record, "auditID", "the event id derives from it", problems)
    verb = require_text(record, "verb", "the action derives from it", problems)
    when = require_text(record, "stageTimestamp", "the event's time", problems)
    user = record.get("user")
    username = require_text(user, "username", "the actor", problems, at="$.user")
    if problems:
        raise EventError(problems)
    assert isinstance(user, dict)
    ref = record.get("objectRef")
    resource = text(ref, "resource")
    status = record.get("responseStatus")
    event: dict[str, Any] = {
        "id": event_id("k8s-audit", audit_id, str(stage)),
        "time": when,
        "service": service,
        "action": _action(verb, resource, text(ref, "subresource")),
        "outcome": _outcome(str(stage), status),
        "actor": without_none({"id": username, "type": _actor_type(username)}),
        "source": without_none(
            {"ip": _first_ip(record.get("sourceIPs")), "user_agent": text(record, "userAgent")}
        ),
        "target": _target(ref, resource, record.get("requestURI")),
        "context": {"request_id": audit_id},
        "reason": text(status, "message"),
        "metadata": _metadata(record, user, status),
    }
    return without_none(event)


def _action(verb: str, resource: str | None, subresource: str | None) -> str:
    """``k8s.<resource>[.<subresource>].<verb>``; ``k8s.nonresource.<verb>`` for a URL
    such as /healthz (its verb is the HTTP method, lower-cased)."""
    parts = [resource or "nonresource", *([subresource] if resource and subresource else []), verb]
    return ".".join(["k8s", *(_ACTION_UNSAFE.sub("_", p.lower()) for p in parts)])


def _outcome(stage: str, status: object) -> str:
    if stage == "Panic":
        return "failure"
    code = status.get("code") if isinstance(status, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return "unknown"
    if 100 <= code < 400:  # 101: an exec or attach stream was opened
        return "success"
    if code in (401, 403):
        return "denied"
    return "failure"


def _actor_type(username: str) -> str | None:
    """From the name's prefix: Kubernetes names its own identities ``system:…``."""
    if username.startswith("system:serviceaccount:"):
        return "service"
    if username.startswith("system:node:"):
        return "machine"
    if username == "system:anonymous":
        return None  # an unauthenticated caller: who, nobody can say
    if username.startswith("system:"):
        return "service"  # the control plane: kube-scheduler, controller-manager, apiserver
    return "user"


def _first_ip(ips: object) -> str | None:
    """``sourceIPs[0]`` when it is an IP address (the originating client)."""
    first = ips[0] if isinstance(ips, list) and ips else None
    return first if isinstance(first, str) and is_ip(first) else None


def _target(ref: object, resource: str | None, uri: object) -> dict[str, Any] | None:
    if resource is None:
        path = urlsplit(uri).path if isinstance(uri, str) and uri else None
        return without_none({"type": "url", "id": path}) if path else None
    namespace, name = text(ref, "namespace"), text(ref, "name")
    ident = f"{namespace}/{name}" if namespace and name else name
    return without_none({"type": resource, "id": ident, "name": name})


def _metadata(record: dict[str, Any], user: dict[str, Any], status: object) -> dict[str, Any]:
    """Every other field under its own name; of ``user`` and ``responseStatus`` what the
    schema fields do not already hold; of ``sourceIPs`` the addresses after the first,
    as ``proxyIPs`` (a role that may not see ``source.ip`` must not find it here)."""
    metadata = {k: v for k, v in record.items() if k not in _NOT_METADATA}
    rest = {k: v for k, v in user.items() if k != "username"}
    metadata["user"] = rest or None
    if isinstance(status, dict):
        metadata["responseStatus"] = {k: v for k, v in status.items() if k != "message"}
    ips = record.get("sourceIPs")
    if _first_ip(ips) is not None:
        assert isinstance(ips, list)
        metadata["proxyIPs"] = ips[1:] or None
    elif ips is not None:
        metadata["sourceIPs"] = ips  # the first is not an address: kept as it came
    return without_none(metadata)
