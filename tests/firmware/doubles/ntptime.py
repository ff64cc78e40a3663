"""Test double of micropython-lib's ``ntptime``: the host's clock over the double's Wi-Fi.

Like the real module it blocks: up to ``timeout`` seconds (1) when the
network does not answer, then raises ``OSError(ETIMEDOUT)``. The seconds are
counted from the running ``time`` module's epoch (``gmtime(0)``), as the
real module's NTP_DELTA is.
"""

import time as _time

import hwlink
import network  # ntptime needs the radio: a board without one cannot import it

host = "pool.ntp.org"
timeout = 1


def time():
    hwlink.pump()
    if not network._air["up"]:
        _time.sleep(timeout)
        raise OSError(110)  # ETIMEDOUT
    return int(_time.time())


def settime():
    time()
