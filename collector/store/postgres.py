"""The PostgreSQL store: asyncpg, one connection per collector, several collectors at once.

Same schema, migrations and batch logic as SQLite (``collector.store.base``);
what differs is how a batch gets in and how writers share the store:

- the batch goes into the session's ``staging`` table with ``COPY`` (binary,
  one round trip) instead of one ``INSERT`` per row;
- ``INSERT INTO events … ON CONFLICT DO NOTHING RETURNING`` says which events
  this transaction stored. Several collectors write at once, and an event
  another collector is committing at that moment is invisible to a ``SELECT``
  but not to the unique index: the insert waits for the other commit, then
  skips the row, so only the writer that stored an event rolls it up;
- the batch reads ``months`` after ``LOCK TABLE months IN SHARE MODE``:
  ``evalbox month close`` (an insert into ``months``) waits for the batches in
  flight, and batches after it see the month closed and store ``late``;
- rollup rows are upserted in one fixed order, so two writers do not
  deadlock; if PostgreSQL still reports a deadlock or a serialization failure,
  the whole batch is retried (it rolled back whole).

A lost connection (server restart, failover) is reopened at the next
transaction; the batch that failed is retried by the pipeline.

An asyncpg connection runs one operation at a time, and the collector's
tasks share the store (the writer's batches, the box-command and registry
loops): a statement outside a transaction waits until the transaction in
progress has ended, so it neither collides with it nor runs inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from collector.errors import StoreError
from collector.store import pgdb
from collector.store.base import EVENT_COLUMNS, RetryBatch, Store
from collector.store.dialect import dollar_params, postgres_ddl, rowcount
from collector.store.handle import OneConnection

_COLS = ", ".join(EVENT_COLUMNS)
_STAGING_COLUMNS = ("idx", *EVENT_COLUMNS, "late", "dup")
# Every staged event starts as a duplicate; the insert below clears ``dup`` for the ones it stored.
_INSERT_NEW = (
    f"WITH ins AS (INSERT INTO events ({_COLS}, late) SELECT {_COLS}, late FROM staging"
    " ORDER BY device_id, boot, seq ON CONFLICT (device_id, boot, seq) DO NOTHING"
    " RETURNING device_id, boot, seq)"
    " UPDATE staging s SET dup = 0 FROM ins"
    " WHERE s.device_id = ins.device_id AND s.boot = ins.boot AND s.seq = ins.seq"
)


class PostgresStore(OneConnection[asyncpg.Connection], Store):
    """``Store`` on one asyncpg connection; several collectors may share the database.

    >>> async with PostgresStore("postgresql://evalbox@db/evalbox") as store:
    ...     await store.write_batch(rows)
    """

    dialect = "postgresql"
    write_attempts = 5
    _closed_message = "store is not open"

    def __init__(self, dsn: str, *, migrate: bool = True) -> None:
        self.dsn = dsn
        self.path = pgdb.redact(dsn)  # what messages name (as SqliteStore.path)
        self._migrate = migrate
        self._conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        if self._conn is not None:
            raise StoreError("store already open")
        self._conn = await self._connect(self._migrate)

    async def _connect(self, migrate: bool) -> asyncpg.Connection:
        conn = await pgdb.connect(self.dsn)
        try:
            if migrate:
                await pgdb.apply_postgres_migrations(conn)
            for stmt in postgres_ddl(self.staging_ddl):
                await conn.execute(stmt)
        except pgdb.ERRORS as exc:
            await conn.close()
            raise pgdb.store_error(self.dsn, exc) from None
        return conn

    def _error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, asyncpg.DeadlockDetectedError | asyncpg.SerializationError):
            return RetryBatch(f"{self.path}: {exc}")
        return pgdb.store_error(self.dsn, exc)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection, once no other task's transaction holds it; errors as ``StoreError``."""
        try:
            if self._tx_owner is not None and self._tx_owner is asyncio.current_task():
                yield self.conn
            else:
                async with self._tx_lock:
                    yield await self._live()
        except pgdb.ERRORS as exc:
            raise self._error(exc) from None

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._turn() as conn:
            return rowcount(await conn.execute(dollar_params(sql), *params))

    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        async with self._turn() as conn:
            await conn.executemany(dollar_params(sql), [tuple(r) for r in rows])

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._turn() as conn:
            return [tuple(r) for r in await conn.fetch(dollar_params(sql), *params)]

    async def _live(self) -> asyncpg.Connection:
        """The connection, reopened if the server dropped it (restart, failover) since the last statement.

        If the server is still away this raises, and the closed connection stays: the next call tries again.
        """
        if self.conn.is_closed():
            self._conn = await self._connect(migrate=False)
        return self.conn

    async def _begin(self) -> None:
        await self._live()
        await self._run("BEGIN")

    async def _commit(self) -> None:
        await self._run("COMMIT")

    async def _rollback(self) -> None:
        conn = self.conn
        if conn.is_closed() or not conn.is_in_transaction():
            return
        try:
            await conn.execute("ROLLBACK")
        except pgdb.ERRORS:
            await conn.close()  # unusable: the next transaction reconnects

    # ---- the batch, PostgreSQL's way ----

    async def _closed_months(self) -> set[str]:
        await self._run("LOCK TABLE months IN SHARE MODE")
        return await super()._closed_months()

    async def _stage(self, rows: list[tuple[Any, ...]]) -> None:
        async with self._turn() as conn:
            await conn.copy_records_to_table("staging", records=[(*r, 1) for r in rows], columns=_STAGING_COLUMNS)

    async def _insert_new(self) -> set[int]:
        await self._run(_INSERT_NEW)
        return {int(r[0]) for r in await self._rows("SELECT idx FROM staging WHERE dup = 1")}
