"""Reading an import's files within bounds (glasslog.importers.inputs)."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pytest

from glasslog.errors import InputError
from glasslog.importers.inputs import find_files, opened, read_document, read_lines


def test_a_line_over_the_bound_is_skipped_and_the_next_read() -> None:
    """A long line is reported (None) without being held; the lines after it are read."""
    stream = io.BytesIO(b"short\n" + b"x" * 5000 + b"\nafter\nlast")
    assert list(read_lines(stream, max_bytes=100)) == [
        (1, b"short\n"), (2, None), (3, b"after\n"), (4, b"last"),
    ]  # fmt: skip


def test_a_document_over_the_bound_is_refused_unread() -> None:
    """A CloudTrail file bigger than an import loads at once is a clear error."""
    with pytest.raises(InputError, match=r"more than 1,000 bytes \(after decompression\)"):
        read_document(io.BytesIO(b"{" + b" " * 2000 + b"}"), max_bytes=1000)
    assert read_document(io.BytesIO(b"{}"), max_bytes=1000) == b"{}"


def test_a_truncated_gzip_file_names_the_line_it_stopped_at(tmp_path: Path) -> None:
    """A gzip file cut short reads up to the cut, then says it is truncated."""
    whole = gzip.compress(b"".join(b"line %d\n" % i for i in range(20_000)))
    path = tmp_path / "cut.log.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with opened(path) as (content, _), pytest.raises(InputError, match="truncated") as caught:
        for _ in read_lines(content):
            pass
    assert "at line" in str(caught.value)


def test_directories_are_walked_in_order_for_the_format_s_files(tmp_path: Path) -> None:
    """Sorted, matching suffixes only (gzip'd too), skipped directories left out; a file
    named on the command line is read whatever its name."""
    for name in ("b/2.json.gz", "b/1.json", "a/3.json", "a/notes.txt", "CloudTrail-Digest/d.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    suffixes = (".json", ".json.gz")
    skip = frozenset({"CloudTrail-Digest"})
    found = find_files([tmp_path, tmp_path / "a" / "notes.txt"], suffixes=suffixes, skip_dirs=skip)
    assert [f.path.relative_to(tmp_path).as_posix() for f in found] == [
        "a/3.json", "b/1.json", "b/2.json.gz", "a/notes.txt",
    ]  # fmt: skip


def test_a_path_that_is_not_a_file_is_an_error_before_anything_is_read(tmp_path: Path) -> None:
    """A named pipe (or device) is refused at once, naming it: an import reads files."""
    fifo = tmp_path / "audit.log"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"audit.log: not a regular file"):
        find_files([tmp_path / "missing.log", fifo][1:], suffixes=(".log",))
    with pytest.raises(InputError, match=r"missing.log: no such file or directory"):
        find_files([tmp_path / "missing.log", fifo], suffixes=(".log",))
