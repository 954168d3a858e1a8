"""The glasslog query language: query text in, abstract syntax tree (AST) out.

The language is the one users know from the GitHub audit log and Lucene (docs/query.md)::

    service:payments action:db.* -actor.type:machine outcome:failure after:-24h "drop table"

Terms are ``field:value`` matches (``*`` is a wildcard), comparisons (``seq>100``,
``time>=2026-11-01``), ``after:``/``before:`` time bounds, ``has:FIELD``, and bare words
or ``"quoted phrases"`` for full text. Terms side by side are ANDed; ``OR``, ``NOT``/``-``
and parentheses combine them, with the precedence NOT > AND > OR. The language is
documented for users, with examples, in ``docs/query.md``.

:func:`parse` is pure: no I/O and no SQL. The query planner compiles the AST to
parameterized SQL, so every value here is data, never query text. Parsing fails
closed: an unknown field, an impossible value (``outcome:failed``) or anything ambiguous
raises :class:`~glasslog.errors.QueryError` pointing at the column, rather than being
silently read as full text — a search that quietly matches nothing is how incidents are
missed. For any input string, :func:`parse` raises nothing but ``QueryError``; sizes are
bounded (:data:`MAX_QUERY_LENGTH`, :data:`MAX_DEPTH`, :data:`MAX_TERMS`) so that neither
the parser nor the planner can be made to recurse or work without limit.

Times are RFC 3339 (a date alone, or a time without seconds or offset, is also accepted
and read as UTC) or relative to the ``now`` given to :func:`parse` (``-24h``); every
datetime in the AST is aware and in UTC.
"""

from __future__ import annotations

import difflib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, NamedTuple, TypeAlias

from glasslog.errors import QueryError

# The enumerations are owned by the event schema; the query must accept exactly them.
from glasslog.event import ACTOR_TYPES, MAX_SAFE_INTEGER, OUTCOMES, normalize_ip, parse_time

__all__ = [
    "ALIASES",
    "KNOWN_FIELDS",
    "MAX_DEPTH",
    "MAX_QUERY_LENGTH",
    "MAX_SEQ",
    "MAX_TERMS",
    "And",
    "Compare",
    "CompareOp",
    "Everything",
    "Has",
    "Match",
    "Node",
    "Not",
    "Or",
    "Text",
    "Value",
    "parse",
    "resolve_field",
]

MAX_QUERY_LENGTH: Final = 4096
"""Characters in one query."""
MAX_DEPTH: Final = 32
"""Parentheses nested inside each other."""
MAX_TERMS: Final = 100
"""Terms (words, phrases, matches, comparisons, ``has:``) in one query."""


# --------------------------------------------------------------------------------------
# The AST
# --------------------------------------------------------------------------------------

Value: TypeAlias = str | int | float | datetime
CompareOp: TypeAlias = Literal[">", ">=", "<", "<="]


@dataclass(frozen=True, slots=True)
class Text:
    """Full text: a bare word, or a ``"quoted phrase"`` (``phrase=True``).

    Searched in the text fields and the metadata values; ``text`` is unescaped and
    holds no wildcard (an unescaped ``*`` in a bare word is refused).
    """

    text: str
    phrase: bool


@dataclass(frozen=True, slots=True)
class Match:
    """``field:value``: the field equals ``value``, or matches it as a pattern.

    When ``wildcard`` is true, *every* ``*`` in ``value`` stands for any run of
    characters (possibly empty) and no other character is special; when it is false,
    ``value`` is literal text (it may contain ``*`` written as ``\\*`` or in quotes).
    """

    field: str
    value: str
    wildcard: bool


@dataclass(frozen=True, slots=True)
class Compare:
    """``field OP value``: a time (``time``, ``received``) or a number (``seq``, metadata)."""

    field: str
    op: CompareOp
    value: int | float | datetime


@dataclass(frozen=True, slots=True)
class Has:
    """``has:FIELD``: the event has the field (for metadata: the key path exists)."""

    field: str


@dataclass(frozen=True, slots=True)
class Not:
    """Negation (``-term``, ``NOT term``). Never wraps another ``Not``: ``--a`` is ``a``."""

    node: Node


@dataclass(frozen=True, slots=True)
class And:
    """All of ``nodes`` (at least two, none of them an ``And``)."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``nodes`` (at least two, none of them an ``Or``)."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Everything:
    """The empty query: every event (that the reader may see)."""


Node: TypeAlias = Text | Match | Compare | Has | Not | And | Or | Everything


# --------------------------------------------------------------------------------------
# Fields
# --------------------------------------------------------------------------------------

KNOWN_FIELDS: Final[tuple[str, ...]] = (
    "service",
    "environment",
    "action",
    "category",
    "outcome",
    "id",
    "seq",
    "time",
    "received",
    "reason",
    "actor.id",
    "actor.type",
    "actor.name",
    "actor.email",
    "actor.session_id",
    "source.ip",
    "source.user_agent",
    "source.host",
    "target.type",
    "target.id",
    "target.name",
    "context.request_id",
    "context.trace_id",
    "context.span_id",
    "context.function",
    "context.module",
    "context.version",
    "context.commit",
    "context.host",
)
"""The canonical paths of the schema fields (docs/events.md); ``metadata.<path>`` besides."""

ALIASES: Final[dict[str, str]] = {
    "type": "action",
    "user": "actor.id",
    "actor": "actor.id",
    "email": "actor.email",
    "session": "actor.session_id",
    "env": "environment",
    "ip": "source.ip",
    "request": "context.request_id",
    "trace": "context.trace_id",
    "span": "context.span_id",
    "version": "context.version",
    "function": "context.function",
    "module": "context.module",
    "commit": "context.commit",
}
"""Short names users type, each mapped to the canonical path it stands for."""

_KNOWN: Final = frozenset(KNOWN_FIELDS)
_METADATA_PATH: Final = re.compile(r"metadata(?:\.[A-Za-z0-9_-]+)+")
_TIME_FIELDS: Final = frozenset({"time", "received"})
_PSEUDO_FIELDS: Final = ("after", "before", "has")
_OBJECTS: Final = frozenset({"source", "target", "context", "metadata"})
"""Objects of the schema that ``has:`` accepts as a whole (``actor`` is an alias of actor.id)."""
_ENUMS: Final[dict[str, tuple[str, ...]]] = {"outcome": OUTCOMES, "actor.type": ACTOR_TYPES}
MAX_SEQ: Final = 2**63 - 1
"""The largest seq a store can hold (SQLite integers and PostgreSQL bigints are 64-bit):
a query, a key or a cursor naming a larger one is refused, never passed to the database."""


def resolve_field(name: str, *, query: str | None = None, column: int | None = None) -> str:
    """Return the canonical path of a field name or alias (``user`` → ``actor.id``).

    Names are case-sensitive. An unknown name raises :class:`QueryError` that suggests
    the nearest known field, because a misspelt field must never be ignored: the query
    would silently match nothing, or everything. ``query`` and ``column`` place the
    caret in the message.
    """
    canonical = _canonical(name)
    if canonical is None:
        raise QueryError(_unknown_field(name, ()), query=query, column=column)
    return canonical


def _canonical(name: str) -> str | None:
    if name in _KNOWN:
        return name
    alias = ALIASES.get(name)
    if alias is not None:
        return alias
    if name.startswith("metadata.") and _METADATA_PATH.fullmatch(name) is not None:
        return name
    return None


def _unknown_field(name: str, extra: tuple[str, ...]) -> str:
    """The message for an unknown field: the nearest names, or the list of all of them.

    ``extra`` adds names that are valid where the field was written (``after``,
    ``before``, ``has`` in a query term) to the candidates.
    """
    shown = _show(name)
    if name in {"metadata", "metadata."}:
        return f"field {shown} needs a key path, as in metadata.db.table"
    if name.startswith("metadata."):
        return (
            f"invalid metadata path {shown}: expected metadata.KEY or metadata.KEY.KEY…, "
            "keys made of letters, digits, '_' and '-'"
        )
    candidates: list[str] = []
    lower = name.lower()
    if lower != name and (_canonical(lower) is not None or lower in extra):
        candidates.append(lower)  # Service → service
    first, dot, rest = name.partition(".")
    if dot and difflib.get_close_matches(first.lower(), ["metadata"], n=1, cutoff=0.6):
        guess = f"metadata.{rest}"  # meta.rows, Metadata.rows → metadata.rows
        if _canonical(guess) is not None:
            candidates.append(guess)
    # 'host' or 'request_id' alone: the fields it is the last part of.
    candidates.extend(f for f in KNOWN_FIELDS if "." in f and f.rpartition(".")[2] == name)
    pool = [*KNOWN_FIELDS, *ALIASES, *extra]
    if not candidates:
        candidates = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    unique = list(dict.fromkeys(candidates))[:3]
    if unique:
        quoted = [f"'{c}'" for c in unique]
        options = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        return f"unknown field {shown}; did you mean {options}?"
    return (
        f"unknown field {shown}; known fields are {', '.join(KNOWN_FIELDS)} and "
        f"metadata.<path>; aliases are {', '.join(ALIASES)}"
    )


def _show(text: str) -> str:
    return repr(text if len(text) <= 60 else f"{text[:57]}...")


# --------------------------------------------------------------------------------------
# Lexing and parsing
# --------------------------------------------------------------------------------------

# Token kinds. Terms are built whole by the lexer (their syntax is lexical); the parser
# only sees terms, parentheses, '-' and the keywords.
_TERM, _LPAREN, _RPAREN, _NEG, _NOT, _AND, _OR, _END = range(8)
_KEYWORDS: Final = {"AND": _AND, "OR": _OR, "NOT": _NOT}
_DESCRIBE: Final = {
    _LPAREN: "'('",
    _RPAREN: "')'",
    _NEG: "'-'",
    _NOT: "NOT",
    _AND: "AND",
    _OR: "OR",
    _END: "the end of the query",
}


class _Token(NamedTuple):
    kind: int
    column: int
    node: Node | None = None


# A field name runs up to ':', '<' or '>'; any other of these ending the run makes a word.
_FIELD_END: Final = re.compile(r'[\s:<>()"\\]')
# The characters a backslash may escape. Anything else after '\' is refused rather than
# guessed: a Windows path typed without quotes must not silently lose its backslashes.
_ESCAPABLE: Final = frozenset('\\*"():<>-=')
# What ends or needs a look in an unquoted word (bare) or value (after ':', where ':',
# '<' and '>' are ordinary characters: source.ip:::1).
_WORD_SPECIAL: Final = re.compile(r'[\s()"\\*:<>]')
_QUOTED_SPECIAL: Final = re.compile(r'["\\]')
_VALUE_SPECIAL: Final = re.compile(r'[\s()"\\*]')
_NON_SPACE: Final = re.compile(r"\S+")
_BAD_TEXT: Final = re.compile(r"[\x00\ud800-\udfff]")

_RELATIVE: Final = re.compile(r"-([0-9]{1,9})([smhdw])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# RFC 3339 with seconds, offset and the time itself optional (a date is midnight UTC).
_ABSOLUTE: Final = re.compile(
    r"([0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))"
    r"(?:[Tt ]((?:[01][0-9]|2[0-3]):[0-5][0-9])(:[0-5][0-9](?:\.[0-9]{1,9})?)?"
    r"([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?"
)
_OPERATORS: Final[dict[str, CompareOp]] = {">": ">", ">=": ">=", "<": "<", "<=": "<="}
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

_TIME_FORMS: Final = "such as -24h, now, 2026-11-01 or 2026-11-01T10:00Z"


def parse(query: str, *, now: datetime) -> Node:
    """Parse ``query`` into an AST; relative times (``after:-24h``) count back from ``now``.

    ``now`` must be timezone-aware; it is a parameter rather than the clock so that a
    query means the same thing when it is replayed (pagination, tests). The empty query
    is :class:`Everything`. Any problem raises :class:`QueryError` with the column it is
    at (``error.query`` then shows every whitespace or control character as a space, so
    that the caret lines up).
    """
    offset = now.utcoffset()
    if offset is None:
        raise ValueError(
            f"now must be an aware datetime such as datetime.now(UTC), got {now.isoformat()}"
        )
    now = now.astimezone(UTC) if offset else now.replace(tzinfo=UTC)
    if len(query) > MAX_QUERY_LENGTH:
        # The caret marks the first character over the limit; what follows is not shown.
        raise _Parser(query[: MAX_QUERY_LENGTH + 1], now).error(
            f"the query has {len(query)} characters; at most {MAX_QUERY_LENGTH} are allowed",
            MAX_QUERY_LENGTH,
        )
    return _Parser(query, now).parse()


class _Parser:
    """Recursive descent over tokens: or := and (OR and)*; and := unary (AND? unary)*."""

    __slots__ = ("depth", "now", "position", "query", "tokens")

    def __init__(self, query: str, now: datetime) -> None:
        self.query = query
        self.now = now
        self.tokens: list[_Token] = []
        self.position = 0
        self.depth = 0

    def parse(self) -> Node:
        bad = _BAD_TEXT.search(self.query)
        if bad is not None:
            if bad.group() == "\x00":
                raise self.error(
                    "the query contains a NUL character (U+0000); remove it", bad.start()
                )
            raise self.error(
                f"the query contains a lone surrogate (U+{ord(bad.group()):04X}), which is "
                "not text; fix the query's encoding",
                bad.start(),
            )
        self.tokens = self.lex()
        if self.tokens[0].kind == _END:
            return Everything()
        node = self.parse_or()
        token = self.tokens[self.position]
        if token.kind == _RPAREN:
            raise self.error("unexpected ')': there is no '(' for it to close", token.column)
        return node

    def error(self, message: str, column: int) -> QueryError:
        # Show whitespace and control characters as spaces: a tab or newline would break
        # the caret line, and the columns stay the same.
        display = "".join(c if c.isprintable() else " " for c in self.query)
        return QueryError(message, query=display, column=column)

    # -- grammar ------------------------------------------------------------------------

    def parse_or(self) -> Node:
        nodes: list[Node] = []
        node = self.parse_and("at the start of the query" if self.depth == 0 else "after '('")
        while True:
            nodes.extend(node.nodes if isinstance(node, Or) else (node,))
            if self.tokens[self.position].kind != _OR:
                break
            self.position += 1
            node = self.parse_and("after OR")
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def parse_and(self, where: str) -> Node:
        nodes: list[Node] = []
        node = self.parse_unary(where)
        while True:
            nodes.extend(node.nodes if isinstance(node, And) else (node,))
            kind = self.tokens[self.position].kind
            if kind in (_OR, _RPAREN, _END):
                break
            if kind == _AND:
                self.position += 1
                node = self.parse_unary("after AND")
            else:
                # Implicit AND: the token is a term, '(', '-' or NOT, so cannot be "missing".
                node = self.parse_unary("")
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def parse_unary(self, where: str) -> Node:
        negate = False
        token = self.tokens[self.position]
        while token.kind in (_NEG, _NOT):
            negate = not negate
            where = "after '-'" if token.kind == _NEG else "after NOT"
            self.position += 1
            token = self.tokens[self.position]
        node = self.parse_primary(where)
        if not negate:
            return node
        # --a is a: collapsing keeps the tree shallow whatever the input.
        return node.node if isinstance(node, Not) else Not(node)

    def parse_primary(self, where: str) -> Node:
        token = self.tokens[self.position]
        if token.kind == _TERM and token.node is not None:
            self.position += 1
            return token.node
        if token.kind == _LPAREN:
            if self.depth == MAX_DEPTH:
                raise self.error(
                    f"groups are nested more than {MAX_DEPTH} deep; simplify the query",
                    token.column,
                )
            self.position += 1
            if self.tokens[self.position].kind == _RPAREN:
                raise self.error(
                    "empty group: expected a term between '(' and ')'",
                    self.tokens[self.position].column,
                )
            self.depth += 1
            node = self.parse_or()
            self.depth -= 1
            if self.tokens[self.position].kind != _RPAREN:
                raise self.error(
                    "this '(' is never closed: expected ')' before the end of the query",
                    token.column,
                )
            self.position += 1
            return node
        found = _DESCRIBE[token.kind]
        if token.kind in (_OR, _AND) and where in ("at the start of the query", "after '('"):
            raise self.error(f"expected a term before {found}", token.column)
        raise self.error(f"expected a term {where}, found {found}", token.column)

    # -- lexing -------------------------------------------------------------------------

    def lex(self) -> list[_Token]:
        query = self.query
        end = len(query)
        tokens: list[_Token] = []
        terms = 0
        after_neg = False
        i = 0
        while i < end:
            char = query[i]
            if char.isspace():
                i += 1
                continue
            if char in "()":
                tokens.append(_Token(_LPAREN if char == "(" else _RPAREN, i))
                i += 1
                after_neg = False
                continue
            if char == "-":
                following = query[i + 1] if i + 1 < end else ")"
                if following.isspace() or following == ")":
                    raise self.error(
                        "expected a term or '(' right after '-' (no space between); "
                        "to search for a '-', quote it",
                        i,
                    )
                tokens.append(_Token(_NEG, i))
                i += 1
                after_neg = True
                continue
            keyword = self.keyword_at(i)
            if keyword is not None:
                if after_neg:
                    raise self.error(
                        f"expected a term or '(' after '-', found the keyword {keyword}; "
                        f'to search for the word, quote it: -"{keyword}"',
                        i,
                    )
                tokens.append(_Token(_KEYWORDS[keyword], i))
                i += len(keyword)
                continue
            after_neg = False
            terms += 1
            if terms > MAX_TERMS:
                raise self.error(
                    f"the query has more than {MAX_TERMS} terms; split it into smaller queries",
                    i,
                )
            node, next_i = self.term(i)
            tokens.append(_Token(_TERM, i, node))
            i = next_i
        tokens.append(_Token(_END, end))
        return tokens

    def keyword_at(self, i: int) -> str | None:
        query = self.query
        for keyword in ("OR", "AND", "NOT"):
            if query.startswith(keyword, i):
                after = i + len(keyword)
                if after == len(query) or query[after].isspace() or query[after] in "()":
                    return keyword
        return None

    def term(self, start: int) -> tuple[Node, int]:
        """Lex the term at ``start``: a phrase, a field term or a bare word."""
        query = self.query
        if query[start] == '"':
            text, end = self.quoted(start)
            if not text:
                raise self.error(
                    "empty phrase: put the words to search for between the quotes", start
                )
            return Text(text, phrase=True), end
        found = _FIELD_END.search(query, start)
        run_end = len(query) if found is None else found.start()
        if run_end < len(query) and query[run_end] in ":<>":
            if run_end == start:
                raise self.error(
                    f"expected a field name before {query[start]!r}; to search for the "
                    "text, quote it",
                    start,
                )
            return self.field_term(start, run_end)
        text, star, _, end = self.unquoted(start, word=True)
        if star >= 0:
            raise self.error(
                "a wildcard '*' works only in field:value terms (as in action:db.*); "
                "write \\* to search for a literal '*'",
                star,
            )
        field, equals, rest = query[start:end].partition("=")
        if equals and (_canonical(field) is not None or field in _PSEUDO_FIELDS):
            raise self.error(
                f"':' means equals: write {field}:{rest}; to search for the text, quote it",
                start,
            )
        return Text(text, phrase=False), end

    def quoted(self, start: int) -> tuple[str, int]:
        """Lex the quoted string at ``start``; return its text and where it ends."""
        query = self.query
        end = len(query)
        parts: list[str] = []
        segment = start + 1
        while (found := _QUOTED_SPECIAL.search(query, segment)) is not None:
            i = found.start()
            parts.append(query[segment:i])
            if found.group() == '"':
                i += 1
                if i < end and not (query[i].isspace() or query[i] == ")"):
                    raise self.error("expected a space or ')' after the closing quote", i)
                return "".join(parts), i
            if i + 1 == end:
                break  # a backslash as the last character: the quote is never closed
            self.escape(i)
            parts.append(query[i + 1])
            segment = i + 2
        raise self.error("unterminated quote: expected a closing '\"' for this one", start)

    def unquoted(self, start: int, *, word: bool) -> tuple[str, int, int, int]:
        """Lex an unquoted word or value at ``start`` up to whitespace, ')' or the end.

        Return the unescaped text, the column of the first wildcard ``*`` (-1 if none),
        the number of escaped (literal) stars, and where it ends.
        """
        query = self.query
        special = _WORD_SPECIAL if word else _VALUE_SPECIAL
        parts: list[str] = []
        segment = position = start
        star = -1
        literal_stars = 0
        while True:
            # Jump from special character to special character; plain text is skipped in C.
            found = special.search(query, position)
            if found is None:
                i = len(query)
                break
            i = found.start()
            char = found.group()
            if char == "\\":
                self.escape(i)
                parts.append(query[segment:i])
                escaped = query[i + 1]
                parts.append(escaped)
                literal_stars += escaped == "*"
                segment = position = i + 2
                continue
            if char == "*":
                if star < 0:
                    star = i
                position = i + 1
                continue
            if char == "(":
                raise self.error(
                    "unexpected '(' inside a word; put a space before a group, or write \\(",
                    i,
                )
            if char == '"':
                raise self.error(
                    "unexpected '\"' inside a word; put a space before a phrase, or write \\\"",
                    i,
                )
            if char in ":<>":
                raise self.error(
                    f"unexpected {char!r} in a word that is not a field term; "
                    f"write \\{char}, or quote the text",
                    i,
                )
            break  # whitespace or ')'
        parts.append(query[segment:i])
        return "".join(parts), star, literal_stars, i

    def escape(self, i: int) -> None:
        """Refuse a backslash at ``i`` that does not escape one of the special characters."""
        query = self.query
        if i + 1 >= len(query) or query[i + 1] not in _ESCAPABLE:
            raise self.error(
                'a backslash must escape one of \\ * " ( ) : < > - =; write \\\\ for one',
                i,
            )

    # -- field terms --------------------------------------------------------------------

    def field_term(self, start: int, name_end: int) -> tuple[Node, int]:
        """Lex and check ``name:value`` or ``name OP value`` (``name`` ends at ``name_end``).

        The name is checked before the value is read: when both are wrong, the field is
        the mistake to point at.
        """
        query = self.query
        name = query[start:name_end]
        op = query[name_end]
        if op != ":" and query.startswith("=", name_end + 1):
            op += "="
        pseudo = name in _PSEUDO_FIELDS
        field = name if pseudo else _canonical(name)
        if field is None:
            message = _unknown_field(name, _PSEUDO_FIELDS)
            if "did you mean" not in message:
                raw = _NON_SPACE.match(query, start)
                text = query[start:] if raw is None else raw.group()
                text = text.replace("\\", "\\\\").replace('"', '\\"')
                message += f'; to search for the text, quote it: "{text}"'
            raise self.error(message, start)
        if op != ":":
            if pseudo:
                example = "has:metadata.db" if name == "has" else f"{name}:-24h"
                raise self.error(f"{name} is written with ':', as in {example}", name_end)
            if field not in _TIME_FIELDS and field != "seq" and not field.startswith("metadata."):
                raise self.error(
                    f"{name} cannot be compared with {op}: only time, received, seq and "
                    f"metadata.<path> values compare; use {name}:value to match",
                    name_end,
                )
        elif field in _TIME_FIELDS:
            raise self.error(
                f"{name}: cannot match a value; use after:/before: (after:-24h) or a "
                f"comparison ({name}>=2026-11-01, {name}<2026-11-02)",
                name_end,
            )

        where = f"'{name}{op}'"
        at = name_end + len(op)
        star = -1
        literal_stars = 0
        if at == len(query) or query[at].isspace() or query[at] == ")":
            value = None
            stop = at
        elif query[at] == '"':
            value, stop = self.quoted(at)
        elif query[at] == "(":
            raise self.error(
                f"a value cannot be a group; write ({name}:a OR {name}:b) "
                f"instead of {name}:(a OR b)",
                at,
            )
        else:
            value, star, literal_stars, stop = self.unquoted(at, word=False)

        if name == "has":
            if value is None:
                raise self.error(f"expected a field name after {where}", at)
            if value in _OBJECTS:  # has:target — the event has any target at all
                return Has(value), stop
            return Has(resolve_field(value, query=query, column=at)), stop
        if pseudo or field in _TIME_FIELDS:
            if value is None:
                raise self.error(f"expected a time after {where} {_TIME_FORMS}", at)
            moment = self.time(value, where, at)
            if pseudo:
                return Compare("time", ">=" if name == "after" else "<", moment), stop
            return Compare(field, _OPERATORS[op], moment), stop
        if op == ":":
            return self.match(field, name, value, star, literal_stars, at), stop
        number = self.number(value, where, at, integer=field == "seq")
        return Compare(field, _OPERATORS[op], number), stop

    def match(
        self,
        field: str,
        name: str,
        value: str | None,
        star: int,
        literal_stars: int,
        at: int,
    ) -> Match:
        """Check the value of ``field:value`` and build the :class:`Match`."""
        if value is None:
            raise self.error(
                f"expected a value after '{name}:'; write {name}:\"\" for the empty value", at
            )
        # A quoted value is literal, so only an unquoted one has wildcard stars (star >= 0).
        if star >= 0 and literal_stars:
            raise self.error(
                "a value cannot mix wildcard '*' and literal '\\*': the match would be "
                "ambiguous; use one kind of star",
                star,
            )
        wildcard = star >= 0
        choices = _ENUMS.get(field)
        if choices is not None:
            if wildcard or value not in choices:
                raise self.error(
                    f"{name} takes one of {', '.join(choices)}; found {_show(value)}"
                    + (" (no wildcards; use OR for several)" if wildcard else ""),
                    at,
                )
        elif field == "seq":
            if wildcard or _INTEGER.fullmatch(value) is None or value[0] in "+-":
                raise self.error(f"expected a sequence number (digits) after '{name}:'", at)
            if int(value) > MAX_SEQ:  # a bound parameter past 64 bits would overflow
                raise self.error(
                    f"{_show(value)} after '{name}:' is out of range: a seq is at most "
                    f"{MAX_SEQ} (2**63-1)",
                    at,
                )
            value = str(int(value))
        elif field == "id":
            if wildcard:
                raise self.error(
                    f"'{name}:' takes a whole event id, without wildcards: an id is a UUID "
                    "such as 0192f0c1-8a3b-7c4d-9e2f-0123456789ab",
                    star,
                )
            try:
                uuid.UUID(value)
            except ValueError:
                raise self.error(
                    f"expected an event id (a UUID such as 0192f0c1-8a3b-7c4d-9e2f-0123456789ab) "
                    f"after '{name}:'; found {_show(value)}",
                    at,
                ) from None
            value = value.lower()  # ids are stored in lowercase
        elif field == "source.ip":
            value = value.lower() if wildcard else self.address(value, name, at)
        return Match(field, value, wildcard)

    def address(self, value: str, name: str, at: int) -> str:
        """Normalize an IP address as ingest does, so that ``ip:2001:DB8::1`` finds it."""
        try:
            return normalize_ip(value)
        except ValueError:
            raise self.error(
                f"expected an IP address after '{name}:' such as 203.0.113.5 or 2001:db8::1, "
                "or a wildcard such as 10.0.*",
                at,
            ) from None

    def time(self, value: str, where: str, at: int) -> datetime:
        """Resolve a relative (``-24h``, ``now``) or absolute time to an aware UTC datetime."""
        if value == "now":
            return self.now
        relative = _RELATIVE.fullmatch(value)
        if relative is not None:
            try:
                seconds = int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
                return self.now - timedelta(seconds=seconds)
            except OverflowError:
                raise self.error(
                    f"{_show(value)} after {where} reaches before the year 1", at
                ) from None
        absolute = _ABSOLUTE.fullmatch(value)
        if absolute is None:
            raise self.error(
                f"expected a time after {where} {_TIME_FORMS}; found {_show(value)}", at
            )
        date, minutes, seconds_text, zone = absolute.groups()
        # Complete the text to strict RFC 3339 and let the event schema's parser build it.
        text = f"{date}T{minutes or '00:00'}{seconds_text or ':00'}{zone or 'Z'}"
        try:
            return parse_time(text)
        except ValueError:
            raise self.error(
                f"{_show(value)} after {where} is not a valid date, or is out of range", at
            ) from None

    def number(self, value: str | None, where: str, at: int, *, integer: bool) -> int | float:
        """Read an integer (integral text) or a finite float within the range of JSON."""
        kind = "an integer" if integer else "a number"
        if value is not None:
            if _INTEGER.fullmatch(value) is not None:
                number = int(value)
                if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
                    return number
                raise self.error(
                    f"{_show(value)} after {where} is outside ±(2**53-1), the range of "
                    "numbers in events",
                    at,
                )
            if not integer and _DECIMAL.fullmatch(value) is not None:
                decimal = float(value)
                if abs(decimal) != float("inf"):
                    return decimal
                raise self.error(f"{_show(value)} after {where} is too large a number", at)
        found = "nothing" if value is None else _show(value)
        raise self.error(f"expected {kind} after {where}, found {found}", at)
