"""Test double of MicroPython's ``network`` (a Wi-Fi station) for the esp32 and Pico W ports.

A board without a radio (the plain Pico) has no ``network`` module at all:
importing it raises ``ImportError`` as MicroPython's RPI_PICO build does.
The bench pulls the Wi-Fi (``wifi`` op), sets the RSSI, or wedges the radio
driver (``hang_wlan``: the next WLAN call never returns, as a stuck CYW43 bus
does). Joining takes ``JOIN_MS`` and succeeds only while the bench's Wi-Fi
is up and the SSID is the bench's.
"""

import time

import hwlink

CFG = hwlink.CFG
if not CFG.get("wifi"):
    raise ImportError("no module named 'network'")

STA_IF = 0
AP_IF = 1
if CFG["port"] == "esp32":  # ports/esp32/modnetwork.h (WIFI_REASON based codes)
    STAT_IDLE = 1000
    STAT_CONNECTING = 1001
    STAT_GOT_IP = 1010
    STAT_NO_AP_FOUND = 201
    STAT_WRONG_PASSWORD = 202
    STAT_CONNECT_FAIL = 203
else:  # the CYW43 driver's link states (rp2)
    STAT_IDLE = 0
    STAT_CONNECTING = 1
    STAT_GOT_IP = 3
    STAT_NO_AP_FOUND = -2
    STAT_WRONG_PASSWORD = -3
    STAT_CONNECT_FAIL = -1

JOIN_MS = 300
_air = {"up": True, "rssi": -58, "hang": False}


def _on_wifi(msg):
    _air["up"] = msg["up"]
    return {}


def _on_rssi(msg):
    _air["rssi"] = msg["v"]
    return {}


def _on_hang(msg):
    _air["hang"] = True
    return {}


hwlink.handlers["wifi"] = _on_wifi
hwlink.handlers["rssi"] = _on_rssi
hwlink.handlers["hang_wlan"] = _on_hang


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False
        self._ssid = None
        self._since = None

    def _driver(self):
        hwlink.pump()
        if _air["hang"]:
            hwlink.hang_forever("wlan")

    def active(self, on=None):
        self._driver()
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self._ssid = None
        return None

    def connect(self, ssid=None, key=None, **kw):
        self._driver()
        if not self._active:
            raise OSError("WLAN not active")
        self._ssid = ssid
        self._since = time.ticks_ms()

    def disconnect(self):
        self._driver()
        self._ssid = None

    def _state(self):
        if not self._active or self._ssid is None:
            return STAT_IDLE
        if self._ssid != CFG.get("ssid") or not _air["up"]:
            return STAT_NO_AP_FOUND
        if time.ticks_diff(time.ticks_ms(), self._since) < JOIN_MS:
            return STAT_CONNECTING
        return STAT_GOT_IP

    def isconnected(self):
        self._driver()
        return self._state() == STAT_GOT_IP

    def status(self, param=None):
        self._driver()
        if param is None:
            return self._state()
        if param == "rssi":
            if self._state() != STAT_GOT_IP:
                raise OSError("not connected")
            return _air["rssi"]
        raise ValueError("unknown status param")

    def ifconfig(self, cfg=None):
        self._driver()
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def config(self, *args, **kw):
        self._driver()
        if args == ("mac",):
            return b"\x02\x00\x00\x00\x00\x01"
        return None
