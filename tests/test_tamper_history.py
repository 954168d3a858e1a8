"""Deleting signed checkpoints cannot get a rewritten history signed or verified.

The attack (issue 9 §3): drop the triggers on checkpoints and tiles, delete every
checkpoint and the partial tiles, change an event. Without a record outside the
database, ``verify`` then saw an unsigned log and exited 0, and the next ingest signed
the forgery. Each writer now keeps its newest checkpoint in the data directory too,
checks history against it before signing, and ``verify`` demands it; a checkpoint
obtained out of band (``verify --checkpoint FILE``) catches an attacker who also
deleted that file. Every attack runs on both backends, through the real CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.attacker import run_as_attacker
from tests.conftest import BACKENDS, make_event
from tests.test_cli import _jsonl, run

N = 600


@dataclass
class Log:
    data: Path
    store: str

    def cli(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        result = run(*args, "--store", self.store, data=self.data, stdin=stdin)
        return result.returncode, result.stdout, result.stderr

    def ingest(self, n: int) -> tuple[int, str, str]:
        return self.cli("ingest", "-", stdin=_jsonl([make_event() for _ in range(n)]))

    def sql(self, *statements: str) -> None:
        """What an attacker with write access to the database runs, triggers bypassed."""
        run_as_attacker(self.store, statements)

    def checkpoints(self) -> int:
        code, out, err = self.cli("verify", "--json")
        assert code == 0, err
        count: int = json.loads(out)["checkpoints"]
        return count


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Log:
    """A fresh log of 600 events and one checkpoint, ingested through the CLI."""
    if request.param == "postgres":
        store: str = request.getfixturevalue("pg_database")
    else:
        store = str(tmp_path / "audit.db")
    built = Log(tmp_path / "keys", store)
    code, _, err = built.cli("init", "--origin", "test.example/history")
    assert code == 0, err
    code, _, err = built.ingest(N)
    assert code == 0, err
    return built


FORGE = "UPDATE events SET body = replace(body, 'payments', 'paymentz') WHERE seq = 595"
WIPE = ("DELETE FROM checkpoints", "DELETE FROM tiles WHERE width < 256")
FORGE_QUIETLY = (
    'UPDATE events SET body = replace(body, \'"received":"2\', \'"received":"1\') WHERE seq = 595'
)
"""A forgery no derived datum shows (``received`` is neither a column nor searched words):
only a signature can tell."""


def test_the_data_directory_records_the_newest_checkpoint(log: Log) -> None:
    """checkpoint.json holds the signed note the store holds, written 0600."""
    record = json.loads((log.data / "checkpoint.json").read_text())
    code, note, _ = log.cli("checkpoint")
    assert code == 0
    assert record == {"checkpoints": 1, "note": note}
    assert (log.data / "checkpoint.json").stat().st_mode & 0o777 == 0o600


def test_deleted_checkpoints_fail_verify_and_block_the_next_signature(log: Log) -> None:
    """verify names the missing checkpoint; ingest refuses to sign; nothing is added."""
    log.sql(*WIPE, FORGE)
    code, _, err = log.cli("verify")
    assert code == 1
    assert "TAMPERED" in err
    assert "checkpoint at tree size 600" in err
    assert "missing from the store" in err
    code, _, err = log.ingest(10)
    assert code == 1
    assert "TAMPERED" in err
    assert "is missing from" in err
    assert log.cli("checkpoint")[0] != 0, "no checkpoint may have been signed over the forgery"


def test_a_deleted_newest_checkpoint_is_found_by_the_count(log: Log) -> None:
    """Deleting only the newest checkpoint (keeping older ones) is caught too."""
    code, _, err = log.ingest(100)
    assert code == 0, err
    assert log.checkpoints() == 2
    log.sql("DELETE FROM checkpoints WHERE size = 700", FORGE)
    code, _, err = log.cli("verify")
    assert code == 1
    assert "checkpoint at tree size 700" in err
    code, _, err = log.ingest(10)
    assert code == 1
    assert "TAMPERED" in err


def test_history_changed_under_a_kept_checkpoint_is_not_signed(log: Log) -> None:
    """A changed event whose tiles were recomputed to match never gets a new signature."""
    # Rewrite seq 595's body and, like a careful attacker, its level-0 tile entry, so the
    # store is self-consistent below the checkpoint's root but no longer matches it.
    log.sql(FORGE, "DELETE FROM tiles WHERE level = 0 AND idx = 2")
    code, _, err = log.ingest(10)
    assert code == 1
    assert "TAMPERED" in err
    code, _, err = log.cli("verify")
    assert code == 1
    assert "TAMPERED" in err


def test_an_out_of_band_checkpoint_catches_an_attacker_who_deleted_the_record_too(
    log: Log, tmp_path: Path
) -> None:
    """With checkpoint.json gone as well, verify --checkpoint FILE still finds the forgery."""
    code, note, _ = log.cli("checkpoint")
    assert code == 0
    witness = tmp_path / "from-a-monitor.note"
    witness.write_text(note)
    log.sql(*WIPE, FORGE_QUIETLY)
    (log.data / "checkpoint.json").unlink()
    # The documented limit: nobody left holding a signature, nobody can tell.
    code, out, err = log.cli("verify")
    assert code == 0, err
    assert "0 signed checkpoints" in out
    code, _, err = log.cli("verify", "--checkpoint", str(witness))
    assert code == 1
    assert "TAMPERED" in err
    assert "from-a-monitor.note" in err


def test_verify_checkpoint_accepts_a_checkpoint_the_store_holds(log: Log, tmp_path: Path) -> None:
    """An intact store is consistent with every checkpoint it signed, old or new."""
    code, note, _ = log.cli("checkpoint")
    witness = tmp_path / "old.note"
    witness.write_text(note)
    code, _, err = log.ingest(50)
    assert code == 0, err
    code, out, err = log.cli("verify", "--checkpoint", str(witness))
    assert code == 0, err
    assert "intact: 650 events" in out


def test_a_checkpoint_of_another_log_is_refused(log: Log, tmp_path: Path) -> None:
    """verify --checkpoint with a note the log's key did not sign fails clearly."""
    other = Log(tmp_path / "other-keys", str(tmp_path / "other.db"))
    assert other.cli("init", "--origin", "other.example/log")[0] == 0
    assert other.ingest(5)[0] == 0
    note = other.cli("checkpoint")[1]
    witness = tmp_path / "other.note"
    witness.write_text(note)
    code, _, err = log.cli("verify", "--checkpoint", str(witness))
    assert code == 1
    assert "other.note" in err
    assert "not this log's" in err


def test_one_key_never_signs_a_second_store(log: Log, tmp_path: Path) -> None:
    """init of a data directory that signed one store, pointed at a new one, is refused."""
    result = run("init", "--store", str(tmp_path / "second.db"), data=log.data)
    assert result.returncode == 1
    assert "one key signs one log" in result.stderr
