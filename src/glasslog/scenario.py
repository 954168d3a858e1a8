"""A live stream of audit events that tell stories, for ``glasslog demo``.

:func:`glasslog.demo.generate` makes uniform synthetic events for benchmarks. This
module makes what a person watching a demo should recognise, in real time:

* requests that cross services (gateway → auth → payments → billing → the database),
  one ``request_id`` and ``trace_id`` shared, with spans, functions and versions;
* logins, failed logins, and now and then a brute-force burst: many failures on one
  account from one address, then a success;
* secret reads from the vault, and permission changes by an administrator;
* deploys with versions and commits;
* database queries with personal data in their metadata (a customer's email), and
  secrets that clients should never have sent (a password in a connection string,
  a live API key), which the scrubber removes before anything is stored.

Each call to :meth:`Scenario.next` gives one story as a list of events, timed now.
"""

from __future__ import annotations

import random
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = ["LIVE_SERVICES", "Scenario"]

LIVE_SERVICES: Final = ("gateway", "auth", "payments", "billing", "vault", "deploy", "admin",
                        "users")  # fmt: skip
PEOPLE: Final = [
    ("ada", "Ada Lovelace"), ("grace", "Grace Hopper"), ("alan", "Alan Turing"),
    ("edsger", "Edsger Dijkstra"), ("barbara", "Barbara Liskov"), ("ken", "Ken Thompson"),
    ("margaret", "Margaret Hamilton"), ("linus", "Linus Torvalds"),
]  # fmt: skip
CUSTOMERS: Final = ["jane.doe", "john.smith", "maria.garcia", "wei.zhang", "amara.okafor"]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Scenario:
    """Stories of audit events, one per :meth:`next` call."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - a demo's variety, not a secret
        self.versions = {s: f"v1.{self._rng.randrange(10, 40)}.0" for s in LIVE_SERVICES}
        self.first_request: str | None = None

    def _person(self) -> dict[str, Any]:
        login, name = self._rng.choice(PEOPLE)
        return {"id": f"u-{login}", "type": "user", "name": name,
                "email": f"{login}@example.com"}  # fmt: skip

    def _ip(self) -> str:
        return f"203.0.113.{self._rng.randrange(2, 250)}"

    def _event(
        self,
        service: str,
        action: str,
        category: str,
        actor: dict[str, Any],
        *,
        outcome: str = "success",
        at: datetime,
        context: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "time": _stamp(at),
            "service": service,
            "environment": "prod" if self._rng.random() < 0.9 else "staging",
            "action": action,
            "category": category,
            "outcome": outcome,
            "actor": actor,
            "context": {
                "version": self.versions[service],
                "host": f"{service}-{self._rng.randrange(3)}",
                **(context or {}),
            },
        }
        event.update({k: v for k, v in extra.items() if v is not None})
        return event

    def next(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """One story, its events timed from ``now`` on."""
        now = now or datetime.now(UTC)
        roll = self._rng.random()
        if roll < 0.45:
            return self.request(now)
        if roll < 0.65:
            return self.login(now)
        if roll < 0.72:
            return self.brute_force(now)
        if roll < 0.82:
            return self.secret_read(now)
        if roll < 0.90:
            return self.permission_change(now)
        return self.deploy(now)

    def request(self, now: datetime) -> list[dict[str, Any]]:
        """A payment crossing five services, one request and trace id."""
        person = self._person()
        customer = self._rng.choice(CUSTOMERS)
        request_id = secrets.token_hex(8)
        trace_id = secrets.token_hex(16)
        if self.first_request is None:
            self.first_request = request_id
        failed = self._rng.random() < 0.08
        amount = round(self._rng.uniform(5, 900), 2)
        invoice = f"inv-{self._rng.randrange(10**6):06d}"
        source = {"ip": self._ip(), "user_agent": "Mozilla/5.0 (Macintosh) Safari/605.1"}
        hops = [
            ("gateway", "http.request", "data_access", "gateway.routes.checkout", {}),
            ("auth", "token.verify", "authentication", "auth.tokens.verify", {}),
            ("payments", "payment.capture", "data_access", "payments.capture.charge",
             {"amount": amount, "currency": "EUR"}),
            ("payments", "db.query", "data_access", "payments.store.load_card",
             {"table": "cards", "customer_email": f"{customer}@example.net", "rows": 1}),
            ("billing", "invoice.create", "data_access", "billing.invoices.create",
             {"invoice": invoice, "amount": amount}),
        ]  # fmt: skip
        events = []
        at = now
        for i, (service, action, category, function, metadata) in enumerate(hops):
            at += timedelta(milliseconds=self._rng.randrange(2, 40))
            outcome = "failure" if failed and i == len(hops) - 1 else "success"
            context = {"request_id": request_id, "trace_id": trace_id,
                       "span_id": secrets.token_hex(8), "function": function}  # fmt: skip
            fields = {**metadata, "duration_ms": self._rng.randrange(1, 80)}
            event = self._event(service, action, category, person, outcome=outcome, at=at,
                                context=context, source=source, metadata=fields)  # fmt: skip
            if action == "db.query" and self._rng.random() < 0.3:
                # What a careless client sends; the scrubber takes it out before storage.
                event["metadata"]["dsn"] = "postgres://app:Tr0ub4dor&3@db.internal/payments"
            if outcome == "failure":
                event["reason"] = "card declined by issuer"
            if service in {"payments", "billing"}:
                event["target"] = {"type": "invoice", "id": invoice}
            events.append(event)
        return events

    def login(self, now: datetime) -> list[dict[str, Any]]:
        person = self._person()
        ok = self._rng.random() < 0.85
        return [self._event(
            "auth", "user.login", "authentication", person,
            outcome="success" if ok else "failure", at=now,
            source={"ip": self._ip(), "user_agent": "Mozilla/5.0 (X11; Linux) Firefox/128.0"},
            reason=None if ok else "wrong password",
            metadata={"method": "password", "mfa": ok},
        )]  # fmt: skip

    def brute_force(self, now: datetime) -> list[dict[str, Any]]:
        """Many failed logins on one account from one address, then one success."""
        login, name = self._rng.choice(PEOPLE)
        victim = {"id": f"u-{login}", "type": "user", "name": name,
                  "email": f"{login}@example.com"}  # fmt: skip
        attacker = {"ip": f"198.51.100.{self._rng.randrange(2, 250)}", "user_agent": "curl/8.5.0"}
        events = []
        for i in range(self._rng.randrange(12, 25)):
            events.append(self._event(
                "auth", "user.login", "authentication", victim, outcome="failure",
                at=now + timedelta(milliseconds=150 * i), source=attacker,
                reason="wrong password", metadata={"method": "password", "attempt": i + 1},
            ))  # fmt: skip
        if self._rng.random() < 0.5:
            events.append(self._event(
                "auth", "user.login", "authentication", victim, outcome="success",
                at=now + timedelta(seconds=4), source=attacker,
                metadata={"method": "password", "mfa": False},
            ))  # fmt: skip
        return events

    def secret_read(self, now: datetime) -> list[dict[str, Any]]:
        service = self._rng.choice(["payments", "billing", "deploy"])
        actor = {"id": f"svc-{service}", "type": "service"}
        name = self._rng.choice(["stripe-api-key", "db-password", "signing-key", "smtp-token"])
        event = self._event(
            "vault", "secret.read", "data_access", actor, at=now,
            target={"type": "secret", "id": f"prod/{service}/{name}"},
            metadata={"lease_seconds": 3600},
        )  # fmt: skip
        if self._rng.random() < 0.2:
            # A client that logs the value it read: scrubbed at ingest.
            event["metadata"]["value"] = "sk_live_" + secrets.token_hex(12)
        return [event]

    def permission_change(self, now: datetime) -> list[dict[str, Any]]:
        admin = {"id": "u-margaret", "type": "user", "name": "Margaret Hamilton",
                 "email": "margaret@example.com"}  # fmt: skip
        login, _ = self._rng.choice(PEOPLE)
        granted = self._rng.random() < 0.7
        return [self._event(
            "admin", "role.grant" if granted else "role.revoke", "admin", admin, at=now,
            target={"type": "user", "id": f"u-{login}"},
            reason="on-call rotation" if granted else "left the team",
            metadata={"role": self._rng.choice(["payments-admin", "db-reader", "deployer"])},
        )]  # fmt: skip

    def deploy(self, now: datetime) -> list[dict[str, Any]]:
        service = self._rng.choice(["payments", "billing", "auth", "gateway"])
        old = self.versions[service]
        major, minor, _ = old.lstrip("v").split(".")
        new = f"v{major}.{int(minor) + 1}.0"
        commit = secrets.token_hex(20)
        bot = {"id": "svc-ci", "type": "service"}
        context = {"commit": commit}
        start = self._event("deploy", "deploy.start", "deployment", bot, at=now,
                            target={"type": "service", "id": service}, context=context,
                            metadata={"from": old, "to": new})  # fmt: skip
        self.versions[service] = new
        finish = self._event("deploy", "deploy.finish", "deployment", bot,
                             at=now + timedelta(seconds=2), context=context,
                             target={"type": "service", "id": service},
                             metadata={"version": new, "commit": commit[:12]})  # fmt: skip
        return [start, finish]
