"""The read policy (issue 10 §1): strict validation with the file, the line and the fix."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from glasslog.access.policy import (
    DEFAULT_POLICY,
    PERMISSIONS,
    PolicyError,
    check_policy,
    explain,
    load_policy,
    parse_duration,
)
from glasslog.ledger.commit import parse_pointer
from glasslog.tomllines import Lines
from tests.conftest import make_event

EXAMPLE = """\
[roles.payments-dev]
permissions  = ["search", "get", "aggregate", "trace", "tail", "proof"]
services     = ["payments", "billing-*"]
actions      = ["*"]
categories   = ["*"]
environments = ["prod", "staging"]
max_age      = "30d"
query        = "-action:secret.*"
mask         = ["/actor/email", "/source/ip", "/metadata/card"]
hide         = ["/metadata/headers"]

[roles.auditor]
permissions  = ["search", "get", "aggregate"]
services     = ["glasslog"]
actions      = ["audit.*"]

[oidc]
issuer       = "https://idp.example.com"
audience     = "glasslog"
jwks         = "https://idp.example.com/.well-known/jwks.json"
roles_claim  = "groups"
[oidc.roles]
"payments-team" = "payments-dev"
"""


def test_the_issues_example_policy_loads() -> None:
    """Every key of the documented format, with the names fixed by the issue."""
    policy = check_policy(EXAMPLE)
    role = policy.roles["payments-dev"]
    assert role.permissions == {"search", "get", "aggregate", "trace", "tail", "proof"}
    assert role.services == ("payments", "billing-*")
    assert role.environments == ("prod", "staging")
    assert role.max_age == timedelta(days=30)
    assert role.query == "-action:secret.*"
    assert role.mask == (("actor", "email"), ("source", "ip"), ("metadata", "card"))
    assert role.hide == (("metadata", "headers"),)
    assert policy.oidc is not None
    assert policy.oidc.roles == {"payments-team": "payments-dev"}
    assert policy.roles["auditor"].categories is None, "optional scope defaults to all"


def test_the_default_policy_is_valid_and_grants_admin_only() -> None:
    policy = check_policy(DEFAULT_POLICY)
    assert list(policy.roles) == ["admin"]
    assert policy.roles["admin"].may("search") and policy.roles["admin"].may("ingest")
    for key in ("permissions", "services", "actions", "categories", "environments",
                "max_age", "query", "mask", "hide", "[oidc]", "roles_claim"):  # fmt: skip
        assert key in DEFAULT_POLICY, f"the default policy explains {key}"


def _problems(text: str, **options: object) -> list[str]:
    with pytest.raises(PolicyError) as info:
        check_policy(text, source="p.toml", **options)  # type: ignore[arg-type]
    return info.value.problems


@pytest.mark.parametrize(
    ("line", "value", "expected"),
    [
        ('permissions = ["serch"]', 2, "unknown permission 'serch'; the permissions are: search"),
        ("colour = 1", 5, "roles.r.colour: unknown key; a role's keys are: permissions"),
        ('max_age = "30 days"', 5, "is not a duration; write a whole number and a unit"),
        ('query = "service:("', 5, "not a valid query: a value cannot be a group"),
        ('mask = ["/context/host"]', 5, '[ledger] commit = ["/context/host"]'),
        ('mask = ["/metadata/db/password"]', 5, "committed as a whole"),
        ('hide = ["actor"]', 5, "is not a JSON Pointer; it starts with '/'"),
        ('environments = ["prod env"]', 5, "is not a valid glob for environments"),
    ],
)
def test_each_mistake_names_the_file_the_line_and_the_fix(
    line: str, value: int, expected: str
) -> None:
    """A role with one mistake: the message starts with file:line and says what to write."""
    base = ['permissions = ["search"]', 'services = ["*"]', 'actions = ["*"]']
    if line.startswith("permissions"):
        base[0] = line
    else:
        base.append(line)
    text = "[roles.r]\n" + "\n".join(base) + "\n"
    problems = _problems(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"p.toml:{value}: "), problems[0]
    assert expected in problems[0]


def test_every_problem_is_reported_at_once() -> None:
    """Fixing a policy should not take one run per mistake."""
    text = '[roles.a]\npermissions = ["x"]\n[roles.b]\npermissions = ["search"]\nservices = []\n'
    problems = _problems(text)
    assert [p.split(":")[1] for p in problems] == ["2", "1", "1", "3"]
    assert "has no actions" in problems[-1] and "sees nothing" in problems[-1]


def test_services_and_actions_are_required() -> None:
    problems = _problems('[roles.r]\npermissions = ["search"]\n')
    assert any("has no services" in p for p in problems)
    assert any("has no actions" in p for p in problems)


def test_an_extra_committed_field_may_be_masked() -> None:
    """[ledger] commit makes a field committed, so the policy may then mask it."""
    text = (
        '[roles.r]\npermissions=["search"]\nservices=["*"]\nactions=["*"]\nmask=["/context/host"]\n'
    )
    assert _problems(text)
    role = check_policy(text, committed=[("context", "host")]).roles["r"]
    assert role.mask == (("context", "host"),)


def test_oidc_must_name_defined_roles_and_https() -> None:
    text = EXAMPLE.replace('"payments-team" = "payments-dev"', '"t" = "nobody"').replace(
        'https://idp.example.com"\naudience', 'http://idp.example.com"\naudience'
    )
    problems = _problems(text)
    assert any("oidc.issuer: an OIDC issuer is an https:// URL" in p for p in problems)
    assert any("oidc.roles.t: names the role 'nobody'" in p for p in problems)


def test_a_policy_without_roles_or_with_bad_toml_is_refused() -> None:
    assert "defines no role" in _problems("")[0]
    assert "not valid TOML" in _problems("[roles.r\n")[0]
    assert "unknown section" in _problems('[role.r]\npermissions = ["search"]\n')[0]


def test_a_policy_others_can_write_is_refused(tmp_path: Path) -> None:
    """Whoever can write the policy can grant themselves any role."""
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULT_POLICY)
    path.chmod(0o620)
    with pytest.raises(PolicyError, match="writable by other users"):
        load_policy(path)
    path.chmod(0o600)
    assert "admin" in load_policy(path).roles
    with pytest.raises(PolicyError, match="no policy file; run `glasslog init`"):
        load_policy(tmp_path / "missing.toml")


def test_explain_says_what_a_role_sees_and_does() -> None:
    text = explain(check_policy(EXAMPLE).roles["payments-dev"])
    assert "may: search, get, aggregate, trace, tail, proof." in text
    assert "may not: export." in text
    assert "services matching 'payments' and 'billing-*'" in text
    assert "environments matching 'prod' and 'staging'" in text
    assert "nothing older than 30 days" in text
    assert "-action:secret.*" in text
    assert "masked" in text and "/actor/email, /source/ip, /metadata/card" in text
    assert "/metadata/headers" in text
    blind = check_policy('[roles.r]\npermissions=["search"]\nservices=[]\nactions=["*"]\n')
    assert "sees no events at all" in explain(blind.roles["r"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("1y", timedelta(days=365))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30", "d", "0d", "-1d", "1.5h", "30 d", "3x"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_json_pointers_follow_rfc_6901() -> None:
    assert parse_pointer("/metadata/a~1b") == ("metadata", "a/b")
    assert parse_pointer("/metadata/a~0b") == ("metadata", "a~b")
    for bad in ("metadata", "/metadata//x", "/a~2"):
        with pytest.raises(ValueError, match=r"JSON Pointer|empty reference|escaped"):
            parse_pointer(bad)


def test_lines_finds_keys_tables_and_skips_multiline_values() -> None:
    lines = Lines(
        '[a.b]\nx = [\n  "y = 1",\n]\n"q k" = """\nz = 2\n"""\nw = 1\n[[c]]\nv=1\n[[c]]\nv=2\n'
    )
    assert lines.line("a", "b") == 1
    assert lines.line("a", "b", "x") == 2
    assert lines.line("a", "b", "q k") == 5
    assert lines.line("a", "b", "w") == 8
    assert lines.line("a", "b", "z") == 1, "a key inside a string is no key: its table's line"
    assert lines.line("c", "1", "v") == 12
    assert lines.line("nowhere") is None


def _glasslog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glasslog", *args], capture_output=True, text=True, check=False
    )


def test_init_writes_the_default_policy_once(tmp_path: Path) -> None:
    """0600, and never replaced by a second init: an operator's roles stay."""
    data = tmp_path / "d"
    done = _glasslog("init", "--data", str(data))
    assert done.returncode == 0, done.stderr
    assert "wrote the read policy" in done.stderr
    policy = data / "policy.toml"
    assert policy.read_text() == DEFAULT_POLICY
    assert policy.stat().st_mode & 0o777 == 0o600
    policy.write_text(EXAMPLE)
    again = _glasslog("init", "--data", str(data))
    assert again.returncode == 0 and "wrote the read policy" not in again.stderr
    assert policy.read_text() == EXAMPLE


def test_policy_check_and_explain_commands(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert _glasslog("init", "--data", str(data)).returncode == 0
    ok = _glasslog("policy", "check", "--data", str(data))
    assert ok.returncode == 0 and "valid: 1 role (admin)" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[roles.x]\npermissions = ["serch"]\nservices = ["*"]\nactions = ["*"]\n')
    refused = _glasslog("policy", "check", str(bad), "--json")
    assert refused.returncode == 2
    report = json.loads(refused.stdout)
    assert report["valid"] is False
    assert report["problems"] == [
        f"{bad}:2: roles.x.permissions: unknown permission 'serch'; the permissions are: "
        + ", ".join(PERMISSIONS)
    ]
    said = _glasslog("policy", "explain", "admin", "--data", str(data))
    assert said.returncode == 0 and said.stdout.startswith("Role admin:\n- may do everything")
    (data / "policy.toml").write_text(EXAMPLE)
    described = json.loads(
        _glasslog("policy", "explain", "payments-dev", "--data", str(data), "--json").stdout
    )
    assert described["services"] == ["payments", "billing-*"]
    assert described["categories"] == ["*"] and described["environments"] == ["prod", "staging"]
    assert described["max_age_seconds"] == 30 * 86400
    assert described["mask"] == ["/actor/email", "/source/ip", "/metadata/card"]
    assert described["explanation"].startswith("Role payments-dev:")
    (data / "policy.toml").write_text(DEFAULT_POLICY)
    unknown = _glasslog("policy", "explain", "nobody", "--data", str(data))
    assert (
        unknown.returncode == 1
        and "defines no role 'nobody'; its roles are: admin" in unknown.stderr
    )
    env = _glasslog("policy", "check", "--data", str(data), "--policy", str(bad))
    assert env.returncode == 2, "--policy names the file to check"


def test_ledger_commit_makes_a_field_committed_and_maskable(tmp_path: Path) -> None:
    """[ledger] commit in glasslog.toml: ingested events commit the field, and the policy
    may then mask it (before, it says how to commit it)."""
    data = tmp_path / "d"
    assert _glasslog("init", "--data", str(data)).returncode == 0
    (data / "policy.toml").write_text(
        '[roles.r]\npermissions=["search"]\nservices=["*"]\nactions=["*"]\nmask=["/context/host"]\n'
    )
    before = _glasslog("policy", "check", "--data", str(data))
    assert before.returncode == 2 and "[ledger] commit" in before.stderr
    (data / "glasslog.toml").write_text('[ledger]\ncommit = ["/context/host"]\n')
    after = _glasslog("policy", "check", "--data", str(data))
    assert after.returncode == 0, after.stderr
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps(make_event(context={"host": "web-1"})) + "\n")
    assert _glasslog("ingest", str(events), "--data", str(data)).returncode == 0
    with sqlite3.connect(data / "glasslog.db") as conn:
        (commits,) = conn.execute("SELECT commits FROM events").fetchone()
    assert '["context","host",' in commits


@pytest.mark.parametrize(
    ("commit", "expected"),
    [
        ('["/metadata/x"]', "is committed already"),
        ('["/service"]', "indexed in clear"),
        ('["/context/a/b"]', "at most two keys deep"),
        ('["context"]', "is not a JSON Pointer"),
    ],
)
def test_ledger_commit_refuses_what_it_cannot_commit(
    tmp_path: Path, commit: str, expected: str
) -> None:
    data = tmp_path / "d"
    assert _glasslog("init", "--data", str(data)).returncode == 0
    (data / "glasslog.toml").write_text(f"[ledger]\ncommit = {commit}\n")
    said = _glasslog("policy", "check", "--data", str(data))
    assert said.returncode != 0 and expected in said.stderr
