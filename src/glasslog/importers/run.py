"""One import: the input files read and mapped, as one stream of JSON lines that the
ingest pipeline (``--data``) or the server (``--url``) takes as it takes
``glasslog ingest``'s input, and its summary with every rejection at its file and line.

The stream has exactly one line per source line (JSON-lines formats) or per record
(CloudTrail): a mapped event, or an empty line for a record skipped or refused here.
Empty lines are counted but not ingested, so the stream's line *n* is always a known
place in a known file, and a rejection by the pipeline is translated back by looking up
the file whose lines start before *n*: one number per file, whatever their size.
Records are read as the pipeline asks for lines, so memory stays bounded by what the
pipeline holds in flight; rejections go to temporary files, never to a list.
"""

from __future__ import annotations

import bisect
import heapq
import io
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

from glasslog.datadir import DataDir
from glasslog.errors import ConfigError, EventError, InputError
from glasslog.importers import cloudtrail, k8s
from glasslog.importers.inputs import (
    MAX_RECORD_BYTES,
    InputFile,
    find_files,
    opened,
    read_document,
    read_lines,
)
from glasslog.ingest.bulk import ingest_lines
from glasslog.ingest.lines import parse_line
from glasslog.ingest.pipeline import Settings
from glasslog.remote import Remote, send_lines

FORMATS: Final = ("k8s-audit", "cloudtrail", "jsonl")

_SUFFIXES: Final = {
    "k8s-audit": (".log", ".jsonl", ".json"),
    "cloudtrail": (".json",),
    "jsonl": (".jsonl", ".ndjson"),
}
"""What a directory walk reads, per format, each also gzip'd (``.gz``)."""

_PROGRESS_EVERY: Final = 1_000
"""Records between two calls of :attr:`Importer.progress` (and one after each file)."""

_Rejection = tuple[tuple[int, int], dict[str, Any]]
"""A rejection and its place for sorting: (file index, line or record; -1 for the file)."""


class Importer:
    """One import of ``paths`` in ``fmt``; a context manager (it owns temporary files).

    The paths are checked when it is made (:class:`InputError` names a missing or
    unreadable one, before anything is read). :meth:`stream` then reads them once.
    """

    def __init__(self, fmt: str, paths: Sequence[Path], *, service: str | None = None) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        if service is not None and fmt != "k8s-audit":
            raise ConfigError(
                "--service applies to --format k8s-audit only: CloudTrail records name their "
                "AWS service, and glasslog's JSON lines carry their own"
            )
        self.format = fmt
        self.service = service or k8s.SERVICE
        skip = cloudtrail.SKIP_DIRS if fmt == "cloudtrail" else frozenset()
        suffixes = tuple(s + z for s in _SUFFIXES[fmt] for z in ("", ".gz"))
        self.files: list[InputFile] = find_files(paths, suffixes=suffixes, skip_dirs=skip)
        self.size = sum(f.size for f in self.files)
        """Bytes of all the files, as stored (compressed for gzip): the progress's end."""
        self.done = 0
        """Bytes of the files read so far."""
        self.records = 0
        self.skipped = 0
        """Records left out on purpose: Kubernetes stages without an outcome, CloudTrail
        Insight events."""
        self.progress: Callable[[Importer], object] | None = None
        """Called every few records and after each file, from the reading thread."""
        self._starts: list[int] = []
        """The number of stream lines before each file's first."""
        self._line = 0
        self._base = 0
        self._started = False
        self._temporary: list[IO[str]] = []
        self._malformed = self.temporary()
        self.malformed = 0
        """Records refused here: not JSON, not an object, a source field missing."""

    def __enter__(self) -> Importer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for file in self._temporary:
            file.close()

    def temporary(self) -> IO[str]:
        """A temporary text file, removed when the import is closed."""
        file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._temporary.append(file)
        return file

    def stream(self) -> IO[bytes]:
        """The JSON lines to ingest, read and mapped as they are asked for; once."""
        if self._started:
            raise RuntimeError("an Importer reads its files once; make another to import again")
        self._started = True
        return io.BufferedReader(_Lines(self._lines()), buffer_size=1 << 16)

    # -- reading ------------------------------------------------------------------------

    def _lines(self) -> Iterator[bytes]:
        for index, item in enumerate(self.files):
            self._starts.append(self._line)
            try:
                with opened(item.path) as (content, raw):
                    if self.format == "cloudtrail":
                        yield from self._records(index, content)
                    else:
                        yield from self._json_lines(index, content, raw)
            except InputError as exc:
                self._refuse(index, None, [str(exc)])
            except OSError as exc:  # gone or unreadable since it was checked
                self._refuse(index, None, [f"cannot read the file ({exc.strerror or exc})"])
            self._base += item.size
            self.done = self._base
            self._report()

    def _json_lines(self, index: int, content: IO[bytes], raw: IO[bytes]) -> Iterator[bytes]:
        number = 0
        try:
            for number, line in read_lines(content):
                self._line += 1
                self.records += 1
                if line is None:
                    self._refuse(index, number, [_too_long()])
                    yield b"\n"
                elif self.format == "jsonl" or line.isspace():
                    yield line if line.endswith(b"\n") else line + b"\n"
                else:
                    yield self._mapped(index, number, line, k8s.map_event, service=self.service)
                if self.records % _PROGRESS_EVERY == 0:
                    self.done = self._base + raw.tell()
                    self._report()
        except InputError as exc:
            self._refuse(index, number + 1, [str(exc)])

    def _records(self, index: int, content: IO[bytes]) -> Iterator[bytes]:
        try:
            found = cloudtrail.records(parse_line(read_document(content)))
        except EventError as exc:
            self._refuse(index, None, [str(p) for p in exc.problems])
            return
        for position, record in enumerate(found):
            self._line += 1
            self.records += 1
            yield self._mapped(index, position, record, cloudtrail.map_record)

    def _mapped(
        self,
        index: int,
        place: int,
        record: bytes | object,
        mapping: Callable[..., dict[str, Any] | None],
        **options: Any,
    ) -> bytes:
        """One stream line: the mapped event, or empty for a record skipped or refused."""
        try:
            value = parse_line(record) if isinstance(record, bytes) else record
            event = mapping(value, **options)
        except EventError as exc:
            self._refuse(index, place, [str(p) for p in exc.problems])
            return b"\n"
        if event is None:
            self.skipped += 1
            return b"\n"
        # ASCII: a lone surrogate in the source must reach the validator, which names
        # it, rather than fail the encoding here.
        return json.dumps(event, separators=(",", ":")).encode("ascii") + b"\n"

    def _refuse(self, index: int, place: int | None, errors: list[str]) -> None:
        self.malformed += 1
        self._malformed.write(json.dumps([index, place, errors]) + "\n")

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self)

    # -- rejections -----------------------------------------------------------------------

    def _rejection(self, index: int, place: int | None, errors: list[str]) -> _Rejection:
        key = "record" if self.format == "cloudtrail" else "line"
        shown = {"file": str(self.files[index].path), key: place, "errors": errors}
        return (index, -1 if place is None else place), shown

    def refused(self) -> Iterator[_Rejection]:
        """The rejections made while reading, in file order (once the stream is read)."""
        self._malformed.seek(0)
        for text in self._malformed:
            index, place, errors = json.loads(text)
            yield self._rejection(index, place, errors)

    def translated(self, lines: Iterator[tuple[int, list[str]]]) -> Iterator[_Rejection]:
        """Rejections of stream lines, at their file and line (or CloudTrail record)."""
        for line, errors in lines:
            index = bisect.bisect_left(self._starts, line) - 1
            place = line - self._starts[index]
            yield self._rejection(index, place - 1 if self.format == "cloudtrail" else place,
                                  errors)  # fmt: skip


class Summary:
    """What an import did: the counts ``glasslog ingest`` prints, the records skipped,
    and every rejection at its file and line, in file order."""

    def __init__(
        self,
        importer: Importer,
        *,
        accepted: int,
        duplicates: int,
        rejected: int,
        rejections: Iterator[tuple[int, list[str]]],
    ) -> None:
        self.accepted = accepted
        self.duplicates = duplicates
        self.skipped = importer.skipped
        self.rejected = rejected + importer.malformed
        self._importer = importer
        self._theirs = rejections

    def rejections(self) -> Iterator[dict[str, Any]]:
        """``{"file", "line" | "record", "errors"}`` each; read once, from temporary files."""
        merged = heapq.merge(
            self._importer.refused(),
            self._importer.translated(self._theirs),
            key=lambda r: r[0],
        )
        for _, shown in merged:
            yield shown

    def write_json(self, out: IO[str]) -> None:
        """``{"accepted", "duplicates", "skipped", "rejected": [...]}``, streamed to ``out``."""
        out.write(f'{{"accepted": {self.accepted}, "duplicates": {self.duplicates}, '
                  f'"skipped": {self.skipped}, "rejected": [')  # fmt: skip
        for n, shown in enumerate(self.rejections()):
            out.write(("," if n else "") + json.dumps(shown, ensure_ascii=False))
        out.write("]}\n")
        out.flush()


def import_local(
    importer: Importer,
    datadir: DataDir,
    *,
    store: str | None = None,
    settings: Settings | None = None,
    workers: int = 1,
    waiting: Callable[[], object] | None = None,
) -> Summary:
    """Import into the local log through the ``glasslog ingest`` pipeline
    (:func:`~glasslog.ingest.bulk.ingest_lines`): validated, scrubbed, committed, signed.

    Raises :class:`~glasslog.ingest.bulk.Interrupted` on Ctrl-C, as ``ingest`` does.
    """
    rejected = importer.temporary()
    accepted, duplicates, n_rejected = ingest_lines(
        datadir, importer.stream(), settings=settings or Settings(), workers=workers,
        rejected=rejected, store=store, waiting=waiting,
    )  # fmt: skip
    rejected.seek(0)
    return Summary(importer, accepted=accepted, duplicates=duplicates, rejected=n_rejected,
                   rejections=_fragments(rejected))  # fmt: skip


def import_remote(importer: Importer, remote: Remote) -> Summary:
    """Send to a server in batches, as ``glasslog ingest --url`` does
    (:func:`~glasslog.remote.send_lines`): retried on 429 and 503, idempotent by id."""
    result = send_lines(remote, importer.stream())
    lines = ((int(r["line"]), list(r["errors"])) for r in result["rejected"])
    return Summary(importer, accepted=int(result["accepted"]),
                   duplicates=int(result["duplicates"]), rejected=len(result["rejected"]),
                   rejections=lines)  # fmt: skip


def _fragments(text: IO[str]) -> Iterator[tuple[int, list[str]]]:
    """The ``{"line", "errors"}`` objects that ``ingest_lines`` streamed, comma-separated,
    to ``text``; read in blocks, so a file of many rejections is never held whole."""
    decoder = json.JSONDecoder()
    buffer = ""
    while True:
        block = text.read(1 << 16)
        buffer += block
        position = 0
        while True:
            while position < len(buffer) and buffer[position] in ", \n":
                position += 1
            try:
                value, position = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                break  # an object cut by the block's end: read on
            yield int(value["line"]), list(value["errors"])
        buffer = buffer[position:]
        if not block:
            return


def _too_long() -> str:
    return (f"$: the line has more than {MAX_RECORD_BYTES:,} bytes, more than an import "
            "reads at once; it was skipped")  # fmt: skip


class _Lines(io.RawIOBase):
    """The bytes of an iterator of lines, as a readable raw stream (no file behind it)."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._lines)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
