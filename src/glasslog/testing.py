"""Test helpers for glasslog users and for glasslog's own tests.

``temporary_log()`` gives a real, initialised log in a temporary directory — the
same store, keys and pipeline as production, nothing mocked — so tests of code
that writes audit events can assert on what was actually stored and proven.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glasslog.datadir import DataDir
from glasslog.ingest.pipeline import Preparer, Receipt, Sequencer, Settings, submit
from glasslog.log import Log
from glasslog.store.base import StoredCheckpoint
from glasslog.store.sqlite import SQLiteStore


@dataclass
class TemporaryLog:
    """A live log: write with :meth:`submit`, read with :attr:`log`."""

    datadir: DataDir
    store: SQLiteStore
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
    *, origin: str = "test.example/log", settings: Settings | None = None
) -> Iterator[TemporaryLog]:
    """A fresh log in a temporary directory, removed afterwards."""
    settings = settings or Settings(checkpoint_every=1 << 40, checkpoint_interval=1e9)
    with tempfile.TemporaryDirectory(prefix="glasslog-") as tmp:
        datadir = DataDir(Path(tmp) / "data")
        signer, _ = datadir.init_keys(origin=origin)
        store = SQLiteStore.open(datadir.db, create=True)
        reader = Log(datadir, SQLiteStore.open(datadir.db))
        try:
            with datadir.writer_lock():
                yield TemporaryLog(
                    datadir=datadir,
                    store=store,
                    sequencer=Sequencer(store, signer, settings=settings),
                    preparer=Preparer(fingerprint_key=datadir.fingerprint_key(), settings=settings),
                    log=reader,
                )
        finally:
            reader.close()
            store.close()
