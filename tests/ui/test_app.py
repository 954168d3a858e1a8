"""The application's pages in a real browser: sign-in, search, facets, paging, the
event drawer and its Verify, masking, the live tail, query errors and shared links."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Page, Response, Route, expect

from glasslog.event import uuid7
from tests.ui.conftest import UISite, screenshot


def sign_in(page: Page, ui_site: UISite, role: str, path: str = "/") -> None:
    """Open ``path`` and sign in with ``role``'s key; wait for the header to name the role."""
    page.goto(ui_site.url + path)
    page.get_by_label("API key").fill(ui_site.keys[role])
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#who")).to_contain_text(role)


def rows(page: Page) -> list[str]:
    """The texts of the results table's rows."""
    return page.locator("#results tbody tr").all_inner_texts()


def ingest(ui_site: UISite, **fields: object) -> dict[str, object]:
    """POST one event with the writer key and return it (service "ui" unless told: the
    session's store is shared, and other tests read its newest payments events)."""
    event: dict[str, object] = {
        "id": str(uuid7()),
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "service": "ui",
        "action": "ui.test",
        "actor": {"id": "ui-tester", "type": "user"},
        "outcome": "success",
        **fields,
    }
    answer = httpx.post(ui_site.url + "/v1/events", json=event, headers=ui_site.auth("writer"))
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    return event


def test_sign_in_search_facet_load_more_and_drawer(page: Page, ui_site: UISite) -> None:
    """An admin signs in, searches, filters by a facet, loads a second page and opens an
    event by keyboard, with no script error or CSP violation on the way."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A CSP violation (inline script or style) is reported as a console error.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(ui_site.url + "/")
    screenshot(page, "sign-in")
    sign_in(page, ui_site, "admin")
    expect(page.locator("#who")).to_contain_text("admin")
    expect(page.locator("#results tbody tr")).to_have_count(50)
    expect(page.locator("#histogram svg rect.bar").first).to_be_attached()
    screenshot(page, "search")

    payments = page.locator("#facets .facet-value", has_text="payments").first
    expect(payments).to_be_visible()
    payments.click()
    expect(page.get_by_label("Query", exact=True)).to_have_value("service:payments")
    assert "q=service%3Apayments" in page.url
    expect(page.locator("#results tbody tr")).to_have_count(50)
    services = page.locator('#results td[data-col="service"]').all_inner_texts()
    assert set(services) == {"payments"}

    page.get_by_role("button", name="Load more").click()
    expect(page.locator("#results tbody tr")).to_have_count(100)

    page.locator("#results tbody tr").first.focus()
    page.keyboard.press("Enter")
    drawer = page.get_by_role("dialog")
    expect(drawer).to_be_visible()
    expect(drawer).to_contain_text("payments")
    expect(drawer.get_by_role("button", name="Same request")).to_be_visible()
    screenshot(page, "drawer")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    assert errors == []


def test_alt_click_on_a_facet_excludes_the_value(page: Page, ui_site: UISite) -> None:
    """Alt-clicking a facet value adds its negation to the query."""
    sign_in(page, ui_site, "admin")
    page.locator("#facets .facet-value", has_text="payments").first.click(modifiers=["Alt"])
    expect(page.get_by_label("Query", exact=True)).to_have_value("-service:payments")
    expect(page.locator("#results tbody tr")).to_have_count(50)
    assert "payments" not in page.locator('#results td[data-col="service"]').all_inner_texts()


def test_a_bad_query_shows_the_error_with_a_caret(page: Page, ui_site: UISite) -> None:
    """A query with a misspelt field shows the server's message and a caret under it."""
    sign_in(page, ui_site, "admin")
    page.get_by_label("Query", exact=True).fill("service:payments actr.id:alice")
    page.get_by_label("Query", exact=True).press("Enter")
    error = page.locator("#query-error")
    expect(error).to_contain_text("unknown field 'actr.id'; did you mean 'actor.id'?")
    lines = error.inner_text().splitlines()
    assert lines[1] == "  service:payments actr.id:alice"
    assert lines[2] == "  " + " " * len("service:payments ") + "^"
    screenshot(page, "query-error")


def test_masked_field_shows_as_masked_and_its_value_never_reaches_the_page(
    page: Page, ui_site: UISite
) -> None:
    """payments-dev sees a masked email as "masked for role payments-dev", the address
    nowhere in the DOM or in any response the page received."""
    secret = f"masked-{uuid.uuid4().hex[:8]}@example.com"
    event = ingest(
        ui_site,
        service="payments",
        actor={"id": "mask-test", "type": "user", "name": "Mask Test", "email": secret},
        source={"ip": "192.0.2.7"},
    )
    bodies: list[bytes] = []

    def record(response: Response) -> None:
        try:
            bodies.append(response.body())
        except Exception:
            bodies.append(b"")

    page.on("response", record)
    sign_in(page, ui_site, "payments-dev", f"/#q=id:{event['id']}")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    page.locator("#results tbody tr").first.click()
    drawer = page.get_by_role("dialog")
    expect(drawer).to_contain_text("masked for role payments-dev")
    expect(drawer.locator(".masked")).to_have_count(1)
    screenshot(page, "drawer-masked")
    assert secret not in page.content()
    assert bodies and all(secret.encode() not in body for body in bodies)


def test_verify_succeeds_in_the_browser(page: Page, ui_site: UISite) -> None:
    """Verify checks the event's evidence against the vkey and says what it checked."""
    # An event a few seconds old: the newest may not be under a signed checkpoint yet.
    settled = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    sign_in(page, ui_site, "admin", f"/#to={settled}")
    page.locator("#results tbody tr").first.click()
    page.get_by_role("dialog").get_by_role("button", name="Verify").click()
    result = page.locator(".verify-result")
    expect(result).to_contain_text(re.compile(r"Included at seq [\d,]+ in the log of size"))
    expect(result).not_to_contain_text("failed")
    screenshot(page, "verify")


def test_verify_fails_on_tampered_evidence(page: Page, ui_site: UISite) -> None:
    """Evidence changed on the way (a routed response) shows "Verification failed"."""

    def tamper(route: Route) -> None:
        response = route.fetch()
        evidence = response.json()
        evidence["event"]["action"] = "tampered.action"
        route.fulfill(response=response, body=json.dumps(evidence))

    page.route(re.compile(r".*/v1/events/\d+\?proof=true$"), tamper)
    sign_in(page, ui_site, "admin")
    page.locator("#results tbody tr").first.click()
    page.get_by_role("dialog").get_by_role("button", name="Verify").click()
    expect(page.locator(".verify-result")).to_contain_text("Verification failed")


def test_live_tail_shows_a_new_event(page: Page, ui_site: UISite) -> None:
    """The live tail shows an event ingested after it opened, within a second."""
    sign_in(page, ui_site, "admin", "/#view=live&q=action:ui.live")
    expect(page.locator(".live-state")).to_have_text("live")
    actor = f"live-{uuid.uuid4().hex[:8]}"
    ingest(ui_site, action="ui.live", actor={"id": actor, "type": "user"})
    expect(page.locator("#live-view tbody tr", has_text=actor)).to_be_visible(timeout=1_000)
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    screenshot(page, "live")


def test_a_shared_link_runs_as_the_receivers_role(page: Page, ui_site: UISite) -> None:
    """A link copied by an admin asks payments-dev to sign in, then shows only its services."""
    sign_in(page, ui_site, "admin")
    page.get_by_role("button", name="7 d").click()
    page.get_by_label("Query", exact=True).fill("-action:ui.*")
    page.get_by_label("Query", exact=True).press("Enter")
    expect(page.locator("#results tbody tr")).to_have_count(50)
    shared = page.url
    assert "range=7d" in shared
    assert set(page.locator('#results td[data-col="service"]').all_inner_texts()) - {
        "payments",
        "billing",
    }

    other = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        receiver = other.new_page()
        receiver.goto(shared)
        expect(receiver.locator("#signin")).to_contain_text("shared link")
        receiver.get_by_label("API key").fill(ui_site.keys["payments-dev"])
        receiver.get_by_role("button", name="Sign in", exact=True).click()
        expect(receiver.get_by_label("Query", exact=True)).to_have_value("-action:ui.*")
        expect(receiver.locator("#results tbody tr")).to_have_count(50)
        services = set(receiver.locator('#results td[data-col="service"]').all_inner_texts())
        assert services <= {"payments", "billing"} and services
    finally:
        other.close()


def test_event_values_are_text_never_markup(page: Page, ui_site: UISite) -> None:
    """An event whose fields hold HTML shows it as text, and its script never runs."""
    attack = "<img src=x onerror=\"document.title='pwned'\">"
    event = ingest(
        ui_site,
        action="ui.xss",
        actor={"id": attack, "type": "user"},
        target={"type": "page", "id": attack},
        metadata={"note": attack, attack: "key"},
    )
    sign_in(page, ui_site, "admin", f"/#q=id:{event['id']}")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    expect(page.locator('#results td[data-col="actor"]')).to_have_text(attack)
    page.locator("#results tbody tr").first.click()
    expect(page.get_by_role("dialog")).to_contain_text(attack)
    page.locator("#facets .facet-value").first.wait_for()
    assert page.locator("img").count() == 0
    assert page.title() == "glasslog"


def test_sign_out_forgets_the_key(page: Page, ui_site: UISite) -> None:
    """Sign out shows the sign-in form again and leaves no key in the tab's storage."""
    sign_in(page, ui_site, "admin")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('glasslog.credential')") is None
    assert ui_site.keys["admin"] not in page.url


def test_a_wrong_key_is_refused_and_not_kept(page: Page, ui_site: UISite) -> None:
    """A key the server refuses leaves the sign-in form up with a reason, and no key stored."""
    page.goto(ui_site.url + "/")
    page.get_by_label("API key").fill("glk_not-a-real-key")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#signin-error")).to_contain_text("That API key is not valid")
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('glasslog.credential')") is None
