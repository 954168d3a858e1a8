"""``glasslog demo``: a server on the embedded store, four roles, and a live stream.

In a minute it should show why glasslog exists. It serves the HTTP API, writes a
policy with four roles and prints a key for each, then feeds a realistic stream
(:mod:`glasslog.scenario`) through the API, as applications would, until
``--duration`` ends or Ctrl-C. The commands it prints show the same data through
different roles: a search, a trace across services, a live tail, and the same
search as ``payments-dev``, with the personal data masked.

The demo owns its data directory (``glasslog-demo`` by default). Its policy is
replaced on every run, and every run makes new keys; the old ones stay valid.
"""

from __future__ import annotations

import getpass
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import uvicorn

from glasslog.access.keys import make_key
from glasslog.datadir import DataDir
from glasslog.errors import ConfigError
from glasslog.identity import initialise
from glasslog.scenario import Scenario
from glasslog.server.app import create_app
from glasslog.server.run import TailingServer
from glasslog.server.service import Service, ServiceConfig
from glasslog.store import open_store

__all__ = ["DEMO_POLICY", "ROLES", "run_live_demo"]

ROLES: Final = ("admin", "auditor", "payments-dev", "oncall")

DEMO_POLICY: Final = """\
# glasslog demo policy: four roles over the same events (docs/access.md).

# Everything, and every operation.
[roles.admin]
permissions = ["admin"]
services    = ["*"]
actions     = ["*"]

# Reads everything, including who read what (audit.read events), and nothing else.
[roles.auditor]
permissions = ["search", "get", "aggregate", "trace", "tail", "proof", "export"]
services    = ["*"]
actions     = ["*"]

# A payments developer: the payments and billing services only, personal data masked.
[roles.payments-dev]
permissions = ["search", "get", "aggregate", "trace", "tail", "proof"]
services    = ["payments", "billing"]
actions     = ["*"]
mask        = ["/actor/name", "/actor/email", "/source/ip", "/metadata/customer_email"]
hide        = ["/source/user_agent"]

# On call: the last 7 days of every service, and no personal data.
[roles.oncall]
permissions = ["search", "get", "aggregate", "trace", "tail"]
services    = ["*"]
actions     = ["*"]
max_age     = "7d"
mask        = ["/actor/name", "/actor/email", "/source/ip", "/metadata/customer_email"]
hide        = ["/source/user_agent"]
"""

FEED_INTERVAL: Final = 0.5
"""Seconds between the feeder's batches."""
STORIES: Final = 3
"""Stories per batch (about 20 events a second): the stream reads as live, not a flood."""


def _make_keys(datadir: DataDir) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A new key per role, stored hashed; and the key.create events that record them."""
    store = open_store(datadir.store_spec(None))
    keys: dict[str, str] = {}
    events: list[dict[str, Any]] = []
    owner = {"id": f"owner:{getpass.getuser()}", "type": "user"}
    try:
        for role in ROLES:
            made = make_key(role=role, name=f"demo {role}", expires=None)
            store.add_api_key(made.stored)
            keys[role] = made.text
            events.append({
                "service": "glasslog", "action": "key.create", "category": "audit",
                "outcome": "success", "actor": owner,
                "target": {"type": "api_key", "id": made.stored.id},
                "metadata": {"role": role, "name": f"demo {role}"},
            })  # fmt: skip
    finally:
        store.close()
    return keys, events


def _start(service: Service, host: str, port: int) -> tuple[TailingServer, threading.Thread]:
    server = TailingServer(
        uvicorn.Config(create_app(service), host=host, port=port, log_level="warning",
                       timeout_graceful_shutdown=5),
        service,
    )  # fmt: skip
    thread = threading.Thread(target=server.run, name="glasslog-demo-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise ConfigError(
                f"could not serve on {host}:{port} (is the port in use?); give another --port"
            )
        time.sleep(0.02)
    return server, thread


def run_live_demo(
    data: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8433,
    duration: float | None = None,
    echo: Callable[[str], None],
) -> int:
    """Serve and feed until ``duration`` seconds pass or Ctrl-C; return the events fed."""
    initialise(data, store=None, origin=None)
    datadir = DataDir(data)
    datadir.replace_policy(DEMO_POLICY)
    keys, key_events = _make_keys(datadir)
    service = Service(ServiceConfig(data=data, rate=1000.0, burst=2000))
    server, thread = _start(service, host, port)
    url = f"http://{host}:{server.config.port}"
    scenario = Scenario()
    fed = 0
    # SIGTERM (a supervisor, `timeout`) stops the demo as Ctrl-C does: gracefully.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        with httpx.Client(base_url=url, timeout=30, headers=admin) as client:
            fed += _post(client, key_events)
            first = scenario.request(datetime.now(UTC))
            fed += _post(client, first)
            _banner(echo, url, data, keys, scenario.first_request or "")
            started = time.monotonic()
            while duration is None or time.monotonic() - started < duration:
                batch: list[dict[str, Any]] = []
                for _ in range(STORIES):
                    batch += scenario.next()
                fed += _post(client, batch)
                time.sleep(FEED_INTERVAL)
    except KeyboardInterrupt:
        echo("")
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.should_exit = True
        thread.join(timeout=30)
    echo(f"stopped: {fed:,} events fed and signed into {data}. "
         f"`glasslog verify --data {data}` checks every one.")  # fmt: skip
    return fed


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _post(client: httpx.Client, events: list[dict[str, Any]]) -> int:
    answer = client.post("/v1/events", json={"events": events})
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return int(result["accepted"])


def _banner(
    echo: Callable[[str], None], url: str, data: Path, keys: dict[str, str], request_id: str
) -> None:
    echo(f"glasslog demo: serving {url} from {data} (embedded SQLite)\n")
    echo("API keys, one per role (shown once; the store keeps only their hashes):")
    notes = {
        "admin": "everything",
        "auditor": "reads everything, including who read what",
        "payments-dev": "payments and billing only; personal data masked",
        "oncall": "every service, the last 7 days; no personal data",
    }
    for role in ROLES:
        echo(f"  {role:13} {keys[role]}\n  {'':13} {notes[role]}")
    names = {role: role.upper().replace("-", "_") for role in ROLES}
    echo(f"\nOpen {url}/ in a browser and sign in with one of these keys (the web UI).")
    echo("\nOr try, in another terminal:")
    echo(f"  export GLASSLOG_URL={url}")
    for role in ROLES:
        echo(f"  export {names[role]}={keys[role]}")
    echo("")
    echo("  glasslog search 'action:user.login outcome:failure' --key $ADMIN")
    echo(f"  glasslog trace {request_id} --key $ADMIN")
    echo("  glasslog tail 'service:payments' --key $PAYMENTS_DEV")
    echo("  glasslog search 'action:db.query' --json --key $PAYMENTS_DEV   # emails masked")
    echo("  glasslog search 'service:glasslog action:audit.read' --key $AUDITOR")
    echo("\nFeeding a live stream: requests across services, logins and now and then a "
         "brute-force burst, secret reads, permission changes, deploys. Ctrl-C stops.")  # fmt: skip
