"""The little the reports need from a store: run portable SQL, fetch rows.

Reports write their SQL once, with ``?`` placeholders and the common subset
of SQLite and PostgreSQL; an adapter runs it. ``SqliteDatabase`` (aiosqlite)
is here; a PostgreSQL adapter translates placeholders with ``dollar_params``.
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import aiosqlite

from collector.errors import StoreError
from collector.store.migrate import apply_sqlite_migrations

Row = tuple[Any, ...]


class Database(Protocol):
    """An open store connection the reports can query."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in the current transaction; the number of rows changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""
        ...

    def transaction(self) -> Any:
        """``async with db.transaction():`` commits on success, rolls back on error."""
        ...


def dollar_params(sql: str) -> str:
    """``?`` placeholders to PostgreSQL's ``$1, $2 …`` (none of our SQL has ``?`` in literals)."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]


class SqliteDatabase:
    """``Database`` over one aiosqlite connection; use as ``async with``."""

    def __init__(self, path: str | pathlib.Path, *, must_exist: bool = True, cache_mb: int = 512) -> None:
        self.path = pathlib.Path(path)
        self._must_exist = must_exist
        self._cache_mb = cache_mb
        self._conn: aiosqlite.Connection | None = None

    async def __aenter__(self) -> SqliteDatabase:
        if self._conn is not None:
            raise StoreError("database already open")
        if self._must_exist and not self.path.exists():
            raise StoreError(f"{self.path}: no such store (check --db or [store] url)")
        try:
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self._conn.execute("PRAGMA synchronous=FULL")
            await self._conn.execute("PRAGMA busy_timeout=10000")
            # Page cache grows only as used; a rebuild reads a month's rows through an index.
            await self._conn.execute(f"PRAGMA cache_size=-{int(self._cache_mb) * 1024}")
            await self._conn.execute("PRAGMA temp_store=MEMORY")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError("database is not open")
        return self._conn

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            async with self.conn.execute(sql, tuple(params)) as cur:
                return [tuple(r) for r in await cur.fetchall()]
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            async with self.conn.execute(sql, tuple(params)) as cur:
                return cur.rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    async def executescript(self, script: str) -> None:
        try:
            await self.conn.executescript(script)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        await self.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await self.execute("ROLLBACK")
            raise
        await self.execute("COMMIT")


async def apply_migrations(db: SqliteDatabase) -> list[str]:
    """Apply the store's pending migrations through the one runner, ``collector.store.migrate``; their names."""
    try:
        return await apply_sqlite_migrations(db.conn)
    except sqlite3.Error as exc:
        raise StoreError(f"{db.path}: {exc}") from None


async def has_table(db: Database, name: str) -> bool:
    """Whether the store has table ``name`` (SQLite catalogue)."""
    rows = await db.fetch("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return bool(rows)
