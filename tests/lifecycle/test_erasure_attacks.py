"""Attacks on erasure, on both backends: a body rewritten as if erased but without an
authorising ``erasure.erase`` event, a forged commitment, an altered erasure time, and
erasure rows inserted by hand. ``glasslog verify`` says TAMPERED for each, at the seq.

The attacker has write access to the database and bypasses every guard
(``tests.attacker``); on SQLite it also knows the values and salts (it has the file),
so it can compute the very commitment an honest erasure would keep.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from glasslog.derived import search_text
from glasslog.ledger.commit import Erased, decode_commits, encode_commits, erase_body
from glasslog.query.words import tsvector_literal
from glasslog.store import open_store
from tests.attacker import run_as_attacker
from tests.conftest import make_event
from tests.lifecycle.conftest import Data

SUBJECT = "u-attacked"


def _seed(data: Data) -> int:
    """Six events, the fourth one the subject's with a name and an e-mail address; its seq."""
    events = [make_event(service="shop") for _ in range(6)]
    events[3]["actor"] = {"id": SUBJECT, "name": "Mallory Target", "email": "target@example.org"}
    data.ingest(events)
    return 3


def _tampered(data: Data, seq: int, words: str) -> None:
    done = data.run("verify")
    assert done.returncode == 1, done.stdout
    assert "TAMPERED" in done.stderr and f"seq {seq}" in done.stderr and words in done.stderr


def _row(data: Data, seq: int) -> tuple[str, str, bytes]:
    store = open_store(data.path.joinpath("glasslog.db") if data.store is None else data.store)
    try:
        stored = store.get(seq)
        return stored.body, stored.commits, stored.salts
    finally:
        store.close()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _update(data: Data, seq: int, body: str, commits: str, salts: bytes) -> None:
    """Write the row's stored columns as a careful attacker does: on PostgreSQL with the
    full-text words of the new body too, so that only the erasure checks can object."""
    if data.store is None:
        run_as_attacker(
            str(data.path / "glasslog.db"),
            [
                f"UPDATE events SET body = {_quote(body)}, commits = {_quote(commits)},"
                f" salts = X'{salts.hex()}' WHERE seq = {seq}"
            ],
        )
        return
    words = tsvector_literal(search_text(json.loads(body)))
    run_as_attacker(
        data.store,
        [
            f"UPDATE events SET body = {_quote(body)}, commits = {_quote(commits)},"
            f" salts = '\\x{salts.hex()}'::bytea, tsv = {_quote(words)}::tsvector"
            f" WHERE seq = {seq}"
        ],
    )


def _erase_by_hand(data: Data, seq: int, moment: str) -> None:
    """Erase /actor/name in the row exactly as glasslog would, but record nothing."""
    body, commits, salts = _row(data, seq)
    paths, spans = decode_commits(commits)
    index = paths.index(("actor", "name"))
    new_body, new_spans, new_salts = erase_body(body, spans, salts, {index}, moment)
    _update(data, seq, new_body, encode_commits(paths, new_spans), new_salts)


def test_a_body_rewritten_without_an_erasure_event_is_tampering(data: Data) -> None:
    """A value replaced by the marker and its true commitment keeps the leaf, yet no
    erasure records it: verify says the body was rewritten without authorisation."""
    seq = _seed(data)
    _erase_by_hand(data, seq, "2026-01-01T00:00:00.000000Z")
    _tampered(data, seq, "without an authorising erasure.erase event")


def test_an_erasure_row_pointing_at_an_event_that_does_not_list_it_is_tampering(
    data: Data,
) -> None:
    """A forged erasures row naming a real, signed erasure.erase event that does not list
    the field is caught: that event lists other seqs."""
    seq = _seed(data)
    other = make_event(service="shop", actor={"id": "u-else", "name": "Someone Else"})
    data.ingest([other])
    summary = data.json("erase", "--subject", "actor.id=u-else", "--reason", "request")
    (by,) = summary["authorised_by"]
    moment = data.json("get", str(by))["time"]
    _erase_by_hand(data, seq, moment)
    spec = str(data.path / "glasslog.db") if data.store is None else data.store
    time_us = _epoch_us(moment)
    run_as_attacker(
        spec,
        [
            "INSERT INTO erasures (seq, path, time, by_seq)"
            f" VALUES ({seq}, '/actor/name', {time_us}, {by})"
        ],
    )
    _tampered(data, seq, f"the erasure.erase event at seq {by} does not list it")


def _epoch_us(moment: str) -> int:
    from glasslog.event import epoch_us, parse_time

    return epoch_us(parse_time(moment))


def _erased_for_real(data: Data) -> tuple[int, str, str, bytes]:
    seq = _seed(data)
    done = data.json("erase", "--subject", f"actor.id={SUBJECT}", "--reason", "request")
    assert done["fields"] >= 2 and data.json("verify")["erased"] == done["fields"]
    return (seq, *_row(data, seq))


def test_a_forged_commitment_is_tampering(data: Data) -> None:
    """Another commitment in place of the one the erasure kept changes the leaf."""
    seq, body, commits, salts = _erased_for_real(data)
    paths, spans = decode_commits(commits)
    forged: list[Any] = list(spans)
    for i, span in enumerate(spans):
        if isinstance(span, Erased):
            forged[i] = Erased(span.start, span.end, "A" * 43 + "=")
    _update(data, seq, body, encode_commits(paths, forged), salts)
    _tampered(data, seq, "does not match the leaf hash")


def test_an_altered_erasure_time_is_tampering(data: Data) -> None:
    """The marker's time must be the authorising event's: another one is caught."""
    seq, body, commits, salts = _erased_for_real(data)
    event = json.loads(body)
    moment = event["actor"]["name"]["$erased"]
    later = (
        moment[:2] + str(int(moment[2:4]) + 1).zfill(2) + moment[4:]
    )  # a year later, same length
    _update(data, seq, body.replace(moment, later), commits, salts)
    _tampered(data, seq, "the erasure was altered")


def test_an_erasure_row_inserted_by_hand_is_tampering(data: Data) -> None:
    """An erasures row for a field whose value is still stored is caught."""
    seq, _, _, _ = _erased_for_real(data)
    spec = str(data.path / "glasslog.db") if data.store is None else data.store
    run_as_attacker(
        spec,
        [f"INSERT INTO erasures (seq, path, time, by_seq) VALUES ({seq - 1}, '/actor/id', 0, 0)"],
    )
    _tampered(data, seq - 1, "an erasure row was inserted by hand")


@pytest.mark.parametrize("data", ["sqlite"], indirect=True)
def test_the_store_refuses_an_update_without_an_erasure_row(data: Data) -> None:
    """SQLite's trigger refuses an UPDATE of an event row that no erasure records."""
    import sqlite3

    seq = _seed(data)
    conn = sqlite3.connect(data.path / "glasslog.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE events SET body = body WHERE seq = ?", (seq,))
    finally:
        conn.close()
