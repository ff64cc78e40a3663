"""Staged rollout of a signed release: a canary share of the boxes first, then the rest on ``--continue``.

``start`` records the rollout and splits the boxes (of one unit, or all of
the release's board... every registered box when the store does not know
boards) into the canary (``canary_pct`` per cent, at least one box, chosen
by a hash of release and box so each release picks a different canary) and
the rest. ``run_phase`` updates the phase's pending boxes, ``window`` at a
time, through ``collector.fleet.transfer``; each outcome is stored as it
comes. When the share of failed boxes (refused, rolled back, no answer) in
the phase passes ``max_failed_pct`` the rollout **halts**: no further box
is offered the release, and ``--continue`` refuses until a new release. A
rollback raises an alert (``fw_rollback``) for the supervisors.

The collector never signs: it relays the release file as built.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from collector.clock import now_ms
from collector.errors import EvalboxError
from collector.fleet.transfer import FleetLink, Outcome, release_id
from collector.store import Database
from firmware import release as box

FAILED = ("refused", "rolled_back", "timeout")


class RolloutError(EvalboxError):
    """A rollout that cannot start or continue (halted, nothing to do, unknown unit)."""


@dataclass
class Progress:
    """One rollout's counts by phase and state, for ``fleet status`` and the devices page."""

    id: int
    version: str
    state: str
    why: str | None
    counts: dict[tuple[str, str], int]

    def line(self) -> str:
        def n(phase: str, *states: str) -> int:
            return sum(self.counts.get((phase, s), 0) for s in states)

        parts = []
        for phase in ("canary", "rest"):
            total = sum(v for (p, _), v in self.counts.items() if p == phase)
            if total:
                parts.append(
                    f"{phase} {n(phase, 'ok')}/{total} ok, {n(phase, *FAILED)} failed, {n(phase, 'pending')} pending"
                )
        tail = f" — {self.why}" if self.why else ""
        return f"rollout {self.id} of {self.version}: {self.state}; " + "; ".join(parts) + tail


def manifest_of(data: bytes) -> dict[str, Any]:
    n = int.from_bytes(data[4:8], "little")
    m: dict[str, Any] = json.loads(data[box.HEADER : box.HEADER + n])
    return m


async def start(
    db: Database,
    release_path: str,
    data: bytes,
    *,
    canary_pct: int,
    unit: str | None,
    max_failed_pct: int,
) -> int:
    """Record a new rollout of ``data`` and split its boxes into canary and rest; the rollout's id."""
    m = manifest_of(data)
    rid = release_id(data)
    sql = "SELECT d.id FROM devices d JOIN windows w ON w.id = d.window_id"
    params: tuple[Any, ...] = ()
    if unit is not None:
        if await db.fetchone("SELECT 1 FROM units WHERE id = ?", (unit,)) is None:
            raise RolloutError(f"unit {unit!r} is not in the registry (单位不存在)")
        sql += " WHERE w.unit_id = ?"
        params = (unit,)
    devices = [r[0] for r in await db.fetch(sql + " ORDER BY d.id", params)]
    if not devices:
        raise RolloutError("no boxes to update" + (f" in unit {unit}" if unit else ""))
    order = sorted(devices, key=lambda d: hashlib.sha256(f"{rid}:{d}".encode()).digest())
    n_canary = min(len(order), max(1, math.ceil(len(order) * canary_pct / 100)))
    now = now_ms()
    async with db.transaction() as tx:
        row = await tx.fetchone(
            "INSERT INTO fw_rollouts (release_id, release_path, version, board, unit_id, canary_pct, max_failed_pct,"
            " state, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'canary', ?, ?) RETURNING id",
            (rid, release_path, m["version"], m["board"], unit, canary_pct, max_failed_pct, now, now),
        )
        assert row is not None
        rollout = int(row[0])
        await tx.executemany(
            "INSERT INTO fw_rollout_boxes (rollout_id, device_id, phase, state) VALUES (?, ?, ?, 'pending')",
            [(rollout, d, "canary" if i < n_canary else "rest") for i, d in enumerate(order)],
        )
    return rollout


async def latest(db: Database) -> dict[str, Any] | None:
    rows = (await db.fetch("SELECT * FROM fw_rollouts ORDER BY id DESC LIMIT 1")).dicts()
    return rows[0] if rows else None


async def progress(db: Database, rollout: int) -> Progress:
    r = (await db.fetch("SELECT * FROM fw_rollouts WHERE id = ?", (rollout,))).dicts()[0]
    counts: dict[tuple[str, str], int] = {}
    for phase, state, n in await db.fetch(
        "SELECT phase, state, COUNT(*) FROM fw_rollout_boxes WHERE rollout_id = ? GROUP BY phase, state", (rollout,)
    ):
        counts[(phase, state)] = int(n)
    return Progress(rollout, r["version"], r["state"], r["why"], counts)


async def record_state(db: Database, device: str, msg: dict[str, Any]) -> None:
    """A box's firmware state (its ``fws``) as the collector last heard it."""
    await db.execute(
        "INSERT INTO fw_box_state (device_id, version, slot, trial, state, received, size, why, updated_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, slot = excluded.slot,"
        " trial = excluded.trial, state = excluded.state, received = excluded.received, size = excluded.size,"
        " why = excluded.why, updated_ms = excluded.updated_ms",
        (device, msg.get("ver"), msg["sl"], int(bool(msg["tr"])), msg["st"], msg["off"], msg["sz"], msg.get("why"),
         now_ms()),
    )  # fmt: skip


Alert = Callable[[Database, str, str, str, int | None], Awaitable[None]]


async def run_phase(
    db: Database,
    link: FleetLink,
    rollout: int,
    data: bytes,
    *,
    window: int,
    timeout: float,
    on_rollback: Alert | None = None,
    report: Callable[[str], None] = print,
) -> str:
    """Update the pending boxes of the rollout's current phase; the rollout's state afterwards."""
    r = (await db.fetch("SELECT * FROM fw_rollouts WHERE id = ?", (rollout,))).dicts()[0]
    if r["state"] not in ("canary", "rest"):
        raise RolloutError(f"rollout {rollout} is {r['state']}: nothing to run")
    if release_id(data) != r["release_id"]:
        raise RolloutError("the release file changed since the rollout started (不是同一个发布包)")
    phase = r["state"]
    boxes = [row[0] for row in await db.fetch(
        "SELECT device_id FROM fw_rollout_boxes WHERE rollout_id = ? AND phase = ? AND state = 'pending'"
        " ORDER BY device_id", (rollout, phase))]  # fmt: skip
    total = int((await db.fetchone(
        "SELECT COUNT(*) FROM fw_rollout_boxes WHERE rollout_id = ? AND phase = ?", (rollout, phase)))[0])  # type: ignore[index]  # fmt: skip
    halted: list[str] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for d in boxes:
        queue.put_nowait(d)

    async def one(device: str) -> None:
        out: Outcome = await link.update(device, data, timeout)
        await db.execute(
            "UPDATE fw_rollout_boxes SET state = ?, why = ?, seconds = ?, updated_ms = ?"
            " WHERE rollout_id = ? AND device_id = ?",
            (out.state, out.why, round(out.seconds), now_ms(), rollout, device),
        )
        report(f"{device}: {out.state}" + (f" ({out.why})" if out.why else "") + f" in {out.seconds:.1f} s")
        if out.state == "rolled_back" and on_rollback is not None:
            await on_rollback(db, device, r["version"], out.why or "", rollout)
        failed = int((await db.fetchone(
            "SELECT COUNT(*) FROM fw_rollout_boxes WHERE rollout_id = ? AND phase = ? AND state IN (?, ?, ?)",
            (rollout, phase, *FAILED)))[0])  # type: ignore[index]  # fmt: skip
        if failed * 100 > r["max_failed_pct"] * total and not halted:
            halted.append(f"{failed} of {total} {phase} boxes failed (above {r['max_failed_pct']}%)")

    async def worker() -> None:
        while not halted:
            try:
                device = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(device)

    await asyncio.gather(*(worker() for _ in range(max(1, window))))
    if halted:
        state, why = "halted", halted[0]
    elif phase == "canary":
        state, why = "canary_done", None
    else:
        state, why = "done", None
    await db.execute(
        "UPDATE fw_rollouts SET state = ?, why = ?, updated_ms = ? WHERE id = ?", (state, why, now_ms(), rollout)
    )
    return state


async def continue_rollout(db: Database) -> int:
    """Move the latest rollout from its finished canary to the rest of the boxes; its id."""
    r = await latest(db)
    if r is None:
        raise RolloutError("no rollout to continue: start one with evalbox fleet update RELEASE")
    if r["state"] == "halted":
        raise RolloutError(f"rollout {r['id']} of {r['version']} halted ({r['why']}): fix and build a new release")
    if r["state"] == "canary":
        return int(r["id"])  # the canary did not finish (interrupted): run it again first
    if r["state"] != "canary_done" and r["state"] != "rest":
        raise RolloutError(f"rollout {r['id']} of {r['version']} is {r['state']}: nothing to continue")
    await db.execute("UPDATE fw_rollouts SET state = 'rest', updated_ms = ? WHERE id = ?", (now_ms(), r["id"]))
    return int(r["id"])
