"""``Database``: the one way any part of the collector talks to the store.

Two implementations, picked by ``connect(url)``: ``SqliteDatabase``
(aiosqlite, ``collector.store.sqlite``) and ``PostgresDatabase`` (asyncpg,
``collector.store.postgres``). SQL is written once, portable (``?``
placeholders, the common subset of both engines); the implementation
translates it, sets its connection up the same way every time, applies the
migrations (``migrate``: the one runner) and turns every driver error into
``StoreError``::

    async with connect("sqlite:///var/lib/evalbox/evalbox.db") as db:
        rows = await db.fetch("SELECT id, name FROM officers WHERE unit_id = ?", ("U1",))
        rows[0][1] == rows.dicts()[0]["name"]
        row = await db.fetchone("SELECT name FROM officers WHERE id = ?", ("A1",))  # row["name"]
        async with db.transaction():
            await db.execute("UPDATE officers SET active = 0 WHERE id = ?", ("A1",))

One connection per ``Database``, shared by the tasks that hold it: a
transaction has it alone (``transaction()`` waits for the one in progress),
and a statement outside a transaction waits until the transaction in
progress has ended, so it neither runs inside it nor sees its uncommitted
rows. Inside its own transaction a task runs its statements at once.

Error tree (``collector.errors``)::

    StoreError          the store failed or refused (names the SQLite file or the redacted DSN)
    └── WriteConflict   another writer made the engine abort the transaction; it rolled back whole
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self, SupportsIndex, TypeVar, overload

from collector.errors import StoreError
from collector.store.schema import MIGRATIONS

Params = Sequence[Any]
T = TypeVar("T")


_MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_ms BIGINT NOT NULL)"
# One key for every evalbox store on a PostgreSQL server: collectors starting together migrate one at a time.
MIGRATION_LOCK = 0x65766C62  # "evlb"


class WriteConflict(StoreError):
    """The engine aborted the transaction for a conflict with another writer (deadlock, serialization).

    It rolled back whole; running it again is safe.
    """


class Rows(list[tuple[Any, ...]]):
    """A query's rows: plain tuples (index, unpack, compare and sort them as tuples) and their ``columns``.

    Plain tuples, not a row class, because a month's rollups are tens of thousands of rows and CPython's
    garbage collector stops tracking a tuple of plain values but never an instance of a tuple subclass
    (measured: the monthly report 15–20% slower with a row class). Code that reads columns by name asks
    for ``dicts()``, or reads a single row with ``fetchone`` (a ``Row``).
    """

    __slots__ = ("columns",)

    def __init__(self, rows: Iterable[tuple[Any, ...]] = (), columns: tuple[str, ...] = ()) -> None:
        super().__init__(rows)
        self.columns = columns

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}`` dicts (fresh ones: change them freely)."""
        cols = self.columns
        return [dict(zip(cols, r, strict=True)) for r in self]


class Row(tuple[Any, ...]):
    """One row (``fetchone``): a tuple that also answers ``row["column"]``; ``dict(row)`` maps names to values."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    @overload
    def __getitem__(self, key: SupportsIndex | str) -> Any: ...

    @overload
    def __getitem__(self, key: slice) -> tuple[Any, ...]: ...

    def __getitem__(self, key: SupportsIndex | str | slice) -> Any:
        if key.__class__ is str:
            try:
                return tuple.__getitem__(self, self._index[key])
            except KeyError:
                raise KeyError(f"no column {key!r} (columns: {', '.join(self._index)})") from None
        return tuple.__getitem__(self, key)  # type: ignore[index]

    def keys(self) -> tuple[str, ...]:
        """The column names, in order (a name given twice: its first column)."""
        return tuple(self._index)


@functools.lru_cache(maxsize=1024)
def _row_type(names: tuple[str, ...]) -> type[Row]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return type("Row", (Row,), {"__slots__": (), "_index": index})


def row_of(names: tuple[str, ...], values: Sequence[Any]) -> Row:
    """A driver's row (a tuple or a record) as a ``Row`` with these column names (one class per shape, cached)."""
    return _row_type(names)(values)


class Resource(abc.ABC):
    """Something opened and closed: ``async with thing:`` opens it and closes it whatever happens."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Close; safe to call twice."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Database(Resource):
    """An open connection to the store; ``async with connect(url) as db``. ``close()`` is safe to call twice."""

    dialect: ClassVar[str]
    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    name: str
    """What messages call the store: the SQLite file, or the DSN without its password."""

    def __init__(self, *, migrate: bool, must_exist: bool) -> None:
        self._migrate = migrate
        self._must_exist = must_exist
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0  # savepoints open inside the transaction
        self._session: list[str] = []

    _conn: Any = None  # the driver's connection while open

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @property
    def conn(self) -> Any:
        """The driver's connection (``StoreError`` when closed)."""
        if self._conn is None:
            raise StoreError(f"{self.name}: the store is not open")
        return self._conn

    # ---- what an engine supplies ----

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open the connection and set it up (PRAGMAs, codecs); ``StoreError`` when it cannot."""

    @abc.abstractmethod
    async def _ready(self) -> None:
        """Before a transaction or a lone statement: the connection is usable (PostgreSQL reopens a dropped one)."""

    @abc.abstractmethod
    async def _fetch(self, sql: str, params: Params) -> Rows: ...

    @abc.abstractmethod
    async def _fetchone(self, sql: str, params: Params) -> Row | None: ...

    @abc.abstractmethod
    async def _execute(self, sql: str, params: Params) -> int: ...

    @abc.abstractmethod
    async def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    async def _copy(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    async def _begin(self) -> None: ...

    @abc.abstractmethod
    async def _commit(self) -> None: ...

    @abc.abstractmethod
    async def _rollback(self) -> None:
        """Roll back the transaction if one is open; never raises (a broken connection is dropped instead)."""

    @abc.abstractmethod
    def ddl(self, script: str) -> list[str]:
        """A portable DDL script (``collector.store.schema``) as this engine's statements."""

    @abc.abstractmethod
    async def lock(self, *tables: str, mode: str = "SHARE ROW EXCLUSIVE") -> None:
        """Inside a transaction: keep other writers off ``tables`` until it ends.

        SQLite's write transaction (``BEGIN IMMEDIATE``) is the only writer
        already; PostgreSQL runs writers at once, so there the tables are
        locked in ``mode`` (the default lets reads go on and makes writes,
        ingest's included, wait; transactions already writing finish first).
        """

    @abc.abstractmethod
    async def has_table(self, name: str) -> bool:
        """Whether the store has table ``name``."""

    @abc.abstractmethod
    async def columns(self, table: str) -> list[str]:
        """The columns of ``table``, in order."""

    # ---- the interface ----

    async def open(self) -> None:
        """Connect and, unless made with ``migrate=False``, apply the pending migrations.

        Made with ``must_exist=True``, a store that is not an evalbox store yet (no ``schema_migrations``)
        is a ``StoreError``, not a new store.
        """
        await self._connect()
        try:
            if self._must_exist and not await self.has_table("schema_migrations"):
                raise StoreError(f"{self.name}: not an evalbox store (no schema_migrations); check --db or [store] url")
            if self._migrate:
                await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def migrate(self) -> list[str]:
        """Apply every migration of ``collector.store.schema`` not yet recorded; the names applied.

        The one migration runner. Same names and order on both engines,
        recorded in ``schema_migrations``. DDL is transactional on both, so
        the pending migrations commit together or not at all; on PostgreSQL
        an advisory lock keeps two collectors starting at once from racing
        (SQLite's write transaction is exclusive already).
        """
        applied: list[str] = []
        async with self.transaction():
            if self.dialect == "postgresql":
                await self.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            for stmt in self.ddl(_MIGRATIONS_TABLE):
                await self.execute(stmt)
            done = {str(r[0]) for r in await self.fetch("SELECT name FROM schema_migrations")}
            for name, script in MIGRATIONS:
                if name in done:
                    continue
                for stmt in self.ddl(script):
                    await self.execute(stmt)
                await self.execute(
                    "INSERT INTO schema_migrations (name, applied_ms) VALUES (?, ?)", (name, int(time.time() * 1000))
                )
                applied.append(name)
        return applied

    async def migrations(self) -> list[str]:
        """The migrations recorded in this store (none when it has no ``schema_migrations``), sorted."""
        if not await self.has_table("schema_migrations"):
            return []
        return sorted(str(r[0]) for r in await self.fetch("SELECT name FROM schema_migrations"))

    async def fetch(self, sql: str, params: Params = ()) -> Rows:
        """All rows of a query: tuples, with the result's ``columns`` (``rows.dicts()`` by name)."""
        return await self._turn(self._fetch, sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query (``INSERT … RETURNING id`` too) as a ``Row`` (``row["column"]``), or None."""
        return await self._turn(self._fetchone, sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement (alone, or in the caller's transaction); the number of rows changed."""
        return await self._turn(self._execute, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""
        rows = rows if isinstance(rows, list) else list(rows)
        if rows:
            await self._turn(self._executemany, sql, rows)

    async def copy_records(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        """Bulk-load rows into ``table`` (PostgreSQL: binary ``COPY``, one round trip; SQLite: one prepared insert)."""
        if records:
            await self._turn(self._copy, table, columns, records)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        """``async with db.transaction() as tx:`` statements inside commit together, or roll back on any error.

        ``tx`` is this ``Database``. SQLite takes the write lock at once (``BEGIN IMMEDIATE``). Inside a
        transaction of the same task, a nested one is a savepoint: its error undoes only its own statements.
        """
        task = asyncio.current_task()
        if self._owner is not None and self._owner is task:  # nested: a savepoint inside the caller's transaction
            self._depth += 1
            savepoint = f"sp{self._depth}"
            await self._execute(f"SAVEPOINT {savepoint}", ())
            try:
                yield self
                await self._execute(f"RELEASE SAVEPOINT {savepoint}", ())
            except BaseException:
                await self._execute(f"ROLLBACK TO SAVEPOINT {savepoint}", ())
                raise
            finally:
                self._depth -= 1
            return
        async with self._lock:
            await self._ready()
            self._owner = task
            try:
                await self._begin()
                try:
                    yield self
                    await self._commit()
                except BaseException:
                    await self._rollback()
                    raise
            finally:
                self._owner = None

    async def session_setup(self, script: str) -> None:
        """Run a DDL script now and again whenever the connection is reopened (temporary tables)."""
        stmts = self.ddl(script)
        for stmt in stmts:
            await self.execute(stmt)
        self._session += stmts

    # ---- shared plumbing ----

    def _error(self, exc: BaseException) -> StoreError:
        return StoreError(f"{self.name}: {exc}")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The driver's errors as ``StoreError`` naming the store."""
        try:
            yield
        except self.driver_errors as exc:
            raise self._error(exc) from None

    async def _turn(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn`` now inside the caller's own transaction, else once no transaction holds the connection."""
        if self._owner is not None and self._owner is asyncio.current_task():
            return await fn(*args)
        async with self._lock:
            await self._ready()
            return await fn(*args)
