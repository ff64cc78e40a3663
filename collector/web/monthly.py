"""The monthly table, its downloads and ``/api/month``, and the officer drill-down: all the report's numbers.

Each of them is ``collector.report.monthly_report`` under the one policy, for
the unit the viewer asks for (a supervisor: one of theirs). The downloads are
the report's own renderers — the CSV, XLSX and 月通报 (HTML) that ``evalbox
report --unit U --format csv|xlsx|html`` writes — and ``/api/month`` is the
report's JSON (``docs/report-json.md``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from collector.report import Line, MonthlyReport
from collector.report.notice import notice_facts, today, with_checks
from collector.report.officer_stats import month_checks
from collector.report.rates import BANDS
from collector.report.render import JSON_FORMAT, cell, line_json, render, report_json, revision_text
from collector.report.render import label as report_label
from collector.timeplace import month_bounds
from collector.web import auth, cases, data, detection
from collector.web.charts import heat_hours, trend_svg
from collector.web.http import WEB, lang_of, month_and_unit, month_param
from collector.web.http import render as render_page
from collector.web.scope import Viewer
from protocol.messages import flag_names

DOWNLOADS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
}


async def _report(request: web.Request, viewer: Viewer) -> tuple[str, str | None, MonthlyReport | None]:
    """The month, the unit and the viewer's report of it (None: no data)."""
    state = request.app[WEB]
    month, unit = month_and_unit(request, viewer)
    return month, unit, await data.scoped_report(state.db, month, state.policy, viewer, unit=unit)


async def month_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    state = request.app[WEB]
    month, unit, report = await _report(request, viewer)
    rows = data.officer_lines(report, window=request.query.get("window") or None)
    rows = data.sort_lines(rows, request.query.get("sort", "officer"), request.query.get("desc") == "1")
    units, windows = await data.units_and_windows(state.db, viewer)
    counts = await cases.case_counts(state.db, month, units=viewer.units)
    bands = {b: sum(1 for r in rows if r.band == b) for b in BANDS}
    lang = lang_of(request)

    def sort_url(col: str) -> str:
        q = dict(request.query)
        q["desc"] = "0" if q.get("sort") == col and q.get("desc") == "1" else ("1" if q.get("sort") == col else "0")
        q["sort"] = col
        return "/month?" + urlencode(q)

    def download_url(fmt: str) -> str:
        return "/month/download?" + urlencode({"month": month, **({"unit": unit} if unit else {}), "format": fmt})

    def column(line: Line, col: str) -> str:
        return cell(line, col, lang)

    return render_page(
        request, "month.html", session=session, viewer=viewer, month=month, rows=rows, units=units, windows=windows,
        unit=unit or "", window=request.query.get("window", ""), counts=counts, bands=bands, sort_url=sort_url,
        download_url=download_url, cell=column, unit_names={u["id"]: u["name"] for u in units},
        window_names={w["id"]: w["name"] for w in windows},
        closed=report is not None and report.closed_ms is not None,
        revision=revision_text(report, lang) if report and (report.revisions or report.late_events) else "",
        report_label=lambda key: report_label(key, lang), set_aside=report.set_aside if report else (),
    )  # fmt: skip


async def month_download(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    """The report's CSV, XLSX or printable notice (月通报) of the month, for the unit asked (a supervisor: theirs)."""
    fmt = request.query.get("format", "csv")
    if fmt not in DOWNLOADS:
        raise web.HTTPBadRequest(text=f"format {fmt!r}: expected one of {', '.join(DOWNLOADS)}")
    month, unit, report = await _report(request, viewer)
    if report is None:
        raise web.HTTPNotFound(text=f"no data for month {month}")
    state = request.app[WEB]
    notice = None
    if fmt == "html":  # the printed notice, as `evalbox report --format html` makes it
        report = await with_checks(state.db, report, state.policy)
        notice = await notice_facts(state.db, report, state.policy, state.notice, today(state.policy.timezone))
    body = render(report, state.policy, fmt, lang_of(request), notice=notice)
    filename = f"evalbox-{month}{'-' + unit if unit else ''}.{fmt}"
    return web.Response(
        body=body,
        headers={
            "Content-Type": DOWNLOADS[fmt],
            "Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}",
        },
    )


async def api_month(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    """The report's JSON document (``evalbox report --format json``); ``?window=`` keeps that window's officers."""
    month, unit, report = await _report(request, viewer)
    if report is None:
        return web.json_response({"format": JSON_FORMAT, "month": month, "unit": unit, "officers": []})
    doc = report_json(report, request.app[WEB].policy)
    window = request.query.get("window") or None
    if window:
        doc["officers"] = [o for o in doc["officers"] if o["window"] == window]
    return web.json_response(doc)


# ---------------------------------------------------------------- officer


async def _officer(request: web.Request, viewer: Viewer) -> dict[str, Any]:
    state = request.app[WEB]
    officer_id = request.match_info["officer"]
    row = await state.db.fetchone(
        "SELECT o.id, o.name, o.unit_id, u.name AS unit_name, o.window_id, w.name AS window_name FROM officers o"
        " JOIN units u ON u.id = o.unit_id LEFT JOIN windows w ON w.id = o.window_id WHERE o.id = ?",
        (officer_id,),
    )
    if row is None:
        raise web.HTTPNotFound(text=f"officer {officer_id} not found")
    if not viewer.sees_unit(row["unit_id"]):
        raise web.HTTPForbidden(text=f"officer {officer_id} belongs to another unit")
    month = month_param(request)
    trend = await data.officer_trend(state.db, officer_id, row["unit_id"], month, state.policy)
    return {
        "officer": dict(row),
        "month": month,
        "trend": trend,
        "line": trend[-1][1],  # this month's: the header
        "grid": await data.heat_map(state.db, officer_id, month, state.policy),
        "recent": await data.recent_events(
            state.db, officer_id, before_ms=month_bounds(month, state.policy.timezone)[1]
        ),
        "cases": await cases.list_cases(state.db, viewer, officer=officer_id, month=month),
        "check": (await month_checks(state.db, month, state.policy)).get(officer_id),
    }


async def officer_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    d = await _officer(request, viewer)
    peak = max((c[0] for row in d["grid"] for c in row), default=0)
    lang, state = lang_of(request), request.app[WEB]
    return render_page(
        request, "officer.html", session=session, viewer=viewer,
        svg=trend_svg(d["trend"], state.policy, lang=lang) + trend_svg(d["trend"], state.policy, 360, 190, lang=lang,
        label_every=2, variant="narrow"), peak=peak, hours=heat_hours(d["grid"]),
        flag_names=flag_names, explain=detection.explain, cell=lambda ln, col: cell(ln, col, lang),
        report_label=lambda key: report_label(key, lang), **d,
    )  # fmt: skip


async def api_officer(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    d = await _officer(request, viewer)
    for r in d["recent"]:
        r["flag_names"] = flag_names(r["flags"])
    return web.json_response(
        {
            "officer": d["officer"],
            "month": d["month"],
            "line": None if d["line"] is None else line_json(d["line"], "officer"),
            "trend": [{"month": m, **line_json(ln, "officer")} for m, ln in d["trend"] if ln is not None],
            "heat_map": [[{"rated": c[0], "bad": c[1]} for c in row] for row in d["grid"]],
            "recent": d["recent"],
            "cases": [cases.case_json(c) for c in d["cases"]],
            "check": None if d["check"] is None else d["check"].json(),
        }
    )
