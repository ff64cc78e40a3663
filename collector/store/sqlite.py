"""``Database`` on SQLite: one aiosqlite connection (its own thread), WAL, ``synchronous=FULL``.

The collector is SQLite's single writer; readers in other processes (the
CLI, ``evalbox web``) run beside it thanks to WAL and wait up to
``busy_timeout`` for the write lock.
"""

from __future__ import annotations

import ctypes
import pathlib
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

from collector.errors import StoreError
from collector.store.database import Database, Params, Row, Rows, row_of
from collector.store.dialect import sqlite_ddl

BUSY_TIMEOUT_MS = 10_000
DEFAULT_CACHE_MB = 64


class SqliteDatabase(Database):
    """``Database`` over one aiosqlite connection.

    >>> async with SqliteDatabase("evalbox.db") as db:
    ...     await db.fetch("SELECT id FROM units")
    """

    dialect = "sqlite"
    driver_errors = (sqlite3.Error,)

    def __init__(
        self,
        path: str | pathlib.Path,
        *,
        migrate: bool = True,
        must_exist: bool = False,
        cache_mb: int = DEFAULT_CACHE_MB,
    ) -> None:
        super().__init__(migrate=migrate, must_exist=must_exist)
        self.path = pathlib.Path(path)
        self.name = str(self.path)
        self._cache_mb = cache_mb
        self._conn: aiosqlite.Connection | None = None

    async def _connect(self) -> None:
        if self._conn is not None:
            raise StoreError(f"{self.name}: already open")
        if self._must_exist and not self.path.is_file():
            raise StoreError(f"{self.name}: no such store (check --db or [store] url)")
        if not self.path.parent.is_dir():
            raise StoreError(f"{self.name}: directory {self.path.parent} does not exist")
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.name}: cannot open ({exc})") from None
        self._conn = conn
        try:
            for pragma in (
                "journal_mode=WAL",
                "synchronous=FULL",
                f"busy_timeout={BUSY_TIMEOUT_MS}",
                "temp_store=MEMORY",
                # The page cache grows only as used (a rebuild reads a month's rows through an index).
                f"cache_size=-{int(self._cache_mb) * 1024}",
            ):
                await conn.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as exc:
            await self.close()
            raise StoreError(f"{self.name}: {exc}") from None

    async def _ready(self) -> None:
        self.conn  # noqa: B018 (raises when closed)

    async def _fetch(self, sql: str, params: Params) -> Rows:
        with self._errors():
            async with self.conn.execute(sql, params) as cur:
                rows = await cur.fetchall()
                return Rows(rows, tuple(d[0] for d in cur.description or ()))

    async def _fetchone(self, sql: str, params: Params) -> Row | None:
        with self._errors():
            async with self.conn.execute(sql, params) as cur:
                row = await cur.fetchone()
                return row_of(tuple(d[0] for d in cur.description), row) if row is not None else None

    async def _execute(self, sql: str, params: Params) -> int:
        with self._errors():
            async with self.conn.execute(sql, params) as cur:
                return int(cur.rowcount)

    async def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._errors():
            await self.conn.executemany(sql, rows)

    async def _copy(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        marks = ", ".join("?" * len(columns))
        await self._executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", records)

    async def _begin(self) -> None:
        await self._execute("BEGIN IMMEDIATE", ())

    async def _commit(self) -> None:
        await self._execute("COMMIT", ())

    async def _rollback(self) -> None:
        conn = self._conn
        if conn is None or not conn.in_transaction:
            return
        try:
            await conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolled it back itself (an I/O or full-disk error ends the transaction)

    def ddl(self, script: str) -> list[str]:
        return sqlite_ddl(script)

    async def lock(self, *tables: str, mode: str = "SHARE ROW EXCLUSIVE") -> None:
        return None  # BEGIN IMMEDIATE: this transaction is the only writer already

    async def has_table(self, name: str) -> bool:
        return await self.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)) is not None

    async def columns(self, table: str) -> list[str]:
        return [str(r[0]) for r in await self.fetch("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))]


def _memory_used() -> Callable[[], int] | None:
    """SQLite's own allocator total for this process (page cache included), or None where it cannot be read.

    The ``sqlite3`` module does not expose ``sqlite3_memory_used()``; its extension links the library,
    so ctypes finds the function there (the same library instance the store uses).
    """
    try:
        import _sqlite3

        fn = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    except (ImportError, OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int64
    fn.argtypes = []
    return lambda: int(fn())


SQLITE_MEMORY_USED = _memory_used()
"""``() -> bytes`` SQLite holds in this process (the ``/metrics`` gauge), or None."""
