"""The error a route raises to refuse a request: :class:`Problem`.

It lives apart from :mod:`glasslog.server.problems` (which turns it into an RFC 9457
response with the web framework) because the worker processes that parse request
bodies raise it too, and they must not import the web framework: each worker would
carry its tens of megabytes for nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Problem"]


class Problem(Exception):
    """An error with its HTTP status and the words the client sees."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}
