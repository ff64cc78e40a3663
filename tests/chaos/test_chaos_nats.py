"""The fleet on a second broker: NATS server with MQTT (JetStream), while the broker, the collector and the
serial cables fail. Every press a box confirmed saved is stored exactly once, as on mosquitto."""

from __future__ import annotations

import asyncio
import pathlib

from collector.sim.chaos import run_chaos
from collector.sim.deploy import BoxSettings
from collector.sim.run import SimOptions


def test_fleet_on_nats_nothing_lost_duplicated_or_extra(tmp_path: pathlib.Path) -> None:
    opts = SimOptions(
        workdir=tmp_path / "chaos", boxes=4, serial_every=4, month="2026-10", days=2, arrivals_per_hour=9,
        seed=3, box_settings=BoxSettings(invite_ms=1000, min_interval_ms=120), broker="nats",
    )  # fmt: skip
    result = asyncio.run(run_chaos(opts, seed=3, every_s=3.0, say=lambda _: None))
    print(result.summary())
    assert result.broker == "nats"
    assert result.presses >= 300
    assert result.faults["broker_kill"] >= 1 and result.faults["collector_kill"] >= 1, result.faults
    assert (result.lost, result.duplicated, result.extra) == (0, 0, 0), result.examples
    log = (tmp_path / "chaos" / "broker" / "nats.log").read_text(errors="replace")
    assert "Listening for MQTT clients" in log and "Violation" not in log  # the provisioned permissions fit
