"""Raspberry Pi Pico / Pico 2 without radio: keys, LEDs, buzzer on GPIO; serial over USB.

The cheapest counter box: the window PC talks to it over the USB CDC port
(or a UART of its own, ``uart: {"id": 0}``). Nothing on this board's path
imports ``network``: MicroPython's plain-Pico firmware has none.
"""

from firmware.boards.pins import PinBoard


class PicoBoard(PinBoard):
    """A plain Pico box: serial transport only (config validation refuses mqtt)."""
