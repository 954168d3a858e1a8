"""The one background thread per client that sends the pending events.

It sends the oldest pending events as one ``POST {url}/v1/events`` of
``{"events": [...]}`` when ``batch_size`` have gathered, when the oldest has waited
``flush_interval`` seconds, or at once when a caller waits (``flush()``, a fail-closed
``log()``). It sends one batch at a time, in order, and keeps retrying it until the
server answers for it:

- 429, 503, any 5xx, 408 or no answer at all (the server is down, restarting, or the
  network failed): retried after ``Retry-After`` when the server gave one, else after
  an exponential backoff (0.1 s doubling up to 10 s) with jitter, so that many clients
  do not return at the same instant;
- 401 or 403: the key is wrong, revoked or not allowed to ingest. The events are kept
  and retried at the longest backoff (the key may be fixed server-side), and each
  refusal logs a warning; with a spool, ``log()`` raises ``SpoolFull`` once the spool
  fills, so the problem is never silent;
- another 4xx for the whole request (413, 400): the batch is split to find the event
  the server refuses, and that event is counted as rejected;
- 200: the answer's ``rejected`` list names events the server refused for good
  (invalid, or a service the key may not write). They are not retried: they are
  counted in ``Client.rejected`` and logged (id and the JSON paths of the problems,
  never the event's content). ``accepted`` and ``duplicates`` are both acknowledged:
  ids are assigned by the client, so a batch sent twice is stored once.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any, Final

import httpx

from glasslog.client._spool import Pending, Record

__all__ = ["Sender"]

logger = logging.getLogger("glasslog.client")

MAX_BODY: Final = 4 * 1024 * 1024
MAX_EVENTS: Final = 1_000
"""Bytes of events per request, under the server's 5 MiB limit."""
GZIP_ABOVE: Final = 16 * 1024
"""Bodies at least this long are gzipped; below it, compressing costs more than it saves."""
BASE_WAIT: Final = 0.1
MAX_WAIT: Final = 10.0
RETRIABLE: Final = frozenset({408, 425, 429})


class Sender(threading.Thread):
    """Sends ``pending`` to ``url`` until :meth:`stop`."""

    def __init__(
        self,
        pending: Pending,
        http: httpx.Client,
        url: str,
        *,
        batch_size: int,
        flush_interval: float,
    ) -> None:
        super().__init__(name="glasslog-client-sender", daemon=True)
        self.pending = pending
        pending.wake_at = batch_size
        self.http = http
        self.endpoint = f"{url}/v1/events"
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.rejected = 0
        self._urgent = 0
        self._stopping = False
        self._give_up_at: float | None = None
        self._wake = threading.Event()

    def hurry(self, delta: int) -> None:
        """A caller starts (+1) or stops (-1) waiting for the queue: send without delay."""
        with self.pending.lock:
            self._urgent += delta
            self.pending.changed.notify_all()

    def stop(self, deadline: float) -> None:
        """Send what is pending until ``deadline`` (a ``time.monotonic()``), then end."""
        with self.pending.lock:
            self._stopping = True
            self._give_up_at = deadline
            self.pending.changed.notify_all()
        self._wake.set()

    def _abandoned(self) -> bool:
        return self._give_up_at is not None and time.monotonic() >= self._give_up_at

    def run(self) -> None:
        pending = self.pending
        while True:
            with pending.lock:
                due: float | None = None
                while True:
                    count = len(pending.records)
                    if self._stopping and (count == 0 or self._abandoned()):
                        return
                    if count == 0:
                        due = None
                        pending.changed.wait()
                        continue
                    now = time.monotonic()
                    if due is None:
                        due = now + self.flush_interval
                    if count >= self.batch_size or self._urgent or self._stopping or now >= due:
                        break
                    pending.changed.wait(due - now)
            batch = pending.head(MAX_EVENTS, MAX_BODY)
            if not batch:
                continue  # dropped (on_full="drop_oldest") since the check above
            try:
                refused = self._deliver(batch)
            except Exception:  # a bug must not end the thread and strand the queue
                logger.exception("glasslog client: unexpected error sending events; retrying")
                self._sleep(MAX_WAIT)
                continue
            if refused is None:
                return  # abandoned at close: the events stay pending (on disk with a spool)
            pending.answered(batch[-1].seq, refused)

    def _deliver(self, batch: list[Record]) -> frozenset[int] | None:
        """POST ``batch`` until answered: the seqs the server refused, or None if abandoned."""
        attempt = 0
        while True:
            wait, refused = self._post(batch)
            if refused is not None:
                return refused
            if self._abandoned():
                return None
            if wait is None:
                wait = min(MAX_WAIT, BASE_WAIT * 2 ** min(attempt, 16))
                wait = wait / 2 + random.uniform(0, wait / 2)  # noqa: S311 - jitter, not a secret
            attempt += 1
            self._sleep(wait)

    def _sleep(self, seconds: float) -> None:
        if self._give_up_at is not None:
            seconds = min(seconds, max(0.0, self._give_up_at - time.monotonic()))
        self._wake.wait(seconds)

    def _post(self, batch: list[Record]) -> tuple[float | None, frozenset[int] | None]:
        """One attempt: (wait before retrying or None for the backoff, None) or (_, refused)."""
        body = b'{"events":[' + b",".join(r.payload for r in batch) + b"]}"
        headers = {"content-type": "application/json"}
        if len(body) >= GZIP_ABOVE:
            import gzip  # noqa: PLC0415 - only for large bodies; keeps the import light

            body = gzip.compress(body, compresslevel=1)
            headers["content-encoding"] = "gzip"
        try:
            answer = self.http.post(self.endpoint, content=body, headers=headers)
        except httpx.TransportError as error:
            logger.debug("glasslog server not reachable (%s); retrying", type(error).__name__)
            return None, None
        status = answer.status_code
        if status == 200:
            return None, self._refused(batch, answer)
        if status in RETRIABLE or status >= 500:
            return _retry_after(answer), None
        if status in (401, 403):
            logger.warning("the glasslog server refused the client's key (%d %s); the events "
                           "are kept and retried: check the key and that its role has "
                           "`ingest` for this service", status, answer.reason_phrase)  # fmt: skip
            return MAX_WAIT, None
        if len(batch) > 1:  # 413, 400…: find the event the server will not take
            half = len(batch) // 2
            first = self._deliver(batch[:half])
            second = self._deliver(batch[half:]) if first is not None else None
            return None, None if first is None or second is None else first | second
        self._reject(batch[0], [f"the whole request was refused: {status} {answer.reason_phrase}"])
        return None, frozenset({batch[0].seq})

    def _refused(self, batch: list[Record], answer: httpx.Response) -> frozenset[int]:
        try:
            rejected: list[dict[str, Any]] = answer.json().get("rejected") or []
        except (ValueError, AttributeError):
            rejected = []
        refused = set()
        for item in rejected:
            index = item.get("index")
            if isinstance(index, int) and 0 <= index < len(batch):
                refused.add(batch[index].seq)
                self._reject(batch[index], item.get("errors") or [])
        return frozenset(refused)

    def _reject(self, record: Record, errors: list[Any]) -> None:
        self.rejected += 1
        # Only the problems' JSON paths: a message may quote part of the event.
        paths = sorted({str(e).split(": ", 1)[0] for e in errors}) or ["?"]
        logger.warning("the glasslog server rejected event %s (problems at %s); it is not "
                       "retried", _event_id(record.payload), ", ".join(paths))  # fmt: skip


def _event_id(payload: bytes) -> str:
    """The id of an encoded event, read from its start (the client writes it first)."""
    try:
        event = json.loads(payload)
        return str(event.get("id", "?"))
    except ValueError:
        return "?"


def _retry_after(answer: httpx.Response) -> float | None:
    """Seconds the server asked to wait (Retry-After in seconds), capped; None if it did not."""
    value = answer.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from glasslog; use the backoff
    return min(MAX_WAIT, max(0.05, seconds)) * random.uniform(1.0, 1.2)  # noqa: S311 - jitter
