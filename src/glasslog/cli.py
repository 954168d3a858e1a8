"""``glasslog`` — the command line. Thin: parse input, call the library, format output.

Every command takes ``--data DIR`` (or ``GLASSLOG_DATA``; default ``./glasslog-data``).
Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click

from glasslog import __version__
from glasslog.datadir import DEFAULT_DATA, DataDir
from glasslog.demo import run_demo
from glasslog.errors import GlasslogError, IntegrityError
from glasslog.identity import initialise
from glasslog.ingest.bulk import ingest_lines
from glasslog.ingest.pipeline import Settings
from glasslog.ledger.note import Verifier
from glasslog.log import DEFAULT_TIMEOUT, MAX_PAGE, Log
from glasslog.store import open_store
from glasslog.verify import verify_store

data_option = click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="GLASSLOG_DATA",
    default=DEFAULT_DATA,
    show_default=True,
    help="Data directory of the log (env: GLASSLOG_DATA).",
)


store_option = click.option(
    "--store",
    "store",
    envvar="GLASSLOG_STORE",
    default=None,
    help="Where events live: a PostgreSQL DSN (postgresql://…) or a SQLite file "
    "(env: GLASSLOG_STORE; default: DIR/glasslog.db).",
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
        except BrokenPipeError:  # e.g. `glasslog get 1 | head`: the reader left, not an error
            sys.stderr.close()
            sys.exit(141)
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as exc:
            # A bug, or a failure we did not foresee (a worker process killed by the
            # OOM killer, say): still one line, and the traceback on request.
            if os.environ.get("GLASSLOG_DEBUG"):
                raise
            _fail(
                f"unexpected {type(exc).__name__}: {exc} (set GLASSLOG_DEBUG=1 to see the "
                "traceback, and please report it)",
                70,
            )
        return None


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="glasslog")
def main() -> None:
    """glasslog: audit logs you can prove were not altered."""


@main.command()
@data_option
@store_option
@click.option("--origin", help="Log origin (checkpoint name), e.g. example.com/audit.")
def init(data: Path, store: str | None, origin: str | None) -> None:
    """Create the store and the signing key; print the verifier key. Safe to run twice."""
    done = initialise(data, store=store, origin=origin)
    signer, created = done.signer, done.created
    click.echo(signer.vkey)
    if done.upgraded_from is not None:
        click.echo(
            f"upgraded the store's schema from version {done.upgraded_from}"
            " (see the CHANGELOG); run `glasslog verify` if you want to see it is intact",
            err=True,
        )
    if created:
        click.echo(f"initialised {data} (keep {data / 'signing.key'} secret)", err=True)


@main.command()
@data_option
@store_option
@click.argument("file", type=click.File("rb"))
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=os.cpu_count() or 1,
    show_default="the number of cores",
    help="Processes that validate and hash events in parallel.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=2_000,
    show_default=True,
    help="Events per transaction (one fsync each).",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(1),
    default=Settings().checkpoint_every,
    show_default=True,
    help="Sign a checkpoint once this many events are not covered by one.",
)
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(0),
    default=Settings().checkpoint_interval,
    show_default=True,
    help="…or once the oldest uncovered event has waited this many seconds.",
)
def ingest(
    data: Path,
    store: str | None,
    file: IO[bytes],
    workers: int,
    batch_size: int,
    checkpoint_every: int,
    checkpoint_interval: float,
) -> None:
    """Ingest JSON lines from FILE ('-' for stdin); print a summary as JSON.

    Exit 0 when nothing was rejected, 2 otherwise (the valid events are still stored).
    """
    settings = Settings(
        batch_size=batch_size,
        checkpoint_every=checkpoint_every,
        checkpoint_interval=checkpoint_interval,
    )
    with tempfile.TemporaryFile("w+", encoding="utf-8") as rejected:
        accepted, duplicates, n_rejected = ingest_lines(
            DataDir(data), file, settings=settings, workers=workers, rejected=rejected, store=store
        )
        rejected.seek(0)
        out = sys.stdout
        out.write(f'{{"accepted": {accepted}, "duplicates": {duplicates}, "rejected": [')
        while block := rejected.read(1 << 16):
            out.write(block)
        out.write("]}\n")
        out.flush()
    if n_rejected:
        sys.exit(2)


@main.command()
@data_option
@store_option
@click.argument("key")
def get(data: Path, store: str | None, key: str) -> None:
    """Print the stored event with seq or id KEY as JSON."""
    with Log.open(data, store=store) as log:
        _emit(log.get(key))


@main.command()
@data_option
@store_option
def checkpoint(data: Path, store: str | None) -> None:
    """Print the latest signed checkpoint, exactly as signed."""
    with Log.open(data, store=store) as log:
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
@store_option
@click.argument("seq", type=click.IntRange(min=0))
@click.option("--size", type=click.IntRange(min=1), help="Tree size (default: latest checkpoint).")
def proof_inclusion(data: Path, store: str | None, seq: int, size: int | None) -> None:
    """Prove that event SEQ is in the tree."""
    with Log.open(data, store=store) as log:
        _emit(log.inclusion(seq, size=size))


@proof.command("consistency")
@data_option
@store_option
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
def proof_consistency(data: Path, store: str | None, old: int, new: int) -> None:
    """Prove that the tree of size NEW extends the tree of size OLD."""
    with Log.open(data, store=store) as log:
        _emit(log.consistency(old, new))


@main.command()
@data_option
@store_option
@click.option("--vkey", "vkey_text", help="Verifier key to trust (default: the data directory's).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=os.cpu_count() or 1,
    show_default="the number of cores",
    help="Processes that recompute leaves in parallel.",
)
def verify(data: Path, store: str | None, vkey_text: str | None, workers: int) -> None:
    """Recompute every leaf, rebuild the tree and check every checkpoint."""
    datadir = DataDir(data)
    datadir.require()
    verifier = Verifier.from_vkey(vkey_text) if vkey_text else datadir.verifier()
    spec = datadir.store_spec(store)
    target = open_store(spec, readonly=True)
    total = target.size()
    target.close()
    try:
        if sys.stderr.isatty():
            with click.progressbar(length=total, label="verifying", file=sys.stderr) as bar:
                report = verify_store(spec, verifier, workers=workers, progress=bar.update)
        else:
            report = verify_store(spec, verifier, workers=workers)
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
    run_demo(data, events=events, echo=click.echo)


timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(0.1, 3600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds before the query is cancelled.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")


def _table(rows: list[list[str]], headers: list[str]) -> None:
    """Print rows as aligned columns (the last column is not padded)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        cells = [c.ljust(w) for c, w in zip(line[:-1], widths, strict=False)] + [line[-1]]
        click.echo("  ".join(cells).rstrip())


def _short_time(text: str) -> str:
    return text[:23].replace("T", " ")


def _event_cells(event: dict[str, Any]) -> list[str]:
    target = event.get("target", {})
    what = target.get("id") or target.get("name") or event.get("reason", "")
    return [
        _short_time(event["time"]),
        str(event["seq"]),
        event["service"],
        event["action"],
        event["outcome"],
        event["actor"]["id"],
        str(what)[:60],
    ]


@main.command()
@data_option
@store_option
@click.argument("query", default="")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
              help="Events to return, across as many pages as that takes.")  # fmt: skip
@click.option("--all", "everything", is_flag=True, help="Stream every match.")
@click.option("--cursor", help="Continue from where a previous search stopped.")
@click.option("--sort", type=click.Choice(["-time", "time"]), default="-time", show_default=True,
              help="-time: newest first; time: oldest first.")  # fmt: skip
@json_option
@timeout_option
def search(
    data: Path,
    store: str | None,
    query: str,
    limit: int,
    everything: bool,
    cursor: str | None,
    sort: str,
    as_json: bool,
    timeout: float,
) -> None:
    """Find events matching QUERY (see docs/query.md), newest first."""
    now = datetime.now(UTC)
    wanted = None if everything else limit
    shown: list[list[str]] = []
    with Log.open(data, store=store, timeout=timeout) as log:
        while wanted is None or wanted > 0:
            size = MAX_PAGE if wanted is None else min(wanted, MAX_PAGE)
            page = log.search(query, limit=size, sort=sort, cursor=cursor, now=now)
            for event in page.events:
                if as_json:
                    click.echo(json.dumps(event, ensure_ascii=False))
                else:
                    shown.append(_event_cells(event))
            if wanted is not None:
                wanted -= len(page.events)
            cursor = page.cursor
            if cursor is None:
                break
    if not as_json:
        if shown:
            _table(shown, ["time", "seq", "service", "action", "outcome", "actor", "target"])
        else:
            click.echo("no matching events", err=True)
    if cursor is not None and not everything:
        click.echo(f"more: --cursor {cursor}", err=True)


@main.command()
@data_option
@store_option
@click.argument("query", default="")
@click.option("--by", "by", help="Count per value of this field (top values first).")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True)
@json_option
@timeout_option
def count(
    data: Path,
    store: str | None,
    query: str,
    by: str | None,
    top: int,
    as_json: bool,
    timeout: float,
) -> None:
    """Count events matching QUERY, in all or per value of a field."""
    with Log.open(data, store=store, timeout=timeout) as log:
        if by is None:
            result = log.count(query)
            if as_json:
                click.echo(json.dumps({"count": result.count, "exact": result.exact}))
            else:
                click.echo(f"{result.count:,}" if result.exact else f"~{result.count:,} (estimate)")
            return
        groups = log.count_by(query, by, top=top)
    if as_json:
        for value, n in groups:
            click.echo(json.dumps({"value": value, "count": n}, ensure_ascii=False))
    elif groups:
        _table([[str(v), f"{n:,}"] for v, n in groups], [by, "count"])
    else:
        click.echo("no matching events", err=True)


@main.command()
@data_option
@store_option
@click.argument("query", default="")
@json_option
@timeout_option
def histogram(data: Path, store: str | None, query: str, as_json: bool, timeout: float) -> None:
    """Events matching QUERY per time bucket (the bucket size adapts to the window)."""
    with Log.open(data, store=store, timeout=timeout) as log:
        result = log.histogram(query)
    if as_json:
        for start, n in result.buckets:
            click.echo(json.dumps({"start": start, "count": n, "seconds": result.bucket_seconds}))
        return
    if not result.buckets:
        click.echo("no matching events", err=True)
        return
    peak = max(n for _, n in result.buckets)
    click.echo(f"bucket: {result.bucket_seconds:g} s", err=True)
    _table(
        [[_short_time(s), f"{n:,}", "#" * max(1, round(40 * n / peak))] for s, n in result.buckets],
        ["start", "count", ""],
    )


@main.command()
@data_option
@store_option
@click.argument("ident")
@json_option
@timeout_option
def trace(data: Path, store: str | None, ident: str, as_json: bool, timeout: float) -> None:
    """Every event sharing request or trace id IDENT, as a timeline across services."""
    with Log.open(data, store=store, timeout=timeout) as log:
        events = log.trace(ident)
    if as_json:
        for event in events:
            click.echo(json.dumps(event, ensure_ascii=False))
        return
    if not events:
        click.echo(f"no events with request or trace id {ident!r}", err=True)
        return
    first = datetime.fromisoformat(events[0]["time"])
    rows = []
    for event in events:
        offset = (datetime.fromisoformat(event["time"]) - first).total_seconds() * 1000
        rows.append([
            _short_time(event["time"]),
            f"+{offset:,.1f} ms",
            event["service"],
            event.get("context", {}).get("function", ""),
            event["action"],
            event["outcome"],
            event["actor"]["id"],
        ])  # fmt: skip
    _table(rows, ["time", "offset", "service", "function", "action", "outcome", "actor"])
