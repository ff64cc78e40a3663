"""Benchmark: the audit trail's cost — sealing a month at close, ``evalbox audit verify``, appending entries.

    .venv/bin/python bench/audit.py                      # a year of 2,000,000 events (bench/report.py's data)
    .venv/bin/python bench/audit.py --events 1200000 --appends 500

Loads a temporary SQLite store as ``bench/report.py`` does and rebuilds its rollups, then times: reading
one month's events in identity order (the baseline: what any check of them
must at least do), sealing that month (its events digest and close digest,
``seal_month``), ``evalbox month close`` of the next month (snapshot + seal),
``evalbox audit verify`` over the store (the chain, both sealed months'
digests recomputed, every month's rollups recomputed from its events), and
``append_audit`` one entry per transaction (``synchronous=FULL``). Last line:
JSON ``{"store", "events", "month_events", "read_s", "seal_s", "seal_vs_read", "close_s", "verify_s",
"appends_per_s"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from report import CLI_CACHE_MB, TZ, YEAR, load  # noqa: E402  (bench/report.py: the same province-year)

from collector.report.months import close_month  # noqa: E402
from collector.report.policy import Policy  # noqa: E402
from collector.report.rebuild import rebuild  # noqa: E402
from collector.store import connect  # noqa: E402
from collector.store.audit import EVENT_DIGEST_COLUMNS, append_audit, seal_month, verify  # noqa: E402


async def measure(url: str, appends: int) -> dict[str, float]:
    first, second = f"{YEAR}-05", f"{YEAR}-06"
    policy = Policy(timezone=TZ)
    async with connect(url, must_exist=True, cache_mb=CLI_CACHE_MB) as db:
        await rebuild(db, TZ)  # the loader writes raw events only: their rollups (not timed)
        t = time.perf_counter()
        rows = await db.fetch(
            f"SELECT {', '.join(EVENT_DIGEST_COLUMNS)} FROM events WHERE month = ? ORDER BY device_id, boot, seq",
            (first,),
        )
        read_s = time.perf_counter() - t
        month_events = len(rows)
        del rows
        now = int(time.time() * 1000)
        async with db.transaction():  # a month closed before the audit trail: only its seal is timed
            await db.execute("INSERT INTO months (month, closed_ms, closed_by) VALUES (?, ?, 'bench')", (first, now))
        t = time.perf_counter()
        seal = await seal_month(db, first, TZ, actor="bench", action="month.seal")
        seal_s = time.perf_counter() - t
        assert seal["events"] == month_events, (seal["events"], month_events)
        t = time.perf_counter()
        await close_month(db, second, policy, by="bench", now_ms=now)
        close_s = time.perf_counter() - t
        t = time.perf_counter()
        res = await verify(db)
        verify_s = time.perf_counter() - t
        assert res.ok, res.problems
        t = time.perf_counter()
        for i in range(appends):
            await append_audit(db, actor="bench", action="token.use", subject="token:bench", after={"i": i})
        appends_per_s = appends / (time.perf_counter() - t)
    return {
        "month_events": month_events,
        "read_s": read_s,
        "seal_s": seal_s,
        "close_s": close_s,
        "verify_s": verify_s,
        "appends_per_s": appends_per_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--officers", type=int, default=5_000)
    ap.add_argument("--windows", type=int, default=1_000)
    ap.add_argument("--appends", type=int, default=1_000)
    ap.add_argument("--dir", help="where to put the temporary store (default: the system temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = pathlib.Path(d) / "bench.db"
        load_s = load(path, args.events, args.officers, args.windows)
        print(f"load: {args.events:,} events in {load_s:.1f} s", file=sys.stderr)
        f = asyncio.run(measure(str(path), args.appends))
    ratio = f["seal_s"] / f["read_s"]
    print(f"one month: {f['month_events']:,.0f} events")
    print(f"read them in identity order (baseline): {f['read_s']:.3f} s")
    print(f"seal the month (events + close digests): {f['seal_s']:.3f} s = {ratio:.1f}x the baseline")
    print(f"month close with its seal: {f['close_s']:.3f} s")
    print(f"audit verify (chain, 2 sealed months, all rollups vs events): {f['verify_s']:.3f} s")
    print(f"append_audit, one entry per transaction: {f['appends_per_s']:.0f} entries/s")
    print(
        json.dumps(
            {
                "store": "sqlite",
                "events": args.events,
                "month_events": int(f["month_events"]),
                "read_s": round(f["read_s"], 4),
                "seal_s": round(f["seal_s"], 4),
                "seal_vs_read": round(ratio, 2),
                "close_s": round(f["close_s"], 4),
                "verify_s": round(f["verify_s"], 4),
                "appends_per_s": round(f["appends_per_s"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
