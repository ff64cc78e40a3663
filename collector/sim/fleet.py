"""Drive a fleet of simulated boxes through their planned traffic and record the ground truth.

Each box runs its ``Step``s in order on its own task. Before a step the box's
wall clock is set to the step's virtual time (``clock MS``), so a month of
traffic runs in minutes while every event carries its place in the month.
Invite windows and the minimum interval are real time on the box (its
monotonic ticks), so the driver paces presses to match what a citizen at the
counter would do: a rating right after the invite, the next citizen after
the minimum interval, an unsolicited press only once no invite is open.

Every reply is checked against the step's expectation (a rating must come
back unflagged, a repeat press flagged as misuse, …); disagreements are
collected in ``mismatches``. ``records`` is the ground truth: the identity
and expectation of every event the boxes confirmed saved, and ``expired`` the
invites left to run out (their ``unrated`` events are made by the box).

A power cut asked for with ``request_cut`` happens at the box's next safe
point (between customers, no invite open), as a plug pulled between two
citizens would: the open session is not what this tests; the outbox is.

A box may also reset by itself (a firmware update installing or rolling
back; it waits for a moment between two citizens). A step the reset cut off
was not carried out: the driver waits for the box to boot again, puts back
what the box forgot (as after a power cut) and sends the step again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from collector.sim.boxes import SimBox, SimError, SimReset
from collector.sim.traffic import Expect, Step

FLAG_UNSOLICITED, FLAG_REPEAT, FLAG_TOO_FAST = 1, 2, 4


@dataclasses.dataclass(frozen=True)
class Record:
    """One event a box confirmed saved."""

    device_id: str
    boot: int
    seq: int
    at_ms: int
    expect: Expect
    invite_no: int | None = None


@dataclasses.dataclass
class FleetStats:
    steps: int = 0
    steps_done: int = 0
    power_cuts: int = 0
    resets: int = 0  # steps the box's own reset cut off (sent again once it was back)
    restarts_ms: list[float] = dataclasses.field(default_factory=list)


class Fleet:
    """Runs ``plans`` (steps per device id) on ``boxes``; see the module docstring."""

    def __init__(
        self,
        boxes: Mapping[str, SimBox],
        plans: Mapping[str, list[Step]],
        *,
        invite_ms: int,
        min_interval_ms: int,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        self.boxes = dict(boxes)
        self.plans = dict(plans)
        self.invite_s = invite_ms / 1000
        self.min_interval_s = min_interval_ms / 1000
        self.margin_s = 0.25
        self.records: list[Record] = []
        self.expired: list[tuple[str, int, int, int, Expect]] = []  # (device, boot, invite_no, at_ms, expect)
        self.mismatches: list[str] = []
        self.stats = FleetStats(steps=sum(len(p) for p in self.plans.values()))
        self._on_step = on_step
        self._cut_wanted: dict[str, asyncio.Event] = {d: asyncio.Event() for d in self.boxes}
        self._officer: dict[str, str | None] = {d: None for d in self.boxes}
        self._last_invite_no: dict[str, tuple[int, int] | None] = {}  # (boot, invite no.)

    def request_cut(self, device_id: str) -> None:
        """Cut the box's power at its next safe point."""
        self._cut_wanted[device_id].set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for device_id in self.plans:
                tg.create_task(self._run_box(device_id))

    async def _run_box(self, device_id: str) -> None:
        box = self.boxes[device_id]
        last_invite = last_press = -1e9
        for step in self.plans[device_id]:
            now = time.monotonic()
            invite_open = now - last_invite < self.invite_s + self.margin_s
            if self._cut_wanted[device_id].is_set() and step.op in ("invite", "signin", "signout") and not invite_open:
                await self._power_cut(box)
            if step.op == "expire" or (step.op == "press" and step.expect[0].kind == "unsolicited"):
                await _sleep_until(last_invite + self.invite_s + self.margin_s)
            if step.op == "press" and step.expect[0].kind != "misuse":
                await _sleep_until(last_press + self.min_interval_s + 0.05)
            if step.op == "expire":
                # The box closes the window on its own ticks: wait until it says no invite is open,
                # so the ``unrated`` event is saved before anything else happens to the box.
                while (await box.command("state")).get("invite") is not None:
                    await asyncio.sleep(0.05)
                inv = self._last_invite_no.get(device_id)
                if inv is not None:
                    self.expired.append((device_id, inv[0], inv[1], step.at_ms, step.expect[0]))
                self._step_done()
                continue
            line = step.op if step.arg is None else f"{step.op} {step.arg}"
            reply = await self._send_step(box, step.at_ms, line)
            if step.op == "press":
                last_press = time.monotonic()
                self._check_press(device_id, step, reply)
            elif step.op == "invite":
                last_invite = time.monotonic()
                i = reply.get("i")
                self._last_invite_no[device_id] = (int(reply["id"][1]), int(i)) if i is not None else None
            elif step.op == "signin":
                self._officer[device_id] = step.arg
            elif step.op == "signout":
                self._officer[device_id] = None
            b, s = int(reply["id"][1]), int(reply["id"][2])
            self.records.append(Record(device_id, b, s, step.at_ms, step.expect[0], reply.get("i")))
            self._step_done()

    def _step_done(self) -> None:
        self.stats.steps_done += 1
        if self._on_step is not None:
            self._on_step()

    async def _send_step(self, box: SimBox, at_ms: int, line: str) -> dict[str, Any]:
        """The step's clock and command; after a reset that cut them off, once more on the new boot."""
        while True:
            try:
                await self._ok(box, f"clock {at_ms}", retry=False)
                return await self._ok(box, line, retry=False)
            except SimReset:
                self.stats.resets += 1
                await box.wait_up()
                await self._after_boot(box)

    async def _ok(self, box: SimBox, line: str, *, retry: bool = True) -> dict[str, Any]:
        reply = await box.command(line, retry=retry)
        if not reply.get("ok"):
            raise SimError(f"{box.device_id}: {line!r} refused: {reply.get('err')}")
        return reply

    def _check_press(self, device_id: str, step: Step, reply: Mapping[str, object]) -> None:
        f = int(str(reply.get("f", 0)))
        kind = step.expect[0].kind
        if kind == "rated":
            ok = f & (FLAG_UNSOLICITED | FLAG_REPEAT | FLAG_TOO_FAST) == 0 and reply.get("i") is not None
        elif kind == "misuse":
            ok = bool(f & (FLAG_REPEAT | FLAG_TOO_FAST))
        else:
            ok = bool(f & FLAG_UNSOLICITED) and not f & (FLAG_REPEAT | FLAG_TOO_FAST)
        if not ok:
            self.mismatches.append(f"{device_id} at {step.at_ms}: expected {kind}, box flagged f={f}")

    async def _power_cut(self, box: SimBox) -> None:
        self._cut_wanted[box.device_id].clear()
        box.power_cut()
        self.stats.power_cuts += 1
        await asyncio.sleep(random.uniform(0.05, 0.5))  # dark for a moment
        t = time.monotonic()
        await box.start()
        self.stats.restarts_ms.append((time.monotonic() - t) * 1000)
        await self._after_boot(box)

    async def _after_boot(self, box: SimBox) -> None:
        """What a new boot forgot, put back: the officer on duty signs in again if the box lost them."""
        officer = self._officer[box.device_id]
        state = await box.command("state")
        if officer is not None and state.get("officer") != officer:
            # The box forgot who was on duty: the officer signs in again (an event like any other).
            reply = await self._ok(box, f"signin {officer}")
            b, s = int(reply["id"][1]), int(reply["id"][2])
            self.records.append(Record(box.device_id, b, s, 0, Expect("signin", officer)))


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def wait_drained(boxes: Mapping[str, SimBox], timeout: float) -> dict[str, int]:
    """Wait until every running box's outbox is empty (all acked); the depths left when the time ran out."""
    deadline = time.monotonic() + timeout
    depth: dict[str, int] = {}
    while True:
        for device_id, box in boxes.items():
            if box.running:
                with_state = await box.command("flush")
                depth[device_id] = int(str(with_state.get("q", 0)))
        if not any(depth.values()) or time.monotonic() > deadline:
            return {d: q for d, q in depth.items() if q}
        await asyncio.sleep(0.5)
