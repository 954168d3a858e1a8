"""SQL as an attacker with write access to the database runs it: every guard bypassed.

The tamper suites ask what ``verify`` and the writers notice when someone changes the
store behind glasslog's back. On SQLite that someone drops the triggers first; on
PostgreSQL a superuser skips them with ``session_replication_role = replica``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable


def run_as_attacker(spec: str, statements: Iterable[str]) -> None:
    """Run ``statements`` on the store ``spec`` (a SQLite path or PostgreSQL URL), unguarded."""
    if spec.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(spec, autocommit=True) as pg:
            pg.execute("SET session_replication_role = replica")
            pg.execute("SET search_path TO glasslog")
            for statement in statements:
                pg.execute(statement.encode())
        return
    conn = sqlite3.connect(spec, isolation_level=None)
    try:
        triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for (name,) in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()
