"""The CLI on a PostgreSQL store: init, ingest, read, prove and verify — and tampering found."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import psycopg

from glasslog.ledger import merkle
from glasslog.ledger.note import Verifier, verify_checkpoint
from tests.conftest import make_event
from tests.test_cli import _jsonl
from tests.test_cli import run as run_sqlite


def _init(tmp_path: Path, store: str) -> Path:
    data = tmp_path / "keys"
    result = run_sqlite("init", "--origin", "test.example/pg-cli", "--store", store, data=data)
    assert result.returncode == 0, result.stderr
    return data


def test_ingest_prove_and_verify_on_postgres(tmp_path: Path, pg_database: str) -> None:
    """The whole CLI path works with --store postgresql://…, proofs verify offline."""
    data = _init(tmp_path, pg_database)
    events = [make_event() for _ in range(300)]
    ingest = run_sqlite("ingest", "-", "--store", pg_database, data=data, stdin=_jsonl(events))
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["accepted"] == 300
    got = json.loads(run_sqlite("get", "299", "--store", pg_database, data=data).stdout)
    assert got["id"] == events[299]["id"]
    note = run_sqlite("checkpoint", "--store", pg_database, data=data).stdout
    vkey = run_sqlite("vkey", data=data).stdout.strip()
    cp = verify_checkpoint(note, verifier=Verifier.from_vkey(vkey))
    assert cp.size == 300
    proof = json.loads(
        run_sqlite("proof", "inclusion", "260", "--store", pg_database, data=data).stdout
    )
    merkle.verify_inclusion(
        index=260,
        size=300,
        leaf_hash=merkle.leaf_hash(base64.b64decode(proof["leaf"])),
        proof=[base64.b64decode(h) for h in proof["proof"]],
        root=cp.root,
    )
    verified = run_sqlite("verify", "--store", pg_database, data=data)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("intact: 300 events")


def test_tampering_by_a_superuser_is_found(tmp_path: Path, pg_database: str) -> None:
    """An edit made with the triggers disabled is named by verify."""
    data = _init(tmp_path, pg_database)
    ingest = run_sqlite(
        "ingest", "-", "--store", pg_database, data=data,
        stdin=_jsonl([make_event() for _ in range(50)]),
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # skips the triggers
        conn.execute(
            "UPDATE glasslog.events SET body = replace(body, 'payments', 'paymentz') WHERE seq = 7"
        )
    result = run_sqlite("verify", "--store", pg_database, data=data)
    assert result.returncode == 1
    assert "TAMPERED: seq 7" in result.stderr


def test_queries_run_on_postgres(tmp_path: Path, pg_database: str) -> None:
    """search, count, histogram and trace answer from PostgreSQL as they do from SQLite."""
    data = _init(tmp_path, pg_database)
    events = [
        make_event(
            service="payments" if i % 2 else "auth",
            reason=f"ticket {i} Café.Review",
            context={"request_id": "req-pg" if i < 3 else f"req-{i}"},
        )
        for i in range(30)
    ]
    store = ["--store", pg_database]
    assert run_sqlite("ingest", "-", *store, data=data, stdin=_jsonl(events)).returncode == 0
    found = run_sqlite("search", "service:payments cafe", "--json", "--all", *store, data=data)
    assert found.returncode == 0, found.stderr
    assert len(found.stdout.splitlines()) == 15
    assert run_sqlite("count", '"cafe review"', *store, data=data).stdout.strip() == "30"
    by = run_sqlite("count", "", "--by", "service", "--json", *store, data=data)
    assert sorted(json.loads(x)["count"] for x in by.stdout.splitlines()) == [15, 15]
    buckets = run_sqlite("histogram", "", "--json", *store, data=data).stdout.splitlines()
    assert sum(json.loads(x)["count"] for x in buckets) == 30
    trace = run_sqlite("trace", "req-pg", "--json", *store, data=data).stdout.splitlines()
    assert [json.loads(x)["seq"] for x in trace] == [0, 1, 2]
    bad = run_sqlite("search", "servce:payments", *store, data=data)
    assert bad.returncode == 1
    assert "did you mean 'service'" in bad.stderr and "Traceback" not in bad.stderr


def test_conninfo_instead_of_a_url_is_refused(tmp_path: Path) -> None:
    """A libpq key=value string is refused, not turned into a SQLite file of that name."""
    data = tmp_path / "keys"
    result = run_sqlite("init", "--store", "host=127.0.0.1 dbname=audit", data=data)
    assert result.returncode == 1
    assert "give it as a URL" in result.stderr
    assert not any(p.name.startswith("host=") for p in Path.cwd().iterdir())


def test_queries_and_keys_past_64_bits_are_clean_errors_on_postgres(
    tmp_path: Path, pg_database: str
) -> None:
    """On PostgreSQL too, a number no bigint holds is a clean error or matches nothing, and
    a query starting with '-' and group-level --store work."""
    data = _init(tmp_path, pg_database)
    store = ["--store", pg_database]
    run_sqlite("ingest", "-", *store, data=data, stdin=_jsonl([make_event() for _ in range(3)]))
    huge = "99999999999999999999999"
    for args, code, said in [
        (["get", huge], 1, "a seq is at most 9223372036854775807"),
        (["search", f"seq:{huge}"], 1, "out of range"),
        (["count", f"seq:{huge}"], 1, "out of range"),
        (["count", f"metadata.rows:{huge}"], 0, ""),
        (["histogram", f"metadata.rows:{huge}"], 0, ""),
        (["search", f"-metadata.rows:{huge}", "--json"], 0, ""),
    ]:
        result = run_sqlite(*args, *store, data=data)
        assert result.returncode == code, (args, result.stderr)
        assert said in result.stderr
        assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    assert run_sqlite("count", f"metadata.rows:{huge}", *store, data=data).stdout.strip() == "0"
    negated = run_sqlite("search", f"-metadata.rows:{huge}", "--json", *store, data=data)
    assert len(negated.stdout.splitlines()) == 3
    before = subprocess.run(
        [sys.executable, "-m", "glasslog", "--store", pg_database, "--data", str(data),
         "count", "-outcome:failure"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert before.stdout.strip() == "3", before.stderr
