"""The ``glasslog`` command as a user runs it: a real process, real files."""

from __future__ import annotations

import base64
import json
import os
import pty
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from glasslog.ledger import merkle
from glasslog.ledger.note import Verifier, verify_checkpoint
from tests.conftest import make_event


def run(*args: str, data: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glasslog", *args, "--data", str(data)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "log"
    result = run("init", "--origin", "test.example/cli", data=d)
    assert result.returncode == 0, result.stderr
    return d


def _jsonl(events: list[dict[str, object]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def test_init_creates_owner_only_key_and_prints_vkey(data: Path) -> None:
    """init writes a 0600 signing key and prints a vkey that parses."""
    mode = stat.S_IMODE((data / "signing.key").stat().st_mode)
    assert mode == 0o600
    vkey = run("vkey", data=data).stdout.strip()
    assert Verifier.from_vkey(vkey).name == "test.example/cli"


def test_init_twice_keeps_the_key(data: Path) -> None:
    """A second init prints the same vkey and leaves the key file untouched."""
    before = (data / "signing.key").read_bytes()
    again = run("init", data=data)
    assert again.returncode == 0
    assert (data / "signing.key").read_bytes() == before
    assert again.stdout.strip() == run("vkey", data=data).stdout.strip()


def test_init_with_another_origin_is_refused(data: Path) -> None:
    """Re-initialising a log under a new name is an error, not a new identity."""
    result = run("init", "--origin", "other.example/log", data=data)
    assert result.returncode == 1
    assert "already holds the log 'test.example/cli'" in result.stderr


def test_ingest_reports_counts_and_rejections(data: Path) -> None:
    """ingest prints accepted/duplicates/rejected with line numbers and exits 2 on rejects."""
    good = [make_event() for _ in range(3)]
    text = _jsonl(good[:2]) + "{not json\n" + _jsonl([{"service": "x"}]) + _jsonl(good[2:])
    result = run("ingest", "-", data=data, stdin=text)
    assert result.returncode == 2, result.stderr
    summary = json.loads(result.stdout)
    assert summary["accepted"] == 3 and summary["duplicates"] == 0
    assert [r["line"] for r in summary["rejected"]] == [3, 4]
    assert "not valid JSON" in summary["rejected"][0]["errors"][0]
    again = run("ingest", "-", data=data, stdin=_jsonl(good))
    assert again.returncode == 0
    assert json.loads(again.stdout) == {"accepted": 0, "duplicates": 3, "rejected": []}


def test_get_by_seq_and_id(data: Path) -> None:
    """get returns the stored event with its seq, by seq or by id."""
    e = make_event()
    run("ingest", "-", data=data, stdin=_jsonl([make_event(), e]))
    by_seq = json.loads(run("get", "1", data=data).stdout)
    by_id = json.loads(run("get", str(e["id"]), data=data).stdout)
    assert by_seq == by_id
    assert by_seq["seq"] == 1 and by_seq["id"] == e["id"]


def test_get_unknown_is_one_line_error(data: Path) -> None:
    """A missing event is a one-line error on stderr, never a traceback."""
    result = run("get", "42", data=data)
    assert result.returncode == 1
    assert result.stderr.startswith("glasslog: error: no event with seq 42")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_commands_on_missing_data_dir_say_how_to_fix(tmp_path: Path) -> None:
    """Without init, commands tell the user to run glasslog init."""
    result = run("checkpoint", data=tmp_path / "nothing")
    assert result.returncode == 1
    assert "run `glasslog init" in result.stderr


def test_inclusion_proof_verifies_offline_against_checkpoint(data: Path) -> None:
    """proof inclusion output verifies with only the checkpoint note and the vkey."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(37)]))
    note = run("checkpoint", data=data).stdout
    cp = verify_checkpoint(note, verifier=Verifier.from_vkey(run("vkey", data=data).stdout.strip()))
    assert cp.size == 37
    proof = json.loads(run("proof", "inclusion", "20", data=data).stdout)
    assert proof["tree_size"] == 37 and proof["seq"] == 20
    assert base64.b64decode(proof["root"]) == cp.root
    leaf = base64.b64decode(proof["leaf"])
    assert base64.b64decode(proof["leaf_hash"]) == merkle.leaf_hash(leaf)
    merkle.verify_inclusion(
        index=20,
        size=37,
        leaf_hash=merkle.leaf_hash(leaf),
        proof=[base64.b64decode(h) for h in proof["proof"]],
        root=cp.root,
    )


def test_consistency_proof_between_two_checkpoints_verifies(data: Path) -> None:
    """proof consistency links an old checkpoint to a newer one."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(10)]))
    old = run("checkpoint", data=data).stdout
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(290)]))
    new = run("checkpoint", data=data).stdout
    v = Verifier.from_vkey(run("vkey", data=data).stdout.strip())
    cp1, cp2 = verify_checkpoint(old, verifier=v), verify_checkpoint(new, verifier=v)
    out = json.loads(run("proof", "consistency", "10", "300", data=data).stdout)
    assert base64.b64decode(out["root1"]) == cp1.root
    assert base64.b64decode(out["root2"]) == cp2.root
    merkle.verify_consistency(
        size1=10,
        size2=300,
        root1=cp1.root,
        root2=cp2.root,
        proof=[base64.b64decode(h) for h in out["proof"]],
    )


def test_proof_beyond_latest_checkpoint_is_refused(data: Path) -> None:
    """A tree size no checkpoint covers is refused with the valid range."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(5)]))
    result = run("proof", "inclusion", "1", "--size", "9", data=data)
    assert result.returncode == 1
    assert "choose a size from 1 to 5" in result.stderr


def test_verify_passes_on_intact_log(data: Path) -> None:
    """verify exits 0 with a one-line summary on an untouched log."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(50)]))
    result = run("verify", data=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("intact: 50 events, 1 signed checkpoint, latest covers 50")


def test_key_readable_by_others_is_refused(data: Path) -> None:
    """A signing key with group/other permissions is refused until chmod 600."""
    os.chmod(data / "signing.key", 0o644)
    result = run("ingest", "-", data=data, stdin=_jsonl([make_event()]))
    assert result.returncode == 1
    assert "chmod 600" in result.stderr


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    """glasslog demo ingests, proves offline and verifies on a fresh directory."""
    command = ["demo", "--data", str(tmp_path / "demo"), "--events", "600"]
    result = subprocess.run(
        [sys.executable, "-m", "glasslog", *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "verified offline" in result.stdout
    assert "intact: 600 events" in result.stdout


def test_ingest_checkpoint_every_is_configurable(data: Path) -> None:
    """--checkpoint-every 10 leaves checkpoints at every 10 events, and one at the end."""
    events = _jsonl([make_event() for _ in range(25)])
    result = run(
        "ingest", "-", "--batch-size", "5", "--checkpoint-every", "10", data=data, stdin=events
    )
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(data / "glasslog.db")
    sizes = [size for (size,) in conn.execute("SELECT size FROM checkpoints ORDER BY size")]
    conn.close()
    assert sizes == [10, 20, 25]


def test_verify_shows_progress_on_a_terminal(data: Path) -> None:
    """On a terminal, verify draws a progress bar on stderr; piped, it prints only the summary."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(20)]))
    leader, follower = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "glasslog", "verify", "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=follower,
        check=False,
        timeout=60,
    )
    os.close(follower)
    terminal = os.read(leader, 65536).decode()
    os.close(leader)
    assert proc.returncode == 0
    assert "verifying" in terminal
    assert proc.stdout.decode().startswith("intact: 20 events")


def _loaded(data: Path) -> list[dict[str, object]]:
    events = [
        make_event(service="payments" if i % 2 else "auth", reason=f"ticket {i}") for i in range(30)
    ]
    assert run("ingest", "-", data=data, stdin=_jsonl(events)).returncode == 0
    return events


def test_search_json_is_one_event_per_line_newest_first(data: Path) -> None:
    """search --json prints one event per line with its seq, newest (highest time, seq) first."""
    _loaded(data)
    result = run("search", "service:payments", "--json", "--limit", "100", data=data)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 15
    assert all(e["service"] == "payments" for e in lines)
    assert [e["seq"] for e in lines] == sorted((e["seq"] for e in lines), reverse=True)


def test_search_limit_spans_pages_and_prints_a_cursor(data: Path) -> None:
    """--limit returns exactly N events and says how to continue."""
    _loaded(data)
    result = run("search", "", "--json", "--limit", "4", data=data)
    assert len(result.stdout.splitlines()) == 4
    cursor = result.stderr.split("--cursor ")[1].strip()
    more = run("search", "", "--json", "--limit", "100", "--cursor", cursor, data=data)
    assert len(more.stdout.splitlines()) == 26


def test_search_all_streams_everything(data: Path) -> None:
    """--all returns every match whatever the limit."""
    _loaded(data)
    result = run("search", "ticket", "--all", "--json", data=data)
    assert len(result.stdout.splitlines()) == 30


def test_search_table_on_a_terminal_is_readable(data: Path) -> None:
    """Without --json, results are an aligned table with a header."""
    _loaded(data)
    result = run("search", "service:auth", "--limit", "3", data=data)
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["time", "seq", "service", "action", "outcome", "actor", "target"]
    assert len(rows) == 3 and all(" auth " in r for r in rows)


def test_search_error_shows_a_caret(data: Path) -> None:
    """A bad query is a one-line-plus-caret error with a suggestion and exit 1."""
    result = run("search", "servce:payments", data=data)
    assert result.returncode == 1
    assert "did you mean 'service'" in result.stderr
    assert "^" in result.stderr and "Traceback" not in result.stderr


def test_count_and_count_by(data: Path) -> None:
    """count prints the total; --by prints a value/count table or JSON lines."""
    _loaded(data)
    assert run("count", "service:auth", data=data).stdout.strip() == "15"
    lines = run("count", "", "--by", "service", "--json", data=data).stdout.splitlines()
    assert sorted(json.loads(x)["count"] for x in lines) == [15, 15]


def test_histogram_json(data: Path) -> None:
    """histogram --json gives one bucket per line whose counts add up."""
    _loaded(data)
    lines = run("histogram", "", "--json", data=data).stdout.splitlines()
    assert sum(json.loads(x)["count"] for x in lines) == 30


def test_trace_timeline(data: Path) -> None:
    """trace prints the events of one request as a timeline with offsets."""
    events = [make_event(context={"request_id": "req-xyz", "function": f"f{i}"}) for i in range(3)]
    run("ingest", "-", data=data, stdin=_jsonl([*events, make_event()]))
    table = run("trace", "req-xyz", data=data).stdout.splitlines()
    assert table[0].split()[:3] == ["time", "offset", "service"]
    assert len(table) == 4 and "+0.0 ms" in table[1]
    as_json = run("trace", "req-xyz", "--json", data=data).stdout.splitlines()
    assert [json.loads(x)["context"]["function"] for x in as_json] == ["f0", "f1", "f2"]


def test_unexpected_failure_is_one_line_not_a_traceback(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure nobody foresaw still ends in one line on stderr and exit 70."""
    from click.testing import CliRunner

    import glasslog.cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("worker pool died")

    monkeypatch.setattr(glasslog.cli, "ingest_lines", broken)
    monkeypatch.delenv("GLASSLOG_DEBUG", raising=False)
    result = CliRunner().invoke(glasslog.cli.main, ["ingest", "-", "--data", str(data)], input="")
    assert result.exit_code == 70
    assert "unexpected RuntimeError: worker pool died" in result.output
    assert "Traceback" not in result.output
