"""What the pages show, read from the store.

The month's numbers are the report's: every rated, satisfied, rate, band and
rank on the page, in ``/api/month``, in the officer drill-down and in the
below-floor alerts is a line of ``collector.report.monthly_report`` under the
one policy the configuration names. This module only chooses the viewer's
part of the report (``scoped_report``) and reads what the report does not
hold: the heat map, recent presses, device health.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from collector.clock import now_ms
from collector.errors import UsageError
from collector.report import Line, MonthlyReport, Policy, monthly_report
from collector.report.rates import BANDS
from collector.store import Database
from collector.timeplace import month_bounds, parse_month, zone
from collector.web.scope import Viewer
from collector.web.settings import WebSettings

log = logging.getLogger("evalbox.web")
TREND_MONTHS = 12


def home_unit(viewer: Viewer, unit: str | None) -> str | None:
    """The unit whose report the viewer gets: the one asked for, else (a supervisor) their first unit.

    A supervisor of several units reads one unit's report at a time, so every
    document they see is the report ``evalbox report --unit U`` writes.
    """
    if unit or viewer.units is None:
        return unit
    return viewer.roots[0] if viewer.roots else None


async def scoped_report(
    db: Database, month: str, policy: Policy, viewer: Viewer, *, unit: str | None = None
) -> MonthlyReport | None:
    """The month's report for ``unit`` (and the units under it) as the viewer may see it; None with no data."""
    unit = home_unit(viewer, unit)
    if viewer.units is not None and not viewer.sees_unit(unit):
        return None
    try:
        return await monthly_report(db, month, policy, unit=unit)
    except UsageError as exc:  # no data for the month (the month and unit were checked already)
        log.info("no report for %s: %s", month, exc)
        return None


def officer_lines(report: MonthlyReport | None, *, window: str | None = None) -> list[Line]:
    """The report's officer lines, only those whose window is ``window`` when given."""
    if report is None:
        return []
    return [ln for ln in report.officers if not window or ln.window == window]


def sort_lines(lines: list[Line], key: str, descending: bool) -> list[Line]:
    """Sort the monthly table by a column name; unknown names sort by officer id."""
    keys: dict[str, Any] = {
        "officer": lambda ln: ln.key,
        "name": lambda ln: ln.name,
        "unit": lambda ln: ln.unit,
        "rated": lambda ln: ln.rated,
        "rate": lambda ln: (ln.rate is not None, ln.rate or 0),
        "wilson": lambda ln: ln.wilson[0] if ln.wilson else -1.0,
        "rank": lambda ln: (ln.rank is None, ln.rank or 0),
        "band": lambda ln: BANDS.index(ln.band),
        "unsolicited": lambda ln: ln.unsolicited,
    }
    return sorted(lines, key=keys.get(key, keys["officer"]), reverse=descending)


def months_back(month: str, n: int) -> list[str]:
    """``n`` months ending with ``month``, oldest first."""
    year, mon = parse_month(month)
    out = []
    for _ in range(n):
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
    return out[::-1]


async def officer_trend(
    db: Database, officer_id: str, unit: str, month: str, policy: Policy
) -> list[tuple[str, Line | None]]:
    """The officer's line in each of the last 12 months (their unit's report), oldest first; None: no line."""
    out: list[tuple[str, Line | None]] = []
    for m in months_back(month, TREND_MONTHS):
        try:
            report = await monthly_report(db, m, policy, unit=unit)
        except UsageError:
            out.append((m, None))
            continue
        out.append((m, next((ln for ln in report.officers if ln.key == officer_id), None)))
    return out


async def heat_map(db: Database, officer_id: str, month: str, policy: Policy) -> list[list[tuple[int, int]]]:
    """``grid[weekday][hour] = (rated, bad)`` of the officer's ratings in ``month``.

    Local time and bad levels are the policy's.
    """
    start, end = month_bounds(month, policy.timezone)
    rows = (
        await db.fetch(
            "SELECT press_ms, level, scale FROM events WHERE officer_id = ? AND kind = 'rated'"
            " AND press_ms >= ? AND press_ms < ?",
            (officer_id, start, end),
        )
    ).dicts()
    grid = [[(0, 0) for _ in range(24)] for _ in range(7)]
    tz = zone(policy.timezone)
    for r in rows:
        t = dt.datetime.fromtimestamp(r["press_ms"] / 1000, tz=tz)
        rated, bad = grid[t.weekday()][t.hour]
        grid[t.weekday()][t.hour] = (rated + 1, bad + (r["level"] in policy.bad.get(int(r["scale"] or 2), ())))
    return grid


async def recent_events(
    db: Database, officer_id: str, limit: int = 50, *, before_ms: int | None = None
) -> list[dict[str, Any]]:
    """The officer's latest presses (before ``before_ms``) with their flags and any rule that flagged them."""
    rows = (
        await db.fetch(
            "SELECT e.device_id, e.boot, e.seq, e.press_ms, e.level, e.scale, e.ticket, e.flags, e.kind, e.window_id,"
            " w.name AS window_name, e.invite_no, e.late FROM events e LEFT JOIN windows w ON w.id = e.window_id"
            " WHERE e.officer_id = ? AND e.type = 'press' AND e.press_ms < ? ORDER BY e.press_ms DESC LIMIT ?",
            (officer_id, before_ms if before_ms is not None else 2**62, limit),
        )
    ).dicts()
    if rows:
        flagged = (
            await db.fetch(
                "SELECT device_id, boot, seq, rule FROM anomalies WHERE officer_id = ? AND press_ms >= ?",
                (officer_id, min(r["press_ms"] for r in rows)),
            )
        ).dicts()
        rules: dict[tuple[str, int, int], list[str]] = {}
        for f in flagged:
            rules.setdefault((f["device_id"], f["boot"], f["seq"]), []).append(f["rule"])
        for r in rows:
            r["rules"] = sorted(rules.get((r["device_id"], r["boot"], r["seq"]), []))
    return rows


async def device_health(db: Database, settings: WebSettings, viewer: Viewer) -> list[dict[str, Any]]:
    """Every box of the viewer's units with its last status; ``stale`` when silent too long."""
    scope_sql, params = viewer.unit_filter("w.unit_id")
    rows = (
        await db.fetch(
            "SELECT d.id, d.window_id, w.name AS window_name, w.unit_id, u.name AS unit_name, d.status, d.last_seen_ms,"
            " d.fw, d.outbox, d.outbox_full, d.last_error, d.rssi, d.boot, d.reset_cause,"
            " d.config_version, d.settings_cv, f.version AS fw_version, f.slot AS fw_slot, f.trial AS fw_trial,"
            " f.state AS fw_state, f.why AS fw_why,"
            " CASE WHEN f.size > 0 THEN f.received * 100 / f.size END AS fw_received_pct"
            " FROM devices d JOIN windows w ON w.id = d.window_id JOIN units u ON u.id = w.unit_id"
            " LEFT JOIN fw_box_state f ON f.device_id = d.id"
            " WHERE " + scope_sql + " ORDER BY u.id, d.window_id, d.id",
            params,
        )
    ).dicts()
    limit = now_ms() - settings.offline_after_s * 1000
    for r in rows:
        r["stale"] = r["last_seen_ms"] is None or r["last_seen_ms"] < limit
        # The box reports the config version it runs; older than the store's means it has not taken
        # its settings yet (the collector sends them again on its next status).
        r["config_old"] = r["config_version"] is not None and r["config_version"] < r["settings_cv"]
    return rows


async def units_and_windows(db: Database, viewer: Viewer) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The units and windows the viewer may filter by."""
    scope_sql, params = viewer.unit_filter("id")
    units = (await db.fetch("SELECT id, name FROM units WHERE " + scope_sql + " ORDER BY id", params)).dicts()
    scope_sql, params = viewer.unit_filter("unit_id")
    windows = (
        await db.fetch("SELECT id, name, unit_id FROM windows WHERE " + scope_sql + " ORDER BY id", params)
    ).dicts()
    return units, windows


def current_month(policy: Policy) -> str:
    """This month in the policy's time zone."""
    t = dt.datetime.now(tz=zone(policy.timezone))
    return f"{t.year:04d}-{t.month:02d}"
