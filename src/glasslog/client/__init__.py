"""Send audit events from live code to a glasslog server (docs/client.md).

::

    import glasslog.client

    glasslog.client.configure("https://audit.internal:8433", key, service="payments",
                              spool="/var/lib/payments/audit-spool")

    with glasslog.context(request_id=request_id, actor=user_id):
        glasslog.client.get_client().log("invoice.refund", target=("invoice", "in_42"))

    @glasslog.client.audited("invoice.refund",
                             target=lambda invoice_id, **_: ("invoice", invoice_id))
    def refund(invoice_id: str) -> None: ...

Importing this package imports httpx and the standard library, nothing more: no
server, store, database driver, web framework or OpenTelemetry. The logging and
structlog integrations (``AuditHandler``, ``structlog_processor``) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glasslog.client._audited import audited
from glasslog.client._context import context, current_context
from glasslog.client._core import AsyncClient, Client, configure, get_client
from glasslog.client._errors import AuditNotRecorded, ClientError, SpoolFull

if TYPE_CHECKING:
    from glasslog.client.logs import AuditHandler, structlog_processor

__all__ = [
    "AsyncClient",
    "AuditHandler",
    "AuditNotRecorded",
    "Client",
    "ClientError",
    "SpoolFull",
    "audited",
    "configure",
    "context",
    "current_context",
    "get_client",
    "structlog_processor",
]

_LAZY = {"AuditHandler", "structlog_processor"}


def __getattr__(name: str) -> Any:
    """The integrations, imported when first named (they are not needed to log)."""
    if name in _LAZY:
        from glasslog.client import logs  # noqa: PLC0415 - loaded on first use

        return getattr(logs, name)
    raise AttributeError(f"module 'glasslog.client' has no attribute {name!r}")
