"""The server's single writer: a bounded queue of event batches and the thread that
sequences them.

Requests do not write. They hand their events to :class:`WriteQueue` and wait for the
receipts, which arrive only after the transaction holding the events has committed:
"accepted" means durable. The thread takes every request waiting at that moment into
one transaction (group commit), so a hundred concurrent requests cost one fsync, not
a hundred.

The queue is bounded in events. When it is full, :meth:`WriteQueue.submit` raises
:class:`QueueFull` at once, and the server answers 503 with ``Retry-After``: a client
learns to slow down, and nothing it was told is stored is ever dropped. ``audit.read``
events (``priority=True``) are not refused. They are small, their number is bounded
by the reads the server serves, and a read must never go unrecorded because writers
are busy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from glasslog.errors import EventError, GlasslogError
from glasslog.ingest.pipeline import Prepared, Preparer, Receipt, Sequencer

__all__ = ["QueueFull", "WriteQueue", "WriterStopped"]

log = logging.getLogger("glasslog.server")

TICK: Final = 0.2
READS_FIRST: Final = 0.05
"""Seconds the writer may wait for reads in progress before a transaction."""
"""Seconds between the writer's idle checks: checkpoint due, audit reads to flush."""


class QueueFull(GlasslogError):
    """The write queue holds as many events as it may; retry after a moment."""


class WriterStopped(GlasslogError):
    """The writer has stopped (the server is shutting down, or could not open the store)."""


@dataclass(slots=True)
class _Request:
    events: list[object]
    future: Future[list[Receipt]] = field(default_factory=Future)


class WriteQueue:
    """One thread sequencing what requests submit, in order of arrival."""

    def __init__(
        self,
        open_sequencer: Callable[[], Sequencer],
        preparer: Preparer,
        *,
        capacity: int = 20_000,
        batch: int = 5_000,
        on_commit: Callable[[int], object] | None = None,
        on_tick: Callable[[], object] | None = None,
        on_batch: Callable[[int, float], object] | None = None,
    ) -> None:
        """``open_sequencer`` is called in the writer thread, which then owns its store
        connection. ``on_commit(size)`` runs after each commit with the new tree size
        (the tail wakes on it); ``on_tick()`` about every :data:`TICK` seconds;
        ``on_batch(events, seconds)`` after each transaction (metrics)."""
        self._open = open_sequencer
        self._preparer = preparer
        self.capacity = capacity
        self._batch = batch
        self._on_commit = on_commit
        self._on_tick = on_tick
        self._on_batch = on_batch
        self._queue: deque[_Request] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._reads = 0
        self._reads_done = threading.Condition()
        self.size = 0
        """The tree size after the last commit (or at start)."""
        self.last_signed = time.time()
        """When the writer last saw a checkpoint signed (epoch seconds), for metrics."""

    # -- the requests' side -----------------------------------------------------

    @property
    def depth(self) -> int:
        """Events waiting to be written."""
        return self._pending

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def submit(self, events: list[object], *, priority: bool = False) -> Future[list[Receipt]]:
        """Queue ``events`` as one request; its future gives one receipt per event, in order.

        Raises :class:`QueueFull` (unless ``priority``) and :class:`WriterStopped`.
        """
        request = _Request(list(events))
        with self._cond:
            if self._stopping or not self.alive:
                raise WriterStopped("the server is not accepting writes now; try another node")
            if not priority and self._pending + len(request.events) > self.capacity:
                raise QueueFull(
                    f"the write queue is full ({self._pending:,} events waiting); retry shortly"
                )
            self._queue.append(request)
            self._pending += len(request.events)
            self._cond.notify()
        return request.future

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Mark a read (search, count, …) in progress: the writer lets it finish first."""
        with self._reads_done:
            self._reads += 1
        try:
            yield
        finally:
            with self._reads_done:
                self._reads -= 1
                if not self._reads:
                    self._reads_done.notify_all()

    # -- life -------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread; raise what opening the store raised, if anything."""
        self._thread = threading.Thread(target=self._run, name="glasslog-writer", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            raise self._failure

    def stop(self, timeout: float = 60.0) -> None:
        """Write what is queued, sign a checkpoint, and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        try:
            sequencer = self._open()
        except BaseException as exc:  # reported to start(), which re-raises it
            self._failure = exc
            self._started.set()
            return
        self.size = sequencer.size
        self._started.set()
        try:
            self._loop(sequencer)
        finally:
            try:
                if sequencer.size:
                    sequencer.checkpoint()
            except GlasslogError:
                log.exception("could not sign the final checkpoint")
            sequencer.store.close()

    def _loop(self, sequencer: Sequencer) -> None:
        next_tick = time.monotonic() + TICK
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    remaining = next_tick - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                taken = self._take()
                stopping = self._stopping
            if taken:
                self._let_reads_finish()
                self._write(sequencer, taken)
            if time.monotonic() >= next_tick or (stopping and not taken):
                next_tick = time.monotonic() + TICK
                self._tick(sequencer)
            if stopping and not taken:
                with self._cond:
                    if not self._queue:
                        return

    def _let_reads_finish(self) -> None:
        """Wait up to :data:`READS_FIRST` seconds for the reads in progress to end.

        A transaction's Python work (sequencing, hashing, building rows) holds the
        interpreter lock that the reads need; a search that runs beside it takes twice
        as long or more. Reads are short and writes are batched: the requests that
        arrive meanwhile join the next transaction, so the wait costs writers little
        latency and reads gain much. Bounded, so that a steady stream of reads cannot
        starve the writer.
        """
        with self._reads_done:
            self._reads_done.wait_for(lambda: not self._reads, timeout=READS_FIRST)

    def _take(self) -> list[_Request]:
        """Requests for one transaction: all waiting, up to ``batch`` events (at least one)."""
        taken: list[_Request] = []
        events = 0
        while self._queue and (not taken or events + len(self._queue[0].events) <= self._batch):
            request = self._queue.popleft()
            taken.append(request)
            events += len(request.events)
        return taken

    def _tick(self, sequencer: Sequencer) -> None:
        if self._on_tick is not None:
            try:
                self._on_tick()
            except Exception:
                log.exception("the writer's periodic task failed")
        try:
            before = sequencer.store.latest_checkpoint()
            sequencer.sign_if_due()
            after = sequencer.store.latest_checkpoint()
            if after is not None and (before is None or after.size != before.size):
                self.last_signed = time.time()
        except GlasslogError:
            log.exception("could not sign a checkpoint; will retry")

    def _write(self, sequencer: Sequencer, taken: list[_Request]) -> None:
        started = time.perf_counter()
        prepared: list[Prepared] = []
        placed: list[list[Receipt | int]] = []  # per request: a refusal, or the index
        for request in taken:
            slots: list[Receipt | int] = []
            for raw in request.events:
                if isinstance(raw, Prepared):  # prepared by a worker process already
                    slots.append(len(prepared))
                    prepared.append(raw)
                    continue
                try:
                    item = self._preparer.prepare(raw)
                except EventError as exc:
                    slots.append(Receipt(problems=tuple(str(p) for p in exc.problems)))
                    continue
                slots.append(len(prepared))
                prepared.append(item)
            placed.append(slots)
        try:
            receipts = sequencer.commit(prepared) if prepared else []
        except Exception as exc:
            log.exception("a batch of %d events could not be written", len(prepared))
            for request in taken:
                request.future.set_exception(exc)
            return
        finally:
            with self._cond:
                self._pending -= sum(len(r.events) for r in taken)
        self.size = sequencer.size
        for request, slots in zip(taken, placed, strict=True):
            request.future.set_result(
                [slot if isinstance(slot, Receipt) else receipts[slot] for slot in slots]
            )
        if self._on_batch is not None:
            self._on_batch(len(prepared), time.perf_counter() - started)
        if self._on_commit is not None and prepared:
            self._on_commit(sequencer.size)
