"""Full-text words: one tokenizer for every backend, so a phrase means the same everywhere.

SQLite tokenizes inside FTS5 (``unicode61``); PostgreSQL's own parsers do not agree
with it (``to_tsvector('simple', 'db.query')`` keeps one token ``db.query`` where
FTS5 sees ``db`` and ``query``, and what counts as a letter depends on the
database's locale). So for PostgreSQL glasslog tokenizes in Python, at ingest and
at query time alike, and hands the server ready-made lexemes with positions
(``tsvector`` / ``tsquery`` literals); the server's parser never runs.

The rules follow ``unicode61`` with its defaults, measured on SQLite 3.40:

* a word is a maximal run of letters (``L*``), numbers (``N*``), private-use
  characters (``Co``) and combining marks (``Mn``) — everything else separates;
* words are lower-cased and their diacritics removed (``é`` → ``e``; ``ø`` and
  ``ł``, which have no decomposition, stay).

ASCII text (the common case) takes a fast path with identical results. Where
Python's Unicode tables (newer) and SQLite's (6.1) classify a rare character
differently, the backends may split a word differently; docs/query.md says so.
"""

from __future__ import annotations

import re
import unicodedata

# ASCII fast path: every byte that is not a letter or digit becomes a space, then split.
_ASCII_SEPARATORS = bytes.maketrans(
    bytes(range(128)), bytes(c if chr(c).isalnum() else 0x20 for c in range(128))
)
# [^\W_] is "alphanumeric" (str.isalnum: L*, Nd, Nl, No); private-use ranges added.
_WORD = re.compile(r"(?:[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd])+")

MAX_POSITION = 16_383
"""PostgreSQL stores word positions up to this; later words share it (docs/query.md)."""

MAX_WORD_BYTES = 2_046
"""The longest lexeme PostgreSQL accepts, in UTF-8 bytes. A longer word (a base64
blob, a long token) is cut to this at ingest and at query time alike, so it is still
found; the recheck against the signed body keeps the match exact."""


def _lexeme(word: str) -> str:
    if len(word) <= MAX_WORD_BYTES // 4:  # at most 4 bytes a character: surely short enough
        return word
    return word.encode("utf-8")[:MAX_WORD_BYTES].decode("utf-8", "ignore")


def words(text: str) -> list[str]:
    """The words of ``text`` in order, folded as FTS5 ``unicode61`` folds them."""
    if text.isascii():
        return text.lower().encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii").split()
    decomposed = unicodedata.normalize("NFD", text.lower())
    # Dropping the marks before splitting keeps "e\u0301t" one word, as unicode61 does.
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _WORD.findall(unicodedata.normalize("NFC", bare))


def _quote(word: str) -> str:
    # Words hold only letters, numbers and marks, but quote defensively all the same.
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(text: str) -> str:
    """A ``tsvector`` literal of the words of ``text`` with their positions (from 1).

    On the ingest path of every event, hence the plain quoting: no word can hold a
    quote or a backslash (both are separators), which the tests check.
    """
    found = [_lexeme(word) for word in words(text)]
    if len(found) > MAX_POSITION:
        return " ".join(f"'{word}':{min(i, MAX_POSITION)}" for i, word in enumerate(found, 1))
    return " ".join(f"'{word}':{i}" for i, word in enumerate(found, 1))


def tsquery_phrase(text: str) -> str | None:
    """A ``tsquery`` literal matching the words of ``text`` as adjacent words, in order.

    None when ``text`` has no words (such a phrase matches nothing, as in FTS5).
    """
    found = words(text)
    if not found:
        return None
    return " <-> ".join(_quote(_lexeme(word)) for word in found)
