"""The SQLite store: aiosqlite, WAL, ``synchronous=FULL``, one transaction per batch."""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from collector.errors import StoreError
from collector.store.base import Store
from collector.store.handle import OneConnection
from collector.store.migrate import apply_sqlite_migrations


class SqliteStore(OneConnection[aiosqlite.Connection], Store):
    """``Store`` on one aiosqlite connection (its own thread); the process is the single writer.

    >>> async with SqliteStore("evalbox.db") as store:
    ...     await store.write_batch(rows)
    """

    dialect = "sqlite"

    def __init__(self, path: str | pathlib.Path, *, migrate: bool = True) -> None:
        self.path = pathlib.Path(path)
        self._migrate = migrate
        self._conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        if self._conn is not None:
            raise StoreError("store already open")
        if not self.path.parent.exists():
            raise StoreError(f"{self.path}: directory {self.path.parent} does not exist")
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open ({exc})") from None
        self._conn = conn
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA busy_timeout=10000")
            await conn.execute("PRAGMA temp_store=MEMORY")
            await conn.execute("PRAGMA cache_size=-65536")
            if self._migrate:
                await apply_sqlite_migrations(conn)
            await conn.execute(self.staging_ddl)
        except sqlite3.Error as exc:
            await self.close()
            raise StoreError(f"{self.path}: {exc}") from None

    _closed_message = "store is not open"

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            async with self.conn.execute(sql, tuple(params)) as cur:
                return int(cur.rowcount)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            async with self.conn.execute(sql, tuple(params)) as cur:
                return [tuple(r) for r in await cur.fetchall()]
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    async def _begin(self) -> None:
        await self._run("BEGIN IMMEDIATE")

    async def _commit(self) -> None:
        await self._run("COMMIT")

    async def _rollback(self) -> None:
        if self.conn.in_transaction:
            await self._run("ROLLBACK")
