"""Alerts: raised into the store, delivered to sinks with retries, acknowledged on the page.

An alert is a row in ``alerts`` (one per cause: its ``key`` dedupes) plus one
``alert_deliveries`` row per configured sink, written in the same transaction
as whatever raised it. ``deliver_due`` sends what is due and records the
outcome: success marks it delivered; failure counts the attempt and schedules
the next one with exponential backoff (capped), forever — an alert is never
dropped because a receiver is down. Delivery runs in its own task with a
timeout per attempt, so a slow or dead receiver never holds up ingest.

Causes: ``bad_rating`` (raised by ``cases.open_cases``), ``below_floor``
(an officer under the floor mid-month, once per month), ``offline`` (a box
silent longer than configured), ``outbox`` (a box's unsent queue growing
past the configured depth), ``officer_flag`` (an officer-month flagged by the
officer checks, once the month is over: the month's flags are recorded then),
``fw_rollback`` (a box that rolled a firmware update back by itself; raised
by ``evalbox fleet update`` and by ``evalbox serve``, one per box and version).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.clock import now_ms
from collector.delivery import failure_text, retry_delay_ms
from collector.report import Policy, pct_text
from collector.report.glossary import term
from collector.report.officer_stats import previous_months, record_month
from collector.store import Database
from collector.timeplace import month_of
from collector.web.data import officer_lines, scoped_report
from collector.web.errors import ActionError, Forbidden
from collector.web.scope import Viewer
from collector.web.settings import WebSettings
from protocol import topics

log = logging.getLogger("evalbox.web.alerts")
ADMIN = Viewer("system", "admin", None)


class AlertSink(Protocol):
    """Somewhere alerts go. ``deliver`` raises on failure (any exception = retry later)."""

    name: str

    async def deliver(self, body: bytes) -> None: ...


def sink_names(settings: WebSettings) -> list[str]:
    """Names of the sinks configured in ``settings`` (the keys of ``alert_deliveries.sink``)."""
    names = [f"webhook:{url}" for url in settings.webhook_urls]
    if settings.mqtt_host:
        names.append("mqtt")
    return names


async def raise_alert(
    tx: Database,
    *,
    key: str,
    kind: str,
    unit_id: str | None,
    subject: str,
    text_zh: str,
    text_en: str,
    payload: Mapping[str, Any],
    settings: WebSettings,
    now: int,
) -> int:
    """Record an alert and its pending deliveries; the new id, 0 when this cause was already raised."""
    row = await tx.fetchone(
        "INSERT INTO alerts (key, kind, unit_id, subject, created_ms, text_zh, text_en, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING id",
        (key, kind, unit_id, subject, now, text_zh, text_en, json.dumps(dict(payload), ensure_ascii=False)),
    )
    alert_id = int(row[0]) if row else 0
    if alert_id:
        for sink in sink_names(settings):
            await tx.execute(
                "INSERT INTO alert_deliveries (alert_id, sink, next_ms) VALUES (?, ?, ?)", (alert_id, sink, now)
            )
    return alert_id


async def raise_fw_rollback(
    db: Database, settings: WebSettings, device: str, version: str, why: str, rollout: int | None
) -> int:
    """Raise ``fw_rollback`` for a box that rolled back from ``version`` by itself; 0 when already raised
    (by the rollout or by another collector: the key names box and version)."""
    row = await db.fetchone(
        "SELECT w.unit_id FROM devices d JOIN windows w ON w.id = d.window_id WHERE d.id = ?", (device,)
    )
    async with db.transaction() as tx:
        return await raise_alert(
            tx,
            key=f"fw_rollback:{device}:{version}",
            kind="fw_rollback",
            unit_id=row[0] if row else None,
            subject=device,
            text_zh=f"评价器 {device} 升级到固件 {version} 后自检失败，已自动回退：{why}",
            text_en=f"box {device} rolled back from firmware {version} by itself: {why}",
            payload={"device_id": device, "version": version, "why": why, "rollout": rollout},
            settings=settings,
            now=now_ms(),
        )


def fw_rollback_alerter(settings: WebSettings) -> Callable[[Database, str, str, str, int | None], Awaitable[None]]:
    """``raise_fw_rollback`` under ``settings``, in the shape the rollout and ``FirmwareWatch`` call."""

    async def alert(db: Database, device: str, version: str, why: str, rollout: int | None) -> None:
        await raise_fw_rollback(db, settings, device, version, why, rollout)

    return alert


async def scan_alerts(db: Database, settings: WebSettings, policy: Policy, now: int | None = None) -> int:
    """Raise below-floor, offline and outbox alerts for the current state; how many were new.

    Below floor is the report's band of the month so far (``monthly_report`` under ``policy``), once
    ``floor_min_rated`` ratings are in.
    """
    now = now or now_ms()
    month = month_of(now, policy.timezone)
    new = 0
    report = await scoped_report(db, month, policy, ADMIN)
    floor = f"{float(policy.floor):g}%"
    devices = (
        await db.fetch(
            "SELECT d.id, d.window_id, w.name AS window_name, w.unit_id, d.status, d.last_seen_ms, d.outbox,"
            " d.outbox_full, dw.outbox AS prev"
            " FROM devices d JOIN windows w ON w.id = d.window_id LEFT JOIN device_watch dw ON dw.device_id = d.id"
        )
    ).dicts()
    day = now // 86_400_000
    async with db.transaction() as tx:
        for ln in officer_lines(report):
            if ln.band == "below_floor" and ln.rated >= settings.floor_min_rated:
                rate = f"{pct_text(ln.rate)}%"
                new += bool(
                    await raise_alert(
                        tx,
                        key=f"floor:{ln.key}:{month}",
                        kind="below_floor",
                        unit_id=ln.unit,
                        subject=ln.key,
                        text_zh=f"{ln.name}（{ln.key}）本月满意率 {rate}，{term('below_floor', 'zh')} {floor}",
                        text_en=f"{ln.name} ({ln.key}) is at {rate} this month, below the {floor} floor",
                        payload={"officer_id": ln.key, "month": month, "rated": ln.rated, "satisfied": ln.satisfied},
                        settings=settings,
                        now=now,
                    )
                )
        for d in devices:
            seen = d["last_seen_ms"]
            silent = seen is None or now - seen > settings.offline_after_s * 1000
            if silent and (seen is not None or d["status"] == "offline"):
                if seen is None:  # reported offline, never heard from since the collector knows it
                    since_zh, since_en = "离线（从未收到其消息）", "offline (never heard from)"
                else:
                    minutes = (now - seen) // 60_000
                    since_zh, since_en = f"离线 {minutes} 分钟", f"offline for {minutes} min"
                new += bool(
                    await raise_alert(
                        tx,
                        key=f"offline:{d['id']}:{seen}",
                        kind="offline",
                        unit_id=d["unit_id"],
                        subject=d["id"],
                        text_zh=f"{d['window_name']}的评价器 {d['id']} {since_zh}",
                        text_en=f"Box {d['id']} at {d['window_name']} {since_en}",
                        payload={"device_id": d["id"], "last_seen_ms": seen},
                        settings=settings,
                        now=now,
                    )
                )
            depth = d["outbox"]
            if depth is None:
                continue
            prev = d["prev"]
            if depth >= settings.outbox_alert_depth and (prev is None or depth > prev):
                bucket = depth // settings.outbox_alert_depth
                new += bool(
                    await raise_alert(
                        tx,
                        key=f"outbox:{d['id']}:{day}:{bucket}",
                        kind="outbox",
                        unit_id=d["unit_id"],
                        subject=d["id"],
                        text_zh=f"{d['window_name']}的评价器 {d['id']} 待发送队列增长到 {depth} 条",
                        text_en=f"Box {d['id']} at {d['window_name']}: outbox grew to {depth} unsent records",
                        payload={"device_id": d["id"], "outbox": depth, "previous": prev, "full": d["outbox_full"]},
                        settings=settings,
                        now=now,
                    )
                )
            await tx.execute(
                "INSERT INTO device_watch (device_id, outbox, seen_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET outbox = excluded.outbox, seen_ms = excluded.seen_ms",
                (d["id"], depth, now),
            )
    return new + await scan_officer_flags(db, settings, policy, now)


async def scan_officer_flags(db: Database, settings: WebSettings, policy: Policy, now: int) -> int:
    """Once a month is over: record its officer-month flags and raise one alert per flagged officer."""
    month = previous_months(month_of(now, policy.timezone), 1)[0]
    mark = int(month.replace("-", ""))
    row = await db.fetchone("SELECT value FROM web_watermarks WHERE name = 'officer_flags'")
    if row and int(row["value"]) >= mark:
        return 0
    found = await record_month(db, month, policy, now)
    names = {r[0]: r[1] for r in await db.fetch("SELECT id, name FROM officers")}
    new = 0
    async with db.transaction() as tx:
        for officer, check in sorted(found.items()):
            if not check.flags:
                continue
            name = names.get(officer, "")
            new += bool(
                await raise_alert(
                    tx,
                    key=f"officer_flag:{officer}:{month}",
                    kind="officer_flag",
                    unit_id=check.unit_id,
                    subject=officer,
                    text_zh=f"{name}（{officer}）{month} 民警月度核查标记："
                    + "；".join(f["explain_zh"] for f in check.flags),
                    text_en=f"{name} ({officer}) flagged by the {month} officer checks: "
                    + "; ".join(f["explain_en"] for f in check.flags),
                    payload={"officer_id": officer, "month": month, "rules": [f["rule"] for f in check.flags]},
                    settings=settings,
                    now=now,
                )
            )
        await tx.execute(
            "INSERT INTO web_watermarks (name, value) VALUES ('officer_flags', ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (mark,),
        )
    return new


def _body(row: dict[str, Any]) -> bytes:
    doc = {
        "id": row["id"],
        "kind": row["kind"],
        "unit_id": row["unit_id"],
        "subject": row["subject"],
        "created_ms": row["created_ms"],
        "text_zh": row["text_zh"],
        "text_en": row["text_en"],
        "data": json.loads(row["payload"]),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def backoff_ms(attempts: int, settings: WebSettings) -> int:
    """Delay before attempt ``attempts + 1`` of an alert delivery (``[web] retry_first_s``, ``retry_max_s``)."""
    return retry_delay_ms(attempts, settings.retry_first_s, settings.retry_max_s)


async def deliver_due(
    db: Database, sinks: Mapping[str, AlertSink], settings: WebSettings, now: int | None = None, limit: int = 200
) -> tuple[int, int]:
    """Try every due delivery once (sinks in parallel); ``(delivered, failed)``."""
    now = now or now_ms()
    due = (
        await db.fetch(
            "SELECT d.alert_id, d.sink, d.attempts, a.id, a.kind, a.unit_id, a.subject, a.created_ms, a.text_zh,"
            " a.text_en, a.payload FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.state = 'pending' AND d.next_ms <= ? ORDER BY d.next_ms LIMIT ?",
            (now, limit),
        )
    ).dicts()
    due = [r for r in due if r["sink"] in sinks]

    async def attempt(row: dict[str, Any]) -> str | None:
        sink = sinks[row["sink"]]
        try:
            await asyncio.wait_for(sink.deliver(_body(row)), timeout=settings.webhook_timeout_s + 1)
            return None
        except Exception as exc:  # any failure of a receiver is a retry, never a crash of the loop
            return failure_text(exc)

    # one sink's rows in order, sinks in parallel
    by_sink: dict[str, list[dict[str, Any]]] = {}
    for r in due:
        by_sink.setdefault(r["sink"], []).append(r)

    async def run_sink(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str | None]]:
        out = []
        for r in rows:
            err = await attempt(r)
            out.append((r, err))
            if err is not None:  # receiver is down: the rest of its queue waits for the next round
                out.extend((rest, "not tried: receiver failed earlier in this round") for rest in rows[len(out) :])
                break
        return out

    results = [x for chunk in await asyncio.gather(*(run_sink(v) for v in by_sink.values())) for x in chunk]
    delivered = failed = 0
    done = now_ms()
    async with db.transaction() as tx:
        for r, err in results:
            if err is None:
                delivered += 1
                await tx.execute(
                    "UPDATE alert_deliveries SET state = 'delivered', attempts = attempts + 1, delivered_ms = ?,"
                    " last_error = NULL WHERE alert_id = ? AND sink = ?",
                    (done, r["alert_id"], r["sink"]),
                )
            else:
                failed += 1
                attempts = r["attempts"] + 1
                await tx.execute(
                    "UPDATE alert_deliveries SET attempts = ?, next_ms = ?, last_error = ?"
                    " WHERE alert_id = ? AND sink = ?",
                    (attempts, done + backoff_ms(attempts, settings), err, r["alert_id"], r["sink"]),
                )
    return delivered, failed


async def acknowledge(db: Database, alert_id: int, viewer: Viewer) -> dict[str, Any]:
    """Mark an alert acknowledged by ``viewer`` (once; a second ack keeps the first)."""
    row = await db.fetchone("SELECT * FROM alerts WHERE id = ?", (alert_id,))
    if row is None:
        raise ActionError(f"alert #{alert_id} does not exist")
    if not viewer.sees_unit(row["unit_id"]):
        raise Forbidden(f"alert #{alert_id} belongs to another unit")
    await db.execute(
        "UPDATE alerts SET acked_ms = ?, acked_by = ? WHERE id = ? AND acked_ms IS NULL",
        (now_ms(), viewer.name, alert_id),
    )
    out = await db.fetchone("SELECT * FROM alerts WHERE id = ?", (alert_id,))
    assert out is not None
    return dict(out)


async def list_alerts(
    db: Database, viewer: Viewer, *, unacked_only: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    scope_sql, params = viewer.unit_filter("a.unit_id")
    where = scope_sql + (" AND a.acked_ms IS NULL" if unacked_only else "")
    rows = (
        await db.fetch(
            "SELECT a.id, a.kind, a.unit_id, a.subject, a.created_ms, a.text_zh, a.text_en, a.acked_ms, a.acked_by"
            " FROM alerts a WHERE " + where + " ORDER BY a.acked_ms IS NULL DESC, a.id DESC LIMIT ?",
            [*params, limit],
        )
    ).dicts()
    alerts = rows
    if alerts:
        ids = [a["id"] for a in alerts]
        marks = ",".join("?" * len(ids))
        deliveries = (
            await db.fetch(
                "SELECT alert_id, sink, state, attempts, last_error, delivered_ms FROM alert_deliveries"
                f" WHERE alert_id IN ({marks})",
                ids,
            )
        ).dicts()
        by_alert: dict[int, list[dict[str, Any]]] = {}
        for d in deliveries:
            by_alert.setdefault(d["alert_id"], []).append(d)
        for a in alerts:
            a["deliveries"] = by_alert.get(a["id"], [])
    return alerts


class WebhookSink:
    """POSTs the alert as JSON; any non-2xx answer or network error is a failure (retried)."""

    def __init__(self, url: str, session: aiohttp.ClientSession, timeout_s: float = 5.0) -> None:
        self.name = f"webhook:{url}"
        self.url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def deliver(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        async with self._session.post(self.url, data=body, headers=headers, timeout=self._timeout) as resp:
            if resp.status // 100 != 2:
                raise RuntimeError(f"HTTP {resp.status} from {self.url}")


class MqttSink:
    """Publishes the alert on ``protocol.topics.alerts()`` at QoS 1 and waits for the broker's PUBACK.

    paho runs its network loop in its own thread here (alerts are rare and the
    publish must not wait on the ingest loop); ``close()`` stops it.
    """

    name = "mqtt"

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._timeout = timeout_s
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
        if username:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(1, 30)
        self._host, self._port = host, port
        self._started = False

    def _publish(self, body: bytes) -> None:
        if not self._started:
            self._client.connect_async(self._host, self._port, keepalive=30)
            self._client.loop_start()
            self._started = True
        if not self._client.is_connected():
            deadline = time.monotonic() + self._timeout
            while not self._client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self._client.is_connected():
                raise ConnectionError(f"MQTT broker {self._host}:{self._port} not reachable")
        info = self._client.publish(topics.alerts(), body, qos=1)
        info.wait_for_publish(timeout=self._timeout)
        if not info.is_published():
            raise TimeoutError("no PUBACK from the broker")

    async def deliver(self, body: bytes) -> None:
        await asyncio.to_thread(self._publish, body)

    def close(self) -> None:
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False
