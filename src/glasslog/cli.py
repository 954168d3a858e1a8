"""``glasslog`` — the command line. Thin: parse input, call the library, format output.

Every command takes ``--data DIR`` (or ``GLASSLOG_DATA``; default ``./glasslog-data``),
before or after the command name. Errors are one line on stderr (a query error adds the
query and a caret) and a non-zero exit status, never a traceback. Text meant for people
goes through :func:`glasslog.display.printable`, because it may hold what someone
logged; ``--json`` output is for programs and is left to JSON's own escaping.
"""

from __future__ import annotations

import base64
import dataclasses
import getpass
import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import click
from click.core import ParameterSource

from glasslog import __version__
from glasslog.access.audit import Auditor
from glasslog.access.enforce import Reader, owner_evidence
from glasslog.access.evidence import verify_evidence
from glasslog.access.keys import AuthError, make_grant, make_key, principal_id
from glasslog.access.policy import PolicyError, explain, load_policy, parse_duration
from glasslog.access.principals import identify
from glasslog.config import CONFIG_NAME
from glasslog.datadir import DEFAULT_DATA, DataDir
from glasslog.demo import run_demo
from glasslog.display import duration, pointed, printable
from glasslog.errors import GlasslogError, IntegrityError, NoteError, QueryError
from glasslog.identity import initialise
from glasslog.importers import FORMATS, Importer, import_local, import_remote
from glasslog.ingest.bulk import Interrupted, Tally, ingest_lines, input_size
from glasslog.ingest.pipeline import Settings
from glasslog.ledger.commit import show_pointer
from glasslog.ledger.note import Verifier
from glasslog.log import DEFAULT_TIMEOUT, MAX_PAGE, MISSING, Log
from glasslog.query.language import MAX_SEQ
from glasslog.remote import Remote, send_lines
from glasslog.signing import trusted_keys
from glasslog.store import open_store
from glasslog.store.base import ApiKey
from glasslog.verify import KnownCheckpoint, verify_store


def _inherited(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A subcommand's ``--data``/``--store``, or the one given before the command name.

    ``glasslog --data D search …`` works as ``git -C D …`` does. The subcommand's own
    option wins when both are given; either beats the environment variable, which
    beats the default.
    """
    name = param.name
    if name is None or ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
        return value
    given = ctx.find_root().params.get(name)
    return value if given is None else given


_F = TypeVar("_F", bound=Callable[..., Any])


class _Option(Protocol):
    """What a shared option is: a typed decorator. Declared, so that the cli_* modules,
    which import these options from a module that imports them back, see their type."""

    def __call__(self, function: _F, /) -> _F: ...


data_option: _Option = click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="GLASSLOG_DATA",
    default=DEFAULT_DATA,
    show_default=True,
    callback=_inherited,
    help="Data directory of the log (env: GLASSLOG_DATA).",
)


store_option: _Option = click.option(
    "--store",
    "store",
    envvar="GLASSLOG_STORE",
    default=None,
    callback=_inherited,
    help="Where events live: a PostgreSQL DSN (postgresql://…) or a SQLite file "
    "(env: GLASSLOG_STORE; default: DIR/glasslog.db).",
)

json_option: _Option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of text."
)

policy_option: _Option = click.option(
    "--policy",
    "policy",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="GLASSLOG_POLICY",
    default=None,
    help="The read policy (env: GLASSLOG_POLICY; default: DIR/policy.toml).",
)


key_option: _Option = click.option(
    "--key",
    "key",
    envvar="GLASSLOG_KEY",
    default=None,
    help="Read as this principal: an API key or an OIDC token (env: GLASSLOG_KEY). "
    "Without it, as the owner of the data directory (docs/access.md).",
)


@contextmanager
def _reading(
    log: Log, data: Path, store: str | None, key: str | None, policy: Path | None
) -> Iterator[Log | Reader]:
    """The owner's reads (no key), or a principal's, through the enforcement point.

    A principal's reads are audited: their ``audit.read`` events are appended to the
    ledger when the command ends, refused or not (docs/access.md).
    """
    if key is None:
        yield log
        return
    loaded = load_policy(_policy_path(data, policy), committed=_committed(data))
    principal = identify(log.store, loaded, key)
    auditor = Auditor(lambda events: _record(data, store, *events))
    try:
        yield Reader(log, principal, auditor=auditor)
    finally:
        auditor.flush()


url_option: _Option = click.option(
    "--url",
    "url",
    envvar="GLASSLOG_URL",
    default=None,
    help="A glasslog server to read from instead of the local store (env: GLASSLOG_URL); "
    "reads need --key there.",
)


def reads_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--key, --policy and --url: who reads, under which policy, from where."""
    return key_option(policy_option(url_option(function)))


@contextmanager
def _reads(
    data: Path,
    store: str | None,
    key: str | None,
    policy: Path | None,
    url: str | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[Log | Reader | Remote]:
    """Where a read command reads: a server (``--url``, as the key's principal), or the
    local store as the owner or, with ``--key``, as a principal (:func:`_reading`)."""
    if url is not None:
        if key is None:
            raise AuthError("--url needs --key (or GLASSLOG_KEY): a server answers reads "
                            "only for a principal")  # fmt: skip
        with Remote(url, key, timeout=timeout) as remote:
            yield remote
        return
    with (
        Log.open(data, store=store, timeout=timeout) as log,
        _reading(log, data, store, key, policy) as reads,
    ):
        yield reads


def _fail(message: str, code: int = 1) -> None:
    """Print ``message`` as one line on stderr, control characters escaped, and exit."""
    click.echo(f"glasslog: error: {printable(message)}", err=True)
    sys.exit(code)


def _fail_query(exc: QueryError) -> None:
    """A query error: the message, then the query with a caret under the culprit."""
    if exc.query is None or exc.column is None:
        _fail(exc.message)
    else:
        click.echo(f"glasslog: error: {pointed(exc.message, exc.query, exc.column)}", err=True)
        sys.exit(1)


def _emit(obj: Any, *, compact: bool = False) -> None:
    """Print ``obj`` as JSON: indented for a person at a terminal, else one line."""
    indent = None if compact or not sys.stdout.isatty() else 2
    click.echo(json.dumps(obj, ensure_ascii=False, indent=indent))


class _Group(click.Group):
    """Turns every glasslog error into one line on stderr (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QueryError as exc:
            _fail_query(exc)
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


class _QueryCommand(click.Command):
    """A command whose QUERY may start with '-' (``search '-outcome:success'``).

    Click would read such a query as an unknown short option. The rule: a word that
    starts with ``--`` is an option (a misspelt one is still "No such option"), and so
    is exactly a short option the command defines (``-h``); any other word that starts
    with a single ``-`` (``-host:x``, ``-alpha``) is an argument. Options keep working
    before or after the query, and ``--`` still ends the options.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._arguments_last(ctx, args))

    def _arguments_last(self, ctx: click.Context, args: list[str]) -> list[str]:
        """``args`` with every argument moved after a ``--``, in order, options first."""
        takes_value: dict[str, bool] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                for name in [*param.opts, *param.secondary_opts]:
                    takes_value[name] = not (param.is_flag or param.count)
        options: list[str] = []
        arguments: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                arguments += args[i + 1 :]
                break
            name = arg if arg.startswith("--") else arg[:2]
            # A short flag only alone: -host:x is a query, not -h with -ost:x after it.
            short = name in takes_value and (arg == name or takes_value[name])
            if arg.startswith("--") or (len(arg) > 1 and short):
                options.append(arg)
                # An option's value may start with '-' too (--sort -time): keep it with it.
                if takes_value.get(name) and arg == name and i + 1 < len(args):
                    options.append(args[i + 1])
                    i += 1
            else:
                arguments.append(arg)
            i += 1
        return [*options, "--", *arguments] if arguments else options


@contextmanager
def _private_files() -> Iterator[None]:
    """Files a command creates are its user's alone (umask 077), until it returns.

    A second line of defence: glasslog creates each of its files 0600 and the data
    directory 0700 itself (docs/ledger.md, "Files"); the umask also covers files made
    on its behalf, such as ``glasslog demo``'s sample input.
    """
    old = os.umask(0o077)
    os.umask(old | 0o077)
    try:
        yield
    finally:
        os.umask(old)  # matters only in-process (tests, CliRunner)


@contextmanager
def _warnings_on_stderr() -> Iterator[None]:
    """Warnings (a store file other users can read, a bug that hit one line) as one line
    on stderr each, like errors, instead of Python's two lines with a file name."""

    def show(message: Warning | str, *_: object, **__: object) -> None:
        click.echo(f"glasslog: warning: {printable(str(message))}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="glasslog")
@click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path, file_okay=False),
    help="Data directory of the log, for the command that follows (as git -C).",
)
@click.option("--store", "store", help="Where events live, for the command that follows.")
def main(data: Path | None, store: str | None) -> None:
    """glasslog: audit logs you can prove were not altered.

    --data and --store may come before the command name (glasslog --data D search …)
    or after it; given in both places, the command's own wins. Every command that
    prints a result takes --json: its help says what the JSON holds.
    """
    ctx = click.get_current_context()
    ctx.with_resource(_private_files())
    ctx.with_resource(_warnings_on_stderr())


@main.command()
@data_option
@store_option
@click.option("--origin", help="Log origin (checkpoint name), e.g. example.com/audit.")
@json_option
def init(data: Path, store: str | None, origin: str | None, as_json: bool) -> None:
    """Create the store and the signing key; print the verifier key. Safe to run twice.

    JSON: {"vkey", "origin", "created": whether the key is new, "upgraded_from": the
    store's previous schema version or null}.
    """
    done = initialise(data, store=store, origin=origin)
    signer, created = done.signer, done.created
    if as_json:
        _emit(
            {
                "vkey": signer.vkey,
                "origin": signer.name,
                "created": created,
                "upgraded_from": done.upgraded_from,
            },
            compact=True,
        )
    else:
        click.echo(signer.vkey)
    if done.upgraded_from is not None:
        click.echo(
            f"upgraded the store's schema from version {done.upgraded_from}"
            " (see the CHANGELOG); run `glasslog verify` if you want to see it is intact",
            err=True,
        )
    if created:
        click.echo(f"initialised {data} (keep {data / 'signing.key'} secret)", err=True)
    if done.policy_written:
        click.echo(
            f"wrote the read policy {DataDir(data).policy_file} (one admin role; "
            "`glasslog policy explain admin`)",
            err=True,
        )


class _IngestStatus:
    """What ``ingest`` shows on a terminal: a line while another writer holds the lock,
    then a progress bar over the input's bytes when its size is known (a file), else a
    running count of events (a pipe). Updated once per batch, never per event."""

    def __init__(self, data: Path, size: int | None) -> None:
        self._data = data
        self._size = size
        self._stack = ExitStack()
        self._update: Callable[[int, str], None] | None = None
        self._shown = 0

    def __enter__(self) -> _IngestStatus:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def waiting(self) -> None:
        click.echo(
            printable(f"waiting for another glasslog process writing to {self._data}…"), err=True
        )

    def progress(self, tally: Tally) -> None:
        if self._update is None:
            bar = click.progressbar(
                _unsized() if self._size is None else None,
                length=self._size,
                label="ingesting",
                file=sys.stderr,
                item_show_func=lambda text: text,
            )
            self._update = self._stack.enter_context(bar).update
        events = tally.accepted + tally.duplicates + tally.rejected
        done = events if self._size is None else tally.offset or 0
        self._update(done - self._shown, f"{events:,} events")
        self._shown = done


def _unsized() -> Iterator[str]:
    """An iterable of unknown length: click then draws a bar with no end, for a pipe."""
    yield from ()


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
    default=Settings().batch_size,
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
@json_option
@url_option
@key_option
def ingest(
    data: Path,
    store: str | None,
    file: IO[bytes],
    workers: int,
    batch_size: int,
    checkpoint_every: int,
    checkpoint_interval: float,
    as_json: bool,  # accepted like every command's; the summary is JSON either way
    url: str | None,
    key: str | None,
) -> None:
    """Ingest JSON lines from FILE ('-' for stdin, gzip read as such); print a summary.

    JSON (with or without --json): {"accepted", "duplicates", "rejected": [{"line",
    "errors": [message…]}…]}.

    Exit 0 when nothing was rejected, 2 otherwise (the valid events are still stored).
    Ctrl-C stops after the batch being written, signs a checkpoint, says what was stored
    and exits 130; a second Ctrl-C stops at once. A progress bar is shown on a terminal.

    With --url and --key (a key whose role has ingest), the events go to that server in
    batches of up to 1,000, retried on 429 and 503; events without an id get one here,
    so a retried batch is stored once. The summary is the same.
    """
    if url is not None:
        if key is None:
            raise AuthError("--url needs --key (or GLASSLOG_KEY): a key whose role has ingest")
        with Remote(url, key) as remote:
            summary = send_lines(remote, file)
        _emit(summary, compact=True)
        if summary["rejected"]:
            sys.exit(2)
        return
    settings = Settings(
        batch_size=batch_size,
        checkpoint_every=checkpoint_every,
        checkpoint_interval=checkpoint_interval,
    )
    status = _IngestStatus(data, input_size(file)) if sys.stderr.isatty() else None
    with tempfile.TemporaryFile("w+", encoding="utf-8") as rejected:
        try:
            with status or ExitStack():
                accepted, duplicates, n_rejected = ingest_lines(
                    DataDir(data), file, settings=settings, workers=workers,
                    rejected=rejected, store=store,
                    progress=status.progress if status else None,
                    waiting=status.waiting if status else None,
                )  # fmt: skip
        except Interrupted as stop:
            click.echo(f"glasslog: {stop}", err=True)
            sys.exit(130)
        rejected.seek(0)
        out = sys.stdout
        out.write(f'{{"accepted": {accepted}, "duplicates": {duplicates}, "rejected": [')
        while block := rejected.read(1 << 16):
            out.write(block)
        out.write("]}\n")
        out.flush()
    if n_rejected:
        sys.exit(2)


@main.command("import")
@data_option
@store_option
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="What FILES hold: Kubernetes audit events, CloudTrail log files, or "
                   "glasslog events (JSON lines).")  # fmt: skip
@click.option("--service", default=None,
              help="k8s-audit: the events' service (default: kubernetes), e.g. one per "
                   "cluster.")  # fmt: skip
@json_option
@url_option
@key_option
def import_(
    data: Path,
    store: str | None,
    files: tuple[Path, ...],
    fmt: str,
    service: str | None,
    as_json: bool,  # accepted like every command's; the summary is JSON either way
    url: str | None,
    key: str | None,
) -> None:
    """Import audit logs from FILES (files or directories, gzip read as such).

    k8s-audit: kube-apiserver audit logs, audit.k8s.io/v1 events as JSON lines; the
    ResponseComplete and Panic stages are imported, the others skipped. cloudtrail: AWS
    CloudTrail log files ({"Records": [...]}), or a directory tree as a trail delivers
    it (*.json, *.json.gz). jsonl: glasslog events, as `glasslog ingest` reads them.
    Directories are walked in sorted order. docs/import.md has the mappings.

    An event's id derives from the record's own (auditID and stage, eventID), so
    importing the same records again, under any file name, stores nothing twice.

    JSON (with or without --json): {"accepted", "duplicates", "skipped", "rejected":
    [{"file", "line" (or CloudTrail's "record", 0-based), "errors"}…]}. Exit 0 when
    every record was stored, a duplicate or skipped, 2 when any was rejected (the others
    are still stored). With --url and --key, the events go to that server as `glasslog
    ingest --url` sends them. A progress bar is shown on a terminal.
    """
    if url is not None and key is None:
        raise AuthError("--url needs --key (or GLASSLOG_KEY): a key whose role has ingest")
    with Importer(fmt, files, service=service) as importer:
        with ExitStack() as bar_stack:
            if sys.stderr.isatty():
                bar = bar_stack.enter_context(click.progressbar(
                    length=max(importer.size, 1), label="importing", file=sys.stderr))  # fmt: skip
                importer.progress = lambda i: bar.update(i.done - bar.pos)
            try:
                if url is not None:
                    with Remote(url, key) as remote:
                        summary = import_remote(importer, remote)
                else:
                    summary = import_local(
                        importer, DataDir(data), store=store, workers=os.cpu_count() or 1,
                        waiting=_IngestStatus(data, None).waiting,
                    )  # fmt: skip
            except Interrupted as stop:
                click.echo(f"glasslog: {stop}", err=True)
                sys.exit(130)
        summary.write_json(sys.stdout)
    if summary.rejected:
        sys.exit(2)


@main.command()
@data_option
@store_option
@click.argument("event_key", metavar="KEY")
@click.option("--proof", "proof", is_flag=True,
              help="Print evidence anyone can check offline (glasslog verify-event).")  # fmt: skip
@json_option
@reads_options
def get(
    data: Path,
    store: str | None,
    event_key: str,
    proof: bool,
    as_json: bool,
    key: str | None,
    policy: Path | None,
    url: str | None,
) -> None:
    """Print the stored event with seq or id KEY as JSON.

    Indented on a terminal; one line when piped, or with --json. With --proof, the
    evidence of docs/access.md instead: the event as the reader sees it (masked values
    as their commitment), the salts of the fields in clear, the commitments of hidden
    fields, an inclusion proof and the signed checkpoint.
    """
    with _reads(data, store, key, policy, url) as reads:
        if not proof:
            _emit(reads.get(event_key), compact=as_json)
        elif isinstance(reads, Reader | Remote):
            _emit(reads.evidence(event_key), compact=as_json)
        else:
            _emit(owner_evidence(reads, event_key), compact=as_json)


@main.command("verify-event")
@data_option
@store_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--vkey", "vkey_text", help="Verifier key to trust (default: the data directory's).")
@click.option(
    "--vkeys",
    "vkeys_file",
    type=click.File("r", encoding="utf-8"),
    help="The log's key history (GET /v1/vkeys, `key history --json`); default: the store's.",
)
@json_option
def verify_event(
    data: Path,
    store: str | None,
    file: IO[str],
    vkey_text: str | None,
    vkeys_file: IO[str] | None,
    as_json: bool,
) -> None:
    """Check the evidence in FILE ('-': stdin) offline, as printed by `get KEY --proof`.

    Rebuilds the event's leaf (committing the fields given with salts, putting hidden
    ones back as commitments), checks its inclusion proof against the checkpoint and
    the checkpoint's signature, by the key whose era covers its size in the log's key
    history (the store's, or --vkeys FILE; --vkey must be in it): evidence signed
    before a key rotation still verifies. JSON: {"verified": true, "seq", "tree_size",
    "origin"}, or {"verified": false, "error"} (exit 1).
    """
    history = None if vkeys_file is None else vkeys_file.read()
    try:  # the checkpoint is checked with the key whose era covers it (key rotation)
        verifier = trusted_keys(DataDir(data), vkey=vkey_text, history_text=history, store=store)
    except NoteError as exc:
        _fail(f"verification failed: {exc}")
    try:
        evidence = json.loads(file.read())
        verified = verify_evidence(evidence, verifier)
    except (ValueError, IntegrityError) as exc:
        reason = str(exc) if isinstance(exc, IntegrityError) else f"not JSON: {exc}"
        if not reason.startswith("verification failed"):
            reason = f"verification failed: {reason}"
        if as_json:
            _emit({"verified": False, "error": reason}, compact=True)
        _fail(reason)
        return
    if as_json:
        _emit({"verified": True, "seq": verified.seq, "tree_size": verified.tree_size,
               "origin": verified.origin}, compact=True)  # fmt: skip
    else:
        click.echo(printable(verified.summary()))


@main.command()
@data_option
@store_option
@url_option
@json_option
def checkpoint(data: Path, store: str | None, url: str | None, as_json: bool) -> None:
    """Print the latest signed checkpoint, exactly as signed.

    JSON: {"origin", "size", "root" (base64), "note": the signed note as above}, after
    checking the note's signature with the log's verifier key (with --url, the
    server's: that proves the note is well signed, not who signed it).
    """
    if url is not None:
        with Remote(url, None) as remote:
            note = remote.checkpoint()
            if not as_json:
                click.echo(note, nl=False)
                return
            cp = remote.vkeys().trusting(remote.vkey()).verify_checkpoint(note)
        root = base64.b64encode(cp.root).decode("ascii")
        _emit({"origin": cp.origin, "size": cp.size, "root": root, "note": note}, compact=True)
        return
    with Log.open(data, store=store) as log:
        note = log.latest_checkpoint().note
        if not as_json:
            click.echo(note, nl=False)
            return
        cp = log.verify_checkpoint_note(note)
    root = base64.b64encode(cp.root).decode("ascii")
    _emit({"origin": cp.origin, "size": cp.size, "root": root, "note": note}, compact=True)


@main.command()
@data_option
@url_option
@json_option
def vkey(data: Path, url: str | None, as_json: bool) -> None:
    """Print the log's verifier key. JSON: {"vkey", "origin"}."""
    if url is not None:
        with Remote(url, None) as remote:
            key = remote.vkey()
    else:
        datadir = DataDir(data)
        datadir.require()
        key = datadir.vkey()
    if as_json:
        _emit({"vkey": key, "origin": Verifier.from_vkey(key).name}, compact=True)
    else:
        click.echo(key)


_SEQ = click.IntRange(0, MAX_SEQ)
"""A seq: a database integer is 64-bit, so a larger number is refused by click."""
_SIZE = click.IntRange(1, MAX_SEQ + 1)


@main.group()
def proof() -> None:
    """Merkle proofs (RFC 9162) against signed checkpoints."""


@proof.command("inclusion")
@data_option
@store_option
@click.argument("seq", type=_SEQ)
@click.option("--size", type=_SIZE, help="Tree size (default: latest checkpoint).")
@json_option
@reads_options
def proof_inclusion(
    data: Path,
    store: str | None,
    seq: int,
    size: int | None,
    as_json: bool,
    key: str | None,
    policy: Path | None,
    url: str | None,
) -> None:
    """Prove that event SEQ is in the tree.

    JSON (one line when piped, or with --json): {"seq", "tree_size", "leaf", "leaf_hash",
    "proof": [hash…], "root"}, bytes in base64. For a principal (--key) the event must
    be in its scope, and "leaf" (the event's content) is left out: `get SEQ --proof`
    gives the evidence its role may see.
    """
    with _reads(data, store, key, policy, url) as reads:
        _emit(reads.inclusion(seq, size=size), compact=as_json)


@proof.command("consistency")
@data_option
@store_option
@click.argument("old", type=_SIZE)
@click.argument("new", type=_SIZE)
@json_option
@reads_options
def proof_consistency(
    data: Path,
    store: str | None,
    old: int,
    new: int,
    as_json: bool,
    key: str | None,
    policy: Path | None,
    url: str | None,
) -> None:
    """Prove that the tree of size NEW extends the tree of size OLD.

    JSON (one line when piped, or with --json): {"size1", "size2", "root1", "root2",
    "proof": [hash…]}, bytes in base64.
    """
    if url is not None and key is None:  # public: monitors ask without an account
        with Remote(url, None) as remote:
            _emit(remote.consistency(old, new), compact=as_json)
        return
    with _reads(data, store, key, policy, url) as reads:
        _emit(reads.consistency(old, new), compact=as_json)


@main.command()
@data_option
@store_option
@click.argument("bundle", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--vkey", "vkey_text", help="Verifier key to trust (default: the data directory's).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=os.cpu_count() or 1,
    show_default="the number of cores",
    help="Processes that recompute leaves in parallel.",
)
@click.option(
    "--checkpoint",
    "notes",
    multiple=True,
    type=click.File("r", encoding="utf-8"),
    help="A checkpoint obtained out of band (from a witness, a monitor, an email) that the "
    "store must still hold; repeat for several.",
)
@json_option
def verify(
    data: Path,
    store: str | None,
    bundle: Path | None,
    vkey_text: str | None,
    workers: int,
    notes: tuple[IO[str], ...],
    as_json: bool,
) -> None:
    """Recompute every leaf, rebuild the tree and check every checkpoint.

    Also checks that the store still holds the newest checkpoint signed through this
    data directory (checkpoint.json) and every --checkpoint given: deleting signed
    checkpoints from the database does not make a rewritten history pass.

    JSON: {"intact": true, "events", "checkpoints", "covered", "pending", "seconds"}; when
    tampering is found, {"intact": false, "error", "seq": the first bad seq or null}
    (and the error on stderr, exit 1).

    With BUNDLE (written by `glasslog export`), checks that bundle offline instead,
    against --vkey (docs/verify.md); without --vkey, against the bundle's own keys,
    which proves it consistent, not who made it.
    """
    if bundle is not None:
        verify_bundle_file(bundle, vkey_text, as_json, workers=workers)
        return
    datadir = DataDir(data)
    datadir.require()
    verifier = Verifier.from_vkey(vkey_text) if vkey_text else datadir.verifier()
    known = [KnownCheckpoint(note=f.read(), source=f.name) for f in notes]
    recorded = datadir.recorded_checkpoint()
    if recorded is not None:
        source = str(datadir.checkpoint_file)
        known.append(KnownCheckpoint(recorded.note, source, checkpoints=recorded.checkpoints))
    spec = datadir.store_spec(store)
    target = open_store(spec, readonly=True)
    total = target.size()
    target.close()
    try:
        if sys.stderr.isatty():
            with click.progressbar(length=total, label="verifying", file=sys.stderr) as bar:
                report = verify_store(
                    spec, verifier, workers=workers, progress=bar.update, known=known
                )
        else:
            report = verify_store(spec, verifier, workers=workers, known=known)
    except IntegrityError as exc:
        if as_json:
            _emit({"intact": False, "error": str(exc), "seq": exc.seq}, compact=True)
        _fail(f"TAMPERED: {exc}")
        return
    if as_json:
        summary = {"intact": True, **dataclasses.asdict(report), "pending": report.pending}
        _emit(summary, compact=True)
    else:
        click.echo(report.summary())


def _committed(data: Path) -> tuple[tuple[str, ...], ...]:
    """The log's extra committed fields (``[ledger] commit``), when its directory exists."""
    if not (data / CONFIG_NAME).exists():
        return ()
    return DataDir(data).config().ledger.commit


def _policy_path(data: Path, policy: Path | None) -> Path:
    return policy if policy is not None else DataDir(data).policy_file


def _record(data: Path, store: str | None, *events: dict[str, Any]) -> None:
    """Append events of glasslog's own (a key made or revoked, reads audited) to the
    ledger, signed, as one batch.

    Through ``ingest_lines``, the path every writer takes: the writer lock, the history
    check before signing, and a checkpoint at the end.
    """
    lines = io.BytesIO(b"".join(json.dumps(e).encode() + b"\n" for e in events))
    with tempfile.TemporaryFile("w+", encoding="utf-8") as rejected:
        accepted, _, _ = ingest_lines(
            DataDir(data), lines, settings=Settings(), workers=1, rejected=rejected, store=store
        )
        if accepted != len(events):
            rejected.seek(0)
            raise GlasslogError(f"could not record the event in the ledger: {rejected.read()}")


def _owner() -> dict[str, str]:
    """The actor of what the CLI does as the data directory's owner."""
    return {"id": f"owner:{getpass.getuser()}", "type": "user"}


def _key_state(key: ApiKey, now_us: int) -> str:
    if key.revoked_us is not None:
        return "revoked"
    if key.expires_us is not None and now_us >= key.expires_us:
        return "expired"
    return "active"


def _us_text(us: int | None) -> str | None:
    return (
        None if us is None else datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )


@main.group()
def keys() -> None:
    """Make, list and revoke API keys (docs/access.md)."""


@keys.command("create")
@data_option
@store_option
@policy_option
@click.option("--role", required=True, help="The policy role the key reads as.")
@click.option("--expires", help="Lifetime, such as 30d, 12h or 1y (default: never).")
@click.option("--name", default="", help="What the key is for, shown in listings and audits.")
@json_option
def keys_create(
    data: Path,
    store: str | None,
    policy: Path | None,
    role: str,
    expires: str | None,
    name: str,
    as_json: bool,
) -> None:
    """Make an API key for ROLE and print it, once: only its hash is kept.

    JSON: {"id", "key", "role", "name", "expires"}. Making it is an event in the ledger
    (service glasslog, action key.create).
    """
    loaded = load_policy(_policy_path(data, policy), committed=_committed(data))
    if role not in loaded.roles:
        known = ", ".join(sorted(loaded.roles))
        _fail(f"the policy defines no role {role!r}; its roles are: {known}")
    lifetime = None
    if expires is not None:
        try:
            lifetime = parse_duration(expires)
        except ValueError as exc:
            _fail(f"--expires: {exc}")
    made = make_key(role=role, name=name or role, expires=lifetime)
    stored = made.stored
    _record(data, store, {
        "service": "glasslog", "action": "key.create", "category": "audit",
        "outcome": "success", "actor": _owner(),
        "target": {"type": "api_key", "id": stored.id, "name": stored.name},
        "metadata": {"role": role, "expires": _us_text(stored.expires_us) or "never"},
    })  # fmt: skip
    target = open_store(DataDir(data).store_spec(store))
    try:
        target.add_api_key(stored)
    finally:
        target.close()
    expiry = _us_text(stored.expires_us)
    if as_json:
        _emit(
            {"id": stored.id, "key": made.text, "role": role, "name": stored.name,
             "expires": expiry},
            compact=True,
        )  # fmt: skip
        return
    click.echo(made.text)
    click.echo(
        f"API key {stored.id} for role {role}"
        + (f", expires {expiry}" if expiry else ", never expires")
        + ": shown once, keep it secret",
        err=True,
    )


@keys.command("list")
@data_option
@store_option
@json_option
def keys_list(data: Path, store: str | None, as_json: bool) -> None:
    """List the API keys, never their secrets.

    JSON: one {"id", "name", "role", "created", "expires", "revoked", "state"} per line.
    """
    target = open_store(DataDir(data).store_spec(store), readonly=True)
    try:
        found = target.api_keys()
    finally:
        target.close()
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    rows: list[dict[str, str | None]] = [
        {"id": k.id, "name": k.name, "role": k.role, "created": _us_text(k.created_us),
         "expires": _us_text(k.expires_us), "revoked": _us_text(k.revoked_us),
         "state": _key_state(k, now_us)}
        for k in found
    ]  # fmt: skip
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
    elif rows:
        _table(
            [[printable(str(r[c] or ("never" if c == "expires" else ""))) for c in
              ("id", "name", "role", "created", "expires", "state")] for r in rows],
            ["id", "name", "role", "created", "expires", "state"],
        )  # fmt: skip
    else:
        click.echo("no API keys; make one with `glasslog keys create --role ROLE`", err=True)


@keys.command("revoke")
@data_option
@store_option
@click.argument("key_id", metavar="ID")
@json_option
def keys_revoke(data: Path, store: str | None, key_id: str, as_json: bool) -> None:
    """Revoke the API key ID, for good. Revoking is an event in the ledger (key.revoke).

    JSON: {"id", "revoked": true, "already": whether it was revoked before}.
    """
    target = open_store(DataDir(data).store_spec(store))
    try:
        known = target.api_key(key_id)
        if known is None:
            _fail(f"no API key {key_id!r}; `glasslog keys list` shows them")
            return
        _record(data, store, {
            "service": "glasslog", "action": "key.revoke", "category": "audit",
            "outcome": "success", "actor": _owner(),
            "target": {"type": "api_key", "id": key_id, "name": known.name},
            "metadata": {"role": known.role},
        })  # fmt: skip
        newly = target.revoke_api_key(key_id, int(datetime.now(UTC).timestamp() * 1e6))
    finally:
        target.close()
    if as_json:
        _emit({"id": key_id, "revoked": True, "already": not newly}, compact=True)
    else:
        click.echo(f"revoked API key {key_id}" + ("" if newly else " (it was revoked already)"))


@main.group(invoke_without_command=True)
@data_option
@store_option
@policy_option
@click.option("--principal", help="Who: an API key id (as `keys list` shows) or oidc:SUBJECT.")
@click.option("--role", help="The policy role to add, for a while.")
@click.option("--for", "lifetime", help="How long: 2h, 30m, 1d … (at most 7 days).")
@click.option("--reason", help="Why (the incident): recorded in the ledger.")
@json_option
@click.pass_context
def grant(
    ctx: click.Context,
    data: Path,
    store: str | None,
    policy: Path | None,
    principal: str | None,
    role: str | None,
    lifetime: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Break-glass: give a principal a second role for a bounded time.

    `glasslog grant --principal ID --role R --for 2h --reason "…"`; `grant list`,
    `grant revoke ID`. A grant is an event in the ledger (grant.create), expires by
    itself, and every read under it records its id. JSON: {"id", "principal", "role",
    "expires", "reason"}.
    """
    if ctx.invoked_subcommand is not None:
        return
    missing = [f"--{n}" for n, v in (("principal", principal), ("role", role),
                                      ("for", lifetime), ("reason", reason)) if not v]  # fmt: skip
    if missing:
        _fail(f"grant needs {', '.join(missing)} (or a subcommand: list, revoke)", code=2)
    if not (principal and role and lifetime and reason):
        return  # unreachable: _fail exited; says so to the type checker
    loaded = load_policy(_policy_path(data, policy), committed=_committed(data))
    if role not in loaded.roles:
        known = ", ".join(sorted(loaded.roles))
        _fail(f"the policy defines no role {role!r}; its roles are: {known}")
    try:
        made = make_grant(
            principal=principal_id(principal),
            role=role,
            lifetime=parse_duration(lifetime),
            reason=reason,
        )
    except ValueError as exc:
        _fail(f"--for: {exc}")
        return
    _record(data, store, {
        "service": "glasslog", "action": "grant.create", "category": "audit",
        "outcome": "success", "actor": _owner(), "reason": made.reason,
        "target": {"type": "principal", "id": made.principal},
        "metadata": {"grant": made.id, "role": role, "expires": _us_text(made.expires_us)},
    })  # fmt: skip
    target = open_store(DataDir(data).store_spec(store))
    try:
        target.add_grant(made)
    finally:
        target.close()
    if as_json:
        shown = {"id": made.id, "principal": made.principal, "role": role,
                 "expires": _us_text(made.expires_us), "reason": made.reason}  # fmt: skip
        _emit(shown, compact=True)
    else:
        click.echo(
            printable(f"granted {role} to {made.principal} until {_us_text(made.expires_us)} "
                      f"({made.id})")
        )  # fmt: skip


@grant.command("list")
@data_option
@store_option
@json_option
def grant_list(data: Path, store: str | None, as_json: bool) -> None:
    """List grants with their state (active, expired, revoked).

    JSON: one {"id", "principal", "role", "reason", "created", "expires", "revoked",
    "state"} per line.
    """
    target = open_store(DataDir(data).store_spec(store), readonly=True)
    try:
        found = target.grants()
    finally:
        target.close()
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    rows: list[dict[str, str | None]] = []
    for g in found:
        state = (
            "revoked" if g.revoked_us is not None
            else "expired" if now_us >= g.expires_us else "active"
        )  # fmt: skip
        rows.append({"id": g.id, "principal": g.principal, "role": g.role, "reason": g.reason,
                     "created": _us_text(g.created_us), "expires": _us_text(g.expires_us),
                     "revoked": _us_text(g.revoked_us), "state": state})  # fmt: skip
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
    elif rows:
        columns = ("id", "principal", "role", "expires", "state", "reason")
        _table([[printable(str(r[c] or "")) for c in columns] for r in rows], list(columns))
    else:
        click.echo("no grants", err=True)


@grant.command("revoke")
@data_option
@store_option
@click.argument("grant_id", metavar="ID")
@json_option
def grant_revoke(data: Path, store: str | None, grant_id: str, as_json: bool) -> None:
    """End grant ID now. Revoking is an event in the ledger (grant.revoke).

    JSON: {"id", "revoked": true, "already": whether it was revoked before}.
    """
    target = open_store(DataDir(data).store_spec(store))
    try:
        known = next((g for g in target.grants() if g.id == grant_id), None)
        if known is None:
            _fail(f"no grant {grant_id!r}; `glasslog grant list` shows them")
            return
        _record(data, store, {
            "service": "glasslog", "action": "grant.revoke", "category": "audit",
            "outcome": "success", "actor": _owner(),
            "target": {"type": "principal", "id": known.principal},
            "metadata": {"grant": grant_id, "role": known.role},
        })  # fmt: skip
        newly = target.revoke_grant(grant_id, int(datetime.now(UTC).timestamp() * 1e6))
    finally:
        target.close()
    if as_json:
        _emit({"id": grant_id, "revoked": True, "already": not newly}, compact=True)
    else:
        click.echo(f"revoked grant {grant_id}" + ("" if newly else " (it was revoked already)"))


@main.group()
def policy() -> None:
    """Check and explain the read policy (docs/access.md)."""


@policy.command("check")
@data_option
@policy_option
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@json_option
def policy_check(data: Path, policy: Path | None, file: Path | None, as_json: bool) -> None:
    """Validate a policy: exit 0, or 2 with every problem, each with its line and fix.

    FILE defaults to --policy, then DIR/policy.toml. JSON: {"valid", "roles", "problems"}.
    """
    path = file or _policy_path(data, policy)
    try:
        loaded = load_policy(path, committed=_committed(data))
    except PolicyError as exc:
        if as_json:
            _emit({"valid": False, "roles": [], "problems": exc.problems}, compact=True)
        else:
            for problem in exc.problems:
                click.echo(f"glasslog: error: {printable(problem)}", err=True)
        sys.exit(2)
    names = sorted(loaded.roles)
    if as_json:
        _emit({"valid": True, "roles": names, "problems": []}, compact=True)
    else:
        click.echo(printable(f"{path}: valid: {len(names)} role{'s' * (len(names) != 1)} "
                             f"({', '.join(names)})"))  # fmt: skip


@policy.command("explain")
@data_option
@policy_option
@click.argument("role")
@json_option
def policy_explain(data: Path, policy: Path | None, role: str, as_json: bool) -> None:
    """Say in plain words what ROLE can and cannot see and do.

    JSON: {"role", "permissions", "services", "actions", "categories", "environments"
    (null: all), "max_age_seconds", "query", "mask", "hide", "explanation"}.
    """
    path = _policy_path(data, policy)
    try:
        loaded = load_policy(path, committed=_committed(data))
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(f"glasslog: error: {printable(problem)}", err=True)
        sys.exit(2)
    found = loaded.roles.get(role)
    if found is None:
        _fail(f"{path} defines no role {role!r}; its roles are: {', '.join(sorted(loaded.roles))}")
        return
    if as_json:
        _emit(
            {
                "role": found.name,
                "permissions": sorted(found.permissions),
                "services": list(found.services),
                "actions": list(found.actions),
                "categories": None if found.categories is None else list(found.categories),
                "environments": None if found.environments is None else list(found.environments),
                "max_age_seconds": None
                if found.max_age is None
                else int(found.max_age.total_seconds()),
                "query": found.query,
                "mask": [show_pointer(p) for p in found.mask],
                "hide": [show_pointer(p) for p in found.hide],
                "explanation": explain(found),
            },
            compact=True,
        )
        return
    for line in explain(found).splitlines():  # printable() would escape the newlines
        click.echo(printable(line))


@main.command()
@data_option
@store_option
@policy_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8433, show_default=True)
@click.option("--metrics-host", help="Also serve /metrics, without a principal, on this "
              "address (for a scraper on a private network).")  # fmt: skip
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=9433, show_default=True)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="PEM certificate chain: serve HTTPS.")  # fmt: skip
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="PEM private key of --tls-cert.")  # fmt: skip
@click.option("--insecure-http", is_flag=True,
              help="Allow plain HTTP on a non-loopback address (behind a TLS proxy).")  # fmt: skip
@click.option("--rate", type=click.FloatRange(0.1, 1e6), default=50.0, show_default=True,
              help="Requests per second per principal (429 beyond, after a burst).")  # fmt: skip
@click.option("--workers", type=click.IntRange(0, 64), default=2, show_default=True,
              help="Processes that parse and prepare ingested events (0: in the server's "
              "own writer thread, less memory, slower ingest).")  # fmt: skip
@click.option("--syslog", "syslog", multiple=True, metavar="URL",
              help="Also receive syslog (RFC 5424, RFC 3164) on udp://HOST:PORT or "
              "tcp://HOST:PORT; repeatable (docs/capture.md).")  # fmt: skip
@click.option("--syslog-allow", "syslog_allow", multiple=True, metavar="CIDR",
              help="A network syslog senders may send from; repeatable (default: loopback "
              "only). Others are dropped unanswered.")  # fmt: skip
@click.option("--syslog-map", "syslog_map", metavar="FILE",
              type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="TOML: the services syslog may write (services = [...]) and how keys "
              "map to event fields ([fields]); default: every service, the keys of "
              "docs/capture.md.")  # fmt: skip
def serve(
    data: Path,
    store: str | None,
    policy: Path | None,
    host: str,
    port: int,
    metrics_host: str | None,
    metrics_port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    insecure_http: bool,
    rate: float,
    workers: int,
    syslog: tuple[str, ...],
    syslog_allow: tuple[str, ...],
    syslog_map: Path | None,
) -> None:
    """Serve the HTTP API: ingest, role-scoped reads, proofs and a live tail.

    Every read needs Authorization: Bearer <API key or OIDC token> and is scoped,
    masked and audited as the CLI's --key reads are (docs/http.md). SIGTERM or Ctrl-C
    stops it gracefully: queued events are written and a checkpoint is signed.
    """
    # Imported here: the web stack costs every other command a tenth of a second.
    from glasslog.server import run  # noqa: PLC0415
    from glasslog.server.service import ServiceConfig  # noqa: PLC0415

    binding = run.Binding(
        host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, insecure_http=insecure_http,
        metrics_host=metrics_host, metrics_port=metrics_port,
    )  # fmt: skip
    config = ServiceConfig(data=data, store=store, policy=policy, rate=rate,
                           prepare_workers=workers, syslog=syslog, syslog_allow=syslog_allow,
                           syslog_map=syslog_map)  # fmt: skip
    # Ctrl-C is a graceful stop: the server wrote, signed and closed before it returns.
    with suppress(KeyboardInterrupt):
        run.serve(config, binding)


@main.command()
@click.option("--data", "data", type=click.Path(path_type=Path, file_okay=False),
              default=Path("glasslog-demo"), show_default=True, callback=_inherited,
              help="Where the demo log is created (reused if it exists).")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8433, show_default=True,
              help="Where the demo serves (on 127.0.0.1).")  # fmt: skip
@click.option("--duration", type=click.FloatRange(1), default=None,
              help="Stop after this many seconds (default: at Ctrl-C).")  # fmt: skip
@click.option("--walkthrough", is_flag=True,
              help="Instead: ingest sample events, prove one offline, verify.")  # fmt: skip
@click.option("--events", type=click.IntRange(1, 1_000_000), default=5_000, show_default=True,
              help="Sample events of the --walkthrough.")  # fmt: skip
def demo(data: Path, port: int, duration: float | None, walkthrough: bool, events: int) -> None:
    """Serve a live demo: the HTTP API, four roles with a key each, a realistic stream.

    Prints the keys and commands to try: a search, a trace across services, a live
    tail, and the same search under payments-dev with personal data masked. Runs until
    --duration ends or Ctrl-C. --walkthrough instead ingests sample events, proves one
    of them offline and verifies everything, then exits.
    """
    if walkthrough:
        run_demo(data, events=events, echo=click.echo)
        return
    from glasslog.server.demo import run_live_demo  # noqa: PLC0415 - the web stack is heavy

    run_live_demo(data, port=port, duration=duration, echo=click.echo)


timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(0.1, 3600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds before the query is cancelled.",
)


def _table(rows: list[list[str]], headers: list[str]) -> None:
    """Print rows as aligned columns (the last column is not padded).

    Every cell goes through :func:`printable`: a cell holds text someone logged, and
    a newline or escape sequence in it must not draw a row or a colour of its own.
    """
    rows = [[printable(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        cells = [c.ljust(w) for c, w in zip(line[:-1], widths, strict=False)] + [line[-1]]
        click.echo("  ".join(cells).rstrip())


def _short_time(text: str) -> str:
    return text[:23].replace("T", " ")


def _clip(text: str, width: int = 60) -> str:
    """``text`` made printable and cut to ``width`` characters, marking a cut with '…'."""
    shown = printable(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def _event_cells(event: dict[str, Any]) -> list[str]:
    target = event.get("target", {})
    # The target alone: an event without one has an empty cell, not its reason.
    what = target.get("id") or target.get("name") or target.get("type") or ""
    return [
        _short_time(event["time"]),
        str(event["seq"]),
        event["service"],
        event["action"],
        event["outcome"],
        event["actor"]["id"],
        _clip(str(what)),
    ]


@main.command(cls=_QueryCommand)
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
@reads_options
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
    key: str | None,
    policy: Path | None,
    url: str | None,
) -> None:
    """Find events matching QUERY (see docs/query.md), newest first.

    JSON: one stored event per line, with its "seq".
    """
    now = datetime.now(UTC)
    wanted = None if everything else limit
    shown: list[list[str]] = []
    outside: list[int] = []
    mismatched: list[int] = []
    with _reads(data, store, key, policy, url, timeout=timeout) as reads:
        while wanted is None or wanted > 0:
            size = MAX_PAGE if wanted is None else min(wanted, MAX_PAGE)
            page = reads.search(query, limit=size, sort=sort, cursor=cursor, now=now)
            outside += page.outside
            mismatched += page.mismatched
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
    _report_tampering(outside=outside, mismatched=mismatched, against="the query")


def _seqs(seqs: list[int]) -> str:
    """Up to five seqs for a message; the count says how many there are in all."""
    return ", ".join(map(str, seqs[:5])) + (", …" if len(seqs) > 5 else "")


def _report_tampering(*, outside: list[int], mismatched: list[int], against: str) -> None:
    """Exit 1 with a TAMPERED line per kind of row the store returned but glasslog hid.

    After the results, on stderr, in text and JSON modes alike: what was shown is
    sound, and the exit status says that something else was not.
    """
    problems = []
    if outside:
        problems.append(
            f"TAMPERED: the store returned {len(outside)} row(s) outside its tree "
            f"(seq {_seqs(outside)}), not shown; run `glasslog verify`"
        )
    if mismatched:
        problems.append(
            f"TAMPERED: {len(mismatched)} event(s) (seq {_seqs(mismatched)}) did not match "
            f"{against} when rechecked against their signed bodies; not shown; "
            "run `glasslog verify`"
        )
    for problem in problems[:-1]:
        click.echo(f"glasslog: error: {printable(problem)}", err=True)
    if problems:
        _fail(problems[-1])


NO_VALUE = "(none)"
"""How ``count --by`` labels the events that lack the field, in the table."""


def _group_label(value: Any) -> str:
    """A ``count --by`` value as a table cell that no other value can be mistaken for.

    Strings are shown bare unless they would read as something else — a number,
    ``true``, ``null``, the label of the missing group — and are then quoted as in
    JSON; other values are shown as JSON.
    """
    if value is MISSING:
        return NO_VALUE
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value if value != NO_VALUE else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


@main.command(cls=_QueryCommand)
@data_option
@store_option
@click.argument("query", default="")
@click.option("--by", "by", help="Count per value of this field (top values first).")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True)
@json_option
@timeout_option
@reads_options
def count(
    data: Path,
    store: str | None,
    query: str,
    by: str | None,
    top: int,
    as_json: bool,
    timeout: float,
    key: str | None,
    policy: Path | None,
    url: str | None,
) -> None:
    """Count events matching QUERY, in all or per value of a field.

    The events that lack the --by field are one group, "(none)". JSON: {"count",
    "exact"}; with --by, one {"value", "count", "missing"} per line, where "missing" is
    true (and "value" null) for the events without the field.
    """
    with _reads(data, store, key, policy, url, timeout=timeout) as reads:
        if by is None:
            result = reads.count(query)
            if as_json:
                click.echo(json.dumps({"count": result.count, "exact": result.exact}))
            else:
                click.echo(f"{result.count:,}" if result.exact else f"~{result.count:,} (estimate)")
            return
        groups = reads.count_by(query, by, top=top)
    if as_json:
        for value, n in groups:
            missing = value is MISSING
            line = {"value": None if missing else value, "count": n, "missing": missing}
            click.echo(json.dumps(line, ensure_ascii=False))
    elif groups:
        _table([[_group_label(v), f"{n:,}"] for v, n in groups], [by, "count"])
    else:
        click.echo("no matching events", err=True)


@main.command(cls=_QueryCommand)
@data_option
@store_option
@click.argument("query", default="")
@json_option
@timeout_option
@reads_options
def histogram(
    data: Path,
    store: str | None,
    query: str,
    as_json: bool,
    timeout: float,
    key: str | None,
    policy: Path | None,
    url: str | None,
) -> None:
    """Events matching QUERY per time bucket (the bucket size adapts to the window).

    Every bucket of the window is shown, empty ones too. JSON: one {"start", "count",
    "seconds"} per bucket and line, oldest first.
    """
    with _reads(data, store, key, policy, url, timeout=timeout) as reads:
        result = reads.histogram(query)
    if as_json:
        for start, n in result.buckets:
            click.echo(json.dumps({"start": start, "count": n, "seconds": result.bucket_seconds}))
        return
    if not result.buckets:
        click.echo("no matching events", err=True)
        return
    peak = max(n for _, n in result.buckets) or 1
    click.echo(f"bucket: {result.bucket_seconds:g} s", err=True)
    _table(
        # A bucket with any events gets at least one '#'; an empty one gets none.
        [[_short_time(s), f"{n:,}", "#" * (n and max(1, round(40 * n / peak)))]
         for s, n in result.buckets],
        ["start", "count", ""],
    )  # fmt: skip


@main.command(cls=_QueryCommand)
@data_option
@store_option
@click.argument("ident")
@json_option
@timeout_option
@reads_options
def trace(
    data: Path,
    store: str | None,
    ident: str,
    as_json: bool,
    timeout: float,
    key: str | None,
    policy: Path | None,
    url: str | None,
) -> None:
    """Every event sharing request or trace id IDENT, as a timeline across services.

    JSON: one stored event per line, oldest first.
    """
    with _reads(data, store, key, policy, url, timeout=timeout) as reads:
        timeline = reads.trace(ident)
    events = timeline.events
    if as_json:
        for event in events:
            click.echo(json.dumps(event, ensure_ascii=False))
    elif not events:
        click.echo(f"no events with request or trace id {printable(repr(ident))}", err=True)
    else:
        first = datetime.fromisoformat(events[0]["time"])
        rows = []
        for event in events:
            offset = datetime.fromisoformat(event["time"]) - first
            rows.append([
                _short_time(event["time"]),
                f"+{duration(offset // _MICROSECOND)}",
                event["service"],
                event.get("context", {}).get("function", ""),
                event["action"],
                event["outcome"],
                event["actor"]["id"],
            ])  # fmt: skip
        _table(rows, ["time", "offset", "service", "function", "action", "outcome", "actor"])
    _report_tampering(
        outside=[], mismatched=list(timeline.mismatched), against="the request or trace id"
    )


TAIL_POLL = 0.2
"""Seconds between looks at the local store for new events (``glasslog tail``)."""
TAIL_STEP = 500


def _tail_line(event: dict[str, Any]) -> str:
    """One event as a line of the tail: the columns of ``search``, padded as they come."""
    widths = (23, 8, 14, 24, 9, 20, 0)
    cells = [printable(c) for c in _event_cells(event)]
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


@main.command(cls=_QueryCommand)
@data_option
@store_option
@click.argument("query", default="")
@json_option
@reads_options
def tail(
    data: Path,
    store: str | None,
    query: str,
    as_json: bool,
    key: str | None,
    policy: Path | None,
    url: str | None,
) -> None:
    """Follow new events matching QUERY as they are stored, until Ctrl-C.

    Starts at the newest event. With --url, the server's live tail (it reconnects by
    itself after a drop, resuming after the last event it showed); otherwise the local
    store, read as the owner or, with --key, as that principal (scoped, masked and
    audited once, when the tail opens). JSON: one event per line, with its "seq".
    """

    def show(event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False) if as_json else _tail_line(event)
        click.echo(line)
        sys.stdout.flush()

    if not as_json:
        click.echo(f"following {printable(query) or 'every event'}; Ctrl-C stops", err=True)
    with suppress(KeyboardInterrupt), _reads(data, store, key, policy, url) as reads:
        if isinstance(reads, Remote):
            for event in reads.tail(query):
                show(event)
            return
        if isinstance(reads, Reader):
            reads.tail(query)  # refused now if it may not; recorded now, not at Ctrl-C
            reads.flush()
        log = reads.log if isinstance(reads, Reader) else reads
        cursor = log.store.size()
        while True:
            size = log.store.size()
            while cursor < size:
                end = min(size, cursor + TAIL_STEP)
                for event in reads.follow(query, cursor, end):
                    show(event)
                cursor = end
            time.sleep(TAIL_POLL)


_MICROSECOND = timedelta(microseconds=1)

from glasslog.cli_monitor import monitor, witness  # noqa: E402 - imports cli's options

main.add_command(monitor)
main.add_command(witness)

from glasslog.cli_retention import hold, retention  # noqa: E402 - imports cli's options

main.add_command(retention)
main.add_command(hold)
from glasslog.cli_export import export, verify_bundle_file  # noqa: E402 - imports cli's options

main.add_command(export)
from glasslog.cli_erase import erase  # noqa: E402 - imports cli's options

main.add_command(erase)
from glasslog.cli_signing import key  # noqa: E402 - imports cli's options

main.add_command(key)
