"""The live tail (``GET /v1/tail``): Server-Sent Events of newly stored events.

Each stream keeps only a cursor, the next seq to read. It takes the store's events
in steps of at most :data:`STEP` seqs, through the reader's scope and masks
(:meth:`~glasslog.access.enforce.Reader.follow`), so nothing is buffered per client
beyond one step. A slow client only falls behind and catches up from the store. It
holds no memory that grows and does not slow anyone down.

Streams at the head of the log read the same steps, so the hub reads and parses each
stored event once for all of them (:meth:`TailHub.step`) and keeps the last
:data:`WINDOW` seqs parsed; each stream only matches and masks them. With 100 streams
that is one read and one JSON parse per event instead of 100. A stream that fell
behind the window reads its steps on its own, without holding the others up.

* ``id:`` is the event's seq. A step with no matching event still sends a bare
  ``id:``, which moves the client's ``Last-Event-ID`` without an event. A client that
  reconnects with that header resumes right after it, with no gap and no repeat, on
  any node: the seqs are the log's.
* A comment (``: heartbeat``) every ``heartbeat`` seconds keeps proxies from closing an
  idle stream, and tells the client that the stream is alive.
* A client that does not take a step's events within :data:`STALL` seconds is
  dropped. Its last event is ``event: dropped``, with the seq to resume after.
* At shutdown every stream ends with ``event: shutdown``. Clients reconnect to
  another node.

New events are noticed by polling the tree size every :data:`POLL` seconds, because
other nodes (or the CLI) may have written them. This node's own writer also wakes
the streams as soon as it commits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final

from glasslog.access.enforce import Decoded

__all__ = ["POLL", "STALL", "STEP", "WINDOW", "TailHub", "stream"]

log = logging.getLogger("glasslog.server")

POLL: Final = 0.1
STEP: Final = 500
STALL: Final = 30.0
WINDOW: Final = 2 * STEP
"""Seqs the hub keeps parsed for the streams at the head of the log."""


class TailHub:
    """Knows the tree size and wakes the streams waiting for it to grow."""

    def __init__(
        self,
        size_of: Callable[[], int],
        read: Callable[[int, int], list[Decoded]] | None = None,
    ) -> None:
        """``size_of`` reads the store's size and ``read(start, end)`` the parsed events
        of [start, end); both are called on worker threads."""
        self._size_of = size_of
        self._read = read
        self._parsed: dict[int, Decoded] = {}
        self._low = self._high = 0
        """:attr:`_parsed` holds every stored event with seq in [_low, _high)."""
        self._reading = threading.Lock()
        self.size = 0
        self._changed: asyncio.Condition | None = None
        self._poller: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False
        self.streams = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Condition()
        self.size = await asyncio.to_thread(self._size_of)
        self._poller = asyncio.create_task(self._poll())

    async def close(self) -> None:
        """End every stream (each sends ``event: shutdown``) and stop polling."""
        self.closing = True
        await self._notify()
        if self._poller is not None:
            self._poller.cancel()

    def committed(self, size: int) -> None:
        """From the writer thread: the tree grew to ``size``."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._grew(size)))

    async def _grew(self, size: int) -> None:
        if size > self.size:
            self.size = size
            await self._notify()

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def _poll(self) -> None:
        while not self.closing:
            await asyncio.sleep(POLL)
            if not self.streams:
                continue
            try:
                size = await asyncio.to_thread(self._size_of)
            except Exception:
                log.warning("the tail could not read the tree size", exc_info=True)
                continue
            await self._grew(size)

    def step(self, start: int, end: int) -> Sequence[Decoded]:
        """The parsed events with seq in [start, end), read once for every stream.

        Called on worker threads. The streams woken by one commit all ask for the same
        step: the first reads what the window lacks while the others wait for it, then
        each takes the window's events. A step from before the window is read without
        the lock and not kept: a stream far behind must not hold up those at the head.
        """
        if self._read is None:
            raise RuntimeError("this hub was made without a reader")
        with self._reading:
            if start >= self._low:
                if start > self._high:  # ahead of the window (it went unused): start over
                    self._parsed.clear()
                    self._low = self._high = start
                if end > self._high:
                    for row in self._read(self._high, end):
                        self._parsed[row.seq] = row
                    self._high = end
                    while self._high - self._low > WINDOW:
                        self._parsed.pop(self._low, None)
                        self._low += 1
                if start >= self._low:
                    parsed = self._parsed
                    return [parsed[seq] for seq in range(start, end) if seq in parsed]
        return self._read(start, end)  # behind the window

    async def wait_beyond(self, cursor: int, timeout: float) -> bool:
        """Wait until the tree holds seq ``cursor`` (True), ``timeout`` passes or the hub
        closes (False)."""
        if self._changed is None:
            raise RuntimeError("the tail hub was not started")
        try:
            # The timeout in this task, around the lock: asyncio.wait_for would run the
            # wait in a task of its own, and a cancellation racing its timeout (a client
            # gone under load) could leave the lock held, after which no tail ever woke.
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.size > cursor or self.closing)
        except TimeoutError:
            return False
        return self.size > cursor and not self.closing


def _step(
    follow: Callable[[int, int], list[dict[str, object]]], start: int, end: int
) -> tuple[bytes, int]:
    """The frames of the visible events with seq in [start, end), and the last seq sent.

    A step whose last seq is not an event shown ends with a bare ``id:``: it moves the
    client's ``Last-Event-ID`` past what was filtered out, and shows nothing.
    """
    frames: list[str] = []
    last = start - 1
    for event in follow(start, end):
        seq = event.pop("seq")
        if not isinstance(seq, int):
            raise TypeError("follow() gives events with an int seq")
        frames.append(f"id: {seq}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n")
        last = seq
    if last != end - 1:
        frames.append(f"id: {end - 1}\n\n")
        last = end - 1
    return "".join(frames).encode(), last


async def stream(
    hub: TailHub,
    start: int,
    follow: Callable[[int, int], list[dict[str, object]]],
    *,
    heartbeat: float,
    gone: Callable[[], Awaitable[bool]],
    stall: float = STALL,
) -> AsyncIterator[bytes]:
    """The SSE byte stream from seq ``start`` on.

    ``follow(start, end)`` gives the visible events in [start, end) and runs on a worker
    thread. ``gone()`` is awaited to learn whether the client disconnected.
    """
    cursor = start
    hub.streams += 1
    try:
        yield b": glasslog live tail\n\n"
        while not hub.closing:
            if not await hub.wait_beyond(cursor, heartbeat):
                if hub.closing:
                    break
                if await gone():
                    return
                yield b": heartbeat\n\n"
                continue
            while cursor < hub.size and not hub.closing:
                end = min(hub.size, cursor + STEP)
                # One step read, matched, masked and framed on a worker thread, and sent
                # as one chunk: the event loop does not handle each event of a step.
                chunk, last = await asyncio.to_thread(_step, follow, cursor, end)
                offered = time.monotonic()
                yield chunk
                if time.monotonic() - offered > stall:
                    note = {"reason": "the client did not keep up", "resume_after": last}
                    yield f"event: dropped\ndata: {json.dumps(note)}\n\n".encode()
                    return
                cursor = end
        yield b'event: shutdown\ndata: {"reason": "the server is stopping; reconnect"}\n\n'
    finally:
        hub.streams -= 1
