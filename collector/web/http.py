"""The web page's request plumbing: shared state, templates, sessions on every handler, errors.

Every handler registered through ``guarded`` requires a session: pages
redirect to ``/login``, ``/api/*`` answers 401. Every non-GET request needs
the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``),
else 403.

``/api/*`` also takes ``Authorization: Bearer evb_…`` (an integration's API
token, ``collector.web.tokens``) instead of a session: 401 when the token is
malformed, unknown, forged, revoked or expired; 429 with ``Retry-After`` over
its rate limit; 403 when its scope does not cover the route. A token is not a
cookie, so its requests need no CSRF token.
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from collector.errors import ConfigError
from collector.report import Policy, pct_text
from collector.report.glossary import level_name
from collector.report.notice import NoticeConfig
from collector.store import Database
from collector.timeplace import parse_month, zone
from collector.web import auth, tokens
from collector.web.alerts import AlertSink
from collector.web.charts import heat_colour
from collector.web.data import current_month, home_unit, months_back
from collector.web.i18n import LANGS, label
from collector.web.scope import Viewer, viewer_for, viewer_for_token
from collector.web.settings import WebSettings

log = logging.getLogger("evalbox.web")
PICKER_MONTHS = 24
SESSION_COOKIE = "evalbox_session"
LOGIN_CSRF_COOKIE = "evalbox_login_csrf"
LANG_COOKIE = "evalbox_lang"
MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
STATIC = pathlib.Path(__file__).parent / "static"


@dataclass
class WebState:
    """What the handlers share: the store, the settings, the policy, the templates and the alert sinks."""

    db: Database
    settings: WebSettings
    policy: Policy
    env: Environment
    sinks: dict[str, AlertSink] = field(default_factory=dict)
    notice: NoticeConfig = NoticeConfig()  # [notice]: the printed notice's issuer and signer


WEB = web.AppKey("evalbox_web", WebState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AuthedHandler = Callable[[web.Request, Viewer, auth.Session], Awaitable[web.StreamResponse]]


def templates(timezone: str) -> Environment:
    """The page templates, with times shown in ``timezone`` (the policy's)."""
    env = Environment(loader=PackageLoader("collector.web", "templates"), autoescape=select_autoescape(["html"]))
    tz = zone(timezone)

    def fmt_time(ms: int | None) -> str:
        if ms is None:
            return "—"
        return dt.datetime.fromtimestamp(ms / 1000, tz=tz).strftime("%Y-%m-%d %H:%M")

    def fmt_due(ms: int) -> str:  # deadlines are the midnight that ends the last allowed day
        return dt.datetime.fromtimestamp((ms - 1) / 1000, tz=tz).strftime("%Y-%m-%d")

    def month_choices(selected: str) -> list[str]:
        """The months a picker offers: the two years up to this month (or ``selected``), newest first."""
        now = dt.datetime.now(tz=tz)
        this = f"{now.year:04d}-{now.month:02d}"
        chosen = selected if MONTH_RE.fullmatch(selected) else ""
        months = months_back(max(this, chosen), PICKER_MONTHS)[::-1]
        return months if not chosen or chosen in months else [*months, chosen]

    env.filters["time"] = fmt_time
    env.filters["due"] = fmt_due
    env.filters["pct"] = pct_text
    env.globals["heat_colour"] = heat_colour
    env.globals["month_choices"] = month_choices
    return env


def month_text(month: str, lang: str) -> str:
    """``2026-10`` as the page says it: 2026年10月, Oct 2026 (never the browser's locale)."""
    year, mon = parse_month(month)
    return label("month_label", lang).format(y=year, name=label("month_names", lang).split(",")[mon - 1])


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
    """A page from ``template`` in the request's language, with the page's security headers."""
    state = request.app[WEB]
    lang = lang_of(request)

    def t(key: str, **kw: Any) -> str:
        text = label(key, lang)
        return text.format(**kw) if kw else text

    def other_lang_url() -> str:
        q = dict(request.query)
        q["lang"] = "en" if lang == "zh" else "zh"
        return request.path + "?" + urlencode(q)

    month = request.query.get("month", "")
    nav_query = "?" + urlencode({"month": month}) if MONTH_RE.fullmatch(month) else ""

    html = state.env.get_template(template).render(
        t=t,
        lang=lang,
        request=request,
        session=session,
        viewer=ctx.pop("viewer", None),
        other_lang_url=other_lang_url(),
        nav_query=nav_query,
        month_text=lambda m: month_text(m, lang),
        level_name=lambda level, scale: level_name(level, scale or 2, lang),
        settings=state.settings,
        policy=state.policy,
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


def api_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def guarded(handler: AuthedHandler) -> Handler:
    """Require a live session (and, for non-GET, its CSRF token); pass the viewer and session."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        state = request.app[WEB]
        bearer = request.headers.get("Authorization")
        if bearer is not None and is_api(request):
            return await with_api_token(request, bearer, handler)
        token = request.cookies.get(SESSION_COOKIE)
        session = await auth.session_for(state.db, token, state.settings)
        viewer = await viewer_for(state.db, session.user_name) if session else None
        if session is None or viewer is None:
            if is_api(request):
                return api_error(401, "unauthenticated", "sign in first (POST /login)")
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
                if is_api(request):
                    return api_error(403, "csrf", "missing or wrong X-CSRF-Token")
                return render(request, "error.html", 403, session, viewer=viewer, message_key="csrf")
        return await handler(request, viewer, session)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


async def with_api_token(request: web.Request, header: str, handler: AuthedHandler) -> web.StreamResponse:
    """Run ``handler`` for an API token: authenticated, counted against its rate limit, in its scope, audited."""
    state = request.app[WEB]
    try:
        token = await tokens.authenticate(state.db, header)
    except tokens.TokenRefused as exc:
        refused = api_error(401, exc.code, str(exc))
        refused.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{exc.code}"'
        return refused
    try:
        await tokens.admit(state.db, token, state.settings.token_rate_per_min)
    except tokens.TokenRateLimited as exc:
        limited = api_error(429, "rate_limited", str(exc))
        limited.headers["Retry-After"] = str(exc.retry_after_s)
        return limited
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
    resp: web.StreamResponse
    if not tokens.allows(token.scope, request.method, route):
        resp = api_error(
            403, "scope", f"token {token.name!r} has scope {token.scope}, which does not allow {request.method} {route}"
        )
    else:
        viewer = await viewer_for_token(state.db, token.name, token.scope, token.unit_id)
        session = auth.Session("", viewer.name, "", token.expires_ms or 0)
        try:
            resp = await handler(request, viewer, session)
        except web.HTTPException as exc:  # a refusal of the handler's own (403 another unit, 404, 400)
            resp = exc
    log.info("api token %s (%s): %s %s -> %s", token.name, token.scope, request.method, request.path, resp.status)
    await tokens.audit_token(
        state.db, actor=f"token:{token.name}", action="token.use", subject=f"{request.method} {request.path_qs}",
        before=None, after={"status": resp.status},
    )  # fmt: skip
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


def month_param(request: web.Request) -> str:
    """The ``month`` query parameter (default: this month in the policy's zone); 400 when malformed."""
    month = request.query.get("month") or current_month(request.app[WEB].policy)
    try:
        parse_month(month)
    except ConfigError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return month


def month_and_unit(request: web.Request, viewer: Viewer) -> tuple[str, str | None]:
    """The ``month`` and ``unit`` query parameters: 400 for a malformed month, 403 for a unit out of the viewer's
    scope; no unit asked: the viewer's own when it has exactly one."""
    month = month_param(request)
    unit = request.query.get("unit") or None
    if unit and not viewer.sees_unit(unit):
        raise web.HTTPForbidden(text="unit belongs to another scope")
    return month, home_unit(viewer, unit)


def int_param(request: web.Request, name: str) -> int:
    """A path parameter as an integer; 404 when it is not one."""
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound() from None
