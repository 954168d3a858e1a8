"""How ``verify_store`` reads the events it recomputes."""

from __future__ import annotations

import threading

import pytest

import glasslog.verify
from glasslog.store import open_store
from glasslog.testing import TemporaryLog
from tests.conftest import make_event


@pytest.mark.parametrize("workers", [1, 2])
def test_leaves_are_read_up_to_the_size_verify_started_with(
    tlog: TemporaryLog, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Rows appended after verify read the size (by a live writer) are not read as the tree's."""
    monkeypatch.setattr(glasslog.verify, "CHUNK", 100)  # several chunks from a small log
    tlog.submit([make_event() for _ in range(300)])
    store = open_store(tlog.spec, readonly=True)
    try:
        chunks = list(glasslog.verify._chunks(tlog.spec, store, 250, workers))
    finally:
        store.close()
    assert [start for start, _ in chunks] == [0, 100, 200]
    assert [seq for _, chunk in chunks for seq in chunk.seqs] == list(range(250))


def test_verify_beside_a_writer_sees_one_moment(
    tlog: TemporaryLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rollups, seq_blocks and the field index grow while verify runs; it still passes.

    verify reads its size and the tables that span many events in one snapshot, so
    counters a writer raises meanwhile (for events beyond that size) are not taken for
    tampering.
    """
    monkeypatch.setattr(glasslog.verify, "CHUNK", 64)  # many chunks, so verify takes a while
    tlog.submit([make_event() for _ in range(400)])
    verifier = tlog.datadir.verifier()
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            while not stop.is_set():
                tlog.submit([make_event() for _ in range(50)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        sizes = [
            glasslog.verify.verify_store(tlog.spec, verifier, workers=2).events for _ in range(4)
        ]
    finally:
        stop.set()
        writer.join()
    assert not errors
    assert sizes == sorted(sizes) and sizes[0] >= 400
    assert sizes[-1] > sizes[0], "the writer was not running during the verifies"
