"""Raspberry Pi Pico W: keys, LEDs, buzzer on GPIO; Wi-Fi (CYW43)."""

from firmware.boards.pins import WifiBoard


class PicoWBoard(WifiBoard):
    name = "picow"
    # default wiring (override with "pins" in box.json)
    DEFAULT_PINS = {"keys": [2, 3, 4, 5, 6], "invite": 7, "led_ok": 10, "led_bad": 11, "led_busy": 12, "buzzer": 13}
