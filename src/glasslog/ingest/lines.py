"""One input line of ``glasslog ingest``: JSON text in, a parsed value or problems out.

:func:`parse_line` is the only place where text from a client becomes a Python value
on the ingest path. It refuses, as problems with a JSON path (never an exception
that could abort a whole chunk), what JSON parsers disagree on or cannot survive:

* **Duplicate keys.** I-JSON (RFC 7493 §2.3) forbids them because parsers differ on
  which value wins: ``{"outcome":"failure","outcome":"success"}`` is a failure to
  one reader and a success to Python's. Every repeated key is named with its path
  (``$.outcome``, ``$.metadata.a.b``), at any depth. The check costs one call per
  object: the decoder hands each object's members to :func:`_unique` as a list,
  which builds the dict and compares lengths; the paths are found only for a line
  that has a duplicate, by parsing it a second time.
* **Deep nesting.** Python's parser recurses once per ``[`` or ``{`` and raises
  RecursionError near a thousand levels, so a line is measured before it is
  parsed: more than :data:`NESTING_LIMIT` levels is refused. Valid events nest far
  less (``metadata`` at most ``Limits.max_metadata_depth`` levels, 8 by default);
  the margin lets the validator name the path of a moderately deep value, and
  nothing later (validation, scrubbing, canonical JSON, commitments, the field
  index) ever sees a deeper value, because validation copies only what the schema
  allows.

Events passed in-process (``Preparer.prepare`` with a ``dict``) cannot have
duplicate keys, and validation bounds their depth the same way.

:func:`scrub_messages` is the other half of what leaves this module: rejection
messages quote parts of the input (a bad enum value, an unknown field name), so
they go through the scrubber before anyone sees them — a secret refused by
validation must not be printed when the same secret, accepted, would have been
redacted (docs/secrets.md).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate
from typing import Any, Final

from glasslog.errors import EventError, Problem
from glasslog.event import DEFAULT_LIMITS, Limits
from glasslog.ingest.scrub import Path, Scrubber, format_path

__all__ = ["INTERNAL_ERROR", "NESTING_LIMIT", "parse_line", "scrub_messages"]

NESTING_LIMIT: Final = 64
"""Levels of ``[``/``{`` a line may nest: far beyond a valid event, far below Python's
recursion limit, and the depth to which the scrubber scans (deeper data could not be
checked for secrets)."""

INTERNAL_ERROR: Final = "$: internal error"
"""How a rejection caused by a bug, not by the line, begins (see glasslog.ingest.bulk)."""

_MAX_REPORTED = 20
"""Duplicate keys named per line; a hostile line must not produce megabytes of errors."""

_LONG_KEY = 64
"""Keys longer than this are described by their length rather than quoted."""


class _Duplicate(Exception):
    """Raised by :func:`_unique` to stop the fast parse at the first repeated key."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Duplicate
    return obj


# One decoder, built once: json.loads(text, object_pairs_hook=…) would build a new
# decoder and scanner for every line, which costs more than the check itself.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique)

_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
"""A JSON string (skipped whole: brackets inside it do not nest) or a bracket. A string
always matches, closed or running to the end of the text, and possessively: no
backtracking, so every character is read once (``"\\"\\"…`` would otherwise be
quadratic)."""
_STRING_OR_NOT_BRACKET: Final = re.compile(r'"[^"]*"|[^\[\]{}"]+')
"""A string without escapes (they are removed first), or a run of anything but a bracket
or a quote: what :func:`_nesting_exceeded` deletes to keep the brackets that nest."""
_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1, '"': 0}  # a quote that never closed: 0
_OPENERS: Final = frozenset("[{")
_CLOSERS: Final = frozenset("]}")


def parse_line(data: str | bytes, *, limits: Limits = DEFAULT_LIMITS) -> object:
    """The JSON value of one line; raise :class:`EventError` when it is not acceptable.

    Bytes are decoded as :func:`json.loads` decodes them (UTF-8, or UTF-16/32 by
    their first bytes). ``limits`` only shapes the messages.
    """
    try:
        text = (
            data
            if isinstance(data, str)
            else data.decode(json.detect_encoding(data), "surrogatepass")
        )
    except UnicodeDecodeError as exc:
        raise _not_json(exc) from None
    too_deep = _nesting_exceeded(text)
    if too_deep is not None:
        raise _too_deep(too_deep, limits)
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise _not_json(exc) from None
    except _Duplicate:
        raise EventError(_duplicates(text)) from None
    except RecursionError:  # only if the caller's own stack is already near the limit
        raise _too_deep(None, limits) from None
    except ValueError:  # int("1" * 5000): Python reads at most 4,300 digits (CVE-2020-10735)
        raise EventError([
            Problem(
                "$",
                "a number has too many digits to read; numbers must fit in ±(2**53-1) "
                "(I-JSON, RFC 7493): send big numbers as strings",
            )
        ]) from None  # fmt: skip


def _nesting_exceeded(text: str) -> int | None:
    """The offset of the first bracket nested deeper than NESTING_LIMIT, or None."""
    if text.count("[") + text.count("{") <= NESTING_LIMIT:
        return None  # the usual case, two C-speed scans: there are not enough brackets
    # Many brackets (a server's batch of events): the depth at C speed first. Escaped
    # backslashes and quotes go, then the strings (every other piece between quotes:
    # brackets in them do not nest), then everything but brackets; a running sum gives
    # the deepest level. On valid JSON this is exact; it only ever answers "not too
    # deep", and the exact scan finds the offset when it is. On invalid JSON the parser
    # refuses the text anyway (and a RecursionError reads as too deep).
    bare = text.replace("\\\\", "").replace('\\"', "")
    brackets = _STRING_OR_NOT_BRACKET.sub("", bare)
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) <= NESTING_LIMIT:
        return None
    return _first_too_deep(text)


def _first_too_deep(text: str) -> int | None:
    """The exact scan: the offset of the first bracket deeper than NESTING_LIMIT, or None."""
    depth = 0
    for token in _TOKEN.finditer(text):
        bracket = token.group()
        if bracket in _OPENERS:
            depth += 1
            if depth > NESTING_LIMIT:
                return token.start()
        elif bracket in _CLOSERS:
            depth -= 1
    return None


def _too_deep(offset: int | None, limits: Limits) -> EventError:
    where = "" if offset is None else f" (at character {offset + 1:,})"
    allowed = min(limits.max_metadata_depth, NESTING_LIMIT - 2)
    return EventError([
        Problem(
            "$",
            f"nested more than {NESTING_LIMIT} levels deep{where}; events nest far less "
            f"(metadata at most {allowed} levels): flatten the data",
        )
    ])  # fmt: skip


def _not_json(exc: ValueError) -> EventError:
    # Neither message quotes the input: the decode error names an offending byte and
    # its position, the JSON error a position and what was expected there.
    return EventError([Problem("$", f"not valid JSON ({exc}); send one JSON object per line")])


class _Repeated(dict[str, Any]):
    """An object that had repeated keys, with each such key and how often it appeared."""

    repeated: list[tuple[str, int]]


def _marking(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _Repeated(obj)
    marked.repeated = [(key, n) for key, n in Counter(key for key, _ in pairs).items() if n > 1]
    return marked


def _duplicates(text: str) -> list[Problem]:
    """A problem per repeated key, outer objects first (the slow path: a second parse)."""
    root = json.JSONDecoder(object_pairs_hook=_marking).decode(text)
    problems: list[Problem] = []
    stack: list[tuple[Path, Any]] = [((), root)]
    while stack and len(problems) < _MAX_REPORTED:
        path, node = stack.pop()
        if isinstance(node, _Repeated):
            problems.extend(_duplicate(path, key, n) for key, n in node.repeated)
        if isinstance(node, dict):
            children: list[tuple[str | int, Any]] = list(node.items())
        elif isinstance(node, list):
            children = list(enumerate(node))
        else:
            continue
        stack.extend(((*path, step), child) for step, child in reversed(children))
    return problems[:_MAX_REPORTED]


def _duplicate(path: Path, key: str, times: int) -> Problem:
    if len(key) > _LONG_KEY:
        where, name = format_path(path), f"a key of {len(key):,} characters"
    else:
        where, name = format_path((*path, key)), f"key {json.dumps(key)}"
    return Problem(
        where,
        f"duplicate {name} (it appears {times} times in this object); I-JSON (RFC 7493) "
        "allows each key once, since parsers disagree on which value counts: send it once",
    )


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------

_PATH_PREFIX = re.compile(r'\$(?:\.\w+|\[[0-9]+\]|\["(?:[^"\\]|\\.)*"\])*(?=: )')
"""The JSON path a problem message starts with, as :func:`format_path` writes it."""

_HOLDER: Final = "rejected"
"""The field the messages are scrubbed under: not one of the schema's identifiers, which
the scrubber leaves alone."""


def scrub_messages(scrubber: Scrubber, messages: Sequence[str]) -> list[str]:
    """``messages`` (``"$.path: text"``) with every secret the scrubber detects replaced.

    The path and the text are scanned apart: as one string, ``$.metadata.password:
    string has …`` reads as an assignment to ``password`` and would lose its text. No
    secret can span the two, since the path ends where glasslog's own words begin.
    """
    parts: list[str] = []
    for message in messages:
        path = _PATH_PREFIX.match(message)
        cut = 0 if path is None else path.end()
        parts += (message[:cut], message[cut:])
    holder: dict[str, Any] = {_HOLDER: parts}
    scrubber.scrub(holder)  # replaces in place, inside the list
    scrubbed: list[str] = holder[_HOLDER]
    return [scrubbed[i] + scrubbed[i + 1] for i in range(0, len(scrubbed), 2)]
