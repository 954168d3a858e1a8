"""The ingest pipeline end to end on a real SQLite store."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import pytest

from glasslog.datadir import DataDir
from glasslog.identity import initialise
from glasslog.ingest.pipeline import Preparer, Sequencer, Settings, submit
from glasslog.ledger import merkle
from glasslog.ledger.note import verify_checkpoint
from glasslog.store import open_store
from glasslog.store.base import leaf_of, restore_tree
from glasslog.testing import TemporaryLog
from glasslog.verify import verify_store
from tests.conftest import BACKENDS, MakeEvent, backend_log, make_event


def _root_from_store(tlog: TemporaryLog) -> bytes:
    size = tlog.store.size()
    return merkle.root_of([merkle.leaf_hash(leaf_of(e)) for e in tlog.store.events(0, size)])


def test_events_get_dense_seqs_from_zero(tlog: TemporaryLog, event: MakeEvent) -> None:
    """Each accepted event gets the next seq; seqs start at 0 and have no gaps."""
    first = tlog.submit([event() for _ in range(5)])
    second = tlog.submit([event() for _ in range(3)])
    assert [r.seq for r in first + second] == list(range(8))
    assert tlog.store.size() == 8


def test_checkpoint_root_matches_leaves_recomputed_from_storage(
    tlog: TemporaryLog, event: MakeEvent
) -> None:
    """A signed checkpoint's root is the RFC 9162 root of the stored events' leaves."""
    tlog.submit([event() for _ in range(300)])
    note = tlog.checkpoint().note
    cp = verify_checkpoint(note, verifier=tlog.datadir.verifier())
    assert cp.size == 300
    assert cp.root == _root_from_store(tlog)


def test_retry_returns_original_seq_and_stores_nothing(
    tlog: TemporaryLog, event: MakeEvent
) -> None:
    """Sending an event with the same id and content again is a duplicate, not a new row."""
    original = event()
    tlog.submit([event(), original, event()])
    again = tlog.submit([original, event()])
    assert again[0].seq == 1 and again[0].duplicate
    assert again[1].seq == 3 and not again[1].duplicate
    assert tlog.store.size() == 4


def test_retry_without_time_is_still_a_duplicate(tlog: TemporaryLog, event: MakeEvent) -> None:
    """An event that let the server default its time is recognised when retried later."""
    original = event()
    del original["time"]
    (first,) = tlog.submit([original])
    (again,) = tlog.submit([original])
    assert again.duplicate and again.seq == first.seq


def test_duplicate_inside_one_batch_is_stored_once(tlog: TemporaryLog, event: MakeEvent) -> None:
    """The same id twice in one batch gets one seq."""
    e = event()
    receipts = tlog.submit([e, e])
    assert [r.seq for r in receipts] == [0, 0]
    assert receipts[1].duplicate
    assert tlog.store.size() == 1


def test_same_id_with_other_content_in_one_batch_is_refused(
    tlog: TemporaryLog, event: MakeEvent
) -> None:
    """Inside one batch too, a reused id with other content is refused, not deduplicated."""
    e = event()
    receipts = tlog.submit([e, {**e, "outcome": "failure"}])
    assert receipts[0].seq == 0
    assert not receipts[1].ok
    assert "already stored (seq 0) with different content" in receipts[1].problems[0]


def test_same_id_with_other_content_is_refused(tlog: TemporaryLog, event: MakeEvent) -> None:
    """Reusing an id for different content is an error that names the stored seq."""
    e = event()
    tlog.submit([e])
    (receipt,) = tlog.submit([{**e, "action": "db.drop"}])
    assert not receipt.ok
    assert "already stored (seq 0) with different content" in receipt.problems[0]
    assert tlog.store.size() == 1


def test_invalid_event_is_reported_and_valid_ones_are_stored(
    tlog: TemporaryLog, event: MakeEvent
) -> None:
    """A batch reports per-event results and stores every valid event."""
    receipts = tlog.submit([event(), {"service": "x"}, event()])
    assert [r.seq for r in receipts] == [0, None, 1]
    assert any("$.action" in p for p in receipts[1].problems)


def test_secrets_never_reach_storage(tlog: TemporaryLog, event: MakeEvent) -> None:
    """A password and a bearer token are scrubbed before the event is stored."""
    e = event(
        metadata={"password": "hunter2-very-secret", "note": "Bearer abcdefghijklmnop123456"},
    )
    tlog.submit([e])
    stored = tlog.store.get(0)
    assert "hunter2-very-secret" not in stored.body
    assert "abcdefghijklmnop123456" not in stored.body
    assert "[REDACTED:" in stored.body


def test_sensitive_fields_are_committed_in_the_leaf(tlog: TemporaryLog, event: MakeEvent) -> None:
    """The leaf holds commitments, not the email, ip or metadata values."""
    tlog.submit([event()])
    stored = tlog.store.get(0)
    leaf = json.loads(leaf_of(stored))
    assert set(leaf["actor"]["email"]) == {"$commit"}
    assert set(leaf["source"]["ip"]) == {"$commit"}
    assert set(leaf["metadata"]["table"]) == {"$commit"}
    assert leaf["service"] == "payments"
    assert b"example.com" not in leaf_of(stored)


@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpoints_are_signed_every_n_events(backend: str) -> None:
    """With checkpoint_every=100, a 250-event stream leaves checkpoints at 100 and 200."""
    settings = Settings(checkpoint_every=100, checkpoint_interval=1e9)
    with backend_log(backend, settings=settings) as tlog:
        for _ in range(25):
            tlog.submit([make_event() for _ in range(10)])
        assert [c.size for c in tlog.store.checkpoints()] == [100, 200]


def test_checkpoint_on_demand_is_not_repeated_for_the_same_size(
    tlog: TemporaryLog, event: MakeEvent
) -> None:
    """Asking twice for a checkpoint of an unchanged tree signs once."""
    tlog.submit([event()])
    first = tlog.checkpoint()
    assert tlog.checkpoint() == first
    assert len(tlog.store.checkpoints()) == 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [1, 255, 256, 257, 511, 513, 1000])
def test_restored_tree_continues_the_same_tree(size: int, backend: str) -> None:
    """After a restart the writer rebuilds the tree's right edge and keeps the same root."""
    with backend_log(backend) as tlog:
        tlog.submit([make_event() for _ in range(size)])
        restored = restore_tree(tlog.store)
        assert restored.size == size
        assert restored.root() == _root_from_store(tlog)


def test_whole_store_verifies_after_many_batches(tlog: TemporaryLog) -> None:
    """verify_store accepts an untouched log with several checkpoints."""
    for _ in range(6):
        tlog.submit([make_event() for _ in range(100)])
        tlog.checkpoint()
    report = verify_store(tlog.spec, tlog.datadir.verifier(), workers=1)
    assert report.events == 600
    assert report.checkpoints == 6
    assert report.pending == 0


def test_ids_are_assigned_when_absent(tlog: TemporaryLog, event: MakeEvent) -> None:
    """An event without id gets a UUIDv7 and can be fetched by it."""
    e = event()
    del e["id"]
    tlog.submit([e])
    stored = tlog.log.get("0")
    assert uuid.UUID(stored["id"]).version == 7
    assert tlog.log.get(stored["id"])["seq"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpoints_are_signed_after_the_interval(backend: str) -> None:
    """With a zero interval, every committed batch is covered by a checkpoint at once."""
    settings = Settings(checkpoint_every=1 << 40, checkpoint_interval=0.0)
    with backend_log(backend, settings=settings) as tlog:
        for _ in range(3):
            tlog.submit([make_event() for _ in range(5)])
        assert [c.size for c in tlog.store.checkpoints()] == [5, 10, 15]


def test_two_writers_on_one_sqlite_store_take_turns_batch_by_batch() -> None:
    """A server and the CLI both write to one embedded store: each sequencer takes the
    data directory's writer lock per batch and catches up with the other's appends, so
    the log stays one dense tree that verifies, and neither refuses to write."""
    with tempfile.TemporaryDirectory() as tmp:
        datadir = DataDir(Path(tmp) / "data")
        signer = initialise(datadir.path, store=None, origin="test.example/turns").signer
        spec = datadir.store_spec(None)
        stores = [open_store(spec), open_store(spec)]
        try:
            writers = [
                Sequencer(store, signer, datadir=datadir, writer_lock=datadir.writer_lock)
                for store in stores
            ]
            preparer = Preparer(fingerprint_key=datadir.fingerprint_key())
            seqs: list[int] = []
            for turn in range(6):
                receipts = submit(writers[turn % 2], preparer, [make_event() for _ in range(5)])
                seqs += [r.seq for r in receipts if r.seq is not None]
                writers[turn % 2].checkpoint()
            assert seqs == list(range(30))
            with datadir.writer_lock(wait=0.2):
                pass  # neither holds the lock between batches
            report = verify_store(spec, datadir.verifier(), workers=1)
            assert (report.events, report.checkpoints, report.pending) == (30, 6, 0)
        finally:
            for store in stores:
                store.close()


def test_an_event_with_a_very_long_word_is_stored_and_found(tlog: TemporaryLog) -> None:
    """PostgreSQL refuses lexemes over 2,046 bytes; a base64 blob must not fail its batch."""
    blob = "Q" * 3_000 + "é" * 700
    receipts = tlog.submit([make_event(reason=f"uploaded {blob} today"), make_event()])
    assert all(r.ok for r in receipts)
    page = tlog.log.search(f'"{blob}"')
    assert [e["reason"] for e in page.events] == [f"uploaded {blob} today"]
    assert tlog.log.search('"' + "Q" * 3_000 + '"').events == [], "the recheck stays exact"
    tlog.checkpoint()
    report = verify_store(tlog.spec, tlog.datadir.verifier(), workers=1)
    assert report.events == 2
