"""A firmware rollout through a simulated fleet while its citizens keep pressing.

The fleet runs its planned traffic (``collector.sim.run.simulate``) on the
real firmware, with ``evalbox serve`` and the broker of the deployment; beside
it, the operator's commands run as they would on the collector's machine:

1. (optional) ``evalbox fleet update BAD --canary P%``: a release whose
   self-test fails. Its canary boxes install it, fail their trial and roll
   back by themselves; the rollout halts (exit status 1) and
   ``--continue`` refuses; no other box is offered it.
2. ``evalbox fleet update GOOD --canary P%`` (exit 0, canary done), then
   ``evalbox fleet update --continue``: every box on the new version.

Boxes reset to install (and to roll back) between two citizens; the
driver sends again whatever a reset cut off (``collector.sim.fleet``).
Afterwards the run waits for every outbox to drain and checks the stored
events against the ground truth, as the chaos run does: 0 lost,
0 duplicated, 0 extra. Each box's firmware state comes from the store
(``fw_box_state``, written by the collectors from the boxes' reports).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import time
from typing import Any

from collector.errors import EvalboxError
from collector.fleet.rollout import manifest_of
from collector.sim.deploy import Deployment, evalbox_command
from collector.sim.fleet import Fleet
from collector.sim.run import SimOptions, simulate
from collector.store import connect

PRESSES = ("rated", "unsolicited", "misuse")


@dataclasses.dataclass
class Command:
    """One ``evalbox fleet`` command the operator ran: its arguments, exit status, output and seconds."""

    args: list[str]
    code: int
    out: str
    err: str
    seconds: float


@dataclasses.dataclass
class RolloutSimResult:
    version: str
    bad_version: str | None
    boxes: int
    presses: int
    presses_during_rollout: int  # presses the citizens made between the first update command and the last's end
    lost: int
    duplicated: int
    extra: int
    commands: list[Command]
    states: dict[str, dict[str, Any]]  # device -> fw_box_state row
    resets: dict[str, int]  # device -> resets of its own (install, rollback)
    rolled_back: list[str]  # boxes that rolled the bad release back
    bad_offered: list[str]  # boxes the bad rollout offered its release
    alerts: int  # fw_rollback alerts raised
    steps_resent: int  # driver steps a reset cut off and sent again
    seconds: float
    examples: list[str]

    @property
    def updated(self) -> int:
        """Boxes that report the new version committed (not in trial)."""
        return sum(1 for s in self.states.values() if (s["version"], s["state"], s["trial"]) == (self.version, "ok", 0))

    def seconds_of(self, *start: str) -> float | None:
        """The seconds of the last command that began with ``start`` and succeeded."""
        done = [c for c in self.commands if c.args[: len(start)] == list(start) and c.code == 0]
        return done[-1].seconds if done else None

    @property
    def ok(self) -> bool:
        return self.lost == self.duplicated == self.extra == 0 and self.updated == self.boxes

    def summary(self) -> str:
        lines = [f"rollout 升级 of {self.version} to {self.boxes} boxes 评价器 while citizens pressed 群众持续评价:"]
        for c in self.commands:
            lines.append(f"  evalbox {' '.join(c.args)}: exit {c.code} in {c.seconds:.1f} s")
        if self.bad_version is not None:
            lines.append(f"  bad release 故障版本 {self.bad_version}: offered to {len(self.bad_offered)} "
                         f"canary box(es), {len(self.rolled_back)} rolled back by themselves 自动回滚, "
                         f"{self.alerts} alert(s)")  # fmt: skip
        lines.append(f"  {self.updated}/{self.boxes} boxes on {self.version} committed 已确认; resets "
                     f"{sum(self.resets.values())}; steps resent after a reset {self.steps_resent}")  # fmt: skip
        lines.append(f"  {self.presses} presses ({self.presses_during_rollout} during the rollout 升级期间): "
                     f"lost 丢失 {self.lost}, duplicated 重复 {self.duplicated}, extra 多余 {self.extra}"
                     f" ({self.seconds:.0f} s)")  # fmt: skip
        return "\n".join(lines)

    def json_line(self) -> str:
        return json.dumps({
            "boxes": self.boxes, "boxes_updated": self.updated, "presses": self.presses,
            "presses_during_rollout": self.presses_during_rollout, "lost": self.lost, "duplicated": self.duplicated,
            "extra": self.extra, "canary_s": _round(_canary_s(self.commands)),
            "rest_s": _round(self.seconds_of("fleet", "update", "--continue")),
            "bad_rolled_back": len(self.rolled_back), "bad_offered": len(self.bad_offered),
        })  # fmt: skip


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _canary_s(commands: list[Command]) -> float | None:
    """The good release's canary: the last ``fleet update RELEASE`` that succeeded."""
    starts = [c for c in commands if c.args[:2] == ["fleet", "update"] and c.args[2] != "--continue" and c.code == 0]
    return starts[-1].seconds if starts else None


async def _evalbox(dep: Deployment, *args: str) -> Command:
    t = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *evalbox_command(), *args, "--config", str(dep.config_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=dep.dir,
    )  # fmt: skip
    out, err = await proc.communicate()
    return Command(list(args), proc.returncode or 0, out.decode(), err.decode(), time.monotonic() - t)


async def _all_online(dep: Deployment, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for device, box in dep.boxes.items():
        while not (await box.command("state")).get("online"):
            if time.monotonic() > deadline:
                raise EvalboxError(f"{device}: not online after {timeout:.0f} s")
            await asyncio.sleep(0.2)


async def run_rollout(
    opts: SimOptions,
    release: pathlib.Path,
    *,
    bad_release: pathlib.Path | None = None,
    canary_pct: int = 25,
    window: int = 4,
    say: Any = print,
) -> RolloutSimResult:
    """Simulate ``opts``'s fleet and roll ``bad_release`` (if any) then ``release`` out meanwhile; the figures.

    ``opts.box_settings.release_pubkey`` must be the key the releases are signed with. The rollout reaches the
    boxes through the broker; those on serial lines through the ``evalbox serve`` that holds their line.
    """
    if opts.box_settings.release_pubkey is None:
        raise EvalboxError("the boxes need the release key: BoxSettings(release_pubkey=...)")
    version = manifest_of(release.read_bytes())["version"]
    bad_version = manifest_of(bad_release.read_bytes())["version"] if bad_release is not None else None
    commands: list[Command] = []
    during: list[int] = []  # how many records the fleet had when the first command started, when the last ended

    async def run(dep: Deployment, *args: str) -> Command:
        c = await _evalbox(dep, *args)
        commands.append(c)
        say(f"==> evalbox {' '.join(args)}: exit {c.code} ({c.seconds:.1f} s)\n" + c.out.strip())
        return c

    async def operator(dep: Deployment, fleet: Fleet) -> None:
        await _all_online(dep)
        during.append(len(fleet.records))
        pct = f"{canary_pct}%"
        if bad_release is not None:
            c = await run(dep, "fleet", "update", str(bad_release), "--canary", pct, "--window", str(window))
            if c.code != 1 or "halted" not in c.out:
                raise EvalboxError(f"the rollout of the failing release did not halt: exit {c.code}\n{c.out}{c.err}")
            c = await run(dep, "fleet", "update", "--continue")
            if c.code == 0:
                raise EvalboxError("--continue went on with a halted rollout")
        c = await run(dep, "fleet", "update", str(release), "--canary", pct, "--window", str(window))
        if c.code != 0:
            raise EvalboxError(f"the canary of {version} failed: exit {c.code}\n{c.out}{c.err}")
        c = await run(dep, "fleet", "update", "--continue", "--window", str(window))
        if c.code != 0:
            raise EvalboxError(f"the rest of the rollout of {version} failed: exit {c.code}\n{c.out}{c.err}")
        during.append(len(fleet.records))

    async with simulate(opts, during=operator, say=say, drain_timeout=600, finish_during=True) as (dep, result):
        async with connect(dep.store_url, base=dep.dir, migrate=False) as db:
            rows = (await db.fetch("SELECT device_id, version, slot, trial, state, why FROM fw_box_state")).dicts()
            bad_rows = (await db.fetch(
                "SELECT b.device_id, b.state FROM fw_rollout_boxes b JOIN fw_rollouts r ON r.id = b.rollout_id"
                " WHERE r.version = ? AND b.state <> 'pending'", (bad_version,))).dicts()  # fmt: skip
            alerts = int((await db.fetchone("SELECT COUNT(*) FROM alerts WHERE kind = 'fw_rollback'"))[0])  # type: ignore[index]
        records = result.fleet.records
        presses = sum(1 for r in records if r.expect.kind in PRESSES)
        during_presses = sum(1 for r in records[during[0] : during[1]] if r.expect.kind in PRESSES)
        ev = result.events
        return RolloutSimResult(
            version=version, bad_version=bad_version, boxes=len(dep.boxes), presses=presses,
            presses_during_rollout=during_presses, lost=ev.lost, duplicated=ev.duplicated, extra=ev.extra,
            commands=commands, states={r["device_id"]: r for r in rows},
            resets={d: b.resets for d, b in dep.boxes.items()},
            rolled_back=sorted(r["device_id"] for r in bad_rows if r["state"] == "rolled_back"),
            bad_offered=sorted(r["device_id"] for r in bad_rows), alerts=alerts,
            steps_resent=result.fleet.stats.resets, seconds=result.seconds, examples=ev.examples,
        )  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover
