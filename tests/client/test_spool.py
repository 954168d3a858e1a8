"""The spool: bounded, fsync'd before log() returns, replayed in order, robust to a torn write."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from glasslog.client import Client, ClientError, SpoolFull
from tests.client.conftest import FakeServer

KEY = "gl_test_key"


def down() -> httpx.MockTransport:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    return httpx.MockTransport(refuse)


def spooled(spool: Path, transport: httpx.BaseTransport, **options: object) -> Client:
    return Client("http://audit.test", KEY, service="payments", spool=spool,
                  transport=transport, flush_interval=0.05, **options)  # type: ignore[arg-type]  # fmt: skip


def test_events_survive_an_outage_and_are_replayed_in_order(tmp_path: Path) -> None:
    """Events logged while the server is down are sent, in order, by the next client."""
    with spooled(tmp_path, down(), timeout=0.5) as c:
        ids = [c.log("a.b", actor="alice", n=i) for i in range(50)]
    fake = FakeServer()
    with spooled(tmp_path, fake.transport, batch_size=7) as c:
        assert c.flush(10)
    sent = [e["id"] for _, batch, _ in fake.requests for e in batch]
    assert sent == ids
    assert sorted(p.name for p in tmp_path.glob("*.seg")) == [
        sorted(p.name for p in tmp_path.glob("*.seg"))[-1]
    ], "acknowledged segments are deleted"


def test_a_full_spool_raises_by_default(tmp_path: Path) -> None:
    """When the spool reaches spool_max_bytes, log() raises SpoolFull saying what to do."""
    with spooled(tmp_path, down(), spool_max_bytes=4096, timeout=0.5) as c:
        for _ in range(8):
            c.log("a.b", actor="alice", pad="x" * 100)  # about 2 KiB: they fit
        with pytest.raises(SpoolFull, match=r"spool_max_bytes=4,096.*drop_oldest"):
            c.log("a.b", actor="alice", pad="x" * 2500)
        assert c.dropped == 0 and c.pending == 8


def test_drop_oldest_counts_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With on_full="drop_oldest" the oldest events go, counted in ``dropped``, with a warning;
    the newest ones are delivered."""
    with (
        caplog.at_level(logging.WARNING, "glasslog.client"),
        spooled(tmp_path, down(), spool_max_bytes=4096, on_full="drop_oldest", timeout=0.5) as c,
    ):
        ids = [c.log("a.b", actor="alice", pad="x" * 100) for _ in range(100)]
        dropped = c.dropped
    assert dropped > 50
    assert "dropped the oldest unsent events" in caplog.text
    fake = FakeServer()
    with spooled(tmp_path, fake.transport) as c:
        assert c.flush(10)
    assert list(fake.stored) == ids[dropped:]


def test_a_torn_last_record_is_dropped_on_replay(tmp_path: Path) -> None:
    """A record cut short (kill -9 during an append) is dropped; the ones before it are sent."""
    with spooled(tmp_path, down(), timeout=0.5) as c:
        ids = [c.log("a.b", actor="alice", n=i) for i in range(5)]
    segment = max(tmp_path.glob("*.seg"), key=lambda p: p.stat().st_size)
    data = segment.read_bytes()
    segment.write_bytes(data[:-10])  # the last append reached the disk only in part
    fake = FakeServer()
    with spooled(tmp_path, fake.transport) as c:
        assert c.flush(10)
        assert len(c.log("a.b", actor="alice")) == 36  # appends work after the repair
        assert c.flush(10)
    assert list(fake.stored)[:4] == ids[:4]
    assert ids[4] not in fake.stored


def test_one_client_per_spool(tmp_path: Path) -> None:
    """A second client on a spool in use is refused with a clear error."""
    with (
        spooled(tmp_path, down(), timeout=0.5),
        pytest.raises(ClientError, match="in use by another client"),
    ):
        spooled(tmp_path, down())


def test_the_spool_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Spooled events may hold personal data: a new spool directory and its files are 0700/0600."""
    spool = tmp_path / "spool"
    with spooled(spool, down(), timeout=0.5) as c:
        c.log("a.b", actor="alice")
        assert spool.stat().st_mode & 0o777 == 0o700
        assert all(p.stat().st_mode & 0o077 == 0 for p in spool.iterdir())
