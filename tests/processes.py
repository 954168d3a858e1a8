"""Real ``glasslog`` processes for tests, started marked so that whatever they leave behind
(a worker orphaned by ``kill -9``, say) can be found by its environment, wherever it was
reparented to."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

MARK = "GLASSLOG_TEST_MARK"


def start(*args: str, mark: str, **popen: Any) -> subprocess.Popen[bytes]:
    """``glasslog ARGS`` in a session of its own (a process group, as a shell job has)."""
    return subprocess.Popen(
        [sys.executable, "-m", "glasslog", *args],
        env={**os.environ, MARK: mark},
        start_new_session=True,
        **popen,
    )


def running(process: psutil.Process) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init, which may be slow)."""
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def still_running(processes: Iterable[psutil.Process], *, within: float) -> list[psutil.Process]:
    """Those of ``processes`` still running once ``within`` seconds have passed (or none are)."""
    deadline = time.monotonic() + within
    alive = [p for p in processes if running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if running(p)]
    return alive


def left_behind(mark: str) -> list[psutil.Process]:
    """Every running process started with ``mark`` in its environment, or by one that was."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get(MARK) == mark and running(process):
                found.append(process)
    return found


def children(
    process: subprocess.Popen[bytes], count: int, *, within: float
) -> list[psutil.Process]:
    """The first ``count`` children of ``process`` (its workers), once they exist."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = psutil.Process(process.pid).children()
        if len(found) >= count:
            return list(found)
        time.sleep(0.01)
    raise AssertionError(f"process {process.pid} started fewer than {count} worker processes")


def lock_is_free(data: Path) -> bool:
    """Whether another process could take the data directory's writer lock right now."""
    fd = os.open(data / "writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def sqlite_events(db: Path) -> int:
    """How many events the SQLite store holds, read without disturbing its writer."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        (n,) = conn.execute("SELECT count(*) FROM events").fetchone()
    except sqlite3.OperationalError:  # the schema is not created yet
        n = 0
    finally:
        conn.close()
    return int(n)


def wait_for_events(count: Callable[[], int], at_least: int, *, within: float = 120) -> int:
    """Poll ``count()`` until the store holds ``at_least`` events; return how many it holds."""
    deadline = time.monotonic() + within
    while (n := count()) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"the store still holds {n} events, not {at_least}")
        time.sleep(0.02)
    return n
