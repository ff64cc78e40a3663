"""Helpers: a real store (SQLite or PostgreSQL, by URL) with known numbers, the web app on a real port, clients.

Tests are plain functions that run one coroutine with ``serve(store_url, body)``: the server and the
test's HTTP client share that event loop. ``ServerThread`` runs the server in its own thread for the
browser tests (selenium is synchronous).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from collector.report import Policy
from collector.store import Database, connect
from collector.web.app import create_app
from collector.web.auth import add_user
from collector.web.settings import WebSettings
from tests.mosquitto import free_port
from tests.web.seed import Seeder, seed

PASSWORD = "correct horse battery"


@dataclass
class Server:
    url: str
    db: Database
    settings: WebSettings
    policy: Policy
    app: web.Application
    seeder: Seeder


async def _start(
    store: str, settings: WebSettings | None, watcher: bool, policy: Policy | None = None
) -> tuple[Server, web.AppRunner]:
    settings = settings or WebSettings(scan_interval_s=0.2)
    policy = policy or Policy()
    db = connect(store)
    await db.open()
    seeder = await seed(db)
    await add_user(db, "admin", "admin", PASSWORD, [])
    await add_user(db, "sup1", "supervisor", PASSWORD, ["U1"])
    app = create_app(db, settings, policy, watcher=watcher)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Server(f"http://127.0.0.1:{port}", db, settings, policy, app, seeder), runner


def serve(
    store: str,
    body: Callable[[Server], Awaitable[None]],
    settings: WebSettings | None = None,
    *,
    watcher: bool = False,
    policy: Policy | None = None,
) -> None:
    """Start the seeded app (under ``policy``, default ``Policy()``), run ``body(server)``, stop everything."""

    async def main() -> None:
        srv, runner = await _start(store, settings, watcher, policy)
        try:
            await body(srv)
        finally:
            await runner.cleanup()
            await srv.db.close()

    asyncio.run(main())


class ServerThread:
    """The seeded app served from a background thread (for synchronous browser drivers)."""

    def __init__(self, store: str, settings: WebSettings | None = None, *, watcher: bool = True) -> None:
        self.store, self.settings, self.watcher = store, settings, watcher
        self.server: Server | None = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                srv, runner = await _start(self.store, self.settings, self.watcher)
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self.server = srv
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()
            await srv.db.close()

        self._loop.run_until_complete(main())

    def call(self, coro: Awaitable[Any]) -> Any:
        """Run ``coro`` on the server's loop (e.g. to read the store) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]

    def __enter__(self) -> Server:
        self._thread.start()
        self._ready.wait(30)
        if self._error or self.server is None:
            raise RuntimeError(f"web server did not start: {self._error}")
        return self.server

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no csrf field in the page"
    return m.group(1)


def new_client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(http: aiohttp.ClientSession, url: str, user: str, password: str = PASSWORD) -> tuple[int, str]:
    """Sign in through the form; ``(status, body)`` of the POST (303 on success)."""
    async with http.get(f"{url}/login") as r:
        token = csrf_of(await r.text())
    data = {"user": user, "password": password, "csrf": token, "next": "/month"}
    async with http.post(f"{url}/login", data=data, allow_redirects=False) as r:
        return r.status, await r.text()


async def signed_in(url: str, user: str) -> tuple[aiohttp.ClientSession, str]:
    """A client signed in as ``user`` and its session's CSRF token."""
    http = new_client()
    status, _ = await login(http, url, user)
    assert status == 303, status
    async with http.get(f"{url}/api/me") as me:
        csrf: str = (await me.json())["csrf"]
    return http, csrf
