"""The web page's ``Database`` on PostgreSQL: a small asyncpg pool.

Every coroutine of the page (handlers, the watcher) may query at once; each
call borrows a pooled connection, and a transaction keeps one for its
statements. The web SQL is portable: placeholders are rewritten, rows come
back as dicts, ``insert`` returns the new id through ``RETURNING id``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from collector.errors import StoreError
from collector.store import pgdb
from collector.store.dialect import dollar_params, rowcount
from collector.web.db import Params, Row, Transaction


class _PostgresTx:
    def __init__(self, conn: Any, dsn: str) -> None:
        self._conn = conn
        self._dsn = dsn

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            return [dict(r) for r in await self._conn.fetch(dollar_params(sql), *params)]
        except pgdb.ERRORS as exc:
            raise pgdb.store_error(self._dsn, exc) from None

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        try:
            row = await self._conn.fetchrow(dollar_params(sql), *params)
        except pgdb.ERRORS as exc:
            raise pgdb.store_error(self._dsn, exc) from None
        return dict(row) if row is not None else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            return rowcount(await self._conn.execute(dollar_params(sql), *params))
        except pgdb.ERRORS as exc:
            raise pgdb.store_error(self._dsn, exc) from None

    async def insert(self, sql: str, params: Params = ()) -> int:
        try:
            new_id = await self._conn.fetchval(dollar_params(sql) + " RETURNING id", *params)
        except pgdb.ERRORS as exc:
            raise pgdb.store_error(self._dsn, exc) from None
        return int(new_id or 0)


class PostgresDatabase:
    """The web ``Database`` over an asyncpg pool; use ``async with``.

    >>> async with PostgresDatabase("postgresql://evalbox@db/evalbox") as db:
    ...     await db.fetch("SELECT id FROM units")
    """

    dialect = "postgresql"

    def __init__(self, dsn: str, *, migrate: bool = True, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.path = pgdb.redact(dsn)
        self._migrate = migrate
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> PostgresDatabase:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._pool is not None:
            raise StoreError("database already open")
        pool = await pgdb.create_pool(self.dsn, max_size=self._pool_size)
        try:
            if self._migrate:
                async with pool.acquire() as conn:
                    await pgdb.apply_postgres_migrations(conn)
        except pgdb.ERRORS as exc:
            await pool.close()
            raise pgdb.store_error(self.dsn, exc) from None
        self._pool = pool

    async def close(self) -> None:
        """Close the pool; safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("database is not open")
        return self._pool

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        async with self.pool.acquire() as conn:
            return await _PostgresTx(conn, self.dsn).fetch(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self.pool.acquire() as conn:
            return await _PostgresTx(conn, self.dsn).fetchone(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PostgresTx(conn, self.dsn)
