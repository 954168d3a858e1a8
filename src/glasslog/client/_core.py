"""The clients: build an event from the arguments and the context, and hand it over.

:class:`Client` queues the event (on disk first, with a spool) for its background
sender (``_sender.py``); :class:`AsyncClient` is the same client for ``async`` code.
Both share the event building of :class:`_Builder` with
:class:`glasslog.testing.InMemoryClient`, so what a test captures is what would
have been sent.

The caller's cost is what :meth:`Client.log` does before it returns: one id
(UUIDv7, assigned here so that a retry is idempotent), one dict, one JSON encoding
(which also snapshots mutable metadata), and with a spool one append and
``fdatasync``. Everything else happens on the sender thread.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import re
import socket
import threading
import time as _time
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, TypeVar

import httpx

from glasslog import __version__
from glasslog.client._context import _current, trace_ids
from glasslog.client._errors import AuditNotRecorded, ClientError
from glasslog.client._sender import Sender
from glasslog.client._spool import Pending
from glasslog.event import format_time, uuid7

__all__ = ["AsyncClient", "Client", "configure", "get_client"]

logger = logging.getLogger("glasslog.client")

Actor = str | Mapping[str, Any]
Target = str | tuple[str, str] | Mapping[str, Any]
OUTCOMES: Final = frozenset({"success", "failure", "denied", "unknown"})
_ACTION: Final = re.compile(r"[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*")
_CONTEXT_KEYS: Final = ("request_id", "trace_id", "span_id")
_actions_seen: set[str] = set()
"""Actions already checked against the pattern: checking costs more than the lookup."""

_captures: list[list[dict[str, Any]]] = []
"""Lists of :func:`glasslog.testing.capture_events` blocks in force: while any is, an
event goes to each of them and nowhere else."""


class _Builder:
    """What every client shares: the fixed fields and the building of one event."""

    def __init__(
        self,
        *,
        service: str,
        environment: str | None,
        version: str | None,
        host: str | None,
    ) -> None:
        if not isinstance(service, str) or not service:
            raise ValueError(f"service must be a name such as 'payments', got {service!r}")
        self.service = service
        self.environment = environment
        commit = _git_commit()
        self.version = version or os.environ.get("GLASSLOG_VERSION") or commit
        self.host = host or socket.gethostname()
        fixed: dict[str, str] = {}
        if self.version:
            fixed["version"] = self.version
        if commit:
            fixed["commit"] = commit
        fixed["host"] = self.host
        self._fixed_context = fixed

    def log(
        self,
        action: str,
        *,
        actor: Actor | None = None,
        target: Target | None = None,
        outcome: str = "success",
        reason: str | None = None,
        category: str | None = None,
        source: Mapping[str, Any] | None = None,
        time: datetime | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **more_metadata: Any,
    ) -> str:
        """Record that ``actor`` did ``action`` to ``target``; return the event's id.

        ``actor=None`` takes the actor of the enclosing ``glasslog.context(actor=...)``.
        ``metadata`` and the other keyword arguments are merged into the event's
        metadata.
        """
        if more_metadata:
            metadata = {**metadata, **more_metadata} if metadata else more_metadata
        event = self._build(action, actor, target, outcome, reason, category, source, time,
                            metadata, None)  # fmt: skip
        return self._submit(event, None)

    def _build(
        self,
        action: str,
        actor: Actor | None,
        target: Target | None,
        outcome: str,
        reason: str | None,
        category: str | None,
        source: Mapping[str, Any] | None,
        time: datetime | str | None,
        metadata: Mapping[str, Any] | None,
        code: tuple[str, str] | None,
    ) -> dict[str, Any]:
        """The event, checked for the mistakes that would make the server refuse it."""
        if action not in _actions_seen:
            if not isinstance(action, str) or not _ACTION.fullmatch(action):
                raise ValueError(f"action must be a dotted lowercase verb such as "
                                 f"'invoice.refund', got {action!r}")  # fmt: skip
            if len(_actions_seen) < 10_000:  # an application has a few hundred at most
                _actions_seen.add(action)
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        scope = _current()
        if actor is None:
            actor = scope.get("actor")
            if actor is None:
                raise ValueError(
                    f"no actor for {action!r}: pass actor=... to log(), or set one for the "
                    "enclosing code with `with glasslog.context(actor=...):`"
                )
        # Exact types first: isinstance() against an ABC such as Mapping costs a
        # microsecond, a fifth of what log() may cost.
        if type(actor) is str:
            actor_object: dict[str, Any] = {"id": actor}
        elif type(actor) is dict and actor.get("id"):
            actor_object = actor.copy()
        elif isinstance(actor, Mapping) and actor.get("id"):
            actor_object = dict(actor)
        else:
            raise ValueError(f"actor must be an id string or a dict with an 'id', got {actor!r}")
        if time is None:
            when = format_time(datetime.now(UTC))
        elif isinstance(time, datetime):
            when = format_time(time)
        else:
            when = time
        event: dict[str, Any] = {
            "id": uuid7(),
            "time": when,
            "service": self.service,
            "action": action,
            "outcome": outcome,
            "actor": actor_object,
        }
        if self.environment is not None:
            event["environment"] = self.environment
        if category is not None:
            event["category"] = category
        if target is not None:
            event["target"] = _target(target)
        outer_source = scope.get("source")
        if source is not None or outer_source is not None:
            event["source"] = {**(outer_source or {}), **(source or {})}
        context = {key: scope[key] for key in _CONTEXT_KEYS if key in scope}
        if "trace_id" not in context or "span_id" not in context:
            ids = trace_ids()
            if ids is not None:
                context.setdefault("trace_id", ids[0])
                context.setdefault("span_id", ids[1])
        if code is not None:
            context["function"], context["module"] = code
        context.update(self._fixed_context)
        event["context"] = context
        if reason is not None:
            event["reason"] = reason
        if metadata:
            event["metadata"] = dict(metadata)
        return event

    def _submit(self, event: dict[str, Any], fail_closed: bool | None) -> str:
        raise NotImplementedError


def _target(target: Target) -> dict[str, Any]:
    if type(target) is tuple and len(target) == 2:
        return {"type": target[0], "id": target[1]}
    if isinstance(target, str):
        return {"id": target}
    if isinstance(target, tuple) and len(target) == 2:
        return {"type": target[0], "id": target[1]}
    if isinstance(target, Mapping):
        return dict(target)
    raise ValueError(f"target must be an id string, a (type, id) tuple or a dict, got {target!r}")


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
"""Built once: json.dumps with options builds a new encoder on every call."""


def _encode(event: dict[str, Any]) -> bytes:
    try:
        return _ENCODER.encode(event).encode()
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"the event {event['action']!r} is not JSON: {error}; pass metadata values "
            "that are str, int, float, bool, None, lists or dicts"
        ) from None


def _captured(payload: bytes) -> bool:
    """Give the event to every capture_events block; whether any took it."""
    if not _captures:
        return False
    for sink in _captures:
        sink.append(json.loads(payload))
    return True


class Client(_Builder):
    """Sends audit events to a glasslog server from a background thread.

    ``spool=DIR`` keeps every event on disk (fsync'd before :meth:`log` returns) until
    the server acknowledged it, bounded by ``spool_max_bytes`` (without a spool the same
    bound applies to the queue in memory); ``on_full`` says what :meth:`log` does when
    the bound is reached. ``fail_closed=True`` makes :meth:`log` wait for the server's
    acknowledgement (at most ``timeout`` seconds) and raise :class:`AuditNotRecorded`
    without it.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        service: str,
        environment: str | None = None,
        version: str | None = None,
        host: str | None = None,
        spool: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 64 * 1024 * 1024,
        on_full: Literal["raise", "drop_oldest"] = "raise",
        fail_closed: bool = False,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(service=service, environment=environment, version=version, host=host)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be the server's http:// or https:// address, got {url!r}")
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty API key string (glasslog keys create)")
        if not 1 <= batch_size <= 1000:
            raise ValueError(f"batch_size must be 1 to 1000 (the server's limit), got {batch_size}")
        if flush_interval <= 0 or timeout <= 0:
            raise ValueError("flush_interval and timeout must be positive seconds")
        self.url = url.rstrip("/")
        self.fail_closed = fail_closed
        self.timeout = timeout
        self._pending = Pending(
            max_bytes=spool_max_bytes,
            on_full=on_full,
            spool=Path(spool) if spool is not None else None,
        )
        # The key lives in the HTTP client's headers only: never in an attribute, a
        # repr, a log message or an exception.
        self._http = httpx.Client(
            headers={"authorization": f"Bearer {key}",
                     "user-agent": f"glasslog-client/{__version__}"},
            timeout=timeout,
            transport=transport,
        )  # fmt: skip
        self._sender = Sender(self._pending, self._http, self.url, batch_size=batch_size,
                              flush_interval=flush_interval)  # fmt: skip
        self._sender.start()
        self._closed = False
        self._close_lock = threading.Lock()
        self._exit_hook = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._exit_hook)

    def __repr__(self) -> str:
        spool = self._pending.path
        return (f"Client(url={self.url!r}, service={self.service!r}"
                + (f", spool={str(spool)!r}" if spool else "") + ")")  # fmt: skip

    @property
    def dropped(self) -> int:
        """Events dropped unsent because the spool was full (``on_full="drop_oldest"``)."""
        return self._pending.dropped

    @property
    def rejected(self) -> int:
        """Events the server refused for good (each logged as a warning)."""
        return self._sender.rejected

    @property
    def pending(self) -> int:
        """Events accepted by :meth:`log` and not yet answered by the server."""
        return len(self._pending.records)

    def _submit(self, event: dict[str, Any], fail_closed: bool | None) -> str:
        payload = _encode(event)
        if _captured(payload):
            return str(event["id"])
        if self._closed:
            raise ClientError(f"{self!r} is closed: log with an open client")
        fail_closed = self.fail_closed if fail_closed is None else fail_closed
        if not fail_closed:
            self._pending.append(payload)
            return str(event["id"])
        deadline = _time.monotonic() + self.timeout
        try:
            seq = self._pending.append(payload, watch=True)
        except ClientError as error:
            raise AuditNotRecorded(f"the audit event {event['action']!r} could not be "
                                   f"queued: {error}") from error  # fmt: skip
        self._sender.hurry(+1)
        try:
            stored = self._pending.stored(seq, deadline)
        finally:
            self._sender.hurry(-1)
        if not stored:
            raise AuditNotRecorded(
                f"the glasslog server did not store the audit event {event['action']!r} "
                f"(id {event['id']}) within {self.timeout:g} s: it is unreachable, refused "
                "the key or rejected the event (see the glasslog.client log). The operation "
                "must not proceed unaudited; the event may still arrive later"
            )
        return str(event["id"])

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the server answered for every event logged so far; False if
        ``timeout`` seconds passed first. Rejected events count as answered (see
        :attr:`rejected`)."""
        with self._pending.lock:
            last = self._pending.next_seq - 1
        deadline = None if timeout is None else _time.monotonic() + timeout
        self._sender.hurry(+1)
        try:
            return self._pending.wait_answered(last, deadline)
        finally:
            self._sender.hurry(-1)

    def close(self, timeout: float | None = None) -> None:
        """Send what is pending (for at most ``timeout`` seconds, default the client's
        ``timeout``), then stop the sender and release the spool. Events left unsent
        stay in the spool for the next client; without a spool they are lost, and a
        warning says how many."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._exit_hook)
        budget = self.timeout if timeout is None else timeout
        self._sender.stop(_time.monotonic() + budget)
        self._sender.join(budget + 5)
        left = len(self._pending.records)
        if left:
            if self._pending.path is None:
                logger.warning("glasslog client closed with %d events unsent and no spool: "
                               "they are lost (is the server reachable?)", left)  # fmt: skip
            else:
                logger.warning("glasslog client closed with %d events unsent; they stay "
                               "in the spool %s", left, self._pending.path)  # fmt: skip
        self._http.close()
        self._pending.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _close_at_exit(ref: weakref.ref[Client]) -> None:
    client = ref()
    if client is not None:
        client.close()


class AsyncClient:
    """:class:`Client` for ``async`` code: the same arguments, awaited methods.

    The sender is the same background thread. A plain :meth:`log` only queues the
    event, so it runs inline; with a spool (an ``fdatasync``) or ``fail_closed`` (a wait
    for the server) it runs on a worker thread, so the event loop is not blocked.
    """

    def __init__(self, url: str, key: str, *, service: str, **options: Any) -> None:
        self.sync = Client(url, key, service=service, **options)
        self._blocking = self.sync.fail_closed or self.sync._pending.path is not None

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    @property
    def dropped(self) -> int:
        return self.sync.dropped

    @property
    def rejected(self) -> int:
        return self.sync.rejected

    async def log(self, action: str, **fields: Any) -> str:
        """As :meth:`Client.log`."""
        if not self._blocking:
            return self.sync.log(action, **fields)
        return await to_thread(self.sync.log, action, **fields)

    async def flush(self, timeout: float | None = None) -> bool:
        return await to_thread(self.sync.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        await to_thread(self.sync.close, timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


T = TypeVar("T")


async def to_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``asyncio.to_thread``, with asyncio imported on first use: an application that
    never awaits the client does not pay for importing it."""
    import asyncio  # noqa: PLC0415 - 20 ms at import time otherwise

    return await asyncio.to_thread(function, *args, **kwargs)


# -- the process-wide default client ----------------------------------------------------

_default: _Builder | None = None
_capture_default: _Builder | None = None
"""The client capture_events lends to get_client() when none is configured."""
_default_lock = threading.Lock()


def configure(url: str, key: str, *, service: str, **options: Any) -> Client:
    """Create the process-wide default client (closing the previous one) and return it."""
    global _default
    client = Client(url, key, service=service, **options)
    with _default_lock:
        previous, _default = _default, client
    if isinstance(previous, Client):
        previous.close()
    return client


def get_client() -> Client:
    """The default client set by :func:`configure`."""
    client = _default or _capture_default
    if client is None:
        raise ClientError(
            "no glasslog client is configured: call glasslog.client.configure(url, key, "
            "service=...) at start-up, or pass client= explicitly"
        )
    return client  # type: ignore[return-value]  # an InMemoryClient has Client's surface


def _set_default(client: _Builder | None) -> _Builder | None:
    """Swap the default client (for glasslog.testing); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, client
    return previous


# -- version -------------------------------------------------------------------------------


@functools.cache
def _git_commit() -> str | None:
    """The commit checked out around the working directory, read from ``.git`` (once)."""
    try:
        here = Path.cwd()
        for folder in (here, *here.parents):
            git = folder / ".git"
            if git.is_file():  # a worktree or submodule: "gitdir: PATH"
                text = git.read_text().strip()
                if not text.startswith("gitdir:"):
                    return None
                git = (folder / text.removeprefix("gitdir:").strip()).resolve()
            elif not git.is_dir():
                continue
            return _resolve_head(git)
    except OSError:
        return None
    return None


def _resolve_head(git: Path) -> str | None:
    head = (git / "HEAD").read_text().strip()
    if not head.startswith("ref:"):
        return head or None
    ref = head.removeprefix("ref:").strip()
    common = git
    if (git / "commondir").is_file():  # worktrees keep refs in the main repository
        common = (git / (git / "commondir").read_text().strip()).resolve()
    for base in (git, common):
        loose = base / ref
        if loose.is_file():
            return loose.read_text().strip() or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    return None
