"""Run a simulated month end to end: deploy, drive the fleet, wait for every ack, check against the truth.

``simulate`` is what ``evalbox sim``, ``evalbox demo``, the end-to-end test
and the chaos run share. It returns the deployment still running (the caller
decides when to stop it) and a ``SimResult`` with the ground truth and the
exact event check.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import pathlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from collector.errors import EvalboxError, UsageError
from collector.sim.deploy import BoxSettings, Deployment, cancelled_by_sigterm, evalbox_command
from collector.sim.fleet import Fleet, wait_drained
from collector.sim.traffic import Bureau, OfficerTruth, Traffic, demo_bureau, plan, truth
from collector.sim.verify import EventCheck, check_events, check_report
from collector.store import connect, parse_store_url
from collector.timeplace import DEFAULT_TIMEZONE, zone


@dataclasses.dataclass(frozen=True)
class SimOptions:
    """What to simulate. ``month`` None: last month in ``timezone``; ``days`` None: the whole month."""

    workdir: pathlib.Path
    boxes: int = 8
    serial_every: int = 4
    month: str | None = None
    days: int | None = None
    arrivals_per_hour: float = 2.0
    seed: int = 1
    timezone: str = DEFAULT_TIMEZONE
    web_listen: str | None = None
    box_settings: BoxSettings = BoxSettings()
    store_url: str | None = None  # None: an SQLite file in ``workdir``
    collectors: int = 1  # 2 or more: sharing the broker stream, writing one (PostgreSQL) store
    broker: str = "mosquitto"  # or "nats" (NATS server with MQTT; one collector: it has no shared subscriptions)
    behaviours: bool = False  # officers' own windows and fillers (``demo_bureau(behaviours=True)``)


@dataclasses.dataclass
class SimResult:
    month: str
    bureau: Bureau
    fleet: Fleet
    truth: dict[str, dict[str, OfficerTruth]]
    events: EventCheck
    seconds: float

    def truth_json(self) -> dict[str, Any]:
        return {
            month: {o: {"rated": t.rated, "satisfied": t.satisfied, "invites": t.invites, "unrated": t.unrated,
                        "unsolicited": t.unsolicited, "misuse": t.misuse} for o, t in sorted(per.items())}
            for month, per in self.truth.items()
        }  # fmt: skip


def last_month(tz: str) -> str:
    today = dt.datetime.now(zone(tz)).date()
    first = today.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


async def stored_events(dep: Deployment) -> list[tuple[str, int, int, str, int | None]]:
    """``(device, boot, seq, type, invite_no)`` of every stored event, read through the deployment's store URL."""
    async with connect(dep.store_url, base=dep.dir, migrate=False) as db:
        rows = await db.fetch("SELECT device_id, boot, seq, type, invite_no FROM events")
    return [(str(d), int(b), int(s), str(t), None if i is None else int(i)) for d, b, s, t, i in rows]


def check_store_options(store_url: str | None, collectors: int) -> None:
    """Several collectors write one store only on PostgreSQL; ``UsageError`` (bilingual) otherwise."""
    if collectors < 1:
        raise UsageError(f"--collectors: 1 or more, not {collectors} / 采集器数量至少为1")
    kind = parse_store_url(store_url).kind if store_url else "sqlite"
    if collectors > 1 and kind != "postgresql":
        raise UsageError(
            f"--collectors {collectors}: several collectors need a PostgreSQL store (--store postgresql://…)"
            " / 多个采集器须共用PostgreSQL库"
        )


class Progress:
    """One status line on a terminal (rewritten in place), or a line every 10% elsewhere."""

    def __init__(self, label: str, total: int, *, stream: Any = None) -> None:
        self.label, self.total, self.done = label, max(1, total), 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -1
        self._t = 0.0

    def step(self, extra: str = "") -> None:
        self.done += 1
        pct = self.done * 100 // self.total
        now = time.monotonic()
        if self.tty and (now - self._t > 0.2 or self.done == self.total):
            self._t = now
            bar = "#" * (pct * 30 // 100)
            self.stream.write(f"\r  {self.label} [{bar:<30}] {pct:3d}% {self.done}/{self.total} {extra}   ")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif not self.tty and pct // 10 != self._last:
            self._last = pct // 10
            print(f"  {self.label}: {pct}% ({self.done}/{self.total})", file=self.stream, flush=True)


@asynccontextmanager
async def simulate(
    opts: SimOptions,
    *,
    during: Callable[[Deployment, Fleet], Any] | None = None,
    say: Callable[[str], None] = print,
    drain_timeout: float = 300.0,
    finish_during: bool = False,
) -> AsyncIterator[tuple[Deployment, SimResult]]:
    """Deploy, run the month, wait until every box's outbox is empty; yields the live deployment and the result.

    ``during(dep, fleet)``: a coroutine run beside the fleet (fault injection); cancelled when the fleet is done,
    or with ``finish_during`` (a rollout) awaited to its end.
    """
    check_store_options(opts.store_url, opts.collectors)
    t0 = time.monotonic()
    month = opts.month or last_month(opts.timezone)
    bureau = demo_bureau(opts.boxes, opts.seed, serial_every=opts.serial_every, behaviours=opts.behaviours)
    plans = plan(bureau, month, Traffic(arrivals_per_hour=opts.arrivals_per_hour), opts.seed, opts.timezone, opts.days)
    n_serial = sum(w.transport == "serial" for w in bureau.windows)
    serve = "evalbox serve" if opts.collectors == 1 else f"{opts.collectors}× evalbox serve (shared 共享订阅)"
    kind = parse_store_url(opts.store_url).kind if opts.store_url else "sqlite"
    say(
        f"==> deploying 部署: {opts.broker}, {serve}, {kind} store 存储, {len(bureau.windows)} boxes 评价器"
        f" ({n_serial} on serial 串口), {len(bureau.officers)} officers 民警 in {len(bureau.units)} units 单位"
    )
    with cancelled_by_sigterm():
        async with Deployment(
            opts.workdir, bureau, web_listen=opts.web_listen, box_settings=opts.box_settings,
            store_url=opts.store_url, collectors=opts.collectors, broker=opts.broker,
        ) as dep:  # fmt: skip
            total = sum(len(p) for p in plans.values())
            say(f"==> simulating 模拟 {month}: {total} steps (sign-in, invites, ratings) on the real firmware")
            progress = Progress(f"month {month}", total)
            fleet = Fleet(
                dep.boxes,
                plans,
                invite_ms=opts.box_settings.invite_ms,
                min_interval_ms=opts.box_settings.min_interval_ms,
                on_step=progress.step,
            )
            chaos = asyncio.create_task(during(dep, fleet)) if during is not None else None
            try:
                await fleet.run()
            except BaseException:
                if chaos is not None:
                    chaos.cancel()
                raise
            finally:
                if chaos is not None:
                    if not finish_during:
                        chaos.cancel()
                    try:
                        await chaos
                    except asyncio.CancelledError:
                        pass
            if fleet.mismatches:
                raise EvalboxError("the firmware flagged presses unlike the plan: " + "; ".join(fleet.mismatches[:5]))
            say("==> waiting for every press to be stored and acknowledged 等待全部确认")
            left = await wait_drained(dep.boxes, drain_timeout)
            if left:
                raise EvalboxError(f"boxes still hold unacknowledged presses after {drain_timeout:.0f} s: {left}")
            done = [(r.at_ms, r.expect) for r in fleet.records if r.at_ms]
            done += [(at, e) for _, _, _, at, e in fleet.expired]
            events = check_events(fleet.records, fleet.expired, await stored_events(dep))
            result = SimResult(month, bureau, fleet, truth(done, opts.timezone), events, time.monotonic() - t0)
            (opts.workdir / "truth.json").write_text(
                json.dumps(result.truth_json(), ensure_ascii=False, indent=1) + "\n"
            )
            yield dep, result


def evalbox(dep: Deployment, *args: str, capture: bool = True) -> str:
    """Run an ``evalbox`` command against the deployment's config; its stdout."""
    proc = subprocess.run([*evalbox_command(), *args], capture_output=capture, text=True, cwd=dep.dir, timeout=300)
    if proc.returncode != 0:
        raise EvalboxError(f"evalbox {' '.join(args)} failed: {(proc.stderr or '').strip()}")
    return proc.stdout or ""


def report_json(dep: Deployment, month: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        evalbox(dep, "report", "--config", str(dep.config_path), "--month", month, "--format", "json")
    )
    return data


def verify_report(result: SimResult, report: dict[str, Any]) -> list[str]:
    return check_report(report, result.truth.get(result.month, {}))
