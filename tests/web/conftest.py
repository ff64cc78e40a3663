"""Helpers: a real store (SQLite or PostgreSQL, by URL) with known numbers, the web app on a real port, clients.

Tests are plain functions that run one coroutine with ``serve(store_url, body)``: the server and the
test's HTTP client share that event loop. ``ServerThread`` runs the server in its own thread for the
browser tests (selenium is synchronous).
"""

from __future__ import annotations

import asyncio
import base64
import pathlib
import re
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from collector.report import Policy
from collector.store import Database, connect
from collector.web.app import create_app
from collector.web.auth import add_user
from collector.web.settings import WebSettings
from tests.conftest import ROOT
from tests.mosquitto import free_port
from tests.web.seed import MONTH, Seeder, seed

PASSWORD = "correct horse battery"
SHOTS = ROOT / "artifacts" / "screenshots"


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


# ---------------------------------------------------------------- headless Chromium (the browser tests)

# A CJK font so the screenshots show Chinese (police PCs have Microsoft YaHei; Debian images often have none).
PACKAGES = ("chromium", "chromium-driver", "fonts-wqy-microhei")
CJK_FONT = pathlib.Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def _chromium_binaries() -> tuple[str | None, str | None]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (browser, driver) if CJK_FONT.exists() else (None, None)


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    browser, driver = _chromium_binaries()
    if not (browser and driver):
        pytest.skip(f"{' / '.join(PACKAGES)} missing: ./dev setup installs them")
    return browser, driver


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: pathlib.Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium[0]
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        opts.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=opts, service=Service(chromium[1]))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str, folder: pathlib.Path = SHOTS, max_height: int = 20_000) -> pathlib.Path:
    """Save the page (its full height up to ``max_height``, the window's width) as ``FOLDER/NAME.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = driver.execute_script(
        "return [window.innerWidth, Math.ceil(document.body.getBoundingClientRect().height)]"
    )
    clip = {"x": 0, "y": 0, "width": width, "height": min(max(height, 1), max_height), "scale": 1}
    png = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(png["data"]))
    return path


def browser_login(driver: object, url: str, user: str) -> None:
    """Open the month page anonymously (sent to the login page) and sign in as ``user``."""
    from selenium.webdriver.common.by import By

    d = driver
    d.get(f"{url}/month?month={MONTH}")  # type: ignore[attr-defined]
    assert "/login" in d.current_url  # type: ignore[attr-defined]  # anonymous: sent to the login page
    d.find_element(By.ID, "user").send_keys(user)  # type: ignore[attr-defined]
    d.find_element(By.ID, "password").send_keys(PASSWORD)  # type: ignore[attr-defined]
    d.find_element(By.ID, "login-button").click()  # type: ignore[attr-defined]
