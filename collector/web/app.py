"""The supervisors' web page and JSON API on aiohttp, in the collector's own asyncio loop.

Mount into the collector's server with ``add_web_routes(app, db, settings)``
(its ``/metrics`` and ``/healthz`` stay untouched: authentication wraps each
of our handlers, not the whole application), or run alone with
``create_app(db, settings)`` (adds ``/healthz`` and the background watcher).

Every handler registered here requires a session except ``/login`` and the
static CSS: pages redirect to ``/login``, ``/api/*`` answers 401. Every
non-GET request needs the session's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``), else 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import pathlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from collector.errors import ConfigError
from collector.store import Database
from collector.timeplace import parse_month, zone
from collector.web import alerts as alerts_mod
from collector.web import auth, cases, data, detection, errors
from collector.web.charts import heat_colour, trend_svg
from collector.web.i18n import LANGS, label
from collector.web.render import RENDERERS
from collector.web.scope import Viewer, viewer_for
from collector.web.settings import WebSettings
from protocol.messages import flag_names

log = logging.getLogger("evalbox.web")
SESSION_COOKIE = "evalbox_session"
LOGIN_CSRF_COOKIE = "evalbox_login_csrf"
LANG_COOKIE = "evalbox_lang"
STATIC = pathlib.Path(__file__).parent / "static"


@dataclass
class WebState:
    """What the handlers share: the store, the settings, the templates and the alert sinks."""

    db: Database
    settings: WebSettings
    env: Environment
    sinks: dict[str, alerts_mod.AlertSink] = field(default_factory=dict)


WEB = web.AppKey("evalbox_web", WebState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AuthedHandler = Callable[[web.Request, Viewer, auth.Session], Awaitable[web.StreamResponse]]


def _env(settings: WebSettings) -> Environment:
    env = Environment(loader=PackageLoader("collector.web", "templates"), autoescape=select_autoescape(["html"]))
    tz = zone(settings.timezone)

    def fmt_time(ms: int | None) -> str:
        if ms is None:
            return "—"
        return dt.datetime.fromtimestamp(ms / 1000, tz=tz).strftime("%Y-%m-%d %H:%M")

    def fmt_due(ms: int) -> str:  # deadlines are the midnight that ends the last allowed day
        return dt.datetime.fromtimestamp((ms - 1) / 1000, tz=tz).strftime("%Y-%m-%d")

    env.filters["time"] = fmt_time
    env.filters["due"] = fmt_due
    env.globals["heat_colour"] = heat_colour
    return env


def lang_of(request: web.Request) -> str:
    lang = request.query.get("lang") or request.cookies.get(LANG_COOKIE) or "zh"
    return lang if lang in LANGS else "zh"


def _with_lang(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    if request.query.get("lang") in LANGS:
        resp.set_cookie(LANG_COOKIE, request.query["lang"], max_age=365 * 86400, samesite="Lax", httponly=True)
    return resp


def render(
    request: web.Request, template: str, status: int = 200, session: auth.Session | None = None, **ctx: Any
) -> web.Response:
    state = request.app[WEB]
    lang = lang_of(request)

    def t(key: str, **kw: Any) -> str:
        text = label(key, lang)
        return text.format(**kw) if kw else text

    def other_lang_url() -> str:
        q = dict(request.query)
        q["lang"] = "en" if lang == "zh" else "zh"
        return request.path + "?" + urlencode(q)

    html = state.env.get_template(template).render(
        t=t,
        lang=lang,
        request=request,
        session=session,
        viewer=ctx.pop("viewer", None),
        other_lang_url=other_lang_url(),
        settings=state.settings,
        **ctx,
    )
    resp = web.Response(text=html, content_type="text/html", status=status)
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:"
    )
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cache-Control"] = "no-store"
    _with_lang(request, resp)
    return resp


def redirect(location: str) -> web.Response:
    """A 303 See Other (returned, not raised, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


def _api_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def guarded(handler: AuthedHandler) -> Handler:
    """Require a live session (and, for non-GET, its CSRF token); pass the viewer and session."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        state = request.app[WEB]
        token = request.cookies.get(SESSION_COOKIE)
        session = await auth.session_for(state.db, token, state.settings)
        viewer = await viewer_for(state.db, session.user_name) if session else None
        if session is None or viewer is None:
            if _is_api(request):
                return _api_error(401, "unauthenticated", "sign in first (POST /login)")
            q = {"next": request.path_qs}
            if token:
                q["expired"] = "1"
            resp = redirect("/login?" + urlencode(q))
            if token:
                resp.del_cookie(SESSION_COOKIE)
            return resp
        if request.method not in ("GET", "HEAD"):
            sent = request.headers.get("X-CSRF-Token")
            if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                value = form.get("csrf")
                sent = value if isinstance(value, str) else None
            if not auth.csrf_ok(session, sent):
                if _is_api(request):
                    return _api_error(403, "csrf", "missing or wrong X-CSRF-Token")
                return render(request, "error.html", 403, session, viewer=viewer, message_key="csrf")
        return await handler(request, viewer, session)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


# ---------------------------------------------------------------- login


async def login_page(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    msg = "expired" if request.query.get("expired") else None
    resp = render(request, "login.html", login_csrf=token, next=request.query.get("next", "/month"), message_key=msg)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login")
    return resp


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/month"
    return value


async def login_post(request: web.Request) -> web.StreamResponse:
    state = request.app[WEB]
    form = await request.post()
    name, password = str(form.get("user", "")), str(form.get("password", ""))
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    next_url = _safe_next(str(form.get("next", "")))
    if not cookie_token or not secrets.compare_digest(cookie_token, str(form.get("csrf", ""))):
        return render(request, "error.html", 403, message_key="csrf")
    remote = request.remote or "?"
    try:
        session = await auth.login(state.db, name, password, remote, state.settings)
    except auth.LoginThrottled as exc:
        resp = render(
            request, "login.html", 429, login_csrf=cookie_token, next=next_url, message_key="throttled",
            message_args={"s": exc.retry_after_s},
        )  # fmt: skip
        resp.headers["Retry-After"] = str(exc.retry_after_s)
        return resp
    except auth.LoginError:
        return render(request, "login.html", 401, login_csrf=cookie_token, next=next_url, message_key="wrong_login")
    resp = redirect(next_url)
    resp.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="Lax",
        secure=state.settings.secure_cookies,
        max_age=state.settings.session_max_s,
    )
    return resp


async def logout(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE, "")
    await auth.logout(request.app[WEB].db, token)
    resp = redirect("/login")
    resp.del_cookie(SESSION_COOKIE)
    return resp


async def home(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    return redirect("/month")


# ---------------------------------------------------------------- month


def _month_param(request: web.Request) -> str:
    month = request.query.get("month") or data.current_month(request.app[WEB].settings)
    try:
        parse_month(month)
    except ConfigError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return month


async def _month_rows(request: web.Request, viewer: Viewer) -> tuple[str, list[data.OfficerMonth]]:
    state = request.app[WEB]
    month = _month_param(request)
    unit = request.query.get("unit") or None
    if unit and not viewer.sees_unit(unit):
        raise web.HTTPForbidden(text="unit belongs to another scope")
    rows = await data.monthly_rates(
        state.db, month, state.settings, viewer, unit=unit, window=request.query.get("window") or None
    )
    sort = request.query.get("sort", "officer")
    rows = data.sort_rows(rows, sort, request.query.get("desc") == "1")
    return month, rows


async def month_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    state = request.app[WEB]
    month, rows = await _month_rows(request, viewer)
    units, windows = await data.units_and_windows(state.db, viewer)
    counts = await cases.case_counts(state.db, month, units=viewer.units)
    bands = {b: sum(1 for r in rows if r.band == b) for b in data.BANDS}

    def sort_url(col: str) -> str:
        q = dict(request.query)
        q["desc"] = "0" if q.get("sort") == col and q.get("desc") == "1" else ("1" if q.get("sort") == col else "0")
        q["sort"] = col
        return "/month?" + urlencode(q)

    def download_url(fmt: str) -> str:
        q = {k: v for k, v in request.query.items() if k in ("month", "unit", "window", "sort", "desc")}
        q["month"], q["format"] = month, fmt
        return "/month/download?" + urlencode(q)

    return render(
        request, "month.html", session=session, viewer=viewer, month=month, rows=rows, units=units, windows=windows,
        unit=request.query.get("unit", ""), window=request.query.get("window", ""), counts=counts, bands=bands,
        sort_url=sort_url, download_url=download_url,
    )  # fmt: skip


async def month_download(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    fmt = request.query.get("format", "csv")
    if fmt not in RENDERERS:
        raise web.HTTPBadRequest(text=f"format {fmt!r}: expected one of {', '.join(RENDERERS)}")
    month, rows = await _month_rows(request, viewer)
    renderer, ctype = RENDERERS[fmt]
    body = renderer(rows, month, lang_of(request))
    filename = f"evalbox-{month}.{fmt}"
    return web.Response(
        body=body,
        headers={
            "Content-Type": ctype,
            "Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}",
        },
    )


async def api_month(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    month, rows = await _month_rows(request, viewer)
    return web.json_response({"month": month, "officers": [r.as_json() for r in rows]})


# ---------------------------------------------------------------- officer


async def _officer(request: web.Request, viewer: Viewer) -> dict[str, Any]:
    state = request.app[WEB]
    officer_id = request.match_info["officer"]
    row = await state.db.fetchone(
        "SELECT o.id, o.name, o.unit_id, u.name AS unit_name, o.window_id FROM officers o"
        " JOIN units u ON u.id = o.unit_id WHERE o.id = ?",
        (officer_id,),
    )
    if row is None:
        raise web.HTTPNotFound(text=f"officer {officer_id} not found")
    if not viewer.sees_unit(row["unit_id"]):
        raise web.HTTPForbidden(text=f"officer {officer_id} belongs to another unit")
    month = _month_param(request)
    trend = await data.officer_trend(state.db, officer_id, month, state.settings, viewer)
    grid = await data.heat_map(state.db, officer_id, month, state.settings)
    recent = await data.recent_events(state.db, officer_id)
    officer_cases = await cases.list_cases(state.db, viewer, officer=officer_id)
    return {
        "officer": dict(row),
        "month": month,
        "trend": trend,
        "grid": grid,
        "recent": recent,
        "cases": officer_cases,
    }


async def officer_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    d = await _officer(request, viewer)
    peak = max((cell[0] for row in d["grid"] for cell in row), default=0)
    svg = trend_svg(d["trend"], request.app[WEB].settings.floor_percent)
    return render(
        request, "officer.html", session=session, viewer=viewer, svg=svg, peak=peak, flag_names=flag_names,
        explain=detection.explain, **d,
    )  # fmt: skip


async def api_officer(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    d = await _officer(request, viewer)
    for r in d["recent"]:
        r["flag_names"] = flag_names(r["flags"])
    return web.json_response(
        {
            "officer": d["officer"],
            "month": d["month"],
            "trend": [m.as_json() for m in d["trend"]],
            "heat_map": [[{"rated": c[0], "bad": c[1]} for c in row] for row in d["grid"]],
            "recent": d["recent"],
            "cases": [cases.case_json(c) for c in d["cases"]],
        }
    )


# ---------------------------------------------------------------- devices, anomalies, alerts


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
        _month_param(request)
    scope_sql, params = viewer.unit_filter("a.unit_id")
    return await detection.list_anomalies(request.app[WEB].db, scope_sql, params, month=month)


async def anomalies_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    rows = detection.by_press(await _anomalies(request, viewer))
    return render(request, "anomalies.html", session=session, viewer=viewer, anomalies=rows)


async def api_anomalies(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    return web.json_response({"anomalies": await _anomalies(request, viewer)})


async def alerts_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    rows = await alerts_mod.list_alerts(request.app[WEB].db, viewer)
    return render(request, "alerts.html", session=session, viewer=viewer, alerts=rows)


async def api_alerts(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    return web.json_response({"alerts": await alerts_mod.list_alerts(request.app[WEB].db, viewer)})


def _int_param(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound() from None


async def alert_ack(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    try:
        row = await alerts_mod.acknowledge(request.app[WEB].db, _int_param(request, "id"), viewer)
    except errors.Forbidden as exc:
        return _api_error(403, "forbidden", str(exc)) if _is_api(request) else web.Response(status=403, text=str(exc))
    except errors.ActionError as exc:
        return _api_error(404, "not_found", str(exc)) if _is_api(request) else web.Response(status=404, text=str(exc))
    if _is_api(request):
        return web.json_response({"alert": row})
    return redirect("/alerts")


# ---------------------------------------------------------------- cases


async def cases_page(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    return await _cases_render(request, viewer, session)


async def _cases_render(
    request: web.Request, viewer: Viewer, session: auth.Session, status: int = 200, error: str | None = None
) -> web.Response:
    state = request.app[WEB]
    st = request.query.get("state") or None
    rows = await cases.list_cases(state.db, viewer, state=st)
    month = request.query.get("month") or data.current_month(state.settings)
    counts = await cases.case_counts(state.db, month, units=viewer.units)
    done = request.query.get("done")
    return render(
        request, "cases.html", status, session=session, viewer=viewer, cases=rows, error=error, done=done,
        counts=counts, state=st or "", month=month,
    )  # fmt: skip


async def case_action(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    case_id = _int_param(request, "id")
    if _is_api(request):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _api_error(400, "bad_json", "expected a JSON object {action, note}")
        action = cases.CaseAction(str(body.get("action", "")), str(body.get("note", "")))
    else:
        form = await request.post()
        action = cases.CaseAction(str(form.get("action", "")), str(form.get("note", "")))
    try:
        updated = await cases.act(request.app[WEB].db, case_id, viewer, action)
    except errors.Forbidden as exc:
        if _is_api(request):
            return _api_error(403, "forbidden", str(exc))
        return render(request, "error.html", 403, session, viewer=viewer, message_key="forbidden")
    except errors.ActionError as exc:
        if _is_api(request):
            return _api_error(409, "case", str(exc))
        return await _cases_render(request, viewer, session, 409, str(exc))
    if _is_api(request):
        return web.json_response({"case": cases.case_json(updated)})
    return redirect(f"/cases?done={case_id}#case-{case_id}")


async def api_cases(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    rows = await cases.list_cases(request.app[WEB].db, viewer, state=request.query.get("state") or None)
    return web.json_response({"cases": [cases.case_json(c) for c in rows]})


async def api_case_counts(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    unit = request.query.get("unit") or None
    if viewer.units is not None and (unit is None or not viewer.sees_unit(unit)):
        return _api_error(403, "forbidden", "supervisors ask for one of their units (?unit=)")
    month = _month_param(request)
    return web.json_response({"month": month, "counts": await cases.case_counts(request.app[WEB].db, month, unit=unit)})


async def api_me(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    units = sorted(viewer.units) if viewer.units is not None else None
    return web.json_response({"name": viewer.name, "role": viewer.role, "units": units, "csrf": session.csrf})


# ---------------------------------------------------------------- wiring

PAGES: list[tuple[str, str, AuthedHandler]] = [
    ("GET", "/", home),
    ("POST", "/logout", logout),
    ("GET", "/month", month_page),
    ("GET", "/month/download", month_download),
    ("GET", "/officers/{officer}", officer_page),
    ("GET", "/devices", devices_page),
    ("GET", "/cases", cases_page),
    ("POST", "/cases/{id}", case_action),
    ("GET", "/anomalies", anomalies_page),
    ("GET", "/alerts", alerts_page),
    ("POST", "/alerts/{id}/ack", alert_ack),
    ("GET", "/api/me", api_me),
    ("GET", "/api/month", api_month),
    ("GET", "/api/officers/{officer}", api_officer),
    ("GET", "/api/devices", api_devices),
    ("GET", "/api/cases", api_cases),
    ("GET", "/api/cases/counts", api_case_counts),
    ("POST", "/api/cases/{id}", case_action),
    ("GET", "/api/anomalies", api_anomalies),
    ("GET", "/api/alerts", api_alerts),
    ("POST", "/api/alerts/{id}/ack", alert_ack),
]


def add_web_routes(
    app: web.Application, db: Database, settings: WebSettings, sinks: dict[str, alerts_mod.AlertSink] | None = None
) -> WebState:
    """Register the pages, API and static files on ``app`` (before it starts). No background task is started:
    run ``run_watcher(state)`` in the collector's TaskGroup, or use ``create_app`` which does."""
    state = WebState(db, settings, _env(settings), dict(sinks or {}))
    app[WEB] = state
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    for method, path, handler in PAGES:
        app.router.add_route(method, path, guarded(handler))
    app.router.add_static("/static", STATIC, append_version=True)
    return state


async def run_watcher(state: WebState, *, stop: asyncio.Event | None = None) -> None:
    """Every ``scan_interval_s``: open cases for new bad ratings, run detection, raise and deliver alerts.

    Each step is separate: a failure is logged and the loop goes on (a receiver being down is not a failure of
    this loop at all — ``deliver_due`` records it and retries later).
    """
    steps: list[tuple[str, float, Callable[[], Awaitable[object]]]] = [
        ("cases", 0, lambda: cases.open_cases(state.db, state.settings)),
        ("detection", state.settings.detect_interval_s, lambda: detection.detect(state.db, state.settings)),
        ("alerts", 0, lambda: alerts_mod.scan_alerts(state.db, state.settings)),
        ("delivery", 0, lambda: alerts_mod.deliver_due(state.db, state.sinks, state.settings)),
    ]
    last: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    while not stop.is_set():
        for name, every, step in steps:
            if every and loop.time() - last.get(name, -every) < every:
                continue
            last[name] = loop.time()
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("web watcher step %s failed", name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), state.settings.scan_interval_s)


def build_sinks(settings: WebSettings, session: aiohttp.ClientSession) -> dict[str, alerts_mod.AlertSink]:
    """The sinks ``settings`` configures (webhooks on ``session``; MQTT when ``mqtt_host`` is set)."""
    sinks: dict[str, alerts_mod.AlertSink] = {}
    for url in settings.webhook_urls:
        s = alerts_mod.WebhookSink(url, session, settings.webhook_timeout_s)
        sinks[s.name] = s
    if settings.mqtt_host:
        m = alerts_mod.MqttSink(
            settings.mqtt_host, settings.mqtt_port, username=settings.mqtt_username, password=settings.mqtt_password
        )
        sinks[m.name] = m
    return sinks


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def create_app(db: Database, settings: WebSettings | None = None, *, watcher: bool = True) -> web.Application:
    """A standalone application: the web page, ``/healthz``, and (when ``watcher``) the background watcher."""
    settings = settings or WebSettings()
    app = web.Application()
    state = add_web_routes(app, db, settings)
    app.router.add_get("/healthz", healthz)

    async def background(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as http:
            state.sinks.update(build_sinks(settings, http))
            stop = asyncio.Event()
            task = asyncio.create_task(run_watcher(state, stop=stop)) if watcher else None
            try:
                yield
            finally:
                stop.set()
                if task is not None:
                    await task
                for sink in state.sinks.values():
                    close = getattr(sink, "close", None)
                    if close is not None:
                        close()

    app.cleanup_ctx.append(background)
    return app
