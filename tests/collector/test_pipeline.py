"""The pipeline on a real store (SQLite, PostgreSQL) with a recording source: placement, flags, side tables, acks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import protocol
from collector.ingest.pipeline import FLAG_CLOCK_SUSPECT, Pipeline
from collector.store import Store, open_store
from collector.timeplace import month_of
from protocol import topics

KEY = bytes(range(32))
D = "BOX-1"


class Recorder:
    name = "mqtt"

    def __init__(self) -> None:
        self.settled: list[Any] = []
        self.sent: list[tuple[str, str, bytes]] = []

    def settle(self, tokens: list[Any]) -> None:
        self.settled += tokens

    def send(self, device_id: str, kind: str, wire: bytes) -> None:
        self.sent.append((device_id, kind, wire))


def msg(t: str, seq: int, **kw: Any) -> bytes:
    fields: dict[str, Any] = {"b": 1, "s": seq, "ts": None, "up": 10_000 + seq, "o": "A1"}
    if t == "press":
        fields.update({"k": 1, "n": 2, "i": None, "tk": None, "f": 0})
    if t in ("invite", "unrated"):
        fields.update({"i": 1, "tk": "T-1"})
    fields.update(kw)
    return protocol.encode(protocol.make(t, D, **fields), KEY)


async def _pipeline(url: str) -> tuple[Store, Pipeline]:
    store = open_store(url)
    await store.open()
    await store.import_registry(
        units=[("U1", "U", None, None)], windows=[("W1", "U1", "W")], officers=[("A1", "张三", "U1", "W1")]
    )
    await store.add_device(D, "W1", KEY.hex())
    pipe = Pipeline(store, timezone="Asia/Shanghai")
    await pipe.refresh()
    return store, pipe


def test_placement_flags_side_tables_and_acks(store_url: str) -> None:
    async def run() -> None:
        store, pipe = await _pipeline(store_url)
        src = Recorder()
        recv = int(time.time() * 1000)
        up_topic = topics.uplink(D)
        status = protocol.make(
            "status", D, b=1, up=50_000, ts=None, fw="1", q=0, full=False, mem=1, rssi=None, rst="x", err=None,
            st="ok", cv=0,
        )  # fmt: skip
        items = [
            (src, topics.status(D), protocol.encode(status, KEY), recv, (1, 1), False),
            (src, up_topic, msg("signin", 1, up=20_000), recv, (2, 1), False),
            (src, up_topic, msg("invite", 2, up=21_000), recv, (3, 1), False),
            (src, up_topic, msg("press", 3, up=22_000, i=1), recv, (4, 1), False),
            (src, up_topic, msg("press", 4, ts=recv + 86_400_000), recv, (5, 1), False),  # a clock a day ahead
            (src, up_topic, msg("press", 5, ts=recv - 1000, f=1), recv, (6, 1), False),
            (src, up_topic, msg("signout", 6, up=30_000), recv, (7, 1), False),
            (src, up_topic, msg("press", 3, up=22_000, i=1), recv, (8, 1), False),  # duplicate in the batch
            (src, "evalbox/BOX-2/up", msg("press", 9), recv, (9, 1), False),  # wrong topic for the device
            (src, up_topic, b"not json", recv, (10, 1), False),
        ]
        await pipe.write(items)
        assert sorted(src.settled) == [(i, 1) for i in range(1, 11)]  # every message released after the commit
        ev = {r[0]: r[1:] for r in await store.db.fetch("SELECT seq, press_ms, flags, kind, month FROM events")}
        # Unsynced: placed from the status (uptime 50 s at recv) → press 30 s before recv for uptime 20 s.
        assert ev[1][0] == recv - 30_000
        assert ev[3][0] == recv - 28_000 and ev[3][2] == "rated"
        assert ev[4][1] & FLAG_CLOCK_SUSPECT and ev[4][0] == recv - 50_000 + 10_004  # placed by uptime instead
        assert ev[5][0] == recv - 1000 and ev[5][2] == "unsolicited"
        assert ev[1][3] == month_of(recv - 30_000)
        assert await store.db.fetch("SELECT officer_id, end_ms IS NOT NULL FROM duty") == [("A1", 1)]
        assert await store.db.fetch("SELECT invite_no, outcome, rating_seq FROM invites") == [(1, "rated", 3)]
        assert await store.rejected_counts() == {"no_mac": 1, "wrong_device": 1}
        assert (await store.device_rows())[0]["status"] == "online"
        acks = [protocol.decode(w, KEY, D) for d, kind, w in src.sent if kind == "ack"]
        assert len(acks) == 1 and acks[0]["r"] == [[1, 1, 6]]
        m = pipe.metrics
        assert (m.stored, m.duplicates, m.statuses) == (6, 1, 1)
        await store.close()

    asyncio.run(run())


def test_closed_month_is_late_and_unrated_invite(store_url: str) -> None:
    async def run() -> None:
        store, pipe = await _pipeline(store_url)
        src = Recorder()
        ts = 1_790_000_000_000
        await store.db.execute("INSERT INTO months VALUES (?, 1, 'test')", (month_of(ts),))
        recv = int(time.time() * 1000)
        await pipe.write(
            [
                (src, topics.uplink(D), msg("invite", 1, ts=ts), recv, None, False),
                (src, topics.uplink(D), msg("unrated", 2, ts=ts + 10_000), recv, None, False),
                (src, topics.uplink(D), msg("press", 3, ts=ts + 20_000), recv, None, False),
            ]
        )
        assert await store.db.fetch("SELECT DISTINCT late FROM events") == [(1,)]
        assert await store.db.fetch("SELECT outcome FROM invites") == [("unrated",)]
        rows = await store.db.fetch("SELECT kind, n FROM rollups WHERE late = 1 ORDER BY kind")
        assert rows == [("invite", 1), ("rated", 1), ("unrated", 1)]
        await store.close()

    asyncio.run(run())


def test_scattered_identities_are_acked_in_messages_within_the_size_limit(store_url: str) -> None:
    """A box whose presses reach this collector with gaps (the others went to another collector)."""

    async def run() -> None:
        store, pipe = await _pipeline(store_url)
        src = Recorder()
        recv = int(time.time() * 1000)
        seqs = list(range(1_000_000_000, 1_000_000_600, 2))  # 300 one-press ranges, long numbers
        await pipe.write([(src, topics.uplink(D), msg("press", s, b=123_456), recv, (s, 1), False) for s in seqs])
        wires = [w for _d, kind, w in src.sent if kind == "ack"]
        assert all(len(w) <= 1024 for w in wires) and len(wires) > 300 // 64
        acked = {(b, s) for w in wires for b, lo, hi in protocol.decode(w, KEY, D)["r"] for s in range(lo, hi + 1)}
        assert acked == {(123_456, s) for s in seqs}
        await store.close()

    asyncio.run(run())
