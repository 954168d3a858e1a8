"""Bulk ingest of JSON lines: the ``glasslog ingest`` path, usable from Python too.

The parent process reads lines in chunks, worker processes prepare them (parse,
validate, scrub, commit, hash: :class:`~glasslog.ingest.pipeline.Preparer`) and the
parent sequences and writes them in order. At most two chunks per worker are in
flight and rejections are streamed to a file the caller gives, so memory stays flat
whatever the size of the input. The workers are started before the writer lock is
taken and the store opened, so they hold neither, and they die with the parent
(:mod:`glasslog.workers`).

Input compressed with gzip (RFC 1952) is recognised by its magic bytes and read
transparently, from a file or a pipe. When the input cannot be read to its end (a
truncated or corrupt gzip file), everything read before the failure is stored and
signed, and :class:`InputError` says how much that was.

A line longer than ``[ingest] max_line_bytes`` (glasslog.toml, 1 MiB by default;
counted after decompression) is rejected while it is read: it is skipped to its
newline in bounded pieces, never held whole, so one huge line cannot exhaust memory.
Each line is then parsed by :func:`glasslog.ingest.lines.parse_line` (duplicate keys
and deep nesting are refused there), and every rejection message is scrubbed of
secrets before it leaves the worker. An unexpected exception while preparing one line
(a bug) rejects that line only, as an "internal error", and warns once
(:class:`IngestWarning`); the rest of its chunk is ingested as usual.

Ctrl-C, when SIGINT has Python's default handler in the main thread: the first one
stops at the next batch boundary. The batch being written is completed, chunks
still being prepared are discarded, and a checkpoint is signed: at a batch boundary
the store is exactly as at the end of a normal run, and signing takes milliseconds,
so every stored event is covered when :class:`Interrupted` is raised. A second
Ctrl-C stops at once; transactions keep the store consistent, and the next ingest
signs whatever is not covered yet.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import itertools
import json
import os
import signal
import stat
import threading
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import IO, Any, NamedTuple

from glasslog.datadir import DataDir
from glasslog.errors import InputError
from glasslog.ingest.lines import INTERNAL_ERROR, scrub_messages
from glasslog.ingest.pipeline import Prepared, Preparer, Sequencer, Settings
from glasslog.ingest.scrub import Scrubber
from glasslog.store import open_store
from glasslog.workers import worker_pool

CHUNK_LINES = 2_000
"""Lines per chunk sent to a worker; a transaction (--batch-size) may span several."""

GZIP_MAGIC = b"\x1f\x8b"
"""The first two bytes of every gzip member (RFC 1952 §2.3.1)."""

_SKIP_PIECE = 64 * 1024
"""Bytes read at a time while skipping the rest of a line over the length cap."""


class IngestWarning(UserWarning):
    """Something an operator should hear about although the ingest went on (a bug hit a line)."""


@dataclass(slots=True)
class Tally:
    """How far an ingest has got; ``progress`` receives it after every batch."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    offset: int | None = None
    """Bytes of the input file consumed (compressed bytes for gzip); None for a pipe."""
    internal_errors: int = 0
    """Lines rejected by an unexpected exception (a bug) rather than for their content."""

    def __str__(self) -> str:
        return (
            f"{self.accepted:,} events stored, {self.duplicates:,} duplicates, "
            f"{self.rejected:,} lines rejected"
        )


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped an ingest; the message says what was stored and whether it is signed.

    Still a KeyboardInterrupt, so a caller that does not catch it stops as usual.
    """

    def __init__(self, message: str, tally: Tally) -> None:
        super().__init__(message)
        self.tally = tally


def input_size(stream: IO[bytes]) -> int | None:
    """The size in bytes of the file behind ``stream``, or None when it is not a regular file."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):  # no descriptor (io.BytesIO), or closed
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


_Rejection = tuple[int, list[str]]
"""A rejected line: its number and its problems."""


class _Chunk(NamedTuple):
    numbers: list[int]
    """The 1-based number of each line (blank lines are left out, so there are gaps)."""
    lines: list[bytes]
    early: list[_Rejection]
    """Lines rejected while reading (too long), to report in order with the others."""
    end: int | None
    """The input offset after the chunk (see :attr:`Tally.offset`)."""


class _Input:
    """The input as chunks of non-blank lines. A read failure ends it, kept in ``error``."""

    def __init__(self, stream: IO[bytes], size: int, max_line_bytes: int) -> None:
        name = getattr(stream, "name", None)
        self.name = name if isinstance(name, str) else "the input"
        self.error: str | None = None
        self.last_line = 0
        self._size = size
        self._max = max_line_bytes
        self._offset = _offset_reader(stream)
        self._stream = _decompressed(stream)

    def __iter__(self) -> Iterator[_Chunk]:
        numbers: list[int] = []
        lines: list[bytes] = []
        early: list[_Rejection] = []
        number = 0
        # At most max + 1 bytes per call: a line that fills them without its newline is
        # over the cap, whatever its length, and the rest of it is skipped piece by piece.
        readline = partial(self._stream.readline, self._max + 1)
        try:
            for number, line in enumerate(iter(readline, b""), 1):
                if len(line) > self._max and line[-1:] != b"\n":
                    early.append((number, [self._too_long(len(line) + self._skip_rest())]))
                elif line.isspace():
                    continue
                else:
                    numbers.append(number)
                    lines.append(line)
                if len(lines) + len(early) >= self._size:
                    yield _Chunk(numbers, lines, early, self._offset())
                    numbers, lines, early = [], [], []
        except EOFError:
            self.error = "the gzip data ends early (the file is truncated)"
        except (gzip.BadGzipFile, zlib.error) as exc:
            self.error = f"the gzip data is corrupt ({exc})"
        except OSError as exc:
            self.error = f"reading failed ({exc.strerror or exc})"
        self.last_line = number
        if lines or early:
            yield _Chunk(numbers, lines, early, self._offset())

    def _skip_rest(self) -> int:
        """Read past the end of the current line in bounded pieces; return its bytes left."""
        skipped = 0
        while piece := self._stream.readline(_SKIP_PIECE):
            skipped += len(piece)
            if piece[-1:] == b"\n":
                return skipped - 1
        return skipped

    def _too_long(self, length: int) -> str:
        return (
            f"$: the line has {length:,} bytes, over the {self._max:,} that are read "
            "(max_line_bytes in the [ingest] section of glasslog.toml); it was skipped: send "
            "one event per line"
        )


def _offset_reader(stream: IO[bytes]) -> Callable[[], int | None]:
    """How far the OS has read the file behind ``stream`` (None when it is not a file)."""
    if input_size(stream) is None:
        return lambda: None
    fd = stream.fileno()
    return lambda: os.lseek(fd, 0, os.SEEK_CUR)


def _decompressed(stream: IO[bytes]) -> IO[bytes] | gzip.GzipFile:
    """``stream``, decompressed when it starts with gzip's magic bytes."""
    head = _peek(stream, len(GZIP_MAGIC))
    # A lone 0x1f means a pipe delivered one byte so far; no JSON line starts with it,
    # and GzipFile reports a clear error if the next byte is not 0x8b.
    if head and GZIP_MAGIC.startswith(head):
        # readline(limit) on a GzipFile inflates at most about the limit: the cap holds
        # for the decompressed line (a gzip bomb of one line is skipped like any other).
        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


def _peek(stream: IO[bytes], n: int) -> bytes:
    """Up to ``n`` first bytes of ``stream``, left unread (b"" when it cannot look ahead)."""
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return bytes(peek(n)[:n])
    if stream.seekable():
        head = stream.read(n)
        stream.seek(-len(head), io.SEEK_CUR)
        return head
    return b""


_Results = list[tuple[int, Prepared | list[str]]]


class _ChunkPreparer:
    """Prepares a chunk of lines; one line can never cost the others, nor leak a secret.

    Rejection messages quote parts of the input (an unknown field's name, a bad enum
    value), so each goes through the scrubber before it leaves: a refused secret must
    not be printed when the same secret, accepted, would have been redacted.
    """

    def __init__(self, key: bytes, settings: Settings) -> None:
        self._preparer = Preparer(fingerprint_key=key, settings=settings)
        self._scrubber = Scrubber(fingerprint_key=key, config=settings.scrub)

    def __call__(self, lines: list[bytes], numbers: list[int]) -> _Results:
        try:
            results = self._preparer.prepare_lines(lines, first_line=0)
        except Exception:  # a bug on one line: find it, keep the others
            results = [self._one(index, line) for index, line in enumerate(lines)]
        return [
            (numbers[i], r if isinstance(r, Prepared) else self._scrubbed(r)) for i, r in results
        ]

    def _one(self, index: int, line: bytes) -> tuple[int, Prepared | list[str]]:
        try:
            [(_, result)] = self._preparer.prepare_lines([line], first_line=index)
        except Exception as exc:  # reported as this line's rejection
            return index, [_internal(exc)]
        return index, result

    def _scrubbed(self, problems: list[str]) -> list[str]:
        try:
            return scrub_messages(self._scrubber, problems)
        except Exception as exc:  # never fall back to the unscrubbed text
            return [_internal(exc)]


def _internal(exc: Exception) -> str:
    # The exception's type only: its message may quote the input.
    return (
        f"{INTERNAL_ERROR} ({type(exc).__name__}) while preparing this line, not a problem "
        "with its content; the other lines were ingested. Please report it"
    )


_worker_chunks: _ChunkPreparer | None = None


def _init_worker(key: bytes, settings: Settings) -> None:
    global _worker_chunks  # noqa: PLW0603 - one preparer per worker process
    _worker_chunks = _ChunkPreparer(key, settings)


def _prepare_in_worker(lines: list[bytes], numbers: list[int]) -> list[tuple[int, Any]]:
    """Prepare one chunk; Prepared items travel as plain tuples, which pickle twice as fast."""
    assert _worker_chunks is not None
    return [
        (n, tuple(r) if isinstance(r, Prepared) else r) for n, r in _worker_chunks(lines, numbers)
    ]


@contextmanager
def _prepared(
    chunks: Iterator[_Chunk], key: bytes, settings: Settings, workers: int
) -> Iterator[Iterator[tuple[int | None, _Results]]]:
    """Prepared chunks in input order, each with the input offset it ends at.

    More than one chunk goes to worker processes, started here: enter this before
    taking the writer lock and opening the store, so the workers hold neither.
    Leaving it by an exception (Ctrl-C) discards the chunks still queued.
    """
    head = list(itertools.islice(chunks, 2))
    everything = itertools.chain(head, chunks)
    if len(head) < 2 or workers <= 1:  # one chunk: starting processes would cost more
        local = _ChunkPreparer(key, settings)
        yield ((c.end, [*local(c.lines, c.numbers), *c.early]) for c in everything)
        return
    with worker_pool(workers, initializer=_init_worker, initargs=(key, settings)) as pool:
        inflight: deque[tuple[int | None, list[_Rejection], Future[list[tuple[int, Any]]]]]
        inflight = deque()

        def submit(n: int) -> None:
            for c in itertools.islice(everything, n):
                future = pool.submit(_prepare_in_worker, c.lines, c.numbers)
                inflight.append((c.end, c.early, future))  # not the lines: they are sent

        def in_order() -> Iterator[tuple[int | None, _Results]]:
            while inflight:
                end, early, future = inflight.popleft()
                results = future.result()
                submit(1)  # bounded: memory does not grow with the input
                yield end, [*_from_worker(results), *early]

        submit(2 * workers)
        yield in_order()


def _from_worker(results: list[tuple[int, Any]]) -> _Results:
    return [(n, r if isinstance(r, list) else Prepared._make(r)) for n, r in results]


def ingest_lines(
    datadir: DataDir,
    stream: IO[bytes],
    *,
    settings: Settings,
    workers: int,
    rejected: IO[str],
    store: str | None = None,
    progress: Callable[[Tally], object] | None = None,
    waiting: Callable[[], object] | None = None,
) -> tuple[int, int, int]:
    """The whole ``glasslog ingest`` path; returns (accepted, duplicates, rejected).

    Rejections are streamed to ``rejected`` as JSON fragments so a file full of
    bad lines cannot make memory grow. ``progress(tally)`` is called after every
    batch, and ``waiting()`` once if another writer holds the lock.

    Raises :class:`InputError` when the input cannot be read to its end, and
    :class:`Interrupted` on Ctrl-C, each once what came before is stored and signed.
    """
    datadir.require()
    config = datadir.config()
    settings = dataclasses.replace(
        settings, scrub=config.scrub, sensitive=(*settings.sensitive, *config.ledger.commit)
    )
    key = datadir.fingerprint_key()
    signer = datadir.signer()
    source = _Input(stream, min(settings.batch_size, CHUNK_LINES), config.ingest.max_line_bytes)
    tally = Tally()
    stop = _Stop()
    announce = _once(waiting)
    try:
        with stop.on_sigint(), _prepared(iter(source), key, settings, workers) as prepared:
            target = open_store(datadir.store_spec(store))
            try:
                # The sequencer takes the writer locks batch by batch, so writers
                # interleave into one dense log: a server and the CLI on one SQLite
                # store, and writers on several hosts on PostgreSQL.
                sequencer = Sequencer(
                    target,
                    signer,
                    settings=settings,
                    datadir=datadir,
                    writer_lock=lambda: datadir.writer_lock(waiting=announce),
                )
                _ingest(sequencer, prepared, tally, stop, rejected=rejected, progress=progress)
            finally:
                target.close()
    except KeyboardInterrupt:
        raise Interrupted(stop.outcome(tally), tally) from None
    if source.error is not None:
        where = f"while reading line {source.last_line + 1:,}"
        raise InputError(
            f"{source.name}: {source.error} {where}; "
            + (
                f"everything before it was ingested ({tally}) and is covered by a signed "
                "checkpoint. Fix the input and ingest it again: what is stored counts as "
                "duplicates"
                if source.last_line
                else "nothing was stored"
            )
        )
    return tally.accepted, tally.duplicates, tally.rejected


def _once(callback: Callable[[], object] | None) -> Callable[[], object] | None:
    """``callback``, called at most once however many batches wait for the lock."""
    if callback is None:
        return None
    called = False

    def once() -> None:
        nonlocal called
        if not called:
            called = True
            callback()

    return once


def _ingest(
    sequencer: Sequencer,
    prepared: Iterator[tuple[int | None, _Results]],
    tally: Tally,
    stop: _Stop,
    *,
    rejected: IO[str],
    progress: Callable[[Tally], object] | None,
) -> None:
    """Sequence everything ``prepared``, then sign; the sequencer takes the writer locks."""
    stop.writing = True
    pending: _Results = []
    for end, results in prepared:
        pending += results
        if len(pending) < sequencer.settings.batch_size and not stop.asked:
            continue  # one transaction (one fsync) for several chunks
        _write(sequencer, pending, tally, rejected)
        pending = []
        tally.offset = end
        if progress is not None:
            progress(tally)
        if stop.asked:
            break
    if pending:
        _write(sequencer, pending, tally, rejected)
        tally.offset = end
        if progress is not None:
            progress(tally)
    sequencer.checkpoint()
    stop.writing, stop.signed = False, True
    if stop.asked:
        raise KeyboardInterrupt
    sequencer.store.optimize(written=tally.accepted)


def _write(sequencer: Sequencer, results: _Results, tally: Tally, rejected: IO[str]) -> None:
    """Commit one prepared chunk as one batch and record its outcome in ``tally``."""
    batch = [(n, r) for n, r in results if isinstance(r, Prepared)]
    bad = [(n, r) for n, r in results if not isinstance(r, Prepared)]
    receipts = sequencer.commit([r for _, r in batch]) if batch else []
    for (line, _), receipt in zip(batch, receipts, strict=True):
        if receipt.duplicate:
            tally.duplicates += 1
        elif receipt.ok:
            tally.accepted += 1
        else:
            bad.append((line, list(receipt.problems)))
    for line, problems in sorted(bad):
        if problems and problems[0].startswith(INTERNAL_ERROR):
            tally.internal_errors += 1
            if tally.internal_errors == 1:
                warnings.warn(
                    f"line {line:,} was rejected by an internal error (a bug), not for its "
                    "content; the other lines are ingested as usual, and the summary names "
                    "every line it hit. Please report it",
                    IngestWarning,
                    stacklevel=1,
                )
        rejected.write(
            ("," if tally.rejected else "")
            + json.dumps({"line": line, "errors": problems}, ensure_ascii=False)
        )
        tally.rejected += 1


class _Stop:
    """What Ctrl-C does at each stage of an ingest, and what to say once it has."""

    def __init__(self) -> None:
        self.writing = False
        """Sequencing: a first Ctrl-C only asks to stop at the next batch boundary."""
        self.asked = False
        self.signed = False
        """The final checkpoint is signed: every stored event is covered."""

    @contextmanager
    def on_sigint(self) -> Iterator[None]:
        """Handle SIGINT inside, in the main thread (where Python runs signal handlers)
        and over Python's default handler only: a caller's own handler, or SIGINT
        ignored (a background job), is left alone."""
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return
        signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.writing and not self.asked:
            self.asked = True
            return
        raise KeyboardInterrupt

    def outcome(self, tally: Tally) -> str:
        """One line on what an interrupted ingest left in the store."""
        if self.signed:
            return (
                f"interrupted: {tally}, all covered by a signed checkpoint; ingest the same "
                "input again to store the rest (what is stored counts as duplicates)"
            )
        if self.writing:
            return (
                f"interrupted twice, so stopped at once: {tally} before the batch being "
                "written, which may be stored too; the next ingest signs a checkpoint "
                "covering them"
            )
        return "interrupted before anything was stored"
