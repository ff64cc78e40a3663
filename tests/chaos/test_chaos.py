"""Chaos at CI size: ≥ 10 boxes, ≥ 5,000 presses, while broker, collector, box power and serial cables fail.

Every press a box confirmed saved must be stored exactly once: 0 lost, 0
duplicated, 0 extra. ``bench/chaos.py`` runs the same with larger numbers.
"""

from __future__ import annotations

import asyncio
import os
import pathlib

from collector.sim.chaos import FAULTS, run_chaos
from collector.sim.deploy import BoxSettings
from collector.sim.run import SimOptions

SEED = int(os.environ.get("EVALBOX_CHAOS_SEED", "20261123"))


def test_nothing_lost_duplicated_or_extra_whatever_fails(tmp_path: pathlib.Path) -> None:
    opts = SimOptions(
        workdir=tmp_path / "chaos", boxes=10, serial_every=4, month="2026-10", days=13, arrivals_per_hour=9,
        seed=SEED, box_settings=BoxSettings(invite_ms=1000, min_interval_ms=120),
    )  # fmt: skip
    result = asyncio.run(run_chaos(opts, seed=SEED, every_s=4.0, say=lambda _: None))
    print(result.summary())
    assert result.presses >= 5000
    assert all(result.faults[f] >= 1 for f in FAULTS), result.faults
    assert (result.lost, result.duplicated, result.extra) == (0, 0, 0), result.examples
