"""Self-rating and misuse detection: rules with thresholds, each flag explained in words.

``find_flags`` is pure (a list of presses in, flags out) so the benchmark and
tests run it without a store; ``detect`` feeds it from the store and records
flags in ``anomalies``. Flagged presses are only marked — never deleted,
never changed; whether they count is the report's policy.

Rules (thresholds in ``DetectionRules``):

- ``burst``          ≥ N presses on one box within W seconds (a window serves one citizen at a time)
- ``no_invite``      an officer's presses with no open invite, ≥ K in one day, on a box that asks for invites
- ``instant``        a rating faster after the invite than a citizen can read and press
- ``regular``        a chain of presses at near-constant intervals (a person repeating a routine),
                     other presses in between allowed
- ``outside_hours``  pressed outside opening hours (box flag, or configured hours)
- ``no_officer``     pressed with nobody signed in
- ``unsolicited_share`` an officer's share of unsolicited presses far above their unit's
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collector.clock import now_ms
from collector.report.officer_stats import explain_with
from collector.store import Database
from collector.timeplace import month_of, zone
from collector.web.settings import DetectionRules, WebSettings
from protocol.messages import FLAG_NO_OFFICER, FLAG_OUTSIDE_HOURS, FLAG_UNSOLICITED

Key = tuple[str, int, int]

EXPLAIN: dict[str, tuple[str, str]] = {
    "burst": (
        "{n} 次按键在 {seconds} 秒内按下（同一评价器）；一个窗口同一时间只办理一位群众，疑似自评或乱按",
        "{n} presses within {seconds} s on one box; a window serves one citizen at a time, so this looks like "
        "self-rating or fiddling",
    ),
    "no_invite": (
        "当天 {n} 次未经“请评价”邀请的按键（阈值 {threshold}）；启用邀请的评价器上群众通常在邀请后评价",
        "{n} presses with no invite on this day (threshold {threshold}); on a box that asks for invites "
        "citizens rate after the invite",
    ),
    "instant": (
        "邀请后 {ms} 毫秒即评价，快于群众看到提示并按键所需时间（{threshold} 毫秒）",
        "rated {ms} ms after the invite, faster than a citizen can see the prompt and press ({threshold} ms)",
    ),
    "regular": (
        "连续 {n} 次按键间隔几乎相同（平均 {mean_s} 秒，偏差不超过 {tolerance_pct}%），像同一人重复操作",
        "{n} presses in a row at near-constant intervals (mean {mean_s} s, within {tolerance_pct}%), like one "
        "person repeating a routine",
    ),
    "outside_hours": (
        "在办公时间以外按下（{local}）",
        "pressed outside opening hours ({local})",
    ),
    "no_officer": (
        "按下时无民警签到",
        "pressed with nobody signed in",
    ),
    "unsolicited_share": (
        "本月未经邀请的按键占 {share_pct}%，本单位其他民警为 {unit_pct}%（样本 {n} 次）",
        "{share_pct}% of this officer's presses this month had no invite; {unit_pct}% for the rest of the unit "
        "({n} presses)",
    ),
}


@dataclass(frozen=True)
class Press:
    """One press as the rules see it."""

    device_id: str
    boot: int
    seq: int
    officer_id: str
    unit_id: str
    press_ms: int
    flags: int
    invite_ms: int | None = None  # when its invite opened, if it had one

    @property
    def key(self) -> Key:
        return (self.device_id, self.boot, self.seq)


@dataclass(frozen=True)
class Flag:
    key: Key
    rule: str
    detail: dict[str, Any]


def explain(rule: str, detail: dict[str, Any], lang: str = "zh") -> str:
    """The flag in words, in ``lang`` (``zh`` or ``en``)."""
    return explain_with(EXPLAIN, rule, detail, lang)


def _bursts(presses: Sequence[Press], r: DetectionRules) -> Iterable[Flag]:
    window = r.burst_window_s * 1000
    j = 0
    marked: dict[Key, dict[str, Any]] = {}
    for i in range(len(presses)):
        j = max(j, i)
        while j + 1 < len(presses) and presses[j + 1].press_ms - presses[i].press_ms <= window:
            j += 1
        n = j - i + 1
        if n >= r.burst_presses:
            for p in presses[i : j + 1]:
                if p.key not in marked or marked[p.key]["n"] < n:
                    marked[p.key] = {"n": n, "seconds": r.burst_window_s}
    return (Flag(k, "burst", d) for k, d in marked.items())


def _regular(presses: Sequence[Press], r: DetectionRules) -> Iterable[Flag]:
    """Chains of ≥ ``regular_run`` presses, each one mean-gap after the last (± tolerance), other presses between
    allowed: a routine stays regular even while real citizens are served in between."""
    times = [p.press_ms for p in presses]
    max_gap = r.regular_max_gap_s * 1000
    marked: dict[Key, dict[str, Any]] = {}
    for i in range(len(times)):
        j = i + 1
        while j < len(times) and times[j] - times[i] <= max_gap:
            gap = times[j] - times[i]
            j += 1
            if gap < 30_000:  # closer presses are the burst rule's business
                continue
            chain = [i, j - 1]
            while True:
                mean = (times[chain[-1]] - times[i]) / (len(chain) - 1)
                expect = times[chain[-1]] + mean
                slack = min(r.regular_tolerance * mean, r.regular_slack_max_s * 1000)
                lo = bisect.bisect_left(times, expect - slack)
                hi = bisect.bisect_right(times, expect + slack)
                if lo >= hi:
                    break
                chain.append(min(range(lo, hi), key=lambda k: abs(times[k] - expect)))
            if len(chain) >= r.regular_run:
                mean = (times[chain[-1]] - times[i]) / (len(chain) - 1)
                detail = {
                    "n": len(chain),
                    "mean_s": round(mean / 1000),
                    "tolerance_pct": round(r.regular_tolerance * 100),
                }
                for k in chain:
                    key = presses[k].key
                    if key not in marked or marked[key]["n"] < len(chain):
                        marked[key] = detail
    return (Flag(kk, "regular", d) for kk, d in marked.items())


def _in_hours(t: dt.datetime, r: DetectionRules) -> bool:
    if t.weekday() not in r.working_weekdays:
        return False
    if not r.opening_hours:
        return True
    minute = t.hour * 60 + t.minute
    return any(a <= minute < b for a, b in r.opening_hours)


def find_flags(presses: Iterable[Press], rules: DetectionRules, tz: str = "Asia/Shanghai") -> list[Flag]:
    """Every rule's flags over ``presses`` (any order). Officer-share flags come from ``share_flags``."""
    z = zone(tz)
    by_device: dict[str, list[Press]] = defaultdict(list)
    unsolicited_by_day: dict[tuple[str, dt.date], list[Press]] = defaultdict(list)
    out: list[Flag] = []
    for p in presses:
        by_device[p.device_id].append(p)
        local = dt.datetime.fromtimestamp(p.press_ms / 1000, tz=z)
        if rules.gated and p.flags & FLAG_UNSOLICITED and p.officer_id:
            unsolicited_by_day[(p.officer_id, local.date())].append(p)
        if p.flags & FLAG_OUTSIDE_HOURS or not _in_hours(local, rules):
            out.append(Flag(p.key, "outside_hours", {"local": local.strftime("%Y-%m-%d %a %H:%M")}))
        if p.flags & FLAG_NO_OFFICER or not p.officer_id:
            out.append(Flag(p.key, "no_officer", {}))
        if p.invite_ms is not None and 0 <= p.press_ms - p.invite_ms < rules.instant_after_invite_ms:
            out.append(
                Flag(p.key, "instant", {"ms": p.press_ms - p.invite_ms, "threshold": rules.instant_after_invite_ms})
            )
    for day_presses in unsolicited_by_day.values():
        if len(day_presses) >= rules.unsolicited_per_day:
            n = len(day_presses)
            out.extend(Flag(p.key, "no_invite", {"n": n, "threshold": rules.unsolicited_per_day}) for p in day_presses)
    for dev_presses in by_device.values():
        dev_presses.sort(key=lambda p: (p.press_ms, p.boot, p.seq))
        out.extend(_bursts(dev_presses, rules))
        out.extend(_regular(dev_presses, rules))
    return out


Counts = Mapping[str, tuple[str, int, int]]  # officer -> (unit, presses, unsolicited presses) in one month


def share_outliers(counts: Counts, rules: DetectionRules) -> dict[str, dict[str, Any]]:
    """Officers whose unsolicited share is far above the rest of their unit's, with the numbers."""
    unit_total: dict[str, int] = defaultdict(int)
    unit_unsol: dict[str, int] = defaultdict(int)
    for unit, n, u in counts.values():
        unit_total[unit] += n
        unit_unsol[unit] += u
    out = {}
    for officer, (unit, n, u) in counts.items():
        if not officer or n < rules.share_min_presses or not u:
            continue
        rest_n = unit_total[unit] - n
        rest_share = (unit_unsol[unit] - u) / rest_n if rest_n else 0.0
        share = u / n
        if share > rules.share_factor * rest_share and share - rest_share >= rules.share_margin:
            out[officer] = {"share_pct": round(share * 100, 1), "unit_pct": round(rest_share * 100, 1), "n": n}
    return out


def share_flags(presses: Iterable[Press], rules: DetectionRules) -> list[Flag]:
    """``unsolicited_share`` flags on the unsolicited presses of outlying officers (one month's presses)."""
    presses = list(presses)
    counts: dict[str, tuple[str, int, int]] = {}
    for p in presses:
        unit, n, u = counts.get(p.officer_id, (p.unit_id, 0, 0))
        counts[p.officer_id] = (unit, n + 1, u + bool(p.flags & FLAG_UNSOLICITED))
    outliers = share_outliers(counts, rules)
    return [
        Flag(p.key, "unsolicited_share", outliers[p.officer_id])
        for p in presses
        if p.officer_id in outliers and p.flags & FLAG_UNSOLICITED
    ]


_PRESS_SELECT = (
    "SELECT e.device_id, e.boot, e.seq, COALESCE(e.officer_id, '') AS officer_id, COALESCE(o.unit_id, w.unit_id, '')"
    " AS unit_id, e.press_ms, e.flags, e.month, i.opened_ms AS invite_ms FROM events e"
    " LEFT JOIN officers o ON o.id = e.officer_id LEFT JOIN windows w ON w.id = e.window_id"
    " LEFT JOIN invites i ON i.device_id = e.device_id AND i.boot = e.boot AND i.invite_no = e.invite_no"
    " WHERE e.type = 'press' "
)
FIRST_RUN_LOOKBACK_MS = 35 * 86_400_000  # a first run looks at the last five weeks, not the whole history
DAY_MS = 86_400_000


def _press(r: dict[str, Any]) -> Press:
    return Press(
        r["device_id"], r["boot"], r["seq"], r["officer_id"], r["unit_id"], r["press_ms"], r["flags"], r["invite_ms"]
    )


async def _context(db: Database, devices: list[str], lo: int, hi: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(0, len(devices), 500):
        chunk = devices[i : i + 500]
        rows += (
            await db.fetch(
                _PRESS_SELECT
                + f"AND e.press_ms >= ? AND e.press_ms < ? AND e.device_id IN ({','.join('?' * len(chunk))})",
                [lo, hi, *chunk],
            )
        ).dicts()
    return rows


async def month_share_flags(db: Database, month: str, rules: DetectionRules) -> list[tuple[Flag, dict[str, Any]]]:
    """The ``unsolicited_share`` rule on one month, counted in SQL; flags with their press rows."""
    counts_rows = (
        await db.fetch(
            "SELECT COALESCE(e.officer_id, '') AS officer_id, COALESCE(o.unit_id, w.unit_id, '') AS unit_id,"
            " COUNT(*) AS n, SUM(CASE WHEN (e.flags & 1) <> 0 THEN 1 ELSE 0 END) AS u FROM events e"
            " LEFT JOIN officers o ON o.id = e.officer_id LEFT JOIN windows w ON w.id = e.window_id"
            " WHERE e.type = 'press' AND e.month = ?"
            " GROUP BY COALESCE(e.officer_id, ''), COALESCE(o.unit_id, w.unit_id, '')",
            (month,),
        )
    ).dicts()
    counts = {r["officer_id"]: (r["unit_id"], int(r["n"]), int(r["u"] or 0)) for r in counts_rows}
    out = []
    for officer, detail in share_outliers(counts, rules).items():
        rows = (
            await db.fetch(
                _PRESS_SELECT + "AND e.month = ? AND e.officer_id = ? AND (e.flags & 1) <> 0", (month, officer)
            )
        ).dicts()
        out += [(Flag((r["device_id"], r["boot"], r["seq"]), "unsolicited_share", detail), r) for r in rows]
    return out


async def detect(db: Database, settings: WebSettings, timezone: str, now: int | None = None) -> int:
    """Run the rules over presses received since the last run, with their boxes' context; store new flags.

    Context: the touched boxes' presses from a day before the earliest new press (the ``no_invite`` rule
    counts per day) to an hour after the latest; the share rule counts the touched months in SQL.
    """
    now = now or now_ms()
    rules = settings.detection
    mark_row = await db.fetchone("SELECT value FROM web_watermarks WHERE name = 'detection'")
    since = max(0, int(mark_row["value"]) - 120_000) if mark_row else now - FIRST_RUN_LOOKBACK_MS
    touched = (
        await db.fetch(
            "SELECT device_id, MIN(press_ms) AS lo, MAX(press_ms) AS hi, MAX(recv_ms) AS top FROM events"
            " WHERE type = 'press' AND recv_ms >= ? GROUP BY device_id",
            (since,),
        )
    ).dicts()
    if not touched:
        return 0
    lo = min(int(r["lo"]) for r in touched)
    hi = max(int(r["hi"]) for r in touched)
    rows = await _context(db, [r["device_id"] for r in touched], lo - DAY_MS, hi + 3_600_000)
    by_key = {(r["device_id"], r["boot"], r["seq"]): r for r in rows}
    found = [(f, by_key[f.key]) for f in find_flags([_press(r) for r in rows], rules, timezone)]
    for month in sorted({month_of(lo, timezone), month_of(hi, timezone)}):
        found += await month_share_flags(db, month, rules)
    new = 0
    async with db.transaction() as tx:
        for f, r in found:
            new += await tx.execute(
                "INSERT INTO anomalies (device_id, boot, seq, rule, officer_id, unit_id, month, press_ms, detail,"
                " detected_ms) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (device_id, boot, seq, rule)"
                " DO UPDATE SET detail = excluded.detail WHERE anomalies.detail <> excluded.detail",
                (*f.key, f.rule, r["officer_id"], r["unit_id"], r["month"], r["press_ms"], json.dumps(f.detail), now),
            )
        await tx.execute(
            "INSERT INTO web_watermarks (name, value) VALUES ('detection', ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (max(int(r["top"]) for r in touched),),
        )
    return new


async def list_anomalies(
    db: Database, scope_sql: str, scope_params: list[str], *, month: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """Flagged presses (newest first) with their explanation in both languages."""
    where, args = [scope_sql], list[Any](scope_params)
    if month:
        where.append("a.month = ?")
        args.append(month)
    rows = (
        await db.fetch(
            "SELECT a.device_id, a.boot, a.seq, a.rule, a.officer_id, o.name AS officer_name, a.unit_id, a.month,"
            " a.press_ms, a.detail FROM anomalies a LEFT JOIN officers o ON o.id = a.officer_id WHERE "
            + " AND ".join(where)
            + " ORDER BY a.press_ms DESC, a.rule LIMIT ?",
            [*args, limit],
        )
    ).dicts()
    for r in rows:
        detail = json.loads(r["detail"])
        r["detail"] = detail
        r["explain_zh"] = explain(r["rule"], detail, "zh")
        r["explain_en"] = explain(r["rule"], detail, "en")
    return rows


def by_press(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``list_anomalies`` rows grouped per press (in order), each with its ``flags``: [{rule, explain_zh, …}]."""
    out: list[dict[str, Any]] = []
    for r in rows:
        key = (r["device_id"], r["boot"], r["seq"])
        if not out or out[-1]["key"] != key:
            out.append({**r, "key": key, "flags": []})
        out[-1]["flags"].append({k: r[k] for k in ("rule", "detail", "explain_zh", "explain_en")})
    return out
