"""Sockets are finite: hours of failed reconnects under a 32-descriptor limit, then a clean flush.

A Pico W box (the deployed build, on the unix port) runs under
``ulimit -n 32`` while its broker refuses connections, accepts and never
answers, and freezes established sessions, with the backoff compressed so a
minute of the test is hours of a real outage (a real box retries about once
every 30 s). Every attempt must give its socket back: the box's open
descriptors stay at their connected baseline, and when the broker returns
the box reconnects and delivers every press it took meanwhile, exactly once.
The longest time the asyncio loop was held (between two reads of the key
pins) is measured over the same run: connects, timeouts and reconnects must
never block the keys.
"""

from __future__ import annotations

import pathlib
import threading
import time

from tests.firmware.boardbox import BoardBox, Radio
from tests.firmware.simbox import Acker, wait_for
from tests.firmware.test_boards import wifi_cfg
from tests.mosquitto import Mosquitto

NOFILE = 32
LOOP_STALL_BUDGET_MS = 250  # a blocking connect or name lookup would hold the loop for seconds


def _presses(acker: Acker) -> int:
    with acker.lock:
        return sum(1 for e in acker.events.values() if e["t"] == "press")


def test_sockets_released_through_hours_of_reconnects_then_flush(
    tmp_path: pathlib.Path, firmware_build: pathlib.Path, broker: Mosquitto, acker: Acker
) -> None:
    radio = Radio(broker.port)
    cfg = wifi_cfg("picow", radio.port, backoff_max_ms=60, connect_timeout_ms=300, keepalive_s=1)
    box = BoardBox(tmp_path, cfg, firmware_build, nofile=NOFILE)
    peak = [0]
    sampling = [True]

    def sample() -> None:
        while sampling[0]:
            try:
                peak[0] = max(peak[0], box.fds())
            except (OSError, AssertionError):
                pass
            time.sleep(0.05)

    try:
        box.start()
        wait_for(lambda: isinstance(acker.status.get("box-1"), dict), 30, "online")
        time.sleep(0.5)
        base = box.fds()  # stdio, the flash image, the bench's control line, the broker socket
        box.op("reset_stats")
        threading.Thread(target=sample, daemon=True).start()
        pressed = 0

        radio.set("refuse")  # nothing listens: every attempt is refused at once
        t_end = time.monotonic() + 8
        while time.monotonic() < t_end:
            box.press(1)
            pressed += 1
            time.sleep(0.4)

        accepted = radio.accepted
        radio.set("silent")  # accepts, never sends a CONNACK: every attempt times out
        time.sleep(8)
        silent = radio.accepted - accepted
        assert silent >= 15, silent

        frozen = 0
        for _ in range(4):  # established sessions that freeze: keepalive silence ends each
            passed = radio.forwarded
            radio.set("pass")
            wait_for(lambda p=passed: radio.forwarded > p, 30, "a session through to the broker")
            time.sleep(0.5)  # CONNACK, SUBSCRIBE, status
            before = radio.accepted
            radio.set("freeze")
            box.press(2)
            pressed += 1
            wait_for(lambda b=before: radio.accepted > b + 2, 30, "the frozen session given up, new attempts")
            frozen += 1

        stalls = box.stats()
        radio.set("pass")  # the broker is back
        wait_for(lambda: _presses(acker) == pressed, 60, "every press delivered after the outage")
        time.sleep(1.0)
        sampling[0] = False
        now = box.fds()
        print(
            f"descriptors: baseline {base}, peak {peak[0]} under ulimit -n {NOFILE}, after the flush {now}; "
            f"{silent} silent-broker attempts, {frozen} frozen sessions, {radio.accepted} accepted connections; "
            f"longest loop stall {stalls['max_gap_ms']} ms"
        )
        assert peak[0] <= base + 2, (base, peak[0])
        assert now <= base + 1, (base, now)
        assert stalls["max_gap_ms"] <= LOOP_STALL_BUDGET_MS, stalls
        assert acker.conflicts == [] and acker.rejected == []
        assert box.resets == []  # no watchdog reset on the way: no await outlived the watchdog
    finally:
        sampling[0] = False
        box.close()
        radio.close()
