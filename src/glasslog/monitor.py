"""A log monitor: is the log still the one it was, only longer?

``glasslog monitor --url URL --vkey VKEY --state FILE`` runs :func:`watch` once (from
cron or a timer). It fetches the log's signed checkpoint (``GET /checkpoint``) and its
key history (``GET /v1/vkeys``), checks the checkpoint's signature through that history,
which must hold the key the monitor trusts, and compares it with the last checkpoint it
stored in FILE:

- a larger tree must extend the stored one: the log's consistency proof
  (``GET /v1/proof/consistency``, RFC 9162 §2.1.4) is verified against the two signed
  roots, never against roots the server states beside it;
- the same size must have the same root;
- a smaller tree is a **rollback**; two signed checkpoints that no proof can link are a
  **fork**: the log showed two histories, and the two notes prove it to anyone. Both
  raise :class:`Misbehaviour`, and the evidence (both notes, and the proof if any) is
  written next to FILE.

Otherwise the new checkpoint replaces the stored one (atomically, mode 0600). The first
run trusts what it sees (there is nothing to compare with) and says so. Only hashes
and public keys are read: no account is needed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from glasslog.datadir import _write_atomically
from glasslog.errors import ConfigError, LedgerError, NoteError, NotFoundError
from glasslog.ledger.merkle import verify_consistency
from glasslog.ledger.vkeys import VkeyHistory
from glasslog.remote import Remote

__all__ = ["Misbehaviour", "Observation", "Seen", "advance", "watch"]

_FORMAT = "glasslog-monitor/1"


class Misbehaviour(LedgerError):
    """The log showed something no honest append-only log can: a fork, a rollback, a
    checkpoint its keys did not sign, or a rewritten key history."""

    def __init__(self, kind: str, message: str, evidence: dict[str, Any]) -> None:
        super().__init__(message)
        self.kind = kind
        self.evidence = evidence


@dataclass(frozen=True, slots=True)
class Seen:
    """The checkpoint a monitor last accepted, as kept in its state file."""

    url: str
    origin: str
    size: int
    root: bytes
    note: str
    vkeys: tuple[str, ...]
    checked: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "url": self.url,
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode("ascii"),
            "note": self.note,
            "vkeys": list(self.vkeys),
            "checked": self.checked,
        }

    @classmethod
    def load(cls, path: Path) -> Seen | None:
        """The state in ``path``, or None when it does not exist yet."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            raise ConfigError(f"{path} is not a monitor state file (not JSON)") from None
        try:
            if data["format"] != _FORMAT:
                raise ValueError(data["format"])
            return cls(
                url=str(data["url"]),
                origin=str(data["origin"]),
                size=int(data["size"]),
                root=base64.b64decode(data["root"], validate=True),
                note=str(data["note"]),
                vkeys=tuple(str(v) for v in data["vkeys"]),
                checked=str(data["checked"]),
            )
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"{path} is not a {_FORMAT} state file; give --state a file of its own"
            ) from None


@dataclass(frozen=True, slots=True)
class Observation:
    """What one run saw and checked."""

    seen: Seen
    previous: Seen | None
    proof_hashes: int = 0
    notes: list[str] = field(default_factory=list)
    """Things to tell the operator that are not failures (no published key history)."""

    def summary(self) -> str:
        """One line per finding, for a person."""
        now = self.seen
        root = base64.b64encode(now.root).decode("ascii")
        if self.previous is None:
            head = (
                f"first checkpoint of {now.origin}: size {now.size}, root {root}; nothing "
                "to compare it with yet, so it is trusted as seen"
            )
        elif now.size == self.previous.size:
            head = f"{now.origin} unchanged at size {now.size} (same root {root})"
        else:
            head = (
                f"{now.origin} grew from size {self.previous.size} to {now.size}: the "
                f"consistency proof ({self.proof_hashes} hashes) links the two signed roots"
            )
        count = len(now.vkeys)
        keys = f"signature checked with the log's key history ({count} key{'s' * (count > 1)})"
        return "\n".join([head, keys, *self.notes])

    def to_json(self) -> dict[str, Any]:
        previous = None if self.previous is None else self.previous.size
        return {
            "status": "ok",
            "origin": self.seen.origin,
            "size": self.seen.size,
            "root": base64.b64encode(self.seen.root).decode("ascii"),
            "previous_size": previous,
            "proof_hashes": self.proof_hashes,
            "notes": self.notes,
        }


def advance(
    previous: Seen | None,
    note: str,
    history: VkeyHistory,
    proof: Callable[[int, int], list[bytes]],
    *,
    url: str,
    now: str,
) -> tuple[Seen, int]:
    """Check ``note`` against ``previous``; the new state and the proof's length.

    ``proof(old, new)`` fetches a consistency proof; when the log cannot give one
    (a proof error, or no such tree), that counts as a fork. Raises :class:`Misbehaviour`.
    """
    try:
        checkpoint = history.verify_checkpoint(note)
    except NoteError as exc:
        raise Misbehaviour(
            "signature",
            f"the checkpoint served by {url} is not signed by the log's keys: {exc}",
            {"checkpoint": note},
        ) from None
    seen = Seen(url, checkpoint.origin, checkpoint.size, checkpoint.root, note,
                tuple(history.vkeys()), now)  # fmt: skip
    if previous is None:
        return seen, 0
    if previous.origin != checkpoint.origin:
        raise ConfigError(
            f"the state file follows the log {previous.origin!r}, but {url} serves "
            f"{checkpoint.origin!r}; give each log its own --state file"
        )
    dropped = [v for v in previous.vkeys if v not in history.vkeys()]
    if dropped:
        raise Misbehaviour(
            "keys",
            f"the key history of {checkpoint.origin} no longer lists {', '.join(dropped)}, "
            "which it published before: the history was rewritten",
            {"before": list(previous.vkeys), "now": history.vkeys()},
        )
    evidence: dict[str, Any] = {"stored": previous.note, "served": note}
    old = _describe(previous.size, previous.root)
    new = _describe(checkpoint.size, checkpoint.root)
    if checkpoint.size < previous.size:
        raise Misbehaviour(
            "rollback",
            f"rollback: {url} serves a signed checkpoint of a smaller tree ({new}) than the "
            f"one it signed before ({old}, stored {previous.checked}): a log never shrinks",
            evidence,
        )
    if checkpoint.size == previous.size:
        if checkpoint.root != previous.root:
            raise Misbehaviour(
                "fork",
                f"fork: {checkpoint.origin} signed two different roots for size "
                f"{checkpoint.size}: {old} (stored {previous.checked}) and {new} now",
                evidence,
            )
        return seen, 0
    try:
        hashes = proof(previous.size, checkpoint.size)
        evidence["proof"] = [base64.b64encode(h).decode("ascii") for h in hashes]
        verify_consistency(
            size1=previous.size, size2=checkpoint.size, root1=previous.root,
            root2=checkpoint.root, proof=hashes,
        )  # fmt: skip
    except (LedgerError, NotFoundError, ConfigError) as exc:
        raise Misbehaviour(
            "fork",
            f"fork: {checkpoint.origin}'s signed checkpoint {new} does not extend the one it "
            f"signed before ({old}, stored {previous.checked}); its history was rewritten: {exc}",
            evidence,
        ) from None
    return seen, len(hashes)


def _describe(size: int, root: bytes) -> str:
    return f"size {size}, root {base64.b64encode(root).decode('ascii')}"


def _history(remote: Remote, vkey: str, notes: list[str]) -> VkeyHistory:
    """The published key history, which must hold ``vkey``; the key alone without one."""
    try:
        published = remote.request("GET", "/v1/vkeys").json()
    except NotFoundError:
        notes.append(
            f"{remote.url} does not publish its key history (GET /v1/vkeys): checked "
            "against --vkey alone"
        )
        return VkeyHistory.single(vkey)
    try:
        return VkeyHistory.from_json(published).trusting(vkey)
    except NoteError as exc:
        raise Misbehaviour(
            "keys", f"{remote.url}'s key history is not acceptable: {exc}", {"vkeys": published}
        ) from None


def _proof(remote: Remote) -> Callable[[int, int], list[bytes]]:
    def fetch(old: int, new: int) -> list[bytes]:
        answer = remote.consistency(old, new)
        try:
            return [base64.b64decode(h, validate=True) for h in answer["proof"]]
        except (KeyError, TypeError, ValueError):
            raise LedgerError(f"{remote.url} answered a malformed consistency proof") from None

    return fetch


def watch(url: str, vkey: str, state: Path) -> Observation:
    """One monitor run against the log at ``url``, trusting ``vkey``, remembering in ``state``.

    Raises :class:`Misbehaviour` (after writing the evidence next to ``state``) on a
    fork, a rollback or a bad signature, and other glasslog errors when the log
    could not be checked (unreachable, a state file of another log).
    """
    previous = Seen.load(state)
    notes: list[str] = []
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    with Remote(url, None) as remote:
        try:
            history = _history(remote, vkey, notes)
            note = remote.checkpoint()
            seen, hashes = advance(previous, note, history, _proof(remote), url=url, now=now)
        except Misbehaviour as exc:
            evidence = state.with_name(f"{state.name}.{exc.kind}.json")
            record = {"kind": exc.kind, "message": str(exc), "time": now, "url": url}
            _write_atomically(evidence, json.dumps({**record, **exc.evidence}, indent=1) + "\n")
            exc.args = (f"{exc}; evidence written to {evidence}",)
            raise
    _write_atomically(state, json.dumps(seen.to_json(), indent=1) + "\n")
    return Observation(seen, previous, hashes, notes)
