"""ESP32 (ESP32-WROOM/DevKitC): keys, LEDs, buzzer on GPIO; Wi-Fi. Wiring: ``firmware/ports.py``."""

from firmware.boards.wifi import WifiBoard


class Esp32Board(WifiBoard):
    """An ESP32 box: MQTT over Wi-Fi, or serial on UART2 (GPIO17 TX, GPIO16 RX by default)."""
