"""The box's life in a small heap: online, offline until full, reset while full, flush when the broker returns.

Used by tests/firmware/test_lifecycle.py (the acceptance run) and bench/heap.py
(the same run, shortened, at decreasing heap sizes). The box is the sim
board run from the mpy-cross tree (``tools/build_box.sh --sim``) under
``-X heapsize``; the broker is a real mosquitto and the "store" is the
``Acker`` (one row per identity, an ack per uplink, as the collector does
after its commit).
"""

from __future__ import annotations

import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

from tests.firmware.simbox import Acker, SimBox, box_config, wait_for
from tests.mosquitto import Mosquitto


class LifecycleFailed(AssertionError):
    """The box did not get through its life: which step, and what it said."""


@dataclass
class Lifecycle:
    """What one run saw."""

    heap: str
    online: int
    offline: int = 0  # presses saved offline before ``outbox_full``
    mem_online: int = 0  # gc.mem_alloc() after gc.collect(), online, outbox empty
    mem_empty: int = 0  # the same offline, outbox empty
    mem_full: int = 0  # the same offline, outbox full
    depth_mem: list[tuple[int, int]] = field(default_factory=list)  # (depth, mem_alloc) while filling
    stored: int = 0  # identities in the store at the end
    received: int = 0  # uplink events received, repeats included
    saved: int = 0  # identities the box answered a press with
    boots: int = 0
    errors: list[str] = field(default_factory=list)  # MemoryError counts, err fields, stderr lines
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each step


def _press(box: SimBox, ids: set[tuple[int, int]]) -> dict[str, Any]:
    r = box.cmd("press 1")
    if r.get("ok"):
        _d, b, s = r["id"]
        ids.add((b, s))
    return r


def _check_memory(box: SimBox, run: Lifecycle, step: str) -> dict[str, Any]:
    mem = box.cmd("mem")
    st = box.state()
    err = st.get("err") or ""
    if mem["errors"] or "MemoryError" in err:
        run.errors.append(f"{step}: {mem['errors']} MemoryError(s), err {err!r}")
    return mem


def _stderr(box: SimBox, run: Lifecycle) -> None:
    """A dead box's stderr: any traceback or MemoryError is a finding."""
    if box.proc is not None and box.proc.stderr is not None:
        for line in box.proc.stderr.read().splitlines():
            if "MemoryError" in line or "Traceback" in line:
                run.errors.append(f"stderr: {line[:200]}")


def run_lifecycle(
    tmp: pathlib.Path,
    build: pathlib.Path,
    heap: str = "160k",
    online: int = 10_000,
    capacity: int = 2000,
    samples: int = 8,
) -> Lifecycle:
    """Boot, ``online`` presses acked as they come, presses offline until ``outbox full``, reset, flush.

    Raises ``LifecycleFailed`` when a step does not complete (the box died,
    did not boot, did not flush); ``run.errors`` holds any MemoryError the box
    survived.
    """
    run = Lifecycle(heap=heap, online=online)
    users = {"box-1": "pw-box-1", "collector": "pw-collector"}
    acl = "user collector\ntopic readwrite evalbox/#\n\npattern readwrite evalbox/%u/#\n"
    saved: set[tuple[int, int]] = set()
    with Mosquitto(tmp / "broker", users=users, acl=acl) as broker:
        acker = Acker(broker.port)
        box = None
        try:
            wait_for(lambda: acker.client.is_connected(), 20, "acker connected")
            cfg = box_config(tmp, port=broker.port, flash_blocks=256, outbox_capacity=capacity, heartbeat_ms=5000)
            box = SimBox(tmp, cfg, build=build, heap=heap)
            try:
                box.start()
            except AssertionError as exc:
                raise LifecycleFailed(f"first boot: {exc}") from None
            run.boots += 1
            t0 = time.monotonic()
            wait_for(lambda: box.state()["online"], 30, "box online")
            # online: presses acked as they come (batches, so the box's outbox never nears full)
            done = 0
            while done < online:
                for _ in range(min(500, online - done)):
                    r = _press(box, saved)
                    if not r.get("ok"):
                        raise LifecycleFailed(f"online press {done}: {r}")
                    done += 1
                wait_for(lambda: box.state()["q"] == 0, 120, f"online presses acked ({done})")
            run.mem_online = _check_memory(box, run, "online")["alloc"]
            run.seconds["online"] = time.monotonic() - t0
            t0 = time.monotonic()
            # offline: the broker is gone; presses are kept until the outbox is full
            broker.stop()
            wait_for(lambda: not box.state()["online"], 30, "box sees the broker gone")
            time.sleep(0.5)  # the link's last buffers released
            run.mem_empty = _check_memory(box, run, "offline, outbox empty")["alloc"]
            run.depth_mem.append((0, run.mem_empty))
            step = max(1, capacity // samples)
            while True:
                r = _press(box, saved)
                if not r.get("ok"):
                    if r.get("err") != "outbox_full":
                        raise LifecycleFailed(f"offline press {run.offline}: {r}")
                    break
                run.offline += 1
                if run.offline % step == 0:
                    run.depth_mem.append((box.state()["q"], box.cmd("mem")["alloc"]))
                if run.offline > capacity + 10:
                    raise LifecycleFailed("the outbox took more than its capacity")
            run.seconds["offline"] = time.monotonic() - t0
            st = box.state()
            if not st["full"] or st["q"] != capacity:
                raise LifecycleFailed(f"outbox full expected with {capacity} events: {st}")
            run.mem_full = _check_memory(box, run, "outbox full")["alloc"]
            run.depth_mem.append((capacity, run.mem_full))
            # reset with the outbox full (a power cut), then boot again on the same flash
            box.kill()
            _stderr(box, run)
            t0 = time.monotonic()
            try:
                box.start()
            except AssertionError as exc:
                raise LifecycleFailed(f"boot with a full outbox: {exc}") from None
            run.boots += 1
            st = box.state()
            if st["q"] != capacity or not st["full"]:
                raise LifecycleFailed(f"after the reset the outbox holds {st['q']} (full {st['full']})")
            _check_memory(box, run, "boot with a full outbox")
            run.seconds["boot_full"] = time.monotonic() - t0
            # the broker returns: everything flushes, each identity once in the store
            t0 = time.monotonic()
            broker.start()
            wait_for(lambda: box.state()["q"] == 0, 300, "the full outbox flushed")
            run.seconds["flush"] = time.monotonic() - t0
            _check_memory(box, run, "after the flush")
            wait_for(lambda: saved <= acker.ids("box-1"), 30, "every saved press in the store")
            run.saved = len(saved)
            run.stored = len(acker.ids("box-1"))
            run.received = acker.received
            if acker.conflicts or acker.rejected:
                raise LifecycleFailed(f"conflicts {acker.conflicts[:3]}, rejected {acker.rejected[:3]}")
            box.quit()
        finally:
            if box is not None:
                box.kill()
                _stderr(box, run)
            acker.close()
    return run
