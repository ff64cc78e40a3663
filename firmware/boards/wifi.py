"""A board with a Wi-Fi station (ESP32, Pico W): connect, RSSI, NTP.

Every radio call here returns within a bounded time: ``network_up`` waits at
most ``WIFI_WAIT_MS`` (the link task beats between attempts, so a box with
no Wi-Fi never looks stalled to the watchdog supervisor), and NTP is asked
at most once per ``NTP_EVERY_MS``.
"""

import asyncio
import time

from firmware.boards.pins import PinBoard

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

WIFI_WAIT_MS = 4000  # one wait for the station to join; below the smallest watchdog (4000 + margin)
NTP_EVERY_MS = 600000  # ntptime blocks up to its 1 s socket timeout (and a DNS lookup): not often
UNIX_2000 = 946684800


class WifiBoard(PinBoard):
    """GPIO keys and lights plus the Wi-Fi station."""

    def __init__(self, cfg: "dict[str, Any]") -> None:
        super().__init__(cfg)
        import network

        self.wlan = network.WLAN(network.STA_IF)
        self._ntp_at: "Any" = None

    def rssi(self) -> "int | None":
        try:
            if self.wlan.isconnected():
                return int(self.wlan.status("rssi"))
        except (OSError, ValueError):
            pass
        return None

    def online(self) -> bool:
        try:
            return bool(self.wlan.isconnected())
        except OSError:
            return False

    async def network_up(self) -> None:
        """Join the configured network; return once joined or after ``WIFI_WAIT_MS``."""
        if self.online():
            return
        try:
            self.wlan.active(True)
            if self.cfg["wifi_ssid"]:
                self.wlan.connect(self.cfg["wifi_ssid"], self.cfg["wifi_password"] or "")
        except OSError:
            pass  # the driver may still be joining from the last call; wait and see
        waited = 0
        while waited < WIFI_WAIT_MS and not self.online():
            await asyncio.sleep_ms(100)
            waited += 100

    def ntp_ms(self) -> "int | None":
        """Wall time from NTP (Unix ms), or None; asks at most once per ``NTP_EVERY_MS``."""
        now = time.ticks_ms()
        if self._ntp_at is not None and time.ticks_diff(now, self._ntp_at) < NTP_EVERY_MS:
            return None
        self._ntp_at = now
        try:
            import ntptime

            secs = ntptime.time()  # type: ignore[no-untyped-call]  # unannotated stub; seconds since the port's epoch
            return int((secs + (UNIX_2000 if time.gmtime(0)[0] == 2000 else 0)) * 1000)
        except Exception:
            return None
