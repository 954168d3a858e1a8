"""``POST /v1/exports`` on a real uvicorn server, on each backend: the caller's bundle,
verifiable offline, only for a role with ``export``; audited and recorded."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from glasslog.bundle import verify_bundle
from glasslog.datadir import DataDir
from glasslog.log import Log
from tests.conftest import BACKENDS, scratch_database
from tests.server.conftest import Site, live, make_site
from tests.test_bundle import POLICY, _events


@pytest.fixture(params=BACKENDS)
def export_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """A site whose dev role may export (masking, hiding) and whose nothing role may not."""
    if request.param == "sqlite":
        yield make_site(tmp_path, None, POLICY)
        return
    with scratch_database() as url:
        yield make_site(tmp_path, url, POLICY)


def _covered(http: httpx.Client, size: int) -> None:
    """Wait until a signed checkpoint covers ``size`` events (the writer signs in batches)."""
    deadline = time.monotonic() + 30
    while True:
        answer = http.get("/checkpoint")
        if answer.status_code == 200 and int(answer.text.split("\n")[1]) >= size:
            return
        assert time.monotonic() < deadline, f"no checkpoint covered the events: {answer.text}"
        time.sleep(0.1)


def _recorded(site: Site, query: str, count: int) -> list[dict[str, Any]]:
    """The events matching ``query`` once ``count`` of them are stored (the server
    writes audit and lifecycle events through its writer, in the background)."""
    deadline = time.monotonic() + 30
    while True:
        with Log.open(site.data, store=site.store) as log:
            found = log.search(query, limit=100).events
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_export_over_http(export_site: Site) -> None:
    """A role with export gets a gzip bundle of its masked view that verifies against
    the log's key; a role without it gets 403 and no principal 401; the export is an
    audited read and an export.create event whose actor is the caller."""
    events = _events(12)
    vkey = DataDir(export_site.data).vkey()
    with live(export_site) as url, httpx.Client(base_url=url, timeout=60) as http:
        answer = http.post("/v1/events", json={"events": events},
                           headers=export_site.auth("writer"))  # fmt: skip
        assert answer.status_code == 200 and answer.json()["accepted"] == 12
        _covered(http, 12)
        got = http.post("/v1/exports", json={"query": "", "comment": "over HTTP"},
                        headers=export_site.auth("dev"))  # fmt: skip
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/gzip"
        report = verify_bundle(got.content, trusted=vkey)
        assert report.events == 9 and report.comment == "over HTTP"  # payments only
        assert report.principal["roles"] == ["dev"]
        raw = gzip.decompress(got.content)
        assert not any(e["actor"]["email"].encode() in raw for e in events)
        assert b"192.0.2.10" not in raw

        refused = http.post("/v1/exports", json={"query": ""}, headers=export_site.auth("nothing"))
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert "may not export" in refused.json()["detail"]
        assert http.post("/v1/exports", json={"query": ""}).status_code == 401
        bad = http.post("/v1/exports", json={"query": "("}, headers=export_site.auth("dev"))
        assert bad.status_code == 400

    (created,) = _recorded(export_site, "action:export.create", 1)
    assert created["actor"]["id"].startswith("key:") and created["metadata"]["events"] == 9
    audits = _recorded(export_site, "action:audit.read metadata.operation:export", 2)
    assert sorted(a["outcome"] for a in audits) == ["denied", "success"]


def test_export_over_http_with_admin(export_site: Site, tmp_path: Path) -> None:
    """An admin's export holds every field in clear and verifies."""
    events = _events(5)
    with live(export_site) as url, httpx.Client(base_url=url, timeout=60) as http:
        http.post("/v1/events", json={"events": events}, headers=export_site.auth("writer"))
        _covered(http, 5)
        got = http.post("/v1/exports", json={"query": "service:billing"},
                        headers=export_site.auth("admin"))  # fmt: skip
        assert got.status_code == 200, got.text
    (tmp_path / "admin.tar.gz").write_bytes(got.content)
    report = verify_bundle(got.content, trusted=DataDir(export_site.data).vkey())
    assert report.events == 2
    assert events[0]["actor"]["email"].encode() in gzip.decompress(got.content)
