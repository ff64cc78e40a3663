"""Chaos with scale-out: two collectors sharing the broker stream write one PostgreSQL store, real firmware.

A small run (6 boxes, two on serial, ≥ 1,000 presses) while the broker is
SIGKILLed, one of the two collectors (at random) is SIGKILLed, boxes lose
power and serial cables are pulled: every press a box confirmed saved must
be stored exactly once. ``bench/chaos.py --store postgresql://… --collectors 2``
runs the same with larger numbers.
"""

from __future__ import annotations

import asyncio
import os
import pathlib

from collector.sim.chaos import FAULTS, run_chaos
from collector.sim.deploy import BoxSettings
from collector.sim.run import SimOptions

SEED = int(os.environ.get("EVALBOX_CHAOS_SEED", "20261123"))


def test_two_collectors_on_postgresql_lose_nothing_whatever_fails(
    tmp_path: pathlib.Path, postgres_database: str
) -> None:
    opts = SimOptions(
        workdir=tmp_path / "chaos", boxes=6, serial_every=3, month="2026-10", days=6, arrivals_per_hour=9,
        seed=SEED, box_settings=BoxSettings(invite_ms=1000, min_interval_ms=120),
        store_url=postgres_database, collectors=2,
    )  # fmt: skip
    result = asyncio.run(run_chaos(opts, seed=SEED, every_s=2.5, say=lambda _: None))
    print(result.summary())
    assert (result.collectors, result.store) == (2, "postgresql")
    assert result.presses >= 1000
    assert all(result.faults[f] >= 1 for f in FAULTS), result.faults
    assert (result.lost, result.duplicated, result.extra) == (0, 0, 0), result.examples
    for log in ("collector.log", "collector-1.log"):  # both took part: each on the shared subscription
        assert "$share/collectors/" in (opts.workdir / log).read_text(encoding="utf-8"), log
