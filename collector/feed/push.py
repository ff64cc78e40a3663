"""Queue each rating once, push due ratings in batches over HTTPS, record every outcome in the ledger.

The same discipline as the alert sinks (``collector.web.alerts``): a rating is
a ``feed_ledger`` row from the moment it is queued; a batch is marked
delivered only after the endpoint answered 2xx; any failure (refused, dropped
connection, timeout, non-2xx) counts the attempt and schedules the next one
with the same doubling, capped backoff, forever — nothing is dropped because
the endpoint is down, and nothing acknowledged is sent again. A pusher leases
the rows it sends (``lease_ms``), so ``evalbox serve`` and an ``evalbox feed
push`` run at the same time never send one rating twice at once; a pusher that
dies mid-batch leaves the lease to run out and the batch is sent again (the
receiver dedups by ``id``: the only case a rating can arrive twice is when
the acknowledgement itself was lost).

Queuing: the events received since the last scan (``web_watermarks`` row
``feed_recv_ms``) minus ``SCAN_OVERLAP_MS``, so a batch that commits with an
older receive time than one already scanned is still picked up; the primary
key keeps each rating queued once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from collector.clock import now_ms
from collector.delivery import failure_text, retry_delay_ms
from collector.feed.records import RATING_JOINS, RATING_SELECT, json_lines, rating_doc, rating_filter
from collector.feed.settings import FeedConfig
from collector.report import Policy
from collector.store import Database
from collector.timeplace import zone

log = logging.getLogger("evalbox.feed")
WATERMARK = "feed_recv_ms"
SCAN_OVERLAP_MS = 10 * 60_000
CONTENT_TYPE = "application/x-ndjson; charset=utf-8"


@dataclass
class PushResult:
    """One run of ``push``: ratings acknowledged, failed POSTs, and what is still pending."""

    delivered: int = 0
    failures: int = 0
    pending: int = 0
    last_error: str | None = None


def _since_ms(cfg: FeedConfig, policy: Policy) -> int:
    if cfg.since is None:
        return 0
    day = dt.date.fromisoformat(cfg.since)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone(policy.timezone)).timestamp() * 1000)


async def enqueue(db: Database, cfg: FeedConfig, policy: Policy, now: int | None = None) -> int:
    """Queue the ratings received since the last scan; how many were new."""
    now = now_ms() if now is None else now
    cond, params = rating_filter(policy)
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT value FROM web_watermarks WHERE name = ?", (WATERMARK,))
        start = max(0, int(row["value"]) - SCAN_OVERLAP_MS) if row else 0
        top = await tx.fetchone("SELECT MAX(recv_ms) AS m FROM events WHERE recv_ms >= ?", (start,))
        new = await tx.execute(
            "INSERT INTO feed_ledger (device_id, boot, seq, press_ms, queued_ms, next_ms)"
            " SELECT e.device_id, e.boot, e.seq, e.press_ms, ?, ? FROM events e"
            f" WHERE e.recv_ms >= ? AND e.press_ms >= ? AND {cond}"
            " AND NOT EXISTS (SELECT 1 FROM feed_ledger f"
            " WHERE f.device_id = e.device_id AND f.boot = e.boot AND f.seq = e.seq)"
            " ON CONFLICT (device_id, boot, seq) DO NOTHING",
            [now, now, start, _since_ms(cfg, policy), *params],
        )
        if top is not None and top["m"] is not None:
            await tx.execute(
                "INSERT INTO web_watermarks (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (WATERMARK, int(top["m"])),
            )
    return new


async def _claim(db: Database, cfg: FeedConfig, now: int, *, due_only: bool) -> list[tuple[str, int, int, int]]:
    """Lease the next batch of pending ratings (due ones, or every pending one with ``due_only`` False)."""
    lease = now + int(cfg.timeout_s * 1000) + 60_000
    due = " AND next_ms <= ?" if due_only else ""
    async with db.transaction() as tx:
        await tx.lock("feed_ledger")
        rows = await tx.fetch(
            "SELECT device_id, boot, seq, attempts FROM feed_ledger WHERE state = 'pending' AND lease_ms <= ?"
            f"{due} ORDER BY next_ms, press_ms, device_id, boot, seq LIMIT ?",
            [now, *([now] if due_only else []), cfg.batch_size],
        )
        await tx.executemany(
            "UPDATE feed_ledger SET lease_ms = ? WHERE device_id = ? AND boot = ? AND seq = ?",
            [(lease, r[0], r[1], r[2]) for r in rows],
        )
    return [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]


async def _documents(db: Database, keys: list[tuple[str, int, int, int]], policy: Policy) -> list[dict[str, Any]]:
    """The documents of the claimed ratings, in the claim's order (200 keys per query)."""
    found: dict[tuple[str, int, int], dict[str, Any]] = {}
    for i in range(0, len(keys), 200):
        chunk = keys[i : i + 200]
        where = " OR ".join(["(e.device_id = ? AND e.boot = ? AND e.seq = ?)"] * len(chunk))
        rows = await db.fetch(
            RATING_SELECT + " FROM events e" + RATING_JOINS + f" WHERE {where}",
            [v for d, b, s, _ in chunk for v in (d, b, s)],
        )
        for r in rows.dicts():
            found[(r["device_id"], int(r["boot"]), int(r["seq"]))] = r
    missing = [k for k in keys if k[:3] not in found]
    if missing:
        log.warning("feed: %d queued ratings no longer in the store (first %s)", len(missing), missing[0][:3])
    return [rating_doc(found[k[:3]], policy) for k in keys if k[:3] in found]


async def _post(http: aiohttp.ClientSession, cfg: FeedConfig, body: bytes) -> None:
    """POST one batch; raises on anything but a 2xx answer."""
    headers = {"Content-Type": CONTENT_TYPE}
    if cfg.token:
        headers["Authorization"] = f"Bearer {cfg.token}"
    timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
    # A redirect is not an acknowledgement: it is a failure like any non-2xx answer (and the body is never re-sent
    # to another host).
    async with http.post(cfg.url, data=body, headers=headers, timeout=timeout, allow_redirects=False) as resp:
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"HTTP {resp.status} {resp.reason}")
        await resp.read()


async def push(
    db: Database,
    cfg: FeedConfig,
    policy: Policy,
    http: aiohttp.ClientSession,
    *,
    due_only: bool = True,
    max_batches: int | None = None,
) -> PushResult:
    """Send batches until none is left to send now or a POST fails (the endpoint is down: stop for this round).

    ``due_only`` False (``evalbox feed push``): ratings waiting out their backoff are tried too.
    """
    result = PushResult()
    batches = 0
    while max_batches is None or batches < max_batches:
        now = now_ms()
        keys = await _claim(db, cfg, now, due_only=due_only)
        if not keys:
            break
        batches += 1
        body = json_lines(await _documents(db, keys, policy))
        try:
            await _post(http, cfg, body)
            err = None
        except Exception as exc:  # any failure of the endpoint is a retry, never a crash of the loop
            err = failure_text(exc)
        done = now_ms()
        async with db.transaction() as tx:
            if err is None:
                await tx.executemany(
                    "UPDATE feed_ledger SET state = 'delivered', attempts = attempts + 1, delivered_ms = ?,"
                    " last_error = NULL, lease_ms = 0 WHERE device_id = ? AND boot = ? AND seq = ?",
                    [(done, d, b, s) for d, b, s, _ in keys],
                )
            else:
                await tx.executemany(
                    "UPDATE feed_ledger SET attempts = ?, next_ms = ?, last_error = ?, lease_ms = 0"
                    " WHERE device_id = ? AND boot = ? AND seq = ?",
                    [
                        (a + 1, done + retry_delay_ms(a + 1, cfg.retry_first_s, cfg.retry_max_s), err, d, b, s)
                        for d, b, s, a in keys
                    ],
                )
        if err is not None:
            result.failures += 1
            result.last_error = err
            log.warning("feed: batch of %d to %s failed, will retry: %s", len(keys), cfg.url, err)
            break
        result.delivered += len(keys)
    row = await db.fetchone("SELECT COUNT(*) AS n FROM feed_ledger WHERE state = 'pending'")
    result.pending = int(row["n"]) if row else 0
    return result


def ssl_context(cfg: FeedConfig) -> ssl.SSLContext:
    """Certificate checks against ``ca_file`` (else the system's CAs); host names verified."""
    return ssl.create_default_context(cafile=cfg.ca_file)


@contextlib.asynccontextmanager
async def client(cfg: FeedConfig) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for the feed's endpoint."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context(cfg))) as http:
        yield http


async def run_feed(db: Database, cfg: FeedConfig, policy: Policy, stop: asyncio.Event) -> None:
    """``evalbox serve``'s feed task: every ``interval_s`` queue new ratings and push the due ones, until ``stop``.

    A failure of a step is logged and the loop goes on (an endpoint that is down is not a failure of the
    loop: ``push`` records it and retries later).
    """
    async with client(cfg) as http:
        while not stop.is_set():
            try:
                await enqueue(db, cfg, policy)
                await push(db, cfg, policy, http)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("feed round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), cfg.interval_s)


async def export_month(db: Database, month: str, policy: Policy) -> list[dict[str, Any]]:
    """Every rating of ``month`` as feed documents, in press order (``evalbox feed export``)."""
    cond, params = rating_filter(policy)
    rows = await db.fetch(
        RATING_SELECT + " FROM events e" + RATING_JOINS + f" WHERE e.month = ? AND {cond}"
        " ORDER BY e.press_ms, e.device_id, e.boot, e.seq",
        [month, *params],
    )
    return [rating_doc(r, policy) for r in rows.dicts()]


async def ledger_status(db: Database) -> dict[str, Any]:
    """Counts by state, the oldest pending rating and the last error (``evalbox feed status``)."""
    counts = {r[0]: int(r[1]) for r in await db.fetch("SELECT state, COUNT(*) FROM feed_ledger GROUP BY state")}
    oldest = await db.fetchone("SELECT MIN(press_ms) AS p, MAX(attempts) AS a FROM feed_ledger WHERE state = 'pending'")
    err = await db.fetchone(
        "SELECT last_error FROM feed_ledger WHERE state = 'pending' AND last_error IS NOT NULL"
        " ORDER BY next_ms DESC LIMIT 1"
    )
    return {
        "delivered": counts.get("delivered", 0),
        "pending": counts.get("pending", 0),
        "oldest_pending_ms": oldest["p"] if oldest else None,
        "max_attempts": oldest["a"] if oldest else None,
        "last_error": err["last_error"] if err else None,
    }
