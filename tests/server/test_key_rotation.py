"""Key rotation and the server: ``GET /v1/vkeys``, the admin routes, and a running
server that keeps ingesting across a ``glasslog key rotate`` and signs with the new key."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import httpx

from glasslog.datadir import DataDir
from glasslog.ledger.note import Verifier, verify_checkpoint
from glasslog.ledger.vkeys import VkeyHistory
from glasslog.store import open_store
from tests.conftest import make_event
from tests.server.conftest import Site, live, signed_checkpoint


def _post(client: httpx.Client, site: Site, n: int) -> None:
    events = [make_event(service="payments") for _ in range(n)]
    answer = client.post("/v1/events", json={"events": events}, headers=site.auth("writer"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == n


def _size(site: Site) -> int:
    store = open_store(site.spec, readonly=True)
    try:
        return store.size()
    finally:
        store.close()


def test_vkeys_is_public_and_admins_rotate_and_revoke(site: Site) -> None:
    """GET /v1/vkeys needs no principal; only admin may rotate or revoke; after a
    rotation through the API the server signs with the new key."""
    with site.client() as client:
        _post(client, site, 3)
        signed_checkpoint(client, 3)
        first = client.get("/v1/vkeys")
        assert first.status_code == 200
        old = client.get("/v1/vkey").text.strip()
        assert [k["vkey"] for k in first.json()["keys"]] == [old]
        assert first.json()["origin"] == "test.example/server"

        refused = client.post("/v1/vkeys/rotate", headers=site.auth("dev"))
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert client.post("/v1/vkeys/rotate").status_code == 401

        rotated = client.post("/v1/vkeys/rotate", headers=site.auth("admin"))
        assert rotated.status_code == 200, rotated.text
        body: dict[str, Any] = rotated.json()
        assert body["previous"] == old and body["at_size"] == 3
        new = body["vkey"]
        assert client.get("/v1/vkey").text.strip() == new
        history = VkeyHistory.from_json(client.get("/v1/vkeys").json())
        assert history.vkeys() == [old, new]

        _post(client, site, 2)
        note = signed_checkpoint(client, 6)  # 3, the key.rotate event, 2
        assert verify_checkpoint(note, verifier=Verifier.from_vkey(new)).size >= 6
        assert history.trusting(old).verify_checkpoint(note).size >= 6

        both = {"vkey": old, "after_size": 1, "from": "2026-01-01T00:00:00Z", "reason": "x"}
        assert (
            client.post("/v1/vkeys/revoke", json=both, headers=site.auth("admin")).status_code
            == 400
        )
        itself = {"vkey": new, "after_size": 1, "reason": "x"}
        answer = client.post("/v1/vkeys/revoke", json=itself, headers=site.auth("admin"))
        assert answer.status_code == 400 and "rotate first" in answer.json()["detail"]
        stranger = {"vkey": "x.example/log+00000000+AAAA", "after_size": 1, "reason": "x"}
        answer = client.post("/v1/vkeys/revoke", json=stranger, headers=site.auth("admin"))
        assert answer.status_code in (400, 409), answer.text
        revoke = {"vkey": old, "after_size": 3, "reason": "retired laptop"}
        assert (
            client.post("/v1/vkeys/revoke", json=revoke, headers=site.auth("dev")).status_code
            == 403
        )
        answer = client.post("/v1/vkeys/revoke", json=revoke, headers=site.auth("admin"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["revoked_after"] == 3
        (first_key, _) = client.get("/v1/vkeys").json()["keys"]
        assert first_key["revoked_after"] == 3 and first_key["revocation"]


def test_serve_keeps_ingesting_across_a_cli_rotation(site: Site) -> None:
    """Events posted before, during and after `glasslog key rotate` (another process)
    are all accepted; the server's later checkpoints carry the new key only."""
    old = DataDir(site.data).vkey()
    failures: list[str] = []
    stop = threading.Event()
    with live(site) as url, httpx.Client(base_url=url, timeout=30) as client:
        _post(client, site, 5)
        signed_checkpoint(client, 5)

        def keep_posting() -> None:
            with httpx.Client(base_url=url, timeout=30) as poster:
                while not stop.is_set():
                    events = [make_event(service="payments") for _ in range(3)]
                    answer = poster.post("/v1/events", json={"events": events},
                                         headers=site.auth("writer"))  # fmt: skip
                    if answer.status_code != 200 or answer.json()["accepted"] != 3:
                        failures.append(answer.text)
                    time.sleep(0.02)

        poster = threading.Thread(target=keep_posting)
        poster.start()
        try:
            time.sleep(0.3)
            store = [] if site.store is None else ["--store", site.store]
            rotate = subprocess.run(
                [sys.executable, "-m", "glasslog", "key", "rotate", "--data", str(site.data),
                 *store],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert rotate.returncode == 0, rotate.stderr
            new = rotate.stdout.strip()
            time.sleep(0.3)
        finally:
            stop.set()
            poster.join(timeout=60)
        assert failures == []
        _post(client, site, 2)
        size = _size(site)
        note = signed_checkpoint(client, size)
        assert client.get("/v1/vkey").text.strip() == new != old
        history = VkeyHistory.from_json(client.get("/v1/vkeys").json()).trusting(old)
    assert verify_checkpoint(note, verifier=Verifier.from_vkey(new)).size == size
    handover = history.era(new).from_size
    stored = open_store(site.spec, readonly=True)
    try:
        notes = stored.checkpoints()
    finally:
        stored.close()
    for checkpoint in notes:
        opened = history.verify_checkpoint(checkpoint.note)
        signer = old if opened.size <= handover else new
        verify_checkpoint(checkpoint.note, verifier=Verifier.from_vkey(signer))
    assert any(c.size > handover for c in notes)
    store_args = [] if site.store is None else ["--store", site.store]
    verified = subprocess.run(
        [sys.executable, "-m", "glasslog", "verify", "--data", str(site.data), *store_args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "intact" in verified.stdout
