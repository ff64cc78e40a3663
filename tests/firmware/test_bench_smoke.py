"""bench/firmware.py still runs (a short run; its figures are not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_runs_and_ends_with_the_json_line() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/firmware.py", "300"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(last) == {"press_feedback_p50_ms", "press_feedback_p99_ms", "heap_growth_bytes", "erases_per_press"}


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
