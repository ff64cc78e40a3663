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


async def _stored(dep: Deployment, device_id: str, want: tuple[str, str, str]) -> bool:
    """Whether the box's press is stored with this (officer, ticket, kind)."""
    con = sqlite3.connect(dep.dir / "evalbox.db")
    row = con.execute(
        "SELECT officer_id, ticket, kind FROM events WHERE device_id = ? AND type = 'press'", (device_id,)
    ).fetchone()
    con.close()
    return bool(row == want)


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

                await _until(
                    f"{box.device_id}'s rating stored with the ticket",
                    lambda: _stored(dep, box.device_id, (officer, ticket, "rated")),  # noqa: B023
                )
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


def test_window_pc_invites_over_http_with_a_token_and_the_rating_feeds_out(tmp_path: pathlib.Path) -> None:
    """The queue system's token (no shell): sign-in and invite over ``POST /api/box-commands`` reach the real
    firmware; the rating is stored with its ticket and exported in the 好差评 feed; another unit's token is refused."""
    import json

    import aiohttp

    from tests.mosquitto import free_port

    bureau = demo_bureau(2, seed=5, serial_every=2)
    listen = f"127.0.0.1:{free_port()}"

    async def run() -> None:
        async with Deployment(tmp_path / "run", bureau, web_listen=listen) as dep:
            cfg = ["--config", str(dep.config_path)]
            unit = bureau.windows[0].unit_id
            token = (await asyncio.to_thread(evalbox, dep, "token", "add", "queue", "--scope", "write:box-commands",
                                             "--unit", unit, *cfg)).strip()  # fmt: skip
            await asyncio.to_thread(evalbox, dep, "unit", "add", "U9", "--name", "其他所", *cfg)
            other = (await asyncio.to_thread(evalbox, dep, "token", "add", "other", "--scope", "write:box-commands",
                                             "--unit", "U9", *cfg)).strip()  # fmt: skip
            url = f"http://{listen}/api/box-commands"
            async with aiohttp.ClientSession() as http:

                async def send(tok: str, body: dict[str, str]) -> int:
                    async with http.post(url, json=body, headers={"Authorization": f"Bearer {tok}"}) as r:
                        return r.status

                for window in bureau.windows:
                    box = dep.boxes[window.device_id]
                    officer = window.shifts[0]
                    assert await send(other, {"device": box.device_id, "op": "signin", "officer": officer}) == 403
                    assert await send(token, {"device": box.device_id, "op": "signin", "officer": officer}) == 202

                    async def signed_in() -> bool:
                        return (await box.command("state")).get("officer") == officer  # noqa: B023

                    await _until(f"{box.device_id} signed in over HTTP", signed_in)
                    ticket = f"Q-{window.id}.9"
                    assert await send(token, {"device": box.device_id, "op": "invite", "ticket": ticket}) == 202

                    async def invite_open() -> bool:
                        return (await box.command("state")).get("invite") is not None  # noqa: B023

                    await _until(f"{box.device_id} invite open", invite_open)
                    assert (await box.command("press 1"))["ok"]

                    await _until(
                        f"{box.device_id}'s rating stored with the ticket",
                        lambda: _stored(dep, box.device_id, (officer, ticket, "rated")),  # noqa: B023
                    )
            con = sqlite3.connect(dep.dir / "evalbox.db")
            month = con.execute("SELECT month FROM events WHERE type = 'press' LIMIT 1").fetchone()[0]
            con.close()
            out = tmp_path / "feed.jsonl"
            await asyncio.to_thread(evalbox, dep, "feed", "export", "--month", month, "-o", str(out), *cfg)
            docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
            top = {w.device_id: "非常满意" if w.scale >= 4 else "满意" for w in bureau.windows}  # key 1 (docs/feed.md)
            assert sorted((d["device"], d["ticket"], d["officer"]["id"], d["level"]) for d in docs) == sorted(
                (w.device_id, f"Q-{w.id}.9", w.shifts[0], top[w.device_id]) for w in bureau.windows
            )
            assert all(d["channel"] == "窗口评价器" for d in docs)

    asyncio.run(run())
