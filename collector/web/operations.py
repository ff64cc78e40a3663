"""The operations pages and their API: devices, misuse flags, alerts, bad-review cases, who am I."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from collector.ingest.device_errors import Explained, collector_finding
from collector.ingest.device_errors import explain as explain_error
from collector.report import Line
from collector.report.officer_stats import month_checks
from collector.web import alerts, auth, cases, data, detection, errors, exports
from collector.web.http import WEB, api_error, int_param, is_api, lang_of, month_param, redirect, render
from collector.web.i18n import translator
from collector.web.scope import Viewer

DEVICE_STATES = ("online", "offline")


def _findings(d: dict[str, Any], backlog: int) -> list[str]:
    """The collector's own findings about a box (``device_errors.COLLECTOR`` codes)."""
    found = ["offline"] if d["state"] == "offline" else []
    if d["outbox"] is not None and d["outbox"] >= backlog:
        found.append("outbox_backlog")
    if d["config_old"]:
        found.append("config_old")
    return found


async def _devices(request: web.Request, viewer: Viewer) -> list[dict[str, Any]]:
    """The viewer's boxes as the devices page shows them, filtered by the URL (``unit``, ``status``, ``problems``).

    Each has its error explained (``error``: code, zh/en sentence, what to do; the firmware's text in ``raw``)
    and ``state``: ``offline`` when silent too long even if its last word was online.
    """
    state = request.app[WEB]
    unit = request.query.get("unit") or None
    status = request.query.get("status") or None
    problems = request.query.get("problems") == "1"
    rows = []
    for d in await data.device_health(state.db, state.settings, viewer):
        d["state"] = "offline" if d["stale"] and d["status"] == "online" else d["status"]
        d["error"] = explain_error(d["last_error"])
        d["findings"] = [collector_finding(code) for code in _findings(d, state.settings.outbox_alert_depth)]
        if unit and d["unit_id"] != unit or status and d["state"] != status:
            continue
        if problems and not d["findings"] and (d["error"] is None or not d["error"].serious):
            continue
        rows.append(d)
    return rows


def _shown(d: dict[str, Any]) -> list[Explained]:
    """What the error column says of a box: the collector's findings, then the box's own last error."""
    return [*d["findings"], *([d["error"]] if d["error"] else [])]


DEVICE_COLUMNS = (
    "device", "unit", "window", "status", "last_seen", "outbox", "firmware", "config", "last_error", "error_action",
    "error_raw",
)  # fmt: skip


def _device_table(request: web.Request, rows: list[dict[str, Any]]) -> exports.Table:
    lang = lang_of(request)
    t = translator(lang)
    time = request.app[WEB].env.filters["time"]

    def row(d: dict[str, Any]) -> list[Any]:
        said = _shown(d)
        state = t(d["state"]) if d["state"] in DEVICE_STATES else t("unknown")
        return [
            d["id"], d["unit_name"], d["window_name"], state, time(d["last_seen_ms"]), d["outbox"], d["fw"],
            d["config_version"], "；".join(e.text(lang) for e in said) or None,
            "；".join(e.action(lang) for e in said) or None, d["last_error"],
        ]  # fmt: skip

    return exports.Table(t("devices"), [t(k) for k in DEVICE_COLUMNS], [row(d) for d in rows])


async def devices_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    rows = await _devices(request, viewer)
    fmt = exports.wanted(request)
    if fmt:
        return exports.response(
            [_device_table(request, rows)], fmt, "devices", exports.today(request.app[WEB].policy.timezone)
        )
    units, _ = await data.units_and_windows(request.app[WEB].db, viewer)
    return render(
        request, "devices.html", session=session, viewer=viewer, devices=rows, units=units, q=request.query,
        downloads={f: exports.download_url(request, f) for f in exports.FORMATS},
    )  # fmt: skip


async def api_devices(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    rows = await _devices(request, viewer)
    out = [
        {**d, "error": d["error"].json() if d["error"] else None, "findings": [f.json() for f in d["findings"]]}
        for d in rows
    ]
    return web.json_response({"devices": out})


async def _anomalies(request: web.Request, viewer: Viewer, month: str) -> list[dict[str, Any]]:
    """The month's flagged presses in the viewer's units, only the URL's ``rule`` when given."""
    scope_sql, params = viewer.unit_filter("a.unit_id")
    rows = await detection.list_anomalies(request.app[WEB].db, scope_sql, params, month=month)
    rule = request.query.get("rule") or None
    return [r for r in rows if not rule or r["rule"] == rule]


async def _officer_flags(request: web.Request, viewer: Viewer, month: str) -> list[dict[str, Any]]:
    """The month's flagged officers in the viewer's units (officer-month checks), with names."""
    state = request.app[WEB]
    found = await month_checks(state.db, month, state.policy)
    names = {r[0]: r[1] for r in await state.db.fetch("SELECT id, name FROM officers")}
    return [
        {"officer_id": o, "officer_name": names.get(o, ""), "month": month, **c.json(), "unit_id": c.unit_id}
        for o, c in sorted(found.items())
        if c.flags and viewer.sees_unit(c.unit_id)
    ]


@dataclasses.dataclass(frozen=True)
class Misuse:
    """The month's 异常按键 (misuse) in the viewer's report: the total and the officers who have any."""

    total: int
    officers: list[Line]


async def _misuse(request: web.Request, viewer: Viewer, month: str) -> Misuse | None:
    """The month's misuse from the viewer's report (the monthly table's numbers); None: no report for the month."""
    state = request.app[WEB]
    report = await data.scoped_report(state.db, month, state.policy, viewer)
    if report is None:
        return None
    return Misuse(report.total.misuse, sorted((ln for ln in report.officers if ln.misuse), key=lambda ln: -ln.misuse))


def _anomaly_tables(
    request: web.Request, presses: list[dict[str, Any]], officers: list[dict[str, Any]]
) -> list[exports.Table]:
    lang = lang_of(request)
    t = translator(lang)
    time = request.app[WEB].env.filters["time"]
    explain = "explain_en" if lang == "en" else "explain_zh"
    return [
        exports.Table(
            t("flagged_presses"),
            [t(k) for k in ("time", "officer", "name", "device", "rule", "explain")],
            [
                [
                    time(a["press_ms"]),
                    a["officer_id"],
                    a["officer_name"],
                    f"{a['device_id']} {a['boot']}/{a['seq']}",
                    "；".join(t("rule_" + f["rule"]) for f in a["flags"]),
                    "；".join(f[explain] for f in a["flags"]),
                ]
                for a in presses
            ],
        ),
        exports.Table(
            t("officer_checks"),
            [t(k) for k in ("officer", "name", "rule", "explain")],
            [
                [
                    o["officer_id"],
                    o["officer_name"],
                    "；".join(t("rule_" + f["rule"]) for f in o["flags"]),
                    "；".join(f[explain] for f in o["flags"]),
                ]
                for o in officers
            ],
        ),
    ]


async def anomalies_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    month = month_param(request)
    rows = detection.by_press(await _anomalies(request, viewer, month))
    officers = await _officer_flags(request, viewer, month)
    fmt = exports.wanted(request)
    if fmt:
        return exports.response(_anomaly_tables(request, rows, officers), fmt, "anomalies", month)
    return render(
        request, "anomalies.html", session=session, viewer=viewer, anomalies=rows, officer_flags=officers,
        flags_month=month, month=month, misuse=await _misuse(request, viewer, month), rules=sorted(detection.EXPLAIN),
        q=request.query, downloads={f: exports.download_url(request, f) for f in exports.FORMATS},
    )  # fmt: skip


async def api_anomalies(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    month = month_param(request)
    return web.json_response(
        {
            "month": month,
            "anomalies": await _anomalies(request, viewer, month),
            "officer_flags": await _officer_flags(request, viewer, month),
            "officer_flags_month": month,
            "misuse": misuse.total if (misuse := await _misuse(request, viewer, month)) else None,
        }
    )


ALERT_KINDS = ("bad_rating", "below_floor", "offline", "outbox", "officer_flag")


async def _alerts(request: web.Request, viewer: Viewer) -> list[dict[str, Any]]:
    """The viewer's alerts, filtered by the URL: ``kind``, ``acked`` (``0`` not acknowledged, ``1`` acknowledged)."""
    kind = request.query.get("kind") or None
    acked = request.query.get("acked") or None
    rows = await alerts.list_alerts(request.app[WEB].db, viewer, unacked_only=acked == "0")
    return [a for a in rows if (not kind or a["kind"] == kind) and (acked != "1" or a["acked_ms"] is not None)]


def _alert_table(request: web.Request, rows: list[dict[str, Any]]) -> exports.Table:
    lang = lang_of(request)
    t = translator(lang)
    time = request.app[WEB].env.filters["time"]
    return exports.Table(
        t("alerts"),
        ["#", t("time"), t("rule"), t("explain"), t("acked_state"), t("delivery")],
        [
            [
                a["id"],
                time(a["created_ms"]),
                t("kind_" + a["kind"]),
                a["text_en" if lang == "en" else "text_zh"],
                f"{t('acked')} · {a['acked_by']}" if a["acked_ms"] else t("unacked"),
                "；".join(
                    f"{t('sink_' + d['sink'].split(':')[0])} {t('delivery_' + d['state'])} ×{d['attempts']}"
                    for d in a["deliveries"]
                ),
            ]
            for a in rows
        ],
    )


async def alerts_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    rows = await _alerts(request, viewer)
    fmt = exports.wanted(request)
    if fmt:
        return exports.response(
            [_alert_table(request, rows)], fmt, "alerts", exports.today(request.app[WEB].policy.timezone)
        )
    return render(
        request, "alerts.html", session=session, viewer=viewer, alerts=rows, kinds=ALERT_KINDS, q=request.query,
        downloads={f: exports.download_url(request, f) for f in exports.FORMATS},
    )  # fmt: skip


async def api_alerts(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    return web.json_response({"alerts": await _alerts(request, viewer)})


async def alert_ack(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    try:
        row = await alerts.acknowledge(request.app[WEB].db, int_param(request, "id"), viewer)
    except errors.Forbidden as exc:
        return api_error(403, "forbidden", str(exc)) if is_api(request) else web.Response(status=403, text=str(exc))
    except errors.ActionError as exc:
        return api_error(404, "not_found", str(exc)) if is_api(request) else web.Response(status=404, text=str(exc))
    if is_api(request):
        return web.json_response({"alert": row})
    back = (await request.post()).get("back")  # the list as it was filtered (only an /alerts address)
    if not isinstance(back, str) or not back.startswith("/alerts") or "//" in back or "\\" in back:
        back = "/alerts"
    return redirect(back)


async def cases_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    return await _cases_render(request, viewer, session)


async def _cases_render(
    request: web.Request, viewer: Viewer, session: auth.Session, status: int = 200, error: str | None = None
) -> web.Response:
    state = request.app[WEB]
    st = request.query.get("state") or None
    # One month's cases (default: this month) or, with month=all, every month's; the summary counts the same.
    month = None if request.query.get("month") == "all" else month_param(request)
    rows = await cases.list_cases(state.db, viewer, state=st, month=month)
    counts = await cases.case_counts(state.db, month, units=viewer.units)
    other_open = await cases.open_elsewhere(state.db, viewer, month) if month else 0
    done = request.query.get("done")
    return render(
        request, "cases.html", status, session=session, viewer=viewer, cases=rows, error=error, done=done,
        counts=counts, state=st or "", month=month or "all", other_open=other_open,
        filters={k: v for k, v in (("month", request.query.get("month")), ("state", st)) if v},
    )  # fmt: skip


async def case_action(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    case_id = int_param(request, "id")
    if is_api(request):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return api_error(400, "bad_json", "expected a JSON object {action, note}")
        action = cases.CaseAction(str(body.get("action", "")), str(body.get("note", "")))
    else:
        form = await request.post()
        action = cases.CaseAction(str(form.get("action", "")), str(form.get("note", "")))
    try:
        updated = await cases.act(request.app[WEB].db, case_id, viewer, action)
    except errors.Forbidden as exc:
        if is_api(request):
            return api_error(403, "forbidden", str(exc))
        return render(request, "error.html", 403, session, viewer=viewer, message_key="forbidden")
    except errors.ActionError as exc:
        if is_api(request):
            return api_error(409, "case", str(exc))
        return await _cases_render(request, viewer, session, 409, str(exc))
    if is_api(request):
        return web.json_response({"case": cases.case_json(updated)})
    keep = {k: request.query[k] for k in ("month", "state") if request.query.get(k)}  # the list's filters
    return redirect(f"/cases?{urlencode({**keep, 'done': case_id})}#case-{case_id}")


async def api_cases(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    rows = await cases.list_cases(request.app[WEB].db, viewer, state=request.query.get("state") or None)
    return web.json_response({"cases": [cases.case_json(c) for c in rows]})


async def api_case_counts(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    unit = request.query.get("unit") or None
    if viewer.units is not None and (unit is None or not viewer.sees_unit(unit)):
        return api_error(403, "forbidden", "supervisors ask for one of their units (?unit=)")
    month = month_param(request)
    return web.json_response({"month": month, "counts": await cases.case_counts(request.app[WEB].db, month, unit=unit)})


async def api_me(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    units = sorted(viewer.units) if viewer.units is not None else None
    return web.json_response({"name": viewer.name, "role": viewer.role, "units": units, "csrf": session.csrf})
