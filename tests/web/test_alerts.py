"""Alert delivery against a real local HTTP receiver (up, refusing, hanging) and a real mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import pathlib
import queue
import re
import time

import aiohttp
from aiohttp import web

from collector.clock import now_ms
from collector.web.alerts import deliver_due, scan_alerts
from collector.web.app import build_sinks
from collector.web.cases import open_cases
from collector.web.settings import WebSettings
from protocol import topics
from tests.mosquitto import Mosquitto, free_port
from tests.web.conftest import Server, serve, signed_in
from tests.web.seed import local_ms


class Receiver:
    """A real aiohttp server that records JSON bodies; ``mode`` = ok | error | hang."""

    def __init__(self, port: int | None = None, mode: str = "ok") -> None:
        self.port = port or free_port()
        self.mode = mode
        self.bodies: list[dict[str, object]] = []
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        if self.mode == "hang":
            await asyncio.sleep(60)
        if self.mode == "error":
            return web.Response(status=503)
        self.bodies.append(await request.json())
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


def _settings(*urls: str, **kw: object) -> WebSettings:
    return WebSettings(
        webhook_urls=urls,
        webhook_timeout_s=1.0,
        retry_first_s=1.0,
        bad_alert_max_age_s=10**9,
        **kw,  # type: ignore[arg-type]
    )


def test_webhook_delivers_and_a_down_receiver_is_retried_not_lost(store_url: str, tmp_path: pathlib.Path) -> None:
    up, down = Receiver(), Receiver()  # ``down`` is not started yet: connection refused

    async def body(srv: Server) -> None:
        await up.start()
        try:
            assert len(await open_cases(srv.db, srv.settings, srv.policy)) == 3
            async with aiohttp.ClientSession() as http:
                sinks = build_sinks(srv.settings, http)
                delivered, failed = await deliver_due(srv.db, sinks, srv.settings)
                assert (delivered, failed) == (3, 3)
                assert sorted(b["kind"] for b in up.bodies) == ["bad_rating"] * 3
                assert {b["data"]["ticket"] for b in up.bodies} >= {"A017"}  # type: ignore[index]
                rows = await srv.db.fetch("SELECT state, attempts, last_error FROM alert_deliveries WHERE sink = ?",
                                          (f"webhook:{down.url}",))  # fmt: skip
                assert [(state, attempts) for state, attempts, _ in rows] == [("pending", 1)] * 3
                assert "Connect" in rows[0][2]
                # not due yet: nothing tried again
                assert await deliver_due(srv.db, sinks, srv.settings) == (0, 0)
                await down.start()
                later = now_ms() + 60_000
                assert await deliver_due(srv.db, sinks, srv.settings, now=later) == (3, 0)
                assert len(down.bodies) == 3 and len(up.bodies) == 3  # each sink got each alert once
        finally:
            await up.stop()
            await down.stop()

    serve(store_url, body, _settings(up.url, down.url))


def test_hanging_receiver_does_not_block_the_store(store_url: str, tmp_path: pathlib.Path) -> None:
    hang, error = Receiver(mode="hang"), Receiver(mode="error")

    async def body(srv: Server) -> None:
        await hang.start()
        await error.start()
        try:
            await open_cases(srv.db, srv.settings, srv.policy)
            async with aiohttp.ClientSession() as http:
                sinks = build_sinks(srv.settings, http)
                delivery = asyncio.create_task(deliver_due(srv.db, sinks, srv.settings))
                await asyncio.sleep(0.2)
                t0 = time.monotonic()
                for i in range(50):  # ingest-like writes while the receiver hangs
                    await srv.seeder.press("box-1", "O1", "W1", local_ms(30, 10, 0) + i * 1000, 1)
                assert time.monotonic() - t0 < 1.0
                assert not delivery.done()
                delivered, failed = await asyncio.wait_for(delivery, 10)
                assert delivered == 0 and failed == 6
            rows = await srv.db.fetch("SELECT sink, last_error FROM alert_deliveries WHERE state = 'pending'")
            assert len(rows) == 6
            assert any("503" in last_error for _, last_error in rows)
        finally:
            await hang.stop()
            await error.stop()

    serve(store_url, body, _settings(hang.url, error.url))


def test_old_bad_ratings_open_cases_without_alerts(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        assert len(await open_cases(srv.db, srv.settings, srv.policy)) == 3  # October backlog: cases, no alert flood
        assert await srv.db.fetch("SELECT id FROM alerts") == []

    serve(store_url, body)


def test_floor_offline_and_outbox_alerts_and_ack(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        assert (
            await scan_alerts(srv.db, srv.settings, srv.policy, now=local_ms(20, 12)) == 2
        )  # O3 under the floor; box-2 outbox 120
        assert await scan_alerts(srv.db, srv.settings, srv.policy) == 1  # box-2 silent for a day
        assert await scan_alerts(srv.db, srv.settings, srv.policy) == 0  # each cause once
        kinds = {r["kind"]: r for r in (await srv.db.fetch("SELECT * FROM alerts")).dicts()}
        assert set(kinds) == {"below_floor", "offline", "outbox"}
        assert "低于底线 95%" in kinds["below_floor"]["text_zh"]
        assert re.search(r"离线 \d+ 分钟$", kinds["offline"]["text_zh"]), kinds["offline"]["text_zh"]
        assert re.search(r"offline for \d+ min$", kinds["offline"]["text_en"]), kinds["offline"]["text_en"]
        sup, csrf = await signed_in(srv.url, "sup1")
        async with sup:
            async with sup.get(f"{srv.url}/api/alerts") as r:
                assert (await r.json())["alerts"] == []  # all three are U2's
            async with sup.post(
                f"{srv.url}/api/alerts/{kinds['offline']['id']}/ack", headers={"X-CSRF-Token": csrf}
            ) as r:
                assert r.status == 403
        admin, csrf = await signed_in(srv.url, "admin")
        async with admin:
            aid = kinds["offline"]["id"]
            async with admin.post(f"{srv.url}/alerts/{aid}/ack", data={"csrf": csrf}) as r:
                assert r.status == 200 and "已确认" in await r.text()
            async with admin.get(f"{srv.url}/api/alerts") as r:
                acked = {a["id"]: a["acked_by"] for a in (await r.json())["alerts"]}
            assert acked[aid] == "admin"

    serve(store_url, body)


def test_offline_box_never_heard_from_is_said_in_words(store_url: str) -> None:
    """A box reported offline that the collector never heard from: the alert says so, not "offline None min"."""

    async def body(srv: Server) -> None:
        await srv.db.execute("UPDATE devices SET last_seen_ms = NULL, status = 'offline' WHERE id = 'box-1'")
        await scan_alerts(srv.db, srv.settings, srv.policy, now=local_ms(20, 12))
        row = (await srv.db.fetch("SELECT text_zh, text_en FROM alerts WHERE subject = 'box-1'")).dicts()
        assert [(r["text_zh"][-11:], r["text_en"][-26:]) for r in row] == [
            ("离线（从未收到其消息）", "offline (never heard from)")
        ]
        assert not any("None" in r["text_zh"] + r["text_en"] for r in row)

    serve(store_url, body)


def test_watcher_opens_case_and_delivers_new_bad_rating(store_url: str, tmp_path: pathlib.Path) -> None:
    rec = Receiver()

    async def body(srv: Server) -> None:
        await rec.start()
        try:
            await srv.seeder.press("box-1", "O1", "W1", now_ms() - 5000, 2, ticket="B042", invite_ms=now_ms() - 9000)
            for _ in range(100):
                if any(b["data"].get("ticket") == "B042" for b in rec.bodies):  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"no alert delivered: {rec.bodies}")
            case = await srv.db.fetchone("SELECT * FROM cases WHERE ticket = 'B042'")
            assert case is not None and case["officer_id"] == "O1"
        finally:
            await rec.stop()

    serve(store_url, body, _settings(rec.url, scan_interval_s=0.1), watcher=True)


def test_mqtt_alert_topic_with_broker_down_then_up(store_url: str, tmp_path: pathlib.Path) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    port = free_port()
    broker = Mosquitto(tmp_path, port=port)
    got: queue.Queue[bytes] = queue.Queue()

    async def body(srv: Server) -> None:
        await open_cases(srv.db, srv.settings, srv.policy)
        sinks = build_sinks(srv.settings, None)  # type: ignore[arg-type]
        try:
            delivered, failed = await deliver_due(srv.db, sinks, srv.settings)  # broker down
            assert (delivered, failed) == (0, 3)
            broker.start()
            sub = mqtt.Client(CallbackAPIVersion.VERSION2)
            sub.on_message = lambda c, u, m: got.put(m.payload)
            sub.connect("127.0.0.1", port)
            sub.subscribe(topics.alerts(), qos=1)
            sub.loop_start()
            await asyncio.sleep(0.3)
            delivered, failed = await deliver_due(srv.db, sinks, srv.settings, now=now_ms() + 60_000)
            assert (delivered, failed) == (3, 0)
            bodies = [json.loads(got.get(timeout=5)) for _ in range(3)]
            assert {b["kind"] for b in bodies} == {"bad_rating"}
            sub.loop_stop()
            sub.disconnect()
        finally:
            for s in sinks.values():
                s.close()  # type: ignore[attr-defined]
            broker.kill()

    serve(
        store_url,
        body,
        WebSettings(mqtt_host="127.0.0.1", mqtt_port=port, webhook_timeout_s=1.0, bad_alert_max_age_s=10**9),
    )
