"""Where keys sit in a TOML text: line numbers for error messages.

``tomllib`` returns plain dicts and keeps no positions, but an error in a file a person
wrote by hand must say which line to fix. This reads the text once, line by line,
and records the first line of every table header and every key (bare, quoted or
dotted), by its full path. It understands what hand-written configuration uses:
``[table]`` and ``[[array]]`` headers, ``key = value`` lines, and values spanning
several lines (arrays, multi-line strings), which it skips.
"""

from __future__ import annotations

import re

__all__ = ["Lines"]

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_KEY = rf"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"\s*(\[\[?)\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY)


def _parts(dotted: str) -> tuple[str, ...]:
    out = []
    for raw in _PART.findall(dotted):
        if raw.startswith('"'):
            out.append(raw[1:-1].encode("utf-8").decode("unicode_escape"))
        elif raw.startswith("'"):
            out.append(raw[1:-1])
        else:
            out.append(raw)
    return tuple(out)


class Lines:
    """Line numbers (from 1) of the tables and keys of one TOML text."""

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        arrays: dict[tuple[str, ...], int] = {}
        depth = 0  # open brackets of a value that spans lines
        quote: str | None = None  # an open multi-line string's delimiter
        for number, line in enumerate(text.splitlines(), start=1):
            if quote is not None:
                if quote in line:
                    quote = None
                continue
            if depth > 0:
                depth += _balance(line)
                continue
            header = _HEADER.match(line)
            if header is not None:
                table = _parts(header.group(2))
                if header.group(1) == "[[":
                    index = arrays.get(table, -1) + 1
                    arrays[table] = index
                    self._lines.setdefault(table, number)
                    table = (*table, str(index))
                self._lines.setdefault(table, number)
                continue
            assign = _ASSIGN.match(line)
            if assign is None:
                continue
            path = (*table, *_parts(assign.group(1)))
            for end in range(len(table) + 1, len(path) + 1):
                self._lines.setdefault(path[:end], number)
            value = line[assign.end() :]
            for delimiter in ('"""', "'''"):
                if value.count(delimiter) == 1:
                    quote = delimiter
            if quote is None:
                depth = max(_balance(value), 0)

    def line(self, *path: str) -> int | None:
        """The line of the key or table at ``path`` (array tables: their index as text),
        or of its nearest enclosing table that has one; None when nothing matches."""
        for end in range(len(path), 0, -1):
            found = self._lines.get(path[:end])
            if found is not None:
                return found
        return None


def _balance(text: str) -> int:
    """Brackets opened minus closed, outside strings and comments (roughly: enough here)."""
    text = re.sub(rf"{_BASIC}|{_LITERAL}", "", text).split("#", 1)[0]
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")
