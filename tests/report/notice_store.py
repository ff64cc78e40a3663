"""A county bureau's October 2026 for the printed notice: long unit and window names, long personal names,
a chain of sanctions over three months, a valid complaint, ranked officers.

A03 欧阳明辉  below the floor in August, September and October: the third 打招呼 gives a 谈话 and
              escalates (unit leader 李所长 a 谈话, bureau leader 陈局长 an 打招呼)
A05 彭华      below the floor in October only: the first 打招呼, two more before a 谈话
A07 阿依古丽·买买提  one valid complaint on 2026-10-20: a 谈话 and no honours; her rate is met
the others    met or below target; forty ratings each, so they are ranked; one unsolicited press (A08), one
              misuse (A06)
"""

from __future__ import annotations

import asyncio
import pathlib

from collector.report.ledger import add_complaint
from tests.report.store import Ev, create_store, ingest, local_ms, press, rated_presses

UNITS = (
    ("U0", "某某县公安局", None, "陈局长"),
    ("U1", "城关派出所", "U0", "李所长"),
    ("U2", "经济技术开发区派出所", "U0", "周所长"),
    ("U3", "出入境管理大队", "U0", "吴队长"),
)
WINDOWS = (
    ("W01", "U1", "户籍1号窗"),
    ("W02", "U1", "户籍2号窗"),
    ("W03", "U2", "综合受理3号窗口"),
    ("W04", "U2", "居住证办理窗口"),
    ("W05", "U3", "出入境证件受理窗口"),
    ("W06", "U3", "港澳台签注自助区"),
)
# id, name, unit, window, (satisfied, unsatisfied) in October
OFFICERS = (
    ("A01", "张伟", "U1", "W01", (40, 0)),
    ("A02", "李娜", "U1", "W02", (39, 1)),
    ("A03", "欧阳明辉", "U1", "W01", (30, 10)),
    ("A04", "王强", "U2", "W03", (38, 2)),
    ("A05", "彭华", "U2", "W04", (16, 4)),
    ("A06", "司马文静", "U2", "W03", (40, 0)),
    ("A07", "阿依古丽·买买提", "U3", "W05", (40, 0)),
    ("A08", "赵敏", "U3", "W06", (37, 3)),
    ("A09", "诸葛亮", "U3", "W05", (40, 0)),
    ("A10", "刘洋", "U1", "W02", (12, 0)),
)
MONTH = "2026-10"
ISSUER = "某某县公安局"


def events() -> list[Ev]:
    out: list[Ev] = []
    for n, (oid, _name, _unit, window, (sat, unsat)) in enumerate(OFFICERS):
        device = f"D{n:02d}"
        out += rated_presses(sat, unsat, local_ms("2026-10-12 09:00:00"), officer=oid, window=window, device=device)
        out += [
            Ev(device, 500 + i, "invite", local_ms("2026-10-13 09:00:00") + i * 1000, oid, window) for i in range(3)
        ]
        if oid == "A03":  # below the floor in August and September too
            for k, month in enumerate(("2026-08-10", "2026-09-10")):
                start = 1000 * (k + 1)
                out += rated_presses(
                    8, 2, local_ms(f"{month} 10:00:00"), officer=oid, window=window, device=device, start=start
                )
        flags = {"A08": 1, "A06": 2}.get(oid)  # one unsolicited press (A08), one misuse, a repeat (A06)
        if flags:
            out.append(
                press(900, local_ms("2026-10-14 09:00:00"), 1, officer=oid, window=window, device=device, flags=flags)
            )
    return out


async def _make(url: str) -> None:
    db = await create_store(url)
    try:
        async with db.transaction():
            await db.executemany("INSERT INTO units (id, name, parent_id, leader) VALUES (?, ?, ?, ?)", list(UNITS))
            await db.executemany("INSERT INTO windows (id, unit_id, name) VALUES (?, ?, ?)", list(WINDOWS))
            await db.executemany(
                "INSERT INTO officers (id, name, unit_id, window_id) VALUES (?, ?, ?, ?)", [o[:4] for o in OFFICERS]
            )
        await ingest(db, events())
        await add_complaint(db, "A07", "2026-10-20", "办证时态度生硬", by="督察", now_ms=0)
    finally:
        await db.close()


def build_bureau(url: str | pathlib.Path) -> str:
    asyncio.run(_make(str(url)))
    return str(url)
