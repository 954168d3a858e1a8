"""Tampering with a PostgreSQL log by a superuser (triggers bypassed) is found by verify.

The same attacks as tests/test_tamper.py, in PostgreSQL's SQL: the superuser sets
``session_replication_role = replica``, which skips the append-only triggers.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import pytest

from glasslog.errors import IntegrityError
from glasslog.ingest.pipeline import Preparer, Sequencer, Settings, submit
from glasslog.ledger.note import Signer, Verifier
from glasslog.store.postgres import PostgresStore
from glasslog.verify import verify_store
from tests.conftest import make_event

N = 1000


@dataclass
class Built:
    dsn: str
    verifier: Verifier

    def sql(self, *statements: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute("SET search_path TO glasslog")
            for statement in statements:
                conn.execute(statement)

    def verify_fails_at(self, seq: int, match: str) -> None:
        with pytest.raises(IntegrityError, match=match) as info:
            verify_store(self.dsn, self.verifier, workers=1)
        assert info.value.seq == seq


@pytest.fixture
def built(pg_database: str) -> Built:
    """1000 events with checkpoints every 200, in a fresh database."""
    signer = Signer.generate(name="test.example/pg-tamper")
    settings = Settings(checkpoint_every=200, checkpoint_interval=1e9)
    store = PostgresStore.open(pg_database, create=True)
    sequencer = Sequencer(store, signer, settings=settings)
    preparer = Preparer(fingerprint_key=b"k" * 32, settings=settings)
    for _ in range(N // 100):
        assert all(r.ok for r in submit(sequencer, preparer, [make_event() for _ in range(100)]))
    store.close()
    return Built(pg_database, Verifier.from_vkey(signer.vkey))


def test_untouched_log_verifies(built: Built) -> None:
    """The baseline: the log is intact."""
    report = verify_store(built.dsn, built.verifier, workers=1)
    assert (report.events, report.checkpoints, report.pending) == (N, 5, 0)


def test_changed_body_is_found(built: Built) -> None:
    """Editing one event's JSON names its seq."""
    built.sql("UPDATE events SET body = replace(body, 'payments', 'paymentz') WHERE seq = 437")
    built.verify_fails_at(437, "seq 437: the stored event does not match")


def test_changed_salt_is_found(built: Built) -> None:
    """Zeroing a field's salt is located at its event."""
    built.sql("UPDATE events SET salts = decode(repeat('00', length(salts)), 'hex') WHERE seq = 10")
    built.verify_fails_at(10, "seq 10")


def test_deleted_event_is_found(built: Built) -> None:
    """A deleted row leaves a gap that is named."""
    built.sql("DELETE FROM events WHERE seq = 300", "DELETE FROM event_keys WHERE seq = 300")
    built.verify_fails_at(300, "seq 300 is missing")


def test_reordered_events_are_found(built: Built) -> None:
    """Swapping two events' bodies names the first of them."""
    built.sql(
        "UPDATE events e SET body = o.body, commits = o.commits, salts = o.salts"
        " FROM events o WHERE (e.seq, o.seq) IN ((100, 101), (101, 100))"
    )
    built.verify_fails_at(100, "seq 100")


def test_changed_tile_is_found(built: Built) -> None:
    """Editing a stored leaf hash in a tile names the leaf it covers."""
    built.sql(
        "UPDATE tiles SET hashes = overlay(hashes placing decode(repeat('00', 32), 'hex')"
        " from 161 for 32) WHERE level = 0 AND idx = 1 AND width = 256"
    )
    built.verify_fails_at(256 + 5, "seq 261")


def test_deleted_tail_is_found(built: Built) -> None:
    """Deleting the newest events contradicts the checkpoint that covered them."""
    built.sql("DELETE FROM events WHERE seq >= 990", "DELETE FROM event_keys WHERE seq >= 990")
    built.verify_fails_at(990, "covers events that are missing")


def test_forged_checkpoint_is_found(built: Built) -> None:
    """A checkpoint whose text was changed no longer carries a valid signature."""
    built.sql(
        "UPDATE checkpoints SET note = replace(note, E'\\n600\\n', E'\\n601\\n') WHERE size = 600"
    )
    with pytest.raises(IntegrityError, match="checkpoint at size 600"):
        verify_store(built.dsn, built.verifier, workers=1)
