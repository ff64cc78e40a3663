"""The store interface and its logic, written once in portable SQL.

``Store`` holds every rule of the ingest writer: events inserted once on
their identity ``(device_id, boot, seq)``, rollups, duty, invites, device
status and rejected input updated **in the same transaction** as the batch.
A subclass supplies only the connection layer (``_run``, ``_run_many``,
``_rows``, ``_begin``/``_commit``/``_rollback``) and may replace the three
steps of a batch that its engine does faster or must do differently
(``_closed_months``, ``_stage``, ``_insert_new``): SQLite
(``collector.store.sqlite``) and PostgreSQL (``collector.store.postgres``:
``COPY`` into staging, ``INSERT … RETURNING``, several writers at once).

How a batch finds out which events are new, in one pass: the rows go into a
temporary ``staging`` table, one ``UPDATE`` marks those whose identity is
already stored, then ``INSERT … SELECT`` copies the new ones into ``events``
and ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE SET n = rollups.n +
excluded.n`` rolls up only them. No statement runs per row.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any

from collector.errors import StoreError, UsageError

# Column order of an event row as the pipeline builds it (a plain tuple: no per-row object).
EVENT_COLUMNS = (
    "device_id",
    "boot",
    "seq",
    "type",
    "officer_id",
    "window_id",
    "press_ms",
    "device_ts_ms",
    "uptime_ms",
    "recv_ms",
    "month",
    "level",
    "scale",
    "invite_no",
    "ticket",
    "flags",
    "kind",
    "source",
)
EventRow = tuple[Any, ...]
_I = {name: i for i, name in enumerate(EVENT_COLUMNS)}
ROLLUP_KINDS = ("rated", "unsolicited", "misuse", "invite", "unrated")
DEFAULT_REJECTED_CAP = 10_000

_COLS = ", ".join(EVENT_COLUMNS)
_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS staging (idx INTEGER NOT NULL, device_id TEXT, boot INTEGER, seq INTEGER,"
    " type TEXT, officer_id TEXT, window_id TEXT, press_ms BIGINT, device_ts_ms BIGINT, uptime_ms BIGINT,"
    " recv_ms BIGINT, month TEXT, level INTEGER, scale INTEGER, invite_no INTEGER, ticket TEXT, flags INTEGER,"
    " kind TEXT, source TEXT, late INTEGER, dup INTEGER NOT NULL DEFAULT 0)"
)
_STAGE = f"INSERT INTO staging (idx, {_COLS}, late) VALUES ({', '.join('?' * (len(EVENT_COLUMNS) + 2))})"
_MARK_DUPS = (
    "UPDATE staging SET dup = 1 WHERE EXISTS (SELECT 1 FROM events e WHERE e.device_id = staging.device_id"
    " AND e.boot = staging.boot AND e.seq = staging.seq)"
)
_INSERT_EVENTS = (
    f"INSERT INTO events ({_COLS}, late) SELECT {_COLS}, late FROM staging WHERE dup = 0"
    " ON CONFLICT (device_id, boot, seq) DO NOTHING"
)
_KINDS = ", ".join(f"'{k}'" for k in ROLLUP_KINDS)
_LEVEL = "CASE WHEN kind IN ('invite', 'unrated') THEN 0 ELSE COALESCE(level, 0) END"
_SCALE = "CASE WHEN kind IN ('invite', 'unrated') THEN 0 ELSE COALESCE(scale, 0) END"
_ROLLUP = (
    "INSERT INTO rollups (officer_id, month, window_id, kind, level, scale, late, n)"
    f" SELECT COALESCE(officer_id, ''), month, COALESCE(window_id, ''), kind, {_LEVEL}, {_SCALE}, late, COUNT(*)"
    f" FROM staging WHERE dup = 0 AND kind IN ({_KINDS})"
    f" GROUP BY COALESCE(officer_id, ''), month, COALESCE(window_id, ''), kind, {_LEVEL}, {_SCALE}, late"
    # A fixed order: two writers (PostgreSQL, several collectors) lock rollup rows in the same order.
    " ORDER BY 2, 1, 3, 4, 5, 6, 7"
    " ON CONFLICT (month, officer_id, window_id, kind, level, scale, late) DO UPDATE SET n = rollups.n + excluded.n"
)
_DUTY_IN = (
    "INSERT INTO duty (device_id, officer_id, start_ms) SELECT device_id, officer_id, press_ms FROM staging"
    " WHERE dup = 0 AND type = 'signin' AND officer_id IS NOT NULL ON CONFLICT DO NOTHING"
)
_DUTY_OUT = (
    "UPDATE duty SET end_ms = ? WHERE device_id = ? AND end_ms IS NULL AND start_ms <= ?"
    " AND (CAST(? AS TEXT) IS NULL OR officer_id = ?)"
)
_INVITE_OPEN = (
    "INSERT INTO invites (device_id, boot, invite_no, officer_id, ticket, opened_ms) SELECT device_id, boot,"
    " invite_no, officer_id, ticket, press_ms FROM staging WHERE dup = 0 AND type = 'invite'"
    " ON CONFLICT (device_id, boot, invite_no) DO NOTHING"
)
_INVITE_UNRATED = (
    "INSERT INTO invites (device_id, boot, invite_no, officer_id, ticket, opened_ms, outcome) SELECT device_id,"
    " boot, invite_no, officer_id, ticket, press_ms, 'unrated' FROM staging WHERE dup = 0 AND type = 'unrated'"
    " ON CONFLICT (device_id, boot, invite_no) DO UPDATE SET outcome = 'unrated'"
)
_INVITE_RATED = (
    "UPDATE invites SET outcome = 'rated', rating_seq = ? WHERE device_id = ? AND boot = ? AND invite_no = ?"
    " AND outcome = 'open'"
)
_SEEN = "UPDATE devices SET last_seen_ms = ? WHERE id = ? AND (last_seen_ms IS NULL OR last_seen_ms < ?)"
_STATUS_ONLINE = (
    "UPDATE devices SET status = 'online', last_seen_ms = ?, boot = ?, uptime_ms = ?, status_wall_ms = ?, fw = ?,"
    " outbox = ?, outbox_full = ?, mem = ?, rssi = ?, reset_cause = ?, last_error = ?, selftest = ?,"
    " config_version = ? WHERE id = ?"
)
_STATUS_OFFLINE = "UPDATE devices SET status = 'offline' WHERE id = ?"
_REJECT = "INSERT INTO rejected (at_ms, reason, source, origin, detail, raw) VALUES (?, ?, ?, ?, ?, ?)"
_REJECT_COUNT = (
    "INSERT INTO rejected_counts (reason, n) VALUES (?, ?)"
    " ON CONFLICT (reason) DO UPDATE SET n = rejected_counts.n + excluded.n"
)


class RetryBatch(StoreError):
    """The engine aborted the transaction (deadlock, serialization failure); it rolled back whole."""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclasses.dataclass(frozen=True, slots=True)
class Device:
    """A provisioned box as the pipeline needs it."""

    id: str
    window_id: str
    key: bytes
    boot_floor: int = 0
    status: str = "unknown"
    last_seen_ms: int | None = None
    boot: int | None = None
    uptime_ms: int | None = None
    settings: BoxSettings = dataclasses.field(default_factory=lambda: BoxSettings())
    settings_cv: int = 1
    transport: str = "mqtt"  # mqtt | serial


@dataclasses.dataclass(frozen=True, slots=True)
class BoxSettings:
    """The session settings a box gets in its signed config (protocol ``config``: ``n iw mi g hr``)."""

    scale: int = 2
    invite_ms: int = 10_000
    min_interval_ms: int = 5_000
    gated: bool = True
    hours: tuple[int, int] | None = None  # local minutes [open, close)

    def __post_init__(self) -> None:
        if not 2 <= self.scale <= 5:
            raise UsageError(f"scale {self.scale}: a box has 2 to 5 rating keys / 评价键数为2至5")
        if not 1_000 <= self.invite_ms <= 600_000:
            raise UsageError(f"invite window {self.invite_ms} ms: use 1 s to 10 min / 邀评时长应为1秒至10分钟")
        if not 0 <= self.min_interval_ms <= 600_000:
            raise UsageError(f"minimum interval {self.min_interval_ms} ms: use 0 to 10 min / 最小间隔应为0至10分钟")
        if self.hours is not None and not 0 <= self.hours[0] < self.hours[1] <= 24 * 60:
            raise UsageError(f"opening hours {self.hours}: open must come before close / 营业时间有误")


@dataclasses.dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A box's heartbeat (``msg`` is the decoded status) or its Last Will (``msg`` None: offline)."""

    device_id: str
    at_ms: int
    msg: dict[str, Any] | None


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """Input refused by the pipeline, kept for inspection (bounded) and counted by ``reason``."""

    at_ms: int
    reason: str
    source: str  # mqtt | serial
    origin: str  # topic or port
    detail: str
    raw: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Officer:
    id: str
    name: str
    unit_id: str
    window_id: str | None = None


class Store(abc.ABC):
    """A store connection; ``async with open_store(url) as store:``. Single writer per store.

    ``write_batch`` is the ingest path; the other methods are the registry
    (units, windows, officers, devices) and inspection (rejected input,
    counts). ``close()`` is safe to call twice.
    """

    dialect = "sql"
    rejected_cap = DEFAULT_REJECTED_CAP

    # ---- connection layer: a subclass implements these ----

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, apply migrations, create the staging table."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect; safe to call twice."""

    @abc.abstractmethod
    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; rows changed."""

    @abc.abstractmethod
    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per parameter row."""

    @abc.abstractmethod
    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query."""

    @abc.abstractmethod
    async def _begin(self) -> None: ...

    @abc.abstractmethod
    async def _commit(self) -> None: ...

    @abc.abstractmethod
    async def _rollback(self) -> None: ...

    # ---- shared logic ----

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    staging_ddl = _STAGING_DDL

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Statements inside commit together, or roll back on any error.

        One transaction at a time per store: the writer's batches and the few
        other writers in the collector (box commands) take turns on the one
        connection instead of landing inside each other's transactions.
        """
        async with self._tx_lock:
            self._tx_owner = asyncio.current_task()
            try:
                await self._begin()
                try:
                    yield
                except BaseException:
                    await self._rollback()
                    raise
                await self._commit()
            finally:
                self._tx_owner = None

    @property
    def _tx_lock(self) -> asyncio.Lock:
        lock: asyncio.Lock | None = self.__dict__.get("_tx_lock_")
        if lock is None:  # made on first use: the subclasses' __init__ stay free of it
            lock = self.__dict__["_tx_lock_"] = asyncio.Lock()
        return lock

    _tx_owner: asyncio.Task[Any] | None = None

    async def write_batch(
        self,
        events: Sequence[EventRow],
        *,
        statuses: Sequence[StatusUpdate] = (),
        rejects: Sequence[Rejection] = (),
        seen: dict[str, int] | None = None,
    ) -> list[bool]:
        """Store a batch in ONE transaction; for each event, True if newly stored, False if a duplicate.

        Rollups, duty (sign-in/out), invites, device status and last-seen,
        and rejected input are written in the same transaction. A transaction
        the engine aborted for a conflict with another writer (``RetryBatch``)
        rolled back whole and runs again, up to ``write_attempts`` times.
        """
        for attempt in range(1, self.write_attempts + 1):
            try:
                return await self._write_batch(events, statuses, rejects, seen)
            except RetryBatch:
                if attempt == self.write_attempts:
                    raise
                await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    write_attempts = 1

    async def _write_batch(
        self,
        events: Sequence[EventRow],
        statuses: Sequence[StatusUpdate],
        rejects: Sequence[Rejection],
        seen: dict[str, int] | None,
    ) -> list[bool]:
        stored = [False] * len(events)
        async with self.transaction():
            if events:
                stored = await self._write_events(events)
            if statuses:
                await self._write_statuses(statuses)
            if seen:
                await self._run_many(_SEEN, [(ms, dev, ms) for dev, ms in sorted(seen.items())])
            if rejects:
                await self._write_rejects(rejects)
        return stored

    async def _write_events(self, events: Sequence[EventRow]) -> list[bool]:
        closed = await self._closed_months()
        month_i, dev_i, boot_i, seq_i = _I["month"], _I["device_id"], _I["boot"], _I["seq"]
        first: dict[tuple[str, int, int], int] = {}
        rows = []
        for idx, ev in enumerate(events):
            ident = (ev[dev_i], ev[boot_i], ev[seq_i])
            if ident in first:  # the same identity twice in one batch: the later one is a duplicate
                continue
            first[ident] = idx
            rows.append((idx, *ev, 1 if ev[month_i] in closed else 0))
        await self._stage(rows)
        dup = await self._insert_new()
        stored = [False] * len(events)
        for idx in first.values():
            stored[idx] = idx not in dup
        new = [ev for idx, ev in enumerate(events) if stored[idx]]
        if new:
            await self._run(_ROLLUP)
            await self._side_tables(new)
        await self._run("DELETE FROM staging")
        return stored

    async def _closed_months(self) -> set[str]:
        """The closed months (events for them are stored ``late``)."""
        return {r[0] for r in await self._rows("SELECT month FROM months")}

    async def _stage(self, rows: list[tuple[Any, ...]]) -> None:
        """Put the batch's rows ``(idx, *event, late)`` into ``staging`` (``dup`` 0)."""
        await self._run_many(_STAGE, rows)

    async def _insert_new(self) -> set[int]:
        """Insert the staged events not yet stored; mark the others ``dup = 1``; their ``idx``.

        The single writer (SQLite) can ask first and insert after.
        """
        await self._run(_MARK_DUPS)
        dup = {int(r[0]) for r in await self._rows("SELECT idx FROM staging WHERE dup = 1")}
        await self._run(_INSERT_EVENTS)
        return dup

    async def _side_tables(self, new: list[EventRow]) -> None:
        types = {ev[3] for ev in new}
        if "signin" in types:
            await self._run(_DUTY_IN)
        if "signout" in types:
            rows = [
                (ev[_I["press_ms"]], ev[0], ev[_I["press_ms"]], ev[_I["officer_id"]], ev[_I["officer_id"]])
                for ev in new
                if ev[3] == "signout"
            ]
            await self._run_many(_DUTY_OUT, rows)
        if "invite" in types:
            await self._run(_INVITE_OPEN)
        if "unrated" in types:
            await self._run(_INVITE_UNRATED)
        rated = [
            (ev[_I["seq"]], ev[0], ev[_I["boot"]], ev[_I["invite_no"]])
            for ev in new
            if ev[3] == "press" and ev[_I["invite_no"]] is not None and ev[_I["kind"]] == "rated"
        ]
        if rated:
            await self._run_many(_INVITE_RATED, rated)

    async def _write_statuses(self, statuses: Sequence[StatusUpdate]) -> None:
        online = []
        offline = []
        for st in sorted(statuses, key=lambda st: st.device_id):  # stable: a box's last status wins
            m = st.msg
            if m is None:
                offline.append((st.device_id,))
                continue
            online.append(
                (
                    st.at_ms,
                    m["b"],
                    m["up"],
                    m.get("ts"),
                    m["fw"],
                    m["q"],
                    int(m["full"]),
                    m["mem"],
                    m.get("rssi"),
                    m["rst"],
                    m.get("err"),
                    m["st"],
                    m["cv"],
                    st.device_id,
                )
            )
        if online:
            await self._run_many(_STATUS_ONLINE, online)
        if offline:
            await self._run_many(_STATUS_OFFLINE, offline)

    async def _write_rejects(self, rejects: Sequence[Rejection]) -> None:
        keep = rejects[-self.rejected_cap :]
        await self._run_many(
            _REJECT, [(r.at_ms, r.reason, r.source, r.origin, r.detail[:200], r.raw[:1100]) for r in keep]
        )
        counts: dict[str, int] = {}
        for r in rejects:
            counts[r.reason] = counts.get(r.reason, 0) + 1
        await self._run_many(_REJECT_COUNT, list(counts.items()))
        await self._run(
            "DELETE FROM rejected WHERE id <= (SELECT MAX(id) FROM rejected) - ?",
            (self.rejected_cap,),
        )

    # ---- registry ----

    async def devices(self) -> dict[str, Device]:
        """Every provisioned box by id."""
        rows = await self._rows(
            "SELECT id, window_id, key_hex, boot_floor, status, last_seen_ms, boot, uptime_ms, scale, invite_ms,"
            " min_interval_ms, gated, open_min, close_min, settings_cv, transport FROM devices"
        )
        out: dict[str, Device] = {}
        for r in rows:
            hours = (int(r[12]), int(r[13])) if r[12] is not None and r[13] is not None else None
            settings = BoxSettings(int(r[8]), int(r[9]), int(r[10]), bool(r[11]), hours)
            out[r[0]] = Device(
                r[0], r[1], bytes.fromhex(r[2]), int(r[3] or 0), r[4], r[5], r[6], r[7], settings, int(r[14])
            )
        return out

    async def add_unit(self, unit_id: str, name: str, parent_id: str | None = None, leader: str | None = None) -> None:
        await self.import_registry(units=[(unit_id, name, parent_id, leader)])

    async def add_window(self, window_id: str, unit_id: str, name: str) -> None:
        await self.import_registry(windows=[(window_id, unit_id, name)])

    async def add_officers(self, officers: Iterable[Officer]) -> None:
        await self.import_registry(officers=[(o.id, o.name, o.unit_id, o.window_id) for o in officers])

    async def import_registry(
        self,
        *,
        units: Sequence[tuple[str, str, str | None, str | None]] = (),
        windows: Sequence[tuple[str, str, str]] = (),
        officers: Sequence[tuple[str, str, str, str | None]] = (),
    ) -> None:
        """Insert or update units, windows and officers, all in one transaction (nothing half-imported).

        References are checked first: a window's unit, an officer's unit and
        window must exist (in the store or in this import).
        """
        async with self.transaction():
            known_units = {r[0] for r in await self._rows("SELECT id FROM units")} | {u[0] for u in units}
            known_windows = {r[0] for r in await self._rows("SELECT id FROM windows")} | {w[0] for w in windows}
            for u in units:
                if u[2] is not None and u[2] not in known_units:
                    raise StoreError(f"unit {u[0]}: parent unit {u[2]!r} does not exist / 上级单位不存在")
            for w in windows:
                if w[1] not in known_units:
                    raise StoreError(f"window {w[0]}: unit {w[1]!r} does not exist / 单位不存在")
            for o in officers:
                if o[2] not in known_units:
                    raise StoreError(f"officer {o[0]}: unit {o[2]!r} does not exist / 单位不存在")
                if o[3] is not None and o[3] not in known_windows:
                    raise StoreError(f"officer {o[0]}: window {o[3]!r} does not exist / 窗口不存在")
            if units:
                await self._run_many(
                    "INSERT INTO units (id, name, parent_id, leader) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE"
                    " SET name = excluded.name, parent_id = excluded.parent_id, leader = excluded.leader",
                    units,
                )
            if windows:
                await self._run_many(
                    "INSERT INTO windows (id, unit_id, name) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE"
                    " SET unit_id = excluded.unit_id, name = excluded.name",
                    windows,
                )
            if officers:
                await self._run_many(
                    "INSERT INTO officers (id, name, unit_id, window_id) VALUES (?, ?, ?, ?) ON CONFLICT (id)"
                    " DO UPDATE SET name = excluded.name, unit_id = excluded.unit_id, window_id = excluded.window_id",
                    officers,
                )

    async def add_device(
        self,
        device_id: str,
        window_id: str,
        key_hex: str,
        *,
        replace: bool = False,
        settings: BoxSettings | None = None,
        transport: str = "mqtt",
    ) -> None:
        """Register a box with its key and session settings; ``StoreError``: unknown window, or the box exists."""
        async with self.transaction():
            if not await self._rows("SELECT 1 FROM windows WHERE id = ?", (window_id,)):
                raise StoreError(f"window {window_id!r} does not exist (evalbox window add) / 窗口不存在")
            exists = await self._rows("SELECT 1 FROM devices WHERE id = ?", (device_id,))
            if exists and not replace:
                raise StoreError(f"device {device_id!r} already exists (use --replace for a new key) / 设备已存在")
            if exists:
                await self._run(
                    "UPDATE devices SET window_id = ?, key_hex = ? WHERE id = ?", (window_id, key_hex, device_id)
                )
            else:
                await self._run(
                    "INSERT INTO devices (id, window_id, key_hex, created_ms) VALUES (?, ?, ?, ?)",
                    (device_id, window_id, key_hex, now_ms()),
                )
            await self._run("UPDATE devices SET transport = ? WHERE id = ?", (transport, device_id))
            if settings is not None:
                await self._set_settings(device_id, settings)

    async def set_device_settings(self, device_id: str, settings: BoxSettings) -> int:
        """Change a box's session settings; the new config version (the running collector republishes it)."""
        async with self.transaction():
            if not await self._rows("SELECT 1 FROM devices WHERE id = ?", (device_id,)):
                raise StoreError(f"device {device_id!r} does not exist (evalbox device add) / 设备不存在")
            await self._set_settings(device_id, settings)
            rows = await self._rows("SELECT settings_cv FROM devices WHERE id = ?", (device_id,))
        return int(rows[0][0])

    async def _set_settings(self, device_id: str, s: BoxSettings) -> None:
        open_min, close_min = s.hours if s.hours is not None else (None, None)
        await self._run(
            "UPDATE devices SET scale = ?, invite_ms = ?, min_interval_ms = ?, gated = ?, open_min = ?, close_min = ?,"
            " settings_cv = settings_cv + 1 WHERE id = ?",
            (s.scale, s.invite_ms, s.min_interval_ms, int(s.gated), open_min, close_min, device_id),
        )

    async def device_rows(self) -> list[dict[str, Any]]:
        """Devices with their health, for ``evalbox device list``."""
        cols = ("id", "window_id", "status", "last_seen_ms", "fw", "outbox", "outbox_full", "boot", "last_error")
        rows = await self._rows(f"SELECT {', '.join(cols)} FROM devices ORDER BY id")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    async def rejected_counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in await self._rows("SELECT reason, n FROM rejected_counts ORDER BY reason")}

    async def rejected(self, limit: int = 100) -> list[tuple[Any, ...]]:
        """The latest rejected rows ``(at_ms, reason, source, origin, detail, raw)``, newest first."""
        return await self._rows(
            "SELECT at_ms, reason, source, origin, detail, raw FROM rejected ORDER BY id DESC LIMIT ?", (limit,)
        )

    async def count_events(self) -> int:
        return int((await self._rows("SELECT COUNT(*) FROM events"))[0][0])

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query (portable SQL with ``?``)."""
        return await self._rows(sql, params)

    # ---- commands for boxes (window PC, queue system) ----

    async def queue_command(self, device_id: str, op: str, officer: str | None, ticket: str | None) -> int:
        """Queue a command for a box; its id (the ``cid`` the box sees)."""
        async with self.transaction():
            if not await self._rows("SELECT 1 FROM devices WHERE id = ?", (device_id,)):
                raise StoreError(f"device {device_id!r} does not exist (evalbox device add) / 设备不存在")
            rows = await self._rows("SELECT COALESCE(MAX(id), 0) + 1 FROM box_commands")
            cid = int(rows[0][0])
            await self._run(
                "INSERT INTO box_commands (id, device_id, op, officer_id, ticket, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (cid, device_id, op, officer, ticket, now_ms()),
            )
        return cid

    async def pending_commands(self, max_age_ms: int = 60_000) -> list[tuple[int, str, str, str | None, str | None]]:
        """Unsent commands younger than ``max_age_ms`` (an invite a minute late is worse than none)."""
        rows = await self._rows(
            "SELECT id, device_id, op, officer_id, ticket FROM box_commands"
            " WHERE sent_ms IS NULL AND created_ms >= ? ORDER BY id",
            (now_ms() - max_age_ms,),
        )
        return [(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    async def mark_command_sent(self, cid: int, via: str) -> None:
        async with self.transaction():
            await self._run("UPDATE box_commands SET sent_ms = ?, via = ? WHERE id = ?", (now_ms(), via, cid))
