"""``glasslog`` — the command line. Thin: parse input, call the library, format output.

Every command takes ``--data DIR`` (or ``GLASSLOG_DATA``; default ``./glasslog-data``).
Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from glasslog import __version__
from glasslog.datadir import DEFAULT_DATA, DataDir
from glasslog.errors import GlasslogError, IntegrityError
from glasslog.ingest.pipeline import Prepared, Preparer, Sequencer, Settings
from glasslog.log import Log
from glasslog.store.sqlite import SQLiteStore

F = TypeVar("F", bound=Callable[..., Any])

data_option = click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="GLASSLOG_DATA",
    default=DEFAULT_DATA,
    show_default=True,
    help="Data directory of the log (env: GLASSLOG_DATA).",
)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"glasslog: error: {message}", err=True)
    sys.exit(code)


def _emit(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2 if sys.stdout.isatty() else None))


class _Group(click.Group):
    """Turns every glasslog error into one line on stderr (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GlasslogError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        return None


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="glasslog")
def main() -> None:
    """glasslog: audit logs you can prove were not altered."""


@main.command()
@data_option
@click.option("--origin", help="Log origin (checkpoint name), e.g. example.com/audit.")
def init(data: Path, origin: str | None) -> None:
    """Create the store and the signing key; print the verifier key. Safe to run twice."""
    datadir = DataDir(data)
    signer, created = datadir.init_keys(origin=origin)
    SQLiteStore.open(datadir.db, create=True).close()
    click.echo(signer.vkey)
    if created:
        click.echo(f"initialised {data} (keep {data / 'signing.key'} secret)", err=True)


def _read_chunks(stream: IO[bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
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
    chunks: Iterator[tuple[int, list[bytes]]], key: bytes, settings: Settings, workers: int
) -> Iterator[list[tuple[int, Prepared | list[str]]]]:
    """Prepare chunks in order; in worker processes when there is more than one chunk."""
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if second is None or workers <= 1:
        local = Preparer(fingerprint_key=key, settings=settings)
        for start, lines in (c for c in (first, second, *chunks) if c is not None):
            yield local.prepare_lines(lines, first_line=start)
        return
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(key, settings)) as pool:
        inflight: list[Future[list[tuple[int, Any]]]] = []
        for start, lines in _chain(first, second, chunks):
            inflight.append(pool.submit(_prepare_in_worker, lines, start))
            if len(inflight) >= workers * 2:  # bounded: memory does not grow with the input
                yield _from_worker(inflight.pop(0).result())
        while inflight:
            yield _from_worker(inflight.pop(0).result())


def _from_worker(results: list[tuple[int, Any]]) -> list[tuple[int, Prepared | list[str]]]:
    return [(n, r if isinstance(r, list) else Prepared._make(r)) for n, r in results]


def _chain(
    a: tuple[int, list[bytes]], b: tuple[int, list[bytes]], rest: Iterator[tuple[int, list[bytes]]]
) -> Iterator[tuple[int, list[bytes]]]:
    yield a
    yield b
    yield from rest


def ingest_stream(
    datadir: DataDir, stream: IO[bytes], *, settings: Settings, workers: int, rejected: IO[str]
) -> tuple[int, int, int]:
    """The whole ``glasslog ingest`` path; returns (accepted, duplicates, rejected).

    Rejections are streamed to ``rejected`` as JSON fragments so a file full of
    bad lines cannot make memory grow.
    """
    datadir.require()
    key = datadir.fingerprint_key()
    signer = datadir.signer()
    accepted = duplicates = n_rejected = 0
    with datadir.writer_lock():
        store = SQLiteStore.open(datadir.db)
        try:
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
        finally:
            store.close()
    return accepted, duplicates, n_rejected


@main.command()
@data_option
@click.argument("file", type=click.File("rb"))
@click.option("--workers", type=click.IntRange(1, 64), default=os.cpu_count() or 1, show_default=True,
              help="Processes that validate and hash events in parallel.")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=2_000, show_default=True,
              help="Events per transaction (one fsync each).")  # fmt: skip
def ingest(data: Path, file: IO[bytes], workers: int, batch_size: int) -> None:
    """Ingest JSON lines from FILE ('-' for stdin); print a summary as JSON.

    Exit 0 when nothing was rejected, 2 otherwise (the valid events are still stored).
    """
    settings = Settings(batch_size=batch_size)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as rejected:
        accepted, duplicates, n_rejected = ingest_stream(
            DataDir(data), file, settings=settings, workers=workers, rejected=rejected
        )
        rejected.seek(0)
        out = click.get_text_stream("stdout")
        out.write(f'{{"accepted": {accepted}, "duplicates": {duplicates}, "rejected": [')
        while block := rejected.read(1 << 16):
            out.write(block)
        out.write("]}\n")
        out.flush()
    if n_rejected:
        sys.exit(2)


@main.command()
@data_option
@click.argument("key")
def get(data: Path, key: str) -> None:
    """Print the stored event with seq or id KEY as JSON."""
    with Log.open(data) as log:
        _emit(log.get(key))


@main.command()
@data_option
def checkpoint(data: Path) -> None:
    """Print the latest signed checkpoint, exactly as signed."""
    with Log.open(data) as log:
        click.echo(log.latest_checkpoint().note, nl=False)


@main.command()
@data_option
def vkey(data: Path) -> None:
    """Print the log's verifier key."""
    datadir = DataDir(data)
    datadir.require()
    click.echo(datadir.vkey())


@main.group()
def proof() -> None:
    """Merkle proofs (RFC 9162) against signed checkpoints."""


@proof.command("inclusion")
@data_option
@click.argument("seq", type=click.IntRange(min=0))
@click.option("--size", type=click.IntRange(min=1), help="Tree size (default: latest checkpoint).")
def proof_inclusion(data: Path, seq: int, size: int | None) -> None:
    """Prove that event SEQ is in the tree."""
    with Log.open(data) as log:
        _emit(log.inclusion(seq, size=size))


@proof.command("consistency")
@data_option
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
def proof_consistency(data: Path, old: int, new: int) -> None:
    """Prove that the tree of size NEW extends the tree of size OLD."""
    with Log.open(data) as log:
        _emit(log.consistency(old, new))


@main.command()
@data_option
@click.option("--vkey", "vkey_text", help="Verifier key to trust (default: the data directory's).")
@click.option("--workers", type=click.IntRange(1, 64), default=os.cpu_count() or 1, show_default=True)
def verify(data: Path, vkey_text: str | None, workers: int) -> None:
    """Recompute every leaf, rebuild the tree and check every checkpoint."""
    from glasslog.ledger.note import Verifier
    from glasslog.verify import verify_store

    datadir = DataDir(data)
    datadir.require()
    verifier = Verifier.from_vkey(vkey_text) if vkey_text else datadir.verifier()
    store = SQLiteStore.open(datadir.db, readonly=True)
    total = store.size()
    store.close()
    try:
        if sys.stderr.isatty():
            with click.progressbar(length=total, label="verifying", file=sys.stderr) as bar:
                report = verify_store(datadir.db, verifier, workers=workers, progress=bar.update)
        else:
            report = verify_store(datadir.db, verifier, workers=workers)
    except IntegrityError as exc:
        _fail(f"TAMPERED: {exc}")
        return
    click.echo(report.summary())


@main.command()
@click.option("--data", "data", type=click.Path(path_type=Path, file_okay=False),
              default=Path("glasslog-demo"), show_default=True,
              help="Where the demo log is created (reused if it exists).")  # fmt: skip
@click.option("--events", type=click.IntRange(1, 1_000_000), default=5_000, show_default=True)
def demo(data: Path, events: int) -> None:
    """Create a log, ingest sample events, prove one of them offline and verify everything."""
    from glasslog.demo import run_demo

    run_demo(data, events=events, echo=click.echo)
