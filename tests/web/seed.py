"""Seeded store for the web tests: two units, four officers, known October 2026 numbers.

O1 张伟  U1  20 rated, 20 satisfied  -> met (100.00%)
O2 李娜  U1  40 rated, 39 satisfied  -> below_target (97.50%), one bad with ticket A017
O3 王强  U2  10 rated,  8 satisfied  -> below_floor (80.00%), two bad
O4 赵敏  U1  nothing                 -> no_ratings
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from collector.clock import now_ms
from collector.store import Database
from collector.timeplace import month_of

MONTH = "2026-10"
TZ = ZoneInfo("Asia/Shanghai")
EXPECTED = {
    "O1": (20, 20, "met", "100.00"),
    "O2": (40, 39, "below_target", "97.50"),
    "O3": (10, 8, "below_floor", "80.00"),
    "O4": (0, 0, "no_ratings", None),
}


def local_ms(day: int, hour: int, minute: int = 0, month: int = 10) -> int:
    return int(dt.datetime(2026, month, day, hour, minute, tzinfo=TZ).timestamp() * 1000)


class Seeder:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.seq: dict[str, int] = {}

    async def press(
        self,
        device: str,
        officer: str,
        window: str,
        at_ms: int,
        level: int,
        *,
        scale: int = 2,
        ticket: str | None = None,
        flags: int = 0,
        kind: str = "rated",
        recv_ms: int | None = None,
        invite_ms: int | None = None,
    ) -> tuple[str, int, int]:
        seq = self.seq.get(device, 0) + 1
        self.seq[device] = seq + (1 if invite_ms is not None else 0)
        month = month_of(at_ms)
        invite_no = None
        async with self.db.transaction() as tx:
            if invite_ms is not None:
                invite_no = seq
                await tx.execute(
                    "INSERT INTO invites (device_id, boot, invite_no, officer_id, ticket, opened_ms, outcome,"
                    " rating_seq) VALUES (?, 1, ?, ?, ?, ?, 'rated', ?)",
                    (device, invite_no, officer, ticket, invite_ms, seq + 1),
                )
                seq += 1
            await tx.execute(
                "INSERT INTO events (device_id, boot, seq, type, officer_id, window_id, press_ms, device_ts_ms,"
                " uptime_ms, recv_ms, month, level, scale, invite_no, ticket, flags, kind, source)"
                " VALUES (?, 1, ?, 'press', ?, ?, ?, ?, 1000, ?, ?, ?, ?, ?, ?, ?, ?, 'mqtt')",
                (device, seq, officer, window, at_ms, at_ms, recv_ms or now_ms(), month, level, scale, invite_no,
                 ticket, flags, kind),
            )  # fmt: skip
            await tx.execute(
                "INSERT INTO rollups (officer_id, month, window_id, kind, level, scale, late, n)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, 1)"
                " ON CONFLICT (month, officer_id, window_id, kind, level, scale, late) DO UPDATE SET n = rollups.n + 1",
                (officer, month, window, kind, level, scale),
            )
        return (device, 1, seq)


async def seed(db: Database) -> Seeder:
    """The fixture data above, plus two devices (one silent for a day)."""
    now = now_ms()
    async with db.transaction() as tx:
        for uid, name in (("U1", "城关派出所"), ("U2", "东城派出所")):
            await tx.execute("INSERT INTO units (id, name) VALUES (?, ?)", (uid, name))
        for wid, uid, name in (("W1", "U1", "户籍窗口1"), ("W2", "U2", "出入境窗口2")):
            await tx.execute("INSERT INTO windows (id, unit_id, name) VALUES (?, ?, ?)", (wid, uid, name))
        for oid, name, uid, wid in (("O1", "张伟", "U1", "W1"), ("O2", "李娜", "U1", "W1"), ("O3", "王强", "U2", "W2"),
                                    ("O4", "赵敏", "U1", "W1")):  # fmt: skip
            await tx.execute(
                "INSERT INTO officers (id, name, unit_id, window_id) VALUES (?, ?, ?, ?)", (oid, name, uid, wid)
            )
        await tx.execute(
            "INSERT INTO devices (id, window_id, key_hex, created_ms, status, last_seen_ms, fw, outbox, last_error)"
            " VALUES ('box-1', 'W1', '00', ?, 'online', ?, '1.0.0', 0, NULL)",
            (now, now),
        )
        await tx.execute(
            "INSERT INTO devices (id, window_id, key_hex, created_ms, status, last_seen_ms, fw, outbox, last_error)"
            " VALUES ('box-2', 'W2', '00', ?, 'offline', ?, '0.9.3', 120, 'mqtt: connection refused')",
            (now, now - 86_400_000),
        )
    s = Seeder(db)
    # Weekday presses 09:00-16:59, 7 minutes apart, each after an invite 3 s earlier (honest traffic).
    slots = [(d, h, m) for d in range(5, 31) if dt.date(2026, 10, d).weekday() < 5 for h in range(9, 17)
             for m in (7, 29, 51)]  # fmt: skip
    it = iter(slots)

    async def rated(device: str, officer: str, window: str, level: int, ticket: str | None = None) -> None:
        d, h, m = next(it)
        at = local_ms(d, h, m)
        await s.press(device, officer, window, at, level, ticket=ticket, invite_ms=at - 3000)

    for _ in range(20):
        await rated("box-1", "O1", "W1", 1)
    for i in range(40):
        await rated("box-1", "O2", "W1", 2 if i == 17 else 1, ticket="A017" if i == 17 else f"A{i:03d}")
    for i in range(10):
        await rated("box-2", "O3", "W2", 2 if i in (3, 6) else 1)
    return s
