"""fail_closed: log() returns only once the server stored the event."""

from __future__ import annotations

from pathlib import Path

import pytest

from glasslog.client import AuditNotRecorded, Client
from tests.client.conftest import serving, stored_ids
from tests.server.conftest import Site, free_port


def test_fail_closed_raises_when_the_server_is_down_and_returns_when_up(
    sqlite_site: Site, tmp_path: Path
) -> None:
    """With the server down log() raises AuditNotRecorded within the timeout; once it is up,
    log() returns the id of an event already stored."""
    port = free_port()
    key = sqlite_site.keys["writer"]
    with Client(f"http://127.0.0.1:{port}", key, service="payments", fail_closed=True,
                timeout=1.0, spool=tmp_path / "spool") as client:  # fmt: skip
        with pytest.raises(AuditNotRecorded, match=r"did not store the audit event 'secret\.read'"):
            client.log("secret.read", actor="alice")
        with serving(sqlite_site, port):
            client.timeout = 30.0
            event_id = client.log("secret.read", actor="alice", target="db-password")
            assert event_id in stored_ids(sqlite_site)


def test_fail_closed_raises_when_the_server_rejects_the_event(sqlite_site: Site) -> None:
    """An event the server refuses (a service the key may not write) is not recorded: raise."""
    port = free_port()
    with (
        serving(sqlite_site, port) as server,
        Client(
            server.url, sqlite_site.keys["writer"], service="inventory", fail_closed=True
        ) as client,
        pytest.raises(AuditNotRecorded),
    ):
        client.log("stock.move", actor="alice")
