"""ESP32 (ESP32-WROOM/DevKitC): keys, LEDs, buzzer on GPIO; Wi-Fi."""

from firmware.boards.pins import WifiBoard


class Esp32Board(WifiBoard):
    name = "esp32"
    # default wiring (override with "pins" in box.json)
    DEFAULT_PINS = {
        "keys": [32, 33, 25, 26, 27],
        "invite": 14,
        "led_ok": 18,
        "led_bad": 19,
        "led_busy": 21,
        "buzzer": 23,
    }
