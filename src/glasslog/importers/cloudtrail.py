"""AWS CloudTrail records (the ``{"Records": [...]}`` files a trail delivers to S3)
mapped onto glasslog's event schema.

The mapping, field by field, is in docs/import.md; in short:

================================  ======================================================
``userIdentity``                  ``actor``: id the ARN (else principalId, …), name the
                                  userName (else the role that issued the session)
``sourceIPAddress``               ``source.ip``, or ``source.host`` for an AWS service's
                                  name (``ec2.amazonaws.com``) or ``AWS Internal``
``userAgent``                     ``source.user_agent``
``eventSource``, ``eventName``    ``service`` ``aws.s3``, ``action`` ``aws.s3.getobject``
``errorCode``, ``errorMessage``   ``outcome`` (AccessDenied… → denied, other → failure),
                                  ``reason``
``resources[0]``                  ``target``: type and ARN
``requestID``, ``eventTime``      ``context.request_id``, ``time``
everything else                   ``metadata``, under its own name
================================  ======================================================

Insight events (``eventType`` ``AwsCloudTrailInsight``) describe unusual API activity
rather than an action someone took, and have no ``userIdentity``: they are skipped.
"""

from __future__ import annotations

import re
from typing import Any, Final

from glasslog.errors import EventError, Problem
from glasslog.importers.mapping import (
    event_id,
    fit,
    is_ip,
    problem,
    require_text,
    text,
    type_name,
    without_none,
)

SKIP_DIRS: Final = frozenset({"CloudTrail-Digest"})
"""Directories of a trail's bucket that hold no records: digest files sign log files."""

SKIPPED_TYPES: Final = frozenset({"AwsCloudTrailInsight"})

DROPPABLE: Final = (
    "responseElements",
    "additionalEventData",
    "serviceEventDetails",
    "requestParameters",
    "resources",
)
"""The bulky details, in the order they are left out of an event that would break the
schema's limits (docs/events.md); the first is the least useful to an investigation."""

_NOT_METADATA: Final = frozenset(
    {"eventTime", "requestID", "sourceIPAddress", "userAgent", "errorMessage"}
)
"""Carried by the schema's own fields, so not repeated (``source.ip`` in particular
may be hidden from a role, and must not be found in metadata instead)."""

_DENIED: Final = ("AccessDenied", "UnauthorizedOperation")
_ACTION_UNSAFE: Final = re.compile(r"[^a-z0-9_-]")
_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.:/@+-]")

_PEOPLE: Final = frozenset(
    {"Root", "IAMUser", "FederatedUser", "IdentityCenterUser", "SAMLUser", "WebIdentityUser",
     "Directory"}
)  # fmt: skip
"""userIdentity types that are a person's own credentials. AssumedRole, Role, AWSAccount
and Unknown may be a person or a workload: their actor has no type."""


def records(document: object) -> list[Any]:
    """The records of one CloudTrail file; EventError when it is not ``{"Records": [...]}``."""
    if not isinstance(document, dict):
        raise problem("$", f'expected a CloudTrail log file, {{"Records": [...]}}; found '
                           f"{type_name(document)}")  # fmt: skip
    found = document.get("Records")
    if not isinstance(found, list):
        hint = " (a digest file? they sign log files and hold no records)" if (
            "digestPublicKeyFingerprint" in document) else ""  # fmt: skip
        raise problem("$.Records", f"expected an array of records, found "
                                   f"{type_name(found)}{hint}")  # fmt: skip
    return found


def map_record(record: object) -> dict[str, Any] | None:
    """The glasslog event of one CloudTrail record; None for a record that is skipped.

    Raises :class:`~glasslog.errors.EventError` naming every source field that is
    missing or of the wrong type, at its path in the record.
    """
    if not isinstance(record, dict):
        raise problem("$", f"expected a CloudTrail record (an object), found {type_name(record)}")
    if record.get("eventType") in SKIPPED_TYPES:
        return None
    problems: list[Problem] = []
    event_id_text = require_text(record, "eventID", "the event id derives from it", problems)
    when = require_text(record, "eventTime", "the event's time", problems)
    source = require_text(record, "eventSource", "the service derives from it", problems)
    name = require_text(record, "eventName", "the action derives from it", problems)
    identity = record.get("userIdentity")
    actor = _actor(identity) if isinstance(identity, dict) else None
    if actor is None:
        problems.append(Problem("$.userIdentity", "required (the actor): an object with an "
                                "arn, principalId, invokedBy or accountId"))  # fmt: skip
    if problems:
        raise EventError(problems)
    assert actor is not None
    service = "aws." + _NAME_UNSAFE.sub("_", source.removesuffix(".amazonaws.com").lower())
    address = text(record, "sourceIPAddress")
    ip = address if address is not None and is_ip(address) else None
    error = text(record, "errorCode")
    event: dict[str, Any] = {
        "id": event_id("cloudtrail", event_id_text),
        "time": when,
        "service": service,
        "action": f"{service}.{_ACTION_UNSAFE.sub('_', name.lower())}",
        "outcome": _outcome(error, text(record, "errorMessage")),
        "actor": actor,
        "source": without_none(
            {"ip": ip, "host": None if ip else address, "user_agent": text(record, "userAgent")}
        ),
        "target": _target(record.get("resources")),
        "context": without_none({"request_id": text(record, "requestID")}),
        "reason": text(record, "errorMessage"),
        "metadata": {k: v for k, v in record.items() if k not in _NOT_METADATA},
    }
    return fit(without_none(event), DROPPABLE)


def _actor(identity: dict[str, Any]) -> dict[str, Any] | None:
    ident = (
        text(identity, "arn")
        or text(identity, "principalId")
        or text(identity.get("onBehalfOf"), "userId")
        or text(identity, "invokedBy")
        or text(identity, "accountId")
    )
    if ident is None:
        return None
    kind = text(identity, "type")
    issuer = identity.get("sessionContext")
    issuer = issuer.get("sessionIssuer") if isinstance(issuer, dict) else None
    name = text(identity, "userName") or text(issuer, "userName")
    actor_type = "service" if kind == "AWSService" else "user" if kind in _PEOPLE else None
    return without_none({"id": ident, "type": actor_type, "name": name})


def _outcome(error: str | None, message: str | None) -> str:
    """No error: success. A denial (``AccessDenied…``, ``UnauthorizedOperation``, with or
    without EC2's ``Client.`` prefix): denied. Any other error code, or an error message
    alone (a failed ``ConsoleLogin`` has no code): failure."""
    if error is None:
        return "failure" if message is not None else "success"
    return "denied" if error.removeprefix("Client.").startswith(_DENIED) else "failure"


def _target(resources: object) -> dict[str, Any] | None:
    """The first resource that has an ARN: S3 data events list the object, then its bucket."""
    if not isinstance(resources, list):
        return None
    for resource in resources:
        arn = text(resource, "ARN") or text(resource, "ARNPrefix")
        if arn is not None:
            return without_none({"type": text(resource, "type"), "id": arn})
    return None
