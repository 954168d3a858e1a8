"""Test helpers for glasslog users and for glasslog's own tests.

``temporary_log()`` gives a real, initialised log in a temporary directory — the
same store, keys and pipeline as production, nothing mocked — so tests of code
that writes audit events can assert on what was actually stored and proven.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
