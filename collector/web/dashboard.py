"""The unit dashboard: one page for a unit leader (``/dashboard``, ``/api/dashboard``).

This month so far beside last month, the officers who may fall below the
floor before the month ends (``collector.report.outlook``: the margin and the
projection are the report's, computed from its lines), those already below
it, the bad-review cases past their deadline and the boxes offline. Filters
in the URL: ``unit`` (a supervisor: one of theirs) and ``month`` (default
this month); ``format=csv|xlsx`` downloads the same tables.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

from aiohttp import web

from collector.clock import now_ms
from collector.ingest.device_errors import explain as explain_error
from collector.report import Line, pct_text
from collector.report.monthly import load_registry
from collector.report.outlook import Comparison, Outlook, compare, elapsed_share, officer_outlooks
from collector.timeplace import month_bounds
from collector.web import auth, cases, data, exports
from collector.web.http import WEB, lang_of, month_and_unit, render
from collector.web.i18n import translator
from collector.web.scope import Viewer


def previous_month(month: str) -> str:
    return data.months_back(month, 2)[0]


def signed_points(change: Fraction | None) -> str:
    """A change in percentage points with its sign, cut to 2 decimals like every rate: ``+1.25``, ``-0.50``."""
    if change is None:
        return "—"
    return ("-" if change < 0 else "+") + pct_text(abs(change) / 100)


@dataclasses.dataclass
class Dashboard:
    month: str
    last: str
    unit: str | None
    days_left: int
    comparison: list[Comparison]
    outlooks: list[Outlook]
    below: list[Line]
    overdue: list[dict[str, Any]]
    offline: list[dict[str, Any]]
    window_names: dict[str, str]

    @property
    def at_risk(self) -> list[Outlook]:
        return [o for o in self.outlooks if o.at_risk]


async def build(request: web.Request, viewer: Viewer) -> Dashboard:
    state = request.app[WEB]
    month, unit = month_and_unit(request, viewer)
    last = previous_month(month)
    now_report = await data.scoped_report(state.db, month, state.policy, viewer, unit=unit)
    last_report = await data.scoped_report(state.db, last, state.policy, viewer, unit=unit)
    now = now_ms()
    outlooks = officer_outlooks(now_report, now, state.policy) if now_report else []
    below = [ln for ln in (now_report.officers if now_report else []) if ln.band == "below_floor"]
    units = (await load_registry(state.db)).subtree(unit) if unit else None

    def mine(unit_id: str | None) -> bool:
        return units is None or unit_id in units

    overdue = [c for c in await cases.list_cases(state.db, viewer, state="open") if c["overdue"] and mine(c["unit_id"])]
    offline = []
    for d in await data.device_health(state.db, state.settings, viewer):
        if mine(d["unit_id"]) and (d["stale"] or d["status"] != "online"):
            d["error"] = explain_error(d["last_error"])
            offline.append(d)
    _, windows = await data.units_and_windows(state.db, viewer)
    start, end = month_bounds(month, state.policy.timezone)
    left = 0 if elapsed_share(month, state.policy.timezone, now) == 1 else -(-(end - max(now, start)) // 86_400_000)
    return Dashboard(
        month, last, unit, left, compare(now_report, last_report), outlooks, below, overdue, offline,
        {w["id"]: w["name"] for w in windows},
    )  # fmt: skip


def tables(request: web.Request, d: Dashboard) -> list[exports.Table]:
    """The dashboard's tables as shown (rates as fractions: percentages in XLSX, text in CSV)."""
    t = translator(lang_of(request))
    time = request.app[WEB].env.filters["time"]
    due = request.app[WEB].env.filters["due"]

    def unit_name(c: Comparison) -> str:
        return c.name or (t("total_line") if not c.key else c.key)

    def rate(ln: Line | None) -> Fraction | None:
        return ln.rate if ln else None

    return [
        exports.Table(
            t("so_far"),
            [
                t("unit"),
                f"{t('so_far')} {t('rated')}",
                f"{t('so_far')} {t('rate')}",
                f"{t('so_far')} {t('band')}",
                f"{t('last_month')} {t('rated')}",
                f"{t('last_month')} {t('rate')}",
                f"{t('last_month')} {t('band')}",
                t("change_pp"),
            ],
            [
                [
                    unit_name(c),
                    c.now.rated if c.now else None,
                    rate(c.now),
                    t("band_" + c.now.band) if c.now else None,
                    c.last.rated if c.last else None,
                    rate(c.last),
                    t("band_" + c.last.band) if c.last else None,
                    signed_points(c.change),
                ]
                for c in d.comparison
            ],
            pct=frozenset({2, 5}),
        ),
        exports.Table(
            t("at_risk"),
            [
                t("officer"),
                t("name"),
                t("window"),
                t("rated"),
                t("satisfied"),
                t("rate"),
                t("absorb"),
                t("projected"),
                t("at_risk_reason"),
            ],
            [
                [
                    o.line.key,
                    o.line.name,
                    d.window_names.get(o.line.window, o.line.window),
                    o.line.rated,
                    o.line.satisfied,
                    o.line.rate,
                    o.absorb,
                    o.projected_rate,
                    t("reason_" + o.reason),
                ]
                for o in d.at_risk
            ],
            pct=frozenset({5, 7}),
        ),
        exports.Table(
            t("below_now"),
            [t("officer"), t("name"), t("window"), t("rated"), t("satisfied"), t("rate")],
            [
                [ln.key, ln.name, d.window_names.get(ln.window, ln.window), ln.rated, ln.satisfied, ln.rate]
                for ln in d.below
            ],
            pct=frozenset({5}),
        ),
        exports.Table(
            t("overdue_cases"),
            ["#", t("officer"), t("ticket"), t("pressed"), t("visit_due"), t("fix_due")],
            [
                [
                    c["id"],
                    c["officer_name"] or c["officer_id"],
                    c["ticket"],
                    time(c["press_ms"]),
                    due(c["visit_due_ms"]),
                    due(c["fix_due_ms"]),
                ]
                for c in d.overdue
            ],
        ),
        exports.Table(
            t("boxes_offline"),
            [t("device"), t("unit"), t("window"), t("last_seen"), t("last_error")],
            [
                [
                    b["id"],
                    b["unit_name"],
                    b["window_name"],
                    time(b["last_seen_ms"]),
                    b["error"].text(lang_of(request)) if b["error"] else None,
                ]
                for b in d.offline
            ],
        ),
    ]


async def dashboard_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    d = await build(request, viewer)
    fmt = exports.wanted(request)
    if fmt:
        return exports.response(tables(request, d), fmt, "dashboard", d.month)
    units, _ = await data.units_and_windows(request.app[WEB].db, viewer)
    return render(
        request, "dashboard.html", session=session, viewer=viewer, d=d, units=units, q=request.query,
        signed_points=signed_points, downloads={f: exports.download_url(request, f) for f in exports.FORMATS},
    )  # fmt: skip


def _line_json(ln: Line | None) -> dict[str, Any] | None:
    if ln is None:
        return None
    return {"rated": ln.rated, "satisfied": ln.satisfied, "rate": pct_text(ln.rate), "band": ln.band}


async def api_dashboard(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    d = await build(request, viewer)
    return web.json_response(
        {
            "month": d.month,
            "last_month": d.last,
            "unit": d.unit,
            "days_left": d.days_left,
            "units": [
                {
                    "unit": c.key or None,
                    "name": c.name,
                    "now": _line_json(c.now),
                    "last": _line_json(c.last),
                    "change_points": signed_points(c.change) if c.change is not None else None,
                }
                for c in d.comparison
            ],
            "at_risk": [
                {
                    "officer": o.line.key,
                    "name": o.line.name,
                    "window": o.line.window,
                    "rated": o.line.rated,
                    "satisfied": o.line.satisfied,
                    "rate": pct_text(o.line.rate),
                    "absorb": o.absorb,
                    "to_come": o.to_come,
                    "unsatisfied_to_come": o.unsatisfied_to_come,
                    "projected_rate": pct_text(o.projected_rate),
                    "projected_band": o.projected_band,
                    "reason": o.reason,
                }
                for o in d.at_risk
            ],
            "below_floor": [_line_json(ln) | {"officer": ln.key, "name": ln.name} for ln in d.below],  # type: ignore[operator]
            "overdue_cases": [cases.case_json(c) for c in d.overdue],
            "offline": [
                {
                    "device": b["id"],
                    "unit": b["unit_id"],
                    "window": b["window_id"],
                    "last_seen_ms": b["last_seen_ms"],
                    "error": b["error"].json() if b["error"] else None,
                }
                for b in d.offline
            ],
        }
    )
