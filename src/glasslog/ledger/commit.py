"""Salted field commitments: the redactable leaves of the ledger (docs/ledger.md).

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
import re
from binascii import b2a_base64
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache
from hashlib import sha256
from itertools import accumulate
from typing import Any, Final, NamedTuple

from glasslog.event import Event, canonical

__all__ = [
    "COMMIT_KEY",
    "DEFAULT_SENSITIVE",
    "ERASED_KEY",
    "SALT_BYTES",
    "Erased",
    "Path",
    "commitment",
    "committed_paths",
    "decode_commits",
    "decode_paths",
    "encode_commits",
    "encode_paths",
    "encode_stored",
    "erase_body",
    "erased_commitments",
    "erased_marker",
    "is_commitment",
    "is_erased",
    "leaf_bytes",
    "leaf_from_body",
    "leaf_object",
    "parse_pointer",
    "show_pointer",
]

SALT_BYTES: Final = 16
COMMIT_KEY: Final = "$commit"
ERASED_KEY: Final = "$erased"

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


def leaf_object(
    event: Event, paths: Sequence[Path], salts: bytes, *, texts: list[str | None] | None = None
) -> Event:
    """Return the leaf form of ``event``: each path's value replaced by its commitment.

    ``paths`` are one or two keys deep, none repeated or inside another (as
    :func:`committed_paths` returns them). ``salts`` is the concatenation of one
    ``SALT_BYTES`` salt per path, in the order of ``paths``. A value that already is
    a ``{"$commit": ...}`` object (masked from this reader, or erased) is kept as it
    is and its salt is not used: pass any 16 bytes, e.g. zeros. ``event`` is not
    modified; only the objects along the paths are copied. When ``texts`` is given,
    it receives each path's canonical value text (None for a kept commitment).
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
            text = canonical(value)
            digest = sha256(salts[start : start + SALT_BYTES] + text).digest()
            parent[key] = {COMMIT_KEY: b2a_base64(digest, newline=False).decode("ascii")}
            if texts is not None:
                texts.append(text.decode("utf-8"))
        elif texts is not None:
            texts.append(None)
        start += SALT_BYTES
    return leaf


def _nested(head: str) -> ValueError:
    return ValueError(f"path {_show((head,))} contains other paths; commit either it or them")


def leaf_bytes(event: Event, paths: Sequence[Path], salts: bytes) -> bytes:
    """Return the Merkle leaf of ``event``: the JCS bytes of :func:`leaf_object`."""
    return canonical(leaf_object(event, paths, salts))


Span = tuple[int, int]
"""Where a committed value's canonical text sits in the stored body: ``body[start:end]``."""


class Erased(NamedTuple):
    """An erased value's place in the stored body, and the commitment it had.

    The body holds ``{"$erased": "<time>"}`` there instead of the value
    (:func:`erase_body`), its salt is zeroed, and the leaf takes ``commitment`` as it
    is: the value and salt that made it are gone for good, the leaf is unchanged.
    """

    start: int
    end: int
    commitment: str


_ERASED_TEXT: Final = re.compile(
    r'\{"\$erased":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z"\}'
)
"""The only text an erased span may hold: the marker, with an RFC 3339 UTC time."""
_COMMITMENT_TEXT: Final = re.compile(r"[A-Za-z0-9+/]{43}=")
"""A SHA-256 digest in standard base64: nothing that could break out of the leaf's JSON."""


def is_erased(value: object) -> bool:
    """Whether ``value`` is an ``{"$erased": "<time>"}`` marker: a value erased for good."""
    return type(value) is dict and len(value) == 1 and type(value.get(ERASED_KEY)) is str


def erased_marker(time: str) -> str:
    """The canonical text that replaces an erased value in a stored body."""
    marker = '{"' + ERASED_KEY + '":' + json.dumps(time) + "}"
    if not _ERASED_TEXT.fullmatch(marker):
        raise ValueError(f"an erasure time is RFC 3339 UTC, as 2026-01-31T12:00:00Z; got {time!r}")
    return marker


_MARK: Final = '{"' + COMMIT_KEY + '":"'


def encode_stored(
    event: Event, paths: Sequence[Path], salts: bytes
) -> tuple[str, bytes, list[Span | None]]:
    """Encode ``event`` once for both the store and the tree: ``(body, leaf, spans)``.

    ``body`` is ``canonical(event)`` as text (values in clear), ``leaf`` the Merkle
    leaf bytes (``leaf_bytes(event, paths, salts)``), and ``spans[i]`` where the
    value of ``paths[i]`` sits in ``body`` (None for a value that already was a
    commitment). A value's canonical text is the same wherever it is nested, so the
    top two levels of the event are written once, as a list of pieces in which each
    committed value is a piece of its own; the body joins the pieces, the leaf joins
    them with each committed piece replaced by its commitment. This runs for every
    ingested event; ``tests/ledger/test_commit.py`` checks it against the two
    separate encodings.
    """
    count = len(paths)
    if len(salts) != count * SALT_BYTES:
        raise ValueError(
            f"salts must be {count} x {SALT_BYTES} = {count * SALT_BYTES} bytes "
            f"for {count} paths, got {len(salts)}"
        )
    index = {path: i for i, path in enumerate(paths)}
    if len(index) != count:
        raise ValueError(f"paths repeat: {_show_all(paths)}")
    heads: set[str] = set()
    for path in paths:
        if not 1 <= len(path) <= 2:
            raise ValueError(f"path {path!r} must be one or two keys deep")
        if len(path) == 2:
            heads.add(path[0])
    for head in heads:
        if (head,) in index:
            raise _nested(head)
    parts: list[str] = []
    committed: list[tuple[int, int]] = []  # (piece, path index) of each value to commit
    seen = 0
    sep = "{"
    for key in _sorted_keys(event):
        value = event[key]
        if key in heads:
            if type(value) is not dict or is_commitment(value):
                inside = [path for path in paths if path[0] == key]
                raise ValueError(f"path {_show_all(inside)} is not in the event")
            parts.append(sep + _encode_str(key) + ":{")
            inner = ""
            for sub in _sorted_keys(value):
                item = value[sub]
                i = index.get((key, sub))
                if i is None:
                    parts.append(inner + _encode_str(sub) + ":" + _text(item))
                else:
                    seen += 1
                    if type(item) is dict and is_commitment(item):
                        parts.append(inner + _encode_str(sub) + ":" + _text(item))
                    else:
                        parts.append(inner + _encode_str(sub) + ":")
                        committed.append((len(parts), i))
                        parts.append(_text(item))
                inner = ","
            parts.append("}")
        else:
            i = index.get((key,))
            if i is None:
                parts.append(sep + _encode_str(key) + ":" + _text(value))
            else:
                seen += 1
                if type(value) is dict and is_commitment(value):
                    parts.append(sep + _encode_str(key) + ":" + _text(value))
                else:
                    parts.append(sep + _encode_str(key) + ":")
                    committed.append((len(parts), i))
                    parts.append(_text(value))
        sep = ","
    parts.append("}" if parts else "{}")
    if seen != count:
        missing = [path for path in paths if not _has(event, path)]
        raise ValueError(f"path {_show_all(missing)} is not in the event")
    body = "".join(parts)
    ends = list(accumulate(map(len, parts)))
    spans: list[Span | None] = [None] * count
    try:
        for k, i in committed:
            text = parts[k]
            salt = salts[i * SALT_BYTES : (i + 1) * SALT_BYTES]
            digest = sha256(salt + text.encode("utf-8")).digest()
            parts[k] = _MARK + b2a_base64(digest, newline=False).decode("ascii") + '"}'
            spans[i] = (ends[k] - len(text), ends[k])
        leaf = "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        canonical(event)  # a lone surrogate: raises CanonicalError naming where it is
        raise
    return body, leaf, spans


_encode_str: Final = json.encoder.encode_basestring


def _text(value: object) -> str:
    """The canonical text of one value; strings (most values) without a detour via bytes.

    A lone surrogate in a string passes here and fails when the text is encoded to
    UTF-8, which :func:`encode_stored` does for every piece of the leaf and every
    committed value.
    """
    if type(value) is str:
        return _encode_str(value)
    return canonical(value).decode("utf-8")


def _has(event: Event, path: Path) -> bool:
    parent: Any = event
    for key in path:
        if type(parent) is not dict or key not in parent:
            return False
        parent = parent[key]
    return True


def _sorted_keys(obj: dict[str, Any]) -> list[str]:
    keys = sorted(obj)
    if "".join(keys).isascii():
        return keys
    return sorted(keys, key=lambda key: key.encode("utf-16-be"))  # RFC 8785 order


def leaf_from_body(body: str, spans: Sequence[Span | Erased | None], salts: bytes) -> bytes:
    """Recompute the leaf from a stored body without decoding it (verification's hot path).

    Sound without trusting the spans: the leaf keeps every byte of ``body`` outside
    the spans, and each span's bytes are bound by SHA-256 to a commitment in the
    leaf, so any change to the body, the spans or the salts changes the leaf. An
    erased span (:class:`Erased`) must hold exactly the ``{"$erased": time}`` marker
    and puts its stored commitment into the leaf: a changed commitment changes the
    leaf, and the marker's time is checked against the erasure's ledger event by
    ``verify``.
    """
    if len(salts) != len(spans) * SALT_BYTES:
        raise ValueError(
            f"salts must be {len(spans)} x {SALT_BYTES} bytes for {len(spans)} paths, "
            f"got {len(salts)}"
        )
    located = sorted(
        ((span, i) for i, span in enumerate(spans) if span is not None), key=lambda x: x[0][0]
    )
    pieces: list[str] = []
    pos = 0
    for span, i in located:
        start, end = span[0], span[1]
        if not pos <= start <= end <= len(body):
            raise ValueError(f"stored span {start}..{end} is out of order or out of range")
        pieces.append(body[pos:start])
        if type(span) is Erased:
            if not _ERASED_TEXT.fullmatch(body, start, end):
                raise ValueError(
                    f"stored span {start}..{end} is erased but does not hold the "
                    '{"$erased": time} marker'
                )
            if not _COMMITMENT_TEXT.fullmatch(span.commitment):
                raise ValueError(f"the stored commitment of span {start}..{end} is not base64")
            pieces.append(_MARK + span.commitment + '"}')
        else:
            salt = salts[i * SALT_BYTES : (i + 1) * SALT_BYTES]
            digest = sha256(salt + body[start:end].encode("utf-8")).digest()
            pieces.append(_MARK + b2a_base64(digest, newline=False).decode("ascii") + '"}')
        pos = end
    pieces.append(body[pos:])
    return "".join(pieces).encode("utf-8")


def erase_body(
    body: str,
    spans: Sequence[Span | Erased | None],
    salts: bytes,
    erase: Collection[int],
    time: str,
) -> tuple[str, list[Span | Erased | None], bytes]:
    """Erase the committed values at indexes ``erase``: ``(body, spans, salts)`` after.

    Each value's text in ``body`` becomes ``{"$erased": time}``, its span an
    :class:`Erased` keeping the commitment it had (computed here from the value and
    its salt, the last time both exist), its salt zeros; the spans after it move by
    the difference in length. The leaf stays the same (property-tested in
    ``tests/lifecycle/test_erasure_leaf.py``). Only a value in clear can be erased.
    """
    marker = erased_marker(time)
    out_spans: list[Span | Erased | None] = list(spans)
    out_salts = bytearray(salts)
    order = sorted(
        ((span[0], i) for i, span in enumerate(spans) if span is not None), key=lambda x: x[0]
    )
    pieces: list[str] = []
    pos = 0
    shift = 0
    for _, i in order:
        span = spans[i]
        assert span is not None  # filtered above
        start, end = span[0], span[1]
        if not pos <= start <= end <= len(body):
            raise ValueError(f"stored span {start}..{end} is out of order or out of range")
        pieces.append(body[pos:start])
        new_start = start + shift
        if i in erase:
            if type(span) is Erased:
                raise ValueError(f"the value at {start}..{end} is erased already")
            salt = salts[i * SALT_BYTES : (i + 1) * SALT_BYTES]
            digest = sha256(salt + body[start:end].encode("utf-8")).digest()
            sealed = b2a_base64(digest, newline=False).decode("ascii")
            pieces.append(marker)
            out_spans[i] = Erased(new_start, new_start + len(marker), sealed)
            out_salts[i * SALT_BYTES : (i + 1) * SALT_BYTES] = bytes(SALT_BYTES)
            shift += len(marker) - (end - start)
        else:
            pieces.append(body[start:end])
            if type(span) is Erased:
                out_spans[i] = Erased(new_start, span.end + shift, span.commitment)
            else:
                out_spans[i] = (new_start, end + shift)
        pos = end
    missing = set(erase) - {i for _, i in order}
    if missing:
        raise ValueError(f"paths {sorted(missing)} have no value in clear to erase")
    pieces.append(body[pos:])
    return "".join(pieces), out_spans, bytes(out_salts)


def encode_commits(paths: Sequence[Path], spans: Sequence[Span | Erased | None]) -> str:
    """Storage form of committed paths with their spans: ``[["actor","email",12,31]]``;
    an erased one adds its commitment: ``["actor","email",12,50,"<base64>"]``."""
    items = [
        list(path) if span is None else [*path, *span]
        for path, span in zip(paths, spans, strict=True)
    ]
    if _c_list_encoder is not None:  # on every ingested event: skip json.dumps's set-up
        return "".join(_c_list_encoder(items, 0))
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"))  # pragma: no cover


_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_list_encoder = (
    None  # other Python implementations
    if _c_make_encoder is None
    else _c_make_encoder(
        None, None, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
)
"""CPython's C encoder as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``
builds it, made once; for lists of strings and ints, which never need a check."""


def decode_commits(text: str) -> tuple[list[Path], list[Span | Erased | None]]:
    """Decode :func:`encode_commits`; raise ValueError for anything else.

    On verification's hot path (every event): one pass, plain loops, no generators.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"stored commitments are not JSON: {exc}") from None
    if type(data) is not list:
        raise ValueError("stored commitments must be a JSON array")
    paths: list[Path] = []
    spans: list[Span | Erased | None] = []
    for item in data:
        if type(item) is not list or not item:
            raise ValueError("each stored commitment must be a non-empty array")
        if len(item) >= 4 and type(item[-1]) is str and type(item[-2]) is int:
            if type(item[-3]) is not int:
                raise ValueError("an erased commitment is its path, its span and the commitment")
            path = tuple(item[:-3])
            spans.append(Erased(item[-3], item[-2], item[-1]))
        elif len(item) >= 3 and type(item[-1]) is int and type(item[-2]) is int:
            path = tuple(item[:-2])
            spans.append((item[-2], item[-1]))
        else:
            path = tuple(item)
            spans.append(None)
        for key in path:
            if type(key) is not str:
                raise ValueError("a stored commitment path must be non-empty strings")
        if not path:
            raise ValueError("a stored commitment path must be non-empty strings")
        paths.append(path)
    return paths, spans


def erased_commitments(commits: str) -> dict[Path, str]:
    """The erased paths of a stored ``commits`` column, each with the commitment it had."""
    if '"]' not in commits:  # an erased entry ends with its commitment, a string
        return {}
    paths, spans = decode_commits(commits)
    return {
        path: span.commitment
        for path, span in zip(paths, spans, strict=True)
        if type(span) is Erased
    }


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


@lru_cache(maxsize=4096)  # evidence names the same few fields for every event
def parse_pointer(text: str) -> Path:
    """An RFC 6901 JSON Pointer's tokens (``~1`` is ``/``, ``~0`` is ``~``); ValueError."""
    if not text.startswith("/"):
        raise ValueError(f"{text!r} is not a JSON Pointer; it starts with '/', as /actor/email")
    tokens = text[1:].split("/")
    for token in tokens:
        if token == "":
            raise ValueError(f"{text!r} has an empty reference token; remove the doubled '/'")
        if re.search(r"~(?![01])", token):
            raise ValueError(
                f"{text!r}: '~' must be escaped as ~0 (and '/' inside a key as ~1), RFC 6901"
            )
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in tokens)


@lru_cache(maxsize=4096)
def show_pointer(path: Path) -> str:
    """``path`` as an RFC 6901 JSON Pointer: ``("actor", "email")`` is ``/actor/email``."""
    return "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in path)


def _show(path: Path) -> str:
    return ".".join(path) if all(key.isidentifier() for key in path) else repr(path)


def _show_all(paths: Sequence[Path]) -> str:
    return ", ".join(_show(path) for path in paths)
