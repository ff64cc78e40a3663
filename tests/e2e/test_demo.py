"""End to end: real firmware boxes (MQTT and serial), real mosquitto, the collector, the report, the web page."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import sys
import urllib.request

from collector.sim.deploy import free_port
from collector.sim.run import SimOptions, report_json, simulate, verify_report
from collector.store import connect


def test_report_equals_the_simulators_ground_truth_officer_by_officer(tmp_path: pathlib.Path) -> None:
    web = f"127.0.0.1:{free_port()}"

    async def run() -> None:
        opts = SimOptions(workdir=tmp_path / "run", boxes=4, serial_every=2, month="2026-10", days=2,
                          arrivals_per_hour=3, seed=11, web_listen=web)  # fmt: skip
        async with simulate(opts, say=lambda _: None) as (dep, result):
            assert result.events.ok, result.events
            assert result.events.expected > 100
            assert {w.transport for w in result.bureau.windows} == {"mqtt", "serial"}
            report = report_json(dep, "2026-10")
            assert verify_report(result, report) == []
            truth = result.truth["2026-10"]
            lines = {line["officer"]: line for line in report["officers"]}
            assert set(truth) <= set(lines)
            for officer, t in truth.items():
                line = lines[officer]
                assert (line["rated"], line["satisfied"], line["invites"]) == (t.rated, t.satisfied, t.invites)
                assert line["unsatisfied"] == t.rated - t.satisfied
            assert sum(t.rated for t in truth.values()) == report["total"]["rated"]
            # The web page is served by the same collector process.
            with urllib.request.urlopen(f"http://{web}/healthz", timeout=10) as resp:
                assert resp.status == 200
            with urllib.request.urlopen(f"http://{web}/", timeout=10) as resp:  # anonymous: sent to login
                assert "/login" in resp.url

    asyncio.run(run())


def test_officers_filling_in_walk_aways_run_on_the_real_boxes(tmp_path: pathlib.Path) -> None:
    """``behaviours``: the second unit's filler presses 满意 for half the walk-aways a few seconds after the
    invite; the boxes store each as the rating of its invite (no single press looks wrong), at the officer's
    habitual delay, and the report still equals the truth."""

    async def run() -> None:
        opts = SimOptions(workdir=tmp_path / "run", boxes=8, serial_every=0, month="2026-10", days=2,
                          arrivals_per_hour=4, seed=5, behaviours=True)  # fmt: skip
        async with simulate(opts, say=lambda _: None) as (dep, result):
            assert result.events.ok, result.events
            assert verify_report(result, report_json(dep, "2026-10")) == []
            filler = next(o for o in result.bureau.officers if o.behaviour.fill == 0.5)
            habit = filler.behaviour.fill_delay_s * 1000
            async with connect(dep.store_url) as db:
                delays = [
                    int(r[0])
                    for r in await db.fetch(
                        "SELECT e.press_ms - i.opened_ms FROM events e JOIN invites i ON i.device_id = e.device_id"
                        " AND i.boot = e.boot AND i.invite_no = e.invite_no"
                        " WHERE e.type = 'press' AND e.kind = 'rated' AND e.officer_id = ?",
                        (filler.id,),
                    )
                ]
            planned = [
                s.at_ms - prev.at_ms
                for steps in result.fleet.plans.values()
                for prev, s in zip(steps, steps[1:], strict=False)
                if s.op == "press" and s.expect[0].officer == filler.id and s.expect[0].kind == "rated"
            ]
            # every rating stored at the delay it was pressed (give or take the box's clock moving on meanwhile)
            assert len(delays) == len(planned)
            assert all(abs(a - b) <= 200 for a, b in zip(sorted(delays), sorted(planned), strict=True))
            assert [d for d in delays if abs(d - habit) <= 1500]  # the habit's presses among them

    asyncio.run(run())


def test_demo_command_runs_a_month_prints_the_report_and_checks_it(tmp_path: pathlib.Path) -> None:
    evalbox = pathlib.Path(sys.executable).parent / "evalbox"
    proc = subprocess.run(
        [str(evalbox), "demo", "--boxes", "3", "--days", "1", "--month", "2026-09", "--no-wait",
         "--workdir", str(tmp_path / "demo"), "--web", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "lost 0, duplicated 0, extra 0" in proc.stdout
    assert "窗口民警满意率月通报 2026-09" in proc.stdout
    assert "报表与真值一致" in proc.stdout
    truth = json.loads((tmp_path / "demo" / "truth.json").read_text())
    assert sum(t["rated"] for t in truth["2026-09"].values()) > 0
