"""bench/ota.py still runs end to end (its figures are not asserted here: speed belongs to the bench)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_runs_and_ends_with_the_json_line() -> None:
    proc = subprocess.run([sys.executable, "bench/ota.py"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"ed25519_verify_ms", "ed25519_verify_ms_cpython", "ed25519_max_slice_ms", "release_verify_s"} <= set(last)
    assert {"update_s", "presses_lost_during_update", "presses_duplicated_during_update"} <= set(last)
    assert last["presses_lost_during_update"] == 0 and last["presses_duplicated_during_update"] == 0, last
    assert last["presses_during_update"] > 0 and last["update_chunks"] > 0, last
    figures = {k: v for k, v in last.items() if not k.startswith("presses_")}
    assert all(isinstance(v, int | float) and v > 0 for v in figures.values()), last
