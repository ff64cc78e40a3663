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


# a confirmation of 40 ms here (box.json ``debounce_ms``; 10 ms by default): the glitches and taps
# below are 10-20 ms, so a loaded host's late wake-up cannot turn one into a press
cfg = validate({"device_id": "keys-1", "key_hex": "00" * 32, "transport": "serial", "board": "pico", "debounce_ms": 40})
board = PicoBoard(cfg)
app = KeyApp()
KEY1 = board.pins["keys"][0]


def level(pin: int, v: int) -> None:
    """The key's contact: the level changes now and the pin's IRQ sees the edge (as the chip's would)."""
    machine._inputs[pin] = v
    machine._pins[pin]._edge()


def bounce(pin: int, to: int, edges: int) -> None:
    """A contact's bounce on its way to level ``to``: ``edges`` flips about 1 ms apart, ending at ``to``."""
    v = 1 - to
    for _ in range(edges):
        v = 1 - v
        level(pin, v)
        time.sleep_ms(1)
    if v != to:
        level(pin, to)


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
    assert board.confirm_ms == 40 and board.release_ms == 80
    keys = asyncio.create_task(board.run(app))
    await asyncio.sleep_ms(50)

    await stall(400, [(50, 200)])  # a 150 ms press entirely inside a 400 ms stall
    await asyncio.sleep_ms(60)
    assert app.keys == [1], app.keys
    ok("a press made while the loop was held is taken when it comes back")

    await stall(300, [(50, 60), (100, 115)])  # contact glitches shorter than the confirmation
    await asyncio.sleep_ms(60)
    assert app.keys == [1], app.keys
    ok("glitches shorter than the confirmation inside a stall are not presses")

    await stall(700, [(50, 200), (350, 500)])  # two presses inside one stall, up 150 ms between them
    await asyncio.sleep_ms(60)
    assert app.keys == [1, 1, 1], app.keys
    ok("two presses made while the loop was held are both taken")

    level(KEY1, 0)  # an ordinary press the polls see, held 300 ms: one press, not one per poll
    await asyncio.sleep_ms(300)
    level(KEY1, 1)
    await asyncio.sleep_ms(100)
    assert app.keys == [1, 1, 1, 1], app.keys
    level(KEY1, 0)
    await asyncio.sleep_ms(15)
    level(KEY1, 1)
    await asyncio.sleep_ms(100)
    assert app.keys == [1, 1, 1, 1], app.keys
    ok("a held key counts once; a 15 ms tap the polls see is not a press")

    # a bounce train on the way down and on the way up (the release's bounces come back
    # down within release_ms): one press per physical press, taken or not inside a stall
    bounce(KEY1, 0, 9)
    await asyncio.sleep_ms(200)
    bounce(KEY1, 1, 9)
    await asyncio.sleep_ms(150)
    assert app.keys == [1, 1, 1, 1, 1], app.keys

    async def bouncy_stall() -> None:
        bounce(KEY1, 0, 7)
        time.sleep_ms(150)
        bounce(KEY1, 1, 7)
        time.sleep_ms(100)

    await bouncy_stall()
    await asyncio.sleep_ms(60)
    assert app.keys == [1, 1, 1, 1, 1, 1], app.keys
    level(KEY1, 0)  # a worn key's release: up 10 ms, then in contact again 60 ms (longer than the confirmation)
    await asyncio.sleep_ms(100)
    level(KEY1, 1)
    time.sleep_ms(10)
    level(KEY1, 0)
    await asyncio.sleep_ms(60)
    level(KEY1, 1)
    await asyncio.sleep_ms(150)
    assert app.keys == [1, 1, 1, 1, 1, 1, 1], app.keys
    ok("a bounce train on press and release, a contact again within the release lockout: one press each")

    # hard IRQs: a soft handler runs only once a long C call (a littlefs compaction) returns,
    # and the two edges of a press made meanwhile would then look like a glitch
    assert all(machine._pins[p]._hard for p in board.pins["keys"] + [board.pins["invite"]])
    assert not board.pressing()
    level(KEY1, 0)  # down: other tasks' work waits until its press is taken
    assert board.pressing()
    await asyncio.sleep_ms(10)
    assert board.pressing() and len(app.keys) == 7, app.keys
    await asyncio.sleep_ms(70)
    assert not board.pressing() and len(app.keys) == 8, app.keys  # taken: the rest may run
    level(KEY1, 1)
    await asyncio.sleep_ms(100)
    level(KEY1, 0)  # a glitch: pressing while down, then nothing
    assert board.pressing()
    level(KEY1, 1)
    assert not board.pressing()
    await asyncio.sleep_ms(60)
    assert len(app.keys) == 8, app.keys
    ok("key edges timed by hard IRQs; pressing() from key-down until its press is taken")
    keys.cancel()
    await asyncio.sleep_ms(0)

    # the default confirmation: 10 ms, and the release lockout 30 ms
    cfg2 = validate({"device_id": "keys-2", "key_hex": "00" * 32, "transport": "serial", "board": "pico"})
    assert cfg2["debounce_ms"] == 10
    board2 = PicoBoard(cfg2)
    app2 = KeyApp()
    keys = asyncio.create_task(board2.run(app2))
    await asyncio.sleep_ms(30)
    bounce(KEY1, 0, 5)
    await asyncio.sleep_ms(100)
    assert app2.keys == [1], app2.keys
    bounce(KEY1, 1, 5)
    await asyncio.sleep_ms(100)
    assert app2.keys == [1], app2.keys
    level(KEY1, 0)
    await asyncio.sleep_ms(100)
    level(KEY1, 1)
    await asyncio.sleep_ms(50)
    assert app2.keys == [1, 1], app2.keys
    ok("by default a key counts after 10 ms down; its bounces do not")
    keys.cancel()


asyncio.run(main())
print("keys: %d passed" % passed)
sys.exit(0)
