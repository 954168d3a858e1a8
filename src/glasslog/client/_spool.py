"""The events a client has accepted and the server has not yet acknowledged.

:class:`Pending` is an ordered, bounded queue of encoded events. With a spool
directory it is also on disk, so that an event survives a server outage and a
``kill -9`` of the application: :meth:`Pending.append` writes the record and
``fdatasync``s it before it returns, and a new client on the same directory replays
what is left, in order.

On disk (``DIR``)::

    lock                  flock'd exclusively while a client uses DIR (holds its pid)
    acked                 "<segment> <offset>": where the unacknowledged records start
    00000000000000000007.seg   segments of records, appended to, never rewritten

A record is ``length (4 bytes, big-endian) | CRC-32 of the payload (4) | payload`` (the
event's JSON). A ``kill -9`` during an append leaves a short or mismatching last record;
it had not been acknowledged to the caller (the fsync had not returned), so replay
drops it and truncates the segment there. Segments rotate at a fixed size, and a
segment is deleted once all its records are acknowledged, so acknowledging never
rewrites a file. ``acked`` is rewritten in place without an fsync: after a crash it
may lag, and the events it lags by are sent again, which the server counts as
duplicates (events are idempotent by id).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Final, Literal

from glasslog.client._errors import ClientError, SpoolFull

__all__ = ["Pending", "Record"]

logger = logging.getLogger("glasslog.client")

_HEADER: Final = struct.Struct(">II")
_SUFFIX: Final = ".seg"
_WARN_EVERY: Final = 10.0
"""Seconds between two warnings about dropped events (each gives the running total)."""


@dataclass(slots=True)
class Record:
    """One event: its place in the queue, its JSON, and where it ends on disk."""

    seq: int
    payload: bytes
    segment: int = -1
    end: int = 0
    upto: int = 0
    """Bytes of every record queued so far, this one included: the bytes of a run of
    records is a difference of two of these, not a loop under the queue's lock."""

    @property
    def size(self) -> int:
        return len(self.payload) + _HEADER.size


class Pending:
    """Accepted, unacknowledged events, oldest first; the sender reads from the head."""

    def __init__(
        self,
        *,
        max_bytes: int,
        on_full: Literal["raise", "drop_oldest"],
        spool: Path | None = None,
    ) -> None:
        if on_full not in ("raise", "drop_oldest"):
            raise ValueError(f'on_full must be "raise" or "drop_oldest", got {on_full!r}')
        if max_bytes < 1024:
            raise ValueError(f"spool_max_bytes must be at least 1024, got {max_bytes}")
        self.max_bytes = max_bytes
        self.on_full = on_full
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        """Notified when records are appended, acknowledged or dropped."""
        self.records: deque[Record] = deque()
        self.bytes = 0
        self.next_seq = 1
        self.done_seq = 0
        """Every record with a seq up to this one is answered or dropped."""
        self.dropped = 0
        self.wake_at = 1
        """Queue length at which an append wakes the sender (its batch size): waking it
        for every event would cost each log() a thread switch."""
        self.watched: dict[int, bool | None] = {}
        """Seqs whose fate a fail-closed caller waits for: None until answered, then
        whether the server stored it (False: rejected or dropped)."""
        self._warned = 0.0
        self._queued = 0
        self._disk = _Segments(spool, max_bytes) if spool is not None else None
        if self._disk is not None:
            for payload in self._disk.replay():
                seq = self.next_seq
                self.next_seq += 1
                record = Record(seq, payload)
                self._disk.place(record)
                self.records.append(record)
                self.bytes += record.size
                record.upto = self._queued = self._queued + record.size
            self.done_seq = self.next_seq - len(self.records) - 1

    def append(self, payload: bytes, *, watch: bool = False) -> int:
        """Keep ``payload`` (durably, with a spool) and return its seq; raises
        :class:`SpoolFull` when it does not fit and ``on_full`` is "raise". With
        ``watch``, :meth:`stored` can tell whether the server stored it."""
        record = Record(0, payload)
        if self._disk is None:
            with self.lock:
                self._room(record.size)
                return self._enqueue(record, watch)
        # The write and its fsync happen outside the queue's lock, so that the sender
        # can take batches and acknowledge meanwhile; the disk's own lock serialises
        # appends, which keeps the file and the queue in one order.
        with self._disk.lock:
            with self.lock:
                self._room(record.size)
            self._disk.write(record)  # raises before the record is counted
            with self.lock:
                return self._enqueue(record, watch)

    def _enqueue(self, record: Record, watch: bool) -> int:
        seq = record.seq = self.next_seq
        self.next_seq = seq + 1
        self.records.append(record)
        self.bytes += record.size
        record.upto = self._queued = self._queued + record.size
        if watch:
            self.watched[seq] = None
        count = len(self.records)
        if watch or count == 1 or count >= self.wake_at:
            self.changed.notify_all()  # else the sender's timer is already running
        return seq

    def _room(self, size: int) -> None:
        if self.bytes + size > self.max_bytes:
            self._make_room(size)

    def _make_room(self, size: int) -> None:
        where = f"the spool {self._disk.path}" if self._disk is not None else "the client's queue"
        if size > self.max_bytes or self.on_full == "raise":
            raise SpoolFull(
                f"{where} holds {self.bytes:,} bytes of events the server has not "
                f"acknowledged, and this event ({size:,} bytes) would pass spool_max_bytes="
                f"{self.max_bytes:,}: is the server reachable? Raise spool_max_bytes, or "
                'pass on_full="drop_oldest" to drop the oldest events instead (counted)'
            )
        dropped = 0
        last = None
        while self.records and self.bytes + size > self.max_bytes:
            last = record = self.records.popleft()
            self.bytes -= record.size
            self.done_seq = record.seq
            if record.seq in self.watched:
                self.watched[record.seq] = False
            dropped += 1
        self.dropped += dropped
        self._forget(last)
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            logger.warning("%s is full (spool_max_bytes=%d): dropped the oldest unsent events, "
                           "%d so far", where, self.max_bytes, self.dropped)  # fmt: skip

    def head(self, count: int, max_bytes: int) -> list[Record]:
        """The oldest ``count`` records (fewer if they pass ``max_bytes``; at least one).

        Only the copy happens under the queue's lock, at C speed: every ``log()`` needs
        that lock, and a Python loop over a thousand records would make callers wait.
        """
        with self.lock:
            batch = list(islice(self.records, count))
        if batch and batch[-1].upto - batch[0].upto + batch[0].size > max_bytes:
            first = batch[0].upto - batch[0].size
            fits = [r for r in batch if r.upto - first <= max_bytes]
            return fits or batch[:1]
        return batch

    def answered(self, last_seq: int, refused: frozenset[int] = frozenset()) -> None:
        """The server answered every record up to ``last_seq`` (and stored all but the
        seqs in ``refused``): forget them."""
        with self.lock:
            records = self.records
            taken = min(len(records), last_seq - records[0].seq + 1) if records else 0
            if taken > 0:
                first, last = records[0], records[taken - 1]
                self.bytes -= last.upto - first.upto + first.size
                if self.watched:
                    for seq in range(first.seq, last.seq + 1):
                        if seq in self.watched:
                            self.watched[seq] = seq not in refused
                if taken == len(records):
                    records.clear()
                elif taken <= 64:
                    for _ in range(taken):
                        records.popleft()
                else:
                    self.records = deque(islice(records, taken, None))
                self._forget(last)
            self.done_seq = max(self.done_seq, last_seq)
            self.changed.notify_all()

    def _forget(self, last: Record | None) -> None:
        """Move the spool's acknowledged position past ``last``, just forgotten."""
        if self._disk is None or last is None:
            return
        if self.records:
            first = self.records[0]
            self._disk.acknowledge((first.segment, first.end - first.size))
        else:
            self._disk.acknowledge((last.segment, last.end))

    def wait_answered(self, seq: int, deadline: float | None) -> bool:
        """Wait until the record ``seq`` (and every one before it) is answered or
        dropped; False when ``deadline`` (a ``time.monotonic()``) passed first."""
        with self.lock:
            while self.done_seq < seq:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def stored(self, seq: int, deadline: float) -> bool:
        """Wait for the watched record ``seq``: whether the server stored it by ``deadline``."""
        try:
            return self.wait_answered(seq, deadline) and self.watched.get(seq) is True
        finally:
            with self.lock:
                self.watched.pop(seq, None)

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()

    @property
    def path(self) -> Path | None:
        return None if self._disk is None else self._disk.path


class _Segments:
    """The spool directory: the lock, the segment files, and the acknowledged position."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path = Path(path)
        # Spooled events may hold personal data: the directory and its files are the
        # owner's only, like the server's data directory.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.segment_bytes = min(max(max_bytes // 8, 64 * 1024), 8 * 1024 * 1024)
        self.lock = threading.Lock()
        """Held by an append from its write to its place in the queue."""
        self._sealed: dict[int, int] = {}
        """Sizes of the segments no longer appended to, so that a position at the end
        of one counts as the start of the next (and the segment can go)."""
        self._lock_fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._lock_fd, 32, 0).decode(errors="replace").strip()
            os.close(self._lock_fd)
            raise ClientError(
                f"the spool directory {path} is in use by another client (process "
                f"{holder or 'unknown'}); only one client may use a spool at a time: give "
                "each process its own directory, or close the other client first"
            ) from None
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{os.getpid()}\n".encode(), 0)
        self._acked_fd = os.open(path / "acked", os.O_RDWR | os.O_CREAT, 0o600)
        self._acked = (0, 0)
        self._fd = -1
        self._segment = 0
        self._size = 0

    def _segments(self) -> list[int]:
        numbers = []
        for entry in self.path.iterdir():
            if entry.name.endswith(_SUFFIX) and entry.name[: -len(_SUFFIX)].isdigit():
                numbers.append(int(entry.name[: -len(_SUFFIX)]))
        return sorted(numbers)

    def _name(self, segment: int) -> Path:
        return self.path / f"{segment:020d}{_SUFFIX}"

    def replay(self) -> list[bytes]:
        """The payloads left unacknowledged, in order; then open a fresh segment."""
        try:
            text = os.pread(self._acked_fd, 64, 0).decode("ascii").split()
            acked = (int(text[0]), int(text[1]))
        except (ValueError, IndexError, UnicodeDecodeError):
            acked = (0, 0)  # missing or torn: replay everything left (duplicates are harmless)
        segments = self._segments()
        payloads: list[bytes] = []
        self._found: list[tuple[int, int]] = []
        for segment in segments:
            if segment < acked[0]:
                self._name(segment).unlink(missing_ok=True)
                continue
            data = self._name(segment).read_bytes()
            offset = acked[1] if segment == acked[0] else 0
            while offset + _HEADER.size <= len(data):
                length, crc = _HEADER.unpack_from(data, offset)
                start, end = offset + _HEADER.size, offset + _HEADER.size + length
                if end > len(data) or zlib.crc32(data[start:end]) != crc:
                    break
                payloads.append(data[start:end])
                self._found.append((segment, end))
                offset = end
            self._sealed[segment] = offset
            if offset < len(data):
                logger.warning("spool %s: segment %d ends in %d bytes of a record cut "
                               "short (never acknowledged to the caller); dropped",
                               self.path, segment, len(data) - offset)  # fmt: skip
                with open(self._name(segment), "r+b") as torn:
                    torn.truncate(offset)
                    os.fsync(torn.fileno())
        self._found.reverse()
        self._acked = acked
        self._segment = (segments[-1] + 1) if segments else 0
        self._open(self._segment)
        if payloads:
            logger.info("spool %s: replaying %d unacknowledged events", self.path, len(payloads))
        return payloads

    def place(self, record: Record) -> None:
        """Give a replayed record its position on disk (in replay order)."""
        record.segment, record.end = self._found.pop()

    def _open(self, segment: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self._name(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment, self._size = segment, os.fstat(self._fd).st_size
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name is durable too
        finally:
            os.close(dir_fd)

    def write(self, record: Record) -> None:
        if self._size >= self.segment_bytes:
            self._sealed[self._segment] = self._size
            self._open(self._segment + 1)
        frame = _HEADER.pack(len(record.payload), zlib.crc32(record.payload)) + record.payload
        try:
            written = os.write(self._fd, frame)
            if written != len(frame):
                raise OSError(f"short write: {written} of {len(frame)} bytes")
            os.fdatasync(self._fd)
        except OSError as error:
            # Whatever part reached the file is a torn record: cut it off, so that the
            # next append does not follow garbage.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise ClientError(
                f"could not write the event to the spool {self.path}: {error.strerror or error}"
            ) from error
        self._size += len(frame)
        record.segment, record.end = self._segment, self._size

    def acknowledge(self, position: tuple[int, int]) -> None:
        """Everything before ``position`` (segment, offset) is acknowledged."""
        sealed = self._sealed
        while position[1] >= sealed.get(position[0], position[1] + 1):
            position = (position[0] + 1, 0)
        if position <= self._acked:
            return
        for segment in range(self._acked[0], position[0]):
            self._name(segment).unlink(missing_ok=True)
            sealed.pop(segment, None)
        self._acked = position
        text = f"{position[0]} {position[1]}".encode().ljust(48)
        os.pwrite(self._acked_fd, text, 0)

    def close(self) -> None:
        for fd in (self._fd, self._acked_fd, self._lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fd = -1
