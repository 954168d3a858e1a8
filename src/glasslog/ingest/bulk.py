"""Bulk ingest of JSON lines: the ``glasslog ingest`` path, usable from Python too.

The parent process reads lines in chunks, worker processes prepare them (parse,
validate, scrub, commit, hash: :class:`~glasslog.ingest.pipeline.Preparer`) and the
parent sequences and writes them in order. At most two chunks per worker are in
flight and rejections are streamed to a file the caller gives, so memory stays flat
whatever the size of the input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import IO, Any

from glasslog.datadir import DataDir
from glasslog.ingest.pipeline import Prepared, Preparer, Sequencer, Settings
from glasslog.ledger.note import Signer
from glasslog.store import open_store
from glasslog.store.base import Store

_Chunk = tuple[int, list[bytes]]
"""The 1-based line number of a chunk's first line, and its lines."""


def _read_chunks(stream: IO[bytes], size: int) -> Iterator[_Chunk]:
    """Non-blank lines in chunks of ``size``, with the 1-based number of each chunk's first line."""
    chunk: list[bytes] = []
    numbers: list[int] = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        if not chunk:
            numbers.append(number)
        chunk.append(line)
        if len(chunk) >= size:
            yield numbers.pop(), chunk
            chunk = []
    if chunk:
        yield numbers.pop(), chunk


_worker_preparer: Preparer | None = None


def _init_worker(key: bytes, settings: Settings) -> None:
    global _worker_preparer  # noqa: PLW0603 - one Preparer per worker process
    _worker_preparer = Preparer(fingerprint_key=key, settings=settings)


def _prepare_in_worker(lines: list[bytes], first: int) -> list[tuple[int, Any]]:
    """Prepare one chunk; Prepared items travel as plain tuples, which pickle twice as fast."""
    assert _worker_preparer is not None
    return [
        (n, tuple(r) if isinstance(r, Prepared) else r)
        for n, r in _worker_preparer.prepare_lines(lines, first_line=first)
    ]


def _prepared(
    chunks: Iterator[_Chunk], key: bytes, settings: Settings, workers: int
) -> Iterator[list[tuple[int, Prepared | list[str]]]]:
    """Prepare chunks in order; in worker processes when there is more than one chunk."""
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    everything = _chain(first, second, chunks)
    if second is None or workers <= 1:  # one chunk: starting processes would cost more
        local = Preparer(fingerprint_key=key, settings=settings)
        for start, lines in everything:
            yield local.prepare_lines(lines, first_line=start)
        return
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(key, settings)) as pool:
        inflight: list[Future[list[tuple[int, Any]]]] = []
        for start, lines in everything:
            inflight.append(pool.submit(_prepare_in_worker, lines, start))
            if len(inflight) >= workers * 2:  # bounded: memory does not grow with the input
                yield _from_worker(inflight.pop(0).result())
        while inflight:
            yield _from_worker(inflight.pop(0).result())


def _from_worker(results: list[tuple[int, Any]]) -> list[tuple[int, Prepared | list[str]]]:
    return [(n, r if isinstance(r, list) else Prepared._make(r)) for n, r in results]


def _chain(a: _Chunk, b: _Chunk | None, rest: Iterator[_Chunk]) -> Iterator[_Chunk]:
    yield a
    if b is not None:
        yield b
        yield from rest


def ingest_lines(
    datadir: DataDir,
    stream: IO[bytes],
    *,
    settings: Settings,
    workers: int,
    rejected: IO[str],
    store: str | None = None,
) -> tuple[int, int, int]:
    """The whole ``glasslog ingest`` path; returns (accepted, duplicates, rejected).

    Rejections are streamed to ``rejected`` as JSON fragments so a file full of
    bad lines cannot make memory grow.
    """
    datadir.require()
    key = datadir.fingerprint_key()
    signer = datadir.signer()
    with datadir.writer_lock():
        target = open_store(datadir.store_spec(store))
        try:
            # On a shared store (PostgreSQL) the sequencer takes the store's lock batch by
            # batch, so writers on several hosts interleave into one dense log.
            return _ingest(
                target, signer, key, stream, settings=settings, workers=workers, rejected=rejected
            )
        finally:
            target.close()


def _ingest(
    store: Store,
    signer: Signer,
    key: bytes,
    stream: IO[bytes],
    *,
    settings: Settings,
    workers: int,
    rejected: IO[str],
) -> tuple[int, int, int]:
    """Sequence everything in ``stream`` into ``store``; the caller holds the writer locks."""
    accepted = duplicates = n_rejected = 0
    sequencer = Sequencer(store, signer, settings=settings)
    chunks = _read_chunks(stream, settings.batch_size)
    for results in _prepared(chunks, key, settings, workers):
        batch = [(n, r) for n, r in results if isinstance(r, Prepared)]
        bad = [(n, r) for n, r in results if not isinstance(r, Prepared)]
        receipts = sequencer.commit([r for _, r in batch]) if batch else []
        for (line, _), receipt in zip(batch, receipts, strict=True):
            if receipt.duplicate:
                duplicates += 1
            elif receipt.ok:
                accepted += 1
            else:
                bad.append((line, list(receipt.problems)))
        for line, problems in sorted(bad):
            rejected.write(
                ("," if n_rejected else "")
                + json.dumps({"line": line, "errors": problems}, ensure_ascii=False)
            )
            n_rejected += 1
    sequencer.checkpoint()
    store.optimize(written=accepted)
    return accepted, duplicates, n_rejected
