"""The client's exceptions, rooted at :class:`ClientError` (itself a ``GlasslogError``)::

    ClientError            the client was misused or misconfigured (no default client,
    │                      a spool directory in use by another process)
    ├── SpoolFull          log() could not keep the event: the bounded spool is full
    └── AuditNotRecorded   a fail-closed event was not acknowledged by the server in time

No message ever holds the API key or an event's content.
"""

from __future__ import annotations

from glasslog.errors import GlasslogError

__all__ = ["AuditNotRecorded", "ClientError", "SpoolFull"]


class ClientError(GlasslogError):
    """The audit client was misused or misconfigured, or could not keep an event."""


class SpoolFull(ClientError):
    """The spool (or the in-memory queue) holds ``spool_max_bytes`` of unsent events."""


class AuditNotRecorded(ClientError):
    """A fail-closed event was not stored by the server: the guarded operation must not run."""
