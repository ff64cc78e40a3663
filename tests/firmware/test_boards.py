"""The real boards' firmware (esp32, picow, plain pico) booted from flash on the unix port.

Everything above ``machine`` is the deployed code: ``/main.py`` runs the
mpy-cross build from a littlefs image; only the silicon (pins, watchdog,
UART, radio, NTP) is a double that behaves as the port does. Keys are
pressed on their GPIO, lights read from theirs, the watchdog resets the
box when nobody feeds it, power cuts are SIGKILL.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import pytest

import protocol
from protocol import topics
from tests.firmware.boardbox import BoardBox, Radio
from tests.firmware.simbox import KEY, KEY_HEX, USERS, Acker, wait_for
from tests.firmware.windowpc import WindowPC
from tests.mosquitto import Mosquitto

SERIAL_BOARDS = ["esp32", "picow", "pico"]
WIFI_BOARDS = ["esp32", "picow"]


def serial_cfg(board: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "device_id": "box-1",
        "key_hex": KEY_HEX,
        "transport": "serial",
        "board": board,
        "min_interval_ms": 0,
        "resend_ms": 1500,
        "heartbeat_ms": 1000,
    }
    cfg.update(extra)
    return cfg


def wifi_cfg(board: str, port: int, **extra: Any) -> dict[str, Any]:
    cfg = serial_cfg(board, transport="mqtt", keepalive_s=2, backoff_max_ms=500, connect_timeout_ms=1000)
    cfg.update(
        broker_host="127.0.0.1",
        broker_port=port,
        broker_user="box-1",
        broker_password=USERS["box-1"],
        wifi_ssid="station-net",
        wifi_password="pw",
    )
    cfg.update(extra)
    return cfg


def last_status(pc: WindowPC) -> dict[str, Any]:
    with pc.lock:
        return pc.statuses[-1] if pc.statuses else {}


@pytest.mark.parametrize("board", SERIAL_BOARDS)
def test_serial_box_keys_acks_beyond_scale_and_power_cut(
    tmp_path: pathlib.Path, firmware_build: pathlib.Path, board: str
) -> None:
    box = BoardBox(tmp_path, serial_cfg(board), firmware_build)
    pc = WindowPC(box.master)
    try:
        box.start()
        st = wait_for(lambda: last_status(pc), 30, "first status frame")
        assert st["rst"] == "power_on" and st["st"] == "ok" and st["b"] == 1, st
        # the window PC signs the officer in and opens an invite; the citizen presses a key on its GPIO
        pc.send_command(1, "signin", o="A7")
        pc.send_command(2, "invite", tk="T-1")
        wait_for(lambda: box.level("led_busy"), 10, "invite light")
        box.press(1)
        wait_for(lambda: box.level("led_ok"), 10, "thank-you light")
        first = wait_for(pc.presses, 10, "press frame")[0]
        assert first["k"] == 1 and first["o"] == "A7" and first["tk"] == "T-1" and first["f"] == 0, first
        # a panel with more keys than the scale: key 3 on a 2-level box is counted, not taken, not fatal
        time.sleep(1.0)  # the thank-you light goes off
        box.press(3)
        time.sleep(0.3)
        assert box.lit() == []
        wait_for(lambda: "key 3 beyond the scale 1..2" in (last_status(pc).get("err") or ""), 15, "reported")
        box.press(2)
        wait_for(lambda: len(pc.presses()) == 2, 10, "the next press still taken")
        wait_for(lambda: last_status(pc).get("q") == 0, 15, "everything acked")
        # the PC stops acking; three presses wait on flash; the power goes
        pc.ack = False
        for k in (1, 2, 1):
            box.press(k)
        wait_for(lambda: len(pc.presses()) == 5, 10, "sent, not acked")
        box.kill()
        pc.ack = True
        box.start()
        wait_for(lambda: last_status(pc).get("b") == 2, 30, "second boot")
        wait_for(lambda: last_status(pc).get("q") == 0, 30, "resent after the cut and acked")
        assert sorted(p["k"] for p in pc.presses()) == [1, 1, 1, 2, 2]  # one row per identity
        assert {p["b"] for p in pc.presses()} == {1}
        assert box.resets == []  # nothing reset it but the power cut
        assert box.stats()["uart_overrun"] == 0
    finally:
        pc.stop = True
        box.close()


def test_pico_watchdog_above_the_port_limit_is_refused_before_anything_runs(
    tmp_path: pathlib.Path, firmware_build: pathlib.Path
) -> None:
    """The RP2040's watchdog stops at 8388 ms: such a box.json is refused at boot; the box sits in the REPL."""
    box = BoardBox(tmp_path, serial_cfg("picow", watchdog_ms=10000), firmware_build)
    try:
        box.start()
        wait_for(lambda: box.in_repl, 30, "back in the REPL")
        assert "config error: watchdog_ms: 10000 above the rp2040 watchdog limit of 8388 ms" in box.log()
        time.sleep(1.0)
        assert box.wdt_timeout is None and box.resets == [] and box.boots == 1  # no reset loop
    finally:
        box.close()


@pytest.mark.parametrize("board", ["pico", "esp32"])
def test_maintenance_path_invite_key_held_at_power_up(
    tmp_path: pathlib.Path, firmware_build: pathlib.Path, board: str
) -> None:
    box = BoardBox(tmp_path, serial_cfg(board), firmware_build)
    try:
        box.start(held=(box.pins["invite"],))
        wait_for(lambda: box.in_repl, 30, "the app skipped")
        assert box.wdt_timeout is None  # no watchdog armed: the REPL stays as long as needed
        assert sorted(box.lit()) == ["led_bad", "led_busy", "led_ok"]  # all lights: maintenance
        out = box.log() if not box.usb else box.read_line(5).decode()
        assert "maintenance mode" in out, out
    finally:
        box.close()


@pytest.mark.parametrize(("board", "wedge"), [("picow", "uart"), ("pico", "pins")])
def test_wedge_leads_to_watchdog_reset_and_clean_reboot_with_outbox_intact(
    tmp_path: pathlib.Path, firmware_build: pathlib.Path, board: str, wedge: str
) -> None:
    """``uart``: the sender task hangs on a transmitter that never drains (the loop runs on, the supervisor
    stops feeding); ``pins``: a driver call never returns (the whole loop stops). Both end in a watchdog
    reset, and the presses saved before it are delivered after the reboot."""
    box = BoardBox(tmp_path, serial_cfg(board, watchdog_ms=4000), firmware_build)
    pc = WindowPC(box.master, ack=False)
    try:
        box.start()
        wait_for(lambda: last_status(pc), 30, "first status")
        for k in (1, 2):
            box.press(k)
        wait_for(lambda: len(pc.presses()) == 2, 10, "two presses sent, not acked")
        box.hang(wedge)
        t0 = time.monotonic()
        wait_for(lambda: box.resets == ["watchdog"], 30, "watchdog reset")
        took = time.monotonic() - t0
        assert took < (4 + 4 + 3 if wedge == "uart" else 4 + 3), took  # stall limit + watchdog, or the watchdog
        pc.ack = True
        wait_for(lambda: last_status(pc).get("b") == 2, 30, "rebooted")
        assert last_status(pc)["rst"] == "watchdog"
        wait_for(lambda: last_status(pc).get("q") == 0, 30, "the two presses resent and acked")
        assert sorted(p["k"] for p in pc.presses()) == [1, 2]
        box.press(1)
        wait_for(lambda: len(pc.presses()) == 3, 10, "keys work after the reboot")
    finally:
        pc.stop = True
        box.close()


@pytest.mark.parametrize("board", WIFI_BOARDS)
def test_wifi_box_over_mqtt_outage_power_cut_and_wedged_radio(
    tmp_path: pathlib.Path, firmware_build: pathlib.Path, broker: Mosquitto, acker: Acker, board: str
) -> None:
    radio = Radio(broker.port)
    box = BoardBox(tmp_path, wifi_cfg(board, radio.port, watchdog_ms=4000, connect_timeout_ms=1000), firmware_build)
    pressed = 0
    try:
        box.start()
        st = wait_for(lambda: isinstance(acker.status.get("box-1"), dict) and acker.status["box-1"], 30, "online")
        assert st["rst"] == "power_on" and st["rssi"] == -58 and st["b"] == 1, st
        box.invite()
        wait_for(lambda: box.level("led_busy"), 10, "invite light")
        box.press(1)
        pressed += 1
        wait_for(lambda: box.level("led_ok"), 10, "thank-you light")
        wait_for(lambda: len(acker.ids("box-1")) == 2, 20, "invite and press acked")
        # the panel has 5 keys: key 3 is beyond the 2-level scale until the collector's config says 3 levels
        box.press(3)
        config = protocol.make(protocol.CONFIG, "box-1", cv=2, o=None, w=None, n=3, iw=10000, mi=0, g=True, hr=None)
        acker.publish(topics.config("box-1"), protocol.encode(config, KEY), retain=True)
        wait_for(lambda: acker.status["box-1"].get("cv") == 2, 30, "config applied (status cv)")
        assert "key 3 beyond the scale 1..2 ignored (1 so far)" in (acker.status["box-1"]["err"] or "")
        box.press(3)
        pressed += 1
        wait_for(lambda: [e["k"] for e in acker.events.values() if e["t"] == "press"] == [1, 3], 20, "key 3 taken")
        assert [e["n"] for e in acker.events.values() if e["t"] == "press"] == [2, 3]
        # the Wi-Fi goes: presses are saved and lit at once, the broker publishes the Will
        box.wifi(False)
        radio.set("refuse")
        wait_for(lambda: acker.status.get("box-1") == "offline", 30, "Last Will")
        for k in (2, 1, 2):
            time.sleep(0.9)  # the previous light goes off
            box.press(k)
            pressed += 1
            wait_for(lambda: box.lit() == ["led_ok"], 2, "light while offline")
        box.kill()  # and the power, with three presses only on flash
        box.start()
        box.press(1)
        pressed += 1
        box.wifi(True)
        radio.set("pass")
        wait_for(lambda: acker.status.get("box-1", {}) != "offline" and acker.status["box-1"]["b"] == 2, 30, "back")
        wait_for(lambda: len([e for e in acker.events.values() if e["t"] == "press"]) == pressed, 30, "flushed")
        assert acker.conflicts == [] and acker.rejected == []
        # the radio driver wedges (a stuck CYW43 bus): the watchdog resets the box, which comes back
        box.hang("wlan")
        wait_for(lambda: box.resets == ["watchdog"], 30, "watchdog reset")
        wait_for(lambda: isinstance(acker.status.get("box-1"), dict) and acker.status["box-1"]["b"] == 3, 30, "boot 3")
        assert acker.status["box-1"]["rst"] == "watchdog"
        box.press(2)
        pressed += 1
        wait_for(lambda: len([e for e in acker.events.values() if e["t"] == "press"]) == pressed, 30, "pressed after")
        assert acker.conflicts == []
    finally:
        box.close()
        radio.close()
