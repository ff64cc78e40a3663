"""Chaos at scale: the fleet on real firmware while broker, collector, box power and serial cables fail.

    .venv/bin/python bench/chaos.py                       # 20 boxes, ≥ 50,000 presses, ≥ 100 faults
    .venv/bin/python bench/chaos.py --boxes 10 --days 12 --seed 7
    .venv/bin/python bench/chaos.py --store postgresql://postgres@127.0.0.1/evalbox_chaos --collectors 2
    .venv/bin/python bench/chaos.py --broker nats --boxes 8 --days 3   # NATS server with MQTT instead of mosquitto

Prints the faults injected by kind and the events checked; the last line is
one JSON object ``{"presses", "faults", "lost", "duplicated", "extra", "collectors", "store"}``
(``store``: ``sqlite`` or ``postgresql``). With ``--collectors N`` (a PostgreSQL ``--store``,
an existing database) N collectors share the broker stream and a ``collector_kill`` SIGKILLs one
of them at random.
A seed reproduces the plan and the fault schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from collector.errors import EvalboxError  # noqa: E402
from collector.sim.chaos import run_chaos  # noqa: E402
from collector.sim.deploy import BoxSettings  # noqa: E402
from collector.sim.run import SimOptions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boxes", type=int, default=20)
    ap.add_argument("--days", type=int, default=31, help="days of the month simulated (default: all)")
    ap.add_argument("--arrivals-per-hour", type=float, default=18.0)
    ap.add_argument("--every-s", type=float, default=4.0, help="mean seconds between faults")
    ap.add_argument("--month", default="2026-10")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", help="working directory (default: a temporary one)")
    ap.add_argument("--store", metavar="URL", help="store URL (default: an SQLite file in the working directory)")
    ap.add_argument("--collectors", type=int, default=1, help="collectors sharing the stream (≥ 2: PostgreSQL)")
    ap.add_argument("--broker", choices=("mosquitto", "nats"), default="mosquitto", help="the MQTT broker run")
    args = ap.parse_args()
    workdir = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="evalbox-chaos-")) / "run"
    opts = SimOptions(
        workdir=workdir, boxes=args.boxes, serial_every=4, month=args.month, days=args.days,
        arrivals_per_hour=args.arrivals_per_hour, seed=args.seed,
        box_settings=BoxSettings(invite_ms=1000, min_interval_ms=120, outbox_blocks=512),
        store_url=args.store, collectors=args.collectors, broker=args.broker,
    )  # fmt: skip
    try:
        result = asyncio.run(run_chaos(opts, seed=args.seed, every_s=args.every_s))
    except EvalboxError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    for line in result.examples:
        print("  " + line)
    print(result.json_line())
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
