"""The body of ``POST /v1/events``: read within limits, inflated within limits, parsed.

A client decides how many bytes it sends and, with gzip, how many they inflate to.
Neither may cost the server more than :data:`MAX_BODY` of memory: the raw body is
read chunk by chunk and refused past the limit, and inflation stops at the limit
instead of inflating a gzip bomb first and measuring it afterwards.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Final

from glasslog.errors import EventError
from glasslog.event import DEFAULT_LIMITS
from glasslog.ingest.lines import parse_line
from glasslog.server.refusal import Problem

__all__ = ["MAX_BODY", "MAX_EVENTS", "events_of", "read_body"]

MAX_BODY: Final = 5 * 1024 * 1024
"""Bytes a request's events may take, after decompression."""
MAX_EVENTS: Final = 1_000
"""Events one request may carry."""

_GZIP_MAGIC: Final = b"\x1f\x8b"


def _too_large() -> Problem:
    return Problem(
        413,
        f"a request carries at most {MAX_BODY // (1024 * 1024)} MiB of JSON (after "
        f"decompression) and {MAX_EVENTS:,} events; split the batch",
    )


async def read_body(chunks: AsyncIterator[bytes], *, encoding: str | None) -> bytes:
    """The request's JSON bytes, inflated when gzip-encoded; 413 past :data:`MAX_BODY`."""
    encoding = (encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise Problem(415, f"Content-Encoding {encoding!r} is not supported; send gzip or none")
    raw = bytearray()
    inflater: zlib._Decompress | None = None
    out = bytearray()
    async for chunk in chunks:
        if not chunk:
            continue
        if inflater is None and not out and not raw and encoding == "identity":
            # Sniff: some clients gzip without saying so in Content-Encoding.
            encoding = "gzip" if chunk[:2] == _GZIP_MAGIC else "identity"
        if encoding == "identity":
            raw += chunk
            if len(raw) > MAX_BODY:
                raise _too_large()
            continue
        if inflater is None:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if inflater.eof:
            raise Problem(400, "there is data after the end of the gzip stream")
        try:
            out += inflater.decompress(chunk, MAX_BODY + 1 - len(out))
            # Output past the limit stays in unconsumed_tail: never inflated.
            if len(out) > MAX_BODY or inflater.unconsumed_tail:
                raise _too_large()
            if inflater.unused_data:
                raise Problem(400, "there is data after the end of the gzip stream")
        except zlib.error:
            raise Problem(400, "the body is not valid gzip") from None
    if inflater is None:
        return bytes(raw)
    if not inflater.eof:
        raise Problem(400, "the gzip body ends early; send the whole stream")
    return bytes(out)


def events_of(body: bytes) -> list[object]:
    """The events of a body: one event object, or ``{"events": [...]}``."""
    if not body.strip():
        raise Problem(400, 'the body is empty; send one event object or {"events": [...]}')
    try:
        # The ingest path's parser: duplicate keys and deep nesting are refused.
        value = parse_line(body, limits=DEFAULT_LIMITS)
    except EventError as exc:
        raise Problem(400, "the body is not acceptable JSON: " + "; ".join(
            str(p) for p in exc.problems[:5]
        )) from None  # fmt: skip
    if isinstance(value, dict) and set(value) == {"events"}:
        events = value["events"]
        if not isinstance(events, list):
            raise Problem(400, '"events" must be an array of event objects')
        if len(events) > MAX_EVENTS:
            raise _too_large()
        return list(events)
    if isinstance(value, dict):
        return [value]
    raise Problem(400, 'send one event object or {"events": [...]}, not a JSON ' + (
        "array" if isinstance(value, list) else type(value).__name__
    ))  # fmt: skip
