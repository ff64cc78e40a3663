"""The key task keeps presses made while another task holds the loop (pin IRQ edges), under the silicon doubles.

Run under MicroPython with ``EVALBOX_HW`` (see test_units.py); prints
``keys: N passed`` last.
"""

import asyncio
import sys
import time

import machine

from firmware.boards.pico import PicoBoard
from firmware.config import validate

passed = 0


def ok(name: str) -> None:
    global passed
    passed += 1
    print("ok", name)


class KeyApp:
    def __init__(self) -> None:
        self.beats = {}
        self.keys = []
        self.invites = 0
        self.err = None

    def on_key(self, k: int) -> dict:
        self.keys.append(k)
        return {"ok": True}

    def on_invite(self, tk: "str | None") -> dict:
        self.invites += 1
        return {"ok": True}

    def report(self, what: str) -> None:
        self.err = what

    def collect_garbage(self) -> None:
        pass


cfg = validate({"device_id": "keys-1", "key_hex": "00" * 32, "transport": "serial", "board": "pico"})
board = PicoBoard(cfg)
app = KeyApp()
KEY1 = board.pins["keys"][0]


def level(pin: int, v: int) -> None:
    """The key's contact: the level changes now and the pin's IRQ sees the edge (as the chip's would)."""
    machine._inputs[pin] = v
    machine._pins[pin]._edge()


async def stall(ms: int, presses: "list[tuple[int, int]]") -> None:
    """Hold the loop ``ms`` ms (a long flash or packing step); the key goes down and up inside it."""
    t0 = time.ticks_ms()
    for down, up in presses:
        time.sleep_ms(max(0, down - time.ticks_diff(time.ticks_ms(), t0)))
        level(KEY1, 0)
        time.sleep_ms(up - down)
        level(KEY1, 1)
    time.sleep_ms(max(0, ms - time.ticks_diff(time.ticks_ms(), t0)))


async def main() -> None:
    keys = asyncio.create_task(board.run(app))
    await asyncio.sleep_ms(50)

    await stall(400, [(50, 200)])  # a 150 ms press entirely inside a 400 ms stall
    await asyncio.sleep_ms(60)
    assert app.keys == [1], app.keys
    ok("a press made while the loop was held is taken when it comes back")

    await stall(300, [(50, 70), (100, 125)])  # contact glitches shorter than the debounce
    await asyncio.sleep_ms(60)
    assert app.keys == [1], app.keys
    ok("glitches shorter than the debounce inside a stall are not presses")

    level(KEY1, 0)  # an ordinary press the polls see, held 300 ms: one press, not one per poll
    await asyncio.sleep_ms(300)
    level(KEY1, 1)
    await asyncio.sleep_ms(60)
    assert app.keys == [1, 1], app.keys
    level(KEY1, 0)
    await asyncio.sleep_ms(20)
    level(KEY1, 1)
    await asyncio.sleep_ms(60)
    assert app.keys == [1, 1], app.keys
    ok("a held key counts once; a 20 ms tap the polls see is not a press")

    # hard IRQs: a soft handler runs only once a long C call (a littlefs compaction) returns,
    # and the two edges of a press made meanwhile would then look like a glitch
    assert all(machine._pins[p]._hard for p in board.pins["keys"] + [board.pins["invite"]])
    assert not board.pressing()
    level(KEY1, 0)  # down: other tasks' work waits until its press is taken
    assert board.pressing()
    await asyncio.sleep_ms(30)
    assert board.pressing() and app.keys == [1, 1]
    await asyncio.sleep_ms(40)
    assert not board.pressing() and app.keys == [1, 1, 1], app.keys  # taken: the rest may run
    level(KEY1, 1)
    await asyncio.sleep_ms(20)
    level(KEY1, 0)  # a glitch: pressing while down, then nothing
    assert board.pressing()
    level(KEY1, 1)
    assert not board.pressing()
    ok("key edges timed by hard IRQs; pressing() from key-down until its press is taken")
    keys.cancel()


asyncio.run(main())
print("keys: %d passed" % passed)
sys.exit(0)
