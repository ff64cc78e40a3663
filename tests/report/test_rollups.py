"""Rollups kept at ingest equal a from-scratch recomputation over raw events.

Random months of events with duplicates and arrivals after a month's close;
three independent answers must agree: the incremental rollups, the rebuild
SQL, and a plain-Python count over the de-duplicated events — and the
monthly report read from rollups equals the one read from raw events.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.report.monthly import monthly_report
from collector.report.policy import Policy
from collector.report.rebuild import rebuild
from collector.timeplace import month_of
from tests.report.store import Ev, create_store, ingest, kind_of, local_ms, seed_registry

START = local_ms("2026-09-28 00:00:00")
SPAN = 40 * 86_400_000  # reaches into November

OFFICERS = (("A1", "甲", "U1", "W1"), ("A2", "乙", "U1", "W2"), ("A3", "丙", "U2", "W3"))
WINDOWS = (("W1", "U1", "一号窗"), ("W2", "U1", "二号窗"), ("W3", "U2", "三号窗"))
UNITS = (("U1", "城关所", None), ("U2", "出入境", "U1"))


@st.composite
def events(draw: st.DrawFn) -> list[Ev]:
    out = []
    for seq in range(draw(st.integers(0, 60))):
        kind = draw(st.sampled_from(["press", "press", "press", "invite", "unrated", "signin"]))
        scale = draw(st.sampled_from([2, 2, 3, 5]))
        out.append(
            Ev(
                device=draw(st.sampled_from(["D1", "D2"])),
                seq=seq,
                type=kind,
                press_ms=START + draw(st.integers(0, SPAN)),
                officer=draw(st.sampled_from(["A1", "A2", "A3", None, "X9"])),
                window=draw(st.sampled_from(["W1", "W2", "W3"])),
                level=draw(st.integers(1, scale)) if kind == "press" else None,
                scale=scale if kind == "press" else None,
                flags=draw(st.sampled_from([0, 0, 0, 1, 2, 4, 5, 8])) if kind == "press" else 0,
            )
        )
    return out


def python_rollups(stored: list[tuple[Ev, int]], tz: str) -> Counter[tuple[object, ...]]:
    counts: Counter[tuple[object, ...]] = Counter()
    for ev, late in stored:
        kind = kind_of(ev)
        if kind not in ("rated", "unsolicited", "misuse", "invite", "unrated"):
            continue
        presses = kind not in ("invite", "unrated")
        key = (
            ev.officer or "",
            month_of(ev.press_ms, tz),
            ev.window or "",
            kind,
            (ev.level or 0) if presses else 0,
            (ev.scale or 0) if presses else 0,
            late,
        )
        counts[key] += 1
    return counts


async def scenario(url: str, first: list[Ev], second: list[Ev], close: bool) -> None:
    tz = "Asia/Shanghai"
    db = await create_store(url, fresh=True)
    try:
        await seed_registry(db, UNITS, WINDOWS, OFFICERS)
        await ingest(db, first)
        if close:
            await db.execute("INSERT INTO months VALUES ('2026-10', 0, 'test')")
        await ingest(db, second)
        # de-duplicated with the late flag each event got when it was first stored
        seen: dict[tuple[str, int, int], tuple[Ev, int]] = {}
        for i, ev in enumerate(first + second):
            late = int(close and i >= len(first) and month_of(ev.press_ms, tz) == "2026-10")
            seen.setdefault((ev.device, ev.boot, ev.seq), (ev, late))
        expected = python_rollups(list(seen.values()), tz)

        rows = await db.fetch("SELECT officer_id, month, window_id, kind, level, scale, late, n FROM rollups")
        incremental = Counter({tuple(r[:7]): r[7] for r in rows})
        assert incremental == expected

        months = sorted({r[1] for r in rows})
        reports = {m: await monthly_report(db, m, Policy()) for m in months}
        naive = {m: await monthly_report(db, m, Policy(), naive=True) for m in months}
        assert reports == naive

        await rebuild(db, tz)
        rows = await db.fetch("SELECT officer_id, month, window_id, kind, level, scale, late, n FROM rollups")
        assert Counter({tuple(r[:7]): r[7] for r in rows}) == expected
        assert {m: await monthly_report(db, m, Policy()) for m in months} == reports
    finally:
        await db.close()


# One store per test, emptied for each example (``fresh``).
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(events(), st.data(), st.booleans())
def test_rollups_equal_recomputation(store_url: str, evs: list[Ev], data: st.DataObject, close: bool) -> None:
    cut = data.draw(st.integers(0, len(evs)))
    dups = data.draw(st.lists(st.sampled_from(evs), max_size=10)) if evs else []
    first, second = evs[:cut], evs[cut:] + dups
    asyncio.run(scenario(store_url, first, second, close))
