"""Storage: one interface (``Store``), SQLite (aiosqlite) by default, PostgreSQL (asyncpg) at scale.

``open_store(url)`` picks the implementation by URL scheme::

    async with open_store("sqlite:///var/lib/evalbox/evalbox.db") as store:
        stored = await store.write_batch(rows)
"""

from __future__ import annotations

import pathlib

from collector.store.base import EVENT_COLUMNS, Device, Officer, Rejection, StatusUpdate, Store
from collector.store.migrate import apply_migrations, apply_sqlite_migrations
from collector.store.url import parse_store_url

__all__ = [
    "EVENT_COLUMNS",
    "Device",
    "Officer",
    "Rejection",
    "StatusUpdate",
    "Store",
    "apply_migrations",
    "apply_sqlite_migrations",
    "open_store",
]


def open_store(url: str, *, base: pathlib.Path | None = None, migrate: bool = True) -> Store:
    """The store for ``url`` (not yet open: use ``async with``): ``sqlite:///PATH`` or ``postgresql://…``."""
    where = parse_store_url(url, base=base)
    if where.kind == "postgresql":
        from collector.store.postgres import PostgresStore

        return PostgresStore(where.target, migrate=migrate)
    from collector.store.sqlite import SqliteStore

    return SqliteStore(where.path, migrate=migrate)
