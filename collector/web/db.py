"""The web page's view of the store: a few async calls over one connection.

``Database`` is the interface the web package needs (``fetch``, ``fetchone``,
``execute``, ``transaction``); ``SqliteDatabase`` implements it on aiosqlite.
SQL in ``collector.web`` uses ``?`` placeholders and the common subset of
SQLite and PostgreSQL, so a PostgreSQL adapter only has to rewrite ``?`` to
``$n`` (``collector.web.pgdb.PostgresDatabase``); ``connect_database(url)``
picks the adapter from a store URL. When the store package lands (``collector.store.sqlite``), an adapter
over its connection replaces ``SqliteDatabase``.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import aiosqlite

from collector.errors import StoreError
from collector.store.handle import OneConnection
from collector.store.migrate import apply_sqlite_migrations
from collector.store.url import parse_store_url

if TYPE_CHECKING:
    from collector.web.pgdb import PostgresDatabase

Row = dict[str, Any]
Params = Sequence[Any]


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


class Database(Protocol):
    """What the web page needs from the store."""

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own transaction; the affected row count."""
        ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]: ...


class Transaction(Protocol):
    """Statements that commit together or not at all."""

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Params = ()) -> int: ...

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT; the new row's id (``INTEGER PRIMARY KEY``), 0 when ON CONFLICT skipped it."""
        ...


class _SqliteTx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._conn.execute(sql, params) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._conn.execute(sql, params) as cur:
            row = await cur.fetchone()
            return dict(row) if row is not None else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._conn.execute(sql, params) as cur:
            return cur.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        async with self._conn.execute(sql, params) as cur:
            return int(cur.lastrowid or 0) if cur.rowcount == 1 else 0


def connect_database(url: str, *, migrate: bool = True) -> SqliteDatabase | PostgresDatabase:
    """An unopened web ``Database`` for a store URL (``sqlite:///PATH``, a bare path, ``postgresql://…``)."""
    where = parse_store_url(url)
    if where.kind == "postgresql":
        from collector.web.pgdb import PostgresDatabase

        return PostgresDatabase(where.target, migrate=migrate)
    return SqliteDatabase(where.path, migrate=migrate)


class SqliteDatabase(OneConnection[aiosqlite.Connection]):
    """One aiosqlite connection (WAL, ``synchronous=FULL``); use ``async with``.

    >>> async with SqliteDatabase("evalbox.db") as db:
    ...     await db.fetch("SELECT id FROM units")
    """

    dialect = "sqlite"

    def __init__(self, path: str | pathlib.Path, *, migrate: bool = True) -> None:
        self.path = str(path)
        self._migrate = migrate
        self._conn: aiosqlite.Connection | None = None
        # One connection is shared by every coroutine: a transaction holds it alone
        # (else a second BEGIN would nest, and a reader would see uncommitted rows).
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> SqliteDatabase:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._conn is not None:
            raise StoreError("database already open")
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except Exception as exc:  # sqlite3.Error and OSError both mean: cannot open
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA busy_timeout=5000")
        self._conn = conn
        if self._migrate:
            await apply_migrations(self)

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._lock:
            return await _SqliteTx(self.conn).fetch(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._lock:
            return await _SqliteTx(self.conn).fetchone(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            conn = self.conn
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")


async def apply_migrations(db: SqliteDatabase) -> None:
    """Apply every migration not yet recorded (the one runner, ``collector.store.migrate``)."""
    await apply_sqlite_migrations(db.conn)
