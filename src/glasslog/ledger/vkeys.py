"""The history of a log's verifier keys: which key may sign checkpoints of which sizes.

A log signs its checkpoints with one Ed25519 key at a time. ``glasslog key rotate``
hands over to a new key from the current tree size on; checkpoints the old key signed
stay valid, so a verifier needs the whole history, not one vkey. The history is a
chain of *eras*, each a vkey with the range of tree sizes it may sign:

- The first era starts at size 0 and needs no statement.
- Each later era is introduced by a *rotation statement*, a C2SP signed note whose text
  names the origin, the size from which the new key signs, the previous vkey and the
  new one, signed by **both** keys. So a verifier that trusts any one key of the chain
  (pinned out of band) can follow it in both directions, and nobody holding only the
  new key can rewrite who signed before it.
- A key believed compromised is *revoked after* a tree size: its checkpoints of larger
  sizes are refused. The revocation is a signed note by a key later in the chain, so
  the holder of the compromised key cannot undo it.

The module is pure: the store keeps the history (``glasslog.identity``), the server
publishes it (``GET /v1/vkeys``), and ``verify``, ``verify-event``, ``monitor`` and
bundles read it with :meth:`VkeyHistory.from_json` and check every checkpoint with
:meth:`VkeyHistory.verify_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from glasslog.errors import NoteError
from glasslog.ledger.note import (
    Checkpoint,
    Signer,
    Verifier,
    open_note,
    sign_note,
    verify_checkpoint,
)

__all__ = ["KeyEra", "VkeyHistory", "revocation_text", "rotation_text"]

_ROTATION = "glasslog key rotation v1"
_REVOCATION = "glasslog key revocation v1"


def rotation_text(origin: str, from_size: int, previous: str, new: str) -> str:
    """Return the text both keys sign to hand the log over from ``previous`` to ``new``."""
    return f"{_ROTATION}\n{origin}\n{from_size}\n{previous}\n{new}\n"


def revocation_text(origin: str, revoked: str, after_size: int, time: str) -> str:
    """Return the text a later key signs to refuse ``revoked``'s checkpoints past a size."""
    return f"{_REVOCATION}\n{origin}\n{revoked}\n{after_size}\n{time}\n"


@dataclass(frozen=True, slots=True)
class KeyEra:
    """One verifier key and the tree sizes whose checkpoints it may sign.

    ``until_size`` is ``None`` for the current key. The old key of a rotation may also
    sign the handover size itself (its last checkpoint), so consecutive eras share
    one size.
    """

    vkey: str
    from_size: int
    until_size: int | None = None
    statement: str | None = None
    revoked_after: int | None = None
    revoked_at: str | None = None
    revocation: str | None = None

    def may_sign(self, size: int) -> bool:
        """Whether a checkpoint of ``size`` signed by this key is acceptable."""
        if size < self.from_size:
            return False
        if self.until_size is not None and size > self.until_size:
            return False
        return self.revoked_after is None or size <= self.revoked_after

    def to_json(self) -> dict[str, Any]:
        """The era as published by ``GET /v1/vkeys`` and written into bundles."""
        return {
            "vkey": self.vkey,
            "from_size": self.from_size,
            "until_size": self.until_size,
            "statement": self.statement,
            "revoked_after": self.revoked_after,
            "revoked_at": self.revoked_at,
            "revocation": self.revocation,
        }


def _origin(vkey: str) -> str:
    return vkey.split("+", 1)[0]


def _size(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise NoteError(f"vkey history: {what} must be a tree size (an integer ≥ 0), got {value!r}")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise NoteError(f"vkey history: {what} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class VkeyHistory:
    """Every key a log has signed with, oldest first; checked whenever it is built."""

    eras: tuple[KeyEra, ...]

    def __post_init__(self) -> None:
        _check_chain(self.eras)

    @classmethod
    def single(cls, vkey: str) -> VkeyHistory:
        """The history of a log that never rotated its key."""
        return cls((KeyEra(vkey=vkey, from_size=0),))

    @property
    def origin(self) -> str:
        """The log's origin, the name every key of the chain carries."""
        return _origin(self.eras[0].vkey)

    @property
    def current(self) -> KeyEra:
        """The era of the key that signs new checkpoints."""
        return self.eras[-1]

    def vkeys(self) -> list[str]:
        """Every vkey of the chain, oldest first."""
        return [era.vkey for era in self.eras]

    def era(self, vkey: str) -> KeyEra:
        """The era of ``vkey``; a key not in the chain is an error naming the chain."""
        for era in self.eras:
            if era.vkey == vkey:
                return era
        raise NoteError(
            f"verifier key {vkey} is not in this log's key history ({', '.join(self.vkeys())}); "
            "check that it is the key of this log"
        )

    def verify_checkpoint(self, note: str) -> Checkpoint:
        """Open a signed checkpoint with the key whose era covers its size.

        A checkpoint signed by a key outside its era (the old key signing after the
        handover, or a revoked key past its revocation) is refused even though its
        signature is good: that is what a stolen old key would produce.
        """
        refused: list[str] = []
        for era in reversed(self.eras):
            try:
                checkpoint = verify_checkpoint(note, verifier=Verifier.from_vkey(era.vkey))
            except NoteError:
                continue
            if era.may_sign(checkpoint.size):
                return checkpoint
            refused.append(_out_of_era(era, checkpoint.size))
        if refused:
            raise NoteError("; ".join(refused))
        raise NoteError(
            f"checkpoint is not signed by any key of the log {self.origin!r} "
            f"({', '.join(self.vkeys())})"
        )

    def revoked_signer(self, note: str) -> KeyEra | None:
        """The era of the revoked key that validly signed ``note`` past its revocation.

        Such a checkpoint is no longer trusted, but it is not evidence of tampering in
        itself: the key may have signed it honestly before anyone knew it was stolen.
        A verifier that holds the whole tree can still check its root (``verify``
        does); anyone else must refuse it (:meth:`verify_checkpoint`).
        """
        for era in self.eras:
            if era.revoked_after is None:
                continue
            try:
                checkpoint = verify_checkpoint(note, verifier=Verifier.from_vkey(era.vkey))
            except NoteError:
                continue
            within = replace(era, revoked_after=None, revoked_at=None, revocation=None)
            if within.may_sign(checkpoint.size) and not era.may_sign(checkpoint.size):
                return era
        return None

    def trusting(self, vkey: str) -> VkeyHistory:
        """This history, once ``vkey`` (a key the verifier trusts) is shown to be in it.

        Every statement links two neighbouring keys with both their signatures, so a
        chain that holds the trusted key is vouched for end to end.
        """
        self.era(vkey)
        return self

    def rotate(self, old: Signer, new: Signer, *, at_size: int) -> VkeyHistory:
        """Hand the log from ``old`` (the current key) to ``new`` from ``at_size`` on."""
        current = self.current
        if old.vkey != current.vkey:
            raise NoteError(
                f"only the current key ({current.vkey}) can hand the log over, not {old.vkey}"
            )
        if new.name != self.origin:
            raise NoteError(
                f"the new key is named {new.name!r}; a log's keys are named after its "
                f"origin {self.origin!r}"
            )
        if new.vkey in self.vkeys():
            raise NoteError(f"{new.vkey} already signed for this log; rotate to a fresh key")
        if at_size < current.from_size:
            raise NoteError(
                f"cannot rotate at tree size {at_size}: the current key signs from "
                f"{current.from_size}"
            )
        statement = sign_note(rotation_text(self.origin, at_size, old.vkey, new.vkey), old, new)
        closed = replace(current, until_size=at_size)
        added = KeyEra(vkey=new.vkey, from_size=at_size, statement=statement)
        return VkeyHistory((*self.eras[:-1], closed, added))

    def revoke(self, vkey: str, *, after_size: int, time: str, signer: Signer) -> VkeyHistory:
        """Refuse ``vkey``'s checkpoints above ``after_size``; ``signer`` must be a later key."""
        era = self.era(vkey)
        index = self.eras.index(era)
        later = self.vkeys()[index + 1 :]
        if signer.vkey not in later:
            raise NoteError(
                "a key is revoked by a key that took over after it; rotate first "
                "(`glasslog key rotate`), then revoke the old key"
            )
        if era.revoked_after is not None and era.revoked_after <= after_size:
            raise NoteError(f"{vkey} is already revoked after tree size {era.revoked_after}")
        after_size = max(after_size, era.from_size)
        revocation = sign_note(revocation_text(self.origin, vkey, after_size, time), signer)
        changed = replace(era, revoked_after=after_size, revoked_at=time, revocation=revocation)
        return VkeyHistory((*self.eras[:index], changed, *self.eras[index + 1 :]))

    def to_json(self) -> dict[str, Any]:
        """The history as ``GET /v1/vkeys`` answers it."""
        return {"origin": self.origin, "keys": [era.to_json() for era in self.eras]}

    @classmethod
    def from_json(cls, data: object) -> VkeyHistory:
        """Parse and check a published history; anything malformed or unsigned is refused."""
        if not isinstance(data, Mapping) or not isinstance(data.get("keys"), Sequence):
            raise NoteError('vkey history must be an object with a "keys" list')
        eras: list[KeyEra] = []
        for number, item in enumerate(data["keys"], start=1):
            if not isinstance(item, Mapping):
                raise NoteError(f"vkey history: key {number} must be an object")
            until = item.get("until_size")
            revoked_after = item.get("revoked_after")
            eras.append(
                KeyEra(
                    vkey=_text(item.get("vkey"), f"key {number}'s vkey"),
                    from_size=_size(item.get("from_size"), f"key {number}'s from_size"),
                    until_size=None
                    if until is None
                    else _size(until, f"key {number}'s until_size"),
                    statement=None
                    if item.get("statement") is None
                    else _text(item.get("statement"), f"key {number}'s statement"),
                    revoked_after=None
                    if revoked_after is None
                    else _size(revoked_after, f"key {number}'s revoked_after"),
                    revoked_at=None
                    if item.get("revoked_at") is None
                    else _text(item.get("revoked_at"), f"key {number}'s revoked_at"),
                    revocation=None
                    if item.get("revocation") is None
                    else _text(item.get("revocation"), f"key {number}'s revocation"),
                )
            )
        history = cls(tuple(eras))
        if "origin" in data and data["origin"] != history.origin:
            raise NoteError(
                f"vkey history names origin {data['origin']!r} but its keys are for "
                f"{history.origin!r}"
            )
        return history


def _out_of_era(era: KeyEra, size: int) -> str:
    if era.revoked_after is not None and size > era.revoked_after:
        return (
            f"checkpoint of tree size {size} is signed by {era.vkey}, which was revoked after "
            f"tree size {era.revoked_after} (at {era.revoked_at}): refusing it"
        )
    until = "now" if era.until_size is None else str(era.until_size)
    return (
        f"checkpoint of tree size {size} is signed by {era.vkey}, which signs only sizes "
        f"{era.from_size} to {until}: refusing it"
    )


def _signed_by(note: str, vkey: str, text: str, what: str) -> None:
    try:
        opened = open_note(note, verifiers=[Verifier.from_vkey(vkey)])
    except NoteError as error:
        raise NoteError(f"vkey history: {what} is not signed by {vkey}: {error}") from None
    if opened != text:
        raise NoteError(f"vkey history: {what} does not say what the history says")


def _check_chain(eras: Sequence[KeyEra]) -> None:
    """Refuse a chain whose eras do not follow one another under both keys' signatures."""
    if not eras:
        raise NoteError("vkey history is empty; a log has at least one key")
    origin = _origin(eras[0].vkey)
    for number, era in enumerate(eras):
        Verifier.from_vkey(era.vkey)  # well-formed
        if _origin(era.vkey) != origin:
            raise NoteError(f"vkey history mixes logs: {era.vkey} is not a key of {origin!r}")
        last = number == len(eras) - 1
        if last != (era.until_size is None):
            raise NoteError(
                "vkey history: only the newest key may be open-ended; every other key ends "
                "where the next one starts"
            )
        if number == 0:
            if era.from_size != 0 or era.statement is not None:
                raise NoteError("vkey history: the first key signs from tree size 0, unintroduced")
        else:
            previous = eras[number - 1]
            if previous.until_size != era.from_size:
                raise NoteError(
                    f"vkey history: {previous.vkey} ends at {previous.until_size} but "
                    f"{era.vkey} starts at {era.from_size}"
                )
            if era.statement is None:
                raise NoteError(f"vkey history: {era.vkey} has no rotation statement")
            text = rotation_text(origin, era.from_size, previous.vkey, era.vkey)
            _signed_by(era.statement, previous.vkey, text, f"the rotation to {era.vkey}")
            _signed_by(era.statement, era.vkey, text, f"the rotation to {era.vkey}")
        revoked = (era.revoked_after, era.revoked_at, era.revocation)
        if any(part is not None for part in revoked):
            if era.revoked_after is None or era.revoked_at is None or era.revocation is None:
                raise NoteError(f"vkey history: the revocation of {era.vkey} is incomplete")
            text = revocation_text(origin, era.vkey, era.revoked_after, era.revoked_at)
            later = [e.vkey for e in eras[number + 1 :]]
            if not any(_opens(era.revocation, vkey, text) for vkey in later):
                raise NoteError(
                    f"vkey history: the revocation of {era.vkey} is not signed by a later key"
                )


def _opens(note: str, vkey: str, text: str) -> bool:
    try:
        return open_note(note, verifiers=[Verifier.from_vkey(vkey)]) == text
    except NoteError:
        return False
