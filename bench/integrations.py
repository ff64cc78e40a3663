"""Integrations: what an API token costs per request against a session, and how fast the 好差评 feed pushes.

    .venv/bin/python bench/integrations.py                  # SQLite, 2000 requests, 20,000 ratings
    .venv/bin/python bench/integrations.py --store postgresql://postgres@127.0.0.1/evalbox_bench --requests 5000

A token request does what a session request does plus one UPDATE (the per-token rate limit and the use
count, kept in the store); both are measured in the same run on the same store, sequentially over one
keep-alive connection, against ``GET /api/devices``. The feed part queues the ratings and pushes them to a
local HTTPS receiver (a certificate from a test CA) in batches of ``--batch``. The last line is one JSON object
``{"session_req_per_s", "token_req_per_s", "token_vs_session", "feed_ratings_per_s", "store"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import ssl
import sys
import tempfile
import time

import aiohttp
import trustme
from aiohttp import web

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from collector.clock import now_ms  # noqa: E402
from collector.feed import FeedConfig, enqueue, push  # noqa: E402
from collector.feed.push import client  # noqa: E402
from collector.report import Policy  # noqa: E402
from collector.store import Database, connect  # noqa: E402
from collector.web import auth, tokens  # noqa: E402
from collector.web.app import create_app  # noqa: E402
from collector.web.http import SESSION_COOKIE  # noqa: E402
from collector.web.settings import WebSettings  # noqa: E402
from tests.mosquitto import free_port  # noqa: E402


async def setup(db: Database, ratings: int) -> None:
    now = now_ms()
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO units (id, name) VALUES ('U1', '城关派出所')")
        await tx.execute("INSERT INTO windows (id, unit_id, name) VALUES ('W1', 'U1', '户籍窗口1')")
        await tx.execute("INSERT INTO officers (id, name, unit_id, window_id) VALUES ('O1', '张伟', 'U1', 'W1')")
        for i in range(10):
            await tx.execute(
                "INSERT INTO devices (id, window_id, key_hex, created_ms) VALUES (?, 'W1', '00', ?)", (f"box-{i}", now)
            )
        rows = [
            ("box-0", 1, i + 1, "press", "O1", "W1", now - 86_400_000 + i, now, 1000, now, "2026-10", 1 + i % 2, 2,
             None, f"A{i}", 0, "rated", "mqtt")
            for i in range(ratings)
        ]  # fmt: skip
        await tx.executemany(
            "INSERT INTO events (device_id, boot, seq, type, officer_id, window_id, press_ms, device_ts_ms,"
            " uptime_ms, recv_ms, month, level, scale, invite_no, ticket, flags, kind, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    await auth.add_user(db, "admin", "admin", "correct horse battery", [])


async def rate(url: str, n: int, headers: dict[str, str], cookies: dict[str, str]) -> float:
    async with aiohttp.ClientSession(cookies=cookies) as http:
        for _ in range(20):  # warm-up
            async with http.get(url, headers=headers) as r:
                assert r.status == 200, r.status
        t0 = time.perf_counter()
        for _ in range(n):
            async with http.get(url, headers=headers) as r:
                assert r.status == 200, r.status
                await r.read()
        return n / (time.perf_counter() - t0)


async def feed_rate(db: Database, batch: int, workdir: pathlib.Path) -> tuple[float, int]:
    ca = trustme.CA()
    (workdir / "ca.pem").write_bytes(ca.cert_pem.bytes())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    received = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal received
        received += (await request.read()).count(b"\n")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/r", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    cfg = FeedConfig(url=f"https://localhost:{port}/r", ca_file=str(workdir / "ca.pem"), batch_size=batch)
    try:
        t0 = time.perf_counter()
        await enqueue(db, cfg, Policy())
        async with client(cfg) as http:
            result = await push(db, cfg, Policy(), http)
        seconds = time.perf_counter() - t0
    finally:
        await runner.cleanup()
    assert result.pending == 0 and result.delivered == received, (result, received)
    return received / seconds, received


async def run(store: str, requests: int, ratings: int, batch: int, workdir: pathlib.Path) -> int:
    async with connect(store) as db:
        await setup(db, ratings)
        session = await auth.login(db, "admin", "correct horse battery", "127.0.0.1", WebSettings())
        token = await tokens.add_token(db, "bench", "read:devices", unit_id=None, expires_ms=None, created_by="bench")
        app = create_app(db, WebSettings(token_rate_per_min=10**9), Policy(), watcher=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}/api/devices"
        try:
            by_session = await rate(url, requests, {}, {SESSION_COOKIE: session.token})
            by_token = await rate(url, requests, {"Authorization": f"Bearer {token}"}, {})
        finally:
            await runner.cleanup()
        per_s, sent = await feed_rate(db, batch, workdir)
    kind = "postgresql" if store.startswith("postgres") else "sqlite"
    ratio = by_token / by_session
    print(f"store: {kind}")
    print(f"GET /api/devices with a session cookie: {by_session:8.1f} requests/s ({requests} requests)")
    print(f"GET /api/devices with an API token:     {by_token:8.1f} requests/s ({ratio:.2f} × the session's)")
    print(f"好差评 feed: {sent} ratings queued and pushed over HTTPS in batches of {batch}: {per_s:8.1f} ratings/s")
    print(
        f'{{"session_req_per_s": {by_session:.1f}, "token_req_per_s": {by_token:.1f}, '
        f'"token_vs_session": {ratio:.3f}, "feed_ratings_per_s": {per_s:.1f}, "store": "{kind}"}}'
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", metavar="URL", help="an empty store (default: a new SQLite file)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--ratings", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="evalbox-bench-integrations-"))
    store = args.store or str(workdir / "evalbox.db")
    return asyncio.run(run(store, args.requests, args.ratings, args.batch, workdir))


if __name__ == "__main__":
    sys.exit(main())
