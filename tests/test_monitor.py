"""``glasslog monitor`` against real ``glasslog serve`` processes (issue 14 §5): it follows
a log that grows, and catches a log that rewrote its history (a fork) or went back to
a smaller tree (a rollback), exiting 1."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from glasslog.datadir import DataDir
from tests.conftest import make_event
from tests.processes import start
from tests.server.conftest import Site, free_port, make_site
from tests.test_cli import run as glasslog


def ingest(data: Path, count: int, **fields: object) -> None:
    """Store ``count`` fresh events in the log at ``data`` and sign a checkpoint over them."""
    lines = "".join(json.dumps(make_event(**fields)) + "\n" for _ in range(count))
    result = glasslog("ingest", "-", "--workers", "1", data=data, stdin=lines)
    assert result.returncode == 0, result.stderr


def twin_logs(root: Path) -> tuple[Site, Site]:
    """Two stores of one log (same origin, same signing key), still empty: what one log
    that rewrote its history looks like from outside."""
    honest = make_site(root / "honest", None)
    forged = root / "forged" / "data"
    shutil.copytree(honest.data, forged)
    return honest, Site(data=forged, store=None, keys=dict(honest.keys))


@contextmanager
def serving(site: Site, log_file: Path) -> Iterator[str]:
    """``glasslog serve`` for ``site`` on a free port until the block ends; its URL."""
    port = free_port()
    with log_file.open("ab") as errors:
        process = start("serve", "--data", str(site.data), "--port", str(port),
                        "--workers", "0", mark=uuid.uuid4().hex,
                        stdout=subprocess.DEVNULL, stderr=errors)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        answering(f"{url}/readyz", process, log_file)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def answering(url: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    """Wait until ``url`` answers 200, failing with ``process``'s log if it ends first."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, log_file.read_text()[-2000:]
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.05)


def checkpoint_size(url: str) -> int:
    return int(httpx.get(f"{url}/checkpoint").text.split("\n")[1])


def wait_for_size(url: str, size: int) -> None:
    """Wait until the server's signed checkpoint covers ``size`` events."""
    deadline = time.monotonic() + 60
    while checkpoint_size(url) < size:
        assert time.monotonic() < deadline, f"no checkpoint of size {size} was signed"
        time.sleep(0.1)


def monitor(url: str, site: Site, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glasslog", "monitor", "--url", url,
         "--vkey", DataDir(site.data).vkey(), "--state", str(state)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_monitor_follows_a_log_that_grows(tmp_path: Path) -> None:
    """Across ingests the monitor exits 0, and its state (0600) advances with the log."""
    site = make_site(tmp_path, None)
    ingest(site.data, 3)
    state = tmp_path / "monitor.json"
    with serving(site, tmp_path / "serve.log") as url:
        first = monitor(url, site, state)
        assert first.returncode == 0, first.stderr
        assert "first checkpoint" in first.stdout
        assert json.loads(state.read_text())["size"] == 3
        assert stat.S_IMODE(state.stat().st_mode) == 0o600

        events = [make_event() for _ in range(4)]
        answer = httpx.post(f"{url}/v1/events", json={"events": events},
                            headers=site.auth("writer"))  # fmt: skip
        assert answer.json()["accepted"] == 4
        wait_for_size(url, 7)
        second = monitor(url, site, state)
        assert second.returncode == 0, second.stderr
        assert "grew from size 3 to 7" in second.stdout
        assert json.loads(state.read_text())["size"] == 7

        again = monitor(url, site, state)
        assert again.returncode == 0, again.stderr
        assert "unchanged at size 7" in again.stdout


@pytest.mark.parametrize(
    ("forged_size", "message"),
    [
        (5, "does not extend the one it signed before (size 3"),
        (3, "signed two different roots for size 3"),
    ],
)
def test_monitor_catches_a_log_that_rewrote_its_history(
    tmp_path: Path, forged_size: int, message: str
) -> None:
    """A log serving a history that does not extend the one it signed before (a longer
    one without a consistency proof, or another root for the same size) is a fork."""
    honest, forged = twin_logs(tmp_path)
    ingest(honest.data, 3)
    ingest(forged.data, forged_size, action="rewritten")
    state = tmp_path / "monitor.json"
    with serving(honest, tmp_path / "honest.log") as url:
        assert monitor(url, honest, state).returncode == 0
    with serving(forged, tmp_path / "forged.log") as url:
        caught = monitor(url, forged, state)
    assert caught.returncode == 1
    assert "fork" in caught.stderr
    assert message in caught.stderr
    assert json.loads(state.read_text())["size"] == 3  # the state keeps the honest view
    evidence = json.loads((tmp_path / "monitor.json.fork.json").read_text())
    assert evidence["stored"].split("\n")[1] == "3"
    assert evidence["served"].split("\n")[1] == str(forged_size)


def test_monitor_catches_a_rollback(tmp_path: Path) -> None:
    """A log that serves a smaller tree than it signed before is a rollback: exit 1."""
    older = make_site(tmp_path / "older", None)
    ingest(older.data, 2)
    honest = Site(data=tmp_path / "honest" / "data", store=None, keys=dict(older.keys))
    shutil.copytree(older.data, honest.data)
    ingest(honest.data, 3)  # the log went on from the same two events…
    state = tmp_path / "monitor.json"
    with serving(honest, tmp_path / "honest.log") as url:
        assert monitor(url, honest, state).returncode == 0
    with serving(older, tmp_path / "older.log") as url:  # …and is later served as it was
        caught = monitor(url, older, state)
    assert caught.returncode == 1
    assert "rollback" in caught.stderr
    assert "smaller tree (size 2" in caught.stderr
    assert (tmp_path / "monitor.json.rollback.json").exists()


def test_monitor_refuses_a_key_the_log_does_not_publish(tmp_path: Path) -> None:
    """A trusted vkey that is not in the log's published key history is refused."""
    site = make_site(tmp_path / "a", None)
    other = make_site(tmp_path / "b", None)
    ingest(site.data, 1)
    with serving(site, tmp_path / "serve.log") as url:
        refused = monitor(url, other, tmp_path / "monitor.json")
    assert refused.returncode == 1
    assert "not in this log's key history" in refused.stderr
    assert not (tmp_path / "monitor.json").exists()


def test_monitor_follows_the_log_across_a_key_rotation(tmp_path: Path) -> None:
    """Trusting the log's first key, the monitor accepts checkpoints the next key signed:
    that key is in the history the log publishes, introduced by the first."""
    site = make_site(tmp_path, None)
    first_key = DataDir(site.data).vkey()
    ingest(site.data, 3)
    state = tmp_path / "monitor.json"
    with serving(site, tmp_path / "before.log") as url:
        assert monitor(url, site, state).returncode == 0
    rotated = glasslog("key", "rotate", data=site.data)
    assert rotated.returncode == 0, rotated.stderr
    assert DataDir(site.data).vkey() != first_key
    ingest(site.data, 2)
    with serving(site, tmp_path / "after.log") as url:
        result = subprocess.run(
            [sys.executable, "-m", "glasslog", "monitor", "--url", url, "--vkey", first_key,
             "--state", str(state)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "grew from size 3" in result.stdout
    assert "(2 keys)" in result.stdout
