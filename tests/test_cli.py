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
    """glasslog demo --walkthrough ingests, proves offline and verifies on a fresh directory."""
    command = ["demo", "--walkthrough", "--data", str(tmp_path / "demo"), "--events", "600"]
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
    assert len(table) == 4 and "+0 µs" in table[1]
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


# --------------------------------------------------------------------------------------
# Queries that start with '-', and options in any position
# --------------------------------------------------------------------------------------


def glasslog(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``glasslog ARGS`` exactly as given (no --data added)."""
    return subprocess.run(
        [sys.executable, "-m", "glasslog", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _outcomes(data: Path) -> None:
    events = [
        make_event(
            service="auth" if i % 2 else "payments", outcome="failure" if i < 4 else "success"
        )
        for i in range(10)
    ]
    assert run("ingest", "-", data=data, stdin=_jsonl(events)).returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ["-outcome:success service:auth"],
        ["--limit", "5", "-outcome:success service:auth"],
        ["-outcome:success service:auth", "--limit", "5"],
        ["--sort", "-time", "-outcome:success service:auth", "--limit", "5"],
        ["--limit=5", "--", "-outcome:success service:auth"],
    ],
)
def test_search_takes_a_query_that_starts_with_a_dash(data: Path, args: list[str]) -> None:
    """A leading '-' negates; options work before or after the query, and after '--'."""
    _outcomes(data)
    result = (
        run("search", *args, "--json", data=data)
        if "--" not in args
        else glasslog("search", "--json", "--data", str(data), *args)
    )
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(found) == 2
    assert all(e["service"] == "auth" and e["outcome"] == "failure" for e in found)


def test_count_and_histogram_take_a_query_that_starts_with_a_dash(data: Path) -> None:
    """count, count --by and histogram read '-outcome:success' as the query."""
    _outcomes(data)
    assert run("count", "-outcome:success", data=data).stdout.strip() == "4"
    by = run("count", "-outcome:success", "--by", "service", "--json", data=data)
    assert by.returncode == 0, by.stderr
    assert sorted(json.loads(x)["count"] for x in by.stdout.splitlines()) == [2, 2]
    histogram = run("histogram", "--json", "-outcome:success", data=data)
    assert histogram.returncode == 0, histogram.stderr
    assert sum(json.loads(x)["count"] for x in histogram.stdout.splitlines()) == 4


def test_trace_takes_an_id_that_starts_with_a_dash(data: Path) -> None:
    """A request id may start with '-' too."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event(context={"request_id": "-r1"})]))
    result = run("trace", "-r1", "--json", data=data)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_dash_h_alone_is_help_and_longer_words_are_queries(data: Path) -> None:
    """'-h' is help everywhere; '-host:x' starting with it is still a query."""
    assert "glasslog search [OPTIONS] [QUERY]" in run("search", "-h", data=data).stdout
    assert run("proof", "inclusion", "-h", data=data).stdout.startswith("Usage:")
    result = run("search", "-host:x", data=data)
    assert result.returncode == 1
    assert "did you mean 'source.host' or 'context.host'?\n  -host:x\n   ^" in result.stderr


@pytest.mark.parametrize("command", ["search", "count", "histogram"])
def test_a_misspelt_option_is_still_an_error(data: Path, command: str) -> None:
    """'--limt 5' is "No such option", never searched for; only single-dash words are queries."""
    result = run(command, "x", "--limt", "5", data=data)
    assert result.returncode == 2
    assert "No such option" in result.stderr and "--limt" in result.stderr


def test_data_and_store_before_the_command_name(data: Path, tmp_path: Path) -> None:
    """--data works before the command (as git -C), from GLASSLOG_DATA, and the command's own
    --data wins over the one before it; --store too."""
    _outcomes(data)
    other = tmp_path / "other"
    assert glasslog("init", "--data", str(other)).returncode == 0
    assert glasslog("--data", str(data), "count").stdout.strip() == "10"
    assert glasslog("--data", str(data), "proof", "inclusion", "3").returncode == 0
    assert glasslog("count", env={"GLASSLOG_DATA": str(data)}).stdout.strip() == "10"
    both = glasslog("--data", str(other), "count", "--data", str(data))
    assert both.stdout.strip() == "10", both.stderr
    over_env = glasslog("--data", str(other), "count", env={"GLASSLOG_DATA": str(data)})
    assert over_env.stdout.strip() == "0", over_env.stderr
    store = str(data / "glasslog.db")
    assert glasslog("--store", store, "count", "--data", str(other)).stdout.strip() == "10"


# --------------------------------------------------------------------------------------
# Human-readable output cannot be forged
# --------------------------------------------------------------------------------------

FAKE_ROW = "\n2026-11-26 10:00:00.000  999  auth  user.login  success  admin  cards"


def test_table_output_escapes_what_events_hold(data: Path) -> None:
    """Newlines, ANSI escapes and bidi overrides in an event print as visible escapes: the
    table has one row per event, and --json still gives the exact values."""
    forged = make_event(
        reason=f"ok{FAKE_ROW}",
        target={"type": "table", "id": f"t\x1b[2J{FAKE_ROW}"},
        actor={"id": "mallory\u202enimda", "type": "user"},
        context={"request_id": "req-forged", "function": "f\x1b[31mred"},
    )
    run("ingest", "-", data=data, stdin=_jsonl([forged, make_event()]))
    table = run("search", data=data).stdout
    assert "\x1b" not in table and "\u202e" not in table
    assert len(table.splitlines()) == 1 + 2  # the header and one row per event
    assert "t\\x1b[2J\\n2026-11-26 10:00:00.000  999" in table
    assert "mallory\\u202enimda" in table
    trace = run("trace", "req-forged", data=data).stdout
    assert len(trace.splitlines()) == 2 and "f\\x1b[31mred" in trace
    by_actor = run("count", "--by", "user", data=data).stdout
    assert len(by_actor.splitlines()) == 3 and "mallory\\u202enimda" in by_actor
    as_json = run("search", "--json", "req-forged", data=data).stdout
    assert json.loads(as_json)["target"]["id"] == forged["target"]["id"]


def test_error_messages_escape_control_characters(tmp_path: Path) -> None:
    """An error that quotes user input stays one line with the input's controls escaped."""
    result = glasslog("vkey", "--data", str(tmp_path / f"x{FAKE_ROW}\x1b[2J"))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "\x1b" not in result.stderr and "x\\n2026-11-26" in result.stderr


def test_query_error_caret_lines_up_under_long_and_escaped_queries(data: Path) -> None:
    """The caret is under the culprit even after a control character or in a long query."""
    for query in ["a\x1bb actr.id:x", "word " * 40 + "actr.id:x " + "word " * 40]:
        result = run("search", query, data=data)
        assert result.returncode == 1
        message, line, caret = result.stderr.rstrip("\n").split("\n")
        assert "did you mean 'actor.id'" in message
        assert line[caret.index("^") :].startswith("actr.id:x")
        assert len(line) < 100


# --------------------------------------------------------------------------------------
# Answers that say what they mean
# --------------------------------------------------------------------------------------


def test_count_by_labels_events_without_the_field(data: Path) -> None:
    """Events lacking the field are '(none)' in the table and "missing": true in JSON."""
    events = [make_event(metadata={"db": {"table": "cards"}}), make_event(metadata={})]
    run("ingest", "-", data=data, stdin=_jsonl([*events, make_event(metadata={"db": None})]))
    table = run("count", "--by", "metadata.db.table", data=data).stdout.splitlines()
    assert [line.split() for line in table[1:]] == [["(none)", "2"], ["cards", "1"]]
    assert "None" not in "".join(table)
    lines = run("count", "--by", "metadata.db", "--json", data=data).stdout.splitlines()
    assert [json.loads(x) for x in lines] == [
        {"value": None, "count": 1, "missing": True},
        {"value": None, "count": 1, "missing": False},
        {"value": {"table": "cards"}, "count": 1, "missing": False},
    ]
    shown = run("count", "--by", "metadata.db", data=data).stdout.splitlines()[1:]
    assert [line.split()[0] for line in shown] == ["(none)", "null", '{"table":']


def test_count_by_table_tells_strings_from_numbers(data: Path) -> None:
    """The string "3" and the number 3 are two groups, and the table shows which is which."""
    events = [make_event(metadata={"n": "3"}), make_event(metadata={"n": 3})]
    run("ingest", "-", data=data, stdin=_jsonl(events))
    shown = run("count", "--by", "metadata.n", data=data).stdout.splitlines()[1:]
    assert sorted(line.split()[0] for line in shown) == ['"3"', "3"]


def test_histogram_shows_empty_buckets(data: Path) -> None:
    """Buckets without events are listed with a count of 0, in the table and in --json."""
    times = ["2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z", "2026-11-26T10:29:30Z"]
    run("ingest", "-", data=data, stdin=_jsonl([make_event(time=t) for t in times]))
    lines = [json.loads(x) for x in run("histogram", "--json", data=data).stdout.splitlines()]
    assert [x["count"] for x in lines] == [2, *[0] * 28, 1]
    assert {x["seconds"] for x in lines} == {60}
    assert lines[1]["start"] == "2026-11-26T10:01:00.000000Z"
    table = run("histogram", data=data).stdout.splitlines()
    assert len(table) == 1 + 30
    assert table[2].split() == ["2026-11-26", "10:01:00.000", "0"]
    window = run(
        "histogram", "--json", "after:2026-11-26T09:00Z before:2026-11-26T09:10Z", data=data
    )
    empty = [json.loads(x) for x in window.stdout.splitlines()]
    assert [(x["count"], x["seconds"]) for x in empty] == [(0, 15)] * 40  # 10 min / 15 s


def test_search_table_shows_the_target_not_the_reason(data: Path) -> None:
    """An event without a target has an empty target cell; its reason is not shown there."""
    events = [make_event(reason="because"), make_event(target={"type": "t", "id": "card-7"})]
    run("ingest", "-", data=data, stdin=_jsonl(events))
    rows = run("search", "--sort", "time", data=data).stdout.splitlines()[1:]
    assert "because" not in rows[0] and rows[0].endswith("u-" + rows[0].split("u-")[1])
    assert rows[1].endswith("card-7")


def test_trace_offsets_use_human_units(data: Path) -> None:
    """Offsets read +850 µs, +12.3 ms, +4.2 s and +1 h 30 min, not millions of ms."""
    times = ["10:00:00.000000", "10:00:00.000850", "10:00:00.012300", "10:00:04.200000",
             "11:30:00.000000"]  # fmt: skip
    events = [make_event(time=f"2026-11-26T{t}Z", context={"request_id": "req-h"}) for t in times]
    run("ingest", "-", data=data, stdin=_jsonl(events))
    rows = run("trace", "req-h", data=data).stdout.splitlines()[1:]
    offsets = [row.split("  ")[1].strip() for row in rows]
    assert offsets == ["+0 µs", "+850 µs", "+12.3 ms", "+4.2 s", "+1 h 30 min"]


# --------------------------------------------------------------------------------------
# Error messages that say what is possible
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store", "said"),
    [
        ("mysql://admin:hunter2@db.example/audit", "unsupported store mysql://…"),
        ("MONGODB://admin:hunter2@db.example", "unsupported store mongodb://…"),
        ("sqlite:///var/lib/hunter2.db", "plain file path, not a sqlite: URL"),
        ("Postgresql://admin:hunter2@db.example/audit", "in lowercase, as postgresql://"),
    ],
)
def test_unsupported_store_urls_name_the_scheme_and_never_the_password(
    data: Path, store: str, said: str
) -> None:
    """A URL for another database names its scheme and the supported ones, without echoing
    the rest of the URL (it may hold a password); nothing is created for it."""
    for command in (["init"], ["count"], ["ingest", "-"]):
        result = run(*command, "--store", store, data=data, stdin="")
        assert result.returncode == 1
        assert said in result.stderr
        assert "hunter2" not in result.stderr
    if "://" in store and "sqlite" not in store:
        assert "postgresql://" in run("count", "--store", store, data=data).stderr
    assert not any(p.name.startswith(("mysql", "MONGO", "sqlite")) for p in Path().iterdir())


def _store_without_checkpoint(data: Path, n: int) -> None:
    """Sequence ``n`` more events without signing a checkpoint (an interrupted ingest)."""
    from glasslog.datadir import DataDir
    from glasslog.ingest.pipeline import Preparer, Sequencer, Settings, submit
    from glasslog.store import open_store

    datadir = DataDir(data)
    settings = Settings(checkpoint_every=1 << 40, checkpoint_interval=1e9)
    store = open_store(datadir.store_spec(None))
    try:
        with datadir.writer_lock(), store.lock_writer():
            sequencer = Sequencer(store, datadir.signer(), settings=settings)
            preparer = Preparer(fingerprint_key=datadir.fingerprint_key(), settings=settings)
            assert all(r.ok for r in submit(sequencer, preparer, [make_event() for _ in range(n)]))
    finally:
        store.close()


def test_inclusion_proof_of_an_event_past_the_checkpoint_says_what_to_do(data: Path) -> None:
    """Past the latest checkpoint the error says whether the event exists and how to get it
    covered (never "a larger --size", which no checkpoint has); following it works."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(5)]))
    missing = run("proof", "inclusion", "5", data=data)
    assert missing.returncode == 1
    assert "no event with seq 5: the log holds seqs 0 to 4" in missing.stderr
    _store_without_checkpoint(data, 2)
    pending = run("proof", "inclusion", "5", data=data)
    assert pending.returncode == 1
    assert "not yet covered by a signed checkpoint" in pending.stderr
    assert "larger --size" not in pending.stderr
    assert "glasslog ingest /dev/null" in pending.stderr
    assert run("ingest", "/dev/null", data=data).returncode == 0
    proof = run("proof", "inclusion", "5", data=data)
    assert proof.returncode == 0, proof.stderr
    assert json.loads(proof.stdout)["tree_size"] == 7
    small = run("proof", "inclusion", "3", "--size", "2", data=data)
    assert "give a --size from 4 to 7" in small.stderr


# --------------------------------------------------------------------------------------
# --json everywhere
# --------------------------------------------------------------------------------------


def _leaf_commands() -> list[list[str]]:
    import click

    from glasslog.cli import main

    def walk(group: click.Group, prefix: list[str]) -> list[list[str]]:
        out: list[list[str]] = []
        for name, command in sorted(group.commands.items()):
            if isinstance(command, click.Group):
                out += walk(command, [*prefix, name])
            else:
                out.append([*prefix, name])
        return out

    return walk(main, [])


def test_every_command_that_prints_a_result_takes_json() -> None:
    """Every command has --json, except demo (a narrated walkthrough, not a result)."""
    from glasslog.cli import main

    lacking = []
    for words in _leaf_commands():
        command: object = main
        for word in words:
            command = command.commands[word]  # type: ignore[attr-defined]
        names = {o for p in command.params for o in p.opts}  # type: ignore[attr-defined]
        if "--json" not in names:
            lacking.append(" ".join(words))
    # They print for people, then run until stopped.
    assert lacking == ["demo", "serve", "witness serve"]


def test_json_output_of_every_command(tmp_path: Path) -> None:
    """With --json each command prints JSON (one value per line) with the documented keys."""
    data = tmp_path / "log"

    def out(*args: str, stdin: str | None = None) -> list[dict[str, object]]:
        result = run(*args, "--json", data=data, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    (init,) = out("init", "--origin", "test.example/json")
    assert set(init) == {"vkey", "origin", "created", "upgraded_from"}
    assert init["origin"] == "test.example/json" and init["created"] is True
    events = [make_event(context={"request_id": "req-j"}) for _ in range(3)]
    (summary,) = out("ingest", "-", stdin=_jsonl(events))
    assert summary == {"accepted": 3, "duplicates": 0, "rejected": []}
    (event,) = out("get", "1")
    assert event["seq"] == 1
    (cp,) = out("checkpoint")
    assert cp["size"] == 3 and cp["origin"] == "test.example/json"
    assert cp["note"] == run("checkpoint", data=data).stdout
    assert (
        base64.b64decode(str(cp["root"]))
        == verify_checkpoint(str(cp["note"]), verifier=Verifier.from_vkey(str(init["vkey"]))).root
    )
    assert out("vkey") == [{"vkey": init["vkey"], "origin": "test.example/json"}]
    (inclusion,) = out("proof", "inclusion", "1")
    assert inclusion["root"] == cp["root"]
    (consistency,) = out("proof", "consistency", "1", "3")
    assert consistency["root2"] == cp["root"]
    (report,) = out("verify")
    assert report["intact"] is True and report["events"] == 3 and report["pending"] == 0
    assert len(out("search", "")) == 3
    assert out("count", "") == [{"count": 3, "exact": True}]
    assert sum(int(str(b["count"])) for b in out("histogram", "")) == 3
    assert len(out("trace", "req-j")) == 3


def test_verify_json_reports_tampering(data: Path) -> None:
    """verify --json says intact: false with the seq, exits 1 and explains on stderr."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(5)]))
    conn = sqlite3.connect(data / "glasslog.db")
    triggers = [
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
    ]
    for name in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute("UPDATE events SET body = replace(body, 'payments', 'paymentz') WHERE seq = 2")
    conn.commit()
    conn.close()
    result = run("verify", "--json", data=data)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["intact"] is False and report["seq"] == 2
    assert "TAMPERED" in result.stderr


# --------------------------------------------------------------------------------------
# Numbers out of range
# --------------------------------------------------------------------------------------

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["get", HUGE], "a seq is at most 9223372036854775807"),
        (["get", "0" * 5000 + "1" * 5000], "a seq is at most"),
        (["search", f"seq:{HUGE}"], "out of range"),
        (["count", f"seq:{HUGE}"], "out of range"),
        (["histogram", f"seq:{HUGE}"], "out of range"),
        (["search", f"seq>{HUGE}"], "outside ±(2**53-1)"),
        (["search", f"metadata.rows<{HUGE}"], "outside ±(2**53-1)"),
        (["proof", "inclusion", HUGE], "is not in the range"),
        (["proof", "inclusion", "1", "--size", HUGE], "is not in the range"),
        (["proof", "consistency", "1", HUGE], "is not in the range"),
        (["search", "--cursor", base64.urlsafe_b64encode(
            f'[1,"x",{HUGE},{HUGE}]'.encode()).decode().rstrip("="), ""],
         "not one glasslog issued"),
    ],
)  # fmt: skip
def test_out_of_range_numbers_are_clean_errors(data: Path, args: list[str], said: str) -> None:
    """A number past 64 bits anywhere is a one-line error, never "unexpected OverflowError"."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(3)]))
    result = run(*args, data=data)
    assert result.returncode in (1, 2), result.stderr
    assert said in result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr


def test_huge_numbers_that_cannot_match_find_nothing(data: Path) -> None:
    """A metadata value past 2**53 is still a valid value to look for: it matches nothing."""
    run("ingest", "-", data=data, stdin=_jsonl([make_event() for _ in range(3)]))
    for command in ("search", "count", "histogram"):
        result = run(command, f"metadata.rows:{HUGE}", "--json", data=data)
        assert result.returncode == 0, result.stderr
    assert run("count", f"metadata.rows:{HUGE}", data=data).stdout.strip() == "0"
    assert run("search", "--limit", HUGE, "", "--json", data=data).returncode == 0


def test_an_empty_ingest_then_more_events(data: Path) -> None:
    """An empty input signs the empty tree; the next ingest extends it (every tree does)."""
    assert run("ingest", "-", data=data, stdin="").returncode == 0
    assert run("checkpoint", data=data).stdout.split("\n")[1] == "0"
    later = run("ingest", "-", data=data, stdin=_jsonl([make_event(), make_event()]))
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout)["accepted"] == 2
    assert run("verify", data=data).returncode == 0
