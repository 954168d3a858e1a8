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
