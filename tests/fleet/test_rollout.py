"""Staged rollout: ``evalbox fleet update`` against sim boxes on the real MicroPython and a real mosquitto.

The store is a real SQLite file; the boxes are registered in it with their
keys. A CPython acker plays the collector's ingest (stores each event once,
acks after the "commit"), so the chaos check — every press stored exactly
once — runs while the rollout resets the boxes one after another.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.cli import main
from collector.fleet.release import public_hex
from collector.store import connect
from tests.firmware.otabox import ResettingBox, release_from
from tests.firmware.simbox import KEY_HEX, Acker, box_config, wait_for
from tests.fleet.conftest import BOXES, USERS
from tests.mosquitto import Mosquitto


@pytest.fixture
def acker(broker: Mosquitto) -> Any:
    a = Acker(broker.port)
    a.client.username_pw_set("collector", USERS["collector"])
    wait_for(lambda: a.client.is_connected(), 20, "acker connected")
    yield a
    a.close()


def _store(tmp: pathlib.Path, broker: Mosquitto, boxes: list[str] = BOXES) -> pathlib.Path:
    db_path = tmp / "evalbox.db"

    async def seed() -> None:
        async with connect(f"sqlite:///{db_path}") as db:
            await db.execute("INSERT INTO units (id, name) VALUES ('U1', '城关派出所')")
            for i, d in enumerate(boxes):
                await db.execute("INSERT INTO windows (id, unit_id, name) VALUES (?, 'U1', ?)", (f"W{i}", f"{i}号窗"))
                sql = "INSERT INTO devices (id, window_id, key_hex, created_ms) VALUES (?, ?, ?, 0)"
                await db.execute(sql, (d, f"W{i}", KEY_HEX))

    asyncio.run(seed())
    conf = tmp / "evalbox.toml"
    conf.write_text(
        f'[store]\nurl = "sqlite:///{db_path}"\n\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'username = "collector"\npassword = "{USERS["collector"]}"\n'
    )
    return conf


class Citizens:
    """Presses on every box, every 100 ms each, through their resets; the ids taken per box."""

    def __init__(self, boxes: dict[str, ResettingBox]) -> None:
        self.boxes = boxes
        self.ids: dict[str, set[tuple[int, int]]] = {d: set() for d in boxes}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(0.1):
            n += 1
            for d, box in self.boxes.items():
                r = box.try_cmd(f"press {1 + n % 2}")
                if r is not None and r.get("ok"):
                    self.ids[d].add((r["id"][1], r["id"][2]))

    def finish(self) -> dict[str, set[tuple[int, int]]]:
        self.stop.set()
        self.thread.join(10)
        return self.ids


def _db_rows(tmp: pathlib.Path, sql: str) -> list[dict[str, Any]]:
    async def q() -> list[dict[str, Any]]:
        async with connect(f"sqlite:///{tmp / 'evalbox.db'}") as db:
            return (await db.fetch(sql)).dicts()

    return asyncio.run(q())


def test_canary_then_all_while_citizens_press(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker, capsys: pytest.CaptureFixture[str]
) -> None:
    key = Ed25519PrivateKey.generate()
    rel = tmp_path / "evalbox-1.1.0-sim.evr"
    rel.write_bytes(release_from(tmp_path, key, "1.1.0", min_version="1.1.0"))
    conf = _store(tmp_path, broker)
    boxes = {}
    for d in BOXES:
        cfg = box_config(
            tmp_path, d, port=broker.port, broker_password=USERS[d], min_interval_ms=0, flash_blocks=256,
            release_pubkey=public_hex(key), fw_trial_ms=60000,
        )  # fmt: skip
        boxes[d] = ResettingBox(tmp_path, cfg).start()
    try:
        for b in boxes.values():
            wait_for(lambda b=b: (b.try_cmd("state") or {}).get("online"), 30, "box online")
        citizens = Citizens(boxes)
        assert main(["fleet", "update", str(rel), "--canary", "25%", "--window", "2", "--config", str(conf)]) == 0
        out = capsys.readouterr().out
        assert "canary 1/1 ok" in out and "rest 0/3 ok, 0 failed, 3 pending" in out, out
        canary = [d for d, b in boxes.items() if b.exits]
        assert len(canary) == 1 and boxes[canary[0]].exits == [75]
        assert main(["fleet", "update", "--continue", "--window", "2", "--config", str(conf)]) == 0
        out = capsys.readouterr().out
        assert "rollout 1 of 1.1.0: done; canary 1/1 ok" in out and "rest 3/3 ok, 0 failed, 0 pending" in out, out
        assert all(b.exits == [75] for b in boxes.values())
        assert main(["fleet", "status", "--config", str(conf)]) == 0
        out = capsys.readouterr().out
        for d in BOXES:
            assert any(line.split()[:5] == [d, "1.1.0", "a", "no", "ok"] for line in out.splitlines()), out
        pressed = citizens.finish()
        for d, b in boxes.items():
            wait_for(lambda b=b: (b.try_cmd("state") or {}).get("q") == 0, 60, f"{d} outbox drained")
        for d in BOXES:
            assert len(pressed[d]) > 10 and pressed[d] <= acker.ids(d), d  # 0 lost
        assert acker.conflicts == [] and acker.rejected == []  # 0 duplicated
        for d in BOXES:
            st = acker.status[d]
            assert isinstance(st, dict) and st["fw"] == "evalbox-fw 1.1.0", st
    finally:
        for b in boxes.values():
            b.kill()


def test_canary_failure_halts_the_rollout_and_raises_an_alert(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker, capsys: pytest.CaptureFixture[str]
) -> None:
    key = Ed25519PrivateKey.generate()
    rel = tmp_path / "evalbox-1.2.0-sim.evr"
    bad = ("self.self_test = self.board.self_test()", 'self.self_test = "keys: stuck"')
    rel.write_bytes(release_from(tmp_path, key, "1.2.0", edits={"firmware/app.py": bad}))
    conf = _store(tmp_path, broker, BOXES[:2])
    boxes = {}
    for d in BOXES[:2]:
        cfg = box_config(
            tmp_path, d, port=broker.port, broker_password=USERS[d], min_interval_ms=0, flash_blocks=256,
            release_pubkey=public_hex(key),
        )  # fmt: skip
        boxes[d] = ResettingBox(tmp_path, cfg).start()
    try:
        for b in boxes.values():
            wait_for(lambda b=b: (b.try_cmd("state") or {}).get("online"), 30, "box online")
        assert main(["fleet", "update", str(rel), "--canary", "25%", "--config", str(conf)]) == 1
        out = capsys.readouterr().out
        assert "halted" in out and "1 of 1 canary boxes failed" in out, out
        assert "rolled_back (rolled back from 1.2.0: self-test: keys: stuck)" in out, out
        canary = [d for d, b in boxes.items() if b.exits]
        assert len(canary) == 1 and boxes[canary[0]].exits == [75, 75]  # in, and back out by itself
        alerts = _db_rows(tmp_path, "SELECT kind, subject, text_en FROM alerts")
        assert alerts == [
            {
                "kind": "fw_rollback",
                "subject": canary[0],
                "text_en": f"box {canary[0]} rolled back from firmware 1.2.0 by itself: "
                "rolled back from 1.2.0: self-test: keys: stuck",
            }
        ]
        assert main(["fleet", "update", "--continue", "--config", str(conf)]) != 0
        err = capsys.readouterr().err
        assert "halted" in err, err
        rows = _db_rows(tmp_path, "SELECT device_id, phase, state FROM fw_rollout_boxes WHERE phase = 'rest'")
        assert [r["state"] for r in rows] == ["pending"]  # the other box was never offered the release
    finally:
        for b in boxes.values():
            b.kill()
