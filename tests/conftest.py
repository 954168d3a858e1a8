"""Shared fixtures: real logs in temporary directories, and event builders."""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from glasslog.testing import TemporaryLog, temporary_log

_counter = itertools.count()

MakeEvent = Callable[..., dict[str, Any]]


def make_event(**overrides: Any) -> dict[str, Any]:
    """A small valid event with a fresh client id; keyword arguments replace fields."""
    n = next(_counter)
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "time": "2026-11-26T10:00:00.000001Z",
        "service": "payments",
        "action": "db.query",
        "outcome": "success",
        "actor": {"id": f"u-{n % 7}", "type": "user", "email": f"user{n}@example.com"},
        "source": {"ip": "192.0.2.10"},
        "context": {"request_id": f"req-{n // 3}", "trace_id": f"{n // 3:032x}"},
        "metadata": {"table": "cards", "rows": n},
    }
    event.update(overrides)
    return event


@pytest.fixture(params=["sqlite", "postgres"])
def tlog(request: pytest.FixtureRequest) -> Iterator[TemporaryLog]:
    """A fresh log whose checkpoints are signed only on demand, on each backend in turn."""
    with backend_log(request.param) as log:
        yield log


@pytest.fixture
def sqlite_tlog() -> Iterator[TemporaryLog]:
    """A fresh log on the embedded SQLite store, for tests of SQLite itself."""
    with temporary_log() as log:
        yield log


@pytest.fixture
def event() -> MakeEvent:
    return make_event


def admin_dsn() -> str:
    """The throwaway cluster's admin DSN that scripts/test exports; fail (never skip) without it."""
    dsn = os.environ.get("GLASSLOG_TEST_POSTGRES")
    if not dsn:
        pytest.fail(
            "GLASSLOG_TEST_POSTGRES is not set, so the PostgreSQL backend cannot be tested: "
            "run scripts/test (it starts a throwaway cluster), or "
            'eval "$(scripts/postgres start)" before running pytest'
        )
    return dsn


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    import psycopg
    from psycopg import sql

    admin = admin_dsn()
    name = f"glasslog_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The DSN of a new, empty PostgreSQL database, dropped after the test."""
    with scratch_database() as url:
        yield url


BACKENDS = ["sqlite", "postgres"]


@contextmanager
def backend_log(backend: str, **options: Any) -> Iterator[TemporaryLog]:
    """A temporary log on ``backend``: an embedded SQLite file, or a scratch PostgreSQL database."""
    if backend == "sqlite":
        with temporary_log(**options) as log:
            yield log
        return
    with scratch_database() as url, temporary_log(store=url, **options) as log:
        yield log


# The browser tests (tests/ui, and tests elsewhere that check evidence in verify.js)
# share one Chromium: two sync Playwright instances cannot live in one process.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for one test module.

    Not for the whole session: Playwright's sync API keeps an event loop running in the
    thread while it is open, and a later test's ``asyncio.run()`` in the same process
    (the client's async tests, when pytest-xdist gives a worker both) would fail.
    """
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(
            "Chromium is not installed: run scripts/test, which installs Debian's chromium "
            "package, or `apt-get install chromium`. (Playwright's own download is not used.)"
        )
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no storage, no cookies) and page; failing waits give up after 10 s."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()
