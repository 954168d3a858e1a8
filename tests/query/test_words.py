"""glasslog's tokenizer against SQLite FTS5's ``unicode61``: the same words, in the same order."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasslog.errors import QueryError
from glasslog.query.language import parse
from glasslog.query.plan import POSTGRES, SQLITE, compile_query
from glasslog.query.words import MAX_POSITION, tsquery_phrase, tsvector_literal, words
from glasslog.store.postgres_search import pg_sql

# Letters with and without accents, digits, separators, combining marks, private use,
# symbols, and scripts without case: what real audit text holds, and its corners.
ALPHABET = "abcXYZ019 .-_/:@é\u0301ÅÆøßİǅ½²٣日本😀\ue000ΩωЖж\t\n'\"\\ñÑçÇüÜ"


@pytest.fixture(scope="module")
def fts5() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(text)")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    yield conn
    conn.close()


def _fts5_words(conn: sqlite3.Connection, text: str) -> list[str]:
    conn.execute("DELETE FROM t")
    conn.execute("INSERT INTO t (rowid, text) VALUES (1, ?)", (text,))
    return [row[0] for row in conn.execute("SELECT term FROM v ORDER BY offset")]


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=ALPHABET, max_size=40))
def test_words_are_fts5_words(fts5: sqlite3.Connection, text: str) -> None:
    """For this alphabet the two tokenizers agree exactly (docs/query.md notes the rest)."""
    assert words(text) == _fts5_words(fts5, text)


def test_examples() -> None:
    assert words("db.query by Café-Owner") == ["db", "query", "by", "cafe", "owner"]
    assert words("e\u0301t ÆØ İstanbul") == ["et", "æø", "istanbul"]
    assert words("") == [] and words(" -- ") == []


def test_tsvector_literal_numbers_positions_from_one() -> None:
    assert tsvector_literal("Alpha beta alpha") == "'alpha':1 'beta':2 'alpha':3"
    long = " ".join(["w"] * (MAX_POSITION + 5))
    assert tsvector_literal(long).endswith(f"'w':{MAX_POSITION}")


def test_tsquery_phrase_is_adjacent_words_or_nothing() -> None:
    assert tsquery_phrase("Scheduled maintenance") == "'scheduled' <-> 'maintenance'"
    assert tsquery_phrase("!!") is None


_queries = st.text(alphabet="abc:*\"'()-.>=<% ?\\_é0123456789 ORANDNOT", max_size=30)


@settings(max_examples=500)
@given(text=_queries)
def test_postgres_sql_binds_every_placeholder(text: str) -> None:
    """Each ``?`` of the compiled SQL is a parameter, and nothing else becomes one."""
    try:
        node = parse(text, now=datetime(2026, 11, 26, tzinfo=UTC))
        plans = [compile_query(node, dialect=dialect) for dialect in (SQLITE, POSTGRES)]
    except QueryError:
        return
    for plan in plans:
        assert plan.where.count("?") == len(plan.params)
        assert plan.rest.count("?") == len(plan.rest_params)
    converted = pg_sql(plan.where)
    assert converted.count("%s") == len(plan.params)
    assert "%" not in converted.replace("%s", "")


@given(text=st.text())
def test_no_word_holds_a_quote_or_backslash(text: str) -> None:
    """tsvector_literal relies on this to skip escaping: any text, any script."""
    assert not any("'" in w or "\\" in w or " " in w for w in words(text))
    assert tsvector_literal(text).count("'") == 2 * len(words(text))
