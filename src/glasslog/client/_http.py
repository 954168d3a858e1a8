"""What the ASGI and the WSGI audit middleware share: everything but the protocol.

Both middlewares read the same few headers and make the same decisions, so the
decisions live here once:

- the request id: ``X-Request-ID`` when it is a safe token, else the trace id of a W3C
  ``traceparent`` header (W3C Trace Context, §3.2), else a new UUIDv7;
- the client address: the peer, or — only when the peer is a trusted proxy — the
  right-most ``X-Forwarded-For`` address that is not itself a trusted proxy;
- which requests become ``http.request`` events (methods and routes);
- the event's outcome from the HTTP status.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any, Final, Protocol

from glasslog.client import get_client
from glasslog.event import uuid7

__all__ = [
    "ANONYMOUS",
    "DEFAULT_METHODS",
    "MAX_USER_AGENT",
    "AuditLogger",
    "Policy",
    "RequestIds",
    "client_address",
    "outcome",
    "request_ids",
]

logger = logging.getLogger("glasslog.client")

DEFAULT_METHODS: Final = ("POST", "PUT", "PATCH", "DELETE")
"""The methods that change something, and so are worth an audit event by default."""

ANONYMOUS: Final = {"id": "anonymous", "type": "user"}
"""The actor of an ``http.request`` event when the actor function found nobody: the
schema requires an actor, and an unauthenticated write is exactly what an auditor
wants to see, so the event is recorded rather than dropped."""

MAX_USER_AGENT: Final = 512
"""User agents are cut to this many characters: they are free text chosen by the
client, and a megabyte of it must not make the event too big to ingest."""

# A request id is echoed in a response header and stored in the log, so it must be a
# token a header can carry unchanged: visible ASCII, no spaces (so no CR/LF header
# injection), and no longer than the schema's name-like fields.
_REQUEST_ID: Final = re.compile(r"[\x21-\x7e]{1,128}")

# W3C Trace Context §3.2.2: version "-" trace-id "-" parent-id "-" trace-flags. Later
# versions may append fields after a "-"; version ff is invalid.
_TRACEPARENT: Final = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?"
)


class AuditLogger(Protocol):
    """What the integrations need of a client: ``log``. :class:`glasslog.client.Client`,
    ``AsyncClient`` (whose ``log`` is awaited, by the ASGI middleware only) and
    :class:`glasslog.testing.InMemoryClient` all have it."""

    def log(
        self,
        action: str,
        *,
        actor: Any = ...,
        target: Any = ...,
        outcome: str = ...,
        reason: str | None = ...,
        category: str | None = ...,
        source: Any = ...,
        time: Any = ...,
        metadata: Any = ...,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class RequestIds:
    """The ids a request carries into every event logged while it runs."""

    request_id: str
    trace_id: str | None = None
    span_id: str | None = None


def _traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent id) of a valid ``traceparent`` header, else None."""
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    # §3.2.2.1: ff is forbidden; version 00 has exactly four fields. §3.2.2.3/4: an
    # all-zero trace id or parent id is invalid.
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, parent_id


def request_ids(request_id: str | None, traceparent: str | None) -> RequestIds:
    """The request's ids from its ``X-Request-ID`` (or configured) and ``traceparent``
    headers.

    An ``X-Request-ID`` that is not a safe token (control characters, spaces, more
    than 128 characters) is replaced by a new id rather than stored or echoed: it is
    client input, and echoing it raw would let a client inject response headers.
    Without a usable request id, the trace id stands in for it, so that
    ``glasslog trace`` finds the request under the id the tracing system shows.
    """
    parent = _traceparent(traceparent)
    trace_id, span_id = parent if parent else (None, None)
    if request_id is not None:
        request_id = request_id.strip()
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = None
    return RequestIds(request_id or trace_id or uuid7(), trace_id, span_id)


_Network = IPv4Network | IPv6Network


def _networks(trusted: Sequence[str]) -> tuple[_Network, ...]:
    if isinstance(trusted, str):
        raise TypeError(
            f"trusted_proxies must be a list of CIDRs, got the string {trusted!r}; "
            f"write [{trusted!r}]"
        )
    networks = []
    for cidr in trusted:
        try:
            networks.append(ip_network(cidr, strict=False))
        except ValueError:
            raise ValueError(
                f"trusted_proxies: {cidr!r} is not an IP address or CIDR; "
                "write it like '10.0.0.0/8' or '2001:db8::/32'"
            ) from None
    return tuple(networks)


def _address(text: str) -> str | None:
    """The address in ``text``, normalized (IPv4-mapped IPv6 as IPv4), or None."""
    try:
        address = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: tuple[_Network, ...]
) -> str | None:
    """The client's address: ``peer``, unless ``peer`` is a trusted proxy.

    Every proxy appends the address it received the request from to
    ``X-Forwarded-For``, so reading from the right, each entry is vouched for by the
    trusted hop to its right. The first entry that is not a trusted proxy is the
    client; anything left of it was written by the client itself and may be forged.
    An untrusted peer's ``X-Forwarded-For`` is never read at all: anyone can send one.
    An entry that is not an address stops the walk at the last address vouched for.
    Without a usable peer address (a unix socket, a test client) there is none.
    """
    address = _address(peer) if peer else None
    if address is None or not _in(address, trusted):
        return address
    entries = [entry for value in forwarded_for for entry in value.split(",")]
    for entry in reversed(entries):
        hop = _address(entry)
        if hop is None:
            return address
        address = hop
        if not _in(address, trusted):
            return address
    return address  # every hop is a trusted proxy: the left-most one is all we know


def _in(address: str, networks: tuple[_Network, ...]) -> bool:
    parsed = ip_address(address)
    return any(parsed in network for network in networks)


def outcome(status: int) -> str:
    """The schema's outcome for an HTTP status: 401 and 403 are refusals."""
    if status in (401, 403):
        return "denied"
    return "success" if status < 400 else "failure"


Actor = str | dict[str, Any] | None


class Policy:
    """The middleware options both protocols share, validated once at start-up.

    Routes are path prefixes, matched on whole segments (``/admin`` matches
    ``/admin`` and ``/admin/users``, not ``/administrator``), or, when they contain
    ``*``, ``?`` or ``[``, shell-style patterns over the whole path (``/orders/*/refund``;
    ``*`` also crosses ``/``).
    """

    def __init__(
        self,
        *,
        client: AuditLogger | None,
        actor: Callable[[Any], Actor] | None,
        trusted_proxies: Sequence[str],
        methods: Collection[str],
        routes: Collection[str] | None,
        header: str,
    ) -> None:
        if actor is not None and not callable(actor):
            raise TypeError(f"actor must be a function of the request, got {actor!r}")
        if isinstance(methods, str) or not methods:
            raise ValueError(
                f"methods must be a non-empty list of HTTP methods, got {methods!r}; "
                "for example methods=['POST', 'DELETE']"
            )
        if routes is not None:
            if isinstance(routes, str):
                raise TypeError(f"routes must be a list of paths, got the string {routes!r}")
            for route in routes:
                if not route.startswith("/"):
                    raise ValueError(f"route {route!r} must start with '/', e.g. '/admin'")
        if not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise ValueError(f"header {header!r} is not an HTTP header name, e.g. 'X-Request-ID'")
        self.client = client
        self.actor = actor
        self.trusted = _networks(trusted_proxies)
        self.methods = frozenset(method.upper() for method in methods)
        self.prefixes = tuple(r.rstrip("/") for r in routes or () if not _is_pattern(r))
        self.patterns = tuple(r for r in routes or () if _is_pattern(r))
        self.all_routes = routes is None
        self.header = header

    def chosen(self, method: str, path: str) -> bool:
        """Whether this request becomes an ``http.request`` event."""
        if method.upper() not in self.methods:
            return False
        if self.all_routes:
            return True
        if any(path == p or path.startswith(p + "/") for p in self.prefixes):
            return True
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.patterns)

    def source(self, address: str | None, user_agent: str | None) -> dict[str, str]:
        source = {}
        if address is not None:
            source["ip"] = address
        if user_agent:
            source["user_agent"] = user_agent[:MAX_USER_AGENT]
        return source

    def target_client(self) -> AuditLogger:
        if self.client is not None:
            return self.client
        return get_client()

    def event(
        self,
        *,
        method: str,
        path: str,
        status: int,
        duration: float,
        actor: Actor,
        error: BaseException | None,
    ) -> dict[str, Any]:
        """The arguments of ``Client.log`` for one ``http.request`` event.

        Only the method, path, status and duration go into metadata: query strings and
        headers carry tokens and passwords, and the user agent is in ``source``.
        """
        metadata: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration * 1000, 3),
        }
        if error is not None:
            # The type only: an exception's message may quote the secret it choked on.
            metadata["exception"] = f"{type(error).__module__}.{type(error).__qualname__}"
        return {
            "actor": actor if actor is not None else dict(ANONYMOUS),
            "target": {"type": "route", "id": path},
            "outcome": "failure" if error is not None else outcome(status),
            "metadata": metadata,
        }

    def record(self, fields: dict[str, Any]) -> Any:
        """Log the ``http.request`` event; returns what ``log`` returned (an
        awaitable for an async client).

        The response has already gone out, so a failure to record cannot change it:
        it is reported to the ``glasslog.client`` logger at ERROR, with the
        traceback, instead of being raised into the web server.
        """
        try:
            return self.target_client().log("http.request", **fields)
        except Exception:
            logger.exception(
                "glasslog: could not record the http.request event for %s %s",
                fields["metadata"]["method"],
                fields["metadata"]["path"],
            )
            return None

    async def record_async(self, fields: dict[str, Any]) -> None:
        """:meth:`record` for the ASGI middleware, awaiting an async client."""
        result = self.record(fields)
        if inspect.isawaitable(result):
            try:
                await result
            except Exception:
                logger.exception(
                    "glasslog: could not record the http.request event for %s %s",
                    fields["metadata"]["method"],
                    fields["metadata"]["path"],
                )


def _is_pattern(route: str) -> bool:
    return any(c in route for c in "*?[")
