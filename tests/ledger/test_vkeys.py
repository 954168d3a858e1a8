"""The key history (glasslog.ledger.vkeys): which key may sign which tree sizes, and why
a forged or edited history is refused."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from glasslog.errors import NoteError
from glasslog.ledger.note import Checkpoint, Signer, sign_checkpoint, sign_note
from glasslog.ledger.vkeys import VkeyHistory, rotation_text

ORIGIN = "test.example/vkeys"
TIME = "2026-11-30T04:00:00.000000Z"


def _note(signer: Signer, size: int) -> str:
    root = hashlib.sha256(str(size).encode()).digest()
    return sign_checkpoint(Checkpoint(origin=ORIGIN, size=size, root=root), signer)


@pytest.fixture
def keys() -> list[Signer]:
    return [Signer.generate(name=ORIGIN) for _ in range(3)]


def test_a_log_that_never_rotated_has_one_key_for_every_size(keys: list[Signer]) -> None:
    """A single-key history opens that key's checkpoints of any size and nobody else's."""
    history = VkeyHistory.single(keys[0].vkey)
    assert history.verify_checkpoint(_note(keys[0], 0)).size == 0
    assert history.verify_checkpoint(_note(keys[0], 10**6)).size == 10**6
    with pytest.raises(NoteError, match="not signed by any key of the log"):
        history.verify_checkpoint(_note(keys[1], 5))


def test_rotation_splits_the_sizes_between_the_keys(keys: list[Signer]) -> None:
    """After a rotation at 10 the old key signs up to 10, the new key from 10 on."""
    old, new = keys[0], keys[1]
    history = VkeyHistory.single(old.vkey).rotate(old, new, at_size=10)
    assert history.vkeys() == [old.vkey, new.vkey]
    assert history.current.vkey == new.vkey
    assert history.verify_checkpoint(_note(old, 3)).size == 3
    assert history.verify_checkpoint(_note(old, 10)).size == 10
    assert history.verify_checkpoint(_note(new, 10)).size == 10
    assert history.verify_checkpoint(_note(new, 11)).size == 11
    with pytest.raises(NoteError, match="signs only sizes 0 to 10: refusing it"):
        history.verify_checkpoint(_note(old, 11))
    with pytest.raises(NoteError, match="signs only sizes 10 to now"):
        history.verify_checkpoint(_note(new, 9))


def test_two_rotations_chain_three_eras(keys: list[Signer]) -> None:
    """Rotating twice gives three eras; each key signs its own range and any key anchors it."""
    history = VkeyHistory.single(keys[0].vkey).rotate(keys[0], keys[1], at_size=5)
    history = history.rotate(keys[1], keys[2], at_size=9)
    assert [(e.from_size, e.until_size) for e in history.eras] == [(0, 5), (5, 9), (9, None)]
    for signer, size in ((keys[0], 5), (keys[1], 7), (keys[2], 100)):
        assert history.verify_checkpoint(_note(signer, size)).size == size
    with pytest.raises(NoteError, match="refusing it"):
        history.verify_checkpoint(_note(keys[1], 10))
    for signer in keys:
        assert history.trusting(signer.vkey) is history
    with pytest.raises(NoteError, match="is not in this log's key history"):
        history.trusting(Signer.generate(name=ORIGIN).vkey)


def test_the_json_round_trip_keeps_every_statement(keys: list[Signer]) -> None:
    """to_json / from_json give the same history, through a JSON text."""
    history = VkeyHistory.single(keys[0].vkey).rotate(keys[0], keys[1], at_size=5)
    history = history.revoke(keys[0].vkey, after_size=3, time=TIME, signer=keys[1])
    again = VkeyHistory.from_json(json.loads(json.dumps(history.to_json())))
    assert again == history
    assert again.to_json()["origin"] == ORIGIN


def test_only_the_current_key_hands_over_to_a_fresh_key_of_the_same_log(
    keys: list[Signer],
) -> None:
    """rotate refuses a non-current old key, a key of another origin and a reused key."""
    history = VkeyHistory.single(keys[0].vkey).rotate(keys[0], keys[1], at_size=5)
    with pytest.raises(NoteError, match="only the current key"):
        history.rotate(keys[0], keys[2], at_size=6)
    with pytest.raises(NoteError, match="named after its origin"):
        history.rotate(keys[1], Signer.generate(name="other.example/log"), at_size=6)
    with pytest.raises(NoteError, match="already signed for this log"):
        history.rotate(keys[1], keys[0], at_size=6)
    with pytest.raises(NoteError, match="cannot rotate at tree size 4"):
        history.rotate(keys[1], keys[2], at_size=4)


def _forged(history: VkeyHistory, change: dict[str, Any], index: int = 1) -> dict[str, Any]:
    data = history.to_json()
    data["keys"][index].update(change)
    return data


def test_a_statement_signed_by_one_key_only_is_refused(keys: list[Signer]) -> None:
    """A history whose rotation statement lacks the old key's signature does not parse:
    holding only a new key, nobody can attach it to the log."""
    old, new, thief = keys
    history = VkeyHistory.single(old.vkey).rotate(old, new, at_size=5)
    for signers in ((new,), (old,), (thief, new)):
        text = rotation_text(ORIGIN, 5, old.vkey, new.vkey)
        forged = _forged(history, {"statement": sign_note(text, *signers)})
        with pytest.raises(NoteError, match="is not signed by"):
            VkeyHistory.from_json(forged)


def test_an_edited_history_is_refused(keys: list[Signer]) -> None:
    """Moving the handover, dropping a statement or a key is refused."""
    old, new = keys[0], keys[1]
    history = VkeyHistory.single(old.vkey).rotate(old, new, at_size=5)
    moved = history.to_json()
    moved["keys"][0]["until_size"] = 50
    moved["keys"][1]["from_size"] = 50
    with pytest.raises(NoteError, match="does not say what the history says"):
        VkeyHistory.from_json(moved)
    with pytest.raises(NoteError, match="has no rotation statement"):
        VkeyHistory.from_json(_forged(history, {"statement": None}))
    dropped = history.to_json()
    dropped["keys"][0]["until_size"] = None
    dropped["keys"].pop()
    assert VkeyHistory.from_json(dropped).current.vkey == old.vkey  # well formed, but…
    with pytest.raises(NoteError, match="is not in this log's key history"):
        VkeyHistory.from_json(dropped).trusting(new.vkey)  # …a verifier trusting new sees it
    with pytest.raises(NoteError, match="must be an object"):
        VkeyHistory.from_json([history.to_json()])


def test_a_revoked_key_is_refused_past_its_revocation(keys: list[Signer]) -> None:
    """A revoked old key still opens its checkpoints up to the revocation, not after."""
    old, new = keys[0], keys[1]
    history = VkeyHistory.single(old.vkey).rotate(old, new, at_size=10)
    revoked = history.revoke(old.vkey, after_size=4, time=TIME, signer=new)
    assert revoked.verify_checkpoint(_note(old, 4)).size == 4
    with pytest.raises(NoteError, match="was revoked after tree size 4"):
        revoked.verify_checkpoint(_note(old, 5))
    assert revoked.verify_checkpoint(_note(new, 12)).size == 12
    with pytest.raises(NoteError, match="already revoked after tree size 4"):
        revoked.revoke(old.vkey, after_size=6, time=TIME, signer=new)


def test_only_a_later_key_may_revoke(keys: list[Signer]) -> None:
    """The revoked key cannot revoke itself (nor forge a revocation), and a history
    whose revocation is not signed by a later key does not parse."""
    old, new = keys[0], keys[1]
    history = VkeyHistory.single(old.vkey).rotate(old, new, at_size=10)
    with pytest.raises(NoteError, match="by a key that took over after it"):
        history.revoke(new.vkey, after_size=12, time=TIME, signer=new)
    revoked = history.revoke(old.vkey, after_size=4, time=TIME, signer=new).to_json()
    text = f"glasslog key revocation v1\n{ORIGIN}\n{old.vkey}\n4\n{TIME}\n"
    revoked["keys"][0]["revocation"] = sign_note(text, old)
    with pytest.raises(NoteError, match="not signed by a later key"):
        VkeyHistory.from_json(revoked)
    revoked["keys"][0]["revocation"] = None
    with pytest.raises(NoteError, match="incomplete"):
        VkeyHistory.from_json(revoked)
