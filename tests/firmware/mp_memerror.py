"""MemoryError in key handling, the links and status sending is caught: reported, and the box goes on.

Run under MicroPython with the silicon doubles (``EVALBOX_HW``, see test_units.py);
prints ``memerror: N passed`` last.
"""

import asyncio
import sys

import vfs

from firmware.app import App
from firmware.boards.pico import PicoBoard
from firmware.config import validate
from firmware.flashdev import RamFlash
from firmware.mqtt import MqttLink
from firmware.serial_link import SerialLink
from protocol import encode_frame

passed = 0


def ok(name: str) -> None:
    global passed
    passed += 1
    print("ok", name)


class Starved:
    """An app whose every handler runs out of heap (the first ``fails`` calls)."""

    def __init__(self, fails: int = 1000) -> None:
        self.err = None
        self.fails = fails
        self.taken = 0

    def report(self, what: str) -> None:
        self.err = what

    def _maybe(self) -> None:
        if self.fails:
            self.fails -= 1
            raise MemoryError()
        self.taken += 1

    def on_key(self, k: int) -> None:
        self._maybe()

    def on_invite(self, tk: "object") -> None:
        self._maybe()

    def on_downlink(self, payload: bytes) -> None:
        self._maybe()

    def status_message(self) -> bytes:
        raise MemoryError()


cfg = validate({"device_id": "m-1", "key_hex": "00" * 32, "transport": "serial", "board": "pico"})
board = PicoBoard(cfg)
app = Starved(fails=1)
board._press(app, 0)
assert app.err == "MemoryError on key 1: press not taken", app.err
board._press(app, 1)
assert app.taken == 1
ok("key handling: MemoryError reported, the next press taken")


class Lines:
    def __init__(self, lines: "list[bytes]") -> None:
        self.lines = lines
        self.written = 0

    async def readline(self) -> bytes:
        if self.lines:
            return self.lines.pop(0)
        await asyncio.sleep_ms(10)
        return b""

    async def write(self, data: bytes) -> None:
        self.written += 1


async def serial() -> None:
    app = Starved(fails=1)
    frame = encode_frame(b'{"t":"ack"}')
    link = SerialLink(Lines([frame, frame]))
    task = asyncio.create_task(link.run(app))
    await asyncio.sleep_ms(100)
    assert app.err == "MemoryError on a downlink frame: dropped", app.err
    assert app.taken == 1 and not task.done()
    task.cancel()


asyncio.run(serial())
ok("serial link: first status and a downlink frame out of heap, the link goes on")

link = MqttLink(dict(cfg, broker_host="127.0.0.1", broker_port=1, broker_user="m", broker_password="p"))
app = Starved(fails=1)
link._downlink(app, b"{}")
assert app.err == "MemoryError on a downlink: dropped", app.err
link._downlink(app, b"{}")
assert app.taken == 1
ok("mqtt link: a downlink out of heap dropped and reported")

dev = RamFlash(32, 4096)
vfs.VfsLfs2.mkfs(dev, readsize=32, progsize=16)
vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=16), "/m")
real = App(dict(cfg, heartbeat_ms=500), board, "/m")
real.start()


class Online:
    online = True
    sent = 0

    async def send_status(self, payload: bytes) -> None:
        self.sent += 1


def starved_status() -> bytes:
    raise MemoryError()


async def heartbeat() -> None:
    real.link = Online()
    real.status_message = starved_status
    task = asyncio.create_task(real.heartbeat())
    await asyncio.sleep_ms(1200)
    assert real.err.startswith("MemoryError in a status: dropped"), real.err
    assert not task.done() and real.link.sent == 0
    task.cancel()


asyncio.run(heartbeat())
ok("heartbeat: a status out of heap dropped and reported, the heartbeat goes on")
print("memerror: %d passed" % passed)
sys.exit(0)
