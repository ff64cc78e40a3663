"""The SQLite store: exactly once, rollups equal a rebuild from raw events, bounded rejected table."""

from __future__ import annotations

import asyncio
import pathlib

from collector.report.rebuild import ROLLUP_SQL
from collector.store import Rejection, StatusUpdate, open_store
from collector.store.sqlite import SqliteStore


def ev(seq: int, *, kind: str = "rated", type_: str = "press", month: str = "2026-10", boot: int = 1, inv=None):
    return (
        "D1", boot, seq, type_, "A1", "W1", 1_790_000_000_000 + seq, None, seq, 1_790_000_000_000, month,
        1 if type_ == "press" else None, 2 if type_ == "press" else None, inv, None, 0, kind, "mqtt",
    )  # fmt: skip


async def _registry(store: SqliteStore) -> None:
    await store.import_registry(
        units=[("U1", "城关派出所", None, None)],
        windows=[("W1", "U1", "户籍1号窗")],
        officers=[("A1", "张三", "U1", "W1")],
    )
    await store.add_device("D1", "W1", "00" * 32)


def test_exactly_once_and_rollups_match_rebuild(tmp_path: pathlib.Path) -> None:
    async def run() -> None:
        async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
            assert isinstance(store, SqliteStore)
            await _registry(store)
            first = await store.write_batch([ev(1), ev(2), ev(2), ev(3, kind="misuse")])
            assert first == [True, True, False, True]
            second = await store.write_batch(
                [ev(2), ev(4, type_="invite", kind="invite", inv=7), ev(5, type_="signin", kind="signin")]
            )
            assert second == [False, True, True]
            await store._run("INSERT INTO months VALUES ('2026-10', 1, 'test')")
            assert await store.write_batch([ev(6)]) == [True]
            assert await store.count_events() == 6
            incremental = sorted(await store.fetch("SELECT * FROM rollups"))
            async with store.transaction():
                await store._run("DELETE FROM rollups")
                await store._run(ROLLUP_SQL, ("2026-10",))
            assert sorted(await store.fetch("SELECT * FROM rollups")) == incremental
            late = await store.fetch("SELECT n FROM rollups WHERE late = 1")
            assert late == [(1,)]
            assert await store.fetch("SELECT officer_id, end_ms FROM duty") == [("A1", None)]
            assert await store.fetch("SELECT invite_no, outcome FROM invites") == [(7, "open")]

    asyncio.run(run())


def test_rejected_table_is_bounded_and_counted(tmp_path: pathlib.Path) -> None:
    async def run() -> None:
        async with SqliteStore(tmp_path / "s.db") as store:
            store.rejected_cap = 50
            rejects = [Rejection(i, "bad_json" if i % 2 else "bad_mac", "mqtt", "t", "x", b"raw") for i in range(120)]
            await store.write_batch([], rejects=rejects[:70])
            await store.write_batch([], rejects=rejects[70:])
            assert await store.rejected_counts() == {"bad_json": 60, "bad_mac": 60}
            rows = await store.fetch("SELECT COUNT(*), MIN(at_ms) FROM rejected")
            assert rows == [(50, 70)]

    asyncio.run(run())


def test_status_and_last_will(tmp_path: pathlib.Path) -> None:
    async def run() -> None:
        async with SqliteStore(tmp_path / "s.db") as store:
            await _registry(store)
            status = {"b": 3, "up": 5000, "ts": None, "fw": "1.0", "q": 4, "full": False, "mem": 100,
                      "rssi": -60, "rst": "power", "err": None, "st": "ok", "cv": 1}  # fmt: skip
            await store.write_batch([], statuses=[StatusUpdate("D1", 1000, status)])
            rows = await store.device_rows()
            assert rows[0]["status"] == "online" and rows[0]["outbox"] == 4 and rows[0]["fw"] == "1.0"
            await store.write_batch([], statuses=[StatusUpdate("D1", 2000, None)])
            assert (await store.device_rows())[0]["status"] == "offline"

    asyncio.run(run())
