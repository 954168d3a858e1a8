"""Tests for glasslog.display: untrusted text made safe to print, and human durations."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glasslog.display import duration, pointed, printable

UNSAFE = [
    *map(chr, range(0x20)),
    "\x7f",
    *map(chr, range(0x80, 0xA0)),
    "\u061c",
    "\u200e",
    "\u200f",
    "\u2028",
    "\u2029",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
]


@pytest.mark.parametrize("char", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_every_control_bidi_and_separator_character_is_escaped(char: str) -> None:
    """Each C0/C1 control, DEL, bidi control and line separator becomes a visible escape."""
    shown = printable(f"a{char}b")
    assert char not in shown
    assert shown.startswith("a\\") and shown.endswith("b")


def test_escapes_are_readable() -> None:
    """Newline, tab and CR keep their usual names; others show their code point."""
    assert printable("x\ny\tz\r") == "x\\ny\\tz\\r"
    assert printable("\x1b[2J") == "\\x1b[2J"
    assert printable("\x85") == "\\x85"
    assert printable("evil\u202etxt.exe") == "evil\\u202etxt.exe"


def test_ordinary_text_is_left_alone() -> None:
    """Accents, other scripts, emoji, spaces and backslashes print as they are."""
    text = "Café \u2013 Ωμέγα 日本語 🙂 C:\\temp a\u00a0b"
    assert printable(text) == text


@given(st.text())
def test_printed_text_is_one_line_without_controls(text: str) -> None:
    """Whatever the input, the output has no control or line-breaking character left."""
    shown = printable(text)
    assert len(shown.splitlines() or [""]) == 1
    for char in shown:
        assert unicodedata.category(char) != "Cc"
        assert char not in UNSAFE


def test_caret_stays_under_its_character_after_escapes() -> None:
    """An escape before the column widens the text; the caret moves with it."""
    text = "a\x1bb\nactr.id:x"
    message, line, caret = pointed("unknown field", text, text.index("actr")).split("\n")
    assert message == "unknown field"
    assert line == "  a\\x1bb\\nactr.id:x"
    assert line[caret.index("^") :].startswith("actr.id")


def test_long_text_is_cut_to_a_window_around_the_caret() -> None:
    """A long query shows a window with '…' at the cut ends and the caret still aligned."""
    text = "a" * 300 + " bad " + "z" * 300
    _, line, caret = pointed("m", text, 301, width=40).split("\n")
    assert line.startswith("  …") and line.endswith("…")
    assert len(line) <= 2 + 40 + 2
    assert line[caret.index("^")] == "b"


def test_message_is_escaped_too() -> None:
    """The message line cannot break the layout either."""
    assert pointed("bad\nrow", "q", 0).split("\n")[0] == "bad\\nrow"


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0 µs"),
        (850, "850 µs"),
        (12_300, "12.3 ms"),
        (999_949, "999.9 ms"),
        (999_950, "1.0 s"),
        (4_200_000, "4.2 s"),
        (59_960_000, "1 min"),
        (125_000_000, "2 min 5 s"),
        (5_400_000_000, "1 h 30 min"),
        (3_600_000_000, "1 h"),
        (2 * 86_400_000_000 + 3 * 3_600_000_000 + 59_000_000, "2 d 3 h"),
        (-12_300, "-12.3 ms"),
    ],
)
def test_durations_use_human_units(us: int, text: str) -> None:
    """A duration reads in µs, ms, s, then two whole units (1.5 h is '1 h 30 min')."""
    assert duration(us) == text
