"""The operations pages and their API: devices, misuse flags, alerts, bad-review cases, who am I."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from collector.report.officer_stats import month_checks
from collector.web import alerts, auth, cases, data, detection, errors
from collector.web.http import WEB, api_error, int_param, is_api, month_param, redirect, render
from collector.web.scope import Viewer


async def devices_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    state = request.app[WEB]
    rows = await data.device_health(state.db, state.settings, viewer)
    return render(request, "devices.html", session=session, viewer=viewer, devices=rows)


async def api_devices(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    state = request.app[WEB]
    return web.json_response({"devices": await data.device_health(state.db, state.settings, viewer)})


async def _anomalies(request: web.Request, viewer: Viewer) -> list[dict[str, Any]]:
    month = request.query.get("month") or None
    if month:
        month_param(request)
    scope_sql, params = viewer.unit_filter("a.unit_id")
    return await detection.list_anomalies(request.app[WEB].db, scope_sql, params, month=month)


async def _officer_flags(request: web.Request, viewer: Viewer) -> tuple[str, list[dict[str, Any]]]:
    """The month's flagged officers in the viewer's units (officer-month checks), with names."""
    state = request.app[WEB]
    month = month_param(request) if request.query.get("month") else data.current_month(state.policy)
    found = await month_checks(state.db, month, state.policy)
    names = {r[0]: r[1] for r in await state.db.fetch("SELECT id, name FROM officers")}
    rows = [
        {"officer_id": o, "officer_name": names.get(o, ""), "month": month, **c.json(), "unit_id": c.unit_id}
        for o, c in sorted(found.items())
        if c.flags and viewer.sees_unit(c.unit_id)
    ]
    return month, rows


async def anomalies_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    rows = detection.by_press(await _anomalies(request, viewer))
    month, officers = await _officer_flags(request, viewer)
    return render(
        request, "anomalies.html", session=session, viewer=viewer, anomalies=rows, officer_flags=officers,
        flags_month=month,
    )  # fmt: skip


async def api_anomalies(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    month, officers = await _officer_flags(request, viewer)
    return web.json_response(
        {"anomalies": await _anomalies(request, viewer), "officer_flags": officers, "officer_flags_month": month}
    )


async def alerts_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    rows = await alerts.list_alerts(request.app[WEB].db, viewer)
    return render(request, "alerts.html", session=session, viewer=viewer, alerts=rows)


async def api_alerts(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    return web.json_response({"alerts": await alerts.list_alerts(request.app[WEB].db, viewer)})


async def alert_ack(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    try:
        row = await alerts.acknowledge(request.app[WEB].db, int_param(request, "id"), viewer)
    except errors.Forbidden as exc:
        return api_error(403, "forbidden", str(exc)) if is_api(request) else web.Response(status=403, text=str(exc))
    except errors.ActionError as exc:
        return api_error(404, "not_found", str(exc)) if is_api(request) else web.Response(status=404, text=str(exc))
    if is_api(request):
        return web.json_response({"alert": row})
    return redirect("/alerts")


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
