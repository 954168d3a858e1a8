"""Salted field commitments: the redactable leaves of the ledger (DESIGN.md §4).

The Merkle leaf of an event is not the event itself but its RFC 8785 (JCS)
encoding with each *committed* field's value replaced by

    {"$commit": base64(SHA-256(salt || JCS(value)))}

where ``salt`` is 16 fresh random bytes per field, stored beside the value. Whoever
holds value and salt can recompute the commitment; whoever holds only the
commitment (a reader the field is masked from, or anyone after the field was
erased) uses it as it is. Both arrive at the same leaf, so inclusion proofs keep
verifying while sensitive values stay hidden or are deleted for good. The salt
stops a reader from confirming a guessed value (a dictionary attack on e-mail
addresses or IPs) from the commitment alone.

A field is committed when its path is one of:

* a sensitive path configured for the log (default: ``actor.name``,
  ``actor.email``, ``source.ip``, ``source.user_agent``);
* a top-level key of ``metadata`` (each one separately);
* a path a secret/PII detector flagged.

Paths are at most two deep (``("reason",)``, ``("actor", "email")``,
``("metadata", "db")``) and never nest in one another, so each commitment covers a
whole top-level field or a whole member of a top-level object.

This module is pure: no I/O, no randomness. The caller draws the salts
(``os.urandom(SALT_BYTES * len(paths))``) and stores them with ``encode_paths``.
"""

from __future__ import annotations

import json
from binascii import b2a_base64
from collections.abc import Iterable, Sequence
from hashlib import sha256
from typing import Any, Final

from glasslog.event import Event, canonical

__all__ = [
    "COMMIT_KEY",
    "DEFAULT_SENSITIVE",
    "SALT_BYTES",
    "Path",
    "commitment",
    "committed_paths",
    "decode_paths",
    "encode_paths",
    "is_commitment",
    "leaf_bytes",
    "leaf_object",
]

SALT_BYTES: Final = 16
COMMIT_KEY: Final = "$commit"

Path = tuple[str, ...]
"""Where a field is in an event, as object keys: ``("actor", "email")``."""

_MISSING: Final[Any] = object()

DEFAULT_SENSITIVE: tuple[Path, ...] = (
    ("actor", "name"),
    ("actor", "email"),
    ("source", "ip"),
    ("source", "user_agent"),
)


def commitment(salt: bytes, value: object) -> str:
    """Return ``base64(SHA-256(salt || JCS(value)))`` (standard base64, with padding)."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes, got {len(salt)}")
    digest = sha256(salt + canonical(value)).digest()
    return b2a_base64(digest, newline=False).decode("ascii")


def is_commitment(value: object) -> bool:
    """Whether ``value`` is a ``{"$commit": "..."}`` object: a masked or erased field."""
    return type(value) is dict and len(value) == 1 and type(value.get(COMMIT_KEY)) is str


def committed_paths(
    event: Event,
    *,
    sensitive: Iterable[Path] = DEFAULT_SENSITIVE,
    flagged: Iterable[Path] = (),
) -> list[Path]:
    """Return the paths of ``event`` whose values go into the leaf as commitments.

    Each sensitive path that the event has, each top-level key of ``metadata``, and
    each flagged path. A path deeper than two is widened to its ancestor at depth
    two (a detector that flags ``metadata.db.password`` commits all of
    ``metadata.db``); a path naming a whole object such as ``("actor",)`` stands for
    each of its members. Paths the event does not have are left out. The result is
    sorted and free of duplicates.
    """
    paths: set[Path] = set()
    for path in sensitive:
        _add_anchor(event, path, paths)
    metadata = event.get("metadata")
    if type(metadata) is dict and not is_commitment(metadata):
        paths.update(("metadata", key) for key in metadata)
    for path in flagged:
        _add_anchor(event, path, paths)
    return sorted(paths)


def _add_anchor(event: Event, path: Path, paths: set[Path]) -> None:
    if not path:
        raise ValueError("an empty path names the whole event; name a field instead")
    head = path[0]
    if head not in event:
        return
    value = event[head]
    if type(value) is not dict or is_commitment(value):
        paths.add((head,))  # a scalar top-level field, e.g. reason
    elif len(path) == 1:
        paths.update((head, key) for key in value)
    elif path[1] in value:
        paths.add((head, path[1]))


def leaf_object(event: Event, paths: Sequence[Path], salts: bytes) -> Event:
    """Return the leaf form of ``event``: each path's value replaced by its commitment.

    ``paths`` are one or two keys deep, none repeated or inside another (as
    :func:`committed_paths` returns them). ``salts`` is the concatenation of one
    ``SALT_BYTES`` salt per path, in the order of ``paths``. A value that already is
    a ``{"$commit": ...}`` object (masked from this reader, or erased) is kept as it
    is and its salt is not used: pass any 16 bytes, e.g. zeros. ``event`` is not
    modified; only the objects along the paths are copied.
    """
    count = len(paths)
    if len(salts) != count * SALT_BYTES:
        raise ValueError(
            f"salts must be {count} x {SALT_BYTES} = {count * SALT_BYTES} bytes "
            f"for {count} paths, got {len(salts)}"
        )
    if len(set(paths)) != count:
        raise ValueError(f"paths repeat: {_show_all(paths)}")
    leaf = dict(event)
    copies: dict[str, dict[str, Any]] = {}  # objects this call copied, safe to change
    tops: set[str] = set()  # one-key paths, to refuse a path inside another
    start = 0
    for path in paths:
        if len(path) == 2:
            head, key = path
            parent = copies.get(head)
            if parent is None:
                if head in tops:
                    raise _nested(head)
                original = leaf.get(head)
                if type(original) is not dict or is_commitment(original):
                    raise ValueError(f"path {_show(path)} is not in the event")
                parent = copies[head] = leaf[head] = dict(original)
        elif len(path) == 1:
            parent = leaf
            key = path[0]
            if key in copies:
                raise _nested(key)
            tops.add(key)
        else:
            raise ValueError(f"path {path!r} must be one or two keys deep")
        value = parent.get(key, _MISSING)
        if value is _MISSING:
            raise ValueError(f"path {_show(path)} is not in the event")
        if type(value) is not dict or not is_commitment(value):
            # commitment(), inlined: this loop runs for every field of every event.
            digest = sha256(salts[start : start + SALT_BYTES] + canonical(value)).digest()
            parent[key] = {COMMIT_KEY: b2a_base64(digest, newline=False).decode("ascii")}
        start += SALT_BYTES
    return leaf


def _nested(head: str) -> ValueError:
    return ValueError(f"path {_show((head,))} contains other paths; commit either it or them")


def leaf_bytes(event: Event, paths: Sequence[Path], salts: bytes) -> bytes:
    """Return the Merkle leaf of ``event``: the JCS bytes of :func:`leaf_object`."""
    return canonical(leaf_object(event, paths, salts))


def encode_paths(paths: Sequence[Path]) -> str:
    """Encode paths for storage as compact JSON: ``[["actor","email"],["reason"]]``."""
    return canonical([list(path) for path in paths]).decode("utf-8")


def decode_paths(text: str) -> list[Path]:
    """Decode what :func:`encode_paths` produced; raise ValueError for anything else."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"stored paths are not JSON: {exc}") from None
    if type(data) is not list or not all(
        type(path) is list and path and all(type(key) is str for key in path) for path in data
    ):
        raise ValueError(
            'stored paths must be a JSON array of non-empty arrays of strings, such as [["reason"]]'
        )
    return [tuple(path) for path in data]


def _show(path: Path) -> str:
    return ".".join(path) if all(key.isidentifier() for key in path) else repr(path)


def _show_all(paths: Sequence[Path]) -> str:
    return ", ".join(_show(path) for path in paths)
