"""Chaos: run the fleet while the broker, the collector, box power and serial cables fail at random.

Faults (one at a time, at seeded random moments, each lasting a random
outage before recovery):

- ``broker_kill``: the broker (mosquitto or NATS) SIGKILLed (what it had not autosaved is gone), restarted;
- ``collector_kill``: ``evalbox serve`` SIGKILLed mid-batch, restarted (with several collectors
  sharing the stream: one of them, chosen at random);
- ``power_cut``: a box's interpreter SIGKILLed between two citizens, booted again on its flash image;
- ``serial_unplug``: a serial box's cable pulled, plugged back in.

Afterwards everything is brought up, the run waits for quiescence (every
box's outbox empty) and the stored events must equal the ground truth
exactly: 0 lost, 0 duplicated, 0 extra.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import signal
from collections import Counter
from typing import Any

from collector.sim.deploy import Deployment
from collector.sim.fleet import Fleet
from collector.sim.run import SimOptions, simulate
from collector.store.url import parse_store_url

FAULTS = ("broker_kill", "collector_kill", "power_cut", "serial_unplug")


@dataclasses.dataclass
class ChaosResult:
    presses: int
    events: int
    faults: Counter[str]
    lost: int
    duplicated: int
    extra: int
    seconds: float
    examples: list[str]
    collectors: int = 1
    store: str = "sqlite"
    broker: str = "mosquitto"

    @property
    def ok(self) -> bool:
        return self.lost == self.duplicated == self.extra == 0

    def summary(self) -> str:
        faults = ", ".join(f"{k} {self.faults.get(k, 0)}" for k in FAULTS)
        return (f"chaos 故障注入: {sum(self.faults.values())} faults ({faults}); {self.presses} presses, "
                f"{self.events} events checked: lost {self.lost}, duplicated {self.duplicated}, extra {self.extra}"
                f" ({self.collectors} collector(s) 采集器, {self.store} store 存储, {self.broker} broker 代理;"
                f" {self.seconds:.0f} s)")  # fmt: skip

    def json_line(self) -> str:
        return json.dumps({"presses": self.presses, "faults": sum(self.faults.values()), "lost": self.lost,
                           "duplicated": self.duplicated, "extra": self.extra, "collectors": self.collectors,
                           "store": self.store, "broker": self.broker})  # fmt: skip


async def inject(dep: Deployment, fleet: Fleet, rnd: random.Random, counts: Counter[str], every_s: float) -> None:
    """Inject faults until cancelled; whatever is down when cancelled is brought back up."""
    serial = sorted(dep.links)
    devices = sorted(dep.boxes)
    try:
        while True:
            await asyncio.sleep(rnd.uniform(0.3, 1.7) * every_s)
            fault = rnd.choice([f for f in FAULTS if f != "serial_unplug" or serial])
            outage = rnd.uniform(0.2, 3.0)
            if fault == "broker_kill":
                dep.kill_broker(signal.SIGKILL)
                await asyncio.sleep(outage)
                dep.start_broker()
            elif fault == "collector_kill":
                # one of several (the draw only then, so a one-collector run keeps its seeded schedule)
                which = rnd.randrange(dep.collectors) if dep.collectors > 1 else 0
                await dep.kill_collector(which)
                await asyncio.sleep(outage)
                await dep.start_collector(which)
            elif fault == "power_cut":
                fleet.request_cut(rnd.choice(devices))
            else:
                link = dep.links[rnd.choice(serial)]
                link.unplug()
                await asyncio.sleep(outage)
                link.replug()
            counts[fault] += 1
    finally:
        await recover(dep)


async def recover(dep: Deployment) -> None:
    for link in dep.links.values():
        link.replug()
    if dep._broker is None or dep._broker.poll() is not None:  # noqa: SLF001 - our own deployment
        dep.start_broker()
    if not dep.collector_running:
        await dep.start_collector()  # every one that is down


async def run_chaos(opts: SimOptions, *, seed: int, every_s: float, say: Any = print) -> ChaosResult:
    rnd = random.Random(seed)
    counts: Counter[str] = Counter()

    async def during(dep: Deployment, fleet: Fleet) -> None:
        await inject(dep, fleet, rnd, counts, every_s)

    async with simulate(opts, during=during, say=say, drain_timeout=600) as (dep, result):
        counts["power_cut"] = result.fleet.stats.power_cuts  # the cuts that happened (asked for at safe points)
        presses = sum(1 for r in result.fleet.records if r.expect.kind in ("rated", "unsolicited", "misuse"))
        ev = result.events
        store = parse_store_url(dep.store_url).kind
        return ChaosResult(
            presses, ev.expected, counts, ev.lost, ev.duplicated, ev.extra, result.seconds, ev.examples,
            collectors=dep.collectors, store=store, broker=dep.broker,
        )  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover
