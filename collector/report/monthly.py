"""The monthly report: each officer's, window's and unit's rate for one month.

Read from the rollups maintained at ingest (``monthly_report``), or — for
checking and benchmarking only — from raw events (``naive_rows``).

A closed month shows what was frozen at its close (``evalbox month close``):
the counts, the registry and the policy in force then (``month_snapshots``,
``month_rollups``), judged under that policy — band, penalty points, rank. A
later policy change, late arrivals or ``evalbox rebuild`` (even in another
time zone) never change it: what the month would be now (today's rollups
under today's policy) is a revision beside each line, with its band, never
merged in.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from collector.errors import UsageError
from collector.report.policy import Policy, policy_from_dict
from collector.report.rates import LEVEL_COLUMNS, ROLLUP_KINDS, Tally, band, merged, ratio, wilson
from collector.store import Database, Rows
from collector.store.audit import month_seal
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


def registry_to_json(registry: Registry) -> str:
    return json.dumps(
        {"units": registry.units, "windows": registry.windows, "officers": registry.officers},
        ensure_ascii=False,
        sort_keys=True,
    )


def registry_from_json(text: str) -> Registry:
    d = json.loads(text)
    return Registry(
        units={k: (v[0], v[1], v[2]) for k, v in d["units"].items()},
        windows={k: (v[0], v[1]) for k, v in d["windows"].items()},
        officers={k: (v[0], v[1], v[2], bool(v[3])) for k, v in d["officers"].items()},
    )


def rows_sql(*, raw: bool, late: int | None = None) -> str:
    """The month's rollup rows ``(officer, window, kind, level, scale, late, n)``.

    From ``rollups`` (a primary-key range scan) or, the naive way
    (``raw=True``), grouped from raw ``events``. ``late`` keeps one value only.
    """
    kinds = ", ".join(f"'{k}'" for k in ROLLUP_KINDS)
    where = "month = ?" if late is None else f"month = ? AND late = {int(late)}"
    if not raw:
        return f"SELECT officer_id, window_id, kind, level, scale, late, n FROM rollups WHERE {where}"
    return (
        "SELECT COALESCE(officer_id, ''), COALESCE(window_id, ''), kind,"
        " CASE WHEN kind IN ('invite', 'unrated') THEN 0 ELSE COALESCE(level, 0) END,"
        " CASE WHEN kind IN ('invite', 'unrated') THEN 0 ELSE COALESCE(scale, 0) END,"
        f" late, COUNT(*) FROM events WHERE {where} AND kind IN ({kinds}) GROUP BY 1, 2, 3, 4, 5, 6"
    )


Cell = tuple[str, str, int, Tally]  # officer, window, late, counts
# (kind, scale, level) -> (scale, index, satisfied?, bad?) for the presses that count
LevelPlan = dict[tuple[str, int, int], tuple[int, int, bool, bool]]
VALID_LEVELS = frozenset((s, lv) for s, lv in LEVEL_COLUMNS)


def level_plan(policy: Policy) -> LevelPlan:
    return {
        (kind, s, lv): (s, lv - 1, lv in policy.satisfied[s], lv in policy.bad[s])
        for kind in policy.counted
        for s, lv in LEVEL_COLUMNS
    }


@dataclasses.dataclass(frozen=True)
class SetAside:
    """Stored presses the report cannot count (a level outside its scale, an unknown kind): named, left out.

    ``rows`` are the events' identities ``(box, boot, seq)`` behind the rollup row (empty when the rollup
    row has no event behind it); ``n`` is how many presses the rollup row counted.
    """

    officer: str
    window: str
    kind: str
    level: int
    scale: int
    n: int
    why: str
    rows: tuple[tuple[str, int, int], ...] = ()

    def text(self) -> str:
        """One line for a supervisor, in Chinese and English."""
        ids = ", ".join(f"{d} boot {b} seq {s}" for d, b, s in self.rows) or "no event behind it / 无对应事件"
        return (
            f"已剔除异常记录 set aside {self.n} × {self.kind} level {self.level} scale {self.scale}"
            f" (officer {self.officer or '—'}, window {self.window or '—'}): {self.why}; {ids}"
        )


def _unusable(kind: str, level: int, scale: int) -> str | None:
    """Why a rollup row cannot be counted, or ``None``."""
    if kind in ("invite", "unrated"):
        return None
    if kind not in ROLLUP_KINDS:
        return f"unknown kind {kind!r} / 未知类型"
    if (scale, level) not in VALID_LEVELS:
        return f"level {level} outside scale {scale} (1..{scale}) / 评价等级超出量程"
    return None


def cells_from_rows(rows: Rows, policy: Policy, *, closed: bool, set_aside: list[SetAside] | None = None) -> list[Cell]:
    """Fold rollup rows into one ``Tally`` per (officer, window, late); an open month's are all on time.

    A row that cannot be counted (an unknown kind, a press whose level is outside its scale) goes to
    ``set_aside`` and is left out: one bad stored row never blocks the month for every officer.
    """
    plan = level_plan(policy)
    cells: dict[tuple[str, str, int], Tally] = {}
    for officer, window, kind, level, scale, late, n in rows:
        why = _unusable(kind, level, scale)
        if why is not None:
            if set_aside is not None:
                set_aside.append(SetAside(officer, window, kind, int(level), int(scale), int(n), why))
            continue
        key = (officer, window, 1 if closed and late == 1 else 0)
        t = cells.get(key)
        if t is None:
            t = cells[key] = Tally()
        n = int(n)  # PostgreSQL's SUM over BIGINT is a Decimal
        t.events += n
        if kind == "invite":
            t.invites += n
            continue
        if kind == "unrated":
            t.unrated += n
            continue
        if kind == "unsolicited":
            t.unsolicited += n
        elif kind == "misuse":
            t.misuse += n
        p = plan.get((kind, scale, level))
        if p is None:
            continue
        s, idx, is_sat, is_bad = p
        counts = t.levels.get(s)
        if counts is None:
            counts = t.levels[s] = [0] * s
        counts[idx] += n
        t.rated += n
        if is_sat:
            t.satisfied += n
        if is_bad:
            t.bad += n
    return [(o, w, late, t) for (o, w, late), t in cells.items()]


async def fetch_cells(
    db: Database,
    month: str,
    policy: Policy,
    *,
    closed: bool = False,
    naive: bool = False,
    set_aside: list[SetAside] | None = None,
) -> list[Cell]:
    """The month's cells from the rollups or, with ``naive``, from raw events; rows that cannot be
    counted go to ``set_aside``, named by the events behind them."""
    rows = await db.fetch(rows_sql(raw=naive), (month,))
    bad: list[SetAside] = []
    cells = cells_from_rows(rows, policy, closed=closed, set_aside=bad)
    if set_aside is not None:
        set_aside.extend([await _name_rows(db, month, b) for b in bad])
    return cells


_BEHIND = (
    "SELECT device_id, boot, seq FROM events WHERE month = ? AND (officer_id = ? OR (officer_id IS NULL AND ? = ''))"
    " AND (window_id = ? OR (window_id IS NULL AND ? = '')) AND kind = ? AND COALESCE(level, 0) = ?"
    " AND COALESCE(scale, 0) = ? ORDER BY device_id, boot, seq LIMIT 50"
)


async def _name_rows(db: Database, month: str, bad: SetAside) -> SetAside:
    """The set-aside rollup row with the identities of the events behind it (at most 50)."""
    found = await db.fetch(
        _BEHIND, (month, bad.officer, bad.officer, bad.window, bad.window, bad.kind, bad.level, bad.scale)
    )
    return dataclasses.replace(bad, rows=tuple((str(d), int(b), int(s)) for d, b, s in found))


async def closed_months(db: Database) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in await db.fetch("SELECT month, closed_ms FROM months")}


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A closed month as frozen at its close: counts, and (if known) the policy and registry then."""

    rows: Rows  # (officer, window, kind, level, scale, late = 0, n)
    policy: Policy | None
    registry: Registry | None


async def load_snapshot(db: Database, month: str) -> Snapshot | None:
    """The month's frozen state; ``None`` for a month closed without one (its ``late = 0`` rows stand in)."""
    snap = await db.fetchone("SELECT policy, registry FROM month_snapshots WHERE month = ?", (month,))
    if snap is None:
        return None
    rows = await db.fetch(
        "SELECT officer_id, window_id, kind, level, scale, 0, n FROM month_rollups WHERE month = ?", (month,)
    )
    return Snapshot(
        rows=rows,
        policy=None if snap[0] is None else policy_from_dict(json.loads(snap[0])),
        registry=None if snap[1] is None else registry_from_json(snap[1]),
    )


@dataclasses.dataclass(frozen=True)
class Revision:
    """What a closed month's line would be now: today's rollups (late arrivals and a
    rebuild's re-placed events included) under today's policy."""

    late_events: int
    rated: int
    satisfied: int
    rate: Fraction | None
    band: str


@dataclasses.dataclass(slots=True)
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
    wilson: tuple[float, float] | None
    band: str
    invites: int
    unrated: int
    unsolicited: int
    misuse: int
    penalty_points: int
    reminders: int  # 打招呼 given for this month
    rank: int | None = None
    standing: str | None = None  # 'top' | 'bottom' | None
    revision: Revision | None = None

    @property
    def rate(self) -> Fraction | None:
        """``satisfied / rated`` exactly; ``None`` when nothing was rated."""
        return ratio(self.satisfied, self.rated)

    @property
    def no_rating_rate(self) -> Fraction | None:
        """``unrated / invites`` (未评价率) exactly; ``None`` with no invites."""
        return ratio(self.unrated, self.invites)


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
        wilson=wilson(frozen.satisfied, frozen.rated),
        band=b,
        invites=frozen.invites,
        unrated=frozen.unrated,
        unsolicited=frozen.unsolicited,
        misuse=frozen.misuse,
        penalty_points=policy.penalty_points if b == "below_floor" else 0,
        reminders=1 if b == "below_floor" else 0,
        revision=revision,
    )


def rank_lines(lines: list[Line], policy: Policy) -> list[Line]:
    """Rank by Wilson lower bound (ties: more rated, then key) among lines with the minimum sample.

    Sets ``rank`` and ``standing`` in place: the top ``top_share`` percent (cut
    down to whole lines) are ``top``, the bottom ``bottom_share`` percent
    ``bottom``; lines below the sample stay unranked.
    """
    eligible = [ln for ln in lines if ln.rated >= policy.min_sample and ln.wilson is not None]
    eligible.sort(key=lambda ln: (-(ln.wilson or (0.0, 0.0))[0], -ln.rated, ln.key))
    n = len(eligible)
    top = int(n * policy.top_share / 100)
    bottom = int(n * policy.bottom_share / 100)
    for i, ln in enumerate(eligible):
        ln.rank = i + 1
        ln.standing = "top" if i < top else "bottom" if i >= n - bottom else None
    return lines


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
    policy: Policy  # the policy the figures are judged under: a closed month's is the one in force at closing
    revisions: int = 0  # officer lines with a revision (a closed month that would differ now)
    officer_checks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # officer_stats, by officer
    set_aside: tuple[SetAside, ...] = ()  # stored rows left out of every figure, named
    digest: str | None = None  # a closed month's digest (collector.store.audit), to check a printed report against
    pruned: bool = False  # its raw events were pruned (retention): the figures come from its rollups alone


def build_report(
    month: str,
    rows: list[Cell],
    registry: Registry,
    policy: Policy,
    *,
    closed_ms: int | None = None,
    unit: str | None = None,
) -> MonthlyReport:
    """Assemble the month's lines from its cells (pure; no I/O)."""
    units = registry.subtree(unit) if unit else set(registry.units) | {""}

    def window_unit(w: str) -> str:
        return registry.windows.get(w, ("", ""))[0]

    # One tally per (officer, window, late?) cell; every line merges cells.
    cells: dict[tuple[str, str, bool], Tally] = {}
    for officer, window, late_flag, t in rows:
        cells[officer, window, closed_ms is not None and late_flag == 1] = t

    by_officer: dict[str, dict[tuple[str, bool], Tally]] = defaultdict(dict)
    by_window: dict[str, dict[tuple[str, bool], Tally]] = defaultdict(dict)
    for (o, w, is_late), t in cells.items():
        by_officer[o][w, is_late] = t
        by_window[w][o, is_late] = t

    def split(parts: Iterable[tuple[bool, Tally]]) -> tuple[Tally, Tally]:
        on_time: list[Tally] = []
        late: list[Tally] = []
        for is_late, t in parts:
            (late if is_late else on_time).append(t)
        return merged(on_time), merged(late)

    officers = []
    ids = {o for o in by_officer if o} | {o for o, v in registry.officers.items() if v[3]}
    for oid in sorted(ids):
        name, o_unit, o_window, _ = registry.officers.get(oid, ("", "", None, False))
        mine = by_officer.get(oid, {})
        if not o_window and mine:
            o_window = max(mine.items(), key=lambda kv: (kv[1].events, kv[0][0]))[0][0]
        o_window = o_window or ""
        o_unit = o_unit or window_unit(o_window)
        if o_unit not in units:
            continue
        frozen, late = split((lt, t) for (_, lt), t in mine.items())
        officers.append(make_line(oid, name, o_unit, o_window, frozen, policy, late))

    windows = []
    per_unit: dict[str, list[tuple[bool, Tally]]] = defaultdict(list)
    for wid in sorted(by_window.keys() | set(registry.windows)):
        w_unit, w_name = registry.windows.get(wid, ("", ""))
        if w_unit in units:
            frozen, late = split((lt, t) for (_, lt), t in by_window.get(wid, {}).items())
            per_unit[w_unit].append((False, frozen))
            if late.events:
                per_unit[w_unit].append((True, late))
            windows.append(make_line(wid, w_name, w_unit, wid, frozen, policy, late))

    unit_lines = []
    for uid in sorted(units & (per_unit.keys() | set(registry.units))):
        frozen, late = split(per_unit.get(uid, []))
        unit_lines.append(make_line(uid, registry.units.get(uid, ("", None, None))[0], uid, "", frozen, policy, late))

    frozen, late = split((lt, t) for parts in per_unit.values() for lt, t in parts)
    total = make_line("", "", unit or "", "", frozen, policy, late)
    nobody_frozen, _ = split(
        (lt, t) for w, parts in by_window.items() if window_unit(w) in units for (o, lt), t in parts.items() if o == ""
    )
    nobody = make_line("", "", unit or "", "", nobody_frozen, policy)
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
        late_events=sum(t.events for (_, _, is_late), t in cells.items() if is_late),
        policy=policy,
    )


async def monthly_report(
    db: Database, month: str, policy: Policy, *, unit: str | None = None, naive: bool = False
) -> MonthlyReport:
    """The month's report from the rollups (or, with ``naive``, from raw events).

    A closed month: its frozen figures and judgement, each line with a revision
    where today's data under ``policy`` would differ. ``UsageError`` for a bad
    month, a month with no data, or an unknown unit.
    """
    try:
        parse_month(month)
    except Exception as exc:
        raise UsageError(str(exc)) from None
    registry = await load_registry(db)
    if unit:
        registry.subtree(unit)
    closed = (await closed_months(db)).get(month)
    set_aside: list[SetAside] = []
    if closed is None:
        rows = await fetch_cells(db, month, policy, naive=naive, set_aside=set_aside)
        set_aside = _in_unit(set_aside, registry, unit)
        if not rows and not set_aside:
            raise UsageError(f"no data for month {month} (no presses or invites stored for it)")
        return dataclasses.replace(build_report(month, rows, registry, policy, unit=unit), set_aside=tuple(set_aside))
    snap = await load_snapshot(db, month)
    if snap is None:  # closed without a snapshot: the rows that were on time stand in for it
        frozen_rows = await db.fetch(rows_sql(raw=naive, late=0), (month,))
    else:
        frozen_rows = snap.rows
    then = (snap.policy if snap else None) or policy
    then_registry = (snap.registry if snap else None) or registry
    today_rows = await db.fetch(rows_sql(raw=naive), (month,))
    if not today_rows and not frozen_rows:
        raise UsageError(f"no data for month {month} (no presses or invites stored for it)")
    known_unit = unit is None or unit in then_registry.units
    frozen = build_report(
        month,
        cells_from_rows(frozen_rows, then, closed=False) if known_unit else [],
        then_registry if known_unit else registry,
        then,
        closed_ms=closed,
        unit=unit,
    )
    seal = await month_seal(db, month)
    if seal is not None:
        frozen = dataclasses.replace(frozen, digest=seal["digest"], pruned=seal.get("pruned_ms") is not None)
    if then == policy and then_registry == registry and _counts(today_rows) == _counts(frozen_rows):
        return frozen  # nothing changed since the close (no late presses either): no revision to compute
    bad: list[SetAside] = []
    rows = cells_from_rows(today_rows, policy, closed=True, set_aside=bad)
    set_aside = _in_unit([await _name_rows(db, month, b) for b in bad], registry, unit)
    now = build_report(month, rows, registry, policy, closed_ms=closed, unit=unit)
    return dataclasses.replace(with_revisions(frozen, now), set_aside=tuple(set_aside))


def _in_unit(set_aside: list[SetAside], registry: Registry, unit: str | None) -> list[SetAside]:
    """The set-aside rows of ``unit``'s windows (all of them without a unit)."""
    if not unit:
        return set_aside
    mine = registry.subtree(unit)
    return [b for b in set_aside if registry.windows.get(b.window, ("", ""))[0] in mine]


def _counts(rows: Rows) -> dict[tuple[str, str, str, int, int, int], int] | None:
    """Rollup counts by key, late ones apart; ``None`` as soon as a late row shows (that is a revision)."""
    out: dict[tuple[str, str, str, int, int, int], int] = {}
    for officer, window, kind, level, scale, late, n in rows:
        if late:
            return None
        key = (officer, window, kind, int(level), int(scale), 0)
        out[key] = out.get(key, 0) + int(n)
    return out


def _would_be(line: Line) -> tuple[int, int, str, int]:
    """(rated, satisfied, band, late events) of a line of today's report, late arrivals merged."""
    rev = line.revision
    if rev is None:
        return line.rated, line.satisfied, line.band, 0
    return rev.rated, rev.satisfied, rev.band, rev.late_events


def _revise(frozen: list[Line], now: list[Line], policy: Policy) -> list[Line]:
    """Frozen lines, each given a revision where today's line differs; lines only today has are added, empty."""
    today = {ln.key: ln for ln in now}
    out = []
    for ln in frozen:
        ln.revision = None
        cur = today.pop(ln.key, None)
        rated, satisfied, b, late = _would_be(cur) if cur else (0, 0, "no_ratings", 0)
        if late or (rated, satisfied, b) != (ln.rated, ln.satisfied, ln.band):
            ln.revision = Revision(late, rated, satisfied, ratio(satisfied, rated), b)
        out.append(ln)
    for key, cur in sorted(today.items()):
        rated, satisfied, b, late = _would_be(cur)
        if (rated, late) == (0, 0):
            continue
        empty = make_line(key, cur.name, cur.unit, cur.window, Tally(), policy)
        empty.revision = Revision(late, rated, satisfied, ratio(satisfied, rated), b)
        out.append(empty)
    return out


def with_revisions(frozen: MonthlyReport, now: MonthlyReport) -> MonthlyReport:
    """The frozen report with, beside each line, what ``now`` (today's data and policy) would make it."""
    officers = _revise(frozen.officers, now.officers, frozen.policy)
    [total] = _revise([frozen.total], [now.total], frozen.policy)
    return dataclasses.replace(
        frozen,
        officers=officers,
        windows=_revise(frozen.windows, now.windows, frozen.policy),
        units=_revise(frozen.units, now.units, frozen.policy),
        total=total,
        late_events=now.late_events,
        revisions=sum(1 for ln in officers if ln.revision is not None),
    )
