"""``@audited``: one audit event per call of a function, with its outcome and duration.

The event records the function's qualified name and module (``context.function``,
``context.module``), the outcome (``success``, or ``failure`` with the exception's type
in ``metadata.error_type``; the exception's message is not recorded, since it may
quote secrets), and ``metadata.duration_ms``. The exception is re-raised unchanged.

Argument values are recorded only when named in ``args=[...]``, under
``metadata.args``, and pass first through glasslog's own scrubber
(``glasslog.ingest.scrub``: stdlib only, imported on first use), so a password or
token never reaches the spool or the network.

``fail_closed=True`` (for operations that must not happen unaudited): an *attempt*
event (outcome ``unknown``, ``metadata.phase = "attempt"``) is recorded and
acknowledged by the server **before** the function runs; if that fails, the function
does not run and :class:`AuditNotRecorded` is raised. After the call, the usual event
follows with ``metadata.attempt_id``. So the server holds a record of every guarded
operation before it happens, and an attempt without its result says the operation
did not finish (or the process died). An attempt that was not acknowledged in time
stays queued and may reach the server later; a ``failure`` event with
``metadata.phase = "not_run"`` and its ``attempt_id`` is queued behind it, so the
trail says the operation never ran.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, cast

from glasslog.client._core import AsyncClient, _Builder, get_client, to_thread
from glasslog.client._errors import AuditNotRecorded

if TYPE_CHECKING:
    from glasslog.ingest.scrub import Scrubber

__all__ = ["audited"]

P = ParamSpec("P")
R = TypeVar("R")
TargetSpec = str | tuple[str, str] | Mapping[str, Any] | Callable[..., Any] | None

_JSON_SCALARS: Final = (str, int, float, bool, type(None))
_scrubber: Scrubber | None = None
logger = logging.getLogger("glasslog.client")


def audited(
    action: str,
    *,
    target: TargetSpec = None,
    args: Collection[str] = (),
    category: str | None = None,
    fail_closed: bool = False,
    client: _Builder | AsyncClient | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record an ``action`` event for each call of the decorated function or method.

    ``target`` is fixed, or a callable given the call's arguments by name
    (``lambda invoice_id, **_: ("invoice", invoice_id)``). The actor comes from the
    enclosing ``glasslog.context(actor=...)``. ``client`` defaults to the configured
    default client, looked up at each call (a :class:`Client`, an :class:`AsyncClient`,
    or a :class:`glasslog.testing.InMemoryClient`).
    """
    if isinstance(args, str):
        raise TypeError(f"args must be a list of argument names, got the string {args!r}")
    wanted = tuple(args)

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise TypeError(f"@audited cannot wrap the generator {function.__qualname__}: "
                            "audit the function that consumes it")  # fmt: skip
        signature = inspect.signature(function)
        unknown = [name for name in wanted if name not in signature.parameters]
        if unknown:
            raise ValueError(f"@audited args {unknown} are not parameters of "
                             f"{function.__qualname__}{signature}")  # fmt: skip
        code = (function.__qualname__, function.__module__)
        call = _Call(action, target, wanted, category, fail_closed, client, signature, code)

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*a: Any, **kw: Any) -> Any:
                c, attempt = call.begin(a, kw)
                if fail_closed:
                    attempt = await to_thread(call.attempt, c, a, kw)
                started = time.perf_counter()
                try:
                    result = await function(*a, **kw)
                except BaseException as error:
                    call.end(c, a, kw, started, attempt, error)
                    raise
                call.end(c, a, kw, started, attempt, None)
                return result

            return cast(Callable[P, R], run_async)

        @functools.wraps(function)
        def run(*a: P.args, **kw: P.kwargs) -> R:
            c, attempt = call.begin(a, kw)
            if fail_closed:
                attempt = call.attempt(c, a, kw)
            started = time.perf_counter()
            try:
                result = function(*a, **kw)
            except BaseException as error:
                call.end(c, a, kw, started, attempt, error)
                raise
            call.end(c, a, kw, started, attempt, None)
            return result

        return run

    return decorate


class _Call:
    """What a decorated function records; one per decoration."""

    def __init__(
        self,
        action: str,
        target: TargetSpec,
        wanted: tuple[str, ...],
        category: str | None,
        fail_closed: bool,
        client: _Builder | AsyncClient | None,
        signature: inspect.Signature,
        code: tuple[str, str],
    ) -> None:
        self.action, self.target, self.wanted = action, target, wanted
        self.category, self.fail_closed, self.client = category, fail_closed, client
        self.signature, self.code = signature, code

    def begin(self, a: tuple[Any, ...], kw: dict[str, Any]) -> tuple[_Builder, str | None]:
        client = self.client if self.client is not None else get_client()
        if isinstance(client, AsyncClient):
            client = client.sync
        return client, None

    def _arguments(self, a: tuple[Any, ...], kw: dict[str, Any]) -> dict[str, Any]:
        bound = self.signature.bind(*a, **kw)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        for name, parameter in self.signature.parameters.items():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD and name in arguments:
                arguments.update(arguments.pop(name))
        return arguments

    def _fields(self, a: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        target = self.target
        metadata: dict[str, Any] = {}
        if callable(target) or self.wanted:
            arguments = self._arguments(a, kw)
            if callable(target):
                target = target(**arguments)
            if self.wanted:
                metadata["args"] = _scrubbed({n: arguments.get(n) for n in self.wanted})
        return target, metadata

    def attempt(self, client: _Builder, a: tuple[Any, ...], kw: dict[str, Any]) -> str:
        target, metadata = self._fields(a, kw)
        metadata["phase"] = "attempt"
        event = client._build(self.action, None, target, "unknown", None, self.category, None,
                              None, metadata, self.code)  # fmt: skip
        try:
            return client._submit(event, True)
        except AuditNotRecorded as refused:
            # The attempt may still reach the server later (it stays queued): say, in
            # the same trail, that the operation did not run.
            metadata = {"phase": "not_run", "attempt_id": event["id"],
                        "error_type": "glasslog.client.AuditNotRecorded"}  # fmt: skip
            note = client._build(self.action, None, target, "failure",
                                 "not run: the attempt could not be recorded first",
                                 self.category, None, None, metadata, self.code)  # fmt: skip
            try:
                client._submit(note, False)
            except Exception as failure:
                refused.add_note(f"the not-run event was not queued either: {failure}")
            raise

    def end(
        self,
        client: _Builder,
        a: tuple[Any, ...],
        kw: dict[str, Any],
        started: float,
        attempt: str | None,
        error: BaseException | None,
    ) -> None:
        duration = round((time.perf_counter() - started) * 1000, 3)
        target, metadata = self._fields(a, kw)
        metadata["duration_ms"] = duration
        if attempt is not None:
            metadata["attempt_id"] = attempt
        reason = None
        if error is None:
            outcome = "success"
        else:
            outcome = "failure"
            kind = type(error)
            name = kind.__qualname__ if kind.__module__ == "builtins" else (
                f"{kind.__module__}.{kind.__qualname__}")  # fmt: skip
            metadata["error_type"] = name
            reason = f"raised {name}"
        event = client._build(self.action, None, target, outcome, reason, self.category, None,
                              None, metadata, self.code)  # fmt: skip
        if error is None:
            client._submit(event, False)
            return
        try:
            client._submit(event, False)
        except Exception as failure:
            # The function's own exception reaches the caller unchanged (the caller
            # re-raises it); the audit failure can only be logged.
            logger.warning("the audit event %r of a failed call was not recorded: %s",
                           self.action, failure)  # fmt: skip


def _scrubbed(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as JSON, with secrets replaced by glasslog's ingest scrubber."""
    global _scrubber  # noqa: PLW0603 - one scrubber, built on first use
    if _scrubber is None:
        from glasslog.ingest.scrub import Scrubber  # noqa: PLC0415 - only when args are recorded

        _scrubber = Scrubber()
    jsonable = {name: _jsonable(value) for name, value in values.items()}
    event: dict[str, Any] = {"metadata": {"args": jsonable}}
    _scrubber.scrub(event)
    return cast(dict[str, Any], event["metadata"]["args"])


def _jsonable(value: Any, depth: int = 0) -> Any:
    if isinstance(value, _JSON_SCALARS):
        return value
    if depth < 4 and isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value]
    if depth < 4 and isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    return repr(value)[:200]
