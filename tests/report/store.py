"""A real store for report tests (SQLite file or PostgreSQL database, by URL), and an ingest like the writer's.

``ingest`` stores events with ``ON CONFLICT DO NOTHING`` on the identity and,
for each new row, upserts its rollup in the same transaction; ``late`` is 1
when the event's month is already closed. Kinds from press flags: repeat (2)
or too fast (4) → ``misuse``; else unsolicited (1) → ``unsolicited``; else
``rated``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import pathlib
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from collector.store import Database, connect
from collector.store.url import parse_store_url
from collector.timeplace import month_of

ROLLUP_UPSERT = (
    "INSERT INTO rollups (officer_id, month, window_id, kind, level, scale, late, n) VALUES (?, ?, ?, ?, ?, ?, ?, 1) "
    "ON CONFLICT (month, officer_id, window_id, kind, level, scale, late) DO UPDATE SET n = rollups.n + 1"
)


@dataclasses.dataclass(frozen=True)
class Ev:
    device: str
    seq: int
    type: str  # press | invite | unrated | signin | signout
    press_ms: int
    officer: str | None = "A1"
    window: str | None = "W1"
    level: int | None = None
    scale: int | None = None
    flags: int = 0
    boot: int = 1


def kind_of(ev: Ev) -> str:
    if ev.type != "press":
        return ev.type
    if ev.flags & (2 | 4):
        return "misuse"
    return "unsolicited" if ev.flags & 1 else "rated"


def press(seq: int, ms: int, level: int, scale: int = 2, **kw: object) -> Ev:
    return Ev(device=str(kw.pop("device", "D1")), seq=seq, type="press", press_ms=ms, level=level, scale=scale, **kw)  # type: ignore[arg-type]


async def create_store(url: str | pathlib.Path, *, fresh: bool = False) -> Any:
    """An open, migrated store at ``url``; ``fresh`` empties it first (PostgreSQL: drop the schema)."""
    where = parse_store_url(str(url))
    if fresh and where.kind == "sqlite":
        where.path.unlink(missing_ok=True)
    db = connect(str(url), migrate=False)
    await db.__aenter__()
    if fresh and where.kind == "postgresql":
        await db.execute("DROP SCHEMA public CASCADE")
        await db.execute("CREATE SCHEMA public")
    await db.migrate()
    return db


async def seed_registry(
    db: Database,
    units: Iterable[tuple[str, str, str | None]] = (("U1", "城关派出所", None),),
    windows: Iterable[tuple[str, str, str]] = (("W1", "U1", "户籍1号窗"),),
    officers: Iterable[tuple[str, str, str, str | None]] = (("A1", "张三", "U1", "W1"),),
) -> None:
    async with db.transaction():
        await db.executemany("INSERT INTO units (id, name, parent_id) VALUES (?, ?, ?)", list(units))
        await db.executemany("INSERT INTO windows (id, unit_id, name) VALUES (?, ?, ?)", list(windows))
        await db.executemany("INSERT INTO officers (id, name, unit_id, window_id) VALUES (?, ?, ?, ?)", list(officers))


async def ingest(db: Database, events: Iterable[Ev], tz: str = "Asia/Shanghai") -> int:
    """Store events (duplicates ignored) and maintain rollups; the number newly stored."""
    stored = 0
    async with db.transaction():
        closed = {r[0] for r in await db.fetch("SELECT month FROM months")}
        for ev in events:
            month = month_of(ev.press_ms, tz)
            late = int(month in closed)
            kind = kind_of(ev)
            n = await db.execute(
                "INSERT INTO events (device_id, boot, seq, type, officer_id, window_id, press_ms, device_ts_ms,"
                " uptime_ms, recv_ms, month, level, scale, flags, kind, source, late)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'mqtt', ?)"
                " ON CONFLICT (device_id, boot, seq) DO NOTHING",
                (
                    ev.device,
                    ev.boot,
                    ev.seq,
                    ev.type,
                    ev.officer,
                    ev.window,
                    ev.press_ms,
                    ev.press_ms,
                    0,
                    ev.press_ms,
                    month,
                    ev.level,
                    ev.scale,
                    ev.flags,
                    kind,
                    late,
                ),
            )
            if n == 1 and kind in ("rated", "unsolicited", "misuse", "invite", "unrated"):
                stored += 1
                presses = kind not in ("invite", "unrated")
                await db.execute(
                    ROLLUP_UPSERT,
                    (
                        ev.officer or "",
                        month,
                        ev.window or "",
                        kind,
                        (ev.level or 0) if presses else 0,
                        (ev.scale or 0) if presses else 0,
                        late,
                    ),
                )
            elif n == 1:
                stored += 1
    return stored


def local_ms(text: str, tz: str = "Asia/Shanghai") -> int:
    """Epoch ms of local time ``'YYYY-MM-DD HH:MM:SS'`` in ``tz``."""
    t = dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))
    return int(t.timestamp() * 1000)


def rated_presses(
    n_sat: int, n_unsat: int, ms: int, *, officer: str = "A1", window: str = "W1", start: int = 0, device: str = "D1"
) -> list[Ev]:
    """``n_sat`` presses of level 1 and ``n_unsat`` of level 2 on a 2-level box."""
    return [
        press(start + i, ms + i * 1000, 1 if i < n_sat else 2, officer=officer, window=window, device=device)
        for i in range(n_sat + n_unsat)
    ]


async def make_store(url: str | pathlib.Path, events: Iterable[Ev] = (), **registry: object) -> None:
    """A closed store at ``url`` with the registry and events."""
    db = await create_store(url)
    try:
        await seed_registry(db, **registry)  # type: ignore[arg-type]
        await ingest(db, events)
    finally:
        await db.close()


def build(url: str | pathlib.Path, events: Iterable[Ev] = (), **registry: object) -> str:
    """The store at ``url`` (a path or URL) built; ``url`` as a string, for ``--db``."""
    asyncio.run(make_store(url, list(events), **registry))
    return str(url)
