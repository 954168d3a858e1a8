"""The CLI against a server (issue 11 §1 "the same output everywhere"): every read
command prints the same with ``--url URL --key K`` as on the local store with
``--key K``; ``ingest --url`` sends batches and prints the same summary; ``tail``
follows the server's stream and the local store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from glasslog.log import Log
from tests.conftest import make_event
from tests.processes import start
from tests.server.conftest import Site, live
from tests.server.test_process import serving
from tests.test_cli import run as glasslog


def _cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return glasslog(*args, data=data)


def _events(n: int) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for i in range(n):
        service = "payments" if i % 3 else "billing-eu"
        context = {"request_id": f"req-{i // 4}", "trace_id": f"{i // 4:032x}"}
        events.append(make_event(service=service, action=f"act.{i % 5}", context=context))
    return events


def test_reads_print_the_same_from_a_server_and_from_the_store(
    sqlite_site: Site, tmp_path: Path
) -> None:
    site = sqlite_site
    events = _events(60)
    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in events) + "not json\n")
    with serving(site, uuid.uuid4().hex) as (_, url):
        sent = _cli(
            "ingest", str(lines), "--url", url, "--key", site.keys["writer"], data=site.data
        )
        assert sent.returncode == 2, sent.stderr  # one line refused, the rest stored
        summary = json.loads(sent.stdout)
        assert summary["accepted"] == 60 and summary["duplicates"] == 0
        assert [r["line"] for r in summary["rejected"]] == [61]
        again = _cli("ingest", str(lines), "--url", url, "--key", site.keys["writer"],
                     data=site.data)  # fmt: skip
        assert json.loads(again.stdout)["duplicates"] == 60, "resent: idempotent by id"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with Log.open(site.data) as log:
                latest = log.store.latest_checkpoint()
                if latest is not None and latest.size >= 60:
                    break
            time.sleep(0.1)
        key = site.keys["dev"]
        first = events[1]
        commands = [
            ["search", "service:payments", "--limit", "7"],
            ["search", "service:payments", "--limit", "7", "--json"],
            ["search", "act.1", "--json", "--limit", "100"],
            ["count"],
            ["count", "--json"],
            ["count", "--by", "action", "--json"],
            ["count", "--by", "actor.id"],
            ["histogram", "--json"],
            ["trace", "req-0", "--json"],
            ["trace", "req-3"],
            ["get", str(first["id"])],
            ["get", str(first["id"]), "--json"],
            ["search", "service:(", "--json"],
            ["count", "--by", "actor.email"],
            ["get", str(events[0]["id"])],  # billing-eu: out of dev's scope
        ]
        for command in commands:
            local = _cli(*command, "--key", key, data=site.data)
            remote = _cli(*command, "--url", url, "--key", key, data=site.data)
            assert (remote.returncode, remote.stdout) == (local.returncode, local.stdout), command
            assert remote.stderr.replace(url, "") == local.stderr, command
        proof = _cli("get", str(first["id"]), "--proof", "--url", url, "--key", key, data=site.data)
        evidence = json.loads(proof.stdout)
        verified = subprocess.run([sys.executable, "-m", "glasslog", "verify-event", "-", "--data",
                                   str(site.data)], input=proof.stdout, capture_output=True,
                                  text=True, check=False)  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert set(evidence["event"]["actor"]["email"]) == {"$commit"}
        seq = evidence["seq"]
        for command in (
            ["proof", "inclusion", str(seq), "--size", "60"],
            ["proof", "consistency", "1", "60"],
        ):
            local = _cli(*command, "--key", key, data=site.data)
            remote = _cli(*command, "--url", url, "--key", key, data=site.data)
            assert json.loads(remote.stdout) == json.loads(local.stdout), command
        public = _cli("proof", "consistency", "1", "60", "--url", url, data=site.data)
        assert public.returncode == 0, "consistency needs no key"
        assert _cli("vkey", "--url", url, data=site.data).stdout == _cli(
            "vkey", data=site.data).stdout  # fmt: skip
        checkpoint = json.loads(_cli("checkpoint", "--url", url, "--json", data=site.data).stdout)
        assert checkpoint["size"] >= 60 and checkpoint["origin"] == "test.example/server"
        no_key = _cli("search", "--url", url, data=site.data)
        assert no_key.returncode != 0 and "--url needs --key" in no_key.stderr


def test_tail_follows_a_server_and_the_local_store(sqlite_site: Site) -> None:
    site = sqlite_site
    mark = uuid.uuid4().hex
    with serving(site, mark) as (_, url):
        followers = [
            start("tail", "--json", "--url", url, "--key", site.keys["dev"], "--data",
                  str(site.data), mark=mark, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
            start("tail", "--json", "--key", site.keys["dev"], "--data", str(site.data),
                  mark=mark, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        ]  # fmt: skip
        time.sleep(2.0)  # both have opened their tails
        events = _events(9)
        lines = "".join(json.dumps(e) + "\n" for e in events)
        sent = subprocess.run([sys.executable, "-m", "glasslog", "ingest", "-", "--url", url,
                               "--key", site.keys["writer"]], input=lines, capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert json.loads(sent.stdout)["accepted"] == 9
        time.sleep(2.0)
        for follower in followers:
            follower.terminate()
        outputs = [f.communicate(timeout=20)[0].decode() for f in followers]
    wanted = [e["id"] for e in events if e["service"] == "payments"]
    for output in outputs:
        got = [json.loads(line) for line in output.splitlines()]
        assert [e["id"] for e in got] == wanted
        assert all(set(e["actor"]["email"]) == {"$commit"} for e in got)


def test_search_oldest_first_over_http(sqlite_site: Site) -> None:
    """--sort time (sort=time) pages oldest first through the server as locally."""
    site = sqlite_site
    with serving(site, uuid.uuid4().hex) as (_, url):
        events = _events(12)
        lines = "".join(json.dumps(e) + "\n" for e in events)
        sent = subprocess.run([sys.executable, "-m", "glasslog", "ingest", "-", "--url", url,
                               "--key", site.keys["writer"]], input=lines, capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert json.loads(sent.stdout)["accepted"] == 12
        args = ["search", "--sort", "time", "--limit", "5", "--json", "--key", site.keys["admin"]]
        remote = _cli(*args, "--url", url, data=site.data)
        local = _cli(*args, data=site.data)
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout
    assert [json.loads(line)["seq"] for line in remote.stdout.splitlines()] == [0, 1, 2, 3, 4]


def test_ingest_over_http_waits_out_429_and_stores_everything(sqlite_site: Site) -> None:
    """A server that limits the key to one request a second: every batch is retried after
    Retry-After until accepted, and the summary counts them all."""
    site = sqlite_site
    events = [make_event() for _ in range(2_500)]  # three batches of at most 1,000
    lines = "".join(json.dumps(e) + "\n" for e in events)
    with live(site, rate=1.0, burst=1) as url:
        sent = subprocess.run([sys.executable, "-m", "glasslog", "ingest", "-", "--url", url,
                               "--key", site.keys["writer"]], input=lines, capture_output=True,
                              text=True, check=False, timeout=120)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {"accepted": 2_500, "duplicates": 0, "rejected": []}
    with Log.open(site.data) as log:
        assert log.count("service:payments").count == 2_500
