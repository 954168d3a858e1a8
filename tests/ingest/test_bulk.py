"""``glasslog ingest`` as a user meets it: gzip input, Ctrl-C, and progress on a terminal."""

from __future__ import annotations

import gzip
import io
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from glasslog.datadir import DataDir
from glasslog.demo import write_jsonl
from glasslog.ingest.bulk import ingest_lines
from glasslog.ingest.pipeline import Settings
from glasslog.verify import verify_store
from tests.processes import left_behind, sqlite_events, start, wait_for_events


def _glasslog(
    *args: str, data: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "glasslog", *args, "--data", str(data)],
        input=stdin, capture_output=True, check=False, timeout=300,
    )  # fmt: skip
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "log"
    assert _glasslog("init", "--origin", "test.example/bulk", data=d).returncode == 0
    return d


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6,000 realistic events as JSON lines."""
    path = tmp_path_factory.mktemp("bulk") / "events.jsonl"
    write_jsonl(path, 6_000, seed=21)
    return path


def _stored(data: Path) -> tuple[int, int]:
    """(events in the store, events covered by its latest checkpoint), after a full verify."""
    datadir = DataDir(data)
    report = verify_store(datadir.db, datadir.verifier(), workers=1)
    return report.events, report.covered


# -- gzip ---------------------------------------------------------------------------


def test_gzip_input_is_read_as_plain_from_a_file_and_from_stdin(data: Path, events: Path) -> None:
    """A .gz file and gzip on stdin are recognised by their magic bytes and ingested."""
    packed = data.parent / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(events.read_bytes()))
    first = _glasslog("ingest", str(packed), data=data)
    assert first.returncode == 0, first.stderr
    assert '"accepted": 6000' in first.stdout
    again = _glasslog("ingest", "-", data=data, stdin=packed.read_bytes())
    assert again.returncode == 0, again.stderr
    assert '"accepted": 0, "duplicates": 6000' in again.stdout
    assert _stored(data) == (6_000, 6_000)


def test_gzip_without_a_file_descriptor_is_read_too(data: Path, events: Path) -> None:
    """From Python, a gzip stream that cannot peek (io.BytesIO) is recognised as well."""
    stream = io.BytesIO(gzip.compress(events.read_bytes()))
    with tempfile.TemporaryFile("w+") as rejected:
        counts = ingest_lines(
            DataDir(data), stream, settings=Settings(), workers=2, rejected=rejected
        )
    assert counts == (6_000, 0, 0)


def test_a_truncated_gzip_stores_what_came_before_and_says_so(data: Path, events: Path) -> None:
    """A gzip file cut short: one clear line, and the complete lines before the cut are stored."""
    packed = gzip.compress(events.read_bytes())
    cut = data.parent / "cut.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    done = _glasslog("ingest", str(cut), "--batch-size", "500", data=data)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    found = re.search(
        r"the gzip data ends early \(the file is truncated\) while reading line ([\d,]+); "
        r"everything before it was ingested \(([\d,]+) events stored, 0 duplicates, "
        r"0 lines rejected\) and is covered by a signed checkpoint",
        done.stderr,
    )
    assert found, done.stderr
    line, stored = (int(g.replace(",", "")) for g in found.groups())
    assert 0 < stored == line - 1 < 6_000
    assert _stored(data) == (stored, stored)


def test_corrupt_gzip_is_a_clear_error(data: Path, events: Path) -> None:
    """Damaged compressed data: one line naming the damage, no traceback, the store intact."""
    packed = bytearray(gzip.compress(events.read_bytes()))
    middle = len(packed) // 2
    packed[middle : middle + 64] = bytes(64)
    bad = data.parent / "bad.jsonl.gz"
    bad.write_bytes(bytes(packed))
    done = _glasslog("ingest", str(bad), data=data)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "the gzip data is corrupt" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    events_stored, covered = _stored(data)
    assert events_stored == covered


def test_gzip_magic_before_data_that_is_not_gzip_is_a_clear_error(data: Path) -> None:
    """Input that starts like gzip but is not: a clear error saying nothing was stored."""
    done = _glasslog("ingest", "-", data=data, stdin=b"\x1f\x8bnot gzip after all\n")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "the gzip data is corrupt" in done.stderr
    assert done.stderr.rstrip().endswith("nothing was stored")


# -- Ctrl-C -------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_signs_and_says_what_was_stored(
    data: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SIGINT to the process group: no traceback, exit 130, one line, counts as in the store."""
    # Far more than can be stored before the signal arrives, even on a fast, idle machine.
    events = tmp_path_factory.mktemp("ctrl-c") / "events.jsonl"
    write_jsonl(events, 200_000, seed=22)
    mark = uuid.uuid4().hex
    ingest = start(
        "ingest", str(events), "--data", str(data), "--batch-size", "200", mark=mark,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_for_events(lambda: sqlite_events(data / "glasslog.db"), 200)
    os.killpg(ingest.pid, signal.SIGINT)  # as a terminal does: the whole foreground group
    out, err = ingest.communicate(timeout=60)
    text = err.decode()
    assert ingest.returncode == 130, text
    assert out == b""
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert len(text.splitlines()) == 1, text
    found = re.fullmatch(
        r"glasslog: interrupted: ([\d,]+) events stored, 0 duplicates, 0 lines rejected, "
        r"all covered by a signed checkpoint; ingest the same input again to store the rest "
        r"\(what is stored counts as duplicates\)\n",
        text,
    )
    assert found, text
    stored = int(found.group(1).replace(",", ""))
    assert 200 <= stored < 200_000
    assert _stored(data) == (stored, stored)
    assert left_behind(mark) == []


# -- progress -----------------------------------------------------------------------


def _read_terminal(master: int, until: bytes | None = None, *, within: float = 120) -> bytes:
    """What the process wrote to the pseudo-terminal: until ``until`` appears, else to the end."""
    seen = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and (until is None or until not in seen):
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every holder of the terminal's other end has closed it
            break
        if not chunk:
            break
        seen += chunk
    return seen


@pytest.mark.parametrize("source", ["file", "pipe"])
def test_a_progress_bar_is_shown_on_a_terminal(data: Path, events: Path, source: str) -> None:
    """stderr on a terminal: a bar over the file's bytes (a percentage), or a running count."""
    master, terminal = os.openpty()
    # `cat FILE | glasslog ingest -`: a pipe, whose size nobody knows in advance.
    cat = subprocess.Popen(["cat", str(events)], stdout=subprocess.PIPE)
    assert cat.stdout is not None
    try:
        ingest = subprocess.Popen(
            [sys.executable, "-m", "glasslog", "ingest", "-" if source == "pipe" else str(events),
             "--data", str(data), "--batch-size", "500"],
            stdin=cat.stdout if source == "pipe" else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=terminal,
        )  # fmt: skip
        os.close(terminal)
        cat.stdout.close()
        shown = _read_terminal(master)
        out, _ = ingest.communicate(timeout=120)
    finally:
        os.close(master)
        cat.kill()  # unread when the input is the file itself
        cat.wait(timeout=60)
    assert ingest.returncode == 0, shown
    assert b'"accepted": 6000' in out
    assert b"ingesting" in shown
    assert b"6,000 events" in shown
    assert (b"100%" in shown) == (source == "file")


def test_nothing_extra_is_printed_when_stderr_is_not_a_terminal(data: Path, events: Path) -> None:
    """stderr to a pipe or file: no bar, no count, nothing but what a script expects."""
    done = _glasslog("ingest", str(events), "--batch-size", "500", data=data)
    assert done.returncode == 0
    assert done.stderr == ""


@pytest.mark.parametrize("terminal", [True, False])
def test_waiting_for_another_writer_is_shown_on_a_terminal_only(
    data: Path, events: Path, terminal: bool
) -> None:
    """While another process holds the writer lock: one line on a terminal, silence otherwise."""
    master, tty = os.openpty()
    stderr = tty if terminal else subprocess.PIPE
    try:
        with DataDir(data).writer_lock():
            ingest = subprocess.Popen(
                [sys.executable, "-m", "glasslog", "ingest", str(events), "--data", str(data)],
                stdout=subprocess.PIPE, stderr=stderr,
            )  # fmt: skip
            os.close(tty)
            if terminal:
                shown = _read_terminal(master, until=b"\n")
            else:  # wait until it is waiting: it has opened the lock file
                lock = str(data / "writer.lock")
                deadline = time.monotonic() + 60
                while not any(f.path == lock for f in psutil.Process(ingest.pid).open_files()):
                    assert time.monotonic() < deadline, "ingest never tried to take the lock"
                    time.sleep(0.02)
                time.sleep(0.2)
        out, err = ingest.communicate(timeout=120)
        if terminal:
            shown += _read_terminal(master)
    finally:
        os.close(master)
    assert ingest.returncode == 0
    assert b'"accepted": 6000' in out
    message = f"waiting for another glasslog process writing to {data}…".encode()
    if terminal:
        assert shown.startswith(message), shown
    else:
        assert err == b""
