"""A press from a box whose clock never synced (``ts`` null) keeps its month across a collector restart.

The collector runs as its own process with its wall clock moved (libfaketime, ``FAKETIME`` offset) to a
few seconds before midnight at the end of October in Asia/Shanghai; mosquitto is real, the box keeps a
retained status on it (as the firmware does). The box presses at 23:59:58 local on 31 October while the
collector is down and sends it after midnight; the restarted collector gets the box's retained status
again, and one queued for its session, both with the uptime they had when sent, and must not take them
as a fresh time reference.
"""

from __future__ import annotations

import glob
import pathlib
import time

import protocol
from collector.timeplace import month_of
from protocol import topics
from tests.collector.harness import Box, Collector, broker, make_store, store_of, stored, wait_for, write_config
from tests.report.store import local_ms

MIDNIGHT = local_ms("2026-11-01 00:00:00")  # the end of October in Asia/Shanghai
PRESS_AT = MIDNIGHT - 2000  # 23:59:58 local on the last day of October


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not found:
        raise RuntimeError("libfaketime not found: ./dev setup installs it (apt-get install libfaketime)")
    return found[0]


class FakeClock:
    """The collector's wall clock: the real one plus a fixed offset (whole seconds, as FAKETIME takes it)."""

    def __init__(self, start_at_ms: int) -> None:
        self.offset_s = (start_at_ms - int(time.time() * 1000)) // 1000

    def now(self) -> int:
        return int(time.time() * 1000) + self.offset_s * 1000

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": libfaketime(),
            "FAKETIME": f"{self.offset_s:+d}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def wait_until(self, ms: int) -> None:
        while self.now() < ms:
            time.sleep(0.05)


def status(box: Box, boot_ms: int, now_ms: int) -> bytes:
    msg = protocol.make(
        "status", box.device, b=1, up=now_ms - boot_ms, ts=None, fw="1.0.0", q=0, full=False, mem=40000,
        rssi=-60, rst="power_on", err=None, st="ok", cv=1,
    )  # fmt: skip
    return protocol.encode(msg, box.key)


def unsynced_press(box: Box, seq: int, boot_ms: int, at_ms: int) -> bytes:
    """The box's press at wall time ``at_ms`` (unknown to it): only its uptime since boot travels."""
    fields = {"b": 1, "s": seq, "ts": None, "up": at_ms - boot_ms, "o": "A1", "k": 1, "n": 2, "i": None, "tk": None}
    return protocol.encode(protocol.make("press", box.device, f=16, **fields), box.key)


def test_unsynced_press_before_midnight_keeps_its_month_across_a_restart(
    tmp_path: pathlib.Path, store_url: str
) -> None:
    db = store_of(tmp_path, store_url)
    make_store(db, ["BOX-1"])
    clock = FakeClock(MIDNIGHT - 14_000)
    with broker(tmp_path, ["BOX-1"]) as mq:
        cfg = write_config(tmp_path, store=db, port=mq.port)
        col = Collector(cfg, env=clock.env()).start()
        box = Box("BOX-1", mq.port)
        try:
            boot_ms = clock.now() - 60_000  # the box started a minute ago; its clock never synced
            box.client.publish(topics.status("BOX-1"), status(box, boot_ms, clock.now()), qos=1, retain=True)
            wait_for(lambda: stored(db, "SELECT COUNT(*) FROM devices WHERE status = 'online'") == 1, what="status")
            box.publish(unsynced_press(box, 1, boot_ms, clock.now() - 500))  # a live press: it advances last_seen
            wait_for(lambda: (1, 1) in box.acked, what="the first press acked")
            assert col.terminate() == 0, col.stderr()

            # Collector down. The box sends its status again (kept retained, and queued for the collector).
            box.client.publish(topics.status("BOX-1"), status(box, boot_ms, clock.now()), qos=1, retain=True)
            clock.wait_until(MIDNIGHT + 1500)
            # 23:59:58 the citizen pressed; the box sends it (again) after midnight.
            box.publish(unsynced_press(box, 2, boot_ms, PRESS_AT)).wait_for_publish(15)
            col = Collector(cfg, env=clock.env()).start()
            wait_for(lambda: (1, 2) in box.acked, what="the press acked by the restarted collector")
            assert col.terminate() == 0, col.stderr()
        finally:
            box.close()
            col.kill()
    placed = stored(db, "SELECT press_ms FROM events WHERE seq = 2")
    late_by = placed - PRESS_AT
    assert 0 <= late_by < 1000, late_by  # the network's delay at most, never the collector's downtime
    assert month_of(placed) == "2026-10"
    assert stored(db, "SELECT COUNT(*) FROM events WHERE seq = 2 AND month = '2026-10'") == 1
    assert stored(db, "SELECT COALESCE(SUM(n), 0) FROM rollups WHERE month = '2026-10'") == 2
