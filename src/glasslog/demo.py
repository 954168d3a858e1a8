"""Realistic synthetic audit events, and the ``glasslog demo`` walk-through.

The same generator feeds the demo and the benchmarks (deterministic for a seed).

20 services, 500 actors, 2 to 6 metadata keys per event, about 10% of events carrying
a secret the scrubber must remove (a password field, a bearer token in a header, an
AWS key or a card number in free text). Requests span 1 to 4 events of one request id
across services, as a real request fanning out would.
"""

from __future__ import annotations

import base64
import json
import random
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from glasslog.datadir import DataDir
from glasslog.identity import initialise
from glasslog.ingest.bulk import ingest_lines
from glasslog.ingest.pipeline import Settings
from glasslog.ledger import merkle
from glasslog.ledger.note import verify_checkpoint
from glasslog.log import Log
from glasslog.verify import verify_store

SERVICES = [
    "payments", "billing", "auth", "users", "orders", "inventory", "search", "gateway",
    "notifications", "reports", "admin", "ledger", "shipping", "catalog", "pricing",
    "fraud", "support", "analytics", "storage", "scheduler",
]  # fmt: skip
ACTIONS = [
    ("user.login", "authentication"), ("user.logout", "authentication"),
    ("user.password_reset", "authentication"), ("db.query", "data_access"),
    ("secret.read", "data_access"), ("record.export", "data_access"),
    ("config.update", "config_change"), ("role.grant", "admin"), ("role.revoke", "admin"),
    ("deploy.start", "deployment"), ("deploy.finish", "deployment"),
    ("invoice.create", "data_access"), ("payment.capture", "data_access"),
    ("api_key.create", "admin"), ("file.download", "data_access"),
]  # fmt: skip
OUTCOMES = ["success"] * 85 + ["failure"] * 10 + ["denied"] * 4 + ["unknown"]
TABLES = ["cards", "users", "orders", "invoices", "sessions", "audit", "keys"]
WORDS = [
    "quarterly",
    "reconciliation",
    "rotated",
    "credentials",
    "emergency",
    "access",
    "customer",
    "request",
    "scheduled",
    "maintenance",
    "incident",
    "review",
    "migration",
    "rollback",
    "compliance",
    "export",
]


def _actors(rng: random.Random) -> list[dict[str, str]]:
    actors = []
    for i in range(500):
        kind = "user" if i < 420 else ("service" if i < 480 else "machine")
        actor = {"id": f"{kind[0]}-{i:05d}", "type": kind}
        if kind == "user":
            actor["name"] = f"User {i:03d} {rng.choice(WORDS).title()}"
            actor["email"] = f"user{i}@example.com"
            actor["session_id"] = uuid.UUID(int=rng.getrandbits(128)).hex
        actors.append(actor)
    return actors


def _luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d2 = d * 2 if i % 2 == 0 else d
        total += d2 - 9 if d2 > 9 else d2
    digits.append((10 - total % 10) % 10)
    return "".join(map(str, digits))


def _secret(rng: random.Random, meta: dict[str, Any]) -> str | None:
    kind = rng.randrange(4)
    if kind == 0:
        meta["password"] = f"hunter{rng.randrange(10**6)}!"
    elif kind == 1:
        meta["headers"] = {"authorization": f"Bearer {uuid.UUID(int=rng.getrandbits(128)).hex}"}
    elif kind == 2:
        key = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
        return f"used key AKIA{key} from CI"
    else:
        return f"refund to card {_luhn_card(rng)} approved"
    return None


def generate(n: int, *, seed: int = 7, start: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Yield ``n`` events, time-ordered over the 30 days before ``start``.

    ``start`` defaults to today 00:00 UTC, so runs on one day produce the same events.
    """
    end = start or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # Same seed and start, same events (ids included): a re-run is a retry, not new events.
    rng = random.Random(f"{seed}:{end.isoformat()}")  # noqa: S311 - synthetic, reproducible
    actors = _actors(rng)
    t = end - timedelta(days=30)
    step = timedelta(days=30) / max(n, 1)
    request_id = ""
    left_in_request = 0
    for _ in range(n):
        t += step
        if left_in_request == 0:
            request_id = uuid.UUID(int=rng.getrandbits(128)).hex
            trace_id = uuid.UUID(int=rng.getrandbits(128)).hex
            left_in_request = rng.randint(1, 4)
        left_in_request -= 1
        action, category = rng.choice(ACTIONS)
        service = rng.choice(SERVICES)
        actor = actors[rng.randrange(500)]
        meta: dict[str, Any] = {}
        for _ in range(rng.randint(2, 6)):
            k = rng.randrange(6)
            if k == 0:
                meta["db"] = {"table": rng.choice(TABLES), "rows": rng.randrange(10_000)}
            elif k == 1:
                meta["duration_ms"] = round(rng.random() * 900, 3)
            elif k == 2:
                meta["region"] = rng.choice(["eu-west-1", "us-east-1", "ap-south-1"])
            elif k == 3:
                meta["ticket"] = f"OPS-{rng.randrange(10**5)}"
            elif k == 4:
                meta["tags"] = rng.sample(WORDS, 2)
            else:
                meta["bytes"] = rng.randrange(10**7)
        reason = " ".join(rng.sample(WORDS, 3))
        if rng.random() < 0.10:
            reason = _secret(rng, meta) or reason
        event: dict[str, Any] = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "service": service,
            "environment": "prod" if rng.random() < 0.8 else "staging",
            "action": action,
            "category": category,
            "outcome": rng.choice(OUTCOMES),
            "actor": dict(actor),
            "source": {
                "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) glasslog-bench/1.0",
                "host": f"{service}-{rng.randrange(8)}.internal",
            },
            "target": {"type": "record", "id": f"rec-{rng.randrange(10**6)}"},
            "context": {
                "request_id": request_id,
                "trace_id": trace_id,
                "function": f"{service}.handlers.{action.split('.')[1]}",
                "version": f"v1.{rng.randrange(40)}.{rng.randrange(10)}",
                "host": f"{service}-{rng.randrange(8)}",
            },
            "reason": reason,
            "metadata": meta,
        }
        yield event


def write_jsonl(path: Path, n: int, *, seed: int = 7) -> int:
    """Write ``n`` events as JSON lines; return the file size in bytes."""
    with path.open("w", encoding="utf-8") as f:
        for event in generate(n, seed=seed):
            f.write(json.dumps(event, separators=(",", ":")))
            f.write("\n")
    return path.stat().st_size


def run_demo(data: Path, *, events: int, echo: Callable[[str], None]) -> None:
    """Show the main job end to end on the embedded store: ingest, prove, verify.

    Everything here goes through the same code as the CLI commands, so the demo is
    also a smoke test of a fresh install.
    """
    datadir = DataDir(data)
    signer = initialise(data, store=None, origin=None).signer
    echo(f"1. log {signer.name!r} in {data}\n   verifier key: {signer.vkey}")

    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile("w+") as rejected:
        source = Path(tmp) / "events.jsonl"
        write_jsonl(source, events, seed=7)  # same seed: a second run shows idempotency
        with source.open("rb") as lines:
            accepted, duplicates, n_rejected = ingest_lines(
                datadir, lines, settings=Settings(), workers=1, rejected=rejected
            )
    echo(f"2. ingested {accepted} events ({duplicates} duplicates, {n_rejected} rejected)")

    with Log.open(data) as log:
        size = log.latest_checkpoint().size
        seq = _event_with_secret(log, start=size // 2, end=size)
        event = log.get(str(seq))
        echo(
            f"3. event {seq}: {event['actor']['id']} did {event['action']} on {event['service']}"
            f" ({event['outcome']}); what the client sent as a secret is stored as:"
            f"\n   {_redacted_part(event)}"
        )
        note = log.latest_checkpoint().note
        echo("4. latest signed checkpoint:\n   " + note.rstrip("\n").replace("\n", "\n   "))
        proof = log.inclusion(seq)

    # Offline: only the proof, the checkpoint note and the public key are needed.
    cp = verify_checkpoint(note, verifier=datadir.verifier())
    merkle.verify_inclusion(
        index=proof["seq"],
        size=proof["tree_size"],
        leaf_hash=merkle.leaf_hash(base64.b64decode(proof["leaf"])),
        proof=[base64.b64decode(h) for h in proof["proof"]],
        root=cp.root,
    )
    echo(
        f"5. inclusion proof for seq {seq}: {len(proof['proof'])} hashes, verified offline "
        "against the signed checkpoint"
    )
    report = verify_store(datadir.db, datadir.verifier(), workers=1)
    echo(f"6. glasslog verify: {report.summary()}")
    echo(
        f"\nTry: glasslog get {seq} --data {data}   ·   glasslog proof inclusion {seq} "
        f"--data {data}   ·   glasslog verify --data {data}"
    )


def _event_with_secret(log: Log, *, start: int, end: int) -> int:
    """The first seq from ``start`` whose event had a secret scrubbed (else ``start``)."""
    for seq in range(start, min(end, start + 500)):
        if "[REDACTED:" in log.find(str(seq)).body:
            return seq
    return start


def _redacted_part(event: dict[str, Any]) -> str:
    for key in ("reason", "metadata"):
        text = json.dumps(event.get(key), ensure_ascii=False)
        if "[REDACTED:" in text:
            return f"{key}: {text}"
    return "(no secret in this event)"
