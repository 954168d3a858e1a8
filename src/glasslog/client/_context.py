"""Who and which request an event belongs to, carried in :mod:`contextvars`.

One context variable holds an immutable mapping of the fields set by the enclosing
``with context(...)`` blocks, so nesting is a dict merge on entry and a reset on exit,
and reading it in :meth:`Client.log` is one lookup. contextvars follow asyncio tasks
(each task starts with a copy of its creator's context) but not plain threads: a
thread started with ``threading.Thread`` sees an empty context unless its target runs
inside ``contextvars.copy_context().run(...)`` (``concurrent.futures`` executors and
``asyncio.to_thread`` copy it for you only in the latter case).

When OpenTelemetry is in use and a span is active, its ids fill ``trace_id`` and
``span_id`` unless they were set explicitly. OpenTelemetry is never imported here: if
the application has not imported ``opentelemetry.trace``, no span can be active.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import Any, Final

__all__ = ["context", "current_context", "trace_ids"]

_EMPTY: Final[MappingProxyType[str, Any]] = MappingProxyType({})
_CURRENT: ContextVar[MappingProxyType[str, Any]] = ContextVar("glasslog_context", default=_EMPTY)


class context:  # used like a function: ``with glasslog.context(...)``
    """Set ``request_id``, ``trace_id``, ``span_id``, ``actor`` and ``source`` for the
    events logged inside the block; an inner block overrides, its exit restores.

    ``actor`` is an id string or a dict of the schema's actor fields; ``source`` a dict
    ``{ip, user_agent, host}`` merged over the enclosing block's source.
    """

    __slots__ = ("_token", "_values")

    def __init__(
        self,
        *,
        request_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        actor: str | dict[str, Any] | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        for name, value in (("request_id", request_id), ("trace_id", trace_id),
                            ("span_id", span_id)):  # fmt: skip
            if value is not None:
                if not isinstance(value, str):
                    raise TypeError(f"{name} must be a string, got {type(value).__name__}")
                values[name] = value
        if actor is not None:
            values["actor"] = actor
        if source is not None:
            if not isinstance(source, dict):
                raise TypeError(f"source must be a dict {{ip, user_agent, host}}, got {source!r}")
            values["source"] = source
        self._values = values
        self._token: Token[MappingProxyType[str, Any]] | None = None

    def __enter__(self) -> context:
        outer = _CURRENT.get()
        merged = dict(outer)
        merged.update(self._values)
        if "source" in self._values and "source" in outer:
            merged["source"] = {**outer["source"], **self._values["source"]}
        self._token = _CURRENT.set(MappingProxyType(merged))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None


def current_context() -> dict[str, Any]:
    """The merged values of the enclosing ``context`` blocks, with the active
    OpenTelemetry span's ids where none were set."""
    values = dict(_CURRENT.get())
    ids = trace_ids()
    if ids is not None:
        values.setdefault("trace_id", ids[0])
        values.setdefault("span_id", ids[1])
    return values


def _current() -> MappingProxyType[str, Any]:
    return _CURRENT.get()


def trace_ids() -> tuple[str, str] | None:
    """The active OpenTelemetry span's (trace id, span id) in hex, or None."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"
