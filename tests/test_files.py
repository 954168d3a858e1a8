"""Files glasslog creates are its user's alone: the data directory 0700, every file 0600,
whatever the umask (issue 9, section 5). A store file others can read is warned about."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from glasslog.datadir import DataDir
from glasslog.identity import initialise
from glasslog.ingest.bulk import ingest_lines
from glasslog.ingest.pipeline import Settings
from glasslog.store.sqlite import SQLiteStore
from tests.conftest import BACKENDS, make_event


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(*paths: Path) -> dict[str, int]:
    """The mode of each path, and of every file in each directory among them."""
    found: dict[str, int] = {}
    for path in paths:
        found[str(path)] = _mode(path)
        if path.is_dir():
            found.update({str(p): _mode(p) for p in path.iterdir()})
    return found


def _private(modes: dict[str, int]) -> dict[str, str]:
    """Paths whose mode lets anyone but the owner in (empty when all are private)."""
    return {path: f"{mode:o}" for path, mode in modes.items() if mode & 0o077}


def _glasslog(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """``glasslog ARGS`` under umask 000: only glasslog itself keeps its files private."""
    done = subprocess.run(
        [sys.executable, "-m", "glasslog", *args],
        input=stdin, capture_output=True, check=False, timeout=300,
        preexec_fn=lambda: os.umask(0),
    )  # fmt: skip
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def _events(n: int) -> bytes:
    return b"".join(json.dumps(make_event()).encode() + b"\n" for _ in range(n))


@pytest.fixture(params=[*BACKENDS, "sqlite-elsewhere"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """--store options: none (the data directory's SQLite file), PostgreSQL, or a SQLite
    file outside the data directory."""
    if request.param == "postgres":
        return ["--store", request.getfixturevalue("pg_database")]
    if request.param == "sqlite-elsewhere":
        return ["--store", str(tmp_path / "elsewhere" / "audit.db")]
    return []


def test_every_file_is_private_after_init_ingest_and_verify(
    tmp_path: Path, store: list[str]
) -> None:
    """Under umask 000, ``init`` on a 0755 directory makes it 0700; it and every file in it
    (and a --store file elsewhere) are private after init, ingest and verify."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    watched = [data]
    if store and not store[1].startswith("postgresql"):
        (tmp_path / "elsewhere").mkdir()
        watched.append(Path(store[1]))
    options = ["--data", str(data), *store]
    result = _glasslog("init", "--origin", "test.example/files", *options)
    assert result.returncode == 0, result.stderr
    assert _mode(data) == 0o700
    for args, stdin in [(("ingest", "-"), _events(30)), (("verify",), None)]:
        result = _glasslog(*args, *options, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr
        modes = _modes(*watched)
        assert _private(modes) == {}, args
    names = {Path(p).name for p in modes}
    assert {"signing.key", "log.vkey", "writer.lock", "checkpoint.json"} <= names


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_the_library_creates_private_files_whatever_the_umask(tmp_path: Path) -> None:
    """Without the CLI's umask (a Python caller with umask 000), the directory, keys,
    database, its -wal and -shm files and a --store file elsewhere are still private."""
    data, elsewhere = tmp_path / "data", tmp_path / "shared" / "audit.db"
    elsewhere.parent.mkdir()
    with _umask(0):
        initialise(data, store=None, origin="test.example/library")
        initialise(tmp_path / "keys", store=str(elsewhere), origin="test.example/elsewhere")
        lines = io.BytesIO(_events(10))
        with io.StringIO() as rejected:
            ingest_lines(DataDir(data), lines, settings=Settings(), workers=1, rejected=rejected)
        store = SQLiteStore.open(data / "glasslog.db")
        try:
            store.connection.execute("SELECT count(*) FROM events").fetchone()
            live = _modes(data)  # while the store is open: -wal and -shm exist
        finally:
            store.close()
    assert {"glasslog.db-wal", "glasslog.db-shm"} <= {Path(p).name for p in live}
    assert _private(live) == {}
    assert _private(_modes(data, tmp_path / "keys", elsewhere)) == {}


def test_demo_files_are_private(tmp_path: Path) -> None:
    """``glasslog demo`` under umask 000 leaves a private directory of private files."""
    data = tmp_path / "demo"
    result = _glasslog("demo", "--walkthrough", "--data", str(data), "--events", "300")
    assert result.returncode == 0, result.stderr
    assert _private(_modes(data)) == {}


def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    """``init`` cannot make another user's 0755 directory private: it refuses, saying what
    to run, and creates nothing there."""
    if os.geteuid() != 0:
        pytest.skip("only root can make a directory that belongs to another user")
    data = tmp_path / "theirs"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    os.chown(data, 65534, 65534)  # nobody
    result = _glasslog("init", "--data", str(data))
    assert result.returncode == 1
    assert result.stderr == (
        f"glasslog: error: {data} is open to other users (mode 755) and belongs to another "
        f"user, so glasslog cannot make it private; its owner can run `chmod 700 {data}`, or "
        "give --data a directory of your own\n"
    )
    assert list(data.iterdir()) == []
    assert _mode(data) == 0o755


def test_a_store_file_open_to_others_is_warned_about_once(tmp_path: Path) -> None:
    """A database others can read still works, with one warning saying what to run."""
    data = tmp_path / "data"
    assert _glasslog("init", "--data", str(data)).returncode == 0
    assert _glasslog("ingest", "-", "--data", str(data), stdin=_events(5)).returncode == 0
    db = data / "glasslog.db"
    os.chmod(db, 0o644)
    result = _glasslog("verify", "--data", str(data))
    assert result.returncode == 0
    assert "intact: 5 events" in result.stdout
    assert result.stderr == (
        f"glasslog: warning: {db} is open to other users (mode 644), and holds personal "
        "data and the salts that keep committed fields private; run "
        f"`chmod 600 {db}*`\n"
    )
    assert _mode(db) == 0o644  # warned, not changed: the operator may mean it


def test_the_cli_restores_the_umask_of_an_in_process_caller(tmp_path: Path) -> None:
    """The CLI's umask 077 lasts as long as the command: CliRunner's process gets its own back."""
    from click.testing import CliRunner

    from glasslog.cli import main

    with _umask(0o022):
        result = CliRunner().invoke(main, ["init", "--data", str(tmp_path / "data")])
        assert result.exit_code == 0, result.output
        assert os.umask(0o022) == 0o022


def test_sqlite_gives_its_side_files_the_database_files_mode(tmp_path: Path) -> None:
    """What the store relies on: SQLite creates -wal and -shm with the database's mode,
    not the umask's (checked on this machine's SQLite)."""
    path = tmp_path / "x.db"
    with _umask(0):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        modes = {p.name: _mode(p) for p in tmp_path.iterdir()}
        conn.close()
    assert modes == {"x.db": 0o600, "x.db-wal": 0o600, "x.db-shm": 0o600}
