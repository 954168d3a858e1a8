"""The line-length cap of ``glasslog ingest`` (``[ingest] max_line_bytes``): a line over it
is rejected while it is read, without ever being held whole (issue 9, section 4)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.ingest.conftest import CliLog, line, rejected

HUGE = 200 * 2**20
"""Bytes in the huge line's reason: a line this long used to take over 600 MB of memory
before it was rejected."""

PEAK_LIMIT = 150 * 2**20
"""Peak resident memory allowed to the whole process tree (parent and workers) on the
huge line; about 85 MB were measured, against 1.2 GB before the cap."""


def _huge_line() -> Iterator[bytes]:
    """A valid-looking event whose reason is HUGE bytes long, in 1 MiB pieces."""
    yield line(reason="@").split(b'"@"')[0] + b'"'
    piece = b"a" * 2**20
    for _ in range(HUGE // len(piece)):
        yield piece
    yield b'"}\n'


class _Peak:
    """Samples the resident memory of a process and all its descendants, summed."""

    def __init__(self, pid: int) -> None:
        self.bytes = 0
        self._process = psutil.Process(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            try:
                tree = [self._process, *self._process.children(recursive=True)]
                self.bytes = max(self.bytes, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass  # a worker that just exited
            time.sleep(0.005)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.bytes


def _ingest_measured(log: CliLog, chunks: Iterator[bytes], *source: str) -> tuple[str, int]:
    """Run ``glasslog ingest SOURCE`` (stdin when ``chunks`` is given), with workers;
    return its stdout and the peak resident memory of its process tree."""
    process = subprocess.Popen(
        [sys.executable, "-m", "glasslog", "ingest", *source, "--data", str(log.data),
         *log.store, "--workers", "2", "--batch-size", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    peak = _Peak(process.pid)
    assert process.stdin is not None and process.stdout is not None
    for chunk in chunks:
        process.stdin.write(chunk)
    process.stdin.close()
    out = process.stdout.read().decode()
    process.wait(timeout=300)
    used = peak.stop()
    assert process.returncode == 2, process.stderr.read() if process.stderr else ""
    return out, used


def _around(huge: Iterator[bytes]) -> Iterator[bytes]:
    yield line(reason="before") + line(reason="just before")
    yield from huge
    yield line(reason="just after") + line(reason="after")


def _expect_huge_skipped(log: CliLog, out: str) -> None:
    summary = json.loads(out)
    size = len(line(reason="")) - 1 + HUGE  # the line without its newline
    assert rejected(summary) == {
        3: [
            f"$: the line has {size:,} bytes, over the 1,048,576 that are read (max_line_bytes "
            "in the [ingest] section of glasslog.toml); it was skipped: send one event per line"
        ]
    }
    assert summary["accepted"] == 4
    assert log.verified() == (4, 4)


def test_a_200_mb_line_is_skipped_in_bounded_memory(cli_log: CliLog) -> None:
    """A 200 MB line piped in is rejected with its number and the cap while the process
    tree stays under 150 MB; the lines around it are stored and signed."""
    out, peak = _ingest_measured(cli_log, _around(_huge_line()), "-")
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.0f} MiB"
    _expect_huge_skipped(cli_log, out)


def test_the_cap_applies_to_the_decompressed_line_of_gzip_input(
    cli_log: CliLog, tmp_path: Path
) -> None:
    """In gzip input a line that inflates to 200 MB is skipped in bounded memory too."""
    compressed = tmp_path / "huge.jsonl.gz"
    with gzip.open(compressed, "wb", compresslevel=1) as f:
        for chunk in _around(_huge_line()):
            f.write(chunk)
    assert compressed.stat().st_size < 2 * 2**20
    out, peak = _ingest_measured(cli_log, iter(()), str(compressed))
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.0f} MiB"
    _expect_huge_skipped(cli_log, out)


def _padded(length: int, n: int) -> bytes:
    """Event number ``n`` as a line of exactly ``length`` bytes before its newline."""
    bare = line(reason="", metadata={"n": n})
    return line(reason="x" * (length - len(bare) + 1), metadata={"n": n})


@pytest.mark.parametrize("compressed", [False, True])
def test_the_cap_is_configurable_and_exact(cli_log: CliLog, compressed: bool) -> None:
    """With max_line_bytes = 1024 a line of 1,024 bytes is read and one of 1,025 is not,
    whatever its line ending and whether or not it ends the input; line numbers count
    the blank lines in between."""
    (cli_log.data / "glasslog.toml").write_text("[ingest]\nmax_line_bytes = 1024\n")
    lines = [
        _padded(1024, 1),
        _padded(1025, 2),
        b"\n  \n",  # lines 3 and 4
        _padded(1023, 3)[:-1] + b"\r\n",  # 1,023 bytes and a CR: within
        _padded(1025, 4),
        _padded(3000, 5),
        _padded(1024, 6),
        _padded(1025, 7)[:-1],  # line 9 ends the input without a newline
    ]
    assert len(lines[0]) == 1025 and len(lines[1]) == 1026
    data = b"".join(lines)
    summary, _ = cli_log.ingest(gzip.compress(data) if compressed else data)
    found = rejected(summary)
    assert sorted(found) == [2, 6, 7, 9]
    assert found[2] == [
        "$: the line has 1,025 bytes, over the 1,024 that are read (max_line_bytes in the "
        "[ingest] section of glasslog.toml); it was skipped: send one event per line"
    ]
    assert found[7][0].startswith("$: the line has 3,000 bytes, over the 1,024 that are read")
    assert summary["accepted"] == 3
    assert cli_log.verified() == (3, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_line_bytes = true", "ingest.max_line_bytes: expected an integer, got a boolean"),
        ("max_line_bytes = '1MB'", "ingest.max_line_bytes: expected an integer, got a string"),
        ("max_line_bytes = 1.5", "ingest.max_line_bytes: expected an integer, got a float"),
        ("max_line_bytes = 100", "ingest.max_line_bytes: must be from 1,024 to 1,073,741,824"),
        (
            "max_line_bytes = 2147483648",
            "ingest.max_line_bytes: must be from 1,024 to 1,073,741,824, got 2,147,483,648",
        ),
        ("max_lines = 5", "ingest.max_lines: unknown key; the keys here are: max_line_bytes"),
    ],
)
def test_a_bad_ingest_setting_is_one_line_and_stores_nothing(
    tmp_path: Path, text: str, message: str
) -> None:
    """A wrong [ingest] value stops ingest with one line naming file and key (exit 1)."""
    log = CliLog(tmp_path / "log")
    assert log.run("init", "--origin", "test.example/cap").returncode == 0
    config = log.data / "glasslog.toml"
    config.write_text(f"[ingest]\n{text}\n")
    result = log.run("ingest", "-", stdin=line())
    assert result.returncode == 1
    assert result.stderr.startswith(f"glasslog: error: {config}: {message}")
    assert result.stderr.count("\n") == 1
    assert log.verified() == (0, 0)
