"""Retention and holds through the HTTP API of a real app, and the server's schedule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_event, scratch_database
from tests.lifecycle.conftest import NEW, OLD, RETENTION
from tests.server.conftest import POLICY, Site, make_site

PROBLEM = "application/problem+json"


@pytest.fixture(params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """A served data directory with a [retention] policy, on each backend in turn."""
    if request.param == "sqlite":
        yield make_site(tmp_path, None, POLICY + RETENTION)
        return
    with scratch_database() as url:
        yield make_site(tmp_path, url, POLICY + RETENTION)


def _post(client: TestClient, site: Site, path: str, body: Any, role: str = "admin") -> Any:
    return client.post(path, json=body, headers=site.auth(role))


def _ingest(client: TestClient, site: Site, events: list[dict[str, Any]]) -> None:
    answer = _post(client, site, "/v1/events", {"events": events})
    assert answer.status_code == 200 and answer.json()["accepted"] == len(events), answer.text


def test_holds_and_a_run_through_the_api(site: Site) -> None:
    """An admin places a hold, runs retention (dry, then for real), reads a pruned event
    (410 with when), and releases the hold; each change is a lifecycle event."""
    with site.client() as client:
        _ingest(client, site, [make_event(time=OLD) for _ in range(5)])
        _ingest(client, site, [make_event(time=OLD, service="billing-eu") for _ in range(2)])
        _ingest(client, site, [make_event(time=NEW)])
        made = _post(client, site, "/v1/holds", {"query": "service:billing-eu", "reason": "c1"})
        assert made.status_code == 201, made.text
        hold = made.json()
        assert hold["active"] and hold["by"] != ""
        listed = client.get("/v1/holds", headers=site.auth("admin")).json()["holds"]
        assert [h["id"] for h in listed] == [hold["id"]]
        dry = _post(client, site, "/v1/retention/run", {"dry_run": True}).json()
        assert dry["dry_run"] and dry["pruned"] == 5 and dry["held"] == 2
        run = _post(client, site, "/v1/retention/run", {}).json()
        assert run["pruned"] == 5 and run["ranges"] == [[0, 5]]
        gone = client.get("/v1/events/2", headers=site.auth("admin"))
        assert gone.status_code == 410 and gone.headers["content-type"].startswith(PROBLEM)
        assert "event 2 was pruned by retention at" in gone.json()["detail"]
        assert client.get("/v1/events/5", headers=site.auth("admin")).status_code == 200
        size = int(client.get("/checkpoint").text.splitlines()[1])
        entries = client.get(f"/tile/entries/000.p/{size}", headers=site.auth("admin"))
        assert entries.status_code == 410 and "pruned by retention" in entries.json()["detail"]
        assert len(client.get(f"/tile/0/000.p/{size}").content) == 32 * size  # hashes stay
        released = _post(client, site, f"/v1/holds/{hold['id']}/release", {"reason": "done"})
        assert released.status_code == 200 and not released.json()["active"]
        twice = _post(client, site, f"/v1/holds/{hold['id']}/release", {})
        assert twice.status_code == 409
        unknown = _post(client, site, "/v1/holds/hold-none/release", {})
        assert unknown.status_code == 404
        found = client.get(
            "/v1/events",
            params={"q": "service:glasslog category:lifecycle"},
            headers=site.auth("admin"),
        ).json()["events"]
        assert sorted(e["action"] for e in found) == ["hold.add", "hold.release", "retention.prune"]
        assert {e["actor"]["name"] for e in found} == {"admin-key"}


def test_only_admins_change_retention_or_holds(site: Site) -> None:
    """Every other role is refused with a problem, and nothing changes."""
    with site.client() as client:
        _ingest(client, site, [make_event(time=OLD)])
        for role in ("writer", "dev", "auditor"):
            for path, body in (
                ("/v1/retention/run", {}),
                ("/v1/holds", {"query": "service:x", "reason": "r"}),
            ):
                answer = _post(client, site, path, body, role=role)
                assert answer.status_code == 403, answer.text
                assert "needs a role with admin" in answer.json()["detail"]
            assert client.get("/v1/holds", headers=site.auth(role)).status_code == 403
        bad = _post(client, site, "/v1/holds", {"query": "nosuchfield:x", "reason": "r"})
        assert bad.status_code == 400 and "unknown field" in bad.json()["detail"]
        assert client.get("/v1/events/0", headers=site.auth("admin")).status_code == 200


def test_the_server_prunes_on_its_schedule(tmp_path: Path) -> None:
    """With [retention] schedule, the server runs retention by itself."""
    site = make_site(tmp_path, None, POLICY + RETENTION + 'schedule = "1s"\n')
    with site.client() as client:
        _ingest(client, site, [make_event(time=OLD) for _ in range(3)])
        deadline = time.monotonic() + 60
        while client.get("/v1/events/0", headers=site.auth("admin")).status_code != 410:
            assert time.monotonic() < deadline, "the schedule never pruned"
            time.sleep(0.2)
        found = client.get(
            "/v1/events", params={"q": "action:retention.prune"}, headers=site.auth("admin")
        ).json()["events"]
        assert found and found[0]["actor"]["id"] == "glasslog:retention-schedule"
