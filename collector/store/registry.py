"""The registry (units, windows, officers, boxes), commands queued for boxes, and what ingest rejected."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from collector.clock import now_ms
from collector.errors import StoreError
from collector.store.database import Database, Rows
from collector.store.records import BoxSettings, Device, Officer

UnitRow = tuple[str, str, str | None, str | None]  # id, name, parent, leader
WindowRow = tuple[str, str, str]  # id, unit, name
OfficerRow = tuple[str, str, str, str | None]  # id, name, unit, window


class Registry:
    """Registry, box commands and inspection over ``self.db``."""

    db: Database

    async def devices(self) -> dict[str, Device]:
        """Every provisioned box by id."""
        rows = await self.db.fetch(
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
        units: Sequence[UnitRow] = (),
        windows: Sequence[WindowRow] = (),
        officers: Sequence[OfficerRow] = (),
    ) -> None:
        """Insert or update units, windows and officers, all in one transaction (nothing half-imported).

        References are checked first: a window's unit, an officer's unit and
        window must exist (in the store or in this import).
        """
        async with self.db.transaction() as db:
            known_units = {r[0] for r in await db.fetch("SELECT id FROM units")} | {u[0] for u in units}
            known_windows = {r[0] for r in await db.fetch("SELECT id FROM windows")} | {w[0] for w in windows}
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
            await db.executemany(
                "INSERT INTO units (id, name, parent_id, leader) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE"
                " SET name = excluded.name, parent_id = excluded.parent_id, leader = excluded.leader",
                units,
            )
            await db.executemany(
                "INSERT INTO windows (id, unit_id, name) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE"
                " SET unit_id = excluded.unit_id, name = excluded.name",
                windows,
            )
            await db.executemany(
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
        async with self.db.transaction() as db:
            if await db.fetchone("SELECT 1 FROM windows WHERE id = ?", (window_id,)) is None:
                raise StoreError(f"window {window_id!r} does not exist (evalbox window add) / 窗口不存在")
            exists = await db.fetchone("SELECT 1 FROM devices WHERE id = ?", (device_id,)) is not None
            if exists and not replace:
                raise StoreError(f"device {device_id!r} already exists (use --replace for a new key) / 设备已存在")
            if exists:
                await db.execute(
                    "UPDATE devices SET window_id = ?, key_hex = ? WHERE id = ?", (window_id, key_hex, device_id)
                )
            else:
                await db.execute(
                    "INSERT INTO devices (id, window_id, key_hex, created_ms) VALUES (?, ?, ?, ?)",
                    (device_id, window_id, key_hex, now_ms()),
                )
            await db.execute("UPDATE devices SET transport = ? WHERE id = ?", (transport, device_id))
            if settings is not None:
                await _set_settings(db, device_id, settings)

    async def set_device_settings(self, device_id: str, settings: BoxSettings) -> int:
        """Change a box's session settings; the new config version (the running collector republishes it)."""
        async with self.db.transaction() as db:
            if await db.fetchone("SELECT 1 FROM devices WHERE id = ?", (device_id,)) is None:
                raise StoreError(f"device {device_id!r} does not exist (evalbox device add) / 设备不存在")
            await _set_settings(db, device_id, settings)
            row = await db.fetchone("SELECT settings_cv FROM devices WHERE id = ?", (device_id,))
        assert row is not None
        return int(row[0])

    async def raise_settings_cv(self, device_id: str, above: int) -> None:
        """Move a box's config version past ``above`` (the version the box reports running).

        A box applies a config only if its ``cv`` is newer than the one it has; after a store was restored
        from an older backup, the box holds a higher ``cv`` than the store and would ignore every config.
        """
        await self.db.execute(
            "UPDATE devices SET settings_cv = ? WHERE id = ? AND settings_cv <= ?", (above + 1, device_id, above)
        )

    async def device_rows(self) -> list[dict[str, Any]]:
        """Devices with their health, for ``evalbox device list``."""
        rows = await self.db.fetch(
            "SELECT id, window_id, status, last_seen_ms, fw, outbox, outbox_full, boot, last_error FROM devices"
            " ORDER BY id"
        )
        return rows.dicts()

    async def rejected_counts(self) -> dict[str, int]:
        """Rejected input so far, by reason."""
        return {r[0]: int(r[1]) for r in await self.db.fetch("SELECT reason, n FROM rejected_counts ORDER BY reason")}

    async def rejected(self, limit: int = 100) -> Rows:
        """The latest rejected rows ``(at_ms, reason, source, origin, detail, raw)``, newest first."""
        return await self.db.fetch(
            "SELECT at_ms, reason, source, origin, detail, raw FROM rejected ORDER BY id DESC LIMIT ?", (limit,)
        )

    async def count_events(self) -> int:
        row = await self.db.fetchone("SELECT COUNT(*) FROM events")
        return int(row[0]) if row else 0

    # ---- commands for boxes (window PC, queue system) ----

    async def queue_command(self, device_id: str, op: str, officer: str | None, ticket: str | None) -> int:
        """Queue a command for a box; its id (the ``cid`` the box sees)."""
        async with self.db.transaction() as db:
            if await db.fetchone("SELECT 1 FROM devices WHERE id = ?", (device_id,)) is None:
                raise StoreError(f"device {device_id!r} does not exist (evalbox device add) / 设备不存在")
            await db.lock("box_commands")  # ids are max + 1: one writer at a time
            row = await db.fetchone("SELECT COALESCE(MAX(id), 0) + 1 FROM box_commands")
            cid = int(row[0]) if row else 1
            await db.execute(
                "INSERT INTO box_commands (id, device_id, op, officer_id, ticket, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (cid, device_id, op, officer, ticket, now_ms()),
            )
        return cid

    async def pending_commands(self, max_age_ms: int = 60_000) -> list[tuple[int, str, str, str | None, str | None]]:
        """Unsent commands younger than ``max_age_ms`` (an invite a minute late is worse than none)."""
        rows = await self.db.fetch(
            "SELECT id, device_id, op, officer_id, ticket FROM box_commands"
            " WHERE sent_ms IS NULL AND created_ms >= ? ORDER BY id",
            (now_ms() - max_age_ms,),
        )
        return [(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    async def mark_command_sent(self, cid: int, via: str) -> None:
        await self.db.execute("UPDATE box_commands SET sent_ms = ?, via = ? WHERE id = ?", (now_ms(), via, cid))


async def _set_settings(db: Database, device_id: str, s: BoxSettings) -> None:
    open_min, close_min = s.hours if s.hours is not None else (None, None)
    await db.execute(
        "UPDATE devices SET scale = ?, invite_ms = ?, min_interval_ms = ?, gated = ?, open_min = ?, close_min = ?,"
        " settings_cv = settings_cv + 1 WHERE id = ?",
        (s.scale, s.invite_ms, s.min_interval_ms, int(s.gated), open_min, close_min, device_id),
    )
