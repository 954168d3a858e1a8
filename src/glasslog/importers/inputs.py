"""The files an import reads: paths expanded into files, gzip recognised by its magic
bytes (RFC 1952), lines and whole documents read within a bound.

Every path named on the command line is checked before anything is read, so a typo or
a file without read permission is one clear error and nothing is imported. Problems
found while reading (a truncated gzip file, a line over the bound) are the caller's to
report by file and line: they never stop the other files.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Final, cast

from glasslog.errors import InputError
from glasslog.ingest.bulk import GZIP_MAGIC

MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
"""The most an import holds in memory at once: one line of a JSON-lines file, or one
whole CloudTrail file (counted after decompression). CloudTrail delivers a file every
few minutes, kilobytes to a few megabytes each; a bigger one is refused, not loaded."""

_SKIP_PIECE: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class InputFile:
    """One file to read, as the user will see it named in the summary."""

    path: Path
    size: int


def find_files(
    paths: Sequence[Path], *, suffixes: tuple[str, ...], skip_dirs: frozenset[str] = frozenset()
) -> list[InputFile]:
    """The files to read: each named file as it is, whatever its name, and in each named
    directory every file whose name ends with one of ``suffixes``, walked in sorted order
    (directories named in ``skip_dirs`` are left out).

    Raises :class:`InputError` for a path that does not exist, a file that cannot be
    read, or a directory that holds no file to read.
    """
    found: list[InputFile] = []
    for path in paths:
        if path.is_dir():
            inside = list(_walk(path, suffixes, skip_dirs))
            if not inside:
                wanted = ", ".join(f"*{s}" for s in suffixes)
                raise InputError(f"{path}: the directory holds no {wanted} file; nothing was "
                                 "imported. Is --format right?")  # fmt: skip
            found += inside
        elif path.exists():
            found.append(_readable(path))
        else:
            raise InputError(f"{path}: no such file or directory; nothing was imported")
    return found


def _walk(root: Path, suffixes: tuple[str, ...], skip_dirs: frozenset[str]) -> Iterator[InputFile]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            if name.endswith(suffixes):
                yield _readable(Path(directory, name))


def _readable(path: Path) -> InputFile:
    if not path.is_file():
        raise InputError(f"{path}: not a regular file; name files or directories")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied (the file cannot be read); nothing "
                         "was imported")  # fmt: skip
    return InputFile(path, path.stat().st_size)


@contextmanager
def opened(path: Path) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """``(content, raw)``: the file's content, inflated when it starts with gzip's magic
    bytes whatever its name, and the raw file (whose ``tell()`` is the progress)."""
    with open(path, "rb") as raw:
        if raw.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)] == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as inflated:
                yield cast(IO[bytes], inflated), raw
        else:
            yield raw, raw


def read_lines(
    stream: IO[bytes], *, max_bytes: int = MAX_RECORD_BYTES
) -> Iterator[tuple[int, bytes | None]]:
    """``(number, line)`` for each line, numbered from 1; ``line`` is None for a line
    longer than ``max_bytes``, which is skipped to its newline in bounded pieces.

    Raises :class:`InputError` when the file cannot be read to its end.
    """
    number = 0
    readline = partial(stream.readline, max_bytes + 1)
    try:
        for number, line in enumerate(iter(readline, b""), 1):
            if len(line) > max_bytes and line[-1:] != b"\n":
                while (piece := stream.readline(_SKIP_PIECE)) and piece[-1:] != b"\n":
                    pass
                yield number, None
            else:
                yield number, line
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"{reading_failed(exc)} at line {number + 1:,}") from None


def read_document(stream: IO[bytes], *, max_bytes: int = MAX_RECORD_BYTES) -> bytes:
    """The whole content of a file that is one JSON document, at most ``max_bytes``."""
    try:
        data = stream.read(max_bytes + 1)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(reading_failed(exc)) from None
    if len(data) > max_bytes:
        raise InputError(
            f"the file has more than {max_bytes:,} bytes (after decompression), more than "
            "an import reads at once; split its Records into smaller files"
        )
    return data


def reading_failed(exc: BaseException) -> str:
    """What went wrong reading a file, in words (for a gzip stream, what is wrong with it)."""
    if isinstance(exc, EOFError):
        return "the gzip data ends early (the file is truncated)"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"the gzip data is corrupt ({exc})"
    if isinstance(exc, OSError):
        return f"reading failed ({exc.strerror or exc})"
    return f"reading failed ({type(exc).__name__})"
