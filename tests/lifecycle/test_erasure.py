"""``glasslog erase`` end to end, on both backends, through the real command: the leaves,
the tree and every proof stay valid, ``verify`` passes and counts the erased fields,
reads and evidence show them as erased, and the erased values are nowhere in the store
(no table holds them; on SQLite, no byte of the data directory's files)."""

from __future__ import annotations

import base64
import gzip
import json
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from glasslog.ledger.merkle import verify_consistency
from glasslog.store.postgres import APP_ROLE
from tests.conftest import admin_dsn, make_event
from tests.lifecycle.conftest import OLD, Data

SUBJECT = "u-zq-4242"
PERSONAL = {
    "name": "Zebulon Quixote",
    "email": "zebulon.quixote@example.org",
    "ip": "203.0.113.77",
    "user_agent": "Quirkbrowser/9.1 (Xylophonix)",
    "phone": "+44 7700 900123",
}
WORDS = [
    "Zebulon",
    "Quixote",
    "zebulon.quixote",
    "Quirkbrowser",
    "Xylophonix",
    "203.0.113.77",
    "900123",
]
"""The erased values and their words, as they could sit in a body, an index or a page."""

ERASURE_POLICY = '\n[erasure]\npersonal_metadata = ["phone"]\n'


def subject_event(i: int) -> dict[str, Any]:
    """One of the subject's events: every personal field set, and a field that stays."""
    event = make_event(
        service="shop",
        action="checkout",
        actor={"id": SUBJECT, "name": PERSONAL["name"], "email": PERSONAL["email"]},
        metadata={"phone": PERSONAL["phone"], "cart": i},
    )
    event["source"] = {"ip": PERSONAL["ip"], "user_agent": PERSONAL["user_agent"]}
    return event


def seeded(data: Data) -> dict[str, int]:
    """Ten events of others around four of the subject's; their seqs by position."""
    data.policy(ERASURE_POLICY)
    others = [
        make_event(service="shop", actor={"id": "u-other", "name": "Ada Other"}) for _ in range(10)
    ]
    data.ingest(others[:5] + [subject_event(i) for i in range(4)] + others[5:])
    return {"first": 5, "last": 8}


def erase(data: Data, *extra: str) -> dict[str, Any]:
    found: dict[str, Any] = data.json(
        "erase", "--subject", f"actor.id={SUBJECT}", "--reason", "GDPR art. 17, ticket 99", *extra
    )
    return found


def test_erase_then_verify_passes_and_every_proof_stays_valid(data: Data, tmp_path: Path) -> None:
    """Evidence made before the erasure still verifies, evidence made after verifies with
    the erased fields as commitments, the old checkpoint is consistent with the new one,
    and verify passes counting every erased field."""
    seqs = seeded(data)
    before = data.json("checkpoint")
    old_evidence = tmp_path / "before.json"
    old_evidence.write_text(data.ok("get", str(seqs["first"]), "--proof"))
    summary = erase(data)
    assert summary["events"] == 4 and summary["fields"] == 20
    erased = ("/actor/email", "/actor/name", "/metadata/phone", "/source/ip", "/source/user_agent")
    assert summary["paths"] == dict.fromkeys(erased, 4)
    report = data.json("verify")
    assert report["intact"] is True and report["erased"] == 20
    offline = Data(data.path, None)  # verify-event reads no store: the data directory's key
    assert offline.run("verify-event", str(old_evidence)).returncode == 0
    new_evidence = tmp_path / "after.json"
    new_evidence.write_text(data.ok("get", str(seqs["first"]), "--proof"))
    evidence = json.loads(new_evidence.read_text())
    assert set(evidence["erased"]) == set(summary["paths"])
    assert set(evidence["event"]["actor"]["email"]) == {"$commit"}
    assert "/actor/email" not in evidence["salts"] and "/metadata/cart" in evidence["salts"]
    verified = offline.run("verify-event", str(new_evidence))
    assert verified.returncode == 0, verified.stderr
    after = data.json("checkpoint")
    proof = data.json("proof", "consistency", str(before["size"]), str(after["size"]))
    verify_consistency(
        size1=before["size"],
        size2=after["size"],
        root1=base64.b64decode(before["root"]),
        root2=base64.b64decode(after["root"]),
        proof=[base64.b64decode(h) for h in proof["proof"]],
    )


def test_reads_show_erased_fields_and_the_erasure_is_an_event_without_values(data: Data) -> None:
    """get and search show {"$erased": time} where each value was; the erasure is one
    erasure.erase event listing seqs and pointers, and no erased value."""
    seqs = seeded(data)
    summary = erase(data)
    (by,) = summary["authorised_by"]
    erasure = data.json("get", str(by))
    assert erasure["action"] == "erasure.erase" and erasure["category"] == "lifecycle"
    assert erasure["metadata"]["erased"][0][0] == seqs["first"]
    assert not any(word.lower() in json.dumps(erasure).lower() for word in WORDS)
    shown = data.json("get", str(seqs["last"]))
    marker = {"$erased": erasure["time"]}
    assert shown["actor"] == {"id": SUBJECT, "name": marker, "email": marker}
    assert shown["source"] == {"ip": marker, "user_agent": marker}
    assert shown["metadata"] == {"phone": marker, "cart": 3}
    found = data.ok("search", "--json", f"actor.id:{SUBJECT}")
    assert found.count('"$erased"') == 20 and "Zebulon" not in found
    assert data.ok("search", "--json", "Quixote").strip() == ""
    again = erase(data)
    assert again["fields"] == 0 and again["authorised_by"] == []


def _all_rows_sqlite(path: Path) -> str:
    """Every row of every table (FTS5's shadow tables included), and every term its
    full-text index holds (fts5vocab: terms are prefix-compressed in its pages)."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'"
            )
        ]
        rows = [repr(conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables]
        conn.execute("CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, events_fts, 'row')")
        rows.append(" ".join(term for (term,) in conn.execute("SELECT term FROM temp.terms")))
        return "\n".join(rows)
    finally:
        conn.close()


def _all_rows_postgres(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'glasslog'"
            )
        ]
        return "\n".join(
            repr(
                conn.execute(
                    sql.SQL("SELECT t::text FROM glasslog.{} t").format(sql.Identifier(t))
                ).fetchall()
            )
            for t in tables
        )


def test_the_erased_values_are_nowhere_in_the_store(data: Data) -> None:
    """No table holds an erased value or one of its words after the command returns; on
    SQLite no file of the data directory does either (database, -wal, -shm)."""
    seeded(data)
    rows = (
        _all_rows_sqlite(data.path / "glasslog.db")
        if data.store is None
        else _all_rows_postgres(data.store)
    )
    assert "Zebulon" in rows and "quixote" in rows  # the check below would see them
    erase(data)
    rows = (
        _all_rows_sqlite(data.path / "glasslog.db")
        if data.store is None
        else _all_rows_postgres(data.store)
    )
    for word in WORDS:
        assert word.lower() not in rows.lower(), word
    assert "Ada Other" in rows  # the others' values stay
    if data.store is None:
        files = sorted(p for p in data.path.iterdir() if p.is_file())
        assert any(p.name == "glasslog.db" for p in files)
        for file in files:
            raw = file.read_bytes().lower()
            for word in WORDS:
                assert word.lower().encode() not in raw, (file.name, word)


def test_a_dry_run_changes_nothing(data: Data) -> None:
    """--dry-run says what it would erase and writes nothing: no event, no change."""
    seeded(data)
    before = data.ok("search", "--json", "--all", "")
    planned = erase(data, "--dry-run")
    assert planned["dry_run"] is True and planned["fields"] == 20 and planned["authorised_by"] == []
    assert data.ok("search", "--json", "--all", "") == before
    assert data.json("verify")["erased"] == 0


def test_a_hold_blocks_the_erasure(data: Data) -> None:
    """An active legal hold on one of the subject's events refuses the whole erasure,
    naming the hold; once released, the erasure goes through."""
    seeds = seeded(data)
    held = data.json("hold", "add", f"actor.id:{SUBJECT} AND metadata.cart:2", "--reason", "case 7")
    refused = data.run("erase", "--subject", f"actor.id={SUBJECT}", "--reason", "request")
    assert (
        refused.returncode == 1
        and held["id"] in refused.stderr
        and "nothing was erased" in refused.stderr
    )
    assert data.json("get", str(seeds["first"]))["actor"]["name"] == PERSONAL["name"]
    planned = erase(data, "--dry-run")
    assert planned["held"] == 1 and planned["hold"] == held["id"]
    data.ok("hold", "release", held["id"], "--reason", "case closed")
    assert erase(data)["fields"] == 20


@pytest.fixture
def app_role(data: Data) -> Iterator[str]:
    """On PostgreSQL, the DSN of a login role that is only a member of glasslog_app."""
    assert data.store is not None
    name = f"glasslog_svc_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(name), sql.Identifier(APP_ROLE)
            )
        )
    try:
        parts = urlsplit(data.store)
        yield urlunsplit(parts._replace(netloc=f"{name}@{parts.hostname}:{parts.port}"))
    finally:
        with psycopg.connect(admin_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.mark.parametrize("data", ["postgres"], indirect=True)
def test_the_application_role_erases_only_through_the_owner_function(
    data: Data, app_role: str
) -> None:
    """The service's role may not UPDATE an event row, yet erases through erase_event;
    verify then passes."""
    seqs = seeded(data)
    with (
        psycopg.connect(app_role, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("UPDATE glasslog.events SET body = body WHERE seq = %s", (seqs["first"],))
    service = Data(data.path, app_role)
    found = service.json("erase", "--subject", f"actor.id={SUBJECT}", "--reason", "request")
    assert found["fields"] == 20
    assert any("could not vacuum" in line for line in found["scrubbed"])
    assert data.json("verify")["erased"] == 20


def test_a_bundle_of_erased_events_verifies_offline(data: Data, tmp_path: Path) -> None:
    """An export bundle of the subject's events after the erasure holds no erased value,
    counts the erased fields, and verifies offline against the log's key."""
    seeded(data)
    erase(data)
    bundle = tmp_path / "subject.tar.gz"
    data.ok("export", f"actor.id:{SUBJECT}", "-o", str(bundle))
    raw = gzip.decompress(bundle.read_bytes()).lower()
    assert not any(word.lower().encode() in raw for word in WORDS)
    offline = Data(data.path, None)
    vkey = offline.ok("vkey").strip()
    checked = offline.run("verify", str(bundle), "--vkey", vkey)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("data", ["sqlite"], indirect=True)
def test_an_erased_event_may_then_be_pruned(data: Data) -> None:
    """Retention may prune an event whose fields were erased: verify accepts the erasure
    rows of an event whose payload is gone, and reports both."""
    data.policy(ERASURE_POLICY)
    old = subject_event(0) | {"time": OLD}
    data.ingest([old, make_event(service="shop")])
    assert erase(data)["fields"] == 5
    pruned = data.json("retention", "run")
    assert pruned["pruned"] == 1
    report = data.json("verify")
    assert report["intact"] is True and report["erased"] == 0 and report["pruned"] == [[0, 1]]


def test_an_erased_event_sent_again_is_a_duplicate_and_stored_once(data: Data) -> None:
    """A client retrying an event after its subject was erased gets a duplicate (nothing
    stored twice, no value back); the same id with other content is still refused."""
    data.policy(ERASURE_POLICY)
    event = subject_event(0)
    data.ingest([event])
    erase(data)
    assert data.ingest([event])["duplicates"] == 1
    changed = {**event, "action": "refund"}
    refused = data.run("ingest", "-", "--json", stdin=json.dumps(changed) + "\n")
    assert "different content" in refused.stdout + refused.stderr
    assert data.json("count", f"actor.id:{SUBJECT}")["count"] == 1
    assert PERSONAL["email"] not in data.ok("search", "--json", "--all", f"actor.id:{SUBJECT}")
