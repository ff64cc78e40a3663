"""Recompute derived data from raw events: ``events.month`` in the policy zone, then rollups.

Runs in one transaction (all or nothing; the single writer waits). On
PostgreSQL, where several writers run at once, the transaction first locks
``events`` and ``rollups`` against writes (``SHARE ROW EXCLUSIVE``): ingest
batches in flight finish first, later ones wait for the rebuild. The
rollup SQL here is the definition the ingest writer's incremental upserts
must agree with (tests compare the two).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from collector.store import Database
from collector.store.audit import append_audit
from collector.store.rollups import INSERT_ROLLUPS, rollup_select
from collector.timeplace import month_bounds, month_of, zone

Progress = Callable[[int, int, str], None]

ROLLUP_SQL = INSERT_ROLLUPS + rollup_select()
PRUNED_MONTHS = "SELECT month FROM month_digests WHERE pruned_ms IS NOT NULL"


@dataclasses.dataclass(frozen=True)
class RebuildResult:
    months: list[str]
    moved_events: int  # events whose month changed (a different zone)
    rollup_rows: int
    unusable: tuple[tuple[str, int, int, int, int], ...] = ()  # presses no report can count: (box, boot, seq, k, n)


def months_between(first: str, last: str) -> list[str]:
    y, m = int(first[:4]), int(first[5:])
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def month_case_sql(months: list[str], tz: str) -> str:
    """A CASE expression mapping ``press_ms`` to its month in ``tz`` (months cover every press)."""
    branches = " ".join(f"WHEN press_ms < {month_bounds(m, tz)[1]} THEN '{m}'" for m in months[:-1])
    return f"CASE {branches} ELSE '{months[-1]}' END" if branches else f"'{months[-1]}'"


async def replace_months(db: Database, tz: str) -> tuple[list[str], int]:
    """Set ``events.month`` from ``press_ms`` in zone ``tz``; (months with events, events moved)."""
    zone(tz)
    (lo, hi), *_ = await db.fetch("SELECT MIN(press_ms), MAX(press_ms) FROM events")
    if lo is None:
        return [], 0
    months = months_between(month_of(int(lo), tz), month_of(int(hi), tz))
    case = month_case_sql(months, tz)
    moved = await db.execute(f"UPDATE events SET month = {case} WHERE month <> {case}")
    return months, max(moved, 0)


async def rebuild(db: Database, tz: str, progress: Progress | None = None, *, by: str = "system") -> RebuildResult:
    """Re-place every event's month in ``tz`` and recompute all rollups from raw events (audited as done ``by``)."""
    async with db.transaction():
        await db.lock("events", "rollups")
        span, moved = await replace_months(db, tz)
        # A month whose raw events retention pruned keeps its rollups: they are all that is left of it.
        await db.execute(f"DELETE FROM rollups WHERE month NOT IN ({PRUNED_MONTHS})")
        pruned = {str(r[0]) for r in await db.fetch(PRUNED_MONTHS)}
        months, total = span, 0
        for i, month in enumerate(months):
            if month not in pruned:
                total += max(await db.execute(ROLLUP_SQL, (month,)), 0)
            if progress:
                progress(i + 1, len(months), month)
        bad = await db.fetch(UNUSABLE_SQL) if await db.fetch(UNUSABLE_ROLLUPS) else []
        after = {"timezone": tz, "months": len(months), "moved_events": moved, "rollup_rows": total}
        await append_audit(db, actor=by, action="store.rebuild", subject="rollups", after=after)
    return RebuildResult(
        months=months,
        moved_events=moved,
        rollup_rows=total,
        unusable=tuple((str(d), int(b), int(q), int(k or 0), int(n or 0)) for d, b, q, k, n in bad),
    )


# Presses whose level is outside their scale (stored before ``k > n`` was refused at decode, or written by
# hand): rebuilt like any row, set aside and named by every report.
_OUTSIDE = "(level IS NULL OR scale IS NULL OR scale < 2 OR scale > 5 OR level < 1 OR level > scale)"
UNUSABLE_ROLLUPS = (  # the rollups are small: the events are searched only when one of them is bad
    f"SELECT 1 FROM rollups WHERE kind IN ('rated', 'unsolicited', 'misuse') AND {_OUTSIDE} LIMIT 1"
)
UNUSABLE_SQL = (
    "SELECT device_id, boot, seq, level, scale FROM events WHERE type = 'press'"
    f" AND {_OUTSIDE} ORDER BY device_id, boot, seq LIMIT 50"
)


def now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)
