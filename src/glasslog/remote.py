"""The CLI's reads and writes against a server (``--url URL --key KEY``).

:class:`Remote` has the read methods of :class:`~glasslog.access.enforce.Reader`, with
the same arguments and results, so every read command prints the same output from a
local store and from a server. The server scopes, masks and audits; this side only
speaks HTTP.

Errors come back as problem details and become the exceptions the CLI already
words: 400 a :class:`~glasslog.errors.QueryError` (its text carries the caret), 401
:class:`~glasslog.access.keys.AuthError`, 403
:class:`~glasslog.access.enforce.AccessDenied`, 404 (and 410, a pruned event)
:class:`~glasslog.errors.NotFoundError`. 429 and 503 are retried after their
``Retry-After``, a few times, before they become an error. The key goes in the
``Authorization`` header only, never in a URL, so it does not end up in a proxy's log.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import IO, Any, Final, cast
from urllib.parse import quote

import httpx

from glasslog import __version__
from glasslog.access.enforce import AccessDenied
from glasslog.access.keys import AuthError
from glasslog.errors import EventError, GlasslogError, NotFoundError, QueryError
from glasslog.event import uuid7
from glasslog.ingest.lines import parse_line, scrub_messages
from glasslog.ingest.scrub import Scrubber
from glasslog.ledger.vkeys import VkeyHistory
from glasslog.log import MISSING, Count, Histogram, Page, Timeline

__all__ = ["Remote", "RemoteError", "send_lines"]

RETRIES: Final = 5
"""Attempts at a request answered 429 or 503 (or not answered) before giving up."""
MAX_WAIT: Final = 30.0
"""The longest pause between attempts, whatever Retry-After says."""


class RemoteError(GlasslogError):
    """The server could not be reached, or answered something other than the API."""


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds}s"


class Remote:
    """A principal's reads of a glasslog server, shaped like :class:`Reader`'s."""

    def __init__(self, url: str, key: str | None, *, timeout: float = 30.0) -> None:
        """``key`` None: only the public routes (checkpoint, vkey, consistency) answer."""
        if not url.startswith(("http://", "https://")):
            raise RemoteError(f"--url must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        headers = {"User-Agent": f"glasslog/{__version__}"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One API call, retried on 429, 503 and lost connections; errors mapped."""
        for attempt in range(RETRIES):
            try:
                answer = self._client.request(method, path, **options)
            except httpx.TransportError as exc:
                if attempt == RETRIES - 1:
                    raise RemoteError(f"cannot reach {self.url}: {exc}") from None
                time.sleep(min(MAX_WAIT, 0.5 * 2**attempt))
                continue
            if answer.status_code in (429, 503) and attempt < RETRIES - 1:
                time.sleep(_retry_after(answer, attempt))
                continue
            if answer.status_code >= 400:
                raise _error(answer)
            return answer
        raise RemoteError(f"{self.url} kept refusing: try again later")  # pragma: no cover

    def _json(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query).json()

    # -- the reads, as Reader has them ------------------------------------------------

    def search(
        self,
        query: str,
        *,
        limit: int = 50,
        sort: str = "-time",
        cursor: str | None = None,
        now: datetime | None = None,
    ) -> Page:
        del now  # the server's clock anchors relative times
        body = self._json("/v1/events", q=query, limit=limit, cursor=cursor,
                          sort=None if sort == "-time" else sort)  # fmt: skip
        return Page(body["events"], body["next_cursor"], mismatched=tuple(body["tampered"]))

    def get(self, key: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json(f"/v1/events/{_segment(key)}")
        return found

    def evidence(self, key: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json(f"/v1/events/{_segment(key)}", proof="true")
        return found

    def inclusion(self, seq: int, *, size: int | None = None) -> dict[str, Any]:
        found: dict[str, Any] = self._json(f"/v1/proof/inclusion/{seq}", size=size)
        return found

    def consistency(self, size1: int, size2: int) -> dict[str, Any]:
        found: dict[str, Any] = self._json("/v1/proof/consistency", **{"from": size1, "to": size2})
        return found

    def trace(self, ident: str, *, limit: int = 10_000) -> Timeline:
        del limit
        body = self._json(f"/v1/trace/{_segment(ident)}")
        return Timeline(body["events"], tuple(body["tampered"]))

    def count(self, query: str, *, now: datetime | None = None) -> Count:
        del now
        body = self._json("/v1/count", q=query)
        return Count(int(body["count"]), bool(body["exact"]))

    def count_by(
        self, query: str, field_name: str, *, top: int = 10, now: datetime | None = None
    ) -> list[tuple[Any, int]]:
        del now
        body = self._json("/v1/count", q=query, by=field_name, top=top)
        return [(MISSING if g["missing"] else g["value"], int(g["count"])) for g in body["groups"]]

    def histogram(
        self, query: str, *, now: datetime | None = None, bucket: timedelta | None = None
    ) -> Histogram:
        del now
        body = self._json("/v1/histogram", q=query,
                          bucket=None if bucket is None else _duration(bucket))  # fmt: skip
        return Histogram(
            float(body["bucket_seconds"]), [(b["start"], int(b["count"])) for b in body["buckets"]]
        )

    def checkpoint(self) -> str:
        return self.request("GET", "/checkpoint").text

    def vkey(self) -> str:
        return self.request("GET", "/v1/vkey").text.strip()

    def vkeys(self) -> VkeyHistory:
        """The log's key history (``GET /v1/vkeys``), its statements checked: verify a
        checkpoint with it, after ``trusting`` a key obtained out of band."""
        return VkeyHistory.from_json(self._json("/v1/vkeys"))

    def post_events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """POST one batch; the server's {"accepted", "duplicates", "rejected"}."""
        body = json.dumps({"events": events}, ensure_ascii=False).encode()
        answer = self.request("POST", "/v1/events", content=body,
                              headers={"Content-Type": "application/json"})  # fmt: skip
        result: dict[str, Any] = answer.json()
        return result

    def tail(self, query: str, *, last: int | None = None) -> Iterator[dict[str, Any]]:
        """The live tail's events, forever; it reconnects after a drop, resuming after
        the last seq it saw (``Last-Event-ID``), so nothing is missed or repeated."""
        attempt = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                with self._client.stream("GET", "/v1/tail", params={"q": query},
                                         headers=headers, timeout=None) as answer:  # fmt: skip
                    if answer.status_code >= 400:
                        answer.read()
                        if answer.status_code not in (429, 503):
                            raise _error(answer)
                        time.sleep(_retry_after(answer, attempt))
                        attempt += 1
                        continue
                    attempt = 0
                    for frame in _frames(answer.iter_lines()):
                        if "id" in frame:
                            last = int(frame["id"])
                        if frame.get("event") in ("dropped", "shutdown"):
                            break  # reconnect and resume after `last`
                        if "data" in frame and "event" not in frame:
                            yield {"seq": int(frame["id"]), **json.loads(frame["data"])}
            except httpx.TransportError:
                time.sleep(min(MAX_WAIT, 0.5 * 2**attempt))
                attempt += 1
            if attempt >= RETRIES * 4:
                raise RemoteError(f"lost the tail of {self.url} and could not reconnect")


MAX_BATCH: Final = 1_000
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
"""Below the server's 5 MiB, so that a batch is never refused for its size."""


def send_lines(remote: Remote, stream: IO[bytes]) -> dict[str, Any]:
    """``glasslog ingest --url``: JSON lines to the server, in batches.

    A line that is not an acceptable JSON value is rejected here, as local ingest
    rejects it. Events without an id get a UUIDv7 here, so that a batch retried after
    a lost answer is stored once. Returns the summary local ingest prints:
    ``{"accepted", "duplicates", "rejected": [{"line", "errors"}]}``.
    """
    scrubber = Scrubber(fingerprint_key=None)
    summary: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": []}
    batch: list[dict[str, Any]] = []
    lines: list[int] = []
    size = 0

    def send() -> None:
        nonlocal size
        if not batch:
            return
        result = remote.post_events(batch)
        summary["accepted"] += int(result["accepted"])
        summary["duplicates"] += int(result["duplicates"])
        for refused in result["rejected"]:
            summary["rejected"].append({"line": lines[int(refused["index"])],
                                        "errors": list(refused["errors"])})  # fmt: skip
        batch.clear()
        lines.clear()
        size = 0

    source = _maybe_gzip(stream)
    for number, raw in enumerate(source, 1):
        if not raw.strip():
            continue
        try:
            value = parse_line(raw)
        except EventError as exc:
            errors = scrub_messages(scrubber, [str(p) for p in exc.problems])
            summary["rejected"].append({"line": number, "errors": errors})
            continue
        if isinstance(value, dict) and "id" not in value:
            value = {"id": uuid7(), **value}
        if not isinstance(value, dict):
            summary["rejected"].append({"line": number, "errors": ["$: an event is a JSON object"]})
            continue
        encoded = len(raw) + 64
        if batch and (len(batch) >= MAX_BATCH or size + encoded > MAX_BATCH_BYTES):
            send()
        batch.append(value)
        lines.append(number)
        size += encoded
    send()
    summary["rejected"].sort(key=lambda r: r["line"])
    return summary


def _maybe_gzip(stream: IO[bytes]) -> IO[bytes]:
    """``stream``, inflated when it is gzip (as local ingest reads it)."""
    peek = getattr(stream, "peek", None)
    head = peek(2)[:2] if callable(peek) else b""
    if head == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=stream))
    return stream


def _segment(text: str) -> str:
    """A path segment: a seq, an id or a request id, percent-encoded."""
    return quote(text, safe="")


def _frames(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    frame: dict[str, str] = {}
    for line in lines:
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            frame[name] = value.removeprefix(" ")


def _retry_after(answer: httpx.Response, attempt: int) -> float:
    try:
        wait = float(answer.headers.get("retry-after", ""))
    except ValueError:
        wait = 0.5 * 2**attempt
    return min(MAX_WAIT, max(0.1, wait))


def _query_error(detail: str) -> QueryError:
    """A 400's detail as a QueryError; the server's caret lines become its place again,
    so the CLI draws the query and the caret as it does for a local query."""
    lines = detail.split("\n")
    if len(lines) == 3 and lines[1].startswith("  ") and lines[2].strip() == "^":
        return QueryError(lines[0], query=lines[1][2:], column=len(lines[2]) - 3)
    return QueryError(detail)


def _error(answer: httpx.Response) -> GlasslogError:
    """The exception for a problem-details answer."""
    try:
        detail = str(answer.json().get("detail") or answer.reason_phrase)
    except (ValueError, AttributeError):
        detail = answer.reason_phrase or f"HTTP {answer.status_code}"
    status = answer.status_code
    if status == 400:
        return _query_error(detail)
    if status == 401:
        return AuthError(f"the server refused the key: {detail}")
    if status == 403:
        return AccessDenied(detail)
    if status in (404, 410):  # 410: a pruned event, whose detail says when (docs/retention.md)
        return NotFoundError(detail)
    return RemoteError(f"the server answered {status}: {detail}")
