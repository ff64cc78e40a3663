"""``evalbox serve``: the collector as one asyncio process.

Resources are opened in ``async with`` (store, HTTP client, web runner) and
every task lives in one TaskGroup: the writer (``Pipeline.run``), the MQTT
and serial sources, the registry refresher, the web watcher and the 好差评
feed (``[feed]``, on its own store connection). SIGTERM and
SIGINT set ``stop``: the writer flushes its last batch, commits and acks,
then sets ``drained``; only then do the sources disconnect and the store
close. The process exits 0.

Every box's firmware state (``fws``) goes to ``collector.fleet.watch``: stored
for the devices page, a trial acked, a rollback alerted, with or without a
rollout process running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web

import protocol
from collector.config import Config
from collector.feed import run_feed
from collector.fleet.watch import FirmwareWatch
from collector.ingest.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from collector.ingest.mqtt import MqttSource
from collector.ingest.pipeline import Pipeline, Source
from collector.ingest.serial import SerialSource
from collector.report.policy import policy_to_dict
from collector.store import Database, Device, connect, open_store
from collector.store.audit import note_policy
from collector.web import add_web_routes, build_sinks, run_watcher
from collector.web.alerts import fw_rollback_alerter
from collector.web.settings import WebSettings

log = logging.getLogger("evalbox.serve")


async def serve(config: Config, *, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); drain; return the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_store(config.require_store()) as store:
        await note_policy(store.db, policy_to_dict(config.policy), actor="system")  # a changed policy takes effect
        pipeline = Pipeline(
            store, timezone=config.timezone, max_events=config.batch.max_events, max_ms=config.batch.max_ms
        )
        relay: dict[str, MqttSource] = {}  # a rollout reaches the boxes on our serial lines through us
        _watch_firmware(pipeline, store.db, config.web or WebSettings(), relay)
        await pipeline.refresh()
        sources: list[Any] = []
        async with (
            _http(config, pipeline, stop) as (watcher, http_what),
            _feed_store(config) as feed_db,
            asyncio.TaskGroup() as tg,
        ):
            tg.create_task(pipeline.run(stop))
            tg.create_task(pipeline.metrics.watch_loop_lag(pipeline.drained))
            tg.create_task(pipeline.command_loop(pipeline.drained))
            tg.create_task(pipeline.refresh_loop(stop))
            if config.mqtt is not None:
                if config.mqtt.box_silent_s > 0:
                    tg.create_task(pipeline.silence_loop(stop, config.mqtt.box_silent_s))
                mqtt_source = MqttSource(config.mqtt, pipeline)
                pipeline.default_route = mqtt_source
                sources.append(mqtt_source)
                tg.create_task(mqtt_source.run(pipeline.drained))
            for sc in config.serial:
                serial_source = SerialSource(sc, pipeline)
                sources.append(serial_source)
                tg.create_task(serial_source.run(pipeline.drained))
                if config.mqtt is not None and sc.device is not None:
                    # a rollout's offers and chunks for this box go down its line; its states come back up
                    mqtt_source.relay_firmware(sc.device, _down_the_line(serial_source, sc.device))
                    relay[sc.device] = mqtt_source
            if watcher is not None:
                tg.create_task(watcher)
            what = []
            if config.mqtt:
                what.append(f"mqtt {config.mqtt.host}:{config.mqtt.port}")
            what += [f"serial {s.port}" for s in config.serial]
            what += http_what
            if feed_db is not None and config.feed is not None:
                tg.create_task(run_feed(feed_db, config.feed, config.policy, stop))
                what.append(f"feed {config.feed.url}")
            print(f"evalbox serve: running 运行中 ({', '.join(what) or 'no sources'})", flush=True)
    m = pipeline.metrics
    print(
        f"evalbox serve: stopped 已停止 (stored {m.stored}, duplicates {m.duplicates}, "
        f"rejected {sum(m.rejected.values())}, batches {m.batches})",
        flush=True,
    )
    return 0


def _down_the_line(line: SerialSource, device_id: str) -> Callable[[bytes], None]:
    """Send a firmware message (as relayed from the broker) to the box on ``line``."""

    def send(wire: bytes) -> None:
        line.send(device_id, "fw", wire)

    return send


def _watch_firmware(
    pipeline: Pipeline, db: Database, settings: WebSettings, relay: dict[str, MqttSource] | None = None
) -> FirmwareWatch:
    """Hand the boxes' firmware states to a ``FirmwareWatch``; acks go back on the transport the state came on.

    ``relay``: boxes on serial lines whose states also go to the broker (their firmware state topic), where
    ``evalbox fleet update`` follows the transfer it relays down the line through this collector.
    """

    watch = FirmwareWatch(db, fw_rollback_alerter(settings))
    relay = relay if relay is not None else {}

    async def on_firmware(source: Source, dev: Device, msg: dict[str, Any]) -> None:
        if relay.get(dev.id) is source:
            return  # our own relay of a serial box's state, heard back from the broker: its line is the authority
        await watch.on_state(dev.id, dev.key, msg, lambda wire: source.send(dev.id, "ack", wire))
        to = relay.get(dev.id)
        if to is not None and source is not to:
            to.publish_firmware_state(dev.id, protocol.encode(msg, dev.key))  # canonical: the box's own bytes

    pipeline.on_firmware.append(on_firmware)
    return watch


def add_ops_routes(app: web.Application, pipeline: Pipeline, grace_s: float) -> None:
    """``/metrics`` (Prometheus text), ``/healthz`` (503 after ``grace_s`` of a source down or a store
    not committing) and ``/readyz`` (503 while anything is down right now)."""

    async def metrics(request: web.Request) -> web.Response:
        pipeline.metrics.queue_depth = pipeline.queue_depth
        return web.Response(body=pipeline.metrics.prometheus(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    def probe(grace: float) -> web.Response:
        reasons = pipeline.metrics.health(grace)
        body = {"ok": not reasons, "reasons": reasons, "sources": dict(pipeline.metrics.sources)}
        return web.json_response(body, status=503 if reasons else 200)

    async def healthz(request: web.Request) -> web.Response:
        return probe(grace_s)

    async def readyz(request: web.Request) -> web.Response:
        return probe(0.0)

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


@contextlib.asynccontextmanager
async def _feed_store(config: Config) -> AsyncIterator[Database | None]:
    """The feed's own connection to the store (``[feed]`` configured), else None."""
    if config.feed is None:
        yield None
        return
    async with connect(config.require_store(), migrate=False) as db:
        yield db


@contextlib.asynccontextmanager
async def _http(
    config: Config, pipeline: Pipeline, stop: asyncio.Event
) -> AsyncIterator[tuple[Coroutine[Any, Any, None] | None, list[str]]]:
    """The web page (``[web]``) or just ``/metrics``, ``/healthz``, ``/readyz`` (``[metrics]``), in this loop."""
    listen = config.web_listen or config.metrics_listen
    if listen is None:
        yield None, []
        return

    app = web.Application()
    add_ops_routes(app, pipeline, config.health.grace_s)
    host, _, port = str(listen).rpartition(":")
    async with contextlib.AsyncExitStack() as stack:
        watcher: Coroutine[Any, Any, None] | None = None
        if config.web is not None:
            # Its own connection to the store (reads beside the writer's batches); migrated already.
            db = connect(config.require_store(), migrate=False)
            await stack.enter_async_context(db)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            state = add_web_routes(app, db, config.web, config.policy, notice=config.notice)
            state.sinks.update(build_sinks(config.web, http))
            watcher = run_watcher(state, stop=stop)
        runner = web.AppRunner(app)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, host, int(port)).start()
        yield watcher, [f"http://{listen}/"]
