"""Closing a month: its figures freeze; later arrivals become a revision."""

from __future__ import annotations

import datetime as dt

from collector.errors import UsageError
from collector.store import Database
from collector.timeplace import month_bounds, parse_month


def _check_month(month: str) -> None:
    try:
        parse_month(month)
    except Exception as exc:
        raise UsageError(str(exc)) from None


async def close_month(db: Database, month: str, tz: str, *, by: str, now_ms: int) -> None:
    """Record ``month`` as closed; ``UsageError`` if it is not over yet or already closed.

    From then on the ingest writer stores the month's events with ``late = 1``
    and the report shows them as a revision.
    """
    _check_month(month)
    end = month_bounds(month, tz)[1]
    if now_ms < end:
        raise UsageError(f"month {month} is not over yet in {tz}; it can be closed once the next month has begun")
    async with db.transaction():
        done = await db.fetch("SELECT closed_ms, closed_by FROM months WHERE month = ?", (month,))
        if done:
            when = dt.datetime.fromtimestamp(done[0][0] / 1000, dt.UTC).isoformat(timespec="seconds")
            raise UsageError(f"month {month} was already closed at {when} by {done[0][1]}")
        await db.execute("INSERT INTO months (month, closed_ms, closed_by) VALUES (?, ?, ?)", (month, now_ms, by))


async def list_closed(db: Database) -> list[tuple[str, int, str]]:
    rows = await db.fetch("SELECT month, closed_ms, closed_by FROM months ORDER BY month")
    return [(r[0], int(r[1]), r[2]) for r in rows]
