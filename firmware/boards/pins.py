"""Shared code of the real boards: keys on GPIO with debounce, LEDs, buzzer, watchdog.

Pins come from the config's ``pins`` object (defaults per board):
``keys`` (list, level 1 first), ``invite``, ``led_ok``, ``led_bad``,
``led_busy`` and ``buzzer`` (or null). Keys are active-low with pull-ups.
"""

import asyncio
import time

import machine

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

DEBOUNCE_MS = 50
POLL_MS = 10
FEEDBACK_MS = 800

_RESET_NAMES = {
    getattr(machine, "PWRON_RESET", -1): "power_on",
    getattr(machine, "HARD_RESET", -2): "hard",
    getattr(machine, "WDT_RESET", -3): "watchdog",
    getattr(machine, "DEEPSLEEP_RESET", -4): "deepsleep",
    getattr(machine, "SOFT_RESET", -5): "soft",
}


class PinBoard:
    """GPIO keys and lights; subclasses add the radio."""

    name = "pins"
    DEFAULT_PINS: "dict[str, Any]" = {}

    def __init__(self, cfg: "dict[str, Any]") -> None:
        self.cfg = cfg
        pins = dict(self.DEFAULT_PINS)
        pins.update(cfg["pins"] or {})
        self.pins = pins
        self.keys = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in pins["keys"]]
        self.invite_key = machine.Pin(pins["invite"], machine.Pin.IN, machine.Pin.PULL_UP)
        self.leds: "dict[str, Any]" = {}
        for name in ("led_ok", "led_bad", "led_busy"):
            if pins.get(name) is not None:
                self.leds[name] = machine.Pin(pins[name], machine.Pin.OUT, value=0)
        self.buzzer = machine.Pin(pins["buzzer"], machine.Pin.OUT, value=0) if pins.get("buzzer") is not None else None
        self.wdt: "Any" = None
        self._off_at: "Any" = None
        self.full = False

    def mount_flash(self) -> str:
        return ""  # MicroPython mounts the internal littlefs at / on boot

    def self_test(self) -> str:
        stuck = [str(n + 1) for n, k in enumerate(self.keys) if k.value() == 0]
        if stuck:
            return "key %s stuck down" % ",".join(stuck)
        if self.invite_key.value() == 0:
            return "invite key stuck down"
        try:
            import os

            os.statvfs("/")
        except OSError as exc:
            return "flash: %s" % exc
        for led in self.leds.values():  # a blink the installer can see
            led.value(1)
        time.sleep_ms(200)
        for led in self.leds.values():
            led.value(0)
        return "ok"

    def _light(self, name: str) -> None:
        for n, led in self.leds.items():
            led.value(1 if n == name else 0)
        if self.buzzer is not None:
            self.buzzer.value(1)
        self._off_at = time.ticks_add(time.ticks_ms(), FEEDBACK_MS)

    def feedback(self, kind: str, k: int) -> None:
        if kind == "full":
            self._light("led_bad")
        elif kind == "invite":
            self._light("led_busy")
        else:
            self._light("led_ok")

    def show_full(self, full: bool) -> None:
        self.full = full

    def feed_watchdog(self) -> None:
        if self.wdt is None:
            self.wdt = machine.WDT(timeout=30000)
        self.wdt.feed()

    def reset_cause(self) -> str:
        return _RESET_NAMES.get(machine.reset_cause(), "unknown")

    def rssi(self) -> "int | None":
        return None

    async def network_up(self) -> None:
        return None

    def open_serial(self) -> "Any":
        u = self.cfg["uart"] or {}
        uart = machine.UART(u.get("id", 1), baudrate=u.get("baud", 115200), tx=u.get("tx"), rx=u.get("rx"))
        return UartStream(uart)

    async def run(self, app: "Any") -> None:
        """Poll the keys; a press counts once it has been down for ``DEBOUNCE_MS``."""
        pins = self.keys + [self.invite_key]
        down_since: "list[Any]" = [None] * len(pins)
        fired = [False] * len(pins)
        while True:
            app.beats["keys"] = time.ticks_ms()
            now = time.ticks_ms()
            for n, pin in enumerate(pins):
                if pin.value() == 0:
                    if down_since[n] is None:
                        down_since[n] = now
                    elif not fired[n] and time.ticks_diff(now, down_since[n]) >= DEBOUNCE_MS:
                        fired[n] = True
                        if n == len(pins) - 1:
                            app.on_invite(None)
                        else:
                            app.on_key(n + 1)
                else:
                    down_since[n] = None
                    fired[n] = False
            if self._off_at is not None and time.ticks_diff(now, self._off_at) >= 0:
                self._off_at = None
                for name, led in self.leds.items():
                    led.value(1 if name == "led_bad" and self.full else 0)
                if self.buzzer is not None:
                    self.buzzer.value(0)
            await asyncio.sleep_ms(POLL_MS)


class UartStream:
    """A UART as the serial data channel: async readline, write."""

    def __init__(self, uart: "Any") -> None:
        self.uart = uart
        self.reader = asyncio.StreamReader(uart)
        self.writer = asyncio.StreamWriter(uart, {})

    async def readline(self) -> bytes:
        line: bytes = await self.reader.readline()
        return line

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class WifiBoard(PinBoard):
    """A board with a Wi-Fi station: connect, RSSI, NTP."""

    def __init__(self, cfg: "dict[str, Any]") -> None:
        super().__init__(cfg)
        import network

        self.wlan = network.WLAN(network.STA_IF)
        self.ntp_done = False

    def rssi(self) -> "int | None":
        try:
            if self.wlan.isconnected():
                return int(self.wlan.status("rssi"))
        except (OSError, ValueError):
            pass
        return None

    async def network_up(self) -> None:
        if self.wlan.isconnected():
            return
        self.wlan.active(True)
        if self.cfg["wifi_ssid"]:
            self.wlan.connect(self.cfg["wifi_ssid"], self.cfg["wifi_password"] or "")
        for _ in range(150):  # up to 15 s; keys stay live meanwhile
            if self.wlan.isconnected():
                break
            await asyncio.sleep_ms(100)

    def ntp_ms(self) -> "int | None":
        """Wall time from NTP (Unix ms), or None."""
        try:
            import ntptime

            secs = ntptime.time()  # type: ignore[no-untyped-call]  # unannotated stub; seconds since the port's epoch (2000 on most ports)
            return int((secs + (946684800 if time.gmtime(0)[0] == 2000 else 0)) * 1000)
        except Exception:
            return None
