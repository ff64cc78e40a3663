"""``evalbox store backup``: a consistent copy of a live SQLite store (SQLite's online backup API).

The collector keeps writing while the copy is taken: the backup reads in ONE
read transaction (WAL lets the writer go on beside it), so the copy is the
store as it was at one commit — every batch whole or absent, rollups
matching their events. The copy is written to ``TARGET.partial``, checked
(``PRAGMA integrity_check``, the schema version) and only then renamed to
``TARGET``: a ``TARGET`` that exists is always a complete backup.

PostgreSQL stores are backed up with PostgreSQL's own tools (``pg_dump``);
this refuses them with that advice.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sqlite3

import aiosqlite

from collector.errors import StoreError
from collector.store.sqlite import SqliteDatabase
from collector.store.url import StoreUrl


@dataclasses.dataclass(frozen=True)
class BackupResult:
    """What the copy holds: its file, size, schema version, and stored events per month."""

    path: pathlib.Path
    bytes: int
    migrations: int
    events_by_month: dict[str, int]

    @property
    def events(self) -> int:
        return sum(self.events_by_month.values())


async def backup_store(source: StoreUrl, target: pathlib.Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the SQLite store ``source`` to the file ``target`` while it is in use; check the copy."""
    if source.kind != "sqlite":
        raise StoreError(
            f"{source.display}: store backup copies SQLite stores; back up PostgreSQL with pg_dump "
            "(docs/operations.md) / PostgreSQL请用pg_dump备份"
        )
    target = target.resolve()
    if target == source.path.resolve():
        raise StoreError(f"{target}: the backup target is the store itself")
    if target.exists() and not overwrite:
        raise StoreError(f"{target} exists; give another name or --force / 目标文件已存在")
    if not target.parent.is_dir():
        raise StoreError(f"{target.parent}: no such directory")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    async with SqliteDatabase(source.path, migrate=False, must_exist=True) as db:
        try:
            async with aiosqlite.connect(partial) as copy:
                await db.conn.backup(copy)  # all pages in one step: one read transaction, one commit's state
        except sqlite3.Error as exc:
            partial.unlink(missing_ok=True)
            raise StoreError(f"{source.display}: backup to {target} failed ({exc})") from None
    try:
        result = await _check(partial)
    except StoreError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return dataclasses.replace(result, path=target)


async def _check(path: pathlib.Path) -> BackupResult:
    """The copy opens, passes ``integrity_check`` and holds a migrated evalbox schema."""
    try:
        async with aiosqlite.connect(path) as conn:
            async with conn.execute("PRAGMA integrity_check") as cur:
                verdict = [r[0] for r in await cur.fetchall()]
            if verdict != ["ok"]:
                raise StoreError(f"{path}: the copy fails its integrity check: {'; '.join(verdict[:3])}")
            async with conn.execute("SELECT COUNT(*) FROM schema_migrations") as cur:
                row = await cur.fetchone()
            migrations = int(row[0]) if row else 0
            async with conn.execute("SELECT month, COUNT(*) FROM events GROUP BY month ORDER BY month") as cur:
                months = {str(m): int(n) for m, n in await cur.fetchall()}
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: the copy cannot be read ({exc})") from None
    return BackupResult(path, path.stat().st_size, migrations, months)
