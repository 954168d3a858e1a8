"""OTLP ingest benchmark (issue 12 target: OTLP ingest at least 0.5 times native ingest).

Run: ``.venv/bin/python bench/otlp.py [--events 20000] [--batch 1000] [--clients 4] [--dir DIR]``

The same N events go to two fresh data directories, each served by its own ``glasslog
serve --rate 1000000`` subprocess (embedded SQLite, two prepare workers, the default):

1. **Native**: ``POST /v1/events`` of ``{"events": [...]}`` JSON, ``--batch`` events a
   request.
2. **OTLP**: ``POST /v1/logs`` of binary protobuf ``ExportLogsServiceRequest``s, one
   resource (service.name, deployment.environment.name, service.version) and
   ``--batch`` records a request, each record carrying what the native event carries:
   time, trace and span ids, ``event.name``, ``enduser.id``, ``client.address``,
   ``user_agent.original``, ``code.function.name``, severity and three more attributes
   (which become metadata). docs/capture.md's mapping turns each into the native event.

Every body is encoded before the clock starts; ``--clients`` threads send them, each
waiting for its answer before sending the next. Events/s = events stored / (last
answer - first request). The ratio OTLP / native is the target's figure. Results go
to bench/out/otlp.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Run as a script, this directory comes first on sys.path, where bench/http.py would
# shadow the standard library's ``http`` package that httpx imports: move it last.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

POLICY = """
[roles.writer]
permissions = ["ingest"]
services = ["*"]
actions = ["*"]
"""
OUT = Path(__file__).resolve().parent / "out" / "otlp.json"
ACTIONS = ("invoice.refund", "user.login", "card.charge", "db.query", "secret.read")
START_NANOS = 1_764_460_800_000_000_000


def _glasslog() -> list[str]:
    script = Path(sys.executable).with_name("glasslog")
    return [str(script)] if script.exists() else [sys.executable, "-m", "glasslog"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def setup(data: Path) -> str:
    """A fresh data directory with a writer role; its key."""
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run([*_glasslog(), "init", "--data", str(data)], check=True, capture_output=True)
    with (data / "policy.toml").open("a", encoding="utf-8") as policy:
        policy.write(POLICY)
    out = subprocess.run(
        [*_glasslog(), "keys", "create", "--role", "writer", "--json", "--data", str(data)],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    key: str = json.loads(out)["key"]
    return key


@contextlib.contextmanager
def server(data: Path, log: Path) -> Iterator[str]:
    """``glasslog serve`` on a free port until the block ends (SIGTERM, then wait)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_glasslog(), "serve", "--data", str(data), "--port", str(port), "--rate", "1000000"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"glasslog serve did not get ready; see {log}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=120)


def records(n: int) -> list[dict[str, Any]]:
    """N records, as plain values both encoders read."""
    return [
        {
            "nanos": START_NANOS + i * 1_000_003,
            "trace_id": uuid.UUID(int=(i // 4) + 1).hex,
            "span_id": f"{i + 1:016x}",
            "action": ACTIONS[i % len(ACTIONS)],
            "user": f"user-{i % 97}",
            "ip": f"10.0.{i % 256}.{(i // 256) % 256}",
            "agent": "shop-web/4.2",
            "function": "refund_invoice",
            "metadata": {"invoice": f"inv-{i}", "amount": i % 1000, "currency": "EUR"},
        }
        for i in range(n)
    ]


def native_body(batch: list[dict[str, Any]]) -> bytes:
    """The batch as ``POST /v1/events`` JSON, fields as docs/capture.md maps the records."""
    events = []
    for r in batch:
        seconds, rest = divmod(r["nanos"], 1_000_000_000)
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        events.append({
            "id": str(uuid.uuid4()),
            "time": f"{moment}.{rest // 1000:06d}Z",
            "service": "payments",
            "environment": "prod",
            "action": r["action"],
            "actor": {"id": r["user"], "type": "user"},
            "source": {"ip": r["ip"], "user_agent": r["agent"]},
            "context": {"version": "4.2.0", "trace_id": r["trace_id"], "span_id": r["span_id"],
                        "function": r["function"]},
            "metadata": {**r["metadata"], "severity": "INFO", "severity_number": 9},
        })  # fmt: skip
    return json.dumps({"events": events}).encode()


def _kv(key: str, value: str | int) -> KeyValue:
    any_value = (
        AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    )
    return KeyValue(key=key, value=any_value)


def otlp_body(batch: list[dict[str, Any]]) -> bytes:
    """The batch as one protobuf ExportLogsServiceRequest."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend([
        _kv("service.name", "payments"), _kv("deployment.environment.name", "prod"),
        _kv("service.version", "4.2.0"),
    ])  # fmt: skip
    scope_logs = resource_logs.scope_logs.add()
    for r in batch:
        record = scope_logs.log_records.add()
        record.time_unix_nano = r["nanos"]
        record.severity_number = 9
        record.severity_text = "INFO"
        record.trace_id = bytes.fromhex(r["trace_id"])
        record.span_id = bytes.fromhex(r["span_id"])
        record.attributes.extend([
            _kv("event.name", r["action"]), _kv("enduser.id", r["user"]),
            _kv("client.address", r["ip"]), _kv("user_agent.original", r["agent"]),
            _kv("code.function.name", r["function"]),
            *(_kv(k, v) for k, v in r["metadata"].items()),
        ])  # fmt: skip
    encoded: bytes = request.SerializeToString()
    return encoded


def send(
    url: str, path: str, key: str, bodies: list[bytes], content_type: str, clients: int
) -> tuple[float, list[str]]:
    """Post ``bodies`` from ``clients`` threads; seconds from the first request to the
    last answer, and the errors seen."""
    pending = list(enumerate(bodies))
    lock = threading.Lock()
    errors: list[str] = []
    headers = {"authorization": f"Bearer {key}", "content-type": content_type}

    def work() -> None:
        with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
            while True:
                with lock:
                    if not pending:
                        return
                    _, body = pending.pop(0)
                answer = client.post(path, content=body)
                refused = answer.status_code != 200 or (
                    answer.content != b"" if path == "/v1/logs" else answer.json()["rejected"]
                )
                if refused:
                    with lock:
                        errors.append(f"{answer.status_code}: {answer.text[:200]}")

    threads = [threading.Thread(target=work) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, errors


def _stored(data: Path) -> int:
    from glasslog.log import Log  # noqa: PLC0415 - only once the servers stopped

    with Log.open(data) as log:
        return log.count("service:payments").count


def run(
    work_dir: Path, *, events: int = 20_000, batch: int = 1_000, clients: int = 4
) -> dict[str, Any]:
    """Both runs in ``work_dir``; the figures as a dict (also written to bench/out/otlp.json)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    rows = records(events)
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    result: dict[str, Any] = {"events": events, "batch": batch, "clients": clients}
    for name, path, content_type, encode in (
        ("native", "/v1/events", "application/json", native_body),
        ("otlp", "/v1/logs", "application/x-protobuf", otlp_body),
    ):
        data = work_dir / f"data-{name}"
        key = setup(data)
        bodies = [encode(chunk) for chunk in chunks]
        with server(data, work_dir / f"serve-{name}.log") as url:
            seconds, errors = send(url, path, key, bodies, content_type, clients)
        stored = _stored(data)
        result[name] = {
            "seconds": round(seconds, 3),
            "events_per_second": round(stored / seconds),
            "stored": stored,
            "request_bytes": sum(len(b) for b in bodies),
            "errors": errors[:5],
        }
    result["ratio"] = round(
        result["otlp"]["events_per_second"] / result["native"]["events_per_second"], 3
    )
    result["target_met"] = result["ratio"] >= 0.5
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--dir", type=Path, default=None, help="work directory (default: a temporary one)"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        work = args.dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="glasslog-otlp-"))
        )
        result = run(work, events=args.events, batch=args.batch, clients=args.clients)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for name in ("native", "otlp"):
        figures = result[name]
        print(
            f"{name:>6}: {figures['events_per_second']:>7,} events/s  ({figures['stored']:,} "
            f"stored in {figures['seconds']} s, {figures['request_bytes'] / 1e6:.1f} MB sent)"
        )
        for error in figures["errors"]:
            print(f"        error: {error}")
    verdict = "met" if result["target_met"] else "missed"
    print(f" ratio: {result['ratio']} (OTLP / native; target >= 0.5: {verdict})")


if __name__ == "__main__":
    main()
