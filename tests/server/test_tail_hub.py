"""The tail hub's shared step (one read and parse per event for every stream): a unit
test of :meth:`TailHub.step` with a counting reader in place of the store. The same
path runs against real stores and sockets in tests/server/test_tail.py."""

from __future__ import annotations

import threading

import pytest

from glasslog.access.enforce import Decoded
from glasslog.server.tail import WINDOW, TailHub


class Store:
    """Seqs 0..size-1 as parsed events; records every range read."""

    def __init__(self) -> None:
        self.reads: list[tuple[int, int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def read(self, start: int, end: int) -> list[Decoded]:
        self.gate.wait(10)
        self.reads.append((start, end))
        return [Decoded(seq, {"n": seq}, "", b"") for seq in range(start, end)]


def _hub(store: Store) -> TailHub:
    return TailHub(lambda: 0, store.read)


def _seqs(rows: object) -> list[int]:
    assert isinstance(rows, list)
    return [row.seq for row in rows]


def test_streams_at_the_head_share_each_read() -> None:
    store = Store()
    hub = _hub(store)
    assert _seqs(hub.step(0, 100)) == list(range(100))
    assert _seqs(hub.step(0, 100)) == list(range(100))  # a second stream, same step
    assert _seqs(hub.step(50, 180)) == list(range(50, 180))  # only 100..179 is new
    assert store.reads == [(0, 100), (100, 180)]


def test_concurrent_streams_wait_for_one_read() -> None:
    store = Store()
    hub = _hub(store)
    hub.step(0, 10)
    store.gate.clear()  # hold the next read until every stream asks for the step
    got: list[list[int]] = []
    threads = [threading.Thread(target=lambda: got.append(_seqs(hub.step(10, 60))))
               for _ in range(20)]  # fmt: skip
    for t in threads:
        t.start()
    store.gate.set()
    for t in threads:
        t.join(10)
    assert got == [list(range(10, 60))] * 20
    assert store.reads == [(0, 10), (10, 60)], "the step was read once for 20 streams"


def test_the_window_is_bounded_and_a_stream_behind_it_reads_alone() -> None:
    store = Store()
    hub = _hub(store)
    for start in range(0, 3 * WINDOW, 500):
        hub.step(start, start + 500)
    assert len(hub._parsed) <= WINDOW, "the hub keeps at most WINDOW parsed events"
    store.reads.clear()
    assert _seqs(hub.step(0, 500)) == list(range(500))  # far behind: read, not kept
    assert store.reads == [(0, 500)]
    assert _seqs(hub.step(3 * WINDOW - 500, 3 * WINDOW)) == list(range(3 * WINDOW - 500,
                                                                        3 * WINDOW))  # fmt: skip
    assert store.reads == [(0, 500)], "the head is still served from the window"


def test_a_stream_ahead_of_the_window_starts_it_over() -> None:
    store = Store()
    hub = _hub(store)
    hub.step(0, 10)
    assert _seqs(hub.step(5000, 5010)) == list(range(5000, 5010))
    assert _seqs(hub.step(5000, 5020)) == list(range(5000, 5020))
    assert store.reads == [(0, 10), (5000, 5010), (5010, 5020)]


def test_a_gap_in_the_store_is_no_event() -> None:
    """Seqs absent from the store (none today; pruned ones later) are skipped."""
    hub = TailHub(lambda: 0, lambda s, e: [Decoded(q, {}, "", b"") for q in range(s, e)
                                           if q % 2])  # fmt: skip
    assert _seqs(hub.step(0, 10)) == [1, 3, 5, 7, 9]


def test_a_hub_without_a_reader_refuses_steps() -> None:
    with pytest.raises(RuntimeError):
        TailHub(lambda: 0).step(0, 1)
