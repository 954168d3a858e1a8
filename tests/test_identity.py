"""A store belongs to one log: no second key can ever sign a checkpoint into it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.attacker import run_as_attacker
from tests.conftest import BACKENDS, make_event
from tests.test_cli import _jsonl, run

Sql = Callable[[str], None]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store spec given with --store: a SQLite file, or a scratch PostgreSQL database."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_database")
        return url
    return str(tmp_path / "shared.db")


def _sql(store: str) -> Sql:
    """Run one statement on the store, triggers bypassed: a store made before the binding
    existed, or an operator with a shell and a superuser role."""
    return lambda statement: run_as_attacker(store, [statement])


def _ingest(data: Path, store: str, n: int) -> tuple[int, str, str]:
    result = run(
        "ingest", "-", "--store", store, data=data, stdin=_jsonl([make_event() for _ in range(n)])
    )
    return result.returncode, result.stdout, result.stderr


def _owner(tmp_path: Path, store: str) -> Path:
    """The log's own data directory, with 20 events ingested and signed."""
    data = tmp_path / "owner"
    result = run("init", "--origin", "owner.example/log", "--store", store, data=data)
    assert result.returncode == 0, result.stderr
    code, _, err = _ingest(data, store, 20)
    assert code == 0, err
    return data


def _checkpoints(data: Path, store: str) -> int:
    result = run("verify", "--store", store, data=data)
    assert result.returncode == 0, result.stderr
    assert "intact: 20 events" in result.stdout
    return int(result.stdout.split("events, ")[1].split(" signed")[0])


def test_init_of_a_new_directory_on_a_store_with_a_log_is_refused(
    tmp_path: Path, store: str
) -> None:
    """init --data NEW --store EXISTING exits 1, names the log, and creates no key at all."""
    owner = _owner(tmp_path, store)
    intruder = tmp_path / "new"
    result = run("init", "--store", store, data=intruder)
    assert result.returncode == 1
    assert "already holds the log 'owner.example/log'" in result.stderr
    assert "--data directory created with that store" in result.stderr
    assert not intruder.exists(), "a refused init must leave nothing behind"
    assert _checkpoints(owner, store) == 1


def test_init_on_a_bound_store_without_checkpoints_is_refused(tmp_path: Path, store: str) -> None:
    """The binding is made at init, so a store nobody has ingested into is protected too."""
    owner = tmp_path / "owner"
    assert (
        run("init", "--origin", "owner.example/log", "--store", store, data=owner).returncode == 0
    )
    result = run("init", "--origin", "other.example/log", "--store", store, data=tmp_path / "new")
    assert result.returncode == 1
    assert "already holds the log 'owner.example/log'" in result.stderr
    code, _, err = _ingest(owner, store, 20)
    assert code == 0, err
    assert _checkpoints(owner, store) == 1


def test_a_writer_with_another_key_is_refused_before_writing(tmp_path: Path, store: str) -> None:
    """ingest with another log's key changes nothing: no event, no checkpoint, verify intact."""
    owner = _owner(tmp_path, store)
    other = tmp_path / "other"
    assert run("init", "--origin", "other.example/log", data=other).returncode == 0
    for attempt in (("ingest",), ("init",)):
        if attempt == ("ingest",):
            code, _, err = _ingest(other, store, 5)
        else:
            result = run("init", "--store", store, data=other)
            code, err = result.returncode, result.stderr
        assert code == 1, err
        assert "belongs to the log 'owner.example/log'" in err
        assert "refusing to sign" in err
    assert _checkpoints(owner, store) == 1
    code, out, err = _ingest(owner, store, 20)
    assert code == 0, err
    assert json.loads(out)["accepted"] == 20


def test_a_store_from_before_the_binding_is_protected_by_its_checkpoints(
    tmp_path: Path, store: str
) -> None:
    """Without a recorded key, the newest checkpoint's signature decides; init then binds it."""
    owner = _owner(tmp_path, store)
    _sql(store)("DELETE FROM meta WHERE key = 'vkey'")
    other = tmp_path / "other"
    assert run("init", "--origin", "other.example/log", data=other).returncode == 0
    code, _, err = _ingest(other, store, 5)
    assert code == 1
    assert "was not signed by this signing key" in err
    assert _checkpoints(owner, store) == 1
    assert run("init", "--store", store, data=owner).returncode == 0
    code, _, err = _ingest(other, store, 5)
    assert "belongs to the log 'owner.example/log'" in err


def test_a_forged_binding_does_not_let_another_key_sign(tmp_path: Path, store: str) -> None:
    """Rewriting meta.vkey to another key is not enough: the newest checkpoint must verify."""
    owner = _owner(tmp_path, store)
    other = tmp_path / "other"
    assert run("init", "--origin", "other.example/log", data=other).returncode == 0
    vkey = run("vkey", data=other).stdout.strip()
    _sql(store)(f"UPDATE meta SET value = '{vkey}' WHERE key = 'vkey'")
    code, _, err = _ingest(other, store, 5)
    assert code == 1
    assert "was not signed by this signing key" in err
    assert _checkpoints(owner, store) == 1
