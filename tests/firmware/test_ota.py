"""Firmware updates on the box: A/B slots, rollback, power cuts (real MicroPython)."""

from __future__ import annotations

import pathlib
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.fleet.release import ReleaseSpec, pack, public_hex
from tests.conftest import run_micropython

HERE = "tests/firmware"
BUILT = "2026-12-01T00:00:00Z"


def small_releases(tmp: pathlib.Path, key: Ed25519PrivateKey) -> list[pathlib.Path]:
    """Three small signed sim releases, 1.1.0 to 1.3.0 (small: the cut harness replays the run per cut)."""
    out = []
    for i, v in enumerate(["1.1.0", "1.2.0", "1.3.0"]):
        files = [
            ("firmware/__init__.py", b""),
            ("firmware/x.py", (b"X = %d\n" % i) * (200 + 100 * i)),
            ("protocol/__init__.py", b"# p\n"),
        ]
        p = tmp / f"r{i}.evr"
        p.write_bytes(pack(files, ReleaseSpec(version=v, board="sim", min_version="1.1.0"), key, mpy=6, built=BUILT))
        out.append(p)
    return out


def test_boot_pointer_decisions() -> None:
    proc = run_micropython(f"{HERE}/mp_slots.py", timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "slots: 8 passed", proc.stdout


def test_power_cut_at_every_write_step_of_three_updates(tmp_path: pathlib.Path) -> None:
    key = Ed25519PrivateKey.generate()
    rels = small_releases(tmp_path, key)
    proc = run_micropython(f"{HERE}/mp_ota_powercut.py", public_hex(key), *map(str, rels), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "baseline: runs 1.3.0 in slot a, floor 1.1.0" in out, out
    steps = int(re.search(r"write steps in the run: (\d+)", out).group(1))  # type: ignore[union-attr]
    assert steps > 300, out  # three transfers, installs, switches and commits: hundreds of cut points
    assert out.strip().splitlines()[-1] == f"cut points: {2 * steps} tried, 0 failures", out
    # the cuts landed on every stage: some boxes came back on each version, some on the base install
    booted = re.search(r"booted after a cut: (.*)", out).group(1)  # type: ignore[union-attr]
    for v in ("1.1.0", "1.2.0", "1.3.0", "base"):
        assert v + " x" in booted, booted
