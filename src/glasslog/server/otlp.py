"""OTLP/HTTP logs (``POST /v1/logs``): decoding an export request, mapping its records
onto the event schema, and the answers the OTLP specification prescribes.

The OpenTelemetry Protocol (https://opentelemetry.io/docs/specs/otlp/#otlphttp) sends
an ``ExportLogsServiceRequest`` as binary protobuf (``application/x-protobuf``) or as
OTLP/JSON (``application/json``). OTLP/JSON is the protobuf JSON mapping with two
exceptions that :mod:`google.protobuf.json_format` does not know: trace and span ids
are hex strings, not base64, and (as in the standard mapping) 64-bit integers may be
strings. Unknown fields are ignored, as the specification requires of receivers.

Each log record becomes one event; docs/capture.md lists the mapping field by field.
A record has no id of its own, so the event's id is derived from the record's content
with its resource and scope (:func:`record_id`): an exporter retrying the same request
stores nothing twice.

Errors on this route are ``google.rpc.Status`` messages in the request's encoding, not
problem details (:func:`status_body`); a request whose records are partly refused is
answered 200 with ``partial_success`` (:func:`export_response`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from glasslog.event import _ACTION, MAX_SAFE_INTEGER
from glasslog.server.body import MAX_EVENTS
from glasslog.server.refusal import Problem

__all__ = [
    "JSON",
    "PROTOBUF",
    "decode",
    "events_from_json",
    "events_from_protobuf",
    "export_response",
    "map_request",
    "media_type",
    "record_id",
    "status_body",
]

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"

DEFAULT_ACTION: Final = "otel.log"
"""The action of a record with no ``event.name`` and a body that is not an action name
(a sentence, say): the body is then kept in ``metadata.body``."""

_ID_NAMESPACE: Final = uuid.UUID("5b0c7a51-6f1e-4c63-9a0e-2f1d6e0c0a10")
"""Salts the hash of a record's content (:func:`record_id`)."""

# Attributes that become schema fields; every other one goes to metadata under its name.
_RESOURCE_FIELDS: Final = {
    "service.name": ("service",),
    "deployment.environment.name": ("environment",),
    "deployment.environment": ("environment",),  # semantic conventions before 1.27
    "service.version": ("context", "version"),
    "host.name": ("context", "host"),
}
_RECORD_FIELDS: Final = {
    "enduser.id": ("actor", "id"),
    "client.address": ("source", "ip"),
    "user_agent.original": ("source", "user_agent"),
    "code.function.name": ("context", "function"),
    "code.function": ("context", "function"),  # semantic conventions before 1.30
    "code.namespace": ("context", "module"),
    "event.name": ("action",),
}

# google.rpc.Code for the HTTP statuses this route answers (the OTLP specification lets
# a server omit it; clients may record it).
_RPC_CODES: Final = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 422: 3, 429: 8, 503: 14}


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header (no parameters, lowercase)."""
    return (content_type or "").partition(";")[0].strip().lower()


# -- decoding ------------------------------------------------------------------------


def decode(body: bytes, *, json_encoded: bool) -> ExportLogsServiceRequest:
    """The export request in ``body``; :class:`Problem` 400 when it is not one."""
    request = ExportLogsServiceRequest()
    if not json_encoded:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError):
            raise Problem(400, "the body is not a protobuf ExportLogsServiceRequest; send "
                          "OTLP/HTTP binary protobuf or OTLP/JSON") from None  # fmt: skip
        return request
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise Problem(
            400, "the body is not JSON; send an OTLP/JSON ExportLogsServiceRequest"
        ) from None
    if not isinstance(value, dict):
        raise Problem(400, "an OTLP/JSON ExportLogsServiceRequest is a JSON object")
    try:
        _hex_ids_to_base64(value)
        json_format.ParseDict(value, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError, AttributeError) as exc:
        detail = str(exc)[:300] if isinstance(exc, (json_format.ParseError, ValueError)) else ""
        raise Problem(400, "the body is not an OTLP/JSON ExportLogsServiceRequest"
                      + (f": {detail}" if detail else "")) from None  # fmt: skip
    return request


def _hex_ids_to_base64(request: dict[str, Any]) -> None:
    """OTLP/JSON writes traceId and spanId in hex; the protobuf JSON mapping reads bytes
    as base64. Rewrite them in place, refusing what is not hex."""
    for resource_logs in _objects(request.get("resourceLogs", request.get("resource_logs"))):
        for scope_logs in _objects(resource_logs.get("scopeLogs", resource_logs.get("scope_logs"))):
            for record in _objects(scope_logs.get("logRecords", scope_logs.get("log_records"))):
                for name in ("traceId", "trace_id", "spanId", "span_id"):
                    text = record.get(name)
                    if not isinstance(text, str):
                        continue
                    try:
                        raw = bytes.fromhex(text)
                    except ValueError:
                        raise ValueError(f"{name} must be hex, as OTLP/JSON writes ids; "
                                         f"found {text[:40]!r}") from None  # fmt: skip
                    record[name] = base64.b64encode(raw).decode("ascii")


def _objects(value: object) -> Iterable[dict[str, Any]]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


# -- mapping ---------------------------------------------------------------------------


def events_from_protobuf(body: bytes) -> list[object]:
    """The events of a protobuf export request (run in a worker process)."""
    return map_request(decode(body, json_encoded=False))


def events_from_json(body: bytes) -> list[object]:
    """The events of an OTLP/JSON export request (run in a worker process)."""
    return map_request(decode(body, json_encoded=True))


def map_request(request: ExportLogsServiceRequest) -> list[object]:
    """One event per log record, in the request's order; 413 past :data:`MAX_EVENTS`."""
    total = sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
    if total > MAX_EVENTS:
        raise Problem(413, f"a request carries at most {MAX_EVENTS:,} log records; this one "
                      f"has {total:,}: lower the exporter's batch size")  # fmt: skip
    events: list[object] = []
    for resource_logs in request.resource_logs:
        resource = resource_logs.resource
        resource_attributes = _attributes(resource.attributes)
        resource_bytes = resource.SerializeToString(deterministic=True)
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            scope_bytes = scope.SerializeToString(deterministic=True)
            context: dict[str, Any] = dict(resource_attributes)
            if scope.name:
                context["otel.scope.name"] = scope.name
            if scope.version:
                context["otel.scope.version"] = scope.version
            context.update(_attributes(scope.attributes))
            for record in scope_logs.log_records:
                event = map_record(record, context)
                event["id"] = record_id(resource_bytes, scope_bytes, record)
                events.append(event)
    return events


def map_record(record: LogRecord, inherited: dict[str, Any]) -> dict[str, Any]:
    """The event of one record; ``inherited`` holds its resource's and scope's attributes
    (a record's own attribute of the same name wins)."""
    attributes = {**inherited, **_attributes(record.attributes)}
    event: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for name, value in attributes.items():
        target = _RESOURCE_FIELDS.get(name) or _RECORD_FIELDS.get(name)
        if target is None or not isinstance(value, str) or _has(event, target):
            metadata[name] = value
            continue
        _put(event, target, value)
    if "action" not in event and record.event_name:
        event["action"] = record.event_name
    body = _value(record.body) if record.HasField("body") else None
    if "action" not in event:
        if isinstance(body, str) and len(body) <= 128 and _ACTION.fullmatch(body):
            event["action"] = body
            body = None
        else:
            event["action"] = DEFAULT_ACTION
    if body is not None:
        metadata["body"] = body
    if "actor" not in event and isinstance(event.get("service"), str):
        event["actor"] = {"id": event["service"], "type": "service"}
    elif "actor" in event:
        event["actor"]["type"] = "user"
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    if nanos:
        event["time"] = _rfc3339(nanos)
    if any(record.trace_id):
        event.setdefault("context", {})["trace_id"] = record.trace_id.hex()
    if any(record.span_id):
        event.setdefault("context", {})["span_id"] = record.span_id.hex()
    if record.severity_text:
        metadata["severity"] = record.severity_text
    if record.severity_number:
        metadata["severity_number"] = int(record.severity_number)
    if metadata:
        event["metadata"] = metadata
    return event


def _has(event: dict[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = event
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _put(event: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    node = event
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _attributes(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in attributes}


def _value(value: AnyValue) -> Any:
    """An AnyValue as JSON: integers past 2^53 and non-finite doubles as strings (the
    event schema holds only what every JSON parser reads back exactly), bytes as base64."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        number = value.int_value
        return number if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER else str(number)
    if kind == "double_value":
        real = value.double_value
        return real if math.isfinite(real) else str(real)
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def _rfc3339(nanos: int) -> str:
    seconds, rest = divmod(nanos, 1_000_000_000)
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return str(nanos)  # validation refuses it with the reason
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1000:06d}Z"


def record_id(resource: bytes, scope: bytes, record: LogRecord) -> str:
    """A UUIDv8 (RFC 9562 §5.8) from a hash of the record with its resource and scope.

    Deterministic, so that an exporter's retry of a request stores each record once.
    Protobuf and OTLP/JSON of the same record give the same id (the hash is of the
    decoded messages). Two records identical in every field, time to the nanosecond
    included, are one event.
    """
    digest = hashlib.sha256(_ID_NAMESPACE.bytes)
    for part in (resource, scope, record.SerializeToString(deterministic=True)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(raw)))


# -- answers -------------------------------------------------------------------------


def export_response(rejected: int, messages: list[str], *, json_encoded: bool) -> bytes:
    """The ExportLogsServiceResponse: empty on full success, else ``partial_success``."""
    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = "; ".join(messages)[:2000]
    if json_encoded:
        text = json_format.MessageToJson(response, indent=None) if rejected else "{}"
        return text.encode()
    encoded: bytes = response.SerializeToString()
    return encoded


def status_body(status: int, message: str, *, json_encoded: bool) -> bytes:
    """A google.rpc.Status for an error answer, in the request's encoding.

    Written by hand: two fields (code = 1, message = 2) do not justify a dependency on
    googleapis-common-protos.
    """
    code = _RPC_CODES.get(status, 2)  # 2: UNKNOWN
    if json_encoded:
        return json.dumps({"code": code, "message": message}, ensure_ascii=False).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)
