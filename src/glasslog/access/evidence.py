"""Evidence that one event is in the log, checkable offline, with masked values unseen.

The format (docs/access.md, "Evidence")::

    {"seq": 42,
     "event": {...},        the reader's view: masked values as {"$commit": "<b64>"},
                            hidden keys absent, nothing added (no "seq")
     "salts": {"/actor/name": "<b64 salt>", ...},   one per committed field in clear
     "hidden": {"/metadata/headers": "<b64 commitment>", ...},
     "erased": {"/actor/email": "<RFC 3339 time>", ...},   only when a shown field
                            was erased (docs/erasure.md): its value in "event" is then
                            its commitment, as a masked one's
     "proof": {"tree_size": 5000, "hashes": ["<b64>", ...]},
     "checkpoint": "<the signed note, exactly as signed>"}

A verifier rebuilds the leaf: each field named in ``salts`` becomes
``{"$commit": b64(SHA-256(salt || JCS(value)))}``, each hidden path is put back with
its commitment, and the JCS of the result is the leaf (docs/ledger.md, "Redactable
leaves"). Its RFC 9162 inclusion proof must lead to the checkpoint's root, and the
checkpoint's Ed25519 signature must verify with the log's key. A masked field
contributes its commitment as it is, so the reader needs neither its value nor its
salt; so does an erased one, whose value and salt no longer exist anywhere. The
``erased`` map only says which commitments stand for erased values, and since when:
it is not part of the leaf, and a verifier checks that each one names a commitment.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from glasslog.errors import IntegrityError, NoteError, ProofError
from glasslog.event import canonical, parse_time
from glasslog.ledger import merkle
from glasslog.ledger.commit import (
    COMMIT_KEY,
    ERASED_KEY,
    Path,
    commitment,
    is_commitment,
    is_erased,
    parse_pointer,
    show_pointer,
)
from glasslog.ledger.note import Verifier, verify_checkpoint
from glasslog.ledger.vkeys import VkeyHistory

__all__ = ["Verified", "build_evidence", "evidence_leaf", "verify_evidence"]

_KEYS = {"seq", "event", "salts", "hidden", "proof", "checkpoint"}
_ERASED = "erased"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_evidence(
    *,
    seq: int,
    shown: dict[str, Any],
    salts: Mapping[Path, bytes],
    masked: Mapping[Path, str],
    hidden: Mapping[Path, str],
    tree_size: int,
    proof: list[bytes],
    checkpoint: str,
    erased: Mapping[Path, str] | None = None,
) -> dict[str, Any]:
    """The evidence for one event as its reader sees it (``shown``, from the view).

    ``salts`` are every committed path's salt; only those of fields shown in clear are
    given out (a masked field's salt would let a reader confirm a guessed value).
    ``erased`` maps each erased path to the commitment it had: a shown one (the view
    holds its ``{"$erased": time}`` marker) becomes that commitment, and the
    ``erased`` map says when it was erased.
    """
    gone = erased or {}
    event = shown
    times: dict[str, str] = {}
    for path, sealed in sorted(gone.items()):
        if path in hidden:
            continue
        parent: Any = event
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or not is_erased(parent.get(path[-1])):
            continue
        if event is shown:
            event = _copied(shown, gone)
            parent = event
            for key in path[:-1]:
                parent = parent[key]
        times[show_pointer(path)] = parent[path[-1]][ERASED_KEY]
        parent[path[-1]] = {COMMIT_KEY: sealed}
    clear = {
        p: s for p, s in salts.items() if p not in masked and p not in hidden and p not in gone
    }
    evidence = {
        "seq": seq,
        "event": event,
        "salts": {show_pointer(p): _b64(s) for p, s in sorted(clear.items())},
        "hidden": {show_pointer(p): c for p, c in sorted(hidden.items())},
        "proof": {"tree_size": tree_size, "hashes": [_b64(h) for h in proof]},
        "checkpoint": checkpoint,
    }
    if times:
        evidence[_ERASED] = times
    return evidence


def _copied(event: dict[str, Any], paths: Mapping[Path, str]) -> dict[str, Any]:
    """``event`` with the objects along ``paths`` copied, so they can be changed."""
    out = dict(event)
    for path in paths:
        if len(path) == 2 and isinstance(out.get(path[0]), dict):
            out[path[0]] = dict(out[path[0]])
    return out


@dataclass(frozen=True, slots=True)
class Verified:
    """What a successful check established."""

    seq: int
    tree_size: int
    origin: str

    def summary(self) -> str:
        return (
            f"Included at seq {self.seq} in the log of size {self.tree_size:,}; "
            f"checkpoint signed by {self.origin}"
        )


def _fail(message: str) -> IntegrityError:
    return IntegrityError(f"verification failed: {message}")


def _decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise _fail(f"{what} must be a base64 string")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(f"{what} is not valid base64") from None
    if _b64(data) != text:
        # Unused low bits before '=' let one value be written several ways; evidence
        # admits exactly one spelling, so no byte of it can change unnoticed.
        raise _fail(f"{what} is not canonical base64")
    return data


def _place(event: dict[str, Any], path: Path, what: str) -> tuple[dict[str, Any], str]:
    """The object holding ``path``'s last key (copied on the way), and that key."""
    parent = event
    for key in path[:-1]:
        inner = parent.get(key)
        if not isinstance(inner, dict):
            raise _fail(f"{what} {show_pointer(path)} is not inside an object of the event")
        inner = dict(inner)
        parent[key] = inner
        parent = inner
    return parent, path[-1]


def _check_erased(erased: object, event: dict[str, Any], salts: dict[str, Any]) -> None:
    """Each pointer of the ``erased`` map names a commitment in the event, with a time."""
    if not isinstance(erased, dict):
        raise _fail("erased is an object keyed by JSON Pointer")
    for pointer, when in erased.items():
        try:
            path = parse_pointer(pointer)
            parse_time(when)
        except ValueError as exc:
            raise _fail(f"erased: {exc}") from None
        if pointer in salts:
            raise _fail(f"{pointer} is erased, yet it has a salt")
        parent: Any = event
        for key in path:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not is_commitment(parent):
            raise _fail(f"{pointer} is erased, so the event holds its commitment there")


def verify_evidence(evidence: Any, verifier: Verifier | VkeyHistory) -> Verified:
    """Check ``evidence`` (the decoded JSON) offline; raise IntegrityError saying why not.

    ``verifier`` is the log's key, or its key history when the key was rotated: the
    checkpoint must then be signed by the key whose era covers its size.
    """
    seq, leaf_hash = evidence_leaf(evidence)
    proof = evidence["proof"]
    tree_size = proof["tree_size"]
    if type(tree_size) is not int or not isinstance(proof["hashes"], list):
        raise _fail("proof.tree_size is an integer and proof.hashes a list")
    hashes = [_decode(h, "a proof hash") for h in proof["hashes"]]
    if not isinstance(evidence["checkpoint"], str):
        raise _fail("checkpoint must be the signed note, as text")
    try:
        if isinstance(verifier, VkeyHistory):
            cp = verifier.verify_checkpoint(evidence["checkpoint"])
        else:
            cp = verify_checkpoint(evidence["checkpoint"], verifier=verifier)
    except NoteError as exc:
        raise _fail(f"the checkpoint: {exc}") from None
    if cp.size != tree_size:
        raise _fail(f"the proof is for a tree of {tree_size:,}, the checkpoint for {cp.size:,}")
    try:
        merkle.verify_inclusion(
            index=seq, size=tree_size, leaf_hash=leaf_hash, proof=hashes, root=cp.root
        )
    except ProofError as exc:
        raise _fail(
            f"the event, rebuilt as a leaf, is not included at seq {seq} under the "
            f"checkpoint's root ({exc}): the event or its evidence was changed"
        ) from None
    return Verified(seq=seq, tree_size=tree_size, origin=cp.origin)


def evidence_leaf(evidence: Any) -> tuple[int, bytes]:
    """The seq of ``evidence`` and the hash of the leaf it rebuilds (steps 1 to 3 of
    docs/access.md, "Evidence"), once its shape is checked; IntegrityError otherwise.

    :func:`verify_evidence` then proves that leaf; an export bundle proves the leaves
    of all its events together (:mod:`glasslog.bundle`).
    """
    if not isinstance(evidence, dict) or set(evidence) - {_ERASED} != _KEYS:
        raise _fail(
            f"evidence is an object with exactly the keys {', '.join(sorted(_KEYS))}, "
            "and erased when a field was erased"
        )
    seq, event, proof = evidence["seq"], evidence["event"], evidence["proof"]
    if type(seq) is not int or seq < 0:
        raise _fail("seq must be a non-negative integer")
    if not isinstance(event, dict):
        raise _fail("event must be an object")
    if not isinstance(proof, dict) or set(proof) != {"tree_size", "hashes"}:
        raise _fail('proof is {"tree_size", "hashes"}')
    if not isinstance(evidence["salts"], dict) or not isinstance(evidence["hidden"], dict):
        raise _fail("salts and hidden are objects keyed by JSON Pointer")
    leaf = dict(event)
    for pointer, salt_text in evidence["salts"].items():
        try:
            path = parse_pointer(pointer)
        except ValueError as exc:
            raise _fail(f"salts: {exc}") from None
        salt = _decode(salt_text, f"the salt of {pointer}")
        parent, key = _place(leaf, path, "salted field")
        if key not in parent:
            raise _fail(f"the event has no {pointer}, which has a salt")
        try:
            parent[key] = {COMMIT_KEY: commitment(salt, parent[key])}
        except ValueError as exc:
            raise _fail(f"the salt of {pointer}: {exc}") from None
    for pointer, sealed in evidence["hidden"].items():
        try:
            path = parse_pointer(pointer)
        except ValueError as exc:
            raise _fail(f"hidden: {exc}") from None
        _decode(sealed, f"the commitment of {pointer}")
        parent, key = _place(leaf, path, "hidden field")
        if key in parent:
            raise _fail(f"{pointer} is hidden, yet the event has it")
        parent[key] = {COMMIT_KEY: sealed}
    _check_erased(evidence.get(_ERASED, {}), event, evidence["salts"])
    try:
        return seq, merkle.leaf_hash(canonical(leaf))
    except Exception as exc:  # not encodable as JCS: not an event glasslog logged
        raise _fail(f"the event cannot be canonicalised ({exc})") from None
