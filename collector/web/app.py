"""The supervisors' web page and JSON API on aiohttp, in the collector's own asyncio loop.

Mount into the collector's server with ``add_web_routes(app, db, settings, policy)``
(its ``/metrics`` and ``/healthz`` stay untouched: authentication wraps each
of our handlers, not the whole application), or run alone with
``create_app(db, settings, policy)`` (adds ``/healthz`` and the background
watcher). The handlers live in ``login``, ``monthly`` (the month's numbers:
the report's) and ``operations``; ``http`` has what they share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from collector.report import Policy
from collector.report.notice import NoticeConfig
from collector.store import Database
from collector.web import alerts, cases, detection
from collector.web.api import api_box_command
from collector.web.dashboard import api_dashboard, dashboard_page
from collector.web.http import STATIC, WEB, AuthedHandler, WebState, guarded, templates
from collector.web.login import home, login_page, login_post, logout
from collector.web.monthly import api_month, api_officer, month_download, month_page, officer_page
from collector.web.operations import (
    alert_ack,
    alerts_page,
    anomalies_page,
    api_alerts,
    api_anomalies,
    api_case_counts,
    api_cases,
    api_devices,
    api_me,
    case_action,
    cases_page,
    devices_page,
)
from collector.web.settings import WebSettings

log = logging.getLogger("evalbox.web")

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
    ("GET", "/dashboard", dashboard_page),
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
    ("GET", "/api/dashboard", api_dashboard),
    ("GET", "/api/alerts", api_alerts),
    ("POST", "/api/alerts/{id}/ack", alert_ack),
    ("POST", "/api/box-commands", api_box_command),
]


def add_web_routes(
    app: web.Application,
    db: Database,
    settings: WebSettings,
    policy: Policy,
    sinks: dict[str, alerts.AlertSink] | None = None,
    notice: NoticeConfig | None = None,
) -> WebState:
    """Register the pages, API and static files on ``app`` (before it starts); numbers under ``policy``.

    No background task is started: run ``run_watcher(state)`` in the collector's TaskGroup, or use ``create_app``
    which does.
    """
    state = WebState(db, settings, policy, templates(policy.timezone), dict(sinks or {}), notice or NoticeConfig())
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
        ("cases", 0, lambda: cases.open_cases(state.db, state.settings, state.policy)),
        (
            "detection",
            state.settings.detect_interval_s,
            lambda: detection.detect(state.db, state.settings, state.policy.timezone),
        ),
        ("alerts", 0, lambda: alerts.scan_alerts(state.db, state.settings, state.policy)),
        ("delivery", 0, lambda: alerts.deliver_due(state.db, state.sinks, state.settings)),
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


def build_sinks(settings: WebSettings, session: aiohttp.ClientSession) -> dict[str, alerts.AlertSink]:
    """The sinks ``settings`` configures (webhooks on ``session``; MQTT when ``mqtt_host`` is set)."""
    sinks: dict[str, alerts.AlertSink] = {}
    for url in settings.webhook_urls:
        s = alerts.WebhookSink(url, session, settings.webhook_timeout_s)
        sinks[s.name] = s
    if settings.mqtt_host:
        m = alerts.MqttSink(
            settings.mqtt_host, settings.mqtt_port, username=settings.mqtt_username, password=settings.mqtt_password
        )
        sinks[m.name] = m
    return sinks


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def create_app(
    db: Database,
    settings: WebSettings | None = None,
    policy: Policy | None = None,
    *,
    watcher: bool = True,
    notice: NoticeConfig | None = None,
) -> web.Application:
    """A standalone application: the web page, ``/healthz``, and (when ``watcher``) the background watcher."""
    settings = settings or WebSettings()
    app = web.Application()
    state = add_web_routes(app, db, settings, policy or Policy(), notice=notice)
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
