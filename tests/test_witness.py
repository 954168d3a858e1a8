"""``glasslog witness serve`` as a real process (C2SP tlog-witness, issue 14 §5): it cosigns
a log's checkpoints that extend what it saw, refuses a fork and a rollback with the
spec's status codes, and keeps refusing after a restart; ``glasslog serve`` pushes its
checkpoints to it and serves the cosignatures on ``/checkpoint``, and a witness that is
down does not stop ingest."""

from __future__ import annotations

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
from glasslog.ledger.cosignature import CosignatureVerifier
from glasslog.ledger.note import Verifier, verify_checkpoint
from glasslog.log import Log
from tests.conftest import make_event, scratch_database
from tests.processes import start
from tests.server.conftest import POLICY, Site, free_port, live, make_site
from tests.test_cli import run as glasslog
from tests.test_monitor import answering, ingest, twin_logs


@contextmanager
def witness(root: Path, *logs: str) -> Iterator[tuple[str, str]]:
    """``glasslog witness serve`` trusting ``logs`` (vkeys); its URL and its vkey."""
    key = root / "witness.key"
    vkey = subprocess.run(
        [*_glasslog(), "witness", "vkey", "--key", str(key), "--name", "witness.test/w1"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    args = ["witness", "serve", "--key", str(key), "--state", str(root / "witness.json"),
            "--port", str(port)]  # fmt: skip
    for log in logs:
        args += ["--log", log]
    with (root / "witness.log").open("ab") as errors:
        process = start(*args, mark=uuid.uuid4().hex, stdout=subprocess.DEVNULL, stderr=errors)
    url = f"http://127.0.0.1:{port}"
    try:
        answering(f"{url}/healthz", process, root / "witness.log")
        yield url, vkey
    finally:
        process.terminate()
        process.wait(timeout=30)


def _glasslog() -> list[str]:
    return [sys.executable, "-m", "glasslog"]


def request(data: Path, old: int) -> bytes:
    """An add-checkpoint body for the latest checkpoint of the log at ``data``, from ``old``."""
    with Log.open(data) as log:
        note = log.latest_checkpoint().note
        size = log.latest_checkpoint().size
        proof = log.consistency(old, size)["proof"] if 0 < old < size else []
    return ("".join(f"{line}\n" for line in [f"old {old}", *proof]) + "\n" + note).encode()


def latest(data: Path) -> str:
    with Log.open(data) as log:
        return log.latest_checkpoint().note


def add(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/add-checkpoint", content=body)


def vkey_of(site: Site) -> str:
    return DataDir(site.data).vkey()


def test_witness_cosigns_a_checkpoint_that_extends_what_it_saw(tmp_path: Path) -> None:
    """A good checkpoint is cosigned (cosignature/v1, verifiable with the witness's vkey),
    then a larger one with its consistency proof; the state file is private."""
    site = make_site(tmp_path, None)
    ingest(site.data, 3)
    with witness(tmp_path, vkey_of(site)) as (url, vkey):
        first = add(url, request(site.data, 0))
        assert first.status_code == 200, first.text
        note = latest(site.data)
        [cosig] = CosignatureVerifier(vkey).cosignatures(note + first.text)
        assert cosig.name == "witness.test/w1"
        assert abs(cosig.timestamp - time.time()) < 3600

        ingest(site.data, 4)
        second = add(url, request(site.data, 3))
        assert second.status_code == 200, second.text
        grown = latest(site.data)
        assert len(CosignatureVerifier(vkey).cosignatures(grown + second.text)) == 1
    assert stat.S_IMODE((tmp_path / "witness.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "witness.key").stat().st_mode) == 0o600


def test_witness_refuses_a_log_that_rewrote_its_history(tmp_path: Path) -> None:
    """After cosigning size 3, a rewritten log's size-5 checkpoint fails its proof (422),
    and its size-3 checkpoint with another root is a conflict (409)."""
    honest, forged = twin_logs(tmp_path)
    ingest(honest.data, 3)
    ingest(forged.data, 3, action="rewritten")
    same_size = request(forged.data, 3)
    ingest(forged.data, 2, action="rewritten")
    with witness(tmp_path, vkey_of(honest)) as (url, _):
        assert add(url, request(honest.data, 0)).status_code == 200
        longer = add(url, request(forged.data, 3))
        assert longer.status_code == 422
        assert "not consistent" in longer.text
        conflict = add(url, same_size)
        assert conflict.status_code == 409
        assert conflict.headers["content-type"].startswith("text/x.tlog.size")
        assert conflict.text == "3\n"


def test_witness_refuses_a_rollback_even_after_a_restart(tmp_path: Path) -> None:
    """A smaller tree is refused: 409 naming the size it holds, or 400 for an old size
    above the checkpoint's; its state survives a restart."""
    older = make_site(tmp_path / "older", None)
    ingest(older.data, 2)
    rolled_back = request(older.data, 0)
    honest = tmp_path / "honest"
    shutil.copytree(older.data, honest)
    ingest(honest, 3)
    with witness(tmp_path, vkey_of(older)) as (url, _):
        assert add(url, rolled_back).status_code == 200
        assert add(url, request(honest, 2)).status_code == 200
    with witness(tmp_path, vkey_of(older)) as (url, _):
        refused = add(url, rolled_back)
        assert refused.status_code == 409
        assert refused.text == "5\n"
        above = add(url, rolled_back.replace(b"old 0\n", b"old 5\n", 1))
        assert above.status_code == 400


def test_witness_refuses_unknown_logs_and_keys(tmp_path: Path) -> None:
    """An origin it does not know is 404; a known origin signed by another key is 403;
    a malformed body is 400."""
    site = make_site(tmp_path / "a", None)
    impostor = make_site(tmp_path / "b", None)  # same origin, another key
    other = tmp_path / "other"
    assert glasslog("init", "--origin", "other.example/log", data=other).returncode == 0
    for data in (site.data, impostor.data, other):
        ingest(data, 1)
    with witness(tmp_path, vkey_of(site)) as (url, _):
        assert add(url, request(other, 0)).status_code == 404
        assert add(url, request(impostor.data, 0)).status_code == 403
        malformed = b"old 01\n\n" + request(site.data, 0).split(b"\n\n", 1)[1]
        assert add(url, malformed).status_code == 400


def _policy(witness_url: str, witness_vkey: str) -> str:
    return POLICY + f'\n[[witness]]\nurl = "{witness_url}"\nvkey = "{witness_vkey}"\n'


def _size(note: str) -> int:
    """The size of a served checkpoint, or 0 before the first one (a 404 problem)."""
    return int(note.split("\n")[1]) if not note.startswith("{") else 0


def _cosigned(url: str, verifier: CosignatureVerifier, size: int) -> str:
    """The server's /checkpoint once it covers ``size`` and carries the witness's cosignature."""
    deadline = time.monotonic() + 60
    while True:
        note = httpx.get(f"{url}/checkpoint").text
        if _size(note) >= size and verifier.cosignatures(note):
            return note
        assert time.monotonic() < deadline, f"no cosigned checkpoint of size {size}: {note}"
        time.sleep(0.1)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The store: SQLite (None), then a scratch PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with scratch_database() as url:
        yield url


def test_server_pushes_checkpoints_and_serves_the_cosignatures(
    tmp_path: Path, backend: str | None
) -> None:
    """``glasslog serve`` with a [[witness]] sends each new checkpoint to it; /checkpoint
    then carries the cosignature, which verifies with the witness's vkey beside the log's,
    and ``verify --checkpoint`` accepts a copy of it."""
    site = make_site(tmp_path, backend)
    with witness(tmp_path, vkey_of(site)) as (witness_url, witness_vkey):
        (site.data / "policy.toml").write_text(_policy(witness_url, witness_vkey))
        verifier = CosignatureVerifier(witness_vkey)
        with live(site) as url:
            for count, size in ((2, 2), (3, 5)):
                events = [make_event() for _ in range(count)]
                answer = httpx.post(f"{url}/v1/events", json={"events": events},
                                    headers=site.auth("writer"))  # fmt: skip
                assert answer.json()["accepted"] == count
                note = _cosigned(url, verifier, size)
                checkpoint = verify_checkpoint(note, verifier=Verifier.from_vkey(vkey_of(site)))
                assert checkpoint.size >= size
                assert note.count("\n\u2014 ") == 2  # the log's signature and the witness's
    saved = tmp_path / "cosigned.note"
    saved.write_text(note)
    store = [] if backend is None else ["--store", backend]
    verified = glasslog("verify", "--checkpoint", str(saved), *store, data=site.data)
    assert verified.returncode == 0, verified.stderr  # a cosigned copy is still that checkpoint


def test_a_witness_that_is_down_does_not_stop_ingest(tmp_path: Path) -> None:
    """With its only witness unreachable, the server still stores events and signs
    checkpoints, served without a cosignature."""
    site = make_site(tmp_path, None)
    witness_vkey = CosignatureVerifier(
        subprocess.run(
            [*_glasslog(), "witness", "vkey", "--key", str(tmp_path / "w.key"),
             "--name", "witness.test/down"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    ).vkey  # fmt: skip
    down = f"http://127.0.0.1:{free_port()}"
    (site.data / "policy.toml").write_text(_policy(down, witness_vkey))
    with live(site) as url:
        for _ in range(3):
            events = [make_event() for _ in range(2)]
            answer = httpx.post(f"{url}/v1/events", json={"events": events},
                                headers=site.auth("writer"), timeout=30)  # fmt: skip
            assert answer.json()["accepted"] == 2
        deadline = time.monotonic() + 60
        while _size(httpx.get(f"{url}/checkpoint").text) < 6:
            assert time.monotonic() < deadline, "no checkpoint covers the events"
            time.sleep(0.1)
        note = httpx.get(f"{url}/checkpoint").text
    assert note.count("\n\u2014 ") == 1  # the log's own signature only
    assert verify_checkpoint(note, verifier=Verifier.from_vkey(vkey_of(site))).size == 6


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('url = "ftp://w.example"\nvkey = "x"', "http:// or https://"),
        ('url = "https://w.example"\nvkey = "w.example+00000000+AQ=="', "witness's vkey"),
        ('url = "https://w.example"\nvkey = "x"\nretries = 3', "unknown key"),
    ],
)
def test_a_bad_witness_table_is_refused_with_its_line(table: str, problem: str) -> None:
    """A [[witness]] table with a bad url, vkey or key is a policy error naming it."""
    from glasslog.access.policy import PolicyError, check_policy

    with pytest.raises(PolicyError, match=problem):
        check_policy(POLICY + f"\n[[witness]]\n{table}\n")
