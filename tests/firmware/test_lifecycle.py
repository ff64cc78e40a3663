"""Acceptance: the box's RAM does not depend on how long it was offline (issue 14).

On the unix port, the sim box compiled by mpy-cross as deployed, in a 160 KB
heap: 10,000 presses online, presses offline until ``outbox full`` (2,000),
a reset with the outbox full, then the broker returns and everything is
delivered exactly once. No MemoryError anywhere, and the heap in use after a
collection differs by at most 4 KB between an empty and a full outbox.
"""

from __future__ import annotations

import pathlib

import pytest

from tests.firmware.lifecycle import run_lifecycle
from tests.firmware.simbox import build_sim_firmware


@pytest.fixture(scope="module")
def sim_build(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return build_sim_firmware(tmp_path_factory.mktemp("simfw") / "build")


def test_a_full_outbox_in_a_160k_heap(tmp_path: pathlib.Path, sim_build: pathlib.Path) -> None:
    run = run_lifecycle(tmp_path, sim_build, heap="160k", online=10_000, capacity=2000)
    print(
        f"heap 160k: {run.online} online, {run.offline} offline until full, {run.boots} boots; "
        f"mem_alloc online {run.mem_online} B, offline empty {run.mem_empty} B, full {run.mem_full} B; "
        f"depth/mem {run.depth_mem}; "
        f"stored {run.stored}, received {run.received}"
    )
    assert run.errors == [], run.errors
    assert run.offline == 2000
    assert run.saved == 12_000 and run.stored == 12_000  # each press once in the store, nothing extra
    assert run.boots == 2
    assert abs(run.mem_full - run.mem_empty) <= 4096, (run.mem_empty, run.mem_full)
