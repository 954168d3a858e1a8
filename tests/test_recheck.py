"""Search and trace results are rechecked against their signed bodies (issue 9 §2).

Each attack changes derived data — a column, the field index, the full-text index —
so that the database offers an event that does not match, while the signed body
stays as it was. The event must not be shown, and must be reported: in
``Page.mismatched`` / ``Timeline.mismatched``, and by the CLI as TAMPERED with exit
status 1. Every attack is first shown to work on the database (``unsafe_trust_indexes=True``
returns the event), so each test fails when the recheck is taken away.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from glasslog.errors import IntegrityError
from glasslog.log import Log
from glasslog.testing import TemporaryLog
from tests.attacker import run_as_attacker
from tests.conftest import BACKENDS, make_event, scratch_database
from tests.test_cli import _jsonl, run

N = 24


def _events() -> list[dict[str, Any]]:
    """Events with a metadata tag, an outcome, and a request and trace id each of their own."""
    return [
        make_event(
            outcome="failure" if i % 4 == 0 else "success",
            context={"request_id": f"req-{i}", "trace_id": f"tr-{i}"},
            metadata={"tag": ["user", "ops"][i % 2]},
            reason=f"routine change {i}",
        )
        for i in range(N)
    ]


def _attack(tlog: TemporaryLog, attack: dict[str, list[str]]) -> None:
    backend = "postgres" if tlog.spec.startswith("postgresql://") else "sqlite"
    run_as_attacker(tlog.spec, attack[backend])


def _seqs(log: Log, query: str, *, recheck: bool = True) -> list[int]:
    return [e["seq"] for e in log.search(query, limit=100, unsafe_trust_indexes=not recheck).events]


def _forge_tag(seq: int) -> dict[str, list[str]]:
    """A field-index row giving event ``seq`` the tag admin-override, which it lacks."""
    insert = (
        "INSERT INTO fields (key, value, time, seq) SELECT k.id, {value}, e.time, e.seq"
        " FROM field_keys k, events e WHERE k.path = 'metadata.tag' AND e.seq = {seq}"
    )
    return {
        "sqlite": [insert.format(value="'admin-override'", seq=seq)],
        "postgres": [insert.format(value="'\"admin-override\"'::jsonb", seq=seq)],
    }


def test_a_forged_field_index_row_is_not_a_match(tlog: TemporaryLog) -> None:
    """metadata.tag:admin-override does not return an event whose body has another tag,
    though the field index says it has that one; the event is named instead."""
    tlog.submit(_events())
    _attack(tlog, _forge_tag(7))
    assert _seqs(tlog.log, "metadata.tag:admin-override", recheck=False) == [7]
    page = tlog.log.search("metadata.tag:admin-override")
    assert page.events == []
    assert page.mismatched == (7,)


def test_a_changed_outcome_column_is_not_a_match(tlog: TemporaryLog) -> None:
    """outcome:failure does not return an event whose column says failure but whose body
    says success."""
    tlog.submit(_events())
    genuine = [i for i in reversed(range(N)) if i % 4 == 0]
    edit = "UPDATE events SET outcome = 'failure' WHERE seq = 5"
    _attack(tlog, {"sqlite": [edit], "postgres": [edit]})
    assert 5 in _seqs(tlog.log, "outcome:failure", recheck=False)
    page = tlog.log.search("outcome:failure", limit=100)
    assert [e["seq"] for e in page.events] == genuine
    assert page.mismatched == (5,)


def test_a_forged_full_text_entry_is_not_a_match(tlog: TemporaryLog) -> None:
    """A word added to an event's full-text entry finds nothing: the body lacks it."""
    tlog.submit(_events())
    if tlog.spec.startswith("postgresql://"):
        forge = "UPDATE events SET tsv = tsv || 'zebraword'::tsvector WHERE seq = 9"
    else:
        forge = _sqlite_forged_word(tlog.spec, 9)
    run_as_attacker(tlog.spec, [forge])
    assert _seqs(tlog.log, "zebraword", recheck=False) == [9]
    page = tlog.log.search("zebraword")
    assert page.events == []
    assert page.mismatched == (9,)


def _sqlite_forged_word(spec: str, seq: int) -> str:
    """SQL adding the word zebraword to event ``seq`` in SQLite's full-text index.

    A contentless index takes a second entry for the seq; one that keeps its text
    (``events_fts_content``) refuses that, and has that text changed instead.
    """
    with closing(sqlite3.connect(spec)) as conn:
        (kept,) = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'events_fts_content'"
        ).fetchone()
    if kept:
        return f"UPDATE events_fts SET text = text || ' zebraword' WHERE rowid = {seq}"
    return f"INSERT INTO events_fts (rowid, text) VALUES ({seq}, 'zebraword')"


def test_a_changed_request_id_column_is_not_in_the_timeline(tlog: TemporaryLog) -> None:
    """trace of a request leaves out an unrelated event whose request_id column was set
    to that request's id, and names it."""
    tlog.submit(_events())
    edit = "UPDATE events SET request_id = 'req-3' WHERE seq = 12"
    _attack(tlog, {"sqlite": [edit], "postgres": [edit]})
    timeline = tlog.log.trace("req-3")
    assert [e["seq"] for e in timeline] == [3]
    assert timeline.mismatched == (12,)
    assert [e["seq"] for e in tlog.log.trace("tr-12")] == [12], "its own trace still has it"


def test_pages_move_past_dropped_rows(tlog: TemporaryLog) -> None:
    """Paging through tampered results shows every genuine match once and in order, and
    names each dropped row once: the cursor moves past rows that are not shown."""
    tlog.submit(_events())
    tampered = [1, 2, 3, 6, 7, 10, 11]
    edit = f"UPDATE events SET outcome = 'failure' WHERE seq IN ({', '.join(map(str, tampered))})"
    _attack(tlog, {"sqlite": [edit], "postgres": [edit]})
    shown: list[int] = []
    dropped: list[int] = []
    sizes = []
    cursor = None
    while True:
        page = tlog.log.search("outcome:failure", limit=3, cursor=cursor)
        shown += [e["seq"] for e in page.events]
        dropped += page.mismatched
        sizes.append(len(page.events))
        cursor = page.cursor
        if cursor is None:
            break
    assert shown == [i for i in reversed(range(N)) if i % 4 == 0]
    assert sorted(dropped) == tampered
    assert min(sizes) < 3, "some page held fewer events than asked for"


def test_an_intact_store_reports_nothing(tlog: TemporaryLog) -> None:
    """Without tampering, every kind of search returns what the database found, with no
    row reported."""
    tlog.submit(_events())
    for query in ["metadata.tag:ops", "outcome:failure", "routine", '"change 7"', ""]:
        page = tlog.log.search(query, limit=100)
        assert page.mismatched == ()
        assert [e["seq"] for e in page.events] == _seqs(tlog.log, query, recheck=False)
        assert page.events
    assert [e["seq"] for e in tlog.log.trace("tr-5")] == [5]
    assert tlog.log.trace("tr-5").mismatched == ()


# -- the command line --------------------------------------------------------------------

TAMPERED = (
    "TAMPERED: 1 event(s) (seq 7) did not match the query when rechecked against their "
    "signed bodies; not shown; run `glasslog verify`"
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_reports_a_forged_match_and_exits_1(tmp_path: Path, backend: str) -> None:
    """search prints the TAMPERED line, naming the seq, and exits 1, in text and JSON; so
    does trace for a forged request id."""
    data = tmp_path / "log"
    if backend == "sqlite":
        _cli_attack(data, None)
        return
    with scratch_database() as url:
        _cli_attack(data, url)


def _cli_attack(data: Path, url: str | None) -> None:
    store = [] if url is None else ["--store", url]
    assert run("init", "--origin", "test.example/recheck", *store, data=data).returncode == 0
    assert run("ingest", "-", *store, data=data, stdin=_jsonl(_events())).returncode == 0
    spec = url or str(data / "glasslog.db")
    edit = "UPDATE events SET request_id = 'req-3' WHERE seq = 12"
    backend = "sqlite" if url is None else "postgres"
    run_as_attacker(spec, [*_forge_tag(7)[backend], edit])

    text = run("search", "metadata.tag:admin-override", *store, data=data)
    assert text.returncode == 1
    assert text.stdout == ""
    assert text.stderr.splitlines() == ["no matching events", f"glasslog: error: {TAMPERED}"]

    as_json = run("search", "metadata.tag:admin-override", "--json", *store, data=data)
    assert as_json.returncode == 1
    assert as_json.stdout == ""
    assert TAMPERED in as_json.stderr

    trace = run("trace", "req-3", "--json", *store, data=data)
    assert trace.returncode == 1
    assert [json.loads(line)["seq"] for line in trace.stdout.splitlines()] == [3]
    assert "(seq 12) did not match the request or trace id when rechecked" in trace.stderr


def test_a_lookup_by_id_returns_only_the_event_with_that_id(tlog: TemporaryLog) -> None:
    """get(id) goes through derived data (the id column; on PostgreSQL event_keys too): an id
    moved onto another event's row is reported as tampering, not shown as that event."""
    tlog.submit(_events())
    forged = "0192f0c1-8a3b-7c4d-9e2f-0123456789ab"
    hexid = forged.replace("-", "")
    _attack(tlog, {
        "sqlite": [f"UPDATE events SET id = x'{hexid}' WHERE seq = 5"],
        "postgres": [f"UPDATE events SET id = '\\x{hexid}' WHERE seq = 5",
                     f"UPDATE event_keys SET id = '\\x{hexid}' WHERE seq = 5"],
    })  # fmt: skip
    assert tlog.store.get_by_id(bytes.fromhex(hexid)).seq == 5, "the attack works on the store"
    with pytest.raises(IntegrityError, match="returned seq 5, whose signed body has another id"):
        tlog.log.get(forged)
