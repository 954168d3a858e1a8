"""Stores: where a log's events, tiles and checkpoints live (DESIGN §7).

``open_store`` picks the backend from a store spec: a ``postgresql://`` DSN opens
PostgreSQL, anything else is the path of an embedded SQLite file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from glasslog.errors import ConfigError
from glasslog.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from glasslog.store.base import Store
    from glasslog.store.search import Search

POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def is_postgres(spec: str | Path) -> bool:
    """Whether a store spec names a PostgreSQL database."""
    return str(spec).startswith(POSTGRES_PREFIXES)


def open_store(spec: str | Path, *, create: bool = False, readonly: bool = False) -> Store:
    """Open (or with ``create``, create) the store named by ``spec``."""
    if not is_postgres(spec) and any(k in str(spec) for k in ("dbname=", "host=", "user=")):
        # A libpq "key=value" string would otherwise become the name of a new SQLite file.
        raise ConfigError(
            "the store looks like PostgreSQL connection settings; give it as a URL: "
            "postgresql://user@host:port/database"
        )
    if is_postgres(spec):
        # Imported here: psycopg is an optional dependency (glasslog[postgres]).
        from glasslog.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore.open(str(spec), create=create)
    return SQLiteStore.open(Path(spec), create=create, readonly=readonly)


def searcher_for(store: Store, *, timeout: float) -> Search:
    """The query executor for ``store``'s backend, on the store's own connection."""
    if isinstance(store, SQLiteStore):
        from glasslog.store.sqlite_search import SQLiteSearch  # noqa: PLC0415

        return SQLiteSearch(store.connection, timeout=timeout)
    from glasslog.store.postgres import PostgresStore  # noqa: PLC0415
    from glasslog.store.postgres_search import PostgresSearch  # noqa: PLC0415

    if isinstance(store, PostgresStore):
        return PostgresSearch(store.connection, timeout=timeout)
    raise ConfigError(f"no query executor for a {type(store).__name__}")
