"""bench/firmware.py still runs and ends with its JSON line (a short run; speed is not asserted here).

What is asserted is what the bench can get wrong without being slow: every key it
promises is there, and the RP2040 flash figures it reports come from the chip's
geometry (the shipped mount costs more erases than the small-commit mount the rp2
boards use, and no erase happens inside a press with the latter).
"""

from __future__ import annotations

import json
import subprocess
import sys

from firmware.config import SCHEMA
from tests.conftest import ROOT

KEYS = {
    "press_feedback_p50_ms",
    "press_feedback_p99_ms",
    "heap_growth_bytes",
    "erases_per_press",
    "erases_per_press_rp2",
    "erases_per_press_rp2_as_shipped",
    "page_programs_per_press_rp2",
    "erases_on_press_path_rp2",
    "press_feedback_p99_rp2_ms",
    "press_feedback_p50_rp2_ms",
    "press_feedback_p99_offline_ms",
    "offline_online_p99_ratio",
    "max_loop_stall_ms",
    "keys_missed_rp2",
    "rp2_cpu_scale",
}


def test_bench_runs_and_ends_with_the_json_line() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/firmware.py", "300"], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(last) == KEYS
    assert last["erases_per_press_rp2"] < last["erases_per_press_rp2_as_shipped"]
    assert last["erases_on_press_path_rp2"] == 0
    assert last["erases_per_press_rp2"] <= 0.1
    # the key's confirmation alone is debounce_ms: a figure below it means the key task was not in the loop
    assert last["press_feedback_p50_rp2_ms"] >= SCHEMA["debounce_ms"][1]
    assert last["rp2_cpu_scale"] > 1


def test_heap_bench_runs_and_ends_with_the_json_line() -> None:
    """bench/heap.py, one bisection step of a short lifecycle (its figures are not asserted here)."""
    proc = subprocess.run(
        [sys.executable, "bench/heap.py", "--online", "20", "--capacity", "100"]
        + ["--lo", "128", "--hi", "192", "--step", "32"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(last) == {"min_heap_kb", "ram_per_queued_event_bytes", "mem_alloc_empty_bytes", "mem_alloc_full_bytes"}
