"""``evalbox serve`` and firmware updates: with no rollout process running, the always-on collectors ack a box's
trial (it commits), record every box's firmware state for the devices page, and alert on a rollback.

Real mosquitto, two real ``evalbox serve`` processes sharing the subscription (the scale-out of
docs/brokers.md) on one SQLite store, sim boxes on the real MicroPython that reset as a board does.
The release reaches the boxes through the rollout's own transfer code, stopped as soon as each box
has taken it (its state ``reboot``): from then on only the collectors are there to answer the trial.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import select
import sqlite3
import urllib.request
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from collector.cli import main
from collector.fleet.release import public_hex
from collector.fleet.transfer import FleetLink, trial_ack
from protocol import topics
from protocol.framing import encode_frame
from tests.collector.harness import Collector, make_store, stored, write_config
from tests.collector.test_serial_ingest import SerialBox
from tests.firmware.otabox import ResettingBox, release_from
from tests.firmware.simbox import KEY_HEX, box_config, wait_for
from tests.fleet.conftest import USERS
from tests.fleet.test_rollout import _db_rows, _store
from tests.mosquitto import Mosquitto, free_port

GOOD, BAD = "box-1", "box-2"


def _collector_config(tmp: pathlib.Path, base: pathlib.Path, name: str, web_port: int | None) -> pathlib.Path:
    d = tmp / name
    d.mkdir()
    text = base.read_text() + f'client_id = "{name}"\nshared_group = "g"\nkeepalive = 5\n'
    if web_port is not None:
        text += f'\n[web]\nlisten = "127.0.0.1:{web_port}"\nscan_interval_s = 1.0\ntoken_rate_per_min = 100000\n'
    conf = d / "evalbox.toml"
    conf.write_text(text)
    return conf


def _hand_over(port: int, device: str, data: bytes) -> None:
    """Send the release with the rollout's transfer and stop once the box has taken it (no trial ack from here)."""

    async def run() -> None:
        link = FleetLink("127.0.0.1", port, "collector", USERS["collector"], {device: bytes.fromhex(KEY_HEX)})
        await link.start()
        task = asyncio.create_task(link.update(device, data, timeout=300))
        try:
            for _ in range(3000):
                if link.states.get(device, {}).get("st") == "reboot" or task.done():
                    break
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await link.close()
        assert link.states.get(device, {}).get("st") == "reboot", link.states.get(device)

    asyncio.run(run())


def _devices(web_port: int, token: str) -> dict[str, dict[str, Any]]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{web_port}/api/devices", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return {d["id"]: d for d in json.loads(r.read())["devices"]}


def test_serve_commits_a_trial_and_alerts_a_rollback_without_a_rollout_process(
    tmp_path: pathlib.Path, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    key = Ed25519PrivateKey.generate()
    good = release_from(tmp_path, key, "1.1.0")
    stuck = ("self.self_test = self.board.self_test()", 'self.self_test = "keys: stuck"')
    bad = release_from(tmp_path, key, "1.2.0", edits={"firmware/app.py": stuck})
    base = _store(tmp_path, broker, [GOOD, BAD])
    web_port = free_port()
    cols = [
        Collector(_collector_config(tmp_path, base, "c0", web_port)).start(),
        Collector(_collector_config(tmp_path, base, "c1", None)).start(),
    ]
    assert main(["token", "add", "noc", "--scope", "read:devices", "--config", str(base)]) == 0
    token = capsys.readouterr().out.strip().splitlines()[0]
    boxes: dict[str, ResettingBox] = {}
    try:
        for d in (GOOD, BAD):
            cfg = box_config(
                tmp_path, d, port=broker.port, broker_password=USERS[d], min_interval_ms=0, flash_blocks=256,
                release_pubkey=public_hex(key), fw_trial_ms=20000,
            )  # fmt: skip
            boxes[d] = ResettingBox(tmp_path, cfg).start()
        for b in boxes.values():
            wait_for(lambda b=b: (b.try_cmd("state") or {}).get("online"), 30, "box online")
        _hand_over(broker.port, GOOD, good)
        _hand_over(broker.port, BAD, bad)

        def committed() -> dict[str, Any] | None:
            row = _devices(web_port, token)[GOOD]
            return row if (row["fw_version"], row["fw_state"], row["fw_trial"]) == ("1.1.0", "ok", 0) else None

        row = wait_for(committed, 90, "the good box committed its trial (acked by serve)")
        assert row["fw_slot"] == "a" and row["fw"] == "evalbox-fw 1.1.0", row
        assert boxes[GOOD].exits == [75]  # reset once into the new slot; no rollback after fw_trial_ms
        # A second ack for the same trial (another collector, a rollout): the box stays committed, no reset.
        dup = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dup-acker")
        dup.username_pw_set("collector", USERS["collector"])
        dup.connect("127.0.0.1", broker.port)
        dup.loop_start()
        dup.publish(topics.ack(GOOD), trial_ack(GOOD, bytes.fromhex(KEY_HEX)), qos=1).wait_for_publish(10)
        dup.loop_stop()
        dup.disconnect()

        def alerted() -> list[dict[str, Any]]:
            return _db_rows(tmp_path, "SELECT kind, subject, text_en FROM alerts WHERE kind = 'fw_rollback'")

        alerts = wait_for(alerted, 90, "the rollback alert")
        assert alerts == [
            {
                "kind": "fw_rollback",
                "subject": BAD,
                "text_en": f"box {BAD} rolled back from firmware 1.2.0 by itself: "
                "rolled back from 1.2.0: self-test: keys: stuck",
            }
        ]
        wait_for(lambda: boxes[BAD].exits == [75, 75], 30, "the bad box reset into the release and back out")
        bad_row = wait_for(
            lambda: (r := _devices(web_port, token)[BAD])["fw_state"] == "rolled_back" and r, 30, "rolled back shown"
        )
        assert bad_row["fw_trial"] == 0 and "self-test: keys: stuck" in bad_row["fw_why"], bad_row
        row = _devices(web_port, token)[GOOD]
        assert (row["fw_version"], row["fw_state"], boxes[GOOD].exits) == ("1.1.0", "ok", [75]), row
        for c in cols:
            assert c.terminate() == 0, c.stderr()
            assert "Traceback" not in c.stderr(), c.stderr()
    finally:
        for b in boxes.values():
            b.kill()
        for c in cols:
            c.kill()


def test_serve_acks_a_trial_and_alerts_a_rollback_over_serial(tmp_path: pathlib.Path) -> None:
    """The same over a serial line (a real pty; the box end speaks the protocol from CPython): the state is
    stored, the trial's ack comes back framed and signed on that line, a rollback raises the alert, a forged
    state is a counted rejection and changes nothing."""
    make_store(tmp_path / "store.db", ["SER-1"])
    box = SerialBox(tmp_path / "ttyBOX")
    col = Collector(write_config(tmp_path, port=None, serial=[str(tmp_path / "ttyBOX")])).start()
    empty_acks: list[dict[str, Any]] = []

    def send(key: bytes, **kw: Any) -> None:
        fields = {"ver": "1.1.0", "sl": "a", "tr": False, "st": "ok", "id": None, "off": 0, "sz": 0, "why": None}
        fields.update(kw)
        box.write(encode_frame(protocol.encode(protocol.make("fws", "SER-1", **fields), key)))

    def read() -> None:
        while select.select([box.master], [], [], 0)[0]:
            for payload in box.decoder.feed(os.read(box.master, 65536)):
                m = protocol.decode(payload, box.key, "SER-1")
                if m["t"] == "ack" and m["r"] == []:
                    empty_acks.append(m)

    def state() -> tuple[Any, ...] | None:
        with contextlib.closing(sqlite3.connect(tmp_path / "store.db")) as con:
            return con.execute("SELECT version, slot, trial, state, why FROM fw_box_state").fetchone()  # type: ignore[no-any-return]

    try:
        send(box.key, tr=True, st="trial")

        def acked() -> bool:
            read()
            return bool(empty_acks)

        wait_for(acked, 30, "the signed trial ack on the line")
        assert state() == ("1.1.0", "a", 1, "trial", None)
        send(b"\x01" * 32, st="ok")  # forged: not the box's key
        send(box.key, ver="1.0.0", sl="b", st="rolled_back", why="rolled back from 1.1.0: self-test: keys: stuck")
        wait_for(lambda: state() == ("1.0.0", "b", 0, "rolled_back", "rolled back from 1.1.0: self-test: keys: stuck"),
                 30, "the rollback stored")  # fmt: skip
        alerts = stored(tmp_path / "store.db", "SELECT COUNT(*) FROM alerts WHERE kind = 'fw_rollback'"
                        " AND key = 'fw_rollback:SER-1:1.1.0' AND subject = 'SER-1'")  # fmt: skip
        assert alerts == 1
        assert stored(tmp_path / "store.db", "SELECT COUNT(*) FROM rejected WHERE reason = 'bad_mac'") == 1
        read()
        assert len(empty_acks) == 1  # the rollback and the forgery are not acked
        assert col.terminate() == 0, col.stderr()
        assert "Traceback" not in col.stderr(), col.stderr()
    finally:
        col.kill()
        box.unplug()
