"""The application's other views in a real browser: the trace waterfall, zooming by
the histogram, the column chooser, autocomplete, the live tail's reconnection and
parser, and the phone-width layout."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import Page, Route, expect

from tests.ui.conftest import UISite, screenshot
from tests.ui.test_app import ingest, sign_in


def test_trace_view_draws_one_lane_per_service_with_failures_marked(
    page: Page, ui_site: UISite
) -> None:
    """ "Same trace" opens a waterfall with a lane per service and failures named in words."""
    trace = uuid.uuid4().hex
    hops = [("gateway", "success", 40), ("auth", "success", 5), ("payments", "failure", 12)]
    for service, outcome, duration in hops:
        ingest(
            ui_site,
            service=service,
            action="ui.trace",
            outcome=outcome,
            context={"request_id": f"req-{trace[:8]}", "trace_id": trace},
            metadata={"duration_ms": duration},
            actor={"id": "u-trace", "type": "user", "name": "Trace", "email": "trace@example.com"},
            source={"ip": "192.0.2.8"},
        )
    sign_in(page, ui_site, "admin", f"/#q=trace:{trace}")
    expect(page.locator("#results tbody tr")).to_have_count(3)
    page.locator("#results tbody tr").first.click()
    page.get_by_role("dialog").get_by_role("button", name="Same trace").click()
    view = page.locator("#trace-view")
    expect(view.locator("text.lane-label")).to_have_text(["gateway", "auth", "payments"])
    expect(view.locator("rect.span")).to_have_count(3)
    expect(view.locator("path.mark.outcome-failure")).to_have_count(1)
    expect(view.locator("tbody tr.outcome-failure")).to_contain_text("✕ failed")
    assert f"trace={trace}" in page.url
    screenshot(page, "trace")


def test_dragging_across_the_histogram_zooms_to_an_absolute_range(
    page: Page, ui_site: UISite
) -> None:
    """A drag over the histogram sets From and To and narrows the search to them."""
    sign_in(page, ui_site, "admin")
    svg = page.locator("#histogram svg")
    expect(svg.locator("rect.bar").first).to_be_attached()
    before = svg.get_attribute("aria-label")
    box = svg.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 40, steps=5)
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"#from=[^&]+&to="))
    expect(page.get_by_label("From", exact=True)).not_to_have_value("")
    expect(page.get_by_label("To", exact=True)).not_to_have_value("")
    expect(svg).not_to_have_attribute("aria-label", before or "")


def test_the_column_chooser_is_remembered_for_the_tab(page: Page, ui_site: UISite) -> None:
    """Unticking a column hides it, and a reload in the same tab keeps it hidden."""
    sign_in(page, ui_site, "admin")
    expect(page.get_by_role("columnheader", name="Request")).to_be_visible()
    page.get_by_text("Columns").click()
    page.get_by_role("checkbox", name="Request").uncheck()
    page.get_by_role("checkbox", name="Seq").check()
    expect(page.get_by_role("columnheader", name="Request")).to_have_count(0)
    expect(page.get_by_role("columnheader", name="Seq")).to_be_visible()
    page.reload()
    expect(page.get_by_role("columnheader", name="Seq")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Request")).to_have_count(0)


def test_the_query_box_suggests_fields_and_seen_metadata_keys(page: Page, ui_site: UISite) -> None:
    """Typing the start of a field name offers it; metadata keys of results are offered too."""
    sign_in(page, ui_site, "admin", "/#q=action:db.query")
    expect(page.locator("#results tbody tr").first).to_be_visible()
    box = page.get_by_label("Query", exact=True)
    box.fill("")
    box.press_sequentially("outc")
    expect(page.get_by_role("option", name="outcome")).to_be_visible()
    box.press("ArrowDown")
    box.press("Enter")
    expect(box).to_have_value("outcome:")
    box.fill("")
    box.press_sequentially("metadata.du")
    expect(page.get_by_role("option", name="metadata.duration_ms")).to_be_visible()


def test_a_preset_range_becomes_an_after_term(page: Page, ui_site: UISite) -> None:
    """The "1 h" preset searches the last hour: the newest seeded events are older."""
    sign_in(page, ui_site, "admin")
    expect(page.locator("#results tbody tr")).to_have_count(50)
    page.get_by_role("button", name="15 min").click()
    expect(page.get_by_role("button", name="15 min")).to_have_attribute("aria-pressed", "true")
    assert "range=15m" in page.url
    expect(page.locator("#results .status")).to_be_visible()
    for service in page.locator('#results td[data-col="action"]').all_inner_texts():
        assert service.startswith("ui.")


def test_the_live_tail_resumes_after_a_dropped_stream_without_a_gap(
    page: Page, ui_site: UISite
) -> None:
    """When the stream ends, the page reconnects with Last-Event-ID and gets the event
    stored meanwhile (a fresh tail would start after it)."""
    marker = ingest(ui_site, action="ui.marker")
    found = httpx.get(
        ui_site.url + "/v1/events",
        params={"q": f"id:{marker['id']}"},
        headers=ui_site.auth("admin"),
    )
    marker_seq = found.json()["events"][0]["seq"]
    missed = f"drop-{uuid.uuid4().hex[:6]}"
    resumed_from: list[str | None] = []

    def first_stream_drops(route: Route) -> None:
        if resumed_from or route.request.headers.get("last-event-id") is not None:
            resumed_from.append(route.request.headers.get("last-event-id"))
            route.continue_()
            return
        resumed_from.append(None)
        # The stream has seen everything up to the marker, then the network drops; an
        # event is stored before the page can reconnect.
        ingest(ui_site, action="ui.drop", actor={"id": missed, "type": "user"})
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body=f": glasslog live tail\n\nid: {marker_seq}\n\n",
        )

    page.route(re.compile(r".*/v1/tail\?.*"), first_stream_drops)
    sign_in(page, ui_site, "admin", "/#view=live&q=action:ui.drop")
    expect(page.locator("#live-view tbody tr", has_text=missed)).to_be_visible(timeout=15_000)
    assert resumed_from[:2] == [None, str(marker_seq)]


def test_the_sse_parser_reads_ids_events_comments_and_split_chunks(
    page: Page, ui_site: UISite
) -> None:
    """The tail's parser handles comments, bare ids, named events and frames cut anywhere."""
    page.goto(ui_site.url + "/")
    got = page.evaluate(
        """async () => {
          const { SseParser } = await import("/ui/tail.js");
          const messages = [], ids = [];
          const parser = new SseParser((m) => messages.push(m), (id) => ids.push(id));
          const text = ': hello\\n\\nid: 7\\ndata: {"a":\\n\\nid: 9\\n\\n'
            + 'event: dropped\\r\\ndata: {"resume_after": 9}\\r\\n\\r\\ndata: x\\ndata: y\\n\\n';
          for (const piece of text.match(/[\\s\\S]{1,3}/g)) parser.feed(piece);
          return { messages, ids };
        }"""
    )
    assert got["ids"] == ["7", "9"]
    assert got["messages"] == [
        {"event": "message", "data": '{"a":', "id": "7"},
        {"event": "dropped", "data": '{"resume_after": 9}', "id": None},
        {"event": "message", "data": "x\ny", "id": None},
    ]


def test_at_phone_width_the_facets_go_under_the_results(page: Page, ui_site: UISite) -> None:
    """At 390 px the facets sit below the results table instead of beside it."""
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, ui_site, "admin")
    expect(page.locator("#facets .facet-value").first).to_be_visible()
    results = page.locator("#results").bounding_box()
    facets = page.locator("#facets").bounding_box()
    assert results is not None and facets is not None
    assert facets["y"] >= results["y"] + results["height"] - 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "phone")
