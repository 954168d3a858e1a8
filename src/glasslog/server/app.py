"""The HTTP API (``glasslog serve``): routes, who may call them, and what they answer.

Thin, as the CLI is: each route authenticates the caller, hands the request to the
library's one enforcement point (:class:`~glasslog.access.enforce.Reader`) or to the
writer, and returns JSON. Only six routes answer without a principal, and they show
health, tree hashes and the public keys only: ``/healthz``, ``/readyz``,
``/checkpoint``, ``/v1/vkey``, ``/v1/vkeys`` (the key history,
:mod:`glasslog.server.vkeys`) and ``/v1/proof/consistency``, and the tlog-tiles hash
tiles ``/tile/<L>/<N>`` (:mod:`glasslog.server.tiles`). Monitors and witnesses need
those without an account.
The web UI's files (``/``, ``/ui/…``) and ``/v1/auth/config``, which say how to sign
in to it, are public too and hold no data (:mod:`glasslog.server.ui`).

``POST /v1/logs`` (OTLP/HTTP, :mod:`glasslog.server.otlp`) writes through the same
path as ``POST /v1/events``; as the OTLP specification asks, its errors are a
``google.rpc.Status`` in the request's encoding rather than problem details.

Responses are built with :func:`json.dumps`, not through response models: a page of
events is free-form JSON and is already what the client should get. The OpenAPI
document still describes every response (``responses=``), and the schemathesis tests
check that the answers conform to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Final, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from glasslog import __version__
from glasslog.access.enforce import Principal
from glasslog.access.keys import AuthError
from glasslog.access.policy import parse_duration
from glasslog.ingest.lines import scrub_messages
from glasslog.ingest.pipeline import Prepared
from glasslog.log import MAX_PAGE, MISSING
from glasslog.query.language import MAX_SEQ
from glasslog.server import erasure, exports, otlp, problems, retention, tiles, ui, vkeys
from glasslog.server.body import events_of, read_body
from glasslog.server.metrics import CONTENT_TYPE
from glasslog.server.prepare import screen
from glasslog.server.problems import UNAUTHORIZED, Problem
from glasslog.server.service import Service
from glasslog.server.tail import stream as tail_stream
from glasslog.server.writer import QueueFull, WriterStopped

__all__ = ["create_app"]

log = logging.getLogger("glasslog.server")

JSON: Final = "application/json"


# -- the documented shapes (OpenAPI); answers are built as plain JSON ----------------


class ProblemBody(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class Rejected(BaseModel):
    index: int = Field(description="Position of the event in the request, from 0.")
    errors: list[str]


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejected]


class EventPage(BaseModel):
    events: list[dict[str, Any]] = Field(description="Newest first, each with its seq.")
    next_cursor: str | None
    tampered: list[int] = Field(
        description="Seqs the store returned that failed the recheck against their signed "
        "bodies, and were not shown: run `glasslog verify`."
    )


class CountResult(BaseModel):
    count: int
    exact: bool


class Group(BaseModel):
    value: Any
    count: int
    missing: bool = Field(description="True (and value null) for events without the field.")


class GroupsResult(BaseModel):
    groups: list[Group]


class Bucket(BaseModel):
    start: str
    count: int


class HistogramResult(BaseModel):
    bucket_seconds: float
    buckets: list[Bucket]


class TraceResult(BaseModel):
    events: list[dict[str, Any]] = Field(description="Oldest first, each with its seq.")
    tampered: list[int]


class InclusionProof(BaseModel):
    seq: int
    tree_size: int
    leaf_hash: str
    proof: list[str]
    root: str


class ConsistencyProof(BaseModel):
    size1: int
    size2: int
    root1: str
    root2: str
    proof: list[str]


class Me(BaseModel):
    id: str
    name: str
    type: str
    roles: list[str]
    permissions: list[str]
    grants: list[str]


class Health(BaseModel):
    status: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: problem details, for each of ``codes``."""
    return {
        code: {
            "model": ProblemBody,
            "content": {problems.PROBLEM: {}},
            "description": problems.TITLES.get(code, "Error"),
        }
        for code in codes
    }


READ_ERRORS: Final = _errors(400, 401, 403, 422, 429, 503)
PUBLIC_ERRORS: Final = _errors(400, 404, 422, 503)


TEXT: Final = {"content": {"text/plain": {"schema": {"type": "string"}}}}


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type=JSON)


def _text(body: str) -> Response:
    return Response(body, media_type="text/plain; charset=utf-8")


# -- who calls ---------------------------------------------------------------------


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer``; 401 without one, 429 past its rate."""
    service = _service(request)
    client = _client(request)
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Problem(401, UNAUTHORIZED)
    wait = service.failures.peek(client)
    if wait:
        raise Problem(
            429, "too many failed sign-ins from this address; wait and try again",
            headers={"Retry-After": service.failures.retry_after(wait)},
        )  # fmt: skip
    try:
        who = service.identify(credential.strip())
    except AuthError:
        service.failures.take(client)
        raise
    wait = service.limiter.take(who.id)
    if wait:
        raise Problem(
            429, "this principal is over its request rate; slow down",
            headers={"Retry-After": service.limiter.retry_after(wait)},
        )  # fmt: skip
    return who


Caller = Annotated[Principal, Depends(principal)]


@contextmanager
def _timed(service: Service, operation: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        with service.writer.reading():
            yield
    finally:
        service.metrics.query_seconds.labels(operation).observe(time.perf_counter() - started)


# -- ingest, shared by POST /v1/events and POST /v1/logs -------------------------------


def _ingest_services(caller: Principal) -> list[tuple[str, ...]]:
    """The service globs of the caller's roles that may ingest; 403 when none may."""
    writers = [r for r in caller.roles if r.may("ingest")]
    if not writers:
        raise Problem(403, f"{caller.name} may not write events: no role of it has ingest")
    return [r.services for r in writers]


async def _ingest(
    service: Service,
    body: bytes,
    services: list[tuple[str, ...]],
    parse: Callable[[bytes], list[object]],
) -> tuple[int, int, list[dict[str, Any]]]:
    """Parse ``body`` into events (``parse``), screen them against the writer's
    ``services``, prepare and store them; answers once they are durable with
    ``(accepted, duplicates, rejected)``, rejected as ``{"index", "errors"}``."""
    outcome = await service.prepare(body, services, parse)
    if outcome is None:  # no worker processes: parse here, prepare in the writer
        events = await asyncio.to_thread(parse, body)  # off the event loop
        outcome = ("ok", len(events), *screen(events, services))
    if outcome[0] == "problem":
        raise Problem(outcome[1], outcome[2])
    _, _, refused, ready = outcome
    rejected: list[dict[str, Any]] = [{"index": i, "errors": e} for i, e in refused]
    positions = [index for index, _ in ready]
    admitted: list[object] = [
        Prepared._make(item) if isinstance(item, tuple) else item for _, item in ready
    ]
    accepted = duplicates = 0
    if admitted:
        try:
            receipts = await asyncio.wrap_future(service.write(admitted))
        except (QueueFull, WriterStopped):
            raise
        except Exception:
            # The writer logged why. Nothing of this request is acknowledged: a retry
            # with the same ids stores each event once.
            raise Problem(
                503, "the events could not be stored now; retry them (ids make it safe)",
                headers={"Retry-After": "2"},
            ) from None  # fmt: skip
        for index, receipt in zip(positions, receipts, strict=True):
            if receipt.ok:
                duplicates += receipt.duplicate
                accepted += not receipt.duplicate
            else:
                rejected.append({"index": index, "errors": scrub_messages(
                    service.preparer.scrubber, list(receipt.problems)
                )})  # fmt: skip
    rejected.sort(key=lambda r: r["index"])
    return accepted, duplicates, rejected


# -- the application ---------------------------------------------------------------------


def create_app(service: Service, *, metrics_public: bool = False) -> FastAPI:
    """The API over ``service``; starting and stopping the app starts and stops it.

    ``metrics_public``: serve ``/metrics`` without a principal (for an app bound only
    to the separate ``--metrics-host`` address).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run on the framework's worker threads (40 by default), each with
        # its own store connection, page cache and allocator arena. On a small machine
        # more threads than this only queue for the same cores and hold more memory.
        anyio.to_thread.current_default_thread_limiter().total_tokens = service.config.read_threads
        service.start()
        await service.hub.start()
        try:
            yield
        finally:
            await service.hub.close()
            await asyncio.to_thread(service.stop)

    app = FastAPI(
        title="glasslog",
        version=__version__,
        summary="Audit logs you can prove: role-scoped reads over a signed Merkle log.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    problems.install(app)
    _routes(app, service, metrics_public=metrics_public)
    app.include_router(_otlp_routes(service))
    app.include_router(tiles.router(service, principal))
    app.include_router(erasure.router(service, principal))
    app.include_router(vkeys.router(service, principal))
    app.include_router(retention.router(service, principal))
    app.include_router(exports.router(service, principal))
    ui.install(app, service)
    return app


def _routes(app: FastAPI, service: Service, *, metrics_public: bool) -> None:
    # Reads run on worker threads (plain def): the store's calls block.

    @app.post(
        "/v1/events",
        summary="Append events",
        description="One event object, or {\"events\": [...]} with at most 1,000; JSON or "
        "gzip-encoded JSON of at most 5 MiB once inflated. Answers once the events are "
        "durable. Idempotent by event id.",
        responses={200: {"model": IngestResult}, **_errors(400, 401, 403, 413, 415, 422, 429,
                                                           503)},
        openapi_extra={"requestBody": {"required": True, "content": {
            JSON: {"schema": {"type": "object"}},
        }}},
    )  # fmt: skip
    async def post_events(request: Request, caller: Caller) -> Response:
        services = _ingest_services(caller)
        body = await read_body(request.stream(), encoding=request.headers.get("content-encoding"))
        accepted, duplicates, rejected = await _ingest(service, body, services, events_of)
        return _json({"accepted": accepted, "duplicates": duplicates, "rejected": rejected})

    @app.get(
        "/v1/events",
        summary="Search",
        responses={200: {"model": EventPage}, **READ_ERRORS},
    )
    def search(
        caller: Caller,
        q: str = "",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: str | None = None,
        sort: Annotated[
            Literal["-time", "time"], Query(description="-time: newest first; time: oldest first")
        ] = "-time",
    ) -> Response:
        with _timed(service, "search"):
            page = service.reader(caller).search(q, limit=limit, cursor=cursor, sort=sort)
        tampered = sorted({*page.outside, *page.mismatched})
        return _json({"events": page.events, "next_cursor": page.cursor, "tampered": tampered})

    @app.get(
        "/v1/events/{seq_or_id}",
        summary="One event, or its evidence",
        description="By seq or id. With proof=true, the evidence format of docs/access.md: "
        "the event as the caller's role shows it, salts, hidden commitments, an inclusion "
        "proof and the signed checkpoint.",
        responses={200: {"content": {JSON: {"schema": {"type": "object"}}}},
                   **_errors(400, 401, 403, 404, 422, 429, 503)},
    )  # fmt: skip
    def get_event(
        caller: Caller,
        seq_or_id: Annotated[str, Path(max_length=64)],
        proof: bool = False,
    ) -> Response:
        reader = service.reader(caller)
        with _timed(service, "proof" if proof else "get"):
            found = reader.evidence(seq_or_id) if proof else reader.get(seq_or_id)
        return _json(found)

    @app.get(
        "/v1/count",
        summary="Count, in all or per value of a field",
        responses={200: {"model": CountResult | GroupsResult}, **READ_ERRORS},
    )
    def count(
        caller: Caller,
        q: str = "",
        by: str | None = None,
        top: Annotated[int, Query(ge=1, le=10_000)] = 10,
    ) -> Response:
        reader = service.reader(caller)
        with _timed(service, "count" if by is None else "count_by"):
            if by is None:
                result = reader.count(q)
                return _json({"count": result.count, "exact": result.exact})
            groups = reader.count_by(q, by, top=top)
        return _json({"groups": [
            {"value": None if v is MISSING else v, "count": n, "missing": v is MISSING}
            for v, n in groups
        ]})  # fmt: skip

    @app.get(
        "/v1/histogram",
        summary="Matches per time bucket",
        description="bucket: a duration such as 30s, 5m, 1h or 1d (default: adapts to the "
        "window, at most 100 buckets).",
        responses={200: {"model": HistogramResult}, **READ_ERRORS},
    )
    def histogram(caller: Caller, q: str = "", bucket: str | None = None) -> Response:
        size = None
        if bucket is not None:
            try:
                size = parse_duration(bucket)
            except ValueError as exc:
                raise Problem(400, f"bucket: {exc}") from None
        with _timed(service, "histogram"):
            result = service.reader(caller).histogram(q, bucket=size)
        return _json({
            "bucket_seconds": result.bucket_seconds,
            "buckets": [{"start": s, "count": n} for s, n in result.buckets],
        })  # fmt: skip

    @app.get(
        "/v1/trace/{request_or_trace_id}",
        summary="A request or trace as a timeline, oldest first",
        responses={200: {"model": TraceResult}, **READ_ERRORS},
    )
    def trace(
        caller: Caller, request_or_trace_id: Annotated[str, Path(max_length=256)]
    ) -> Response:
        with _timed(service, "trace"):
            timeline = service.reader(caller).trace(request_or_trace_id)
        return _json({"events": timeline.events, "tampered": sorted(timeline.mismatched)})

    @app.get(
        "/v1/proof/inclusion/{seq}",
        summary="Inclusion proof of an event in the caller's scope",
        description="As `glasslog proof inclusion SEQ --key K --json`: without the leaf, "
        "which holds the event's content; GET /v1/events/{seq}?proof=true gives the "
        "evidence the caller's role may see.",
        responses={200: {"model": InclusionProof}, **_errors(400, 401, 403, 404, 422, 429,
                                                             503)},
    )  # fmt: skip
    def inclusion(
        caller: Caller,
        seq: Annotated[int, Path(ge=0, le=MAX_SEQ)],
        size: Annotated[int | None, Query(ge=1, le=MAX_SEQ + 1)] = None,
    ) -> Response:
        with _timed(service, "proof"):
            return _json(service.reader(caller).inclusion(seq, size=size))

    @app.get(
        "/v1/proof/consistency",
        summary="Consistency proof between two tree sizes (public)",
        description="Tree hashes only, no event's content: monitors and witnesses ask "
        "without an account.",
        responses={200: {"model": ConsistencyProof}, **PUBLIC_ERRORS},
    )
    def consistency(
        size1: Annotated[int, Query(alias="from", ge=1, le=MAX_SEQ + 1)],
        size2: Annotated[int, Query(alias="to", ge=1, le=MAX_SEQ + 1)],
    ) -> Response:
        with _timed(service, "proof"):
            return _json(service.log().consistency(size1, size2))

    @app.get(
        "/v1/tail",
        summary="Live tail: Server-Sent Events of new matching events, scoped and masked",
        description="Each event's SSE id is its seq; reconnect with Last-Event-ID to resume "
        "with no gap. A comment every 15 s while idle. Without Last-Event-ID the stream "
        "starts at the newest event.",
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
                   **READ_ERRORS},
    )  # fmt: skip
    async def tail(
        request: Request,
        caller: Caller,
        q: str = "",
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> Response:
        start: int | None = None
        if last_event_id is not None:
            try:
                start = int(last_event_id) + 1
            except ValueError:
                raise Problem(400, "Last-Event-ID must be the seq of an event") from None
            if not 0 <= start <= MAX_SEQ + 1:
                raise Problem(400, "Last-Event-ID must be the seq of an event")

        def open_stream() -> int:
            service.reader(caller).tail(q)  # refuses now, or records the stream
            return service.log().store.size() if start is None else start

        first = await asyncio.to_thread(open_stream)

        def follow(begin: int, end: int) -> list[dict[str, Any]]:
            step = service.hub.step(begin, end)  # read and parsed once for every stream
            return service.reader(caller).follow(q, begin, end, decoded=step)

        return StreamingResponse(
            tail_stream(service.hub, first, follow, heartbeat=service.config.tail_heartbeat,
                        gone=request.is_disconnected, stall=service.config.tail_stall),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    @app.get("/v1/me", summary="The calling principal",
             responses={200: {"model": Me}, **_errors(401, 429)})  # fmt: skip
    def me(caller: Caller) -> Response:
        return _json({
            "id": caller.id,
            "name": caller.name,
            "type": caller.kind,
            "roles": [r.name for r in caller.roles],
            "permissions": sorted({p for r in caller.roles for p in r.permissions}),
            "grants": list(caller.grants),
        })  # fmt: skip

    @app.get(
        "/checkpoint",
        summary="The latest signed checkpoint, exactly as signed (public)",
        responses={200: TEXT,
                   **_errors(404, 503)},
    )  # fmt: skip
    def checkpoint() -> Response:
        answer = _text(service.witnessing.attach(service.log().latest_checkpoint().note))
        answer.headers["Cache-Control"] = "no-cache"  # tlog-tiles: it changes; revalidate
        return answer

    @app.get(
        "/v1/vkey",
        summary="The log's verifier key (public)",
        responses={200: TEXT},
    )
    def vkey() -> Response:
        return _text(service.datadir.vkey() + "\n")

    @app.get("/healthz", summary="The process answers",
             responses={200: {"model": Health}})  # fmt: skip
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", summary="The store answers and the writer runs",
             responses={200: {"model": Health}, 503: {"model": Health}})  # fmt: skip
    def readyz() -> Response:
        if not service.writer.alive:
            return _json({"status": "writer stopped"}, 503)
        try:
            service.log().store.size()
        except Exception:
            log.warning("readiness: the store does not answer", exc_info=True)
            return _json({"status": "store unavailable"}, 503)
        return _json({"status": "ok"})

    if metrics_public:

        @app.get("/metrics", summary="Prometheus metrics", responses={200: TEXT})
        def metrics_open() -> Response:
            return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    else:

        @app.get(
            "/metrics",
            summary="Prometheus metrics (needs a principal, or --metrics-host)",
            responses={200: TEXT,
                       **_errors(401, 429)},
        )  # fmt: skip
        def metrics(caller: Caller) -> Response:
            del caller  # any principal; the figures hold no event's content
            return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)


# -- OTLP/HTTP logs ----------------------------------------------------------------------

OTLP_STATUS: Final = {"type": "object", "properties": {
    "code": {"type": "integer"}, "message": {"type": "string"},
}}  # fmt: skip
OTLP_BINARY: Final = {"type": "string", "format": "binary"}


def _otlp_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of /v1/logs: a google.rpc.Status in either encoding."""
    return {
        code: {
            "content": {otlp.JSON: {"schema": OTLP_STATUS}, otlp.PROTOBUF: {"schema": OTLP_BINARY}},
            "description": problems.TITLES.get(code, "Error"),
        }
        for code in codes
    }


class _OTLPRoute(APIRoute):
    """A route answering errors as the OTLP specification says: a ``google.rpc.Status``
    in the request's encoding. The status code, its words and headers (Retry-After,
    WWW-Authenticate) are what the app's problem handlers chose, so the two routes
    refuse alike; only the body's format differs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # every error, authentication's included
                problem = await _problem_of(request, exc)
            json_encoded = otlp.media_type(request.headers.get("content-type")) == otlp.JSON
            detail = json.loads(bytes(problem.body)).get("detail", "") if problem.body else ""
            headers = {k: v for k, v in problem.headers.items()
                       if k.lower() in ("retry-after", "www-authenticate")}  # fmt: skip
            return Response(
                otlp.status_body(problem.status_code, detail, json_encoded=json_encoded),
                status_code=problem.status_code, headers=headers,
                media_type=otlp.JSON if json_encoded else otlp.PROTOBUF,
            )  # fmt: skip

        return answer


async def _problem_of(request: Request, exc: Exception) -> Response:
    """The problem+json answer the app's handlers give ``exc``."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        if kind in handlers:
            response: Response = await handlers[kind](request, exc)
            return response
    raise exc


def _otlp_routes(service: Service) -> APIRouter:
    router = APIRouter(route_class=_OTLPRoute)

    @router.post(
        "/v1/logs",
        summary="Append OpenTelemetry log records (OTLP/HTTP)",
        description="An ExportLogsServiceRequest as binary protobuf or OTLP/JSON, optionally "
        "gzip-encoded, at most 5 MiB once inflated and 1,000 records; each record becomes "
        "an event as docs/capture.md maps it. Answers, once the events are durable, an "
        "ExportLogsServiceResponse in the request's encoding (partial_success names the "
        "records refused); errors are a google.rpc.Status. Idempotent: a record's id "
        "derives from its content.",
        responses={
            200: {"content": {otlp.JSON: {"schema": {"type": "object"}},
                              otlp.PROTOBUF: {"schema": OTLP_BINARY}},
                  "description": "ExportLogsServiceResponse"},
            **_otlp_errors(400, 401, 403, 413, 415, 429, 500, 503),
        },
        openapi_extra={"requestBody": {"required": True, "content": {
            otlp.PROTOBUF: {"schema": OTLP_BINARY},
            otlp.JSON: {"schema": {"type": "object"}},
        }}},
    )  # fmt: skip
    async def post_logs(request: Request, caller: Caller) -> Response:
        kind = otlp.media_type(request.headers.get("content-type"))
        if kind not in (otlp.PROTOBUF, otlp.JSON):
            raise Problem(415, f"Content-Type {kind or 'none'!r} is not OTLP/HTTP; send "
                          f"{otlp.PROTOBUF} or {otlp.JSON}")  # fmt: skip
        json_encoded = kind == otlp.JSON
        services = _ingest_services(caller)
        body = await read_body(request.stream(), encoding=request.headers.get("content-encoding"))
        parse = otlp.events_from_json if json_encoded else otlp.events_from_protobuf
        _, _, rejected = await _ingest(service, body, services, parse)
        messages = [f"record {r['index']}: {'; '.join(r['errors'])}" for r in rejected[:10]]
        return Response(otlp.export_response(len(rejected), messages, json_encoded=json_encoded),
                        media_type=kind)  # fmt: skip

    return router
