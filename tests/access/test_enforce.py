"""The enforcement point (issue 10 §3): scope, masking and permissions, against an oracle.

Random policies, one set of events and queries about them, on both backends: every search and
count by a principal is compared with a plain-Python oracle that applies the policy's
rules to the events directly (globs, max_age, masks and hides), and no masked or
hidden value may appear in any returned byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasslog.access.enforce import AccessDenied, Principal, Reader
from glasslog.access.policy import Role, check_policy
from glasslog.errors import ConfigError, NotFoundError
from glasslog.ledger.commit import COMMIT_KEY
from glasslog.testing import TemporaryLog
from tests.conftest import BACKENDS, backend_log

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SERVICES = ("payments", "billing-eu", "auth", "glasslog")
ACTIONS = ("db.query", "user.login", "secret.read")
ENVIRONMENTS = ("prod", "staging", "dev")
OUTCOMES = ("success", "failure")
N = 96


def _event(i: int) -> dict[str, Any]:
    """Event i: every value that a role may mask is a unique marker, to look for later."""
    return {
        "time": (NOW - timedelta(hours=i * 5)).isoformat().replace("+00:00", "Z"),
        "service": SERVICES[i % 4],
        "action": ACTIONS[i % 3],
        "environment": ENVIRONMENTS[(i // 3) % 3],
        "outcome": OUTCOMES[(i // 2) % 2],
        "actor": {"id": f"u-{i % 5}", "email": f"mail{i}x@example.com"},
        "reason": f"routine word{i % 4}",
        "context": {"request_id": f"req-{i % 7}"},
        "metadata": {"card": f"cardmark{i}", "headers": f"headermark{i}", "tag": f"tag{i % 3}"},
    }


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[TemporaryLog]:
    with backend_log(request.param) as tlog:
        assert all(r.ok for r in tlog.submit([_event(i) for i in range(N)]))
        yield tlog


def _stored(tlog: TemporaryLog) -> list[dict[str, Any]]:
    return [tlog.log.get(str(seq)) for seq in range(N)]


_MASKABLE = ("/actor/email", "/metadata/card", "/metadata/headers")


@st.composite
def _roles(draw: st.DrawFn) -> list[Role]:
    count = draw(st.integers(1, 2))
    lines = []
    for n in range(count):
        services = draw(st.lists(st.sampled_from([*SERVICES, "billing-*", "*"]), max_size=2))
        actions = draw(st.lists(st.sampled_from([*ACTIONS, "user.*", "*"]), min_size=1, max_size=2))
        mask = draw(st.lists(st.sampled_from(_MASKABLE), max_size=2, unique=True))
        hide = [p for p in draw(st.lists(st.sampled_from(_MASKABLE), max_size=1)) if p not in mask]
        lines.append(f"[roles.r{n}]")
        lines.append('permissions = ["search", "get", "aggregate", "trace"]')
        lines.append(f"services = {json.dumps(services)}")
        lines.append(f"actions = {json.dumps(actions)}")
        if draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(ENVIRONMENTS), min_size=1, max_size=2))
            lines.append(f"environments = {json.dumps(chosen)}")
        if draw(st.booleans()):
            lines.append(f'max_age = "{draw(st.sampled_from(["1d", "7d", "20d"]))}"')
        lines.append(f"mask = {json.dumps(mask)}")
        lines.append(f"hide = {json.dumps(hide)}")
    return list(check_policy("\n".join(lines) + "\n").roles.values())


def _glob(pattern: str, value: str) -> bool:
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), value) is not None


def _in_scope(role: Role, event: dict[str, Any]) -> bool:
    """The oracle's scope: globs, environments and age, written out plainly."""
    if not any(_glob(g, event["service"]) for g in role.services):
        return False
    if not any(_glob(g, event["action"]) for g in role.actions):
        return False
    if role.environments is not None and not any(
        _glob(g, event["environment"]) for g in role.environments
    ):
        return False
    if role.max_age is not None:
        when = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        if when < NOW - role.max_age:
            return False
    return True


def _rule(roles: list[Role], pointer: str) -> str:
    """Clear if any role shows it; masked if any masks it; else hidden."""
    path = tuple(pointer.strip("/").split("/"))
    kinds = ["hide" if path in r.hide else "mask" if path in r.mask else "clear" for r in roles]
    return "clear" if "clear" in kinds else "mask" if "mask" in kinds else "hide"


def _oracle_view(roles: list[Role], event: dict[str, Any]) -> dict[str, Any] | None:
    including = [r for r in roles if _in_scope(r, event)]
    if not including:
        return None
    seen: dict[str, Any] = json.loads(json.dumps(event))
    for pointer in _MASKABLE:
        if _rule(including, pointer) != "clear":
            head, key = pointer.strip("/").split("/")
            del seen[head][key]  # what the reader's queries may match: neither shown
    return seen


def _queries(event: dict[str, Any]) -> list[str]:
    """Queries about values of one event: clear ones, masked ones, negated ones, words."""
    email, card = event["actor"]["email"], event["metadata"]["card"]
    return [
        "",
        f"service:{event['service']}",
        f'email:"{email}"',
        f'-email:"{email}"',
        f"metadata.card:{card}",
        card,
        f"-{card}",
        f"environment:{event['environment']} outcome:{event['outcome']}",
        event["reason"].split()[1],
    ]


def _oracle_match(query: str, seen: dict[str, Any]) -> bool:
    """The few query forms of _queries, evaluated on the reader's view."""
    terms = re.findall(r'-?[a-z.]+:"[^"]*"|\S+', query)
    for written in terms:
        negated = written.startswith("-")
        term = written.lstrip("-")
        if ":" in term:
            field, value = term.split(":", 1)
            value = value.strip('"')
            path = {"email": ("actor", "email")}.get(field, tuple(field.split(".")))
            found: Any = seen
            for key in path:
                found = found.get(key) if isinstance(found, dict) else None
            hit = found == value
        else:
            hit = term.lower() in _words(seen)
        if hit == negated:
            return False
    return True


def _words(seen: dict[str, Any]) -> set[str]:
    """Every word of every string value but the id and the times (ASCII data here)."""
    strings: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk({k: v for k, v in seen.items() if k not in ("id", "time", "received")})
    return set(re.findall(r"[a-z0-9]+", " ".join(strings).lower()))


def _principal(roles: list[Role], name: str = "reader") -> Principal:
    return Principal(id=f"key-{name}", name=name, kind="service", roles=tuple(roles))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(roles=_roles(), pick=st.integers(0, N - 1))
def test_search_and_count_match_the_oracle_and_leak_nothing(
    store: TemporaryLog, roles: list[Role], pick: int
) -> None:
    events = _stored(store)
    reader = Reader(store.log, _principal(roles), now=NOW)
    for query in _queries(events[pick]):
        expected = sorted(
            e["seq"]
            for e in events
            if (seen := _oracle_view(roles, e)) is not None and _oracle_match(query, seen)
        )
        page = reader.search(query, limit=1000)
        got = sorted(e["seq"] for e in page.events)
        assert got == expected, query
        output = json.dumps(page.events)
        for event in page.events:
            original = events[event["seq"]]
            including = [r for r in roles if _in_scope(r, original)]
            for pointer in _MASKABLE:
                head, key = pointer.strip("/").split("/")
                rule = _rule(including, pointer)
                if rule == "clear":
                    assert event[head][key] == original[head][key]
                elif rule == "mask":
                    assert set(event[head][key]) == {COMMIT_KEY}
                else:
                    assert key not in event[head]
                if rule != "clear":
                    leaked = json.dumps(original[head][key])  # quoted: cardmark4 is in cardmark40
                    assert leaked not in output, f"{pointer} leaked for {query!r}"
        words_in_query = any(
            not t.startswith(("service:", "email:", "-email:", "metadata.", "environment:"))
            for t in query.split()
        )
        if not words_in_query or not any(r.mask or r.hide for r in roles):
            assert reader.count(query).count == len(expected), query


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(roles=_roles(), pick=st.integers(0, N - 1))
def test_get_trace_histogram_and_count_by_match_the_oracle(
    store: TemporaryLog, roles: list[Role], pick: int
) -> None:
    """The other reads: same scope, same field rules, nothing more in any byte."""
    events = _stored(store)
    reader = Reader(store.log, _principal(roles), now=NOW)
    visible = [e for e in events if _oracle_view(roles, e) is not None]
    target = events[pick]
    if _oracle_view(roles, target) is None:
        with pytest.raises(NotFoundError, match=f"^no event with seq {pick}$"):
            reader.get(str(pick))
    else:
        got = reader.get(str(pick))
        including = [r for r in roles if _in_scope(r, target)]
        for pointer in _MASKABLE:
            head, key = pointer.strip("/").split("/")
            rule = _rule(including, pointer)
            if rule == "clear":
                assert got[head][key] == target[head][key]
            else:
                assert json.dumps(target[head][key]) not in json.dumps(got)
    request = target["context"]["request_id"]
    timeline = reader.trace(request)
    expected = [e["seq"] for e in visible if e["context"]["request_id"] == request]
    assert sorted(e["seq"] for e in timeline.events) == sorted(expected)
    assert expected or not timeline.events
    histogram = reader.histogram("")
    assert sum(n for _, n in histogram.buckets) == len(visible)
    by_service: dict[str, int] = {}
    for e in visible:
        by_service[e["service"]] = by_service.get(e["service"], 0) + 1
    assert dict(reader.count_by("", "service", top=10)) == by_service


def test_out_of_scope_events_do_not_exist_for_get(store: TemporaryLog) -> None:
    """Same words, same exception, as an event that was never stored."""
    (role,) = check_policy(
        '[roles.p]\npermissions=["get"]\nservices=["payments"]\nactions=["*"]\n'
    ).roles.values()
    reader = Reader(store.log, _principal([role]), now=NOW)
    assert reader.get("0")["service"] == "payments"
    with pytest.raises(NotFoundError) as hidden:
        reader.get("1")  # auth
    with pytest.raises(NotFoundError) as missing:
        reader.get(str(N + 5))
    assert str(hidden.value) == "no event with seq 1"
    assert str(missing.value) == f"no event with seq {N + 5}"
    other = store.log.get("1")["id"]
    with pytest.raises(NotFoundError, match=r"^no event with that id$"):
        reader.get(other)


def test_permissions_are_required(store: TemporaryLog) -> None:
    (role,) = check_policy(
        '[roles.s]\npermissions=["search"]\nservices=["*"]\nactions=["*"]\n'
    ).roles.values()
    reader = Reader(store.log, _principal([role], "searcher"), now=NOW)
    assert reader.search("service:auth").events
    for call in (lambda: reader.count(""), lambda: reader.get("0"), lambda: reader.trace("x")):
        with pytest.raises(AccessDenied, match="searcher may not"):
            call()


def test_counting_by_a_masked_field_or_masked_words_is_refused(store: TemporaryLog) -> None:
    (role,) = check_policy(
        '[roles.m]\npermissions=["aggregate"]\nservices=["*"]\nactions=["*"]\n'
        'mask=["/actor/email"]\n'
    ).roles.values()
    reader = Reader(store.log, _principal([role]), now=NOW)
    with pytest.raises(AccessDenied, match="masked or hidden"):
        reader.count_by("", "actor.email")
    with pytest.raises(AccessDenied, match="free text cannot be counted"):
        reader.count("mail3x")
    assert reader.count('email:"mail3x@example.com"').count == 0
    assert reader.count('-email:"mail3x@example.com"').count == N
    assert dict(reader.count_by("", "service")) == dict.fromkeys(SERVICES, N // 4)


def test_a_cursor_cannot_be_replayed_by_another_principal(store: TemporaryLog) -> None:
    roles = list(
        check_policy(
            '[roles.a]\npermissions=["search"]\nservices=["*"]\nactions=["*"]\n'
        ).roles.values()
    )
    first = Reader(store.log, _principal(roles, "alice"), now=NOW).search("", limit=10)
    assert first.cursor is not None
    bob = Reader(store.log, _principal(roles, "bob"), now=NOW)
    with pytest.raises(ConfigError, match="belongs to another query"):
        bob.search("", limit=10, cursor=first.cursor)
