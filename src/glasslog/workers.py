"""Worker processes: the one place glasslog starts a process pool (ingest and verify).

``glasslog ingest`` prepares events and ``glasslog verify`` recomputes leaves in
worker processes while the parent writes or compares. Every such pool comes from
:func:`worker_pool`, whose workers keep three promises:

* **They die with their parent.** However the parent ends (``kill -9``, the OOM
  killer, a supervisor), its workers exit within a second: on Linux the kernel
  sends them SIGKILL (``prctl(PR_SET_PDEATHSIG)``); everywhere, a thread in each
  worker notices that its parent changed (``getppid()``) and exits.
* **They never hold the writer lock.** Ingest starts them before it takes
  ``writer.lock`` and opens the store, and a forked child closes any writer-lock
  descriptor it inherits at once (:mod:`glasslog.datadir`), so a dead writer's
  lock is free the moment the writer is gone.
* **They ignore SIGINT.** Ctrl-C at a terminal signals the whole foreground process
  group. Only the parent decides what an interrupt means (ingest stops at a batch
  boundary); a worker never prints a ``KeyboardInterrupt`` traceback.

Workers are forked where that is safe (Linux, a single-threaded parent): a pool of
two is ready in about 0.04 s, while ``spawn`` and ``forkserver`` boot interpreters
that import glasslog again, 0.5-0.8 s on a busy 2-core machine (docs/ledger.md). A
parent with other threads (the server) gets ``spawn``, since forking a multi-threaded
process can deadlock the child. A spawned worker does not run the parent's main
script again, as ``multiprocessing`` otherwise does: every task is a function of a
glasslog module, and the ``glasslog`` script would import the whole command line
(web framework, HTTP client) into each worker, about 30 MB apiece for nothing.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.synchronize import Event
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

PARENT_POLL = 0.5
"""Seconds between two checks of the parent by the portable watcher thread."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def worker_pool(
    workers: int,
    *,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, all started before it is returned.

    Create it before taking locks or opening connections that workers must not
    share, and shut it down before the creating thread ends (Linux signals a
    worker when the *thread* that started it exits). ``initializer(*initargs)``
    runs in each worker once it is set up. Leaving the pool's ``with`` block by an
    exception skips the tasks still queued.
    """
    pool = _Pool(workers, initializer, initargs)
    # Start every worker now, with SIGINT blocked: a child inherits the blocked mask
    # (through fork and exec alike), so a Ctrl-C cannot reach a worker before it has
    # set SIGINT to ignored. The parent receives a Ctrl-C pressed meanwhile once the
    # mask is lifted.
    with _sigint_blocked():
        for _ in range(workers):
            pool.submit(_started)
    return pool


class _Pool(ProcessPoolExecutor):
    """A process pool that, left by an exception, skips the work still queued.

    Nobody wants those results once the caller gave up (Ctrl-C, tampering found), so
    each queued task returns at once and the caller waits only for the tasks already
    running. (Killing the workers instead could leave a result half-written in the
    pool's pipe, on which the pool's manager thread would then wait forever.)
    """

    def __init__(
        self, workers: int, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]
    ) -> None:
        context: multiprocessing.context.BaseContext = (
            multiprocessing.get_context("fork") if _start_method() == "fork" else _LeanSpawn()
        )
        self._stopping = context.Event()
        super().__init__(
            workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(os.getpid(), self._stopping, initializer, initargs),
        )

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(_unless_stopping, fn, *args, **kwargs)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        if exc_type is not None:
            self._stopping.set()
        # A KeyboardInterrupt inside shutdown() would leave the pool half shut down:
        # the interpreter's exit then waits forever for workers that were never told
        # to stop. A Ctrl-C pressed meanwhile is raised once the workers are gone.
        with _sigint_blocked():
            self.shutdown(wait=True, cancel_futures=exc_type is not None)
        return None


def _start_method() -> str:
    """``fork`` where it is cheap and safe (Linux, one thread), ``spawn`` elsewhere."""
    if sys.platform == "linux" and threading.active_count() == 1:
        return "fork"
    return "spawn"


class _LeanSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that does not import the parent's ``__main__`` again."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        # multiprocessing tells the child which main module to run from
        # sys.modules["__main__"].__file__, read while the process is being started.
        main = sys.modules["__main__"]
        hidden = main.__dict__.pop("__file__", None)
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            if hidden is not None:
                main.__file__ = hidden


class _LeanSpawn(multiprocessing.context.SpawnContext):
    """The spawn start method, with :class:`_LeanSpawnProcess` processes."""

    Process = _LeanSpawnProcess


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _started() -> None:
    """A no-op task: submitting one per worker makes the pool start them all at once."""


class _Skipped(Exception):
    """A queued task skipped because its pool was left by an exception."""


_stopping: Event | None = None


def _unless_stopping(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """In a worker: run a task, unless its pool has been given up."""
    if _stopping is not None and _stopping.is_set():
        raise _Skipped
    return fn(*args, **kwargs)


def _start_worker(
    parent: int,
    stopping: Event,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
) -> None:
    """First thing in every worker: ignore SIGINT, tie our life to the parent's, then set up."""
    global _stopping  # noqa: PLW0603 - one pool per worker process
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a pending one is dropped
    exit_with_parent(parent)
    _stopping = stopping
    if initializer is not None:
        initializer(*initargs)


def exit_with_parent(parent: int) -> None:
    """Make this process exit as soon as ``parent`` (its parent's pid) is gone."""
    _set_parent_death_signal()
    # The parent may have died before the kernel was told to signal us; then nobody
    # would. Checking afterwards closes that race: we have been reparented.
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(
        target=watch_parent, args=(parent,), name="glasslog-parent-watch", daemon=True
    ).start()


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]
    prctl.restype = ctypes.c_int
    return int(prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)) == 0


def watch_parent(parent: int, interval: float = PARENT_POLL) -> None:
    """Exit the process once its parent is no longer ``parent`` (the portable fallback).

    An orphan is adopted by init or a subreaper, so ``getppid()`` changes when the
    parent dies, on every POSIX system, whatever killed it.
    """
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)
