"""``glasslog demo`` (issue 11 §3): a served log, four roles with keys, a live stream
whose stories a person recognises, and commands that work as printed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from glasslog.event import validate
from glasslog.log import Log
from glasslog.scenario import Scenario
from tests.server.conftest import free_port


def test_the_stream_tells_every_story() -> None:
    """Each kind of story appears, every event is valid, requests share their ids."""
    scenario = Scenario(seed=3)
    stories = [scenario.next() for _ in range(400)]
    actions = Counter(e["action"] for story in stories for e in story)
    wanted = ("http.request", "payment.capture", "db.query", "invoice.create", "user.login",
              "secret.read", "role.grant", "deploy.start", "deploy.finish")  # fmt: skip
    for action in wanted:
        assert actions[action], action
    for story in stories:
        for event in story:
            validate(event)
    requests = [s for s in stories if s[0]["action"] == "http.request"]
    assert all(len({e["context"]["request_id"] for e in s}) == 1 for s in requests)
    assert all(len({e["service"] for e in s}) >= 4 for s in requests), "requests cross services"
    bursts = [s for s in stories if len(s) >= 12 and s[0]["action"] == "user.login"]
    assert bursts and all(sum(e["outcome"] == "failure" for e in s) >= 12 for s in bursts)
    deploys = [e for s in stories for e in s if e["action"] == "deploy.finish"]
    assert all(re.fullmatch(r"[0-9a-f]{40}", e["context"]["commit"]) for e in deploys)


def test_demo_serves_feeds_and_prints_commands_that_work(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    port = free_port()
    shown = subprocess.run(
        [sys.executable, "-m", "glasslog", "demo", "--data", str(data), "--port", str(port),
         "--duration", "6"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    keys = dict(re.findall(r"export ([A-Z_]+)=(glk_\S+)", out))
    assert set(keys) == {"ADMIN", "AUDITOR", "PAYMENTS_DEV", "ONCALL"}
    assert f"export GLASSLOG_URL=http://127.0.0.1:{port}" in out
    for command in ("glasslog search", "glasslog trace", "glasslog tail"):
        assert command in out
    fed = int(re.search(r"stopped: ([\d,]+) events", out).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert fed > 40

    def cli(*args: str, key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "glasslog", *args, "--data", str(data),
                               "--key", keys[key]], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    masked = cli("search", "action:db.query", "--json", "--limit", "20", key="PAYMENTS_DEV")
    events = [json.loads(line) for line in masked.stdout.splitlines()]
    assert events and {e["service"] for e in events} <= {"payments", "billing"}
    assert all(set(e["actor"]["email"]) == {"$commit"} for e in events)
    assert all(set(e["metadata"]["customer_email"]) == {"$commit"} for e in events)
    request = re.search(r"glasslog trace (\S+)", out).group(1)  # type: ignore[union-attr]
    trace = cli("trace", request, "--json", key="ADMIN")
    assert len({json.loads(line)["service"] for line in trace.stdout.splitlines()}) >= 4
    with Log.open(data) as log:
        size = log.store.size()
        assert size >= fed
        bodies = [stored.body for stored in log.store.events(0, size)]
    assert not [b for b in bodies if "Tr0ub4dor" in b or "sk_live_" in b], "the scrubber ran"
    verified = subprocess.run([sys.executable, "-m", "glasslog", "verify", "--data", str(data)],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_walkthrough_is_still_there(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "glasslog", "demo", "--walkthrough", "--events", "300",
         "--data", str(tmp_path / "walk")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "verified offline" in shown.stdout and "glasslog verify: intact" in shown.stdout
