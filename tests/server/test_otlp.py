"""OTLP/HTTP logs (issue 12 §5, §8): the OpenTelemetry SDK's exporter against a live
server, and export requests posted directly in both encodings, gzip-encoded, partly
refused, malformed, or from callers who may not write."""

from __future__ import annotations

import base64
import gzip
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from glasslog.log import Log
from glasslog.server.otlp import PROTOBUF, events_from_json, events_from_protobuf
from glasslog.server.refusal import Problem
from tests.server.conftest import Site, live

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
NANOS = 1_764_460_800_123_456_789  # 2025-11-30T00:00:00.123456789Z


@pytest.fixture
def url(sqlite_site: Site) -> Iterator[str]:
    with live(sqlite_site) as address:
        yield address


def _search(site: Site, query: str) -> list[dict[str, Any]]:
    with Log.open(site.data) as log:
        return log.search(query, limit=100).events


def _request(*records: dict[str, Any], service: str = "payments") -> dict[str, Any]:
    """An OTLP/JSON export request: one resource, one scope, ``records``."""
    return {"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}},
            {"key": "deployment.environment.name", "value": {"stringValue": "prod"}},
            {"key": "service.version", "value": {"stringValue": "1.4.2"}},
        ]},
        "scopeLogs": [{"scope": {"name": "shop.refunds"}, "logRecords": list(records)}],
    }]}  # fmt: skip


def _record(body: str = "invoice.refund", /, **attributes: str | int) -> dict[str, Any]:
    values = [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
               else {"stringValue": v}} for k, v in attributes.items()]  # fmt: skip
    return {
        "timeUnixNano": str(NANOS),
        "severityNumber": 9,
        "severityText": "INFO",
        "body": {"stringValue": body},
        "attributes": values,
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
    }


def _protobuf(request: dict[str, Any]) -> bytes:
    """The same request in binary protobuf (ids hex in OTLP/JSON, bytes here)."""
    message = ExportLogsServiceRequest()
    copy = json.loads(json.dumps(request))
    for resource in copy["resourceLogs"]:
        for scope in resource["scopeLogs"]:
            for record in scope["logRecords"]:
                for name in ("traceId", "spanId"):
                    if name in record:
                        record[name] = _b64(bytes.fromhex(record[name]))
    json_format.ParseDict(copy, message)
    encoded: bytes = message.SerializeToString()
    return encoded


def _protobuf_of_json(record: dict[str, Any]) -> bytes:
    """A request of one record with these fields, in protobuf; b"" when they do not parse."""
    try:
        return _protobuf(_request(record))
    except json_format.ParseError:
        return b""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _status(response: httpx.Response) -> dict[str, Any]:
    """The google.rpc.Status of an error answer to an OTLP/JSON request."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert isinstance(body["message"], str) and body["message"], body
    return body


def test_sdk_exporter_logs_come_out_searchable_with_the_mapped_fields(sqlite_site: Site) -> None:
    """Logs sent by the OpenTelemetry SDK's OTLP/HTTP exporter are stored with the mapping."""
    site = sqlite_site
    with live(site) as url:
        provider = LoggerProvider(resource=Resource.create({
            "service.name": "payments", "deployment.environment.name": "staging",
            "service.version": "2.0.1",
        }))  # fmt: skip
        exporter = OTLPLogExporter(
            endpoint=f"{url}/v1/logs", headers={"authorization": f"Bearer {site.keys['writer']}"},
            compression=Compression.Gzip,
        )  # fmt: skip
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = logging.getLogger("tests.otlp.sdk")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
        logger.addHandler(handler)
        tracer = TracerProvider().get_tracer("tests")
        try:
            with tracer.start_as_current_span("refund") as span:
                logger.info("refund approved", extra={
                    "event.name": "invoice.refund", "enduser.id": "alice",
                    "client.address": "203.0.113.5", "user_agent.original": "shop/1.0",
                    "invoice": "inv-42",
                })  # fmt: skip
                context = span.get_span_context()
            logger.warning("Card declined for customer")
            provider.force_flush()
        finally:
            logger.removeHandler(handler)
            provider.shutdown()

    refund = _search(site, "action:invoice.refund")
    assert len(refund) == 1
    event = refund[0]
    assert event["service"] == "payments" and event["environment"] == "staging"
    assert event["actor"] == {"id": "alice", "type": "user"}
    assert event["source"] == {"ip": "203.0.113.5", "user_agent": "shop/1.0"}
    assert event["context"]["version"] == "2.0.1"
    assert event["context"]["trace_id"] == trace.format_trace_id(context.trace_id)
    assert event["context"]["span_id"] == trace.format_span_id(context.span_id)
    assert (
        event["context"]["function"]
        == "test_sdk_exporter_logs_come_out_searchable_with_the_mapped_fields"
    )
    assert event["metadata"]["body"] == "refund approved"
    assert event["metadata"]["invoice"] == "inv-42"
    assert event["metadata"]["severity"] == "INFO"
    # A sentence is no action: the record is kept, its body in metadata.
    declined = _search(site, 'action:otel.log "Card declined"')
    assert [e["actor"] for e in declined] == [{"id": "payments", "type": "service"}]
    assert declined[0]["metadata"]["severity"] == "WARN"


def test_protobuf_gzip_is_stored_once_however_often_it_is_retried(sqlite_site: Site) -> None:
    """Gzip-encoded protobuf is answered with an empty response; a retry stores nothing twice."""
    site = sqlite_site
    body = gzip.compress(_protobuf(_request(_record(**{"enduser.id": "bob"}))))
    headers = {**site.auth("writer"), "content-type": PROTOBUF, "content-encoding": "gzip"}
    with live(site) as url:
        for _ in range(2):
            answer = httpx.post(f"{url}/v1/logs", content=body, headers=headers)
            assert answer.status_code == 200, answer.content
            assert answer.headers["content-type"] == PROTOBUF
            assert answer.content == ExportLogsServiceResponse().SerializeToString() == b""
    [event] = _search(site, "action:invoice.refund")
    assert event["time"] == "2025-11-30T00:00:00.123456Z"
    assert event["context"] == {"version": "1.4.2", "trace_id": TRACE_ID, "span_id": SPAN_ID}
    assert event["metadata"]["otel.scope.name"] == "shop.refunds"


@pytest.mark.parametrize("workers", [2, 0])
def test_json_and_protobuf_of_one_record_are_one_event(sqlite_site: Site, workers: int) -> None:
    """OTLP/JSON (hex ids, 64-bit integers as strings) maps as protobuf does, to the same id,
    prepared in worker processes or in the server's own writer thread."""
    site = sqlite_site
    attributes: dict[str, str | int] = {"enduser.id": "carol", "attempt": 3}
    request = _request(_record(**attributes))
    with live(site, prepare_workers=workers) as url:
        answer = httpx.post(f"{url}/v1/logs", json=request, headers=site.auth("writer"))
        assert answer.status_code == 200 and answer.json() == {}
        again = httpx.post(f"{url}/v1/logs", content=_protobuf(request),
                           headers={**site.auth("writer"), "content-type": PROTOBUF})  # fmt: skip
        assert again.status_code == 200 and again.content == b""
    [event] = _search(site, "user:carol")
    assert event["context"]["trace_id"] == TRACE_ID and event["metadata"]["attempt"] == 3


def test_partly_refused_request_answers_partial_success(sqlite_site: Site) -> None:
    """Records refused (service, schema) are counted in partial_success; the others stored."""
    site = sqlite_site
    request = _request(
        _record("user.login"), _record("Not An Action", **{"event.name": "Bad Name"})
    )
    request["resourceLogs"].append(
        _request(_record("secret.read"), service="secrets")["resourceLogs"][0]
    )
    with live(site) as url:
        answer = httpx.post(f"{url}/v1/logs", json=request, headers=site.auth("writer"))
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "2"
    assert "record 1: $.action" in partial["errorMessage"]
    assert "record 2: $.service" in partial["errorMessage"]
    assert [e["action"] for e in _search(site, "service:payments")] == ["user.login"]


def test_bad_payloads_are_refused_with_a_status(url: str, sqlite_site: Site) -> None:
    """Undecodable bodies are 400 with a google.rpc.Status in the request's encoding."""
    auth = sqlite_site.auth("writer")
    answer = httpx.post(f"{url}/v1/logs", content=b"\xff\xff\xff",
                        headers={**auth, "content-type": PROTOBUF})  # fmt: skip
    assert answer.status_code == 400 and answer.headers["content-type"] == PROTOBUF
    assert b"not a protobuf ExportLogsServiceRequest" in answer.content
    bad_id = _request(_record())
    bad_id["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"] = "not-hex"
    answer = httpx.post(f"{url}/v1/logs", json=bad_id, headers=auth)
    assert answer.status_code == 400 and "traceId must be hex" in _status(answer)["message"]
    answer = httpx.post(
        f"{url}/v1/logs", content=b"{}", headers={**auth, "content-type": "text/plain"}
    )
    assert answer.status_code == 415


def test_a_gzip_bomb_is_cut_off(url: str, sqlite_site: Site) -> None:
    """A small gzip body inflating past 5 MiB is refused 413 without inflating it all."""
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))
    answer = httpx.post(f"{url}/v1/logs", content=bomb, headers={
        **sqlite_site.auth("writer"), "content-type": PROTOBUF, "content-encoding": "gzip",
    })  # fmt: skip
    assert answer.status_code == 413 and answer.headers["content-type"] == PROTOBUF


def test_callers_who_may_not_write_are_refused(url: str, sqlite_site: Site) -> None:
    """No key is 401, a key without ingest 403, a service outside the key's roles refused."""
    request = _request(_record())
    answer = httpx.post(f"{url}/v1/logs", json=request)
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in _status(answer)["message"]
    answer = httpx.post(f"{url}/v1/logs", json=request, headers=sqlite_site.auth("dev"))
    assert answer.status_code == 403 and "no role of it has ingest" in _status(answer)["message"]
    answer = httpx.post(f"{url}/v1/logs", json=_request(_record(), service="ledger"),
                        headers=sqlite_site.auth("writer"))  # fmt: skip
    assert answer.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert (
        "may not write events of service 'ledger'"
        in answer.json()["partialSuccess"]["errorMessage"]
    )


def _events_or_status(parse: Callable[[bytes], list[object]], body: bytes) -> list[object] | int:
    """What a decoder makes of ``body``: its events, or the status of the Problem it raised."""
    try:
        return parse(body)
    except Problem as problem:
        return problem.status


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=400),
    st.builds(_protobuf_of_json, st.dictionaries(st.sampled_from(
        ["timeUnixNano", "severityNumber", "severityText", "eventName", "flags"]
    ), st.integers(0, 2**63 - 1) | st.text(max_size=10), max_size=4)),
))  # fmt: skip
def test_any_protobuf_body_maps_or_is_refused_as_a_bad_payload(body: bytes) -> None:
    """Arbitrary bytes decode to events (plain dicts) or raise the 400/413 Problem; nothing else."""
    result = _events_or_status(events_from_protobuf, body)
    if isinstance(result, int):
        assert result in (400, 413)
    else:
        assert all(isinstance(e, dict) and "id" in e for e in result)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["resourceLogs", "resource_logs", "other"]), _JSON))
def test_any_json_body_maps_or_is_refused_as_a_bad_payload(value: dict[str, Any]) -> None:
    """Arbitrary JSON objects decode to events or raise the 400 Problem; nothing else."""
    result = _events_or_status(events_from_json, json.dumps(value).encode())
    if isinstance(result, int):
        assert result == 400
    else:
        assert all(isinstance(e, dict) and "id" in e for e in result)
