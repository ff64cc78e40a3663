"""The provincial 好差评 feed: the JSON Lines export, and the HTTPS push through a receiver that fails and recovers.

The receiver is a real aiohttp HTTPS server on a local port with a certificate from a test CA (``trustme``,
made with ``cryptography``). It answers 500s and drops connections after reading a batch (the batch arrived,
its acknowledgement is lost), then recovers. It dedups by ``id`` as a real receiver must; the tests check every
rating arrives, none is acknowledged twice and none is sent again once acknowledged — on SQLite and PostgreSQL,
from ``evalbox serve``'s background task, ``evalbox feed push`` and the library loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trustme
from aiohttp import web

from collector.feed import FIVE_LEVEL, LEVEL_NAMES, FeedConfig, run_feed
from collector.report import Policy, monthly_report
from collector.store import Database, connect
from tests.mosquitto import free_port
from tests.web.seed import MONTH, Seeder, local_ms, seed

TOKEN = "feed-secret-token-123"


class Receiver:
    """An HTTPS endpoint following ``plan`` (``500`` | ``drop`` | ``ok`` per request; ``ok`` once it runs out)."""

    def __init__(self, certs: pathlib.Path, plan: list[str] | None = None) -> None:
        self.port = free_port()
        self.certs = certs
        self.plan = list(plan or [])
        self.requests: list[tuple[str, list[str]]] = []  # (outcome, ids) in arrival order
        self.stored: dict[str, dict[str, Any]] = {}  # dedup by id
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/hcp/ratings"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        assert request.content_type == "application/x-ndjson"
        docs = [json.loads(line) for line in (await request.read()).decode().splitlines()]
        ids = [d["id"] for d in docs]
        mode = self.plan.pop(0) if self.plan else "ok"
        self.requests.append((mode, ids))
        if mode == "500":
            return web.Response(status=500, text="database busy")
        for d in docs:
            self.stored.setdefault(d["id"], d)
        if mode == "drop":  # processed, but the acknowledgement never reaches the sender
            assert request.transport is not None
            request.transport.abort()
        return web.json_response({"accepted": len(ids)})

    async def start(self) -> None:
        ca_server = trustme.CA.from_pem((self.certs / "ca.pem").read_bytes(), (self.certs / "ca.key").read_bytes())
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca_server.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
        app = web.Application()
        app.router.add_post("/hcp/ratings", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=ctx).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def seen(self, n: int) -> bool:
        return len(self.requests) >= n

    async def has_acked(self, ids: set[str]) -> bool:
        return set(self.acked()) == ids

    def acked(self) -> list[str]:
        return [i for mode, ids in self.requests if mode == "ok" for i in ids]

    def check_exactly_once(self, expected: set[str]) -> None:
        """Every rating stored; none acknowledged twice; none received again after its acknowledgement."""
        assert set(self.stored) == expected
        acked = self.acked()
        assert len(acked) == len(set(acked)), "a rating was acknowledged twice"
        done: set[str] = set()
        for mode, ids in self.requests:
            again = done & set(ids)
            assert not again, f"sent again after being acknowledged: {sorted(again)[:3]}"
            if mode == "ok":
                done |= set(ids)
        # whatever was not acknowledged (its ack dropped) was resent until it was
        assert set(acked) | {i for mode, ids in self.requests if mode == "drop" for i in ids} >= expected


def make_certs(tmp_path: pathlib.Path) -> pathlib.Path:
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    ca.private_key_pem.write_to_path(str(certs / "ca.key"))
    trustme.CA().cert_pem.write_to_path(str(certs / "other-ca.pem"))
    return certs


async def ratings_in(db: Database, policy: Policy | None = None) -> set[str]:
    kinds = sorted((policy or Policy()).counted)
    rows = await db.fetch(
        f"SELECT device_id, boot, seq FROM events WHERE type = 'press' AND kind IN ({','.join('?' * len(kinds))})",
        kinds,
    )
    return {f"{d}:{b}:{s}" for d, b, s in rows}


async def seeded(store_url: str) -> tuple[Database, Seeder]:
    db = connect(store_url)
    await db.open()
    s = await seed(db)  # 70 rated presses in October 2026 (tests/web/seed.py)
    # presses that are not ratings under the default policy: one unsolicited, one repeat press
    await s.press("box-1", "O1", "W1", local_ms(30, 16, 0), 1, kind="unsolicited", flags=4)
    await s.press("box-1", "O1", "W1", local_ms(30, 16, 1), 2, kind="misuse", flags=1)
    return db, s


def evalbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, LC_ALL="C.UTF-8"),
    )  # fmt: skip


def write_config(
    tmp_path: pathlib.Path, store_url: str, url: str, ca: pathlib.Path, name: str = "evalbox.toml", **feed: object
) -> pathlib.Path:
    store = store_url if store_url.startswith("postgresql") else f"sqlite:///{store_url}"
    lines = [f'[store]\nurl = "{store}"\n', f'[feed]\nurl = "{url}"\nca_file = "{ca}"\ntoken = "{TOKEN}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in feed.items()]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- export


def test_export_is_each_rating_once_with_the_five_level_mapping(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body() -> None:
        db, s = await seeded(store_url)
        try:
            at = local_ms(29, 15, 0)
            for scale in (3, 4, 5):  # one press of every level of the other scales (officer O4, window W1)
                for level in range(1, scale + 1):
                    at += 60_000
                    await s.press("box-1", "O4", "W1", at, level, scale=scale, ticket=f"S{scale}L{level}")
            expected = await ratings_in(db)
            report = await monthly_report(db, MONTH, Policy())
        finally:
            await db.close()
        out = tmp_path / "f.jsonl"
        res = await asyncio.to_thread(evalbox, "feed", "export", "--month", MONTH, "-o", str(out), "--db", store_url)
        assert res.returncode == 0, res.stderr
        docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert f"{len(docs)} ratings" in res.stdout
        assert [d["id"] for d in docs if d["id"] in expected] == [d["id"] for d in docs]
        assert {d["id"] for d in docs} == expected and len(docs) == len(expected) == 82
        # the same ratings the report counts, officer by officer
        per_officer: dict[str, int] = {}
        for d in docs:
            per_officer[d["officer"]["id"]] = per_officer.get(d["officer"]["id"], 0) + 1
        assert per_officer == {ln.key: ln.rated for ln in report.officers if ln.rated}
        assert [d["rated_at"] for d in docs] == sorted(d["rated_at"] for d in docs)
        bad = next(d for d in docs if d["ticket"] == "A017")
        assert bad["level"] == "不满意" and bad["level_code"] == 2 and bad["bad"] is True
        assert bad["channel"] == "窗口评价器" and bad["solicited"] is True
        assert bad["officer"] == {"id": "O2", "name": "李娜"}
        assert bad["window"] == {"id": "W1", "name": "户籍窗口1"} and bad["unit"] == {"id": "U1", "name": "城关派出所"}
        assert bad["rated_at"].endswith("+08:00") and bad["rated_at"].startswith("2026-10-")
        good = next(d for d in docs if d["officer"]["id"] == "O1")
        assert (good["level"], good["level_code"], good["bad"], good["box_scale"]) == ("满意", 4, False, 2)
        mapped = {(d["box_scale"], d["box_level"]): d["level"] for d in docs if d["ticket"] and d["ticket"][0] == "S"}
        assert mapped == {
            (3, 1): "满意", (3, 2): "基本满意", (3, 3): "不满意",
            (4, 1): "非常满意", (4, 2): "满意", (4, 3): "不满意", (4, 4): "非常不满意",
            (5, 1): "非常满意", (5, 2): "满意", (5, 3): "基本满意", (5, 4): "不满意", (5, 5): "非常不满意",
        }  # fmt: skip
        # the box's worst levels are the 差评 the policy names (GB/T 39734: the bottom two of five)
        bad_levels = {(d["box_scale"], d["box_level"]) for d in docs if d["bad"] and (d["ticket"] or "")[:1] == "S"}
        assert bad_levels == {(3, 3), (4, 3), (4, 4), (5, 4), (5, 5)}
        # stdout export and a month with no ratings
        res = await asyncio.to_thread(evalbox, "feed", "export", "--month", "2026-09", "--db", store_url)
        assert res.returncode == 0 and res.stdout == ""
        res = await asyncio.to_thread(evalbox, "feed", "export", "--month", "2026-13", "--db", store_url)
        assert res.returncode == 2 and "2026-13" in res.stderr and "Traceback" not in res.stderr

    run(body)


def test_mapping_covers_every_level_of_every_scale() -> None:
    for scale, levels in FIVE_LEVEL.items():
        assert sorted(levels) == list(range(1, scale + 1))
        codes = [levels[k] for k in sorted(levels)]
        assert codes == sorted(codes, reverse=True) and len(set(codes)) == scale  # best first, none merged
        assert LEVEL_NAMES[codes[0]] in ("满意", "非常满意") and LEVEL_NAMES[codes[-1]] in ("不满意", "非常不满意")


# ---------------------------------------------------------------- push


def test_feed_loop_delivers_every_rating_exactly_once_through_failures(store_url: str, tmp_path: pathlib.Path) -> None:
    certs = make_certs(tmp_path)
    plan = ["500", "500", "drop", "ok", "500", "drop", "ok", "drop", "drop", "500", "ok"]
    receiver = Receiver(certs, plan)

    async def body() -> None:
        db, s = await seeded(store_url)
        await receiver.start()
        cfg = FeedConfig(url=receiver.url, ca_file=str(certs / "ca.pem"), token=TOKEN, batch_size=9,
                         interval_s=0.05, retry_first_s=0.05, retry_max_s=0.2, timeout_s=5)  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(run_feed(db, cfg, Policy(), stop))
        try:
            await until("the first batches", lambda: receiver.seen(5))
            for i in range(12):  # ratings arriving while the endpoint is failing
                await s.press("box-2", "O3", "W2", local_ms(30, 10, i), 1 + i % 2, ticket=f"N{i}")
            expected = await ratings_in(db)
            assert len(expected) == 82

            async def all_delivered() -> bool:
                row = await db.fetchone("SELECT COUNT(*) FROM feed_ledger WHERE state = 'delivered'")
                return row is not None and row[0] == len(expected)

            await until("every rating delivered", all_delivered)
            await asyncio.sleep(0.5)  # a few more rounds: nothing is sent again
            stop.set()
            await task
            receiver.check_exactly_once(expected)
            assert not receiver.plan, "the receiver's failures were not all exercised"
            assert {m for m, _ in receiver.requests} == {"500", "drop", "ok"}
            dropped = {i for m, ids in receiver.requests if m == "drop" for i in ids}
            assert dropped and dropped <= set(receiver.acked())  # a lost ack: sent again, the receiver deduped
            rows = await db.fetch("SELECT state, COUNT(*), MIN(attempts) FROM feed_ledger GROUP BY state")
            assert [tuple(r) for r in rows] == [("delivered", 82, 1)]
            retried = await db.fetchone("SELECT COUNT(*) FROM feed_ledger WHERE attempts > 1")
            assert retried is not None and retried[0] >= 9  # the batches that failed were retried
            doc = receiver.stored["box-2:1:" + str(s.seq["box-2"])]
            assert doc["ticket"] == "N11" and doc["level"] == "不满意"
        finally:
            stop.set()
            await receiver.stop()
            await db.close()

    run(body)


def test_feed_push_command_keeps_what_fails_and_sends_it_once_later(store_url: str, tmp_path: pathlib.Path) -> None:
    certs = make_certs(tmp_path)
    receiver = Receiver(certs)

    async def body() -> None:
        db, _ = await seeded(store_url)
        expected = await ratings_in(db)
        await db.close()
        config = write_config(tmp_path, store_url, receiver.url, certs / "ca.pem", batch_size=25, timeout_s=3)
        # the endpoint is down: nothing lost, exit 1, the error said
        res = await asyncio.to_thread(evalbox, "feed", "push", "--config", str(config))
        assert res.returncode == 1, res.stderr
        assert "queued 70 new, delivered 0, pending 70" in res.stdout
        assert "Connect" in res.stderr and "Traceback" not in res.stderr
        # an endpoint whose certificate another CA signed: refused, nothing sent
        await receiver.start()
        wrong = write_config(tmp_path, store_url, receiver.url, certs / "other-ca.pem", "wrong-ca.toml")
        res = await asyncio.to_thread(evalbox, "feed", "push", "--config", str(wrong))
        assert res.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in res.stderr, res.stderr
        assert receiver.requests == []
        status = await asyncio.to_thread(evalbox, "feed", "status", "--config", str(config))
        assert "pending 待推送: 70" in status.stdout and "CERTIFICATE_VERIFY_FAILED" in status.stdout
        # the right CA: everything once, in batches of 25
        res = await asyncio.to_thread(evalbox, "feed", "push", "--config", str(config))
        assert res.returncode == 0, res.stderr
        assert "queued 0 new, delivered 70, pending 0" in res.stdout
        assert [len(ids) for _, ids in receiver.requests] == [25, 25, 20]
        receiver.check_exactly_once(expected)
        # again: nothing to send
        res = await asyncio.to_thread(evalbox, "feed", "push", "--config", str(config))
        assert res.returncode == 0 and "delivered 0, pending 0" in res.stdout
        assert len(receiver.requests) == 3
        await receiver.stop()

    run(body)


def test_serve_pushes_the_feed_in_the_background(store_url: str, tmp_path: pathlib.Path) -> None:
    certs = make_certs(tmp_path)
    receiver = Receiver(certs, ["drop", "500"])

    async def body() -> None:
        db, _ = await seeded(store_url)
        expected = await ratings_in(db)
        await db.close()
        await receiver.start()
        config = write_config(tmp_path, store_url, receiver.url, certs / "ca.pem", interval_s=0.2,
                              retry_first_s=0.1, batch_size=30)  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "collector.cli", "serve", "--config", str(config),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            await until("the feed delivered by evalbox serve", lambda: receiver.has_acked(expected))
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err.decode()
            assert f"feed {receiver.url}" in out.decode()
            receiver.check_exactly_once(expected)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await receiver.stop()

    run(body)


@pytest.mark.parametrize(
    ("feed", "words"),
    [
        ({"url": "http://hcp.example/x"}, "https:// endpoint only"),
        ({"url": "https://hcp.example/x", "batch_size": 0}, "batch_size"),
        ({"url": "https://hcp.example/x", "ca_file": "missing.pem"}, "feed.ca_file"),
        ({"url": "https://hcp.example/x", "retries": 3}, "feed.retries: unknown key"),
        ({"url": "https://hcp.example/x", "since": "2026-13-01"}, "since"),
        ({"batch_size": 10}, "feed.url: missing"),
    ],
)
def test_bad_feed_config_is_one_clear_line(tmp_path: pathlib.Path, feed: dict[str, object], words: str) -> None:
    path = tmp_path / "evalbox.toml"
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in feed.items())
    path.write_text(f'[store]\nurl = "sqlite:///x.db"\n[feed]\n{body}\n', encoding="utf-8")
    res = evalbox("feed", "push", "--config", str(path))
    assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "x.db").exists()


def test_push_without_feed_config_says_so(tmp_path: pathlib.Path) -> None:
    res = evalbox("feed", "push", "--db", str(tmp_path / "x.db"))
    assert res.returncode == 2 and "[feed]" in res.stderr and "Traceback" not in res.stderr


def test_since_and_the_policy_decide_what_is_queued(store_url: str) -> None:
    from collector.feed import enqueue

    async def body() -> None:
        db, _ = await seeded(store_url)
        try:
            cfg = FeedConfig(url="https://hcp.example/x", since="2026-10-06")
            new = await enqueue(db, cfg, Policy())
            rows = await db.fetch("SELECT MIN(press_ms), COUNT(*) FROM feed_ledger")
            assert rows[0][1] == new > 0 and rows[0][0] >= local_ms(6, 0) and 0 < new < 70
            assert await enqueue(db, cfg, Policy()) == 0  # queued once
            everything = FeedConfig(url="https://hcp.example/x")
            more = await enqueue(db, everything, Policy(count_unsolicited=True))
            assert new + more == 71  # the 70 ratings and, counted by this policy, the unsolicited press
            kinds = await db.fetch(
                "SELECT e.kind, COUNT(*) FROM feed_ledger f JOIN events e ON e.device_id = f.device_id"
                " AND e.boot = f.boot AND e.seq = f.seq GROUP BY e.kind ORDER BY e.kind"
            )
            assert [tuple(r) for r in kinds] == [("rated", 70), ("unsolicited", 1)]
        finally:
            await db.close()

    run(body)
