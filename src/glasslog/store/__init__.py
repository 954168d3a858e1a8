"""Stores: where a log's events, tiles and checkpoints live (docs/architecture.md).

``open_store`` picks the backend from a store spec: a ``postgresql://`` DSN opens
PostgreSQL, a plain path is an embedded SQLite file, and any other URL is refused
(``mysql://…`` must not become the name of a new SQLite file).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from glasslog.errors import ConfigError
from glasslog.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from glasslog.store.base import Store
    from glasslog.store.search import Search

POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):(//)?")  # one letter: a drive (C:)
_SQLITE_SCHEMES = frozenset({"sqlite", "sqlite3", "file"})


def is_postgres(spec: str | Path) -> bool:
    """Whether a store spec names a PostgreSQL database."""
    return str(spec).startswith(POSTGRES_PREFIXES)


def _refuse_other_urls(spec: str) -> None:
    """Refuse a URL that names no backend glasslog has, naming only its scheme.

    Only the scheme is echoed: the rest of a URL may hold a password.
    """
    found = _URL_SCHEME.match(spec)
    if found is None:
        return
    scheme = found.group(1).lower()
    if scheme in _SQLITE_SCHEMES:
        raise ConfigError(
            f"a SQLite store is given as a plain file path, not a {scheme}: URL; "
            "write for example --store /var/lib/glasslog/glasslog.db"
        )
    if found.group(2) is not None and f"{scheme}://" in POSTGRES_PREFIXES:
        raise ConfigError(f"write the store's scheme in lowercase, as {scheme}://…")
    if found.group(2) is not None:
        raise ConfigError(
            f"unsupported store {scheme}://…: glasslog stores events in PostgreSQL "
            "(postgresql://… or postgres://…) or in a SQLite file (a file path)"
        )


def open_store(
    spec: str | Path, *, create: bool = False, readonly: bool = False, cache_mib: int = 64
) -> Store:
    """Open (or with ``create``, create) the store named by ``spec``.

    ``cache_mib``: the page cache of a SQLite writer's connection (PostgreSQL caches on
    the server). ``glasslog ingest`` keeps the indexes hot in 64 MiB; a server, which
    holds reader connections and request bodies beside its writer, spends less.
    """
    if isinstance(spec, str) and not is_postgres(spec):
        _refuse_other_urls(spec)
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
    return SQLiteStore.open(Path(spec), create=create, readonly=readonly, cache_mib=cache_mib)


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
