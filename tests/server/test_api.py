"""The HTTP API (issue 11 §1, §2, §5): every route's authorization, the write path,
problem details and limits, on both backends, against the real app and store."""

from __future__ import annotations

import gzip
import json
import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from glasslog.log import Log
from glasslog.server.body import MAX_BODY
from tests.conftest import make_event
from tests.server.conftest import Site

PROBLEM = "application/problem+json"

PRINCIPAL_ROUTES = [
    ("GET", "/v1/events?q="),
    ("GET", "/v1/events/0"),
    ("GET", "/v1/events/0?proof=true"),
    ("GET", "/v1/count?q="),
    ("GET", "/v1/count?q=&by=service"),
    ("GET", "/v1/histogram?q="),
    ("GET", "/v1/trace/req-1"),
    ("GET", "/v1/proof/inclusion/0"),
    ("GET", "/v1/me"),
    ("GET", "/metrics"),
    ("POST", "/v1/events"),
]
PUBLIC_ROUTES = [
    "/healthz",
    "/readyz",
    "/checkpoint",
    "/v1/vkey",
    "/v1/proof/consistency?from=1&to=2",
]


def _post(client: TestClient, site: Site, role: str, events: list[dict[str, Any]]) -> Any:
    answer = client.post("/v1/events", json={"events": events}, headers=site.auth(role))
    assert answer.status_code == 200, answer.text
    return answer.json()


def _signed(client: TestClient, size: int) -> str:
    """The checkpoint once the writer has signed one covering ``size`` events (≤ 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = client.get("/checkpoint")
        if answer.status_code == 200 and int(answer.text.splitlines()[1]) >= size:
            return str(answer.text)
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint covering {size} events within 10 s")


def _problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["title"] and isinstance(body["detail"], str)
    assert "Traceback" not in answer.text
    return body


def test_nothing_but_five_routes_answers_without_a_principal(site: Site) -> None:
    """No header, a malformed header, an unknown key, a forged JWT: one 401, the same words."""
    with site.client(failed_sign_ins=1000) as client:
        _post(client, site, "writer", [make_event(), make_event()])
        client.post("/v1/events", json=make_event(), headers=site.auth("writer"))
        _signed(client, 3)
        for path in PUBLIC_ROUTES:
            assert client.get(path).status_code == 200, path
        forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
        headers_tried = [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
                         {"Authorization": "Bearer glk_000000000000_" + "A" * 43},
                         {"Authorization": f"Bearer {forged}"},
                         {"Authorization": "Bearer " + site.keys["dev"][:-2] + "xx"}]  # fmt: skip
        for method, path in PRINCIPAL_ROUTES:
            bodies = set()
            for headers in headers_tried:
                answer = client.request(method, path, headers=headers, json=make_event())
                body = _problem(answer, 401)
                assert answer.headers["www-authenticate"].startswith("Bearer")
                bodies.add(body["detail"])
            assert len(bodies) == 1, f"{path}: a 401 must not say which part was wrong"


def test_a_key_without_ingest_cannot_write(site: Site) -> None:
    with site.client() as client:
        for role in ("dev", "auditor", "nothing"):
            answer = client.post("/v1/events", json=make_event(), headers=site.auth(role))
            _problem(answer, 403)
        assert client.get("/v1/events", headers=site.auth("admin")).json()["events"] == []


@pytest.mark.parametrize("workers", [2, 0])
def test_writes_are_limited_to_the_roles_services_and_reported_per_event(
    site: Site, workers: int
) -> None:
    """In worker processes (the default) and in the writer thread alike."""
    with site.client(prepare_workers=workers) as client:
        good = make_event(service="billing-eu")
        events = [good, make_event(service="auth"), {"service": "payments"}, make_event()]
        result = _post(client, site, "writer", events)
        assert result["accepted"] == 2 and result["duplicates"] == 0
        rejected = {r["index"]: r["errors"] for r in result["rejected"]}
        assert set(rejected) == {1, 2}
        assert "may not write events of service 'auth'" in rejected[1][0]
        assert any("$.action" in e for e in rejected[2])
        again = _post(client, site, "writer", [good])
        assert again == {"accepted": 0, "duplicates": 1, "rejected": []}, "idempotent by id"
        changed = {**good, "action": "other"}
        clash = _post(client, site, "writer", [changed])
        assert clash["accepted"] == 0 and "already stored" in clash["rejected"][0]["errors"][0]
        found = client.get("/v1/events?q=service:auth", headers=site.auth("admin")).json()
        assert found["events"] == []


def test_rejections_never_echo_a_secret(site: Site) -> None:
    secret = "AKIA" + "ABCDEFGHIJKLMNOP"
    with site.client() as client:
        bad = make_event(outcome=f"password={secret}")
        result = _post(client, site, "writer", [bad])
        assert result["rejected"] and secret not in json.dumps(result)


def test_reads_are_scoped_masked_and_audited(site: Site) -> None:
    with site.client() as client:
        mine = make_event(service="payments", context={"request_id": "req-shared"})
        theirs = make_event(service="billing-eu", context={"request_id": "req-shared"})
        _post(client, site, "writer", [mine, theirs])
        page = client.get("/v1/events?q=", headers=site.auth("dev")).json()
        assert [e["id"] for e in page["events"]] == [mine["id"]]
        shown = page["events"][0]
        assert set(shown["actor"]["email"]) == {"$commit"}
        assert "ip" not in shown.get("source", {})
        assert mine["actor"]["email"] not in json.dumps(page)
        found = client.get(f"/v1/events?q={mine['actor']['email']}", headers=site.auth("dev"))
        assert found.json()["events"] == [], "no match on a masked value"
        admin_view = client.get("/v1/events?q=", headers=site.auth("admin")).json()["events"]
        theirs_seq = next(e["seq"] for e in admin_view if e["id"] == theirs["id"])
        not_there = client.get(f"/v1/events/{theirs_seq}", headers=site.auth("dev"))
        never = client.get("/v1/events/999999", headers=site.auth("dev"))
        assert _problem(not_there, 404)["detail"].replace(str(theirs_seq), "N") == _problem(
            never, 404
        )["detail"].replace("999999", "N"), "out of scope reads as never stored"
        by_id = client.get(f"/v1/events/{theirs['id']}", headers=site.auth("dev"))
        _problem(by_id, 404)
        trace = client.get("/v1/trace/req-shared", headers=site.auth("dev")).json()
        assert [e["id"] for e in trace["events"]] == [mine["id"]]
        count = client.get("/v1/count?q=", headers=site.auth("dev")).json()
        assert count == {"count": 1, "exact": True}
        refused = client.get("/v1/count?q=&by=actor.email", headers=site.auth("dev"))
        assert "masked" in _problem(refused, 403)["detail"]
        _signed(client, 2)
        evidence = client.get(f"/v1/events/{mine['id']}?proof=true", headers=site.auth("dev"))
        assert evidence.status_code == 200
        assert mine["actor"]["email"] not in evidence.text
        assert set(evidence.json()) >= {"seq", "event", "salts", "hidden", "proof", "checkpoint"}
        me = client.get("/v1/me", headers=site.auth("dev")).json()
        assert me["roles"] == ["dev"] and me["type"] == "service" and me["grants"] == []
    with Log.open(site.data, store=site.store) as log:
        audits = log.search("service:glasslog action:audit.read", limit=100).events
    audits = [e for e in audits if e["actor"]["name"] == "dev-key"]
    operations = sorted(e["metadata"]["operation"] for e in audits)
    assert operations.count("search") == 2 and "trace" in operations and "proof" in operations
    denied = [e for e in audits if e["outcome"] == "denied"]
    assert len(denied) == 1 and denied[0]["metadata"]["operation"] == "count_by"


def test_the_auditor_role_sees_reads_and_nothing_else(site: Site) -> None:
    with site.client() as client:
        _post(client, site, "writer", [make_event()])
        client.get("/v1/events?q=", headers=site.auth("dev"))
    with site.client() as client:
        page = client.get("/v1/events?q=service:glasslog", headers=site.auth("auditor")).json()
        assert page["events"] and {e["service"] for e in page["events"]} == {"glasslog"}
        assert client.get("/v1/events?q=", headers=site.auth("nothing")).json()["events"] == []


def test_gzip_bodies_and_their_limits(sqlite_site: Site) -> None:
    site = sqlite_site
    with site.client() as client:
        body = gzip.compress(json.dumps({"events": [make_event(), make_event()]}).encode())
        answer = client.post("/v1/events", content=body, headers={
            **site.auth("writer"), "Content-Encoding": "gzip",
            "Content-Type": "application/json"})  # fmt: skip
        assert answer.json()["accepted"] == 2
        sniffed = client.post("/v1/events", content=gzip.compress(
            json.dumps(make_event()).encode()), headers=site.auth("writer"))  # fmt: skip
        assert sniffed.json()["accepted"] == 1
        bomb = gzip.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]", compresslevel=9)
        assert len(bomb) < 1024 * 1024
        started = time.monotonic()
        answer = client.post("/v1/events", content=bomb, headers={
            **site.auth("writer"), "Content-Encoding": "gzip"})  # fmt: skip
        _problem(answer, 413)
        assert time.monotonic() - started < 30, "cut off at the limit, not inflated"
        raw = b'{"events": [' + b" " * (MAX_BODY + 10) + b"]}"
        _problem(client.post("/v1/events", content=raw, headers=site.auth("writer")), 413)
        many = {"events": [make_event() for _ in range(1001)]}
        _problem(client.post("/v1/events", json=many, headers=site.auth("writer")), 413)
        trailing = gzip.compress(b"{}") + b"garbage"
        _problem(client.post("/v1/events", content=trailing, headers={
            **site.auth("writer"), "Content-Encoding": "gzip"}), 400)  # fmt: skip
        _problem(client.post("/v1/events", content=b"\x1f\x8bnot gzip at all",
                             headers=site.auth("writer")), 400)  # fmt: skip
        _problem(client.post("/v1/events", content=b'{"a": 1, "a": 2}',
                             headers=site.auth("writer")), 400)  # fmt: skip
        _problem(client.post("/v1/events", content=b"[1, 2]", headers=site.auth("writer")), 400)
        _problem(client.post("/v1/events", content=b"", headers=site.auth("writer")), 400)
        _problem(client.post("/v1/events", content=b"x", headers={
            **site.auth("writer"), "Content-Encoding": "br"}), 415)  # fmt: skip
        total = client.get("/v1/count?q=", headers=site.auth("admin")).json()["count"]
        assert total == 3, "nothing refused was stored"


def test_bad_parameters_are_problems_with_the_fix(sqlite_site: Site) -> None:
    site = sqlite_site
    with site.client() as client:
        bad = client.get("/v1/events?q=service:(", headers=site.auth("dev"))
        assert "^" in _problem(bad, 400)["detail"]
        _problem(client.get("/v1/events?limit=0", headers=site.auth("dev")), 422)
        _problem(client.get("/v1/events?limit=x", headers=site.auth("dev")), 422)
        _problem(client.get("/v1/events?cursor=nonsense", headers=site.auth("dev")), 400)
        _problem(client.get("/v1/histogram?bucket=fortnight", headers=site.auth("dev")), 400)
        _problem(client.get("/v1/proof/consistency?from=1&to=1"), 404)  # nothing signed yet
        _post(client, site, "writer", [make_event()])
        _signed(client, 1)
        _problem(client.get("/v1/proof/consistency?from=5&to=2"), 400)
        _problem(client.get("/v1/proof/inclusion/-1", headers=site.auth("dev")), 422)
        _problem(client.get("/v1/nowhere"), 404)
        _problem(client.delete("/v1/events"), 405)


def test_a_cursor_is_bound_to_its_principal(sqlite_site: Site) -> None:
    site = sqlite_site
    with site.client() as client:
        _post(client, site, "writer", [make_event() for _ in range(5)])
        page = client.get("/v1/events?q=&limit=2", headers=site.auth("dev")).json()
        assert page["next_cursor"]
        mine = client.get(f"/v1/events?q=&limit=2&cursor={page['next_cursor']}",
                          headers=site.auth("dev"))  # fmt: skip
        assert len(mine.json()["events"]) == 2
        replayed = client.get(f"/v1/events?q=&limit=2&cursor={page['next_cursor']}",
                              headers=site.auth("admin"))  # fmt: skip
        _problem(replayed, 400)


def test_rate_limits_answer_429_with_retry_after(sqlite_site: Site) -> None:
    site = sqlite_site
    with site.client(rate=0.5, burst=3) as client:
        codes = [client.get("/v1/me", headers=site.auth("dev")).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        limited = client.get("/v1/me", headers=site.auth("dev"))
        _problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert client.get("/v1/me", headers=site.auth("admin")).status_code == 200, "per principal"
        guesses = [
            client.get("/v1/me", headers={"Authorization": f"Bearer glk_{i:012x}_{'A' * 43}"})
            for i in range(25)
        ]
        assert {g.status_code for g in guesses[:20]} == {401}
        assert guesses[-1].status_code == 429, "a guesser is slowed down"
        right = client.get("/v1/me", headers=site.auth("writer"))
        assert right.status_code == 429, "even a right key waits once the address is blocked"


def test_a_changed_policy_applies_without_a_restart_and_a_broken_one_does_not(
    sqlite_site: Site,
) -> None:
    site = sqlite_site
    policy = site.data / "policy.toml"
    with site.client() as client:
        assert client.get("/v1/events", headers=site.auth("dev")).status_code == 200
        text = policy.read_text()
        policy.write_text(text.replace('permissions = ["search", "get", "aggregate", "trace", '
                                       '"proof", "tail"]', 'permissions = ["get"]'))  # fmt: skip
        _problem(client.get("/v1/events", headers=site.auth("dev")), 403)
        policy.write_text(text + "\n[roles.broken]\npermissions = ['fly']\n")
        answer = client.get("/v1/events", headers=site.auth("dev"))
        _problem(answer, 403)  # the last valid policy stays in force


def test_metrics_need_a_principal_and_count_what_happened(sqlite_site: Site) -> None:
    site = sqlite_site
    with site.client() as client:
        _post(client, site, "writer", [make_event() for _ in range(3)])
        client.get("/v1/events", headers=site.auth("dev"))
        _problem(client.get("/metrics"), 401)
        text = client.get("/metrics", headers=site.auth("dev")).text
    # 3 posted, and the search's audit.read record if the writer's tick wrote it already.
    ingested = re.search(r"^glasslog_events_ingested_total (\S+)$", text, re.MULTILINE)
    assert ingested is not None and float(ingested[1]) in (3.0, 4.0), text
    for name in ("glasslog_write_queue_depth",
                 "glasslog_tree_size", "glasslog_seconds_since_checkpoint",
                 'glasslog_query_seconds_count{operation="search"} 1.0',
                 "glasslog_ingest_batch_seconds_count", "glasslog_tail_streams"):  # fmt: skip
        assert name in text, name


def test_checkpoint_and_vkey_are_exactly_what_was_signed(sqlite_site: Site) -> None:
    site = sqlite_site
    with site.client() as client:
        _post(client, site, "writer", [make_event()])
        _signed(client, 1)
        note = client.get("/checkpoint")
        assert note.headers["content-type"].startswith("text/plain")
        vkey = client.get("/v1/vkey").text.strip()
    with Log.open(site.data, store=site.store) as log:
        assert note.text == log.latest_checkpoint().note
        assert log.verify_checkpoint_note(note.text).size >= 1
    assert vkey == (site.data / "log.vkey").read_text().strip()


def test_shutdown_writes_the_queue_and_signs(site: Site) -> None:
    ids = []
    with site.client(checkpoint_interval=3600) as client:
        for _ in range(5):
            batch = [make_event() for _ in range(20)]
            ids += [e["id"] for e in batch]
            _post(client, site, "writer", batch)
    with Log.open(site.data, store=site.store) as log:
        size = log.store.size()
        assert log.latest_checkpoint().size == size, "the last events are covered at stop"
        stored = {e["id"] for e in log.search("service:payments", limit=500).events}
    assert stored == set(ids)


def test_openapi_lists_every_route(sqlite_site: Site) -> None:
    with sqlite_site.client() as client:
        spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for expected in ("/v1/events", "/v1/events/{seq_or_id}", "/v1/count", "/v1/histogram",
                     "/v1/trace/{request_or_trace_id}", "/v1/proof/inclusion/{seq}",
                     "/v1/proof/consistency", "/v1/me", "/checkpoint", "/v1/vkey",
                     "/healthz", "/readyz", "/metrics"):  # fmt: skip
        assert expected in paths, expected
