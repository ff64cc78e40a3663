"""The store on SQLite and on PostgreSQL: exactly once, rollups equal a rebuild, bounded rejected table.

Every test runs on both (the ``store_url`` fixture); the last ones are
PostgreSQL's own: several writers at once, a month closed while batches run,
a server that drops the connection.
"""

from __future__ import annotations

import asyncio

from collector.report.rebuild import ROLLUP_SQL
from collector.store import Rejection, StatusUpdate, Store, open_store


def ev(seq: int, *, kind: str = "rated", type_: str = "press", month: str = "2026-10", boot: int = 1, inv=None):
    return (
        "D1", boot, seq, type_, "A1", "W1", 1_790_000_000_000 + seq, None, seq, 1_790_000_000_000, month,
        1 if type_ == "press" else None, 2 if type_ == "press" else None, inv, None, 0, kind, "mqtt",
    )  # fmt: skip


async def _registry(store: Store) -> None:
    await store.import_registry(
        units=[("U1", "城关派出所", None, None)],
        windows=[("W1", "U1", "户籍1号窗")],
        officers=[("A1", "张三", "U1", "W1")],
    )
    await store.add_device("D1", "W1", "00" * 32)


def test_exactly_once_and_rollups_match_rebuild(store_url: str) -> None:
    async def run() -> None:
        async with open_store(store_url) as store:
            assert store.db.dialect == ("postgresql" if store_url.startswith("postgresql") else "sqlite")
            await _registry(store)
            first = await store.write_batch([ev(1), ev(2), ev(2), ev(3, kind="misuse")])
            assert first == [True, True, False, True]
            second = await store.write_batch(
                [ev(2), ev(4, type_="invite", kind="invite", inv=7), ev(5, type_="signin", kind="signin")]
            )
            assert second == [False, True, True]
            await store.db.execute("INSERT INTO months VALUES ('2026-10', 1, 'test')")
            assert await store.write_batch([ev(6)]) == [True]
            assert await store.count_events() == 6
            incremental = sorted(await store.db.fetch("SELECT * FROM rollups"))
            async with store.db.transaction():
                await store.db.execute("DELETE FROM rollups")
                await store.db.execute(ROLLUP_SQL, ("2026-10",))
            assert sorted(await store.db.fetch("SELECT * FROM rollups")) == incremental
            late = await store.db.fetch("SELECT n FROM rollups WHERE late = 1")
            assert late == [(1,)]
            assert await store.db.fetch("SELECT officer_id, end_ms FROM duty") == [("A1", None)]
            assert await store.db.fetch("SELECT invite_no, outcome FROM invites") == [(7, "open")]

    asyncio.run(run())


def test_rejected_table_is_bounded_and_counted(store_url: str) -> None:
    async def run() -> None:
        async with open_store(store_url) as store:
            store.rejected_cap = 50
            rejects = [Rejection(i, "bad_json" if i % 2 else "bad_mac", "mqtt", "t", "x", b"raw") for i in range(120)]
            await store.write_batch([], rejects=rejects[:70])
            await store.write_batch([], rejects=rejects[70:])
            assert await store.rejected_counts() == {"bad_json": 60, "bad_mac": 60}
            rows = await store.db.fetch("SELECT COUNT(*), MIN(at_ms) FROM rejected")
            assert rows == [(50, 70)]

    asyncio.run(run())


def test_status_and_last_will(store_url: str) -> None:
    async def run() -> None:
        async with open_store(store_url) as store:
            await _registry(store)
            status = {"b": 3, "up": 5000, "ts": None, "fw": "1.0", "q": 4, "full": False, "mem": 100,
                      "rssi": -60, "rst": "power", "err": None, "st": "ok", "cv": 1}  # fmt: skip
            await store.write_batch([], statuses=[StatusUpdate("D1", 1000, status)])
            rows = await store.device_rows()
            assert rows[0]["status"] == "online" and rows[0]["outbox"] == 4 and rows[0]["fw"] == "1.0"
            await store.write_batch([], statuses=[StatusUpdate("D1", 2000, None)])
            assert (await store.device_rows())[0]["status"] == "offline"

    asyncio.run(run())


def test_signout_closes_the_officers_duty(store_url: str) -> None:
    async def run() -> None:
        async with open_store(store_url) as store:
            await _registry(store)
            await store.write_batch([ev(1, type_="signin", kind="signin")])
            out = ev(2, type_="signout", kind="signout")
            await store.write_batch([out])
            assert await store.db.fetch("SELECT officer_id, end_ms FROM duty") == [("A1", out[6])]

    asyncio.run(run())


async def _rollups(store: Store) -> list[tuple]:
    return sorted(await store.db.fetch("SELECT * FROM rollups"))


async def _rebuilt(store: Store, month: str) -> list[tuple]:
    async with store.db.transaction():
        await store.db.execute("DELETE FROM rollups")
        await store.db.execute(ROLLUP_SQL, (month,))
    return await _rollups(store)


def test_postgresql_writers_at_once_store_each_event_once(postgres_database: str) -> None:
    """Four collectors' stores write overlapping batches at the same moment: one row, one count each."""

    async def run() -> None:
        stores = [open_store(postgres_database) for _ in range(4)]
        for s in stores:
            await s.open()
        try:
            await _registry(stores[0])
            # Each writer gets every event of its quarter and, as redeliveries, its neighbour's.
            events = [ev(i, kind="rated" if i % 7 else "misuse") for i in range(2000)]
            batches = [
                [events[j] for j in range(len(events)) if j % 4 in (w, (w + 1) % 4)][k : k + 250]
                for w in range(4)
                for k in range(0, 1000, 250)
            ]
            results = await asyncio.gather(*(stores[i % 4].write_batch(b) for i, b in enumerate(batches)))
            assert sum(sum(r) for r in results) == 2000  # each event stored by exactly one writer
            assert await stores[0].count_events() == 2000
            incremental = await _rollups(stores[0])
            assert sum(r[-1] for r in incremental) == 2000
            assert await _rebuilt(stores[0], "2026-10") == incremental
        finally:
            for s in stores:
                await s.close()

    asyncio.run(run())


def test_postgresql_month_close_waits_for_batches_in_flight(postgres_database: str) -> None:
    """A month closed while another session writes: every event after the close is counted late."""

    async def run() -> None:
        async with open_store(postgres_database) as store, open_store(postgres_database) as closer:
            await _registry(store)
            async with store.db.transaction():  # a batch in flight holds the months lock ...
                await store.db.lock("months", mode="SHARE")
                close = asyncio.create_task(closer.db.execute("INSERT INTO months VALUES ('2026-10', 1, 'test')"))
                await asyncio.sleep(0.3)
                assert not close.done()  # ... so the close waits for it
            await close
            assert await store.write_batch([ev(1)]) == [True]
            assert await store.db.fetch("SELECT late FROM events") == [(1,)]

    asyncio.run(run())


def test_postgresql_store_reconnects_after_the_server_drops_it(postgres_database: str) -> None:
    async def run() -> None:
        async with open_store(postgres_database) as store:
            await _registry(store)
            assert await store.write_batch([ev(1)]) == [True]
            pid = store.db.conn.get_server_pid()
            async with open_store(postgres_database, migrate=False) as admin:
                await admin.db.fetch("SELECT pg_terminate_backend(?)", (pid,))
            await asyncio.sleep(0.2)
            # The first batch fails with the dead connection (the pipeline retries it) ...
            try:
                await store.write_batch([ev(2)])
            except Exception:
                pass
            # ... and the next one reconnects and stores: nothing lost, nothing doubled.
            assert await store.write_batch([ev(2), ev(3)]) in ([True, True], [False, True])
            assert await store.count_events() == 3
            assert sum(r[-1] for r in await _rollups(store)) == 3
            # Outside a batch too (the box-command loop's reads): dropped, then reopened.
            async with open_store(postgres_database, migrate=False) as admin:
                await admin.db.fetch("SELECT pg_terminate_backend(?)", (store.db.conn.get_server_pid(),))
            await asyncio.sleep(0.2)
            try:
                await store.pending_commands()
            except Exception:
                pass
            assert await store.pending_commands() == []

    asyncio.run(run())


def test_postgresql_reads_wait_for_the_transaction_in_progress(postgres_database: str) -> None:
    """The box-command loop reads while the writer's batch is open: it waits its turn (one asyncpg connection)."""

    async def run() -> None:
        async with open_store(postgres_database) as store:
            await _registry(store)
            order = []

            async def batch() -> None:
                async with store.db.transaction():
                    await store.db.execute("UPDATE devices SET fw = 'x'")
                    await asyncio.sleep(0.2)
                    order.append("commit")

            async def read() -> None:
                await asyncio.sleep(0.05)
                assert await store.pending_commands() == []
                assert await store.db.fetch("SELECT fw FROM devices") == [("x",)]  # after the commit
                order.append("read")

            await asyncio.gather(batch(), read())
            assert order == ["commit", "read"]

    asyncio.run(run())
