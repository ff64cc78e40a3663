"""Closing a month: its figures and judgement freeze; what changes later is a revision.

``close_month`` stores, in the transaction that records the close, the
month's rollup counts (``month_rollups``), the registry and the policy in
force (``month_snapshots``, JSON). The report of a closed month is computed
from these alone (``collector.report.monthly``).
"""

from __future__ import annotations

import datetime as dt
import json

from collector.errors import UsageError
from collector.report.monthly import load_registry, registry_to_json
from collector.report.policy import Policy, policy_to_dict
from collector.store import Database
from collector.store.audit import seal_month
from collector.timeplace import month_bounds, parse_month


def _check_month(month: str) -> None:
    try:
        parse_month(month)
    except Exception as exc:
        raise UsageError(str(exc)) from None


async def close_month(db: Database, month: str, policy: Policy, *, by: str, now_ms: int) -> None:
    """Record ``month`` as closed with its snapshot; ``UsageError`` if it is not over yet or already closed.

    The month is sealed in the same transaction (``collector.store.audit``): its digest is stored and
    appended to the audit trail. From then on the ingest writer stores the month's events with ``late = 1``
    and the report shows the frozen month, judged under ``policy``, with
    today's differences as a revision.
    """
    _check_month(month)
    tz = policy.timezone
    end = month_bounds(month, tz)[1]
    if now_ms < end:
        raise UsageError(f"month {month} is not over yet in {tz}; it can be closed once the next month has begun")
    async with db.transaction():
        done = await db.fetch("SELECT closed_ms, closed_by FROM months WHERE month = ?", (month,))
        if done:
            when = dt.datetime.fromtimestamp(done[0][0] / 1000, dt.UTC).isoformat(timespec="seconds")
            raise UsageError(f"month {month} was already closed at {when} by {done[0][1]}")
        # Inserting into ``months`` waits for ingest batches in flight (they hold it in SHARE mode);
        # later batches see the month closed, so the counts read below are the month's at closing.
        await db.execute("INSERT INTO months (month, closed_ms, closed_by) VALUES (?, ?, ?)", (month, now_ms, by))
        registry = registry_to_json(await load_registry(db))
        await db.execute(
            "INSERT INTO month_snapshots (month, policy, registry, taken_ms) VALUES (?, ?, ?, ?)",
            (month, json.dumps(policy_to_dict(policy), sort_keys=True), registry, now_ms),
        )
        await db.execute(
            "INSERT INTO month_rollups (month, officer_id, window_id, kind, level, scale, n)"
            " SELECT month, officer_id, window_id, kind, level, scale, SUM(n) FROM rollups WHERE month = ?"
            " GROUP BY month, officer_id, window_id, kind, level, scale",
            (month,),
        )
        await seal_month(db, month, tz, actor=by)


async def list_closed(db: Database) -> list[tuple[str, int, str]]:
    rows = await db.fetch("SELECT month, closed_ms, closed_by FROM months ORDER BY month")
    return [(r[0], int(r[1]), r[2]) for r in rows]
