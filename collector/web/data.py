"""The numbers the pages show, read from the store.

``monthly_rates`` is the one place that computes the monthly table. It reads
the rollups (kind ``rated``) and applies the policy's satisfied levels and
exact integer bands; when ``collector.report`` lands, the lead replaces its
body with a call to the report module's function of the same meaning and
keeps ``OfficerMonth`` (or maps the report's type onto it).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from collector.clock import now_ms
from collector.store import Database, Row
from collector.timeplace import month_bounds, parse_month, zone
from collector.web.scope import Viewer
from collector.web.settings import WebSettings

BANDS = ("met", "below_target", "below_floor", "no_ratings")


@dataclass
class OfficerMonth:
    """One officer's month: counts, rate, band."""

    officer_id: str
    name: str
    unit_id: str
    unit_name: str
    window_id: str
    month: str
    rated: int = 0
    satisfied: int = 0
    levels: dict[int, int] = field(default_factory=dict)
    invites: int = 0
    unrated: int = 0
    unsolicited: int = 0
    misuse: int = 0
    late_rated: int = 0  # ratings stored after the month was closed: a revision, not in the numbers above
    band: str = "no_ratings"
    rate_percent: str = "—"  # display, one decimal, never rounded up to 100.0
    wilson_low: float = 0.0

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["levels"] = {str(k): v for k, v in self.levels.items()}
        return d


def band(satisfied: int, rated: int, settings: WebSettings) -> str:
    """``met`` / ``below_target`` / ``below_floor`` / ``no_ratings``, in exact integers."""
    if rated == 0:
        return "no_ratings"
    if satisfied * 100 >= settings.target_percent * rated:
        return "met"
    if satisfied * 100 >= settings.floor_percent * rated:
        return "below_target"
    return "below_floor"


def rate_text(satisfied: int, rated: int) -> str:
    """The rate with one decimal, truncated (99.96% shows 99.9%, never 100.0%)."""
    if rated == 0:
        return "—"
    tenths = satisfied * 1000 // rated
    return f"{tenths // 10}.{tenths % 10}%"


def wilson_low(satisfied: int, rated: int, z: float = 1.959964) -> float:
    """Lower bound of the Wilson 95% interval (used for ranking, not for bands)."""
    if rated == 0:
        return 0.0
    p = satisfied / rated
    den = 1 + z * z / rated
    centre = p + z * z / (2 * rated)
    spread = z * math.sqrt(p * (1 - p) / rated + z * z / (4 * rated * rated))
    return (centre - spread) / den


async def window_scales(db: Database, month: str) -> dict[str, int]:
    """The rating scale of each window that had ratings in ``month`` (rollups carry no scale)."""
    rows = await db.fetch(
        "SELECT window_id, MAX(scale) AS scale FROM events WHERE month = ? AND kind = 'rated' GROUP BY window_id",
        (month,),
    )
    return {r["window_id"]: int(r["scale"] or 2) for r in rows}


async def monthly_rates(
    db: Database,
    month: str,
    settings: WebSettings,
    viewer: Viewer,
    *,
    unit: str | None = None,
    window: str | None = None,
    officer: str | None = None,
) -> list[OfficerMonth]:
    """Every officer of the viewer's units with their month, filtered by unit/window/officer."""
    parse_month(month)
    scope_sql, scope_params = viewer.unit_filter("o.unit_id")
    where = [scope_sql]
    params: list[Any] = list(scope_params)
    if unit:
        where.append("o.unit_id = ?")
        params.append(unit)
    if officer:
        where.append("o.id = ?")
        params.append(officer)
    officers = await db.fetch(
        "SELECT o.id, o.name, o.unit_id, u.name AS unit_name, o.window_id, o.active"
        " FROM officers o JOIN units u ON u.id = o.unit_id WHERE " + " AND ".join(where) + " ORDER BY o.id",
        params,
    )
    roll_where = "month = ?"
    roll_params: list[Any] = [month]
    if window:
        roll_where += " AND window_id = ?"
        roll_params.append(window)
    if officer:
        roll_where += " AND officer_id = ?"
        roll_params.append(officer)
    rollups = await db.fetch(
        "SELECT officer_id, window_id, kind, level, late, SUM(n) AS n FROM rollups WHERE "
        + roll_where
        + " GROUP BY officer_id, window_id, kind, level, late",
        roll_params,
    )
    scales = await window_scales(db, month)
    # A closed month is frozen: rows stored after closing (late = 1) are shown as a revision only.
    closed = await db.fetchone("SELECT month FROM months WHERE month = ?", (month,)) is not None
    by_officer: dict[str, list[Any]] = {}
    for r in rollups:
        by_officer.setdefault(r["officer_id"], []).append(r)
    out = []
    for o in officers:
        rows = by_officer.get(o["id"], [])
        if window and not rows:
            continue
        if not rows and not o["active"]:
            continue
        m = OfficerMonth(o["id"], o["name"], o["unit_id"], o["unit_name"], o["window_id"] or "", month)
        for r in rows:
            n = int(r["n"])
            kind, level = r["kind"], int(r["level"])
            if closed and r["late"]:
                m.late_rated += n if kind == "rated" else 0
                continue
            if kind == "rated":
                m.rated += n
                m.levels[level] = m.levels.get(level, 0) + n
                if level in settings.satisfied(scales.get(r["window_id"], 2)):
                    m.satisfied += n
            elif kind == "invite":
                m.invites += n
            elif kind == "unrated":
                m.unrated += n
            elif kind == "unsolicited":
                m.unsolicited += n
            elif kind == "misuse":
                m.misuse += n
        m.band = band(m.satisfied, m.rated, settings)
        m.rate_percent = rate_text(m.satisfied, m.rated)
        m.wilson_low = round(wilson_low(m.satisfied, m.rated), 4)
        out.append(m)
    return out


def sort_rows(rows: list[OfficerMonth], key: str, descending: bool) -> list[OfficerMonth]:
    """Sort the monthly table by a column name; unknown names sort by officer id."""
    keys: dict[str, Any] = {
        "officer": lambda m: m.officer_id,
        "name": lambda m: m.name,
        "unit": lambda m: m.unit_name,
        "rated": lambda m: m.rated,
        "rate": lambda m: (m.rated > 0, m.satisfied / m.rated if m.rated else 0.0),
        "wilson": lambda m: m.wilson_low,
        "band": lambda m: BANDS.index(m.band),
        "unsolicited": lambda m: m.unsolicited,
    }
    return sorted(rows, key=keys.get(key, keys["officer"]), reverse=descending)


def months_back(month: str, n: int) -> list[str]:
    """``n`` months ending with ``month``, oldest first."""
    year, mon = parse_month(month)
    out = []
    for _ in range(n):
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
    return out[::-1]


async def officer_trend(
    db: Database, officer_id: str, month: str, settings: WebSettings, viewer: Viewer
) -> list[OfficerMonth]:
    """The officer's last 12 months, oldest first."""
    out = []
    for m in months_back(month, 12):
        rows = await monthly_rates(db, m, settings, viewer, officer=officer_id)
        if rows:
            out.append(rows[0])
    return out


async def heat_map(db: Database, officer_id: str, month: str, settings: WebSettings) -> list[list[tuple[int, int]]]:
    """``grid[weekday][hour] = (rated, bad)`` of the officer's ratings in ``month`` (local time)."""
    start, end = month_bounds(month, settings.timezone)
    rows = await db.fetch(
        "SELECT press_ms, level, scale FROM events WHERE officer_id = ? AND kind = 'rated'"
        " AND press_ms >= ? AND press_ms < ?",
        (officer_id, start, end),
    )
    grid = [[(0, 0) for _ in range(24)] for _ in range(7)]
    tz = zone(settings.timezone)
    for r in rows:
        t = dt.datetime.fromtimestamp(r["press_ms"] / 1000, tz=tz)
        rated, bad = grid[t.weekday()][t.hour]
        grid[t.weekday()][t.hour] = (rated + 1, bad + (r["level"] in settings.bad(int(r["scale"] or 2))))
    return grid


async def recent_events(db: Database, officer_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The officer's latest presses with their flags and any misuse rule that flagged them."""
    rows = [
        dict(r)
        for r in await db.fetch(
            "SELECT e.device_id, e.boot, e.seq, e.press_ms, e.level, e.scale, e.ticket, e.flags, e.kind, e.window_id,"
            " e.invite_no, e.late FROM events e WHERE e.officer_id = ? AND e.type = 'press'"
            " ORDER BY e.press_ms DESC LIMIT ?",
            (officer_id, limit),
        )
    ]
    if rows:
        flagged = await db.fetch(
            "SELECT device_id, boot, seq, rule FROM anomalies WHERE officer_id = ? AND press_ms >= ?",
            (officer_id, min(r["press_ms"] for r in rows)),
        )
        rules: dict[tuple[str, int, int], list[str]] = {}
        for f in flagged:
            rules.setdefault((f["device_id"], f["boot"], f["seq"]), []).append(f["rule"])
        for r in rows:
            r["rules"] = sorted(rules.get((r["device_id"], r["boot"], r["seq"]), []))
    return rows


async def device_health(db: Database, settings: WebSettings, viewer: Viewer) -> list[dict[str, Any]]:
    """Every box of the viewer's units with its last status; ``stale`` when silent too long."""
    scope_sql, params = viewer.unit_filter("w.unit_id")
    rows = await db.fetch(
        "SELECT d.id, d.window_id, w.name AS window_name, w.unit_id, u.name AS unit_name, d.status, d.last_seen_ms,"
        " d.fw, d.outbox, d.outbox_full, d.last_error, d.rssi, d.boot, d.reset_cause"
        " FROM devices d JOIN windows w ON w.id = d.window_id JOIN units u ON u.id = w.unit_id"
        " WHERE " + scope_sql + " ORDER BY u.id, d.window_id, d.id",
        params,
    )
    out = [dict(r) for r in rows]
    limit = now_ms() - settings.offline_after_s * 1000
    for r in out:
        r["stale"] = r["last_seen_ms"] is None or r["last_seen_ms"] < limit
    return out


async def units_and_windows(db: Database, viewer: Viewer) -> tuple[list[Row], list[Row]]:
    """The units and windows the viewer may filter by."""
    scope_sql, params = viewer.unit_filter("id")
    units = await db.fetch("SELECT id, name FROM units WHERE " + scope_sql + " ORDER BY id", params)
    scope_sql, params = viewer.unit_filter("unit_id")
    windows = await db.fetch("SELECT id, name, unit_id FROM windows WHERE " + scope_sql + " ORDER BY id", params)
    return units, windows


def current_month(settings: WebSettings) -> str:
    t = dt.datetime.now(tz=zone(settings.timezone))
    return f"{t.year:04d}-{t.month:02d}"
