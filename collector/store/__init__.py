"""The store: every database connection, PRAGMA, migration and driver import of the collector lives here.

``connect(url)`` gives a ``Database`` (SQLite via aiosqlite, PostgreSQL via
asyncpg) for any part that reads or writes the store; ``open_store(url)``
gives the ingest writer (``Store``) on its own connection::

    async with connect("sqlite:///var/lib/evalbox/evalbox.db") as db:
        rows = await db.fetch("SELECT id, name FROM units")

    async with open_store("postgresql://evalbox@db/evalbox") as store:
        stored = await store.write_batch(rows)
"""

from __future__ import annotations

import pathlib

from collector.store.database import Database, Row, Rows, WriteConflict
from collector.store.records import EVENT_COLUMNS, BoxSettings, Device, Officer, Rejection, StatusUpdate
from collector.store.url import StoreUrl, parse_store_url
from collector.store.writer import Store

__all__ = [
    "EVENT_COLUMNS",
    "BoxSettings",
    "Database",
    "Device",
    "Officer",
    "Rejection",
    "Row",
    "Rows",
    "StatusUpdate",
    "Store",
    "StoreUrl",
    "WriteConflict",
    "connect",
    "open_store",
    "parse_store_url",
]


def connect(
    url: str | StoreUrl,
    *,
    base: pathlib.Path | None = None,
    migrate: bool = True,
    must_exist: bool = False,
    cache_mb: int | None = None,
) -> Database:
    """The ``Database`` for a store URL (not yet open: ``async with``): ``sqlite:///PATH``, a path, ``postgresql://…``.

    Relative SQLite paths start at ``base`` (default: the working directory).
    ``must_exist``: a store that is not there yet (no SQLite file, no
    ``schema_migrations``) is an error, not a new store. ``cache_mb``: SQLite's page cache cap (default 64 MB; it grows
    only as used).
    """
    where = url if isinstance(url, StoreUrl) else parse_store_url(url, base=base)
    if where.kind == "postgresql":
        from collector.store.postgres import PostgresDatabase

        return PostgresDatabase(where.target, migrate=migrate, must_exist=must_exist)
    from collector.store.sqlite import DEFAULT_CACHE_MB, SqliteDatabase

    return SqliteDatabase(where.path, migrate=migrate, must_exist=must_exist, cache_mb=cache_mb or DEFAULT_CACHE_MB)


def open_store(
    url: str | StoreUrl, *, base: pathlib.Path | None = None, migrate: bool = True, must_exist: bool = False
) -> Store:
    """The ingest writer for ``url`` on its own connection (not yet open: ``async with``)."""
    return Store(connect(url, base=base, migrate=migrate, must_exist=must_exist))
