"""Benchmark: a province-year of presses; monthly report from rollups vs the naive GROUP BY; rebuild.

    .venv/bin/python bench/report.py                  # 20,000,000 events, 5,000 officers, 1,000 windows
    .venv/bin/python bench/report.py --events 2000000
    .venv/bin/python bench/report.py --events 2000000 --store postgresql://postgres@127.0.0.1/postgres

Loads a temporary SQLite store (or, with ``--store postgresql://…/DB``, a
scratch database ``evalbox_bench_<random>`` created on that server beside DB
and dropped at the end) with bulk SQL (a recursive CTE per month), then
times ``evalbox rebuild`` (months re-placed in the zone + rollups from raw
events), the monthly report read from rollups (``monthly_report``: query,
every officer's, window's and unit's line, ranks; median of 5), and the same
report computed by GROUP BY over raw events. Rendering is timed apart. Then
closes the month (``evalbox month close``: the snapshot of its counts, the
registry and the policy) and times the closed month's report (the frozen figures
and the check that today's data would change nothing; median of 5). Last line: JSON
``{"events", "report_s", "naive_s", "speedup", "rebuild_s", "close_s", "closed_report_s"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from collector.report.monthly import monthly_report  # noqa: E402
from collector.report.months import close_month  # noqa: E402
from collector.report.policy import Policy  # noqa: E402
from collector.report.rebuild import rebuild  # noqa: E402
from collector.report.render import render  # noqa: E402
from collector.store import connect  # noqa: E402
from collector.timeplace import month_bounds  # noqa: E402

TZ = "Asia/Shanghai"
CLI_CACHE_MB = 512  # what the report commands give SQLite's page cache
YEAR = 2026

# i -> one event. Officer o works at window o % W (5 officers per window); one
# window in ten has a 5-level box. Mix: 85% rated, 4% unsolicited, 2% misuse,
# 6% invites, 3% unrated; about 97% of ratings satisfied.
EVENT_SQL = """
WITH RECURSIVE seq(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?),
gen AS (
  SELECT i, (i * 7919) % :officers AS o, (i * 2654435761 % 4294967291) % 100 AS r,
         (i * 40503 % 1000003) % 100 AS q FROM seq
)
INSERT INTO events (device_id, boot, seq, type, officer_id, window_id, press_ms, device_ts_ms, uptime_ms,
                    recv_ms, month, level, scale, invite_no, flags, kind, source, late)
SELECT 'D' || (o % :windows), 1, i,
       CASE WHEN r < 91 THEN 'press' WHEN r < 97 THEN 'invite' ELSE 'unrated' END,
       'P' || o, 'W' || (o % :windows),
       :t0 + (i - :i0) * :step, :t0 + (i - :i0) * :step, i, :t0 + (i - :i0) * :step + 500, :month,
       CASE WHEN r >= 91 THEN NULL
            WHEN (o % :windows) % 10 = 0 THEN 1 + (q >= 70) + (q >= 95) + (q >= 98) + (q >= 99)
            ELSE 1 + (q >= 97) END,
       CASE WHEN r >= 91 THEN NULL WHEN (o % :windows) % 10 = 0 THEN 5 ELSE 2 END,
       i, CASE WHEN r < 85 THEN 0 WHEN r < 89 THEN 1 WHEN r < 91 THEN 2 ELSE 0 END,
       CASE WHEN r < 85 THEN 'rated' WHEN r < 89 THEN 'unsolicited' WHEN r < 91 THEN 'misuse'
            WHEN r < 97 THEN 'invite' ELSE 'unrated' END,
       'mqtt', 0
FROM gen
"""


# The same events on PostgreSQL: generate_series for the recursive CTE, booleans cast to integers.
PG_EVENT_SQL = (
    EVENT_SQL.replace(
        "WITH RECURSIVE seq(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?),",
        "WITH seq(i) AS (SELECT generate_series(CAST(? AS BIGINT), CAST(? AS BIGINT) - 1)),",
    )
    .replace(
        "(q >= 70) + (q >= 95) + (q >= 98) + (q >= 99)",
        "(q >= 70)::int + (q >= 95)::int + (q >= 98)::int + (q >= 99)::int",
    )
    .replace("1 + (q >= 97)", "1 + (q >= 97)::int")
)


def registry(officers: int, windows: int) -> list[tuple[str, list[tuple[object, ...]]]]:
    units = max(1, windows // 10)
    return [
        ("INSERT INTO units (id, name) VALUES (?, ?)", [(f"U{u}", f"单位{u}") for u in range(units)]),
        (
            "INSERT INTO windows (id, unit_id, name) VALUES (?, ?, ?)",
            [(f"W{w}", f"U{w % units}", f"窗口{w}") for w in range(windows)],
        ),
        (
            "INSERT INTO officers (id, name, unit_id, window_id) VALUES (?, ?, ?, ?)",
            [(f"P{o}", f"民警{o}", f"U{(o % windows) % units}", f"W{o % windows}") for o in range(officers)],
        ),
    ]


def month_params(m: int, events: int, officers: int, windows: int) -> tuple[int, int, dict[str, object]]:
    per = events // 12
    month = f"{YEAR}-{m:02d}"
    start, end = month_bounds(month, TZ)
    i0, i1 = (m - 1) * per, events if m == 12 else m * per
    params: dict[str, object] = {
        "officers": officers,
        "windows": windows,
        "t0": start,
        "i0": i0,
        "step": max(1, (end - start - 1) // max(1, i1 - i0)),
        "month": month,
    }
    return i0, i1, params


def load_postgres(url: str, events: int, officers: int, windows: int) -> float:
    """Fill the PostgreSQL store at ``url`` (migrated here) with the same data as ``load``."""
    t = time.perf_counter()

    async def run() -> None:
        async with connect(url) as db:
            async with db.transaction():
                for sql, rows in registry(officers, windows):
                    await db.executemany(sql, rows)
            for m in range(1, 13):
                i0, i1, params = month_params(m, events, officers, windows)
                sql = PG_EVENT_SQL
                for name, value in params.items():  # named parameters inlined: all numbers or a YYYY-MM literal
                    sql = sql.replace(f":{name}", f"'{value}'" if name == "month" else str(int(value)))
                await db.execute(sql, (i0, i1))
                print(f"  loaded {params['month']}: {i1:,} events, {time.perf_counter() - t:.0f} s", file=sys.stderr)
            await db.execute("ANALYZE")

    asyncio.run(run())
    return time.perf_counter() - t


def load(path: pathlib.Path, events: int, officers: int, windows: int) -> float:
    t = time.perf_counter()

    async def schema() -> None:
        async with connect(str(path)):
            pass  # migrated on opening

    asyncio.run(schema())
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-2000000")
    con.execute("BEGIN")
    for sql, rows in registry(officers, windows):
        con.executemany(sql, rows)
    con.execute("COMMIT")
    for m in range(1, 13):
        i0, i1, params = month_params(m, events, officers, windows)
        month = params["month"]
        sql = EVENT_SQL.replace("SELECT ? UNION", f"SELECT {i0} UNION").replace("< ?)", f"< {i1})")
        con.execute("BEGIN")
        con.execute(sql, params)
        con.execute("COMMIT")
        print(f"  loaded {month}: {i1:,} events, {time.perf_counter() - t:.0f} s", file=sys.stderr)
    con.close()
    return time.perf_counter() - t


Figures = tuple[float, float, float, float, float, float]


async def measure(url: str, month: str) -> Figures:
    """(report_s, naive_s, rebuild_s, render_s, close_s, closed_report_s); the report read as the CLI does."""
    policy = Policy()
    async with connect(url, must_exist=True, cache_mb=CLI_CACHE_MB) as db:
        for table in ("month_rollups", "month_snapshots", "months"):  # a kept store closed by a former run
            await db.execute(f"DELETE FROM {table}")
        t = time.perf_counter()
        await rebuild(db, TZ)
        rebuild_s = time.perf_counter() - t
        # untimed: fold the rebuild's WAL into the file / refresh the planner's statistics
        await db.execute("ANALYZE" if db.dialect == "postgresql" else "PRAGMA wal_checkpoint(TRUNCATE)")
    async with connect(url, must_exist=True, cache_mb=CLI_CACHE_MB) as db:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            report = await monthly_report(db, month, policy)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        render(report, policy, "json", "zh")
        render_s = time.perf_counter() - t
        t = time.perf_counter()
        naive = await monthly_report(db, month, policy, naive=True)
        naive_s = time.perf_counter() - t
        if naive != report:
            raise SystemExit("bench: the naive report differs from the rollup report")
        t = time.perf_counter()
        await close_month(db, month, policy, by="bench", now_ms=2**62)
        close_s = time.perf_counter() - t
        closed_times = []
        for _ in range(5):
            t = time.perf_counter()
            closed = await monthly_report(db, month, policy)
            closed_times.append(time.perf_counter() - t)
        if closed.officers != report.officers or closed.revisions:
            raise SystemExit("bench: the closed month's report differs from the open one")
    return statistics.median(times), naive_s, rebuild_s, render_s, close_s, statistics.median(closed_times)


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def bench_postgres(args: argparse.Namespace) -> Figures:
    if not args.store.startswith(("postgresql://", "postgres://")):
        raise SystemExit("bench: --store takes a postgresql:// URL (SQLite is the default)")
    name = f"evalbox_bench_{secrets.token_hex(4)}"
    url = f"{args.store.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_admin(args.store, f"CREATE DATABASE {name}"))
    try:
        load_s = load_postgres(url, args.events, args.officers, args.windows)
        print(f"load: {args.events:,} events in {load_s:.1f} s", file=sys.stderr)
        return asyncio.run(measure(url, args.month))
    finally:
        asyncio.run(_admin(args.store, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--officers", type=int, default=5_000)
    ap.add_argument("--windows", type=int, default=1_000)
    ap.add_argument("--month", default=f"{YEAR}-06")
    ap.add_argument("--dir", help="where to put the temporary store (default: the system temp dir)")
    ap.add_argument("--keep", metavar="PATH", help="keep the store at PATH (and reuse it when it exists)")
    ap.add_argument("--store", metavar="URL", help="postgresql://…/DB: bench in a scratch database on that server")
    args = ap.parse_args()
    if args.store:
        report_s, naive_s, rebuild_s, render_s, close_s, closed_s = bench_postgres(args)
    else:
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            path = pathlib.Path(args.keep or pathlib.Path(d) / "bench.db")
            if not path.exists():
                load_s = load(path, args.events, args.officers, args.windows)
                print(f"load: {args.events:,} events in {load_s:.1f} s", file=sys.stderr)
            report_s, naive_s, rebuild_s, render_s, close_s, closed_s = asyncio.run(measure(str(path), args.month))
    print(f"monthly report from rollups: {report_s:.3f} s (median of 5; all officers, windows, units, ranks)")
    print(f"  (+ rendering it as JSON: {render_s:.3f} s, not in either timing)")
    print(f"naive GROUP BY over raw events: {naive_s:.3f} s")
    print(f"rebuild: {rebuild_s:.1f} s")
    print(f"month close (snapshot): {close_s:.3f} s; closed month's report (frozen + revision): {closed_s:.3f} s")
    result = {
        "store": "postgresql" if args.store else "sqlite",
        "events": args.events,
        "report_s": round(report_s, 4),
        "naive_s": round(naive_s, 4),
        "speedup": round(naive_s / report_s, 1),
        "rebuild_s": round(rebuild_s, 2),
        "close_s": round(close_s, 4),
        "closed_report_s": round(closed_s, 4),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
