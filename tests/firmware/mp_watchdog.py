"""The watchdog supervisor feeds only while every task beats (MicroPython).

Prints ``watchdog: N passed`` last.
"""

import asyncio
import sys
import time

import vfs

from firmware.app import App
from firmware.config import validate
from firmware.flashdev import RamFlash


class Board:
    def __init__(self) -> None:
        self.feeds = 0

    def feed_watchdog(self) -> None:
        self.feeds += 1

    def self_test(self) -> str:
        return "ok"


dev = RamFlash(32, 4096)
vfs.VfsLfs2.mkfs(dev, readsize=32, progsize=16)
vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=16), "/w")
cfg = validate({"device_id": "wd-1", "key_hex": "00" * 32, "transport": "serial", "board": "esp32"})
board = Board()
app = App(cfg, board, "/w")
app.start()
app.stall_ms = 300  # instead of a whole watchdog period


async def beating() -> None:
    while True:
        app.beats["worker"] = time.ticks_ms()
        await asyncio.sleep_ms(50)


async def until(cond: "object") -> None:
    for _ in range(600):  # generous: 30 s
        if cond():  # type: ignore[operator]
            return
        await asyncio.sleep_ms(50)
    raise AssertionError("condition not reached")


async def main() -> int:
    worker = asyncio.create_task(beating())
    sup = asyncio.create_task(app.supervisor())
    await until(lambda: board.feeds >= 2)
    print("ok fed while the task beats")
    worker.cancel()  # the task hangs: no more beats
    await until(lambda: app.err == "task stalled: worker")
    stalled_at = board.feeds
    await asyncio.sleep_ms(2500)
    assert board.feeds == stalled_at, (stalled_at, board.feeds)
    assert app.err == "task stalled: worker", app.err
    print("ok not fed once a task stalls; reported")
    sup.cancel()
    return 2


n = asyncio.run(main())
print("watchdog: %d passed" % n)
sys.exit(0)
