"""Audit events from log calls: a stdlib ``logging`` handler and a structlog processor.

Code that already logs can record an audit event by adding an ``audit`` dict to a log
call, the same dict in both::

    log.info("refund issued", extra={"audit": {"action": "invoice.refund",
                                               "target": ("invoice", "in_42")}})
    structlog.get_logger().info("refund issued",
                                audit={"action": "invoice.refund", "target": ("invoice", "in_42")})

The dict's keys are those of :meth:`glasslog.client.Client.log`: ``action``
(required), ``actor``, ``target``, ``outcome``, ``reason``, ``category`` and
``metadata``; any other key is an error, so that a misspelt ``outcom`` is not stored
as a silent success. The log message, the logger's name and the level are added to
the metadata as ``message``, ``logger`` and ``level``. Records without ``audit``
are not audit events and are left alone.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from glasslog.client import get_client

if TYPE_CHECKING:
    from glasslog.client._http import AuditLogger

__all__ = ["AuditHandler", "AuditProcessor", "structlog_processor"]

_FIELDS: Final = frozenset(
    ("action", "actor", "target", "outcome", "reason", "category", "metadata")
)
_ADDED: Final = ("message", "logger", "level")


def _arguments(audit: object, *, message: str, logger: str, level: str) -> dict[str, Any]:
    """The arguments of ``Client.log`` for one ``audit`` dict; ValueError if malformed."""
    if not isinstance(audit, Mapping):
        raise ValueError(
            f"the audit field must be a dict like {{'action': 'user.login'}}, "
            f"got {type(audit).__name__}"
        )
    unknown = sorted(str(key) for key in audit if key not in _FIELDS)
    if unknown:
        raise ValueError(
            f"the audit dict has unknown keys {unknown}; "
            f"it takes {sorted(_FIELDS)} (put anything else in 'metadata')"
        )
    action = audit.get("action")
    if not isinstance(action, str) or not action:
        raise ValueError(
            f"the audit dict needs an 'action' string such as 'user.login', got {action!r}"
        )
    metadata = audit.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ValueError(
            f"the audit dict's 'metadata' must be a dict, got {type(metadata).__name__}"
        )
    clashing = sorted(key for key in _ADDED if key in metadata)
    if clashing:
        raise ValueError(
            f"the audit dict's metadata uses {clashing}, which the log integration "
            "fills in from the log call; rename them"
        )
    arguments = {key: audit[key] for key in _FIELDS - {"action", "metadata"} if key in audit}
    arguments["metadata"] = {**metadata, "message": message, "logger": logger, "level": level}
    arguments["action"] = action
    return arguments


def _log(client: AuditLogger | None, arguments: dict[str, Any]) -> str:
    """Log through ``client`` or the default client; the event's id."""
    result = (client or get_client()).log(**arguments)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited, so never sent: say so rather than warn later
        raise TypeError(
            "the logging integrations need a glasslog.client.Client, not an AsyncClient: "
            "log calls are synchronous and cannot await the event"
        )
    return str(result)


class AuditHandler(logging.Handler):
    """A ``logging`` handler that turns records carrying ``extra={"audit": {...}}`` into
    audit events.

    ``client=None`` uses the process-wide client of ``glasslog.client.configure``,
    looked up when a record arrives, so the handler can be installed (by
    ``logging.config.dictConfig``, say) before the client is configured. The record's
    creation time becomes the event's time.

    Like every logging handler it never raises into the code that logs: a malformed
    audit dict, or a client that cannot take the event, goes through
    :meth:`logging.Handler.handleError` (a traceback on stderr). An operation that
    must not happen unaudited should call ``Client.log`` with ``fail_closed=True``
    instead, which does raise.
    """

    def __init__(self, client: AuditLogger | None = None, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        audit = getattr(record, "audit", None)
        if audit is None:
            return
        try:
            arguments = _arguments(
                audit, message=record.getMessage(), logger=record.name, level=record.levelname
            )
            when = datetime.fromtimestamp(record.created, UTC)
            _log(self.client, {**arguments, "time": when})
        except Exception:
            self.handleError(record)


class AuditProcessor:
    """A structlog processor that logs an audit event for an event dict with an
    ``audit`` key, through ``client`` (or the process-wide client).

    The ``audit`` key is replaced by ``audit_id``, the id of the event recorded: the
    audit fields (actor emails, targets) are in glasslog now, and rendering them into
    the ordinary log as well would copy personal data into a log with weaker
    guarantees; the id links the two. A malformed ``audit`` dict, or a client that
    cannot take the event, raises, exactly as ``Client.log`` would: structlog has no
    error channel like logging's ``handleError``, and swallowing the error would lose
    the audit event silently.
    """

    def __init__(self, client: AuditLogger | None = None) -> None:
        self.client = client

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if "audit" not in event_dict:
            return event_dict
        name = event_dict.get("logger") or getattr(logger, "name", None) or "structlog"
        arguments = _arguments(
            event_dict["audit"],
            message=str(event_dict.get("event", "")),
            logger=str(name),
            level=str(event_dict.get("level", method_name)),
        )
        event_id = _log(self.client, arguments)
        del event_dict["audit"]
        event_dict["audit_id"] = event_id
        return event_dict


def structlog_processor(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The :class:`AuditProcessor` of the process-wide client, for a processors list:
    ``structlog.configure(processors=[..., glasslog.client.structlog_processor, ...])``."""
    return _DEFAULT(logger, method_name, event_dict)


_DEFAULT: Final = AuditProcessor()
