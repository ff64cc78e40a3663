"""The one migration runner: named migrations, each in a transaction, recorded in ``schema_migrations``.

Every store (the ingest store, the report and web adapters, tests) applies
``collector.store.schema.MIGRATIONS`` through here. The runner speaks to a
small ``MigrationConnection`` so the PostgreSQL store only supplies its
connection; ``apply_sqlite_migrations`` adapts an aiosqlite connection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import aiosqlite

from collector.store.schema import MIGRATIONS

CREATE_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_ms BIGINT NOT NULL)"


class MigrationConnection(Protocol):
    """What the runner needs: run a statement, fetch rows, and a dialect name (``sqlite`` or ``postgresql``)."""

    dialect: str

    async def run(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]: ...


def statements(sql: str, dialect: str) -> list[str]:
    """Split a migration script into statements (``--`` comments dropped; no ``;`` or ``--`` in literals)."""
    if dialect == "sqlite":
        sql = sql.replace("BYTEA", "BLOB")
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


async def apply_migrations(conn: MigrationConnection) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; the names applied."""
    await conn.run(CREATE_TABLE)
    done = {str(r[0]) for r in await conn.rows("SELECT name FROM schema_migrations")}
    applied: list[str] = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        await conn.run("BEGIN IMMEDIATE" if conn.dialect == "sqlite" else "BEGIN")
        try:
            for stmt in statements(sql, conn.dialect):
                await conn.run(stmt)
            await conn.run(
                "INSERT INTO schema_migrations (name, applied_ms) VALUES (?, ?)", (name, int(time.time() * 1000))
            )
        except BaseException:
            await conn.run("ROLLBACK")
            raise
        await conn.run("COMMIT")
        applied.append(name)
    return applied


class SqliteMigrationConnection:
    """``MigrationConnection`` over an aiosqlite connection opened with ``isolation_level=None``."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._conn.execute(sql, tuple(params))

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        async with self._conn.execute(sql, tuple(params)) as cur:
            return [tuple(r) for r in await cur.fetchall()]


async def apply_sqlite_migrations(conn: aiosqlite.Connection) -> list[str]:
    """Apply pending migrations on an aiosqlite connection (autocommit mode); the names applied."""
    return await apply_migrations(SqliteMigrationConnection(conn))
