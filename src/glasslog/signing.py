"""Rotating and revoking a log's signing key (docs/ledger.md, "Key rotation").

The CLI (``glasslog key``) and the server (``POST /v1/vkeys/rotate`` and ``/revoke``)
share these functions; each records the ``key.rotate`` or ``key.revoke`` lifecycle
event itself, through its own writer, once the change is made.

A rotation runs under the writer locks, so no writer signs while the key changes
hands: the old key first signs the tree as it stands (the handover size then has a
checkpoint of its own, and proofs can span it), the new key is staged in the data
directory, the history with the rotation statement both keys signed is appended to
the store's ``meta`` rows, and only then does the data directory switch keys. A
crash anywhere leaves either the old history and the old key, or the new history and
a staged key that the next writer switches in (``glasslog.identity.finish_rotation``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from glasslog.datadir import DataDir
from glasslog.errors import ConfigError, InputError, NotFoundError
from glasslog.event import format_time, parse_time
from glasslog.identity import check_signer, finish_rotation, history_trusting, vkey_history
from glasslog.ingest.pipeline import Sequencer
from glasslog.ledger.note import Signer
from glasslog.ledger.vkeys import VkeyHistory
from glasslog.lifecycle import lifecycle_event
from glasslog.store import open_store
from glasslog.store.base import Store, StoredEvent

__all__ = [
    "Revocation",
    "Rotation",
    "revoke_event",
    "revoke_key",
    "rotate_event",
    "rotate_key",
    "size_at",
    "trusted_keys",
]


@dataclass(frozen=True, slots=True)
class Rotation:
    """What ``glasslog key rotate`` did."""

    previous: str
    """The vkey that signed up to ``at_size``."""
    current: str
    """The vkey that signs from ``at_size`` on."""
    at_size: int
    archived: Path
    """Where the data directory keeps the previous signing key (owner-only)."""
    history: VkeyHistory

    def to_json(self) -> dict[str, Any]:
        return {
            "previous": self.previous,
            "vkey": self.current,
            "at_size": self.at_size,
            "archived": str(self.archived),
            "keys": len(self.history.eras),
        }


@dataclass(frozen=True, slots=True)
class Revocation:
    """What ``glasslog key revoke`` did."""

    vkey: str
    after_size: int
    time: str
    history: VkeyHistory

    def to_json(self) -> dict[str, Any]:
        return {"vkey": self.vkey, "revoked_after": self.after_size, "revoked_at": self.time}


def _append(store: Store, history: VkeyHistory) -> None:
    """Append ``history`` as the store's next version of the key history."""
    store.add_vkey_record(
        len(store.vkey_records()) + 1, json.dumps(history.to_json(), ensure_ascii=False)
    )


def rotate_key(datadir: DataDir, store: Store) -> Rotation:
    """Hand the log from the data directory's key to a new one, from the tree's size on.

    Takes the writer locks itself: call it holding none. ``store`` must be writable
    (on PostgreSQL, the schema owner's DSN: ``meta`` is the owner's).
    """
    with datadir.writer_lock(), store.lock_writer():
        history = vkey_history(store)
        finish_rotation(datadir, history)  # an earlier rotation a crash interrupted
        old = datadir.signer()
        history = check_signer(store, old, data=datadir.path, history=history)
        # The old key signs the tree as it stands: the handover size gets a checkpoint
        # of its own, signed by the key whose era ends there.
        signed = Sequencer(store, old, datadir=datadir).checkpoint()
        new = Signer.generate(name=old.name)
        datadir.stage_key(new)
        try:
            rotated = history.rotate(old, new, at_size=signed.size)
            _append(store, rotated)
        except BaseException:
            datadir.discard_staged_key()
            raise
        archived = datadir.switch_key()
    return Rotation(
        previous=old.vkey, current=new.vkey, at_size=signed.size, archived=archived, history=rotated
    )


def revoke_key(
    datadir: DataDir, store: Store, vkey: str, *, after_size: int, now: datetime | None = None
) -> Revocation:
    """Refuse ``vkey``'s checkpoints above ``after_size``, signed by the current key.

    Checkpoints already stored that the revoked key signed past ``after_size`` make
    ``verify`` fail from then on: that is the point when the key leaked, and the
    message says which. ``after_size`` below the key's first size is raised to it.
    """
    time = format_time(now or datetime.now(UTC))
    with datadir.writer_lock(), store.lock_writer():
        history = vkey_history(store)
        finish_rotation(datadir, history)
        signer = datadir.signer()
        history = check_signer(store, signer, data=datadir.path, history=history)
        if vkey == signer.vkey:
            raise InputError(
                f"{vkey} is the current key; rotate first (`glasslog key rotate`), then "
                "revoke it: a key cannot revoke itself"
            )
        revoked = history.revoke(vkey, after_size=after_size, time=time, signer=signer)
        _append(store, revoked)
    era = revoked.era(vkey)
    assert era.revoked_after is not None  # just revoked
    return Revocation(vkey=vkey, after_size=era.revoked_after, time=time, history=revoked)


def size_at(store: Store, when: str) -> int:
    """The tree size the log had reached at ``when`` (RFC 3339): events received by then.

    Checkpoints carry no time, so the stored evidence of when the tree grew is each
    event's ``received`` stamp, set by the server that took it in, and seqs are given
    in the order events arrive. A binary search over the seqs finds the first event
    received after ``when``; the size is its seq (every event before it had arrived).
    A pruned event has no row: the search steps to the next stored one.
    """
    try:
        limit = parse_time(when)
    except ValueError as exc:
        raise InputError(f"--from: {exc}") from None
    low, high = 0, store.size()
    while low < high:
        middle = (low + high) // 2
        stamp = _received(store, middle, high)
        if stamp is None or stamp > limit:
            high = middle
        else:
            low = middle + 1
    return low


def _received(store: Store, seq: int, end: int) -> datetime | None:
    """The ``received`` time of the first stored event at or after ``seq`` (before ``end``)."""
    try:
        found: StoredEvent | None = store.get(seq)
    except NotFoundError:
        found = next(iter(store.events(seq, end)), None)
    if found is None:
        return None
    text = json.loads(found.body).get("received")
    if not isinstance(text, str):
        raise ConfigError(f"event {found.seq} has no received time; cannot map --from to a size")
    return parse_time(text)


def rotate_event(rotation: Rotation, actor: dict[str, str]) -> dict[str, Any]:
    """The ``key.rotate`` lifecycle event recording ``rotation`` (public keys only)."""
    return lifecycle_event(
        "key.rotate",
        actor,
        target={"type": "vkey", "id": rotation.current},
        metadata={
            "previous": rotation.previous,
            "vkey": rotation.current,
            "at_size": rotation.at_size,
        },
    )


def revoke_event(revocation: Revocation, actor: dict[str, str], reason: str) -> dict[str, Any]:
    """The ``key.revoke`` lifecycle event recording ``revocation``."""
    return lifecycle_event(
        "key.revoke",
        actor,
        reason=reason,
        target={"type": "vkey", "id": revocation.vkey},
        metadata={
            "vkey": revocation.vkey,
            "revoked_after": revocation.after_size,
            "revoked_at": revocation.time,
        },
    )


def trusted_keys(
    datadir: DataDir, *, vkey: str | None, history_text: str | None, store: str | None = None
) -> VkeyHistory:
    """The key history to check checkpoints with, anchored at a key the caller trusts.

    The history is ``history_text`` when given (``GET /v1/vkeys``, ``glasslog key
    history --json``, a bundle's ``vkeys.json``), else the data directory's store's,
    else ``vkey`` alone. The trusted key is ``vkey`` (pinned out of band), else the
    data directory's; it must be in the history, whose statements link every other
    key to it. Raises :class:`NoteError` when it is not, or the history is forged.
    """
    if history_text is not None:
        try:
            history = VkeyHistory.from_json(json.loads(history_text))
        except ValueError as exc:
            raise InputError(f"--vkeys: not JSON: {exc}") from None
    elif vkey is not None and not datadir.exists():
        history = VkeyHistory.single(vkey)
    else:
        datadir.require()
        return _stored_history(datadir, store, vkey or datadir.vkey())
    return history.trusting(vkey or datadir.vkey())


def _stored_history(datadir: DataDir, store: str | None, trusted: str) -> VkeyHistory:
    """The history in the data directory's store; the trusted key alone without a store."""
    if store is None and not datadir.db.exists():  # keys copied without the database
        return VkeyHistory.single(trusted)
    opened = open_store(datadir.store_spec(store), readonly=True)
    try:
        return history_trusting(opened, trusted)
    finally:
        opened.close()
