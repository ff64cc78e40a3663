"""One open database connection, owned: ``conn`` while open, ``close()`` safe to call twice."""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from collector.errors import StoreError


class _Closable(Protocol):
    def close(self) -> Any: ...


C = TypeVar("C", bound=_Closable)


class OneConnection(Generic[C]):
    """Mixin for the store adapters (SQLite via aiosqlite, PostgreSQL via asyncpg): each opens ``_conn``."""

    _conn: C | None = None
    _closed_message = "database is not open"

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @property
    def conn(self) -> C:
        if self._conn is None:
            raise StoreError(self._closed_message)
        return self._conn
