"""Tampering below SQL — bits flipped in the SQLite file — is found by verify and located.

Each test copies a real log, flips bytes in the file the way an attacker (or a
failing disk) with file access would, and checks that ``verify`` fails and names
the seq. Attacks through SQL run on both backends in tests/test_tamper_sql.py.
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
from tests.attacker import run_as_attacker
from tests.conftest import make_event

N = 1000


@dataclass
class Built:
    db: Path
    verifier: Verifier

    def sql(self, *statements: str) -> None:
        """Run SQL as an attacker would: triggers dropped first."""
        run_as_attacker(str(self.db), statements)

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
