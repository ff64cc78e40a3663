"""Signing in and out of the web page."""

from __future__ import annotations

import secrets

from aiohttp import web

from collector.web import auth
from collector.web.http import LOGIN_CSRF_COOKIE, SESSION_COOKIE, WEB, redirect, render
from collector.web.scope import Viewer


async def login_page(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    msg = "expired" if request.query.get("expired") else None
    resp = render(request, "login.html", login_csrf=token, next=request.query.get("next", "/month"), message_key=msg)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login")
    return resp


def safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/month"
    return value


async def login_post(request: web.Request) -> web.StreamResponse:
    state = request.app[WEB]
    form = await request.post()
    name, password = str(form.get("user", "")), str(form.get("password", ""))
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    next_url = safe_next(str(form.get("next", "")))
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
