"""The window PC's commands reach the real firmware over MQTT and over serial: sign-in, an invite with its ticket."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
import time

from collector.sim.deploy import Deployment
from collector.sim.run import evalbox
from collector.sim.traffic import demo_bureau


async def _until(what: str, check, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_signin_and_invite_with_ticket_from_the_window_pc(tmp_path: pathlib.Path) -> None:
    bureau = demo_bureau(2, seed=3, serial_every=2)  # BOX-001 on MQTT, BOX-002 on serial
    assert [w.transport for w in bureau.windows] == ["mqtt", "serial"]

    async def run() -> None:
        async with Deployment(tmp_path / "run", bureau) as dep:
            for window in bureau.windows:
                box = dep.boxes[window.device_id]
                officer = window.shifts[0]
                cfg = ["--config", str(dep.config_path)]
                await asyncio.to_thread(evalbox, dep, "box-cmd", box.device_id, "signin", "--officer", officer, *cfg)

                async def signed_in() -> bool:
                    return (await box.command("state")).get("officer") == officer  # noqa: B023

                await _until(f"{box.device_id} signed in", signed_in)
                ticket = f"T-{window.id}.7"
                await asyncio.to_thread(evalbox, dep, "box-cmd", box.device_id, "invite", "--ticket", ticket, *cfg)

                async def invite_open() -> bool:
                    return (await box.command("state")).get("invite") is not None  # noqa: B023

                await _until(f"{box.device_id} invite open", invite_open)
                press = await box.command("press 1")
                assert press["ok"] and press["f"] == 0 and press["i"] is not None

                async def stored() -> bool:
                    con = sqlite3.connect(dep.dir / "evalbox.db")
                    row = con.execute(
                        "SELECT officer_id, ticket, kind FROM events WHERE device_id = ? AND type = 'press'",
                        (box.device_id,),  # noqa: B023
                    ).fetchone()
                    con.close()
                    return row == (officer, ticket, "rated")  # noqa: B023

                await _until(f"{box.device_id}'s rating stored with the ticket", stored)
            con = sqlite3.connect(dep.dir / "evalbox.db")
            via = dict(con.execute("SELECT device_id, via FROM box_commands WHERE op = 'invite'").fetchall())
            con.close()
            assert via["BOX-001"] == "mqtt" and via["BOX-002"].startswith("serial")

    asyncio.run(run())


def test_box_cmd_refuses_bad_input(tmp_path: pathlib.Path) -> None:
    import subprocess
    import sys

    exe = str(pathlib.Path(sys.executable).parent / "evalbox")
    db = ["--db", str(tmp_path / "x.db")]
    for args, msg in (
        (["BOX-1", "signin"], "needs --officer"),
        (["BOX-1", "invite", "--ticket", "bad ticket!"], "box-cmd"),
        (["BOX-1", "signout", "--ticket", "T1"], "--ticket goes with invite only"),
        (["BOX-1", "fly"], "invalid choice"),
    ):
        proc = subprocess.run([exe, "box-cmd", *args, *db], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and msg in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
