"""The exceptions glasslog raises, all rooted at :class:`GlasslogError`.

Every message says what was wrong and, where there is one, how to fix it. Errors
from sqlite3 (and later psycopg) are wrapped at the store boundary, so callers only
ever catch glasslog's own types (plus ``KeyboardInterrupt``: ``glasslog.ingest.bulk.Interrupted``
is one that says what an interrupted ingest stored)::

    GlasslogError
    ├── ConfigError            bad option, missing or unreadable data directory / key
    ├── InputError             an input (a file, stdin, a gzip stream) could not be read to its end
    ├── EventError             one event is invalid (carries every problem with its JSON path)
    ├── ConflictError          an id is reused with different content
    ├── LedgerError            tamper-evidence failures
    │   ├── ProofError         an inclusion / consistency proof does not verify
    │   ├── NoteError          a signed note or checkpoint is malformed or badly signed
    │   └── IntegrityError     stored data does not match the tree / checkpoints (names the seq)
    ├── StoreError             the database failed or refused an operation
    │   ├── NotFoundError      no event / checkpoint with that key
    │   │   └── PrunedError    the event was stored, then its payload pruned by retention
    │   └── DuplicateIdError   an event id is already stored (the pipeline resolves it)
    ├── CanonicalError         a value cannot be encoded as RFC 8785 canonical JSON
    └── QueryError             a query does not parse, names an unknown field, or ran out of time
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class GlasslogError(Exception):
    """Root of every error glasslog raises on purpose."""


class ConfigError(GlasslogError):
    """A setting, the data directory or a key file is missing or wrong."""


class InputError(GlasslogError):
    """The input could not be read to its end; what came before it was stored and signed."""


class CanonicalError(GlasslogError):
    """A value has no RFC 8785 canonical form (NaN, infinity, lone surrogate, …)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an event: where (a JSON path such as ``$.actor.id``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class EventError(GlasslogError):
    """An event failed validation; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid event")


class ConflictError(GlasslogError):
    """An event id was sent again with different content; ids are idempotency keys."""


class LedgerError(GlasslogError):
    """Base of every tamper-evidence failure."""


class ProofError(LedgerError):
    """An inclusion or consistency proof does not verify."""


class NoteError(LedgerError):
    """A signed note or checkpoint is malformed, unsigned by a known key, or badly signed."""


class IntegrityError(LedgerError):
    """Stored data disagrees with the Merkle tree or a signed checkpoint.

    ``seq`` names the first inconsistent leaf when it can be pinned down.
    """

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        # Verification runs in worker processes; keep ``seq`` across pickling.
        return (_integrity_error, (str(self), self.seq))


class StoreError(GlasslogError):
    """The database failed, or refused an operation (for example an UPDATE of an event)."""


class NotFoundError(StoreError):
    """No event or checkpoint matches the key asked for."""


class PrunedError(NotFoundError):
    """The event existed (its seq and leaf stay in the tree), but retention pruned its payload.

    ``seq`` is the event's; ``pruned_at`` is the RFC 3339 time it was pruned. The
    server answers 410 Gone.
    """

    def __init__(self, seq: int, pruned_at: str) -> None:
        self.seq = seq
        self.pruned_at = pruned_at
        super().__init__(f"event {seq} was pruned by retention at {pruned_at}")

    def __reduce__(self) -> tuple[object, ...]:
        return (PrunedError, (self.seq, self.pruned_at))


class DuplicateIdError(StoreError):
    """A batch held an event id that is already stored.

    The pipeline writes optimistically and catches this to fall back to looking the
    ids up; users only ever see the resolved outcome (duplicate or conflict).
    """


def _integrity_error(message: str, seq: int | None) -> IntegrityError:
    return IntegrityError(message, seq=seq)


class QueryError(GlasslogError):
    """A query is malformed or could not be answered.

    When the problem has a place in the query text, ``query`` and ``column`` (0-based)
    are set and ``str()`` shows the query with a caret under that column.
    """

    def __init__(
        self, message: str, *, query: str | None = None, column: int | None = None
    ) -> None:
        self.message = message
        self.query = query
        self.column = column
        text = message
        if query is not None and column is not None:
            text = f"{message}\n  {query}\n  {' ' * column}^"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (_query_error, (self.message, self.query, self.column))


def _query_error(message: str, query: str | None, column: int | None) -> QueryError:
    return QueryError(message, query=query, column=column)
