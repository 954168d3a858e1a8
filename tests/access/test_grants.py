"""Break-glass grants (issue 10 §6): a second role for a while, recorded, self-expiring."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from glasslog.access.keys import AuthError, authenticate, make_grant, make_key, principal_id
from glasslog.access.policy import check_policy
from glasslog.event import epoch_us
from glasslog.testing import TemporaryLog
from tests.conftest import make_event
from tests.test_cli import run

POLICY = """\
[roles.admin]
permissions = ["admin"]
services = ["*"]
actions = ["*"]

[roles.dev]
permissions = ["search", "get"]
services = ["payments"]
actions = ["*"]
mask = ["/actor/email"]

[roles.oncall]
permissions = ["search"]
services = ["*"]
actions = ["*"]
"""


def test_a_grant_adds_its_role_until_it_expires(tlog: TemporaryLog) -> None:
    """On both backends: in force between creation and expiry, unless revoked; no process
    has to run for it to end."""
    policy = check_policy(POLICY)
    now = datetime.now(UTC)
    key = make_key(role="dev", name="bot", expires=None)
    tlog.store.add_api_key(key.stored)
    who = f"key:{key.stored.id}"
    grant = make_grant(principal=who, role="oncall", lifetime=timedelta(hours=2), reason="INC-1")
    tlog.store.add_grant(grant)
    tlog.store.add_grant(
        make_grant(principal=who, role="admin", lifetime=timedelta(hours=1), reason="old",
                   now=now - timedelta(hours=3))
    )  # fmt: skip
    tlog.store.add_grant(
        make_grant(principal=who, role="gone", lifetime=timedelta(hours=1), reason="stale")
    )
    principal = authenticate(tlog.store, policy, key.text)
    assert [r.name for r in principal.roles] == ["dev", "oncall"]
    assert principal.grants == (grant.id,), "expired grants and unknown roles grant nothing"
    later = authenticate(tlog.store, policy, key.text, now=now + timedelta(hours=3))
    assert [r.name for r in later.roles] == ["dev"]
    assert tlog.store.revoke_grant(grant.id, epoch_us(now)) is True
    assert [r.name for r in authenticate(tlog.store, policy, key.text).roles] == ["dev"]


def test_grants_are_bounded_and_justified() -> None:
    with pytest.raises(AuthError, match="at most 7 days"):
        make_grant(principal="key:0123456789ab", role="r", lifetime=timedelta(days=8), reason="x")
    with pytest.raises(AuthError, match="needs a --reason"):
        make_grant(principal="key:0123456789ab", role="r", lifetime=timedelta(hours=1), reason=" ")
    assert principal_id("0123456789ab") == "key:0123456789ab"
    assert principal_id("oidc:alice") == "oidc:alice"
    with pytest.raises(AuthError, match="names no principal"):
        principal_id("alice")


def test_the_grant_commands(tmp_path: Path) -> None:
    data = tmp_path / "log"

    glasslog = partial(run, data=data)

    def seen(key: str) -> list[dict[str, Any]]:
        found = glasslog("search", "--key", key, "--json")
        assert found.returncode == 0, found.stderr
        return [json.loads(line) for line in found.stdout.splitlines()]

    assert glasslog("init").returncode == 0
    (data / "policy.toml").write_text(POLICY)
    events = [make_event(service=["payments", "auth"][i % 2]) for i in range(4)]
    assert (
        glasslog("ingest", "-", stdin="".join(json.dumps(e) + "\n" for e in events)).returncode == 0
    )
    made = json.loads(glasslog("keys", "create", "--role", "dev", "--json").stdout)
    key, key_id = made["key"], made["id"]
    assert {e["service"] for e in seen(key)} == {"payments"}
    assert all(set(e["actor"]["email"]) == {"$commit"} for e in seen(key))

    granted = glasslog("grant", "--principal", key_id, "--role", "oncall", "--for", "2h",
                       "--reason", "INC-42 checkout outage", "--json")  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    grant = json.loads(granted.stdout)
    assert grant["principal"] == f"key:{key_id}" and grant["role"] == "oncall"
    wider = seen(key)
    assert {"payments", "auth"} <= {e["service"] for e in wider}
    assert all("@" in e["actor"]["email"] for e in wider if e["service"] != "glasslog"), (
        "a field is in clear when any role whose scope holds the event shows it"
    )
    listed = [json.loads(line) for line in glasslog("grant", "list", "--json").stdout.splitlines()]
    assert [(g["id"], g["state"]) for g in listed] == [(grant["id"], "active")]

    assert glasslog("grant", "revoke", grant["id"]).returncode == 0
    assert {e["service"] for e in seen(key)} == {"payments"}
    trail = glasslog("search", "service:glasslog", "--json", "--sort", "time")
    records = [json.loads(line) for line in trail.stdout.splitlines()]
    actions = [r["action"] for r in records]
    assert [a for a in actions if not a.startswith("audit")] == [
        "key.create", "grant.create", "grant.revoke"
    ]  # fmt: skip
    under = [r for r in records if r["action"] == "audit.read" and r["metadata"]["grants"]]
    assert under and all(r["metadata"]["grants"] == [grant["id"]] for r in under)
    assert glasslog("verify").returncode == 0


def test_a_grant_needs_every_option_and_a_known_role(tmp_path: Path) -> None:
    data = tmp_path / "log"

    glasslog = partial(run, data=data)
    assert glasslog("init").returncode == 0
    (data / "policy.toml").write_text(POLICY)
    missing = glasslog("grant", "--principal", "0123456789ab")
    assert missing.returncode == 2 and "--role, --for, --reason" in missing.stderr
    unknown = glasslog("grant", "--principal", "0123456789ab", "--role", "root", "--for", "1h",
                  "--reason", "x")  # fmt: skip
    assert unknown.returncode == 1 and "defines no role 'root'" in unknown.stderr
