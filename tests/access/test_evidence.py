"""Masked events stay verifiable (issue 10 §4): evidence, and the attacks on it."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from glasslog.access.enforce import AccessDenied, Principal, Reader, owner_evidence
from glasslog.access.evidence import verify_evidence
from glasslog.access.policy import check_policy
from glasslog.errors import IntegrityError, NotFoundError
from glasslog.testing import TemporaryLog
from tests.conftest import make_event
from tests.test_cli import run

POLICY = """\
[roles.dev]
permissions = ["get", "proof"]
services = ["payments"]
actions = ["*"]
mask = ["/actor/email", "/source/ip"]
hide = ["/metadata/table"]

[roles.nosy]
permissions = ["get"]
services = ["*"]
actions = ["*"]
"""


def _reader(tlog: TemporaryLog, role: str) -> Reader:
    roles = check_policy(POLICY).roles
    return Reader(tlog.log, Principal(id="key:t", name="t", kind="service", roles=(roles[role],)))


@pytest.fixture
def logged(tlog: TemporaryLog) -> TemporaryLog:
    tlog.submit([make_event(service=["payments", "auth"][i % 2]) for i in range(20)])
    tlog.checkpoint()
    return tlog


def test_a_masked_event_verifies_without_its_masked_values(logged: TemporaryLog) -> None:
    """On both backends: the evidence holds no masked or hidden value, and verifies."""
    stored = logged.log.get("4")
    evidence = _reader(logged, "dev").evidence("4")
    assert set(evidence) == {"seq", "event", "salts", "hidden", "proof", "checkpoint"}
    assert "seq" not in evidence["event"], "the event hashes as logged: nothing added"
    assert set(evidence["event"]["actor"]["email"]) == {"$commit"}
    assert "table" not in evidence["event"]["metadata"]
    assert set(evidence["hidden"]) == {"/metadata/table"}
    assert "/actor/email" not in evidence["salts"] and "/metadata/rows" in evidence["salts"]
    text = json.dumps(evidence)
    for secret in (stored["actor"]["email"], stored["source"]["ip"], stored["metadata"]["table"]):
        assert json.dumps(secret) not in text
    verified = verify_evidence(evidence, logged.datadir.verifier())
    assert (verified.seq, verified.tree_size) == (4, 20)
    assert verified.summary().startswith("Included at seq 4 in the log of size 20; checkpoint")


def test_changing_any_character_of_the_evidence_fails(logged: TemporaryLog) -> None:
    """Every single-character change to the evidence text is refused (or is not JSON)."""
    verifier = logged.datadir.verifier()
    text = json.dumps(_reader(logged, "dev").evidence("4"), separators=(",", ":"))
    passed = []
    for i, char in enumerate(text):
        other = "B" if char == "A" else "A" if not char.isdigit() else str((int(char) + 1) % 10)
        forged = text[:i] + other + text[i + 1 :]
        try:
            verify_evidence(json.loads(forged), verifier)
        except (ValueError, IntegrityError):
            continue
        passed.append((i, text[max(0, i - 10) : i + 10]))
    assert passed == []


def test_owner_evidence_has_every_field_in_clear(logged: TemporaryLog) -> None:
    evidence = owner_evidence(logged.log, "3")
    assert evidence["hidden"] == {}
    assert evidence["event"] == {k: v for k, v in logged.log.get("3").items() if k != "seq"}
    assert verify_evidence(evidence, logged.datadir.verifier()).seq == 3


def test_evidence_follows_the_role(logged: TemporaryLog) -> None:
    """Out of scope is not found; without the proof permission it is refused."""
    with pytest.raises(NotFoundError, match="no event with seq 5"):
        _reader(logged, "dev").evidence("5")  # auth
    with pytest.raises(AccessDenied, match="may not proof"):
        _reader(logged, "nosy").evidence("4")


def test_wrong_key_and_wrong_structure_are_named(logged: TemporaryLog) -> None:
    from glasslog.ledger.note import Signer, Verifier

    evidence: dict[str, Any] = _reader(logged, "dev").evidence("4")
    other = Verifier.from_vkey(Signer.generate(name="vm/other").vkey)
    with pytest.raises(IntegrityError, match="verification failed: the checkpoint"):
        verify_evidence(evidence, other)
    with pytest.raises(IntegrityError, match="exactly the keys"):
        verify_evidence({**evidence, "extra": 1}, logged.datadir.verifier())
    moved = json.loads(json.dumps(evidence))
    moved["hidden"]["/metadata/rows"] = moved["hidden"].pop("/metadata/table")
    with pytest.raises(IntegrityError, match="is hidden, yet the event has it"):
        verify_evidence(moved, logged.datadir.verifier())


def test_the_get_proof_and_verify_event_commands(tmp_path: Path) -> None:
    data = tmp_path / "log"

    glasslog = partial(run, data=data)

    assert glasslog("init").returncode == 0
    (data / "policy.toml").write_text(
        '[roles.admin]\npermissions=["admin"]\nservices=["*"]\nactions=["*"]\n' + POLICY
    )
    lines = "".join(json.dumps(make_event()) + "\n" for _ in range(3))
    assert glasslog("ingest", "-", stdin=lines).returncode == 0
    key = json.loads(glasslog("keys", "create", "--role", "dev", "--json").stdout)["key"]
    evidence = glasslog("get", "1", "--proof", "--json", "--key", key)
    assert evidence.returncode == 0, evidence.stderr
    assert "$commit" in evidence.stdout
    checked = glasslog("verify-event", "-", stdin=evidence.stdout)
    assert checked.returncode == 0 and checked.stdout.startswith("Included at seq 1 in the log")
    forged = evidence.stdout.replace('"u-', '"x-')
    refused = glasslog("verify-event", "-", "--json", stdin=forged)
    assert refused.returncode == 1
    assert json.loads(refused.stdout.splitlines()[0])["verified"] is False
    assert "verification failed" in refused.stderr


def test_inclusion_and_consistency_proofs_follow_the_role(logged: TemporaryLog) -> None:
    """An inclusion proof is for an event in scope and carries no leaf (its content); a
    consistency proof needs the proof permission only."""
    reader = _reader(logged, "dev")
    proof = reader.inclusion(4)
    assert "leaf" not in proof and proof["tree_size"] == 20
    owner = logged.log.inclusion(4)
    assert {k: v for k, v in owner.items() if k != "leaf"} == proof
    with pytest.raises(NotFoundError, match=r"^no event with seq 5$"):
        reader.inclusion(5)  # auth: out of scope
    assert reader.consistency(10, 20)["size2"] == 20
    with pytest.raises(AccessDenied, match="may not proof"):
        _reader(logged, "nosy").consistency(10, 20)
