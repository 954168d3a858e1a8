"""Test helpers for glasslog users and for glasslog's own tests.

``temporary_log()`` gives a real, initialised log in a temporary directory — the
same store, keys and pipeline as production, nothing mocked — so tests of code
that writes audit events can assert on what was actually stored and proven.

``capture_events()`` records what the audit client (``glasslog.client``) would send,
as ``structlog.testing.capture_logs`` records log entries, and ``InMemoryClient`` is
a client that keeps its events in a list: for tests of code that logs audit events.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from glasslog.client import _core
from glasslog.config import Config
from glasslog.datadir import DataDir
from glasslog.identity import initialise
from glasslog.ingest.pipeline import Preparer, Receipt, Sequencer, Settings, submit
from glasslog.log import Log
from glasslog.store import open_store
from glasslog.store.base import Store, StoredCheckpoint


@dataclass
class TemporaryLog:
    """A live log: write with :meth:`submit`, read with :attr:`log`."""

    datadir: DataDir
    spec: str
    """The store spec: the SQLite file's path, or the PostgreSQL URL."""
    store: Store
    sequencer: Sequencer
    preparer: Preparer
    log: Log

    @property
    def data(self) -> Path:
        return self.datadir.path

    def submit(self, events: Iterable[dict[str, Any]]) -> list[Receipt]:
        """Validate, scrub, sequence and store ``events`` as one batch."""
        return submit(self.sequencer, self.preparer, events)

    def checkpoint(self) -> StoredCheckpoint:
        return self.sequencer.checkpoint()


@contextmanager
def temporary_log(
    *,
    origin: str = "test.example/log",
    settings: Settings | None = None,
    store: str | None = None,
    config: Config | None = None,
) -> Iterator[TemporaryLog]:
    """A fresh log with its keys in a temporary directory, removed afterwards.

    The events go to an embedded SQLite file there, or with ``store`` (a
    ``postgresql://`` URL of an empty database) to PostgreSQL, whose schema is
    created first; dropping that database afterwards is the caller's part.

    ``config`` is what ``glasslog.toml`` would hold (``glasslog.config.load(path)``
    reads yours), so scrub rules can be tested before they are deployed; it
    replaces the ``scrub`` part of ``settings``.
    """
    settings = settings or Settings(checkpoint_every=1 << 40, checkpoint_interval=1e9)
    if config is not None:
        settings = dataclasses.replace(settings, scrub=config.scrub)
    with tempfile.TemporaryDirectory(prefix="glasslog-") as tmp:
        datadir = DataDir(Path(tmp) / "data")
        signer = initialise(datadir.path, store=store, origin=origin).signer
        spec = datadir.store_spec(store)
        writer = open_store(spec)
        reader = Log(datadir, open_store(spec))
        try:
            with datadir.writer_lock(), writer.lock_writer():
                yield TemporaryLog(
                    datadir=datadir,
                    spec=spec,
                    store=writer,
                    sequencer=Sequencer(writer, signer, settings=settings, datadir=datadir),
                    preparer=Preparer(fingerprint_key=datadir.fingerprint_key(), settings=settings),
                    log=reader,
                )
        finally:
            reader.close()
            writer.close()


class InMemoryClient(_core._Builder):
    """A client with :class:`glasslog.client.Client`'s surface that sends nothing: each
    event, exactly as it would have been sent (JSON round-tripped), is appended to
    :attr:`events`."""

    def __init__(
        self,
        url: str = "memory:",
        key: str = "",
        *,
        service: str = "test",
        environment: str | None = None,
        version: str | None = None,
        host: str | None = None,
        fail_closed: bool = False,
        on_full: Literal["raise", "drop_oldest"] = "raise",
        **ignored: Any,
    ) -> None:
        super().__init__(service=service, environment=environment, version=version, host=host)
        self.url = url
        self.fail_closed = fail_closed
        self.on_full = on_full
        self.events: list[dict[str, Any]] = []
        self.dropped = 0
        self.rejected = 0

    def __repr__(self) -> str:
        return f"InMemoryClient(service={self.service!r}, events={len(self.events)})"

    def _submit(self, event: dict[str, Any], fail_closed: bool | None) -> str:
        payload = _core._encode(event)
        _core._captured(payload)
        self.events.append(json.loads(payload))
        return str(event["id"])

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> None:
        pass

    def __enter__(self) -> InMemoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@contextmanager
def capture_events(*, service: str = "test") -> Iterator[list[dict[str, Any]]]:
    """Collect every event the audit clients log in the block, sending none.

    Events logged through any :class:`~glasslog.client.Client` (the default one, or one
    created inside the block) go into the list as dicts, exactly as they would have
    been sent, and not to the server. When no default client is configured, one that
    only captures (with ``service``) stands in for ``get_client()``, so ``@audited``
    code runs unconfigured.
    """
    events: list[dict[str, Any]] = []
    _core._captures.append(events)
    lent = _core._capture_default is None
    if lent:
        _core._capture_default = _Capturing(service=service)
    try:
        yield events
    finally:
        _core._captures.remove(events)
        if lent:
            _core._capture_default = None


class _Capturing(InMemoryClient):
    """The stand-in default client of :func:`capture_events`: its events go only there."""

    def _submit(self, event: dict[str, Any], fail_closed: bool | None) -> str:
        _core._captured(_core._encode(event))
        return str(event["id"])
