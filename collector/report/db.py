"""The little the reports need from a store: run portable SQL, fetch rows.

Reports write their SQL once, with ``?`` placeholders and the common subset
of SQLite and PostgreSQL; an adapter runs it. ``SqliteDatabase`` (aiosqlite)
is here; ``PostgresDatabase`` (``collector.report.pgdb``) translates
placeholders with ``dollar_params``. ``connect_database(url)`` picks one from
a store URL (``sqlite:///PATH`` or a bare path, ``postgresql://…``).
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import aiosqlite

from collector.errors import StoreError
from collector.store.dialect import dollar_params
from collector.store.handle import OneConnection
from collector.store.migrate import apply_sqlite_migrations
from collector.store.url import parse_store_url

if TYPE_CHECKING:
    from collector.report.pgdb import PostgresDatabase

__all__ = [
    "Database",
    "Row",
    "SqliteDatabase",
    "apply_migrations",
    "connect_database",
    "dollar_params",
    "has_table",
    "lock_tables",
]

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


def connect_database(url: str, *, must_exist: bool = True) -> SqliteDatabase | PostgresDatabase:
    """An unopened ``Database`` for a store URL: ``SqliteDatabase`` or ``PostgresDatabase``; use ``async with``."""
    where = parse_store_url(url)
    if where.kind == "postgresql":
        from collector.report.pgdb import PostgresDatabase

        return PostgresDatabase(where.target)
    return SqliteDatabase(where.path, must_exist=must_exist)


class SqliteDatabase(OneConnection[aiosqlite.Connection]):
    """``Database`` over one aiosqlite connection; use as ``async with``."""

    dialect = "sqlite"

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


async def apply_migrations(db: Any) -> list[str]:
    """Apply the store's pending migrations (recorded in ``schema_migrations``); their names.

    The one runner is ``collector.store.migrate``; a PostgreSQL adapter applies
    the same list through its own connection (``db.migrate()``).
    """
    if not isinstance(db, SqliteDatabase):
        applied: list[str] = await db.migrate()
        return applied
    try:
        return await apply_sqlite_migrations(db.conn)
    except sqlite3.Error as exc:
        raise StoreError(f"{db.path}: {exc}") from None


async def lock_tables(db: Database, *tables: str) -> None:
    """Inside a transaction: keep other writers off ``tables`` until it ends.

    SQLite's ``BEGIN IMMEDIATE`` already makes the transaction the only
    writer; PostgreSQL runs writers at once, so there the tables are locked
    in ``SHARE ROW EXCLUSIVE`` mode (reads go on; writes, including ingest's,
    wait; transactions already writing finish first).
    """
    if getattr(db, "dialect", "sqlite") == "postgresql":
        await db.execute(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE")


async def has_table(db: Database, name: str) -> bool:
    """Whether the store has table ``name`` (each engine's catalogue)."""
    if getattr(db, "dialect", "sqlite") == "postgresql":
        rows = await db.fetch("SELECT 1 WHERE to_regclass(?) IS NOT NULL", (name,))
    else:
        rows = await db.fetch("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return bool(rows)
