"""``Store``: the ingest writer and the registry over one ``Database``, with its ``staging`` table."""

from __future__ import annotations

from collector.store.batch import STAGING_DDL, BatchWriter
from collector.store.database import Database, Resource
from collector.store.registry import Registry


class Store(BatchWriter, Registry, Resource):
    """The collector's store: ``write_batch`` (ingest), the registry and box commands.

    ``async with open_store(url) as store:``; its ``db`` is the ``Database`` underneath.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def name(self) -> str:
        """What messages call the store (the SQLite file, or the DSN without its password)."""
        return self.db.name

    async def open(self) -> None:
        """Connect (migrating unless told not to) and create this session's ``staging`` table."""
        await self.db.open()
        try:
            await self.db.session_setup(STAGING_DDL)
        except BaseException:
            await self.db.close()
            raise

    async def close(self) -> None:
        """Disconnect; safe to call twice."""
        await self.db.close()
