"""Benchmark: the smallest heap a box lives in, and the RAM each queued event costs.

    .venv/bin/python bench/heap.py [--online N] [--capacity N] [--lo KB] [--hi KB] [--step KB]

The box is the sim board compiled by mpy-cross (``tools/build_box.sh --sim``,
as deployed) on the MicroPython unix port (64-bit: objects take about twice
the bytes they take on a 32-bit MCU), talking to a real mosquitto. One
*lifecycle* (tests/firmware/lifecycle.py): boot, ``--online`` presses acked as
they come, presses with the broker gone until ``outbox full`` (``--capacity``
events), a power cut with the outbox full, a boot, the broker back and every
event delivered once. It passes when every step completes with no MemoryError
caught or raised and each identity is stored once.

``min_heap_kb``: the smallest ``-X heapsize`` (in ``--step`` KB) at which
the lifecycle passes, found by bisection between ``--lo`` and ``--hi``. The
search shortens the online part (500 presses by default, against the
acceptance test's 10,000): memory does not depend on how many presses were
acked, and the full offline outbox is kept.
``ram_per_queued_event_bytes``: the slope (least squares) of
``gc.mem_alloc()`` after ``gc.collect()`` over the outbox depth while it
fills, offline, at ``--hi`` (target ≈ 0). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.firmware.lifecycle import Lifecycle, LifecycleFailed, run_lifecycle  # noqa: E402
from tests.firmware.simbox import build_sim_firmware  # noqa: E402


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def attempt(build: pathlib.Path, kb: int, online: int, capacity: int) -> tuple[bool, Lifecycle | None, str]:
    with tempfile.TemporaryDirectory(prefix="evalbox-heap-") as tmp:
        t0 = time.monotonic()
        try:
            run = run_lifecycle(pathlib.Path(tmp), build, heap=f"{kb}k", online=online, capacity=capacity)
        except (LifecycleFailed, AssertionError) as exc:
            print(f"  {kb:4d} KB: fails ({str(exc).splitlines()[0][:120]}) [{time.monotonic() - t0:.0f} s]", flush=True)
            return False, None, str(exc)
        ok = not run.errors and run.stored == run.saved
        what = "passes" if ok else f"fails ({'; '.join(run.errors)[:120] or 'stored != saved'})"
        print(f"  {kb:4d} KB: {what} [{time.monotonic() - t0:.0f} s]", flush=True)
        return ok, run, ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--online", type=int, default=500, help="presses online in each lifecycle (default 500)")
    ap.add_argument("--capacity", type=int, default=2000, help="outbox capacity, filled offline (default 2000)")
    ap.add_argument("--lo", type=int, default=64, help="bisection floor in KB (assumed to fail; default 64)")
    ap.add_argument("--hi", type=int, default=160, help="bisection ceiling in KB (must pass; default 160)")
    ap.add_argument("--step", type=int, default=4, help="resolution in KB (default 4)")
    args = ap.parse_args()
    if not 0 < args.lo < args.hi or args.step <= 0 or args.online < 0 or args.capacity <= 0:
        ap.error("need 0 < --lo < --hi, --step > 0, --online >= 0, --capacity > 0")
    with tempfile.TemporaryDirectory(prefix="evalbox-heapfw-") as tmp:
        build = build_sim_firmware(pathlib.Path(tmp) / "build")
        print(f"lifecycle: {args.online} presses online, {args.capacity} offline until full, reset, flush")
        ok, top, why = attempt(build, args.hi, args.online, args.capacity)
        if not ok or top is None:
            print(f"the lifecycle fails at --hi {args.hi} KB: {why[:300]}")
            return 1
        lo, hi = args.lo, args.hi  # lo fails (assumed), hi passes
        while hi - lo > args.step:
            mid = (lo + hi) // 2 // args.step * args.step
            if mid <= lo:
                mid = lo + args.step
            ok, _run, _why = attempt(build, mid, args.online, args.capacity)
            if ok:
                hi = mid
            else:
                lo = mid
    per_event = slope(top.depth_mem)
    print(f"min heap: {hi} KB (bisection to {args.step} KB between {args.lo} and {args.hi})")
    print(f"at {args.hi} KB, mem_alloc by depth: {top.depth_mem}")
    print(
        f"mem_alloc (after gc.collect) offline: empty outbox {top.mem_empty} B, full ({args.capacity}) "
        f"{top.mem_full} B: {top.mem_full - top.mem_empty:+d} B; slope {per_event:.3f} B per queued event"
    )
    print(
        json.dumps(
            {
                "min_heap_kb": hi,
                "ram_per_queued_event_bytes": round(per_event, 3),
                "mem_alloc_empty_bytes": top.mem_empty,
                "mem_alloc_full_bytes": top.mem_full,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
