"""``Database`` on PostgreSQL: one asyncpg connection, reopened when the server drops it.

Several collectors and the admin commands write at once, so the few places
where order matters lock explicitly (``Database.lock``): ``evalbox rebuild``
locks ``events`` and ``rollups`` (ingest's inserts wait for it); an ingest
batch reads ``months`` after ``LOCK TABLE months IN SHARE MODE``, so that
``evalbox month close`` (an insert into ``months``) waits for the batches in
flight and later batches see the month closed. A deadlock or serialization
failure is a ``WriteConflict``: the transaction rolled back whole and may run
again.

Numbers come back as Python ``int`` (or ``float``) as on SQLite:
PostgreSQL's ``SUM`` of a ``BIGINT`` is ``NUMERIC``, which asyncpg would
return as ``Decimal``.

A lost connection (server restart, failover) is reopened before the next
transaction or lone statement; a failed reopen leaves the closed connection
and is tried again next time. Session setup (temporary tables) is replayed
on the new connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from collector.errors import StoreError
from collector.store.database import Database, Params, Row, Rows, WriteConflict, row_of
from collector.store.dialect import dollar_params, postgres_ddl, rowcount
from collector.store.url import redact

ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
CONNECT_TIMEOUT_S = 10


def _numeric(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


class PostgresDatabase(Database):
    """``Database`` over one asyncpg connection.

    >>> async with PostgresDatabase("postgresql://evalbox@db/evalbox") as db:
    ...     await db.fetch("SELECT month FROM months WHERE month >= ?", ("2026-01",))
    """

    dialect = "postgresql"
    driver_errors = ERRORS

    def __init__(self, dsn: str, *, migrate: bool = True, must_exist: bool = False) -> None:
        super().__init__(migrate=migrate, must_exist=must_exist)
        self.dsn = dsn
        self.name = redact(dsn)
        self._conn: asyncpg.Connection | None = None

    def _error(self, exc: BaseException) -> StoreError:
        """A deadlock or serialization failure is a ``WriteConflict``."""
        if isinstance(exc, asyncpg.DeadlockDetectedError | asyncpg.SerializationError):
            return WriteConflict(f"{self.name}: {exc}")
        return StoreError(f"{self.name}: {exc}")

    async def _connect(self) -> None:
        if self._conn is not None:
            raise StoreError(f"{self.name}: already open")
        self._conn = await self._new_connection()

    async def _new_connection(self) -> asyncpg.Connection:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_S)
        except ERRORS as exc:
            raise self._error(exc) from None
        try:
            await conn.set_type_codec("numeric", encoder=str, decoder=_numeric, schema="pg_catalog", format="text")
            for stmt in self._session:
                await conn.execute(stmt)
        except ERRORS as exc:
            await conn.close()
            raise self._error(exc) from None
        return conn

    async def _ready(self) -> None:
        if self.conn.is_closed():
            self._conn = await self._new_connection()

    async def _fetch(self, sql: str, params: Params) -> Rows:
        with self._errors():
            records = await self.conn.fetch(dollar_params(sql), *params)
        return Rows(map(tuple, records), tuple(records[0].keys()) if records else ())

    async def _fetchone(self, sql: str, params: Params) -> Row | None:
        with self._errors():
            record = await self.conn.fetchrow(dollar_params(sql), *params)
        return None if record is None else row_of(tuple(record.keys()), record)

    async def _execute(self, sql: str, params: Params) -> int:
        with self._errors():
            return rowcount(await self.conn.execute(dollar_params(sql), *params))

    async def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._errors():
            await self.conn.executemany(dollar_params(sql), rows)

    async def _copy(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        with self._errors():
            await self.conn.copy_records_to_table(table, records=records, columns=list(columns))

    async def _begin(self) -> None:
        await self._execute("BEGIN", ())

    async def _commit(self) -> None:
        await self._execute("COMMIT", ())

    async def _rollback(self) -> None:
        conn = self._conn
        if conn is None or conn.is_closed() or not conn.is_in_transaction():
            return
        try:
            await conn.execute("ROLLBACK")
        except ERRORS:
            await conn.close()  # unusable: the next transaction reconnects

    def ddl(self, script: str) -> list[str]:
        return postgres_ddl(script)

    async def lock(self, *tables: str, mode: str = "SHARE ROW EXCLUSIVE") -> None:
        await self.execute(f"LOCK TABLE {', '.join(tables)} IN {mode} MODE")

    async def has_table(self, name: str) -> bool:
        return await self.fetchone("SELECT 1 WHERE to_regclass(?) IS NOT NULL", (name,)) is not None

    async def columns(self, table: str) -> list[str]:
        rows = await self.fetch(
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND CAST(table_name AS TEXT) = ? ORDER BY ordinal_position",
            (table,),
        )
        return [str(r[0]) for r in rows]
