"""Showing text to people: untrusted strings made safe for a terminal, and durations.

Everything a human-readable output prints — table cells, trace lines, error messages —
may hold text that someone else logged. A newline in an event's ``reason`` would draw a
table row that was never logged, an ANSI escape could clear the screen or recolour a
line, and a Unicode bidi override (the "Trojan Source" trick, CVE-2021-42574) could make
``denied`` read as ``deined`` or reorder columns. :func:`printable` is the one function
that every such output goes through: it replaces each of those characters with a
visible escape, so that what is printed is what is stored, one line per line.

Machine output (``--json``) does not need it: JSON escapes control characters itself.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["duration", "pointed", "printable"]

# C0 controls (newline, tab, ESC, …), DEL, C1 controls (U+0085 NEL, U+009B CSI, …),
# the Arabic letter mark, LRM/RLM, the bidi embeddings and overrides (U+202A to U+202E),
# the bidi isolates (U+2066 to U+2069), and the line and paragraph separators that some
# terminals and editors break lines at.
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control, bidi and line-separator character shown as an escape.

    ``"a\\nb"`` becomes ``a\\nb`` (a backslash and an ``n``), ESC becomes ``\\x1b`` and
    U+202E becomes ``\\u202e``; everything else, other scripts and emoji included, is
    left as it is. The result is one line that cannot move the cursor or reorder text.
    """
    return _UNSAFE.sub(_escape, text)


def pointed(message: str, text: str, column: int, *, width: int = 76) -> str:
    """``message``, then ``text`` with a caret under ``column``, both made printable.

    The caret is placed under the *escaped* text, so it stays under the character it
    points at even when an escape before it takes several columns. Text longer than
    ``width`` is cut to a window around the caret, marked with ``…`` at the cut ends.
    """
    shown = printable(text)
    at = len(printable(text[:column]))
    if len(shown) > width:
        start = max(0, min(at - width // 2, len(shown) - width))
        end = start + width
        head = "…" if start > 0 else ""
        tail = "…" if end < len(shown) else ""
        at = at - start + len(head)
        shown = head + shown[start:end] + tail
    return f"{printable(message)}\n  {shown}\n  {' ' * at}^"


_UNITS: Final = (("d", 86_400_000_000), ("h", 3_600_000_000), ("min", 60_000_000), ("s", 1_000_000))


def duration(us: int) -> str:
    """A duration in microseconds in the unit a person reads best.

    ``850 µs``, ``12.3 ms``, ``4.2 s``, then two whole units: ``12 min 5 s``,
    ``1 h 30 min``, ``2 d 3 h`` (the second is dropped when it is zero). Below a minute
    one decimal is kept (rounded); from a minute on, the smaller unit is truncated.
    """
    sign = "-" if us < 0 else ""
    us = abs(us)
    if us < 1_000:
        return f"{sign}{us} µs"
    if us < 999_950:  # 999.95 ms and more would round to "1000.0 ms": show seconds
        return f"{sign}{us / 1_000:.1f} ms"
    if us < 59_950_000:
        return f"{sign}{us / 1_000_000:.1f} s"
    us = max(us, 60_000_000)  # 59.95 s to 60 s rounds up to a minute
    for i, (name, size) in enumerate(_UNITS[:-1]):
        if us >= size:
            small_name, small_size = _UNITS[i + 1]
            big, rest = divmod(us, size)
            small = rest // small_size
            return f"{sign}{big} {name}" + (f" {small} {small_name}" if small else "")
    raise AssertionError("unreachable: a minute or more matches a unit")  # pragma: no cover
