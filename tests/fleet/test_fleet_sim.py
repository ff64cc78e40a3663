"""Issue 18's first acceptance: a rollout through a simulated fleet while its citizens keep pressing.

The whole installation of ``evalbox sim`` (``collector.sim``): a real mosquitto, ``evalbox serve`` on an
SQLite store, every box the real firmware (mpy-cross compiled) on the real ``micropython`` with the sim
board, driven through its planned month of sign-ins, invites and ratings; 2 of the 6 boxes are on serial
lines (ptys held by ``evalbox serve``, which relays their update between the broker and the line).
Beside it the operator runs ``evalbox fleet update`` as a separate process:

- first a release whose self-test fails, canary 20%: its canary boxes install it, fail their trial and
  boot their old firmware again by themselves; the rollout halts (exit 1), ``--continue`` refuses,
  no other box is offered it, a rollback alert is raised per box;
- then a good release, canary 20%, then ``--continue``: every box reports the new version committed.

Afterwards every event a box confirmed saved must be stored exactly once (the chaos check):
0 lost, 0 duplicated, 0 extra. ``bench/ota.py --fleet`` runs the same and prints the figures.
"""

from __future__ import annotations

import asyncio
import pathlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.fleet.release import public_hex
from collector.sim.deploy import BoxSettings
from collector.sim.rollout import run_rollout
from collector.sim.run import SimOptions
from tests.firmware.otabox import release_from

BROKEN = ("self.self_test = self.board.self_test()", 'self.self_test = "keys: stuck"')


def test_rollout_through_the_simulated_fleet_while_citizens_press(tmp_path: pathlib.Path) -> None:
    key = Ed25519PrivateKey.generate()
    bad = tmp_path / "evalbox-1.1.0-sim.evr"
    bad.write_bytes(release_from(tmp_path, key, "1.1.0", edits={"firmware/app.py": BROKEN}))
    good = tmp_path / "evalbox-1.1.1-sim.evr"
    good.write_bytes(release_from(tmp_path, key, "1.1.1"))
    opts = SimOptions(
        workdir=tmp_path / "fleet", boxes=6, serial_every=3, month="2026-10", days=12, arrivals_per_hour=9,
        seed=18, box_settings=BoxSettings(invite_ms=1000, min_interval_ms=120, release_pubkey=public_hex(key)),
    )  # fmt: skip
    r = asyncio.run(run_rollout(opts, good, bad_release=bad, canary_pct=20, say=lambda _: None))
    print(r.summary())
    print(r.json_line())
    # the failing release: 2 canary boxes (20% of 6, rounded up), both back on their old firmware, halted
    codes = [(c.args[2], c.code) for c in r.commands]
    assert codes == [(str(bad), 1), ("--continue", 2), (str(good), 0), ("--continue", 0)], codes
    assert "1.1.0: halted" in r.commands[0].out and "canary boxes failed" in r.commands[0].out, r.commands[0].out
    assert "halted" in r.commands[1].err, r.commands[1].err
    assert len(r.bad_offered) == 2 and r.rolled_back == r.bad_offered, (r.bad_offered, r.rolled_back)
    assert r.alerts == 2
    assert "canary 2/2 ok" in r.commands[2].out and "rest 0/4 ok, 0 failed, 4 pending" in r.commands[2].out
    assert "done; canary 2/2 ok" in r.commands[3].out and "rest 4/4 ok, 0 failed, 0 pending" in r.commands[3].out
    # every box on the good release, committed; the bad canary reset in, out, and into the good one
    assert r.updated == r.boxes == 6, r.states
    assert all(s["slot"] in ("a", "b") for s in r.states.values()), r.states
    for d, n in r.resets.items():
        assert n == (3 if d in r.bad_offered else 1), r.resets
    # citizens pressed throughout, and nothing they pressed was lost, stored twice or made up
    assert r.presses_during_rollout >= 300, r.presses_during_rollout
    assert (r.lost, r.duplicated, r.extra) == (0, 0, 0), r.examples
