"""The monthly report: each officer's, window's and unit's rate for one month.

Read from the rollups maintained at ingest (``monthly_report``), or — for
checking and benchmarking only — from raw events (``naive_rows``). A closed
month shows its frozen figures (``late = 0``); rows that arrived after the
close are a revision beside them, never merged in.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from fractions import Fraction

from collector.errors import UsageError
from collector.report.db import Database
from collector.report.policy import Policy
from collector.report.rates import ROLLUP_KINDS, RollupRow, Tally, band, ratio, wilson
from collector.timeplace import parse_month


@dataclasses.dataclass(frozen=True)
class Registry:
    """Units, windows and officers as registered in the store."""

    units: dict[str, tuple[str, str | None, str | None]]  # id -> (name, parent, leader)
    windows: dict[str, tuple[str, str]]  # id -> (unit, name)
    officers: dict[str, tuple[str, str, str | None, bool]]  # id -> (name, unit, window, active)

    def subtree(self, unit: str) -> set[str]:
        """``unit`` and every unit below it; ``UsageError`` for an unknown unit."""
        if unit not in self.units:
            raise UsageError(f"unknown unit {unit!r} (not in the units table)")
        children: dict[str | None, list[str]] = defaultdict(list)
        for uid, (_, parent, _) in self.units.items():
            children[parent].append(uid)
        found, todo = set(), [unit]
        while todo:
            u = todo.pop()
            if u not in found:
                found.add(u)
                todo.extend(children[u])
        return found


async def load_registry(db: Database) -> Registry:
    units = {r[0]: (r[1], r[2], r[3]) for r in await db.fetch("SELECT id, name, parent_id, leader FROM units")}
    windows = {r[0]: (r[1], r[2]) for r in await db.fetch("SELECT id, unit_id, name FROM windows")}
    officers = {
        r[0]: (r[1], r[2], r[3], bool(r[4]))
        for r in await db.fetch("SELECT id, name, unit_id, window_id, active FROM officers")
    }
    return Registry(units, windows, officers)


async def rollup_rows(db: Database, month: str) -> list[RollupRow]:
    """The month's rollup rows (primary-key range scan)."""
    rows = await db.fetch(
        "SELECT officer_id, window_id, kind, level, scale, late, n FROM rollups WHERE month = ?", (month,)
    )
    return [RollupRow(*r) for r in rows]


NAIVE_SQL = (
    "SELECT COALESCE(officer_id, ''), COALESCE(window_id, ''), kind,"
    " CASE WHEN kind IN ('invite', 'unrated') THEN 0 ELSE COALESCE(level, 0) END,"
    " CASE WHEN kind IN ('invite', 'unrated') THEN 0 ELSE COALESCE(scale, 0) END,"
    " late, COUNT(*) FROM events WHERE month = ? AND kind IN ({kinds})"
    " GROUP BY 1, 2, 3, 4, 5, 6"
).format(kinds=", ".join(f"'{k}'" for k in ROLLUP_KINDS))


async def naive_rows(db: Database, month: str) -> list[RollupRow]:
    """The same rows computed by GROUP BY over raw events (slow; for checks and the bench)."""
    return [RollupRow(*r) for r in await db.fetch(NAIVE_SQL, (month,))]


async def closed_months(db: Database) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in await db.fetch("SELECT month, closed_ms FROM months")}


@dataclasses.dataclass(frozen=True)
class Revision:
    """What the events that arrived after the month's close would change."""

    late_events: int
    rated: int
    satisfied: int
    rate: Fraction | None
    band: str


@dataclasses.dataclass(frozen=True)
class Line:
    """One officer's, window's or unit's figures for the month."""

    key: str
    name: str
    unit: str
    window: str
    rated: int
    satisfied: int
    unsatisfied: int
    bad: int
    levels: dict[int, tuple[int, ...]]
    rate: Fraction | None
    wilson: tuple[float, float] | None
    band: str
    invites: int
    unrated: int
    no_rating_rate: Fraction | None
    unsolicited: int
    misuse: int
    penalty_points: int
    reminders: int  # 打招呼 given for this month
    rank: int | None = None
    standing: str | None = None  # 'top' | 'bottom' | None
    revision: Revision | None = None


def make_line(
    key: str, name: str, unit: str, window: str, frozen: Tally, policy: Policy, late: Tally | None = None
) -> Line:
    b = band(frozen.satisfied, frozen.rated, policy)
    revision = None
    if late is not None and late.events:
        rated, satisfied = frozen.rated + late.rated, frozen.satisfied + late.satisfied
        revision = Revision(late.events, rated, satisfied, ratio(satisfied, rated), band(satisfied, rated, policy))
    return Line(
        key=key,
        name=name,
        unit=unit,
        window=window,
        rated=frozen.rated,
        satisfied=frozen.satisfied,
        unsatisfied=frozen.rated - frozen.satisfied,
        bad=frozen.bad,
        levels={s: tuple(c) for s, c in sorted(frozen.levels.items())},
        rate=ratio(frozen.satisfied, frozen.rated),
        wilson=wilson(frozen.satisfied, frozen.rated),
        band=b,
        invites=frozen.invites,
        unrated=frozen.unrated,
        no_rating_rate=ratio(frozen.unrated, frozen.invites),
        unsolicited=frozen.unsolicited,
        misuse=frozen.misuse,
        penalty_points=policy.penalty_points if b == "below_floor" else 0,
        reminders=1 if b == "below_floor" else 0,
        revision=revision,
    )


def rank_lines(lines: list[Line], policy: Policy) -> list[Line]:
    """Rank by Wilson lower bound (ties: more rated, then key) among lines with the minimum sample.

    The top ``top_share`` percent (cut down to whole lines) are ``top``, the
    bottom ``bottom_share`` percent ``bottom``; lines below the sample are unranked.
    """
    eligible = [ln for ln in lines if ln.rated >= policy.min_sample and ln.wilson is not None]
    eligible.sort(key=lambda ln: (-(ln.wilson or (0.0, 0.0))[0], -ln.rated, ln.key))
    n = len(eligible)
    top = int(n * policy.top_share / 100)
    bottom = int(n * policy.bottom_share / 100)
    ranked: dict[str, Line] = {}
    for i, ln in enumerate(eligible):
        standing = "top" if i < top else "bottom" if i >= n - bottom else None
        ranked[ln.key] = dataclasses.replace(ln, rank=i + 1, standing=standing)
    return [ranked.get(ln.key, ln) for ln in lines]


@dataclasses.dataclass(frozen=True)
class MonthlyReport:
    month: str
    timezone: str
    unit: str | None
    closed_ms: int | None
    officers: list[Line]
    windows: list[Line]
    units: list[Line]
    total: Line
    nobody: Line  # presses with no officer signed in
    late_events: int


def _group(rows: Iterable[RollupRow], key: str) -> dict[str, list[RollupRow]]:
    out: dict[str, list[RollupRow]] = defaultdict(list)
    for r in rows:
        out[getattr(r, key)].append(r)
    return out


def build_report(
    month: str,
    rows: list[RollupRow],
    registry: Registry,
    policy: Policy,
    *,
    closed_ms: int | None = None,
    unit: str | None = None,
) -> MonthlyReport:
    """Assemble the month's lines from rollup-shaped rows (pure; no I/O)."""
    units = registry.subtree(unit) if unit else set(registry.units) | {""}
    frozen_rows = [r for r in rows if closed_ms is None or r.late == 0]
    late_rows = [r for r in rows if closed_ms is not None and r.late == 1]

    def window_unit(w: str) -> str:
        return registry.windows.get(w, ("", ""))[0]

    def tallies(key: str) -> tuple[dict[str, Tally], dict[str, Tally]]:
        fz = {k: _tally(v, policy) for k, v in _group(frozen_rows, key).items()}
        lt = {k: _tally(v, policy) for k, v in _group(late_rows, key).items()}
        return fz, lt

    off_f, off_l = tallies("officer")
    by_officer_window: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        by_officer_window[r.officer][r.window] += r.n
    officers = []
    ids = {o for o in off_f.keys() | off_l.keys() if o} | {o for o, v in registry.officers.items() if v[3]}
    for oid in sorted(ids):
        name, o_unit, o_window, _ = registry.officers.get(oid, ("", "", None, False))
        if not o_window and by_officer_window[oid]:
            o_window = max(by_officer_window[oid].items(), key=lambda kv: (kv[1], kv[0]))[0]
        o_window = o_window or ""
        o_unit = o_unit or window_unit(o_window)
        if o_unit not in units:
            continue
        officers.append(make_line(oid, name, o_unit, o_window, off_f.get(oid, Tally()), policy, off_l.get(oid)))

    win_f, win_l = tallies("window")
    windows = []
    for wid in sorted(win_f.keys() | win_l.keys() | set(registry.windows)):
        w_unit, w_name = registry.windows.get(wid, ("", ""))
        if w_unit in units:
            windows.append(make_line(wid, w_name, w_unit, wid, win_f.get(wid, Tally()), policy, win_l.get(wid)))

    unit_rows_f: dict[str, list[RollupRow]] = defaultdict(list)
    unit_rows_l: dict[str, list[RollupRow]] = defaultdict(list)
    for r in frozen_rows:
        unit_rows_f[window_unit(r.window)].append(r)
    for r in late_rows:
        unit_rows_l[window_unit(r.window)].append(r)
    unit_lines = []
    for uid in sorted(units & (unit_rows_f.keys() | unit_rows_l.keys() | set(registry.units))):
        u_name = registry.units.get(uid, ("", None, None))[0]
        unit_lines.append(
            make_line(uid, u_name, uid, "", _tally(unit_rows_f[uid], policy), policy, _tally(unit_rows_l[uid], policy))
        )

    in_scope = [r for r in rows if window_unit(r.window) in units]
    total = make_line(
        "",
        "",
        unit or "",
        "",
        _tally((r for r in in_scope if closed_ms is None or r.late == 0), policy),
        policy,
        _tally((r for r in in_scope if r.late == 1 and closed_ms is not None), policy),
    )
    nobody = make_line(
        "",
        "",
        unit or "",
        "",
        _tally((r for r in in_scope if r.officer == "" and (closed_ms is None or r.late == 0)), policy),
        policy,
    )
    return MonthlyReport(
        month=month,
        timezone=policy.timezone,
        unit=unit,
        closed_ms=closed_ms,
        officers=rank_lines(officers, policy),
        windows=rank_lines(windows, policy),
        units=unit_lines,
        total=total,
        nobody=nobody,
        late_events=sum(r.n for r in late_rows),
    )


def _tally(rows: Iterable[RollupRow], policy: Policy) -> Tally:
    t = Tally()
    for r in rows:
        t.add(r, policy)
    return t


async def monthly_report(
    db: Database, month: str, policy: Policy, *, unit: str | None = None, naive: bool = False
) -> MonthlyReport:
    """The month's report from the rollups (or, with ``naive``, from raw events).

    ``UsageError`` for a bad month, a month with no data, or an unknown unit.
    """
    try:
        parse_month(month)
    except Exception as exc:
        raise UsageError(str(exc)) from None
    registry = await load_registry(db)
    if unit:
        registry.subtree(unit)
    rows = await (naive_rows(db, month) if naive else rollup_rows(db, month))
    if not rows:
        raise UsageError(f"no data for month {month} (no presses or invites stored for it)")
    closed = (await closed_months(db)).get(month)
    return build_report(month, rows, registry, policy, closed_ms=closed, unit=unit)
