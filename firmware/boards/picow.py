"""Raspberry Pi Pico W / Pico 2 W: keys, LEDs, buzzer on GPIO; Wi-Fi (CYW43). Wiring: ``firmware/ports.py``."""

from firmware.boards.wifi import WifiBoard


class PicoWBoard(WifiBoard):
    """A Pico W box: MQTT over Wi-Fi, or serial on UART0 (GP0 TX, GP1 RX by default)."""
