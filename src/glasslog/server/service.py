"""What a running server holds: the log, the policy, the writer, the auditor, the limits.

Reads run on the web framework's worker threads, each with its own connection to the
store (a SQLite connection belongs to one thread). Writes go through the one
:class:`~glasslog.server.writer.WriteQueue`. Every principal's read is audited by one
shared :class:`~glasslog.access.audit.Auditor`, whose batches go to the writer.

The policy is read again when its file changes, so a role taken away takes effect
without a restart. A policy that no longer validates is not applied: the server keeps
the last valid one and logs the problems, rather than serving with no policy or
with half of one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glasslog.access.audit import Auditor
from glasslog.access.enforce import Decoded, Principal, Reader, decode
from glasslog.access.oidc import OIDCVerifier
from glasslog.access.policy import Policy, PolicyError, load_policy
from glasslog.access.principals import identify
from glasslog.datadir import DataDir
from glasslog.ingest.pipeline import Preparer, Receipt, Sequencer, Settings
from glasslog.log import Log
from glasslog.server.body import events_of
from glasslog.server.limits import RateLimiter
from glasslog.server.metrics import Metrics
from glasslog.server.prepare import Outcome, init_worker, prepare_body
from glasslog.server.syslog import SyslogReceiver, load_mapping
from glasslog.server.tail import TailHub
from glasslog.server.witnessing import Witnessing
from glasslog.server.writer import WriteQueue, WriterStopped
from glasslog.store import open_store
from glasslog.workers import worker_pool

__all__ = ["Service", "ServiceConfig"]

log = logging.getLogger("glasslog.server")

WRITER_CACHE_MIB = 8
"""The writer connection's SQLite page cache. ``glasslog ingest`` uses 64 MiB, but a
server holds reader connections and request bodies beside it: at 8 MiB its ingest
rate measured the same (bench/http.py) and the process held 58 MB less."""


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """How ``glasslog serve`` was asked to run."""

    data: Path
    store: str | None = None
    policy: Path | None = None
    rate: float = 50.0
    """Requests per second per principal, on average."""
    burst: int = 200
    """Requests a principal may make at once before the rate applies."""
    failed_sign_ins: int = 20
    """Failed sign-ins one client address may make at once; then one a second."""
    read_threads: int = 16
    """Threads serving reads at once (each with its own store connection)."""
    prepare_workers: int = 2
    """Worker processes that parse and prepare request bodies (0: in the writer thread)."""
    queue_capacity: int = 20_000
    """Events waiting to be written before writes are answered 503."""
    checkpoint_interval: float = 1.0
    """Seconds an event may wait for a signed checkpoint."""
    tail_heartbeat: float = 15.0
    """Seconds between heartbeats of an idle live tail."""
    tail_stall: float = 30.0
    """Seconds a live-tail client may take to accept one event before it is dropped."""
    syslog: tuple[str, ...] = ()
    """Syslog listeners, as ``udp://HOST:PORT`` or ``tcp://HOST:PORT``."""
    syslog_allow: tuple[str, ...] = ()
    """Networks syslog senders may send from (none given: loopback only)."""
    syslog_map: Path | None = None
    """The syslog mapping file (services syslog may write, keys to fields)."""


class Service:
    """The server's state; :meth:`start` before serving, :meth:`stop` after."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.datadir = DataDir(config.data)
        self.datadir.require()
        self.spec = self.datadir.store_spec(config.store)
        settings_file = self.datadir.config()
        self._committed = settings_file.ledger.commit
        self.policy_path = config.policy or self.datadir.policy_file
        self._policy = load_policy(self.policy_path, committed=self._committed)
        self._policy_stamp = self._stamp()
        self._oidc = OIDCVerifier(self._policy.oidc) if self._policy.oidc else None
        self._policy_lock = threading.Lock()
        self._local = threading.local()
        self._logs: dict[threading.Thread, Log] = {}
        """Every thread's open log, so that :meth:`stop` and the sweep can close it."""
        self._logs_lock = threading.Lock()
        self.metrics = Metrics()
        self.limiter = RateLimiter(config.rate, config.burst)
        self.failures = RateLimiter(rate=1.0, burst=config.failed_sign_ins)
        """Failed sign-ins per client address: a burst, then one a second."""
        settings = Settings(
            scrub=settings_file.scrub,
            sensitive=(*Settings().sensitive, *self._committed),
            checkpoint_interval=config.checkpoint_interval,
        )
        self.preparer = Preparer(fingerprint_key=self.datadir.fingerprint_key(), settings=settings)
        self._settings = settings
        self.writer = WriteQueue(
            self._open_sequencer,
            self.preparer,
            capacity=config.queue_capacity,
            on_tick=self._tick,
            on_batch=self.metrics.batch_written,
            on_commit=self._committed_to,
        )
        self.auditor = Auditor(self._write_audit, batch=100)
        self.hub = TailHub(self._tree_size, self._parsed_events)
        self.witnessing = Witnessing(  # self.log() is per thread: called in the witnesses'
            lambda: self.policy().witnesses,
            lambda: self.log().store.latest_checkpoint(),  # noqa: PLW0108
            lambda old, new: self.log().consistency(old, new)["proof"],
        )
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.syslog: SyslogReceiver | None = None
        if config.syslog:  # checked now, so that a bad address is an error before serving
            self.syslog = SyslogReceiver(
                config.syslog, allow=config.syslog_allow, mapping=load_mapping(config.syslog_map),
                submit=self.write, count=self.metrics.syslog_message,
            )  # fmt: skip

    # -- life ---------------------------------------------------------------------

    def start(self) -> None:
        self.writer.start()
        self.metrics.bind(self)
        if self.syslog is not None:
            try:
                self.syslog.start()
            except Exception:
                self.writer.stop()
                raise
        if self.config.prepare_workers > 0:
            self._pool = self._new_pool()
        self.witnessing.start()

    def _new_pool(self) -> ProcessPoolExecutor:
        # Started from the thread that runs the app, which lives as long as the server:
        # the workers are told to die with it (glasslog.workers).
        return worker_pool(
            self.config.prepare_workers,
            initializer=init_worker,
            initargs=(self.datadir.fingerprint_key(), self._settings),
        )

    async def prepare(
        self,
        body: bytes,
        services: list[tuple[str, ...]],
        parse: Callable[[bytes], list[object]] = events_of,
    ) -> Outcome | None:
        """A request body parsed (by ``parse``) and prepared in a worker process; None
        without workers.

        A pool whose worker died (the OOM killer) is replaced once, and the body
        prepared again: nothing of it was written yet.
        """
        pool = self._pool
        if pool is None:
            return None
        try:
            return await asyncio.wrap_future(pool.submit(prepare_body, body, services, parse))
        except BrokenProcessPool:
            log.error("a worker preparing events died; starting new ones")
            with self._pool_lock:
                if self._pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
                fresh = self._pool
        if fresh is None:
            raise WriterStopped("the server is stopping; try another node")
        return await asyncio.wrap_future(fresh.submit(prepare_body, body, services, parse))

    def stop(self) -> None:
        """Record the reads not yet recorded, write what is queued, sign, close."""
        self.witnessing.stop()
        if self.syslog is not None:
            self.syslog.stop()  # first: what the listeners handed on is then written
        try:
            self.auditor.flush()
        except Exception:
            log.exception("could not hand the last audit.read events to the writer")
        self.writer.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._logs_lock:
            opened = list(self._logs.values())
            self._logs.clear()
        _close(opened)

    def _open_sequencer(self) -> Sequencer:
        return Sequencer(
            open_store(self.spec, cache_mib=WRITER_CACHE_MIB),
            self.datadir.signer(),
            settings=self._settings,
            datadir=self.datadir,
            writer_lock=self.datadir.writer_lock,
        )

    def _tick(self) -> None:
        self.auditor.flush()

    def _committed_to(self, size: int) -> None:
        """After each commit of this node's writer: wake the live tails at once."""
        self.hub.committed(size)

    def _write_audit(self, events: list[dict[str, Any]]) -> None:
        future = self.writer.submit(list(events), priority=True)
        future.add_done_callback(_report_lost_audit)

    # -- per request ----------------------------------------------------------------

    def log(self) -> Log:
        """This thread's connection to the log.

        The web framework's worker threads come and go (an idle one ends after a few
        seconds, and a burst of requests starts new ones), so each new thread first
        closes the connections of the threads that have ended. Otherwise every burst
        would leave its connections open for good, and nodes sharing one PostgreSQL
        would use up its ``max_connections``.
        """
        opened: Log | None = getattr(self._local, "log", None)
        if opened is None:
            opened = Log(self.datadir, open_store(self.spec, readonly=True))
            self._local.log = opened
            with self._logs_lock:
                ended = [t for t in self._logs if not t.is_alive()]
                stale = [self._logs.pop(t) for t in ended]
                self._logs[threading.current_thread()] = opened
            _close(stale)
        return opened

    def _tree_size(self) -> int:
        """The store's size, through the calling thread's connection (the tail polls it)."""
        return self.log().store.size()

    def _parsed_events(self, start: int, end: int) -> list[Decoded]:
        """The stored events of [start, end), parsed (the tail hub reads each step once)."""
        return decode(self.log().store.events(start, end))

    def policy(self) -> Policy:
        """The policy in force: re-read when its file changed, kept when the change is invalid."""
        stamp = self._stamp()
        if stamp != self._policy_stamp:
            with self._policy_lock:
                if stamp != self._policy_stamp:
                    self._reload(stamp)
        return self._policy

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.policy_path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        try:
            fresh = load_policy(self.policy_path, committed=self._committed)
        except PolicyError as exc:
            log.error("the policy changed but is invalid; keeping the previous one: %s", exc)
            self._policy_stamp = stamp
            return
        self._policy = fresh
        self._oidc = OIDCVerifier(fresh.oidc) if fresh.oidc else None
        self._policy_stamp = stamp
        log.info("policy reloaded from %s: roles %s", self.policy_path, ", ".join(fresh.roles))

    def identify(self, credential: str) -> Principal:
        """The principal a bearer credential stands for (AuthError otherwise)."""
        policy = self.policy()
        return identify(self.log().store, policy, credential, oidc=self._oidc)

    def reader(self, principal: Principal) -> Reader:
        return Reader(self.log(), principal, auditor=self.auditor)

    def write(self, events: list[object]) -> Future[list[Receipt]]:
        return self.writer.submit(events)


def _close(logs: list[Log]) -> None:
    for opened in logs:
        try:
            opened.close()
        except Exception:
            log.debug("closing a reader's connection failed", exc_info=True)


def _report_lost_audit(future: Future[list[Receipt]]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("audit.read events could not be written: %s", exc)
        return
    refused = [r for r in future.result() if not r.ok]
    if refused:
        log.error("audit.read events were refused: %s", refused[0].problems)
