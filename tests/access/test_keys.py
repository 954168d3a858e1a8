"""API keys (issue 10 §2): shown once, stored as a hash, revocable, recorded in the ledger."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from glasslog.access.keys import AuthError, authenticate, make_key
from glasslog.access.policy import check_policy
from glasslog.testing import TemporaryLog
from tests.attacker import run_as_attacker
from tests.conftest import make_event
from tests.test_cli import run as _glasslog

POLICY = """\
[roles.admin]
permissions = ["admin"]
services = ["*"]
actions = ["*"]

[roles.dev]
permissions = ["search", "get", "aggregate", "trace"]
services = ["payments"]
actions = ["*"]
mask = ["/actor/email"]
"""


def test_keys_are_stored_as_hashes_and_authenticate(tlog: TemporaryLog) -> None:
    """On both backends: the stored row holds no secret, and the key finds its role."""
    policy = check_policy(POLICY)
    made = make_key(role="dev", name="ci", expires=timedelta(days=1))
    tlog.store.add_api_key(made.stored)
    secret = made.text[17:]
    (listed,) = tlog.store.api_keys()
    assert secret.encode() not in repr(listed).encode() and secret not in repr(listed)
    principal = authenticate(tlog.store, policy, made.text)
    assert principal.id == f"key:{made.stored.id}" and principal.name == "ci"
    assert [r.name for r in principal.roles] == ["dev"]


def test_refused_keys(tlog: TemporaryLog) -> None:
    """Malformed, unknown, wrong secret, expired, revoked, or for a role gone from the policy."""
    policy = check_policy(POLICY)
    now = datetime.now(UTC)
    live = make_key(role="dev", name="a", expires=None)
    old = make_key(role="dev", name="b", expires=timedelta(hours=1), now=now - timedelta(hours=2))
    gone = make_key(role="ops", name="c", expires=None)
    for made in (live, old, gone):
        tlog.store.add_api_key(made.stored)
    cases = [
        ("glk_short", "that is not an API key"),
        (live.text[:-1] + ("A" if live.text[-1] != "A" else "B"), "unknown API key"),
        ("glk_000000000000_" + live.text[17:], "unknown API key"),
        (old.text, f"API key {old.stored.id} expired at"),
        (gone.text, "for the role 'ops', which the policy no longer defines"),
    ]
    for text, message in cases:
        with pytest.raises(AuthError, match=message):
            authenticate(tlog.store, policy, text)
    assert tlog.store.revoke_api_key(live.stored.id, 1) is True
    assert tlog.store.revoke_api_key(live.stored.id, 2) is False, "revoked once, for good"
    with pytest.raises(AuthError, match=f"API key {live.stored.id} was revoked at"):
        authenticate(tlog.store, policy, live.text)
    for text, _ in cases:
        secret = text[17:]
        with pytest.raises(AuthError) as info:
            authenticate(tlog.store, policy, text)
        assert len(secret) < 20 or secret not in str(info.value), "never echo a key"


def test_a_revocation_cannot_be_undone_through_sql(tlog: TemporaryLog) -> None:
    """Key tables are append-only like the ledger: the guards refuse, on both backends."""
    made = make_key(role="dev", name="a", expires=None)
    tlog.store.add_api_key(made.stored)
    tlog.store.revoke_api_key(made.stored.id, 5)
    if tlog.spec.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(tlog.spec, autocommit=True) as pg:
            pg.execute("SET search_path TO glasslog")
            for statement in (
                "DELETE FROM api_key_revocations",
                "UPDATE api_keys SET role = 'admin'",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    pg.execute(statement.encode())
    else:
        conn = sqlite3.connect(tlog.spec)
        for statement in ("DELETE FROM api_key_revocations", "UPDATE api_keys SET role = 'admin'"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(statement)
        conn.close()
    assert tlog.store.api_key(made.stored.id).revoked_us == 5  # type: ignore[union-attr]
    run_as_attacker(tlog.spec, ["DELETE FROM api_key_revocations"])  # with the guards dropped
    assert tlog.store.api_key(made.stored.id).revoked_us is None  # type: ignore[union-attr]


@pytest.fixture
def cli_log(tmp_path: Path) -> Path:
    data = tmp_path / "log"
    assert _glasslog("init", data=data).returncode == 0
    (data / "policy.toml").write_text(POLICY)
    events = [make_event(service=["payments", "auth"][i % 2]) for i in range(6)]
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert _glasslog("ingest", str(source), data=data).returncode == 0
    return data


def test_the_key_commands_and_reading_with_a_key(cli_log: Path) -> None:
    """create prints the key once; list never shows it; --key reads through the role;
    create and revoke are events in the ledger; a revoked key reads nothing."""
    made = _glasslog("keys", "create", "--role", "dev", "--name", "ci-bot", "--expires",
                     "30d", "--json", data=cli_log)  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    key = created["key"]
    assert set(created) == {"id", "key", "role", "name", "expires"}
    assert created["role"] == "dev" and created["name"] == "ci-bot" and created["expires"]
    listed = _glasslog("keys", "list", "--json", data=cli_log)
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == created["id"] and row["state"] == "active"
    secret = key[17:]
    assert secret not in listed.stdout
    assert secret.encode() not in (cli_log / "glasslog.db").read_bytes(), "only the hash is kept"

    found = _glasslog("search", "--key", key, "--json", data=cli_log)
    assert found.returncode == 0, found.stderr
    events = [json.loads(line) for line in found.stdout.splitlines()]
    assert {e["service"] for e in events} == {"payments"}
    assert all(set(e["actor"]["email"]) == {"$commit"} for e in events)
    outside = _glasslog("get", "1", "--key", key, data=cli_log)
    assert outside.returncode == 1 and "no event with seq 1" in outside.stderr
    refused = _glasslog("count", "--by", "actor.email", "--key", key, data=cli_log)
    assert refused.returncode == 1 and "masked or hidden" in refused.stderr

    revoked = _glasslog("keys", "revoke", created["id"], data=cli_log)
    assert revoked.returncode == 0
    denied = _glasslog("search", "--key", key, data=cli_log)
    assert (
        denied.returncode == 1 and "was revoked at" in denied.stderr and secret not in denied.stderr
    )
    audit = _glasslog("search", "service:glasslog", "--json", "--sort", "time", data=cli_log)
    actions = [json.loads(line)["action"] for line in audit.stdout.splitlines()]
    assert [a for a in actions if a.startswith("key.")] == ["key.create", "key.revoke"]
    assert actions.count("audit.read") == 3, "the key's search, get and refused count"
    assert _glasslog("verify", data=cli_log).returncode == 0


def test_a_key_for_an_unknown_role_is_not_made(cli_log: Path) -> None:
    said = _glasslog("keys", "create", "--role", "nobody", data=cli_log)
    assert (
        said.returncode == 1
        and "defines no role 'nobody'; its roles are: admin, dev" in said.stderr
    )
    assert _glasslog("keys", "list", "--json", data=cli_log).stdout == ""
