"""``POST /v1/erasures`` on the real app over each backend: admin only, refused under a
legal hold, a dry run that changes nothing, and an erasure whose events the API then
shows as erased, with evidence that verifies offline and in the browser's verify.js
(Debian's Chromium) for a role that masks and hides the erased fields."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page

from glasslog.access.evidence import verify_evidence
from glasslog.datadir import DataDir
from tests.conftest import make_event
from tests.server.conftest import Site, live, site

__all__ = ["site"]  # the fixture shared with tests/server

SUBJECT = "u-api-77"
VERIFY = """([evidence, vkey]) =>
  import('/ui/verify.js').then((m) => m.verifyEvidence(evidence, vkey))"""


def _subjects_events() -> list[dict[str, Any]]:
    """Two payments events of the subject (the dev role sees payments), one of another."""
    events = [
        make_event(
            service="payments",
            actor={"id": SUBJECT, "name": "Wilhelmina Zarathustra", "email": "wz@example.org"},
            metadata={"phone": "+1 555 0100", "amount": 12},
        )
        for _ in range(2)
    ]
    for event in events:
        event["source"] = {"ip": "198.51.100.23"}
    return [*events, make_event(service="payments", actor={"id": "u-other"})]


@pytest.fixture
def seeded(site: Site) -> Site:
    """The site with [erasure] personal_metadata and the events ingested (seqs 0 to 2)."""
    policy = site.data / "policy.toml"
    policy.write_text(policy.read_text() + '\n[erasure]\npersonal_metadata = ["phone"]\n')
    with site.client() as client:
        answer = client.post(
            "/v1/events", json={"events": _subjects_events()}, headers=site.auth("admin")
        )
        assert answer.status_code == 200 and answer.json()["accepted"] == 3, answer.text
    return site


def _erase(client: TestClient, site: Site, role: str = "admin", **extra: Any) -> httpx.Response:
    body = {"subject": f"actor.id={SUBJECT}", "reason": "DSAR 2026-114", **extra}
    answer: httpx.Response = client.post("/v1/erasures", json=body, headers=site.auth(role))
    return answer


def test_only_an_admin_may_erase(seeded: Site) -> None:
    """A role without admin is refused with a problem; nothing is erased."""
    with seeded.client() as client:
        refused = _erase(client, seeded, role="dev")
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")
        shown = client.get("/v1/events/0", headers=seeded.auth("admin")).json()
        assert shown["actor"]["name"] == "Wilhelmina Zarathustra"


def test_a_dry_run_says_what_and_changes_nothing(seeded: Site) -> None:
    """dry_run answers the counts and writes no event and no change."""
    with seeded.client() as client:
        planned = _erase(client, seeded, dry_run=True)
        assert planned.status_code == 200, planned.text
        assert planned.json()["fields"] == 8 and planned.json()["authorised_by"] == []
        assert client.get("/v1/events/0", headers=seeded.auth("admin")).json()["actor"]["name"]
        found = client.get(
            "/v1/events", params={"q": "action:erasure.erase"}, headers=seeded.auth("admin")
        )
        assert found.json()["events"] == []


def test_a_hold_refuses_the_erasure_with_409(seeded: Site) -> None:
    """Under a legal hold the answer is 409 naming the hold, and nothing is erased."""
    with seeded.client() as client:
        hold = client.post(
            "/v1/holds",
            json={"query": f"actor.id:{SUBJECT}", "reason": "case 12"},
            headers=seeded.auth("admin"),
        )
        assert hold.status_code == 201, hold.text
        refused = _erase(client, seeded)
        assert refused.status_code == 409 and hold.json()["id"] in refused.json()["detail"]
        assert (
            client.get("/v1/events/1", headers=seeded.auth("admin")).json()["source"]["ip"]
            == "198.51.100.23"
        )


def _check_in_browser(
    site: Site, evidence: dict[str, Any], vkey: str, page: Page
) -> dict[str, Any]:
    with live(site) as url:
        page.goto(url + "/")
        result: dict[str, Any] = page.evaluate(VERIFY, [evidence, vkey])
        return result


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_erased_events_read_as_erased_and_their_evidence_verifies(seeded: Site, page: Page) -> None:
    """After the erasure the API shows {"$erased": time}; a role that masks the e-mail
    and hides the IP gets evidence with the erased map, which verifies in Python and in
    the browser's verify.js, and fails there once a commitment is changed."""
    with seeded.client() as client:
        done = _erase(client, seeded)
        assert done.status_code == 200, done.text
        summary = done.json()
        assert summary["events"] == 2 and summary["fields"] == 8
        (by,) = summary["authorised_by"]
        erasure = client.get(f"/v1/events/{by}", headers=seeded.auth("admin")).json()
        assert erasure["action"] == "erasure.erase" and "Zarathustra" not in str(erasure)
        marker = {"$erased": erasure["time"]}
        shown = client.get("/v1/events/0", headers=seeded.auth("admin")).json()
        assert shown["actor"]["name"] == marker and shown["metadata"] == {
            "phone": marker,
            "amount": 12,
        }
        masked = client.get("/v1/events/0", headers=seeded.auth("dev")).json()
        assert masked["actor"]["email"] == marker and "ip" not in masked.get("source", {})
        answer = client.get("/v1/events/0", params={"proof": "true"}, headers=seeded.auth("dev"))
        assert answer.status_code == 200, answer.text
        evidence = answer.json()
        vkey = client.get("/v1/vkey").text
    assert set(evidence["erased"]) == {"/actor/email", "/actor/name", "/metadata/phone"}
    assert "/source/ip" in evidence["hidden"]
    verify_evidence(evidence, DataDir(seeded.data).verifier())
    assert _check_in_browser(seeded, evidence, vkey, page)["ok"] is True
    forged = {**evidence, "event": {**evidence["event"], "actor": {**evidence["event"]["actor"]}}}
    forged["event"]["actor"]["name"] = {"$commit": "A" * 43 + "="}
    assert _check_in_browser(seeded, forged, vkey, page)["ok"] is False
