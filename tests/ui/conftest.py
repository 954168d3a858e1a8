"""The web UI in a real browser: Debian's Chromium driven by Playwright, against a live
server over a seeded store.

``ui_site`` is one data directory for the whole session (seeding takes a few seconds,
so it is done once), served by the in-process uvicorn server of ``live()``; ``page`` is
a fresh browser context and page per test, so no sign-in leaks from one test to the
next. Chromium is the distribution's (``scripts/test`` installs it); Playwright never
downloads a browser. When it is missing the tests fail, saying how to install it.
"""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page

from glasslog.access.keys import make_key
from glasslog.datadir import DataDir
from glasslog.ingest.bulk import ingest_lines
from glasslog.ingest.pipeline import Settings
from glasslog.scenario import Scenario
from glasslog.store import open_store
from tests.server.conftest import Site, live, make_site

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"

UI_POLICY = """\
[roles.admin]
permissions = ["admin"]
services = ["*"]
actions = ["*"]

[roles.payments-dev]
permissions = ["search", "get", "aggregate", "trace", "proof", "tail"]
services = ["payments", "billing"]
actions = ["*"]
mask = ["/actor/email"]
hide = ["/source/ip"]

[roles.writer]
permissions = ["ingest"]
services = ["*"]
actions = ["*"]
"""

ROLES = ("admin", "payments-dev", "writer")
SEED_EVENTS = 3_000
SEED_DAYS = 3


@dataclass(frozen=True)
class UISite:
    """A live server over a seeded store: where it is, and a key per role."""

    url: str
    """The server's base URL, without a trailing slash: ``http://127.0.0.1:PORT``."""
    keys: dict[str, str]
    """Role → API key: ``admin``, ``payments-dev`` and ``writer``."""
    data: Path
    """The data directory."""
    site: Site
    """The underlying site of tests/server/conftest.py."""

    def auth(self, role: str) -> dict[str, str]:
        """The Authorization header of ``role``'s key."""
        return {"Authorization": f"Bearer {self.keys[role]}"}


def seed(data: Path, *, events: int = SEED_EVENTS, days: int = SEED_DAYS) -> int:
    """Append ``events`` (about) stories of the demo scenario, spread over the last
    ``days`` in time order; return how many were accepted."""
    scenario = Scenario(seed=13)
    rng = random.Random(13)
    start = datetime.now(UTC) - timedelta(days=days)
    step = timedelta(days=days) / (events / 2.5)  # a story has 2.5 events on average
    lines = io.BytesIO()
    moment, made = start, 0
    while made < events:
        for event in scenario.next(moment):
            lines.write(json.dumps(event).encode() + b"\n")
            made += 1
        moment += step * rng.uniform(0.5, 1.5)
    lines.seek(0)
    accepted, _, rejected = ingest_lines(
        DataDir(data), lines, settings=Settings(), workers=1, rejected=io.StringIO()
    )
    assert rejected == 0, "the demo scenario made events the pipeline rejects"
    return accepted


@pytest.fixture(scope="session")
def ui_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UISite]:
    """One seeded data directory on SQLite, served for the whole session."""
    site = make_site(tmp_path_factory.mktemp("ui"), None, policy=UI_POLICY)
    store = open_store(site.spec)
    try:
        made = make_key(role="payments-dev", name="payments-dev-key", expires=None)
        store.add_api_key(made.stored)
        site.keys["payments-dev"] = made.text
    finally:
        store.close()
    seed(site.data)
    # A page load makes a dozen calls at once: limits far above that.
    with live(site, rate=100_000.0, burst=1_000_000, failed_sign_ins=1_000_000) as url:
        yield UISite(url=url, keys={r: site.keys[r] for r in ROLES}, data=site.data, site=site)


def screenshot(page: Page, name: str) -> None:
    """Save ``docs/screenshots/NAME.png`` when GLASSLOG_SCREENSHOTS=1, else do nothing."""
    if os.environ.get("GLASSLOG_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
