"""Syslog receivers (issue 12 §5, §8): util-linux ``logger`` sending RFC 5424 and RFC 3164
over UDP and TCP to a live server, the allow-list, the services syslog may write,
malformed input; and the parser and the framer, fuzzed."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glasslog.errors import ConfigError
from glasslog.log import Log
from glasslog.server.service import Service
from glasslog.server.syslog import Framer, Malformed, Mapping, load_mapping, parse, to_event
from tests.processes import left_behind, start, still_running
from tests.server.conftest import Site, free_port, live

LOGGER = "/usr/bin/logger"
RECEIVED = datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC)


@contextmanager
def syslog_server(site: Site, **changes: Any) -> Iterator[tuple[str, int]]:
    """A live server with a UDP and a TCP syslog listener on one port: (url, port)."""
    port = free_port()
    listen = (f"udp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port}")
    with live(site, syslog=listen, **changes) as url:
        yield url, port


def logger(port: int, *args: str) -> None:
    subprocess.run([LOGGER, "-n", "127.0.0.1", "-P", str(port), *args], check=True, timeout=30)


def found(site: Site, query: str, count: int = 1) -> list[dict[str, Any]]:
    """The events matching ``query``, once there are ``count`` (the writer commits shortly)."""
    deadline = time.monotonic() + 20
    while True:
        with Log.open(site.data) as log:
            events = log.search(query, limit=100).events
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def counted(url: str, site: Site, outcome: str) -> float:
    """The server's glasslog_syslog_messages_total for ``outcome``."""
    text = httpx.get(f"{url}/metrics", headers=site.auth("admin")).text
    match = re.search(rf'glasslog_syslog_messages_total{{outcome="{outcome}"}} (\S+)', text)
    return float(match.group(1)) if match else 0.0


def test_logger_messages_of_both_formats_over_udp_and_tcp_are_stored(sqlite_site: Site) -> None:
    """logger's RFC 5424 and 3164 over UDP and TCP (counted, newline-framed) are stored, mapped."""
    site = sqlite_site
    with syslog_server(site) as (_, port):
        logger(port, "--rfc5424", "-d", "-t", "payments", "--msgid", "user.login",
               "--sd-id", "audit@32473", "--sd-param", 'user="alice"',
               "--sd-param", 'outcome="failure"', "login failed src=203.0.113.7")  # fmt: skip
        logger(port, "--rfc3164", "-d", "-t", "payments", "action=invoice.refund user=bob")
        logger(port, "--rfc5424", "-T", "--octet-count", "-t", "billing-eu",
               "action=card.charge user=carol outcome=success")  # fmt: skip
        logger(port, "--rfc3164", "-T", "-t", "billing-us", "action=card.refund user=dave")
        logger(port, "--rfc5424", "-T", "-t", "billing-us", "action=card.void user=erin")
        [login] = found(site, "action:user.login")
        assert login["service"] == "payments" and login["outcome"] == "failure"
        assert login["actor"] == {"id": "alice"}
        assert login["source"] == {"ip": "203.0.113.7", "host": socket.gethostname()}
        assert login["metadata"]["syslog.facility"] == "user"
        assert login["metadata"]["syslog.severity"] == "notice"
        assert login["metadata"]["syslog.sender"] == "127.0.0.1"
        assert login["metadata"]["message"] == "login failed src=203.0.113.7"
        [refund] = found(site, "action:invoice.refund")
        assert refund["actor"] == {"id": "bob"} and refund["service"] == "payments"
        assert abs(datetime.fromisoformat(refund["time"]) - datetime.now(UTC)).total_seconds() < 300
        [charge] = found(site, "action:card.charge")
        assert charge["outcome"] == "success" and charge["service"] == "billing-eu"
        assert [e["actor"]["id"] for e in found(site, "service:billing-us", 2)] == ["erin", "dave"]


def test_a_sender_outside_the_allow_list_is_dropped_unanswered(sqlite_site: Site) -> None:
    """With loopback not allowed, logger's messages over UDP and TCP are dropped and counted."""
    site = sqlite_site
    with syslog_server(site, syslog_allow=("192.0.2.0/24",)) as (url, port):
        logger(port, "--rfc5424", "-d", "-t", "payments", "action=user.login user=mallory")
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"<13>1 - - payments - user.login - hi\n")
            conn.settimeout(10)
            # Closed unread (so the kernel may reset it), and not a byte answered.
            with contextlib.suppress(ConnectionResetError):
                assert conn.recv(100) == b""
        deadline = time.monotonic() + 10
        while counted(url, site, "denied") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert counted(url, site, "denied") == 2
    assert found(site, "service:payments", 0) == []


def test_tcp_garbage_then_a_good_message(sqlite_site: Site) -> None:
    """A TCP sender's garbage is counted as malformed; its good message after it is stored."""
    site = sqlite_site
    with syslog_server(site) as (url, port):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"garbage\n\x00\xff\xfe not syslog\n12x\n")
            conn.sendall(b"<14>1 2026-11-30T01:00:00Z web-1 payments 42 user.logout - bye\n")
        [event] = found(site, "action:user.logout")
        assert event["time"] == "2026-11-30T01:00:00.000000Z"
        assert event["metadata"]["syslog.procid"] == "42"
        assert counted(url, site, "malformed") == 3


def test_the_udp_listener_survives_malformed_datagrams(sqlite_site: Site) -> None:
    """Datagrams of junk, an empty one and a bad PRI are counted; the listener goes on."""
    site = sqlite_site
    with (
        syslog_server(site) as (url, port),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        for junk in (b"", b"\xff" * 2000, b"<999>1 - - - - - -", b"<13>1 x", b"<13>1 - - - - - [a"):
            udp.sendto(junk, ("127.0.0.1", port))
        udp.sendto(b"<13>Nov 30 01:02:03 db-1 payments[7]: action=db.backup", ("127.0.0.1", port))
        [event] = found(site, "action:db.backup")
        assert event["source"] == {"host": "db-1"}
        assert counted(url, site, "malformed") == 5


def test_only_the_services_of_the_mapping_are_written(sqlite_site: Site, tmp_path: Path) -> None:
    """A mapping file bounds the services syslog may write, and renames keys to fields."""
    site = sqlite_site
    mapping = tmp_path / "syslog.toml"
    mapping.write_text('services = ["payments"]\n[fields]\nwho = "actor.id"\nverb = "action"\n')
    with syslog_server(site, syslog_map=mapping) as (url, port):
        logger(port, "--rfc3164", "-d", "-t", "sshd", "verb=user.login who=root")
        logger(port, "--rfc3164", "-d", "-t", "payments", "verb=user.login who=alice user=x")
        [event] = found(site, "action:user.login")
        assert event["service"] == "payments" and event["actor"]["id"] == "alice"
        assert event["metadata"]["user"] == "x"  # not mapped by this file
        assert counted(url, site, "refused") == 1


def test_glasslog_serve_receives_syslog_and_writes_it_before_it_stops(
    sqlite_site: Site, tmp_path: Path
) -> None:
    """The serve command's --syslog, --syslog-allow and --syslog-map options; SIGTERM after a
    message leaves it stored and signed."""
    site, http, port, mark = sqlite_site, free_port(), free_port(), uuid.uuid4().hex
    mapping = tmp_path / "syslog.toml"
    mapping.write_text('services = ["payments"]\n')
    process = start("serve", "--data", str(site.data), "--port", str(http),
                    "--syslog", f"tcp://127.0.0.1:{port}", "--syslog-allow", "127.0.0.1/32",
                    "--syslog-map", str(mapping), mark=mark,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _ready(f"http://127.0.0.1:{http}"):
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)
        logger(port, "--rfc5424", "-T", "-t", "payments", "--msgid", "user.logout", "user=zoe")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)  # uvicorn ends by the signal, after its graceful stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    with Log.open(site.data) as log:
        [event] = log.search("action:user.logout", limit=10).events
        assert event["actor"]["id"] == "zoe"
        assert log.latest_checkpoint().size == log.store.size()
    assert not still_running(left_behind(mark), within=5)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_bad_settings_are_refused_before_serving(sqlite_site: Site, tmp_path: Path) -> None:
    """A bad --syslog URL, --syslog-allow network or mapping file is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="give udp://HOST:PORT"):
        Service(sqlite_site.config(syslog=("syslog://127.0.0.1:514",)))
    with pytest.raises(ConfigError, match="not a network"):
        Service(sqlite_site.config(syslog=("udp://127.0.0.1:5514",), syslog_allow=("everyone",)))
    bad = tmp_path / "map.toml"
    bad.write_text('[fields]\nuser = "service"\n')
    with pytest.raises(ConfigError, match="is not a field a syslog key may set"):
        load_mapping(bad)


def test_rfc5424_examples_parse() -> None:
    """The RFC's examples: NIL fields, structured data with escapes, a BOM before the MSG."""
    message = parse(
        b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
        b'[exampleSDID@32473 iut="3" eventSource="App\\"lication\\]" eventID="1011"]'
        b"[examplePriority@32473 class=\"high\"] \xef\xbb\xbfAn application event",
        received=RECEIVED,
    )  # fmt: skip
    assert (message.facility, message.severity, message.rfc) == (20, 5, 5424)
    assert message.hostname == "mymachine.example.com" and message.procid is None
    assert message.structured[0][1][1] == ("eventSource", 'App"lication]')
    assert message.text == "An application event"
    event = to_event(message, Mapping(), sender="192.0.2.1", received=RECEIVED)
    assert event["action"] == "id47"
    assert event["time"] == "2003-10-11T22:14:15.003000Z"
    assert event["metadata"]["exampleSDID@32473.eventID"] == "1011"


def test_rfc3164_takes_the_year_nearest_to_its_arrival() -> None:
    """A December timestamp received on 1 January is last year's; the zone is taken as UTC."""
    new_year = datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC)
    message = parse(b"<38>Dec 31 23:59:58 gw sshd[811]: Accepted key for root", received=new_year)
    assert message.time == datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)
    assert (message.hostname, message.app_name, message.procid) == ("gw", "sshd", "811")
    assert message.text == "Accepted key for root"
    without_host = parse(b"<38>Dec 31 23:59:58 sshd: hello", received=new_year)
    assert (without_host.hostname, without_host.app_name) == (None, "sshd")


@settings(max_examples=500, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.builds(lambda head, tail: head + tail, st.sampled_from(
        [b"<13>1 ", b"<13>1 - - - - - [", b"<13>Nov 30 01:02:03 ", b"<0>", b"<191>1 - h a p m "]
    ), st.binary(max_size=200)),
))  # fmt: skip
def test_the_parser_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    """Any bytes parse to a message that maps to an event, or raise Malformed; nothing else."""
    try:
        message = parse(data, received=RECEIVED)
    except Malformed:
        return
    event = to_event(message, Mapping(), sender="127.0.0.1", received=RECEIVED)
    assert isinstance(event["service"], str) and isinstance(event["metadata"], dict)


_FRAME = st.binary(max_size=80).map(lambda b: b"<" + b.replace(b"\n", b"").replace(b"\r", b""))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_FRAME, st.booleans()), max_size=8),
    st.lists(st.integers(1, 50), min_size=1, max_size=10),
)
def test_the_framer_finds_the_same_frames_however_the_stream_is_cut(
    messages: list[tuple[bytes, bool]], cuts: list[int]
) -> None:
    """Octet-counted and newline frames, mixed, come out whole whatever the chunking."""
    stream = b"".join(b"%d %s" % (len(m), m) if octets else m + b"\n" for m, octets in messages)
    framer, frames, at, turn = Framer(), [], 0, 0
    while at < len(stream):
        size = cuts[turn % len(cuts)]
        got, dropped = framer.feed(stream[at : at + size])
        assert dropped == 0
        frames += got
        at, turn = at + size, turn + 1
    frames += framer.close()[0]
    assert frames == [m for m, _ in messages]


def test_the_framer_drops_oversized_frames_and_goes_on() -> None:
    """A frame past the limit, counted or newline-terminated, is dropped; the next one is whole."""
    framer = Framer(limit=10)
    frames, dropped = framer.feed(b"99 " + b"x" * 99 + b"<1>ok\n" + b"y" * 30 + b"\n<2>ok\n")
    assert frames == [b"<1>ok", b"<2>ok"] and dropped == 2
