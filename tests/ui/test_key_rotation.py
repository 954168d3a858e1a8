"""verify.js in the real browser across a key rotation: with the history of GET /v1/vkeys,
evidence signed by the old key still verifies, and an old key signing past its
handover, or a history whose statement one key alone signed, is refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

from glasslog.ledger.note import Checkpoint, Signer, sign_checkpoint, sign_note, verify_checkpoint
from glasslog.ledger.note import Verifier as NoteVerifier
from glasslog.ledger.vkeys import rotation_text
from tests.conftest import make_event
from tests.server.conftest import live, make_site, signed_checkpoint

VERIFY = """([evidence, vkey, history]) =>
  import('/ui/verify.js').then((m) => m.verifyEvidence(evidence, vkey, history))"""


def test_the_browser_checks_checkpoints_through_the_key_history(page: Page, tmp_path: Path) -> None:
    """Old-key evidence verifies with the history (not without it); a forged checkpoint
    or a one-key statement is refused with its reason."""
    site = make_site(tmp_path, None)
    with live(site) as url, httpx.Client(base_url=url, timeout=30) as client:
        events = [make_event(service="payments") for _ in range(3)]
        posted = client.post("/v1/events", json={"events": events}, headers=site.auth("writer"))
        assert posted.status_code == 200, posted.text
        signed_checkpoint(client, 3)
        proof = {"proof": "true"}
        before = client.get("/v1/events/1", params=proof, headers=site.auth("admin")).json()
        rotated = client.post("/v1/vkeys/rotate", headers=site.auth("admin")).json()
        old, new = rotated["previous"], rotated["vkey"]
        events = [make_event(service="payments") for _ in range(2)]
        client.post("/v1/events", json={"events": events}, headers=site.auth("writer"))
        signed_checkpoint(client, 6)
        after = client.get("/v1/events/1", params=proof, headers=site.auth("admin")).json()
        history: dict[str, Any] = client.get("/v1/vkeys").json()
        page.goto(url + "/")

        def verify(evidence: Any, vkey: str, keys: Any) -> dict[str, Any]:
            result: dict[str, Any] = page.evaluate(VERIFY, [evidence, vkey, keys])
            return result

        assert verify(before, new, history)["ok"] is True
        assert verify(after, new, history)["ok"] is True
        assert verify(after, old, history)["ok"] is True  # a verifier that pinned the old key
        refused = verify(before, new, None)
        assert refused["ok"] is False
        assert refused["reason"].startswith("the checkpoint is not signed by the log's key")

        stolen = Signer.from_skey(Path(rotated["archived"]).read_text().strip())
        cp = verify_checkpoint(after["checkpoint"], verifier=NoteVerifier.from_vkey(new))
        forged = copy.deepcopy(after)
        forged["checkpoint"] = sign_checkpoint(
            Checkpoint(origin=cp.origin, size=cp.size, root=cp.root), stolen
        )
        result = verify(forged, new, history)
        assert result["ok"] is False
        assert "which signs only sizes 0 to 3: refusing it" in result["reason"], result

        one_key = copy.deepcopy(history)
        text = rotation_text(cp.origin, 3, old, new)
        current = Signer.from_skey((site.data / "signing.key").read_text().strip())
        one_key["keys"][1]["statement"] = sign_note(text, current)
        result = verify(before, new, one_key)
        assert result["ok"] is False
        assert result["reason"] == f"the rotation to {new} is not signed by both keys", result
        result = verify(before, Signer.generate(name=cp.origin).vkey, history)
        assert result["ok"] is False and "is not in its key history" in result["reason"]
