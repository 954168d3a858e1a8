"""Syslog receivers: RFC 5424 and RFC 3164 messages over UDP and TCP, mapped to events.

``glasslog serve --syslog udp://127.0.0.1:5514 --syslog tcp://127.0.0.1:5514`` listens
for syslog beside the HTTP API. Each datagram is one message (RFC 5426). On TCP each
message is framed by octet counting or by a newline (RFC 6587 §3.4.1 and §3.4.2), told
apart per message: a frame that starts with digits and a space is counted.

The parser is written here, small and strict, because no maintained library parses
both formats: :func:`parse` either returns a :class:`Message` or raises
:class:`Malformed`, whatever the bytes (a hypothesis test holds it to that). Malformed
input is counted and logged without its content, and never stops a listener.

Syslog has no credentials, so senders are allow-listed by source address
(``--syslog-allow``, loopback only by default); anything else is dropped unanswered
and counted. What the allowed senders may write is bounded too: the services named in
the mapping file (:class:`Mapping`, ``--syslog-map``). Events go through the server's
one writer queue, as ``POST /v1/events`` does, and are as durable once written.

docs/capture.md documents the mapping and the decisions (RFC 3164's missing year and
zone, why syslog events get random ids).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from glasslog.errors import ConfigError
from glasslog.event import format_time, parse_time
from glasslog.ingest.pipeline import Receipt
from glasslog.server.prepare import screen
from glasslog.server.writer import QueueFull, WriterStopped

__all__ = [
    "DEFAULT_ALLOW",
    "DEFAULT_FIELDS",
    "Framer",
    "Malformed",
    "Mapping",
    "Message",
    "SyslogReceiver",
    "load_mapping",
    "parse",
    "to_event",
]

log = logging.getLogger("glasslog.server.syslog")

MAX_MESSAGE: Final = 64 * 1024
"""Bytes one message may take; a longer frame is dropped and counted."""
MAX_CONNECTIONS: Final = 256
"""TCP senders connected at once; more are closed at once."""
DEFAULT_ALLOW: Final = ("127.0.0.0/8", "::1/128")
DEFAULT_SERVICE: Final = "syslog"
"""The service of a message without APP-NAME or TAG."""
DEFAULT_ACTION: Final = "syslog.message"
"""The action of a message without MSGID or a mapped ``action`` key."""

FACILITIES: Final = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
    "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES: Final = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

DEFAULT_FIELDS: Final = {
    "user": "actor.id",
    "actor": "actor.id",
    "src": "source.ip",
    "ip": "source.ip",
    "action": "action",
    "outcome": "outcome",
    "target": "target.id",
    "reason": "reason",
    "request_id": "context.request_id",
}
"""Keys of structured data and of ``key=value`` pairs that become schema fields."""

_TARGETS: Final = frozenset({
    "action", "category", "environment", "outcome", "reason",
    "actor.id", "actor.type", "actor.name", "actor.email", "actor.session_id",
    "source.ip", "source.user_agent", "source.host",
    "target.type", "target.id", "target.name",
    "context.request_id", "context.trace_id", "context.span_id", "context.function",
    "context.module", "context.version", "context.commit", "context.host",
})  # fmt: skip
"""Where a key may be mapped: never ``service`` (APP-NAME says it, and the allowed
services bound it), ``id`` or ``time``."""


class Malformed(ValueError):
    """A message that is not RFC 5424 or RFC 3164; the reason names no content."""


# -- parsing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One syslog message, parsed; None where the message has the NILVALUE or no field."""

    facility: int
    severity: int
    rfc: int
    """5424 or 3164."""
    time: datetime | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    structured: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    text: str


_PRI = re.compile(rb"<(0|[1-9][0-9]{0,2})>")
_PRINTUSASCII = re.compile(r"[!-~]+")
_SD_NAME = re.compile(r"[!#-<>-Z\\^-~]{1,32}")  # PRINTUSASCII but = SP ] "
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                  "Nov", "Dec")  # fmt: skip
_RFC3164_TIME = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ 1-3][0-9]) "
    r"([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]) "
)
_TAG = re.compile(r"([!-9;-Z\\^-~]{1,48})(?:\[([!-Z\\^-~]{1,128})\])?:? ?")
_BOM: Final = "\ufeff"


def parse(data: bytes, *, received: datetime) -> Message:
    """The message in ``data`` (one frame); :class:`Malformed` if it is not syslog.

    ``received`` (aware) is when it arrived: RFC 3164 timestamps have no year, and the
    year that puts them nearest to it is taken.
    """
    pri = _PRI.match(data)
    if pri is None:
        raise Malformed("no <PRI> at the start")
    value = int(pri.group(1))
    if value > 191:
        raise Malformed(f"PRI {value} is past 191")
    facility, severity = divmod(value, 8)
    rest = data[pri.end() :]
    if rest.startswith(b"1 "):
        return _parse_5424(facility, severity, rest[2:])
    return _parse_3164(facility, severity, rest, received)


def _text(raw: bytes) -> str:
    """Message text: UTF-8 (a BOM announces it; RFC 3164 does not), bad bytes replaced."""
    text = raw.decode("utf-8", errors="replace")
    return text.removeprefix(_BOM)


def _parse_5424(facility: int, severity: int, rest: bytes) -> Message:
    parts = rest.split(b" ", 5)
    if len(parts) < 6:
        raise Malformed("an RFC 5424 header has TIMESTAMP HOSTNAME APP-NAME PROCID MSGID")
    stamp, host, app, procid, msgid, tail = parts
    try:
        hostname, app_name = _header(host, 255), _header(app, 48)
        proc, msg_id = _header(procid, 128), _header(msgid, 32)
    except UnicodeDecodeError:
        raise Malformed("an RFC 5424 header field is not ASCII") from None
    time = None
    if stamp != b"-":
        try:
            time = parse_time(stamp.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise Malformed("the RFC 5424 TIMESTAMP is not RFC 3339") from None
    structured, text = _structured(tail)
    return Message(facility, severity, 5424, time, hostname, app_name, proc, msg_id, structured,
                   _text(text))  # fmt: skip


def _header(raw: bytes, limit: int) -> str | None:
    text = raw.decode("ascii")
    if text == "-":
        return None
    if len(text) > limit or _PRINTUSASCII.fullmatch(text) is None:
        raise Malformed(f"an RFC 5424 header field is empty, longer than {limit} or not printable")
    return text


def _structured(
    data: bytes,
) -> tuple[tuple[tuple[str, tuple[tuple[str, str], ...]], ...], bytes]:
    """STRUCTURED-DATA (RFC 5424 §6.3) and the MSG after it."""
    if data == b"-" or data.startswith(b"- "):
        return (), data[2:]
    if not data.startswith(b"["):
        raise Malformed("STRUCTURED-DATA is neither - nor [elements]")
    elements: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    at = 0
    while at < len(data) and data[at : at + 1] == b"[":
        at, element = _element(data, at + 1)
        elements.append(element)
    if at < len(data):
        if data[at : at + 1] != b" ":
            raise Malformed("STRUCTURED-DATA must be followed by a space and the MSG")
        at += 1
    return tuple(elements), data[at:]


def _element(data: bytes, at: int) -> tuple[int, tuple[str, tuple[tuple[str, str], ...]]]:
    sd_id, at = _sd_name(data, at)
    params: list[tuple[str, str]] = []
    while True:
        if data[at : at + 1] == b"]":
            return at + 1, (sd_id, tuple(params))
        if data[at : at + 1] != b" ":
            raise Malformed("an SD-ELEMENT's parameters are separated by spaces and end with ]")
        name, at = _sd_name(data, at + 1)
        if data[at : at + 2] != b'="':
            raise Malformed('an SD-PARAM is name="value"')
        at += 2
        value = bytearray()
        while True:
            if at >= len(data):
                raise Malformed("an SD-PARAM value is not closed")
            byte = data[at]
            if byte == 0x5C and data[at + 1 : at + 2] in (b'"', b"\\", b"]"):  # \" \\ \]
                value += data[at + 1 : at + 2]
                at += 2
            elif byte == 0x22:
                at += 1
                break
            else:
                value.append(byte)
                at += 1
        params.append((name, _text(bytes(value))))


def _sd_name(data: bytes, at: int) -> tuple[str, int]:
    end = at
    while end < len(data) and end - at <= 32 and data[end] not in b' ="]':
        end += 1
    name = data[at:end].decode("ascii", errors="replace")
    if _SD_NAME.fullmatch(name) is None:
        raise Malformed("an SD-ID or PARAM-NAME is not 1 to 32 printable ASCII characters")
    return name, end


def _parse_3164(facility: int, severity: int, rest: bytes, received: datetime) -> Message:
    """RFC 3164 §4.1: TIMESTAMP HOSTNAME TAG: MSG, leniently (§4.3.3: a message without
    a timestamp is all MSG; many senders leave out HOSTNAME)."""
    text = _text(rest)
    stamp = _RFC3164_TIME.match(text)
    time = hostname = None
    if stamp is not None:
        time = _year_of(stamp, received)
        text = text[stamp.end() :]
        word, space, after = text.partition(" ")
        # A HOSTNAME has no ':' or '[' at its end; a TAG right after the time has.
        if space and word and not word.endswith(":") and "[" not in word and word.isprintable():
            hostname, text = word[:255], after
    tag = procid = None
    found = _TAG.match(text)
    if found is not None and found.group(0).rstrip(" ").endswith((":", "]")):
        tag, procid = found.group(1), found.group(2)
        text = text[found.end() :]
    return Message(facility, severity, 3164, time, hostname, tag, procid, None, (), text)


def _year_of(stamp: re.Match[str], received: datetime) -> datetime | None:
    """The RFC 3164 time in UTC, in the year that puts it nearest to ``received``."""
    month = _MONTHS.index(stamp.group(1)) + 1
    day, hour, minute, second = (int(stamp.group(i)) for i in range(2, 6))
    candidates = []
    for year in (received.year - 1, received.year, received.year + 1):
        try:
            candidates.append(datetime(year, month, day, hour, minute, second, tzinfo=UTC))
        except ValueError:  # 29 February of a common year, or day 0 / 39
            continue
    if not candidates:
        return None
    return min(candidates, key=lambda moment: abs(moment - received))


# -- framing ---------------------------------------------------------------------------


@dataclass(slots=True)
class Framer:
    """Splits a TCP stream into messages, octet-counted or newline-terminated, per frame
    (RFC 6587 §3.4). :meth:`feed` returns the complete frames and how many were dropped
    (too long, or a count that is not one)."""

    limit: int = MAX_MESSAGE
    _buffer: bytearray = field(default_factory=bytearray)
    _skip: int = 0
    """Bytes still to drop of an octet-counted frame past the limit."""
    _discarding: bool = False
    """Dropping a newline-framed message past the limit, up to its newline."""

    def feed(self, data: bytes) -> tuple[list[bytes], int]:
        self._buffer += data
        frames: list[bytes] = []
        dropped = 0
        buffer = self._buffer
        while buffer:
            if self._skip:
                taken = min(self._skip, len(buffer))
                del buffer[:taken]
                self._skip -= taken
                continue
            if self._discarding:
                end = buffer.find(b"\n")
                if end < 0:
                    buffer.clear()
                    break
                del buffer[: end + 1]
                self._discarding = False
                continue
            if buffer[0] in b"\r\n":
                del buffer[:1]
                continue
            counted = _octet_count(buffer)
            if counted is not None:
                length, header = counted
                if length < 0:
                    break  # digits so far: wait for the rest of the count
                if length > self.limit or length == 0:
                    dropped += 1
                    del buffer[:header]
                    self._skip = length
                    continue
                if len(buffer) < header + length:
                    break
                frames.append(bytes(buffer[header : header + length]))
                del buffer[: header + length]
                continue
            end = buffer.find(b"\n", 0, self.limit + 1)
            if end < 0:
                if len(buffer) > self.limit:
                    dropped += 1
                    self._discarding = True  # up to the next newline
                    continue
                break
            frames.append(bytes(buffer[:end]).rstrip(b"\r"))
            del buffer[: end + 1]
        return frames, dropped

    def close(self) -> tuple[list[bytes], int]:
        """The last frame of a stream that ended without a newline (a partial octet-
        counted frame is dropped)."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        if not rest.strip() or self._skip or self._discarding:
            return [], 0
        if _octet_count(rest) is not None:
            return [], 1
        return [rest.rstrip(b"\r")], 0


def _octet_count(buffer: bytearray | bytes) -> tuple[int, int] | None:
    """``(length, header length)`` of an octet-counted frame, ``(-1, 0)`` when the count
    may still be arriving, None when the frame is newline-terminated."""
    at = 0
    while at < len(buffer) and at < 8 and 0x30 <= buffer[at] <= 0x39:
        at += 1
    if at == 0 or buffer[0] == 0x30:
        return None
    if at == len(buffer) and at < 8:
        return (-1, 0)
    if at < len(buffer) and buffer[at] == 0x20:
        return int(buffer[:at]), at + 1
    return None


# -- mapping ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mapping:
    """How messages become events, and which services syslog may write."""

    fields: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    """Key (an SD-PARAM name, ``SD-ID.name``, or a ``key=value`` key) → event field."""
    services: tuple[str, ...] = ("*",)
    """Service globs that syslog may write: a message of another service is refused."""


def load_mapping(path: Path | None) -> Mapping:
    """The mapping in a TOML file (``--syslog-map``); the defaults without one.

    ``services = ["sshd", "payments-*"]`` bounds the services; a ``[fields]`` table
    replaces the default field mapping. Anything else is an error (fail closed).
    """
    if path is None:
        return Mapping()
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the syslog mapping {path}: {exc}") from None
    unknown = set(settings) - {"services", "fields"}
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; a syslog "
                          "mapping has services = [...] and a [fields] table")  # fmt: skip
    services = settings.get("services", ["*"])
    if not isinstance(services, list) or not all(isinstance(s, str) and s for s in services):
        raise ConfigError(f'{path}: services must be a list of service globs, such as ["sshd"]')
    fields = settings.get("fields", DEFAULT_FIELDS)
    if not isinstance(fields, dict):
        raise ConfigError(f'{path}: [fields] maps keys to event fields, such as user = "actor.id"')
    for key, target in fields.items():
        if target not in _TARGETS:
            raise ConfigError(f"{path}: fields.{key} = {target!r} is not a field a syslog key "
                              f"may set; use one of {', '.join(sorted(_TARGETS))}")  # fmt: skip
    return Mapping(fields=dict(fields), services=tuple(services))


_PAIR = re.compile(r'(?<![^\s,;])([A-Za-z_][A-Za-z0-9_.-]{0,63})=("(?:[^"\\]|\\.)*"|[^\s,;]*)')


def to_event(
    message: Message, mapping: Mapping, *, sender: str, received: datetime
) -> dict[str, Any]:
    """The event of a message (docs/capture.md, "Syslog"); validation comes later.

    Precedence, highest first: structured data, then MSGID (for the action), then
    ``key=value`` pairs in the message text, which whoever writes the text controls.
    """
    event: dict[str, Any] = {"service": message.app_name or DEFAULT_SERVICE}
    metadata: dict[str, Any] = {}
    mapped: dict[str, str] = {}
    for key, raw in _PAIR.findall(message.text):
        value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
        target = mapping.fields.get(key)
        if target is None:
            metadata[key] = value
        else:
            mapped[target] = value
    if message.msgid is not None:
        mapped["action"] = message.msgid.lower()  # an action is lowercase; MSGIDs rarely are
    for sd_id, params in message.structured:
        for name, value in params:
            target = mapping.fields.get(f"{sd_id}.{name}") or mapping.fields.get(name)
            if target is None:
                metadata[f"{sd_id}.{name}"] = value
            else:
                mapped[target] = value
    mapped.setdefault("action", DEFAULT_ACTION)
    if message.hostname is not None:
        mapped.setdefault("source.host", message.hostname)
    for target, value in mapped.items():
        parent, _, leaf = target.rpartition(".")
        (event.setdefault(parent, {}) if parent else event)[leaf] = value
    actor = event.setdefault("actor", {})
    if "id" not in actor:  # the schema requires one: the service acted
        actor["id"] = event["service"]
        actor.setdefault("type", "service")
    event["time"] = format_time(message.time or received)
    if message.text:
        metadata["message"] = message.text
    metadata["syslog.facility"] = FACILITIES[message.facility]
    metadata["syslog.severity"] = SEVERITIES[message.severity]
    metadata["syslog.sender"] = sender
    if message.procid is not None:
        metadata["syslog.procid"] = message.procid
    event["metadata"] = metadata
    return event


# -- listening ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listen:
    """One ``--syslog`` address."""

    transport: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Listen:
        parts = urlsplit(url)
        if parts.scheme not in ("udp", "tcp") or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(f"--syslog {url!r}: give udp://HOST:PORT or tcp://HOST:PORT")
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            raise ConfigError(f"--syslog {url!r}: name the port, such as udp://127.0.0.1:5514")
        return cls(parts.scheme, parts.hostname, port)


def parse_allow(
    networks: Sequence[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The ``--syslog-allow`` networks (loopback only when none are given)."""
    parsed = []
    for text in networks or DEFAULT_ALLOW:
        try:
            parsed.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(f"--syslog-allow {text!r} is not a network such as 10.0.0.0/8 "
                              "or 2001:db8::/32") from None  # fmt: skip
    return tuple(parsed)


Submit = Callable[[list[object]], Future[list[Receipt]]]
Count = Callable[[str], object]


class SyslogReceiver:
    """The UDP and TCP listeners of ``--syslog``, each on its own thread.

    ``submit`` is the server's writer queue; ``count(outcome)`` counts each message by
    what became of it: ``stored``, ``duplicate``, ``malformed``, ``refused`` (a service
    syslog may not write, or an event the schema refuses), ``dropped`` (the write queue
    was full) and ``denied`` (a sender outside the allow-list).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        allow: Sequence[str] = (),
        mapping: Mapping | None = None,
        submit: Submit,
        count: Count = lambda outcome: None,
    ) -> None:
        self.listens = [Listen.parse(url) for url in urls]
        self.allow = parse_allow(allow)
        self.mapping = mapping or Mapping()
        self._submit = submit
        self._count = count
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._lock = threading.Lock()
        self.addresses: list[tuple[str, str, int]] = []
        """``(transport, host, port)`` bound, the port chosen when 0 was asked."""

    def start(self) -> None:
        """Bind every address (ConfigError when one cannot be bound), then listen."""
        try:
            for listen in self.listens:
                self._sockets.append(self._bind(listen))
        except OSError as exc:
            self.stop()
            raise ConfigError(f"cannot listen for syslog: {exc}") from None
        for sock, listen in zip(self._sockets, self.listens, strict=True):
            loop = self._udp if listen.transport == "udp" else self._tcp
            thread = threading.Thread(target=loop, args=(sock,), daemon=True,
                                      name=f"glasslog-syslog-{listen.transport}")  # fmt: skip
            thread.start()
            self._threads.append(thread)
            host, port = sock.getsockname()[:2]
            self.addresses.append((listen.transport, host, port))
            log.info("listening for syslog on %s://%s:%d", listen.transport, host, port)

    def stop(self) -> None:
        """Stop listening. What the kernel had received by then (datagrams, bytes of open
        connections, connections not yet accepted) is still read and handed to the
        writer, which writes it before the server stops."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            readers = list(self._connections.values())
        for thread in readers:
            thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()
        self._threads.clear()
        self._sockets.clear()

    @staticmethod
    def _bind(listen: Listen) -> socket.socket:
        kind = socket.SOCK_DGRAM if listen.transport == "udp" else socket.SOCK_STREAM
        family, _, _, _, address = socket.getaddrinfo(listen.host, listen.port, type=kind)[0]
        sock = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            if kind == socket.SOCK_STREAM:
                sock.listen(64)
        except OSError:
            sock.close()
            raise
        sock.settimeout(0.2)  # the loops look at _stopping this often
        return sock

    def allowed(self, host: str) -> bool:
        """Whether a sender's address is in the allow-list."""
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)

    def _udp(self, sock: socket.socket) -> None:
        while True:
            if self._stopping.is_set():
                sock.setblocking(False)  # read what has arrived, then end
            try:
                data, sender = sock.recvfrom(MAX_MESSAGE + 1)
            except BlockingIOError:
                return
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("the syslog UDP listener could not receive; going on")
                continue
            host = str(sender[0])
            if not self.allowed(host):
                self._count("denied")
                continue
            if len(data) > MAX_MESSAGE:
                self._malformed(host, len(data), "longer than the limit")
                continue
            self.handle(data, host)

    def _tcp(self, sock: socket.socket) -> None:
        while True:
            if self._stopping.is_set():
                sock.setblocking(False)  # take the connections already made, then end
            try:
                conn, sender = sock.accept()
            except BlockingIOError:
                return
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("the syslog TCP listener could not accept; going on")
                continue
            host = str(sender[0])
            with self._lock:
                full = len(self._connections) >= MAX_CONNECTIONS
                if not full and self.allowed(host):
                    reader = threading.Thread(
                        target=self._connection, args=(conn, host), daemon=True,
                        name="glasslog-syslog-tcp-conn",
                    )  # fmt: skip
                    self._connections[conn] = reader
                    reader.start()
                    continue
            self._count("denied" if not full else "dropped")
            conn.close()  # unanswered: not a byte is read or sent

    def _connection(self, conn: socket.socket, host: str) -> None:
        framer = Framer()
        # A timeout rather than select(): select() cannot watch a descriptor numbered
        # 1024 or more, which a busy server (many live tails) reaches.
        conn.settimeout(0.2)  # how often a quiet connection looks at _stopping
        try:
            while True:
                if self._stopping.is_set():
                    conn.setblocking(False)  # read what has arrived, then end
                try:
                    data = conn.recv(65536)
                except BlockingIOError:
                    data = b""
                except TimeoutError:
                    continue
                frames, dropped = framer.feed(data) if data else framer.close()
                for frame in frames:
                    self.handle(frame, host)
                for _ in range(dropped):
                    self._malformed(host, 0, "a TCP frame past the limit or with a bad count")
                if not data:
                    return
        except OSError:
            return  # the sender reset the connection
        finally:
            with self._lock:
                self._connections.pop(conn, None)
            conn.close()

    def handle(self, data: bytes, sender: str) -> None:
        """One message from ``sender``: parse, map, screen, hand to the writer. Never raises."""
        try:
            received = datetime.now(UTC)
            event = to_event(parse(data, received=received), self.mapping, sender=sender,
                             received=received)  # fmt: skip
        except Malformed as exc:
            self._malformed(sender, len(data), str(exc))
            return
        except Exception as exc:  # a bug must not stop the listener, nor show the message
            log.error("syslog: mapping a message from %s failed (a bug); it was dropped: %s",
                      sender, type(exc).__name__)  # fmt: skip
            self._count("malformed")
            return
        refused, _ = screen([event], [self.mapping.services])
        if refused:
            self._count("refused")
            log.warning("syslog: a message from %s names a service syslog may not write "
                        "(services in the syslog mapping); dropped", sender)  # fmt: skip
            return
        try:
            future = self._submit([event])
        except (QueueFull, WriterStopped):
            self._count("dropped")
            return
        future.add_done_callback(lambda done: self._written(done, sender))

    def _written(self, done: Future[list[Receipt]], sender: str) -> None:
        if done.exception() is not None:
            self._count("dropped")
            return
        [receipt] = done.result()
        if receipt.ok:
            self._count("duplicate" if receipt.duplicate else "stored")
            return
        self._count("refused")
        where = sorted({p.partition(":")[0] for p in receipt.problems})
        log.warning("syslog: a message from %s is not a valid event (%s); dropped", sender,
                    ", ".join(where))  # fmt: skip

    def _malformed(self, sender: str, size: int, reason: str) -> None:
        self._count("malformed")
        log.warning("syslog: a malformed message from %s (%d bytes): %s", sender, size, reason)
