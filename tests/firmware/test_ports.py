"""A box.json the board's port cannot run is refused by ``firmware.config.validate``, naming key and limit.

The same function runs on CPython (the collector's ``evalbox device add``) and on the box; the
board tests show the box itself refusing one at boot.
"""

from __future__ import annotations

from typing import Any

import pytest

from firmware import ports
from firmware.config import ConfigError, validate

BASE = {"device_id": "box-1", "key_hex": "00" * 32, "transport": "serial"}
MQTT = {"transport": "mqtt", "broker_host": "10.0.0.2", "broker_port": 1883, "broker_user": "b", "broker_password": "p"}


def _check(**raw: Any) -> dict[str, Any]:
    return validate(dict(BASE, **raw))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"board": "esp32", "pins": {"keys": [32, 40]}}, "pins.keys[1]: GPIO40 does not exist on the esp32"),
        ({"board": "picow", "pins": {"keys": [2, 30]}}, "GPIO30 does not exist on the rp2040 (GPIO 0-29)"),
        ({"board": "esp32", "pins": {"keys": [34, 33]}}, "pins.keys[0]: GPIO34 has no pull-up on the esp32"),
        ({"board": "esp32", "pins": {"keys": [32, 33], "invite": 39}}, "pins.invite: GPIO39 has no pull-up"),
        ({"board": "esp32", "pins": {"keys": [32, 33], "led_ok": 36}}, "pins.led_ok: GPIO36 is input-only"),
        ({"board": "esp32", "pins": {"keys": [32, 9]}}, "pins.keys[1]: GPIO9 is wired to the SPI flash"),
        ({"board": "esp32", "pins": {"keys": [0, 33]}}, "pins.keys[0]: GPIO0 is a strapping pin"),
        ({"board": "picow", "pins": {"keys": [2, 24]}}, "pins.keys[1]: GPIO24 is wired to the CYW43 radio's data line"),
        ({"board": "pico", "pins": {"keys": [2, 25]}}, "pins.keys[1]: GPIO25 is the on-board LED"),
        ({"board": "picow", "pins": {"keys": [2, 3], "led_ok": 3}}, "pins.led_ok: GPIO3 is also pins.keys[1]"),
        ({"board": "picow", "uart": {"id": 1, "tx": 4, "rx": 5}}, "uart.rx: GPIO5 is also pins.keys[3]"),
        ({"board": "picow", "uart": {"id": 1, "tx": 5, "rx": 9}}, "uart.tx: GP5 cannot be UART1 TX on the rp2040"),
        ({"board": "picow", "uart": {"id": 0, "rxbuf": 256}}, "uart.rxbuf: 256 outside 1024..32766 bytes"),
        ({"board": "esp32", "uart": {"id": 0, "tx": 1, "rx": 3}}, "uart.id: 0 is not a data UART on the esp32"),
        ({"board": "picow", "watchdog_ms": 10000}, "watchdog_ms: 10000 above the rp2040 watchdog limit of 8388 ms"),
        ({"board": "pico2", "watchdog_ms": 16778}, "watchdog_ms: 16778 above the rp2350 watchdog limit of 16777 ms"),
        ({"board": "esp32", "watchdog_ms": 900}, "watchdog_ms: 900 below 4000 ms"),
        (dict(MQTT, board="picow", connect_timeout_ms=7000), "connect_timeout_ms: 7000 above watchdog_ms - 2000"),
        (dict(MQTT, board="pico"), "transport: mqtt needs a radio; the pico board has none"),
        ({"board": "pico", "pins": {"keys": [2]}}, "pins.keys: [2] (a list of 2 to 5 GPIO numbers"),
        ({"board": "pico", "debounce_ms": 1}, "debounce_ms: 1 outside 2..100"),
        ({"board": "esp32", "debounce_ms": 250}, "debounce_ms: 250 outside 2..100"),
        ({"board": "pico", "debounce_ms": "10"}, "debounce_ms: bad value '10' (int expected)"),
        ({"board": "pi-zero"}, "board: 'pi-zero' is not a board (sim, esp32, pico, pico2, pico2w, picow)"),
    ],
)
def test_refused_naming_key_and_limit(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _check(**raw)
    assert message in str(err.value), str(err.value)


@pytest.mark.parametrize("board", sorted(ports.BOARDS))
def test_every_board_default_wiring_is_valid_and_collision_free(board: str) -> None:
    transport = MQTT if ports.BOARDS[board]["wifi"] else {}
    for raw in ({"board": board}, dict(transport, board=board)):
        cfg = _check(**raw)
        pins = ports.board_pins(board, cfg["pins"])
        used = pins["keys"] + [pins[n] for n in ("invite", *ports.OUTPUTS) if pins.get(n) is not None]
        uart = ports.board_uart(board, None)
        used += [uart[n] for n in ("tx", "rx") if n in uart]
        assert len(used) == len(set(used)), used  # no GPIO serves twice (the old GP4/GP5 UART on keys 3 and 4)


def test_the_largest_watchdogs_each_port_takes_pass() -> None:
    assert _check(board="picow", watchdog_ms=8388)["watchdog_ms"] == 8388
    assert _check(board="pico2w", watchdog_ms=16777)["watchdog_ms"] == 16777
    assert _check(board="esp32", watchdog_ms=60000)["watchdog_ms"] == 60000
    assert _check(board="pico", pins={"keys": [2, 3], "led_ok": 25})["pins"]["led_ok"] == 25
