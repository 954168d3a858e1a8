"""Tampering with a stored log, bypassing glasslog, is found by verify and located.

Each test builds a real log, closes it, then edits the database the way an attacker
with file access would — through SQL with the append-only triggers dropped, or by
flipping bytes in the file — and checks that ``verify`` fails and names the seq.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from glasslog.errors import IntegrityError, StoreError
from glasslog.ingest.pipeline import Settings
from glasslog.ledger.note import Verifier
from glasslog.testing import temporary_log
from glasslog.verify import verify_store
from tests.conftest import make_event

N = 1000


@dataclass
class Built:
    db: Path
    verifier: Verifier

    def sql(self, *statements: str) -> None:
        """Run SQL as an attacker would: triggers dropped first."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        for table in ("events", "tiles", "checkpoints"):
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        for statement in statements:
            conn.execute(statement)
        conn.close()

    def verify_fails_at(self, seq: int | None, match: str) -> None:
        with pytest.raises(IntegrityError, match=match) as info:
            verify_store(self.db, self.verifier, workers=1)
        assert info.value.seq == seq


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A log of 1000 events with checkpoints at every 200, copied per test."""
    settings = Settings(checkpoint_every=200, checkpoint_interval=1e9)
    out = tmp_path_factory.mktemp("pristine")
    with temporary_log(settings=settings) as tlog:
        for i in range(N // 100):
            tlog.submit(
                [make_event(metadata={"marker": f"mark-{i * 100 + j:05d}"}) for j in range(100)]
            )
        verifier = tlog.datadir.verifier()
        db = tlog.datadir.db
        tlog.store.close()
        tlog.log.close()
        shutil.copy(db, out / "glasslog.db")
    return Built(out / "glasslog.db", verifier)


@pytest.fixture
def built(pristine: Built, tmp_path: Path) -> Built:
    shutil.copy(pristine.db, tmp_path / "glasslog.db")
    return Built(tmp_path / "glasslog.db", pristine.verifier)


def test_untouched_copy_verifies(built: Built) -> None:
    """The baseline: the copied log is intact."""
    report = verify_store(built.db, built.verifier, workers=1)
    assert (report.events, report.checkpoints, report.pending) == (N, 5, 0)


def test_changed_event_body_is_found(built: Built) -> None:
    """Editing one event's JSON names that event's seq."""
    built.sql("UPDATE events SET body = replace(body, 'payments', 'paymentz') WHERE seq = 437")
    built.verify_fails_at(437, "seq 437: the stored event does not match")


def test_changed_salt_is_found(built: Built) -> None:
    """Replacing a field's salt changes its commitment and is located."""
    built.sql("UPDATE events SET salts = zeroblob(length(salts)) WHERE seq = 10")
    built.verify_fails_at(10, "seq 10")


def test_uncommitting_a_field_is_found(built: Built) -> None:
    """Dropping a path from the committed list (to reveal it in the leaf) is found."""
    built.sql("UPDATE events SET commits = '[]', salts = x'' WHERE seq = 612")
    built.verify_fails_at(612, "seq 612")


def test_changed_event_after_last_full_tile_is_found(built: Built) -> None:
    """An edit in the partial right-edge tile is caught via the checkpoint's partial tile."""
    built.sql("UPDATE events SET body = replace(body, 'db.query', 'db.qwery') WHERE seq = 990")
    built.verify_fails_at(990, "seq 990")


def test_deleted_event_is_found(built: Built) -> None:
    """Deleting a row leaves a gap that is named."""
    built.sql("DELETE FROM events WHERE seq = 300")
    built.verify_fails_at(300, "seq 300 is missing")


def test_deleted_tail_is_found(built: Built) -> None:
    """Deleting the newest events contradicts the checkpoint that covered them."""
    built.sql("DELETE FROM events WHERE seq >= 990")
    built.verify_fails_at(990, "covers events that are missing")


def test_inserted_event_is_found(built: Built) -> None:
    """Inserting a row in the middle (renumbering the rest) is found where it starts."""
    built.sql(
        "UPDATE events SET seq = -seq - 1 WHERE seq >= 500",
        "UPDATE events SET seq = -seq WHERE seq < 0",
        "INSERT INTO events (seq, id, time, service, action, actor_id, outcome, request_id,"
        " trace_id, body, commits, salts) SELECT 500, randomblob(16), time, service, action,"
        " actor_id, outcome, request_id, trace_id, body, commits, salts"
        " FROM events WHERE seq = 499",
    )
    built.verify_fails_at(500, "seq 500")


def test_reordered_events_are_found(built: Built) -> None:
    """Swapping two events' positions names the first of them."""
    built.sql(
        "UPDATE events SET seq = -1 WHERE seq = 100",
        "UPDATE events SET seq = 100 WHERE seq = 101",
        "UPDATE events SET seq = 101 WHERE seq = -1",
    )
    built.verify_fails_at(100, "seq 100")


def test_changed_tile_is_found(built: Built) -> None:
    """Editing a stored leaf hash in a tile names the leaf it belongs to."""
    built.sql(
        "UPDATE tiles SET hashes ="
        " CAST(substr(hashes, 1, 160) || zeroblob(32) || substr(hashes, 193) AS BLOB)"
        " WHERE level = 0 AND idx = 1 AND width = 256"
    )
    built.verify_fails_at(256 + 5, "seq 261")


def test_forged_checkpoint_is_found(built: Built) -> None:
    """A checkpoint note whose text was changed no longer carries a valid signature."""
    built.sql("UPDATE checkpoints SET note = replace(note, char(10) || '600' || char(10),"
              " char(10) || '601' || char(10)) WHERE size = 600")  # fmt: skip
    with pytest.raises(IntegrityError, match="checkpoint at size 600"):
        verify_store(built.db, built.verifier, workers=1)


def test_checkpoint_from_another_key_is_refused(built: Built) -> None:
    """Verifying against a different log's key fails on the first checkpoint."""
    from glasslog.ledger.note import Signer

    other = Verifier.from_vkey(Signer.generate(name="test.example/log").vkey)
    with pytest.raises(IntegrityError, match="checkpoint at size 200"):
        verify_store(built.db, other, workers=1)


def _flip(db: Path, needle: bytes, *, at: int = 0) -> None:
    data = bytearray(db.read_bytes())
    where = data.find(needle)
    assert where >= 0 and data.find(needle, where + 1) < 0, "needle must be unique in the file"
    data[where + at] ^= 0x01
    db.write_bytes(bytes(data))


def test_flipped_byte_in_event_is_found(built: Built) -> None:
    """A bit flipped directly in the file inside an event's JSON names that seq."""
    _flip(built.db, b'"marker":"mark-00777"', at=16)
    built.verify_fails_at(777, "seq 777")


def test_flipped_byte_in_salt_is_found(built: Built) -> None:
    """A bit flipped in a stored salt is found at its event."""
    conn = sqlite3.connect(built.db)
    (salts,) = conn.execute("SELECT salts FROM events WHERE seq = 123").fetchone()
    conn.close()
    _flip(built.db, salts[:16], at=3)
    built.verify_fails_at(123, "seq 123")


def test_flipped_byte_in_tile_is_found(built: Built) -> None:
    """A bit flipped in a tile's stored hash names the leaf it covers."""
    conn = sqlite3.connect(built.db)
    (hashes,) = conn.execute(
        "SELECT hashes FROM tiles WHERE level = 0 AND idx = 0 AND width = 256"
    ).fetchone()
    conn.close()
    # Entry 210: past the partial tile stored with the checkpoint at 200, so unique in the file.
    _flip(built.db, hashes[32 * 210 : 32 * 211], at=0)
    built.verify_fails_at(210, "seq 210")


def test_corrupted_file_structure_is_a_clear_error(built: Built) -> None:
    """Overwriting a b-tree page header makes verify fail with a clear message."""
    data = bytearray(built.db.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for page in range(1, len(data) // page_size):
        data[page * page_size] = 0xFF  # an invalid page type on every page but the header
    built.db.write_bytes(bytes(data))
    with pytest.raises((IntegrityError, StoreError), match=r"corrupt|malformed|missing|seq"):
        verify_store(built.db, built.verifier, workers=1)


def test_tamper_found_by_parallel_workers_names_the_seq(built: Built) -> None:
    """With worker processes, the error and its seq still reach the caller."""
    built.sql("UPDATE events SET body = replace(body, 'payments', 'paymentz') WHERE seq = 901")
    with pytest.raises(IntegrityError, match="seq 901") as info:
        verify_store(built.db, built.verifier, workers=2)
    assert info.value.seq == 901


def test_deleted_unsigned_tail_is_found_through_the_tiles(tmp_path: Path) -> None:
    """Rows deleted after the last checkpoint are still missed by a full tile that recorded them."""
    with temporary_log() as tlog:
        tlog.submit([make_event() for _ in range(100)])
        tlog.checkpoint()
        tlog.submit([make_event() for _ in range(200)])  # completes tile 0/0, no checkpoint
        verifier = tlog.datadir.verifier()
        tlog.store.close()
        tlog.log.close()
        shutil.copy(tlog.datadir.db, tmp_path / "glasslog.db")
    built = Built(tmp_path / "glasslog.db", verifier)
    built.sql("DELETE FROM events WHERE seq >= 200")
    built.verify_fails_at(200, "seq 200 is missing")
