"""``Database`` for the reports on PostgreSQL (asyncpg), and the store-URL factory.

The reports' SQL is portable (``?`` placeholders, common functions); this
adapter rewrites placeholders and returns rows as tuples, numbers as ``int``,
exactly as ``SqliteDatabase`` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from collector.errors import StoreError
from collector.report.db import Row
from collector.store import pgdb
from collector.store.dialect import dollar_params, rowcount
from collector.store.handle import OneConnection


class PostgresDatabase(OneConnection[asyncpg.Connection]):
    """``Database`` over one asyncpg connection; use as ``async with``.

    >>> async with PostgresDatabase("postgresql://evalbox@db/evalbox") as db:
    ...     await db.fetch("SELECT month FROM months WHERE month >= ?", ("2026-01",))
    """

    dialect = "postgresql"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.path = pgdb.redact(dsn)  # what error messages name, as SqliteDatabase.path
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> PostgresDatabase:
        if self._conn is not None:
            raise StoreError("database already open")
        self._conn = await pgdb.connect(self.dsn)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return [tuple(r) for r in await self.conn.fetch(dollar_params(sql), *params)]
        except pgdb.ERRORS as exc:
            raise pgdb.store_error(self.dsn, exc) from None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return rowcount(await self.conn.execute(dollar_params(sql), *params))
        except pgdb.ERRORS as exc:
            raise pgdb.store_error(self.dsn, exc) from None

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self.conn.executemany(dollar_params(sql), [tuple(r) for r in rows])
        except pgdb.ERRORS as exc:
            raise pgdb.store_error(self.dsn, exc) from None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.conn.transaction():
            yield

    async def migrate(self) -> list[str]:
        """Apply the store's pending migrations; their names."""
        try:
            return await pgdb.apply_postgres_migrations(self.conn)
        except pgdb.ERRORS as exc:
            raise pgdb.store_error(self.dsn, exc) from None
