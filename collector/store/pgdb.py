"""PostgreSQL connections for the store (asyncpg): setup, errors, migrations.

The report and web adapters (``collector.report.pgdb``, ``collector.web.pgdb``)
run their portable SQL through these helpers. Numbers come back as Python
``int`` (or ``float``) on both stores: PostgreSQL's ``SUM`` of a ``BIGINT``
is ``NUMERIC``, which asyncpg would return as ``Decimal``.

Writers at once: SQLite has one writer (``BEGIN IMMEDIATE``); PostgreSQL runs
several collectors and the admin commands concurrently, so the few places
where order matters lock explicitly. ``evalbox rebuild`` locks ``events`` and
``rollups`` in ``SHARE ROW EXCLUSIVE`` mode (ingest's inserts wait for it).
An ingest batch should read ``months`` (for ``late``) after
``LOCK TABLE months IN SHARE MODE``, so that ``evalbox month close`` (an
insert into ``months``) waits for batches in flight and later batches see the
month closed.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from collector.errors import StoreError
from collector.store.dialect import postgres_ddl
from collector.store.schema import MIGRATIONS

# One key for every evalbox store: collectors starting together migrate one at a time.
MIGRATION_LOCK = 0x65766C62  # "evlb"


def _numeric(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


async def setup_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: ``NUMERIC`` decoded as ``int``/``float`` like SQLite's."""
    await conn.set_type_codec("numeric", encoder=str, decoder=_numeric, schema="pg_catalog", format="text")


def store_error(dsn: str, exc: BaseException) -> StoreError:
    """A ``StoreError`` naming the store (without its password)."""
    return StoreError(f"{redact(dsn)}: {exc}")


def redact(dsn: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``."""
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return dsn
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


async def connect(dsn: str, *, must_exist: bool = True) -> asyncpg.Connection:
    """One connection, set up; ``StoreError`` when the server or database is not there."""
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise store_error(dsn, exc) from None
    await setup_connection(conn)
    return conn


async def create_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    """A small pool of set-up connections."""
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, init=setup_connection)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise store_error(dsn, exc) from None
    assert pool is not None
    return pool


async def apply_postgres_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply the store's pending migrations on PostgreSQL, each in a transaction and recorded; their names.

    Same names and order as on SQLite (``schema_migrations``); an advisory
    lock keeps two collectors starting at once from racing.
    """
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_ms BIGINT NOT NULL)"
        )
        done = {r[0] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, script in MIGRATIONS:
            if name in done:
                continue
            # PostgreSQL DDL is transactional: the pending migrations commit together or not at all.
            for stmt in postgres_ddl(script):
                await conn.execute(stmt)
            await conn.execute(
                "INSERT INTO schema_migrations (name, applied_ms) VALUES ($1, $2)", name, int(time.time() * 1000)
            )
            applied.append(name)
    return applied


async def has_table(conn: asyncpg.Connection, name: str) -> bool:
    """Whether the current schema has table ``name``."""
    found: Any = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
    return bool(found)


ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
