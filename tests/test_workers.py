"""Worker processes die with their parent, never keep the writer lock, and ignore Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from glasslog.datadir import DataDir
from glasslog.demo import write_jsonl
from glasslog.ingest.pipeline import Settings
from glasslog.server.prepare import init_worker
from glasslog.workers import worker_pool
from tests.processes import (
    children,
    left_behind,
    lock_is_free,
    sqlite_events,
    start,
    still_running,
    wait_for_events,
)

EVENTS = 20_000  # more than one verify chunk (16,384), so verify uses its pool too


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data directory holding EVENTS events, and a file of EVENTS more not ingested yet."""
    root = tmp_path_factory.mktemp("workers")
    data, first, more = root / "log", root / "first.jsonl", root / "more.jsonl"
    write_jsonl(first, EVENTS, seed=5)
    write_jsonl(more, EVENTS, seed=6)
    for args in (["init"], ["ingest", str(first)]):
        done = subprocess.run(
            [sys.executable, "-m", "glasslog", *args, "--data", str(data)],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    return data, more


def _kill_parent(process: subprocess.Popen[bytes]) -> None:
    """``kill -9`` of the PID alone, as the OOM killer or an operator does."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.slow
def test_kill_9_of_ingest_ends_its_workers_within_2_s_and_frees_the_lock(
    logged: tuple[Path, Path],
) -> None:
    """kill -9 of a writing ingest's PID: its workers exit within 2 s, the lock is free at once."""
    data, more = logged
    mark = uuid.uuid4().hex
    before = sqlite_events(data / "glasslog.db")
    ingest = start(
        "ingest", str(more), "--data", str(data), "--batch-size", "500", "--workers", "2",
        mark=mark, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    workers = children(ingest, 2, within=60)
    wait_for_events(lambda: sqlite_events(data / "glasslog.db"), before + 500)
    assert all(w.status() != psutil.STATUS_ZOMBIE for w in workers)
    _kill_parent(ingest)
    assert lock_is_free(data), "a worker kept the writer lock of its dead parent"
    assert still_running(workers, within=2.0) == []
    assert left_behind(mark) == []


@pytest.mark.slow
def test_kill_9_of_verify_ends_its_workers_within_2_s(logged: tuple[Path, Path]) -> None:
    """kill -9 of a running verify's PID: its workers exit within 2 s."""
    data, _ = logged
    mark = uuid.uuid4().hex
    verify = start("verify", "--data", str(data), "--workers", "2", mark=mark,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    workers = children(verify, 2, within=60)
    _kill_parent(verify)
    assert still_running(workers, within=2.0) == []
    assert left_behind(mark) == []


# The two mechanisms, each alone: a middle process forks a child that relies on one of
# them and prints its pid once it is set up; the middle is then killed with SIGKILL.
_ORPHAN = """
import os, sys, time
from glasslog import workers
if os.fork() == 0:
    parent = os.getppid()
    if sys.argv[1] == "deathsig":
        assert workers._set_parent_death_signal()
    print(os.getpid(), flush=True)
    if sys.argv[1] == "watch":
        workers.watch_parent(parent, interval=0.1)
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


@pytest.mark.parametrize("mechanism", ["watch", "deathsig"])
def test_an_orphaned_worker_exits_by_itself(mechanism: str) -> None:
    """Each mechanism alone (a getppid watch, Linux's PR_SET_PDEATHSIG) ends an orphan."""
    if mechanism == "deathsig" and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    middle = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, mechanism], stdout=subprocess.PIPE, text=True
    )
    assert middle.stdout is not None
    child = psutil.Process(int(middle.stdout.readline()))
    middle.kill()
    middle.wait(timeout=30)
    middle.stdout.close()
    assert still_running([child], within=1.0) == []


def test_a_child_forked_while_the_lock_is_held_does_not_keep_it(tmp_path: Path) -> None:
    """Once the holder releases the writer lock, it is free even while its forked child lives."""
    data = DataDir(tmp_path / "log")
    data.init_keys(origin="example.com/workers")
    with data.writer_lock():
        child = os.fork()
        if child == 0:  # pragma: no cover - the child only sleeps, then is killed
            time.sleep(60)
            os._exit(0)
    try:
        # The child closes its copy first thing after the fork; on a busy machine it
        # may not have run yet. Without that, it would hold the lock for its 60 s.
        deadline = time.monotonic() + 2.0
        while not lock_is_free(data.path) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lock_is_free(data.path)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def _interrupt_myself() -> str:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.1)  # the signal is handled (or ignored) by now
    return "still here"


def test_workers_ignore_sigint() -> None:
    """A SIGINT delivered to a worker (as Ctrl-C signals the whole group) does not stop it."""
    with worker_pool(2) as pool:
        assert pool.submit(_interrupt_myself).result(timeout=30) == "still here"


def test_a_pool_left_by_an_exception_skips_the_queued_work() -> None:
    """Leaving a pool by an exception waits for the running task only, not for the queue."""

    def give_up() -> None:
        with worker_pool(1) as pool:
            futures = [pool.submit(time.sleep, 0.5) for _ in range(10)]
            futures[0].result(timeout=30)
            raise RuntimeError("gave up")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="gave up"):
        give_up()
    assert time.monotonic() - started < 3.0  # the whole queue would take 5 s


_LOADED = (
    "sorted(m for m in __import__('sys').modules"
    " if m.split('.')[0] in ('_pytest', 'fastapi', 'starlette', 'uvicorn', 'pytest'))"
)
"""Evaluated in a worker: the heavy modules it holds (``eval`` pickles by name)."""


def test_a_spawned_worker_runs_neither_the_main_script_nor_the_web_framework() -> None:
    """A server has threads, so its workers are spawned. They must not import the parent's
    main script again (``glasslog`` would bring the whole command line) nor the web
    framework: each would cost the worker tens of megabytes (docs/benchmarks.md)."""
    main_file = sys.modules["__main__"].__dict__.get("__file__")  # none under pytest-xdist
    busy = threading.Event()
    other = threading.Thread(target=busy.wait, daemon=True)
    other.start()  # a second thread: worker_pool must spawn, not fork
    try:
        pool = worker_pool(1, initializer=init_worker, initargs=(b"k" * 32, Settings()))
        with pool:
            context = pool._mp_context
            assert context is not None and context.get_start_method() == "spawn"
            assert pool.submit(eval, _LOADED).result(timeout=60) == []
            assert pool.submit(eval, "'glasslog.server.prepare' in __import__('sys').modules"
                               ).result(timeout=60)  # fmt: skip
    finally:
        busy.set()
    assert sys.modules["__main__"].__dict__.get("__file__") == main_file, "put back"
