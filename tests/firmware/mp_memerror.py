"""MemoryError in key handling, the links and status sending is caught: reported, and the box goes on.

Run under MicroPython with the silicon doubles (``EVALBOX_HW``, see test_units.py);
prints ``memerror: N passed`` last.
"""

import asyncio
import sys
import time

import vfs

import protocol
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

    async def keys_first(self) -> None:
        pass

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
link._downlink(app, "evalbox/box-1/ack", b"{}")
assert app.err == "MemoryError on a downlink: dropped", app.err
link._downlink(app, "evalbox/box-1/ack", b"{}")
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


def starved_status() -> "dict[str, object]":
    raise MemoryError()


async def heartbeat() -> None:
    real.link = Online()
    real.status_fields = starved_status  # the heartbeat builds the status, then signs it
    task = asyncio.create_task(real.heartbeat())
    await asyncio.sleep_ms(1200)
    assert real.err.startswith("MemoryError in a status: dropped"), real.err
    assert not task.done() and real.link.sent == 0
    task.cancel()


asyncio.run(heartbeat())
ok("heartbeat: a status out of heap dropped and reported, the heartbeat goes on")


class Starving:
    """Wraps a callable: the next ``fails`` calls raise MemoryError, then it works again."""

    def __init__(self, fn: "object", fails: int) -> None:
        self.fn = fn
        self.fails = fails

    def __call__(self, *args: "object") -> "object":
        if self.fails:
            self.fails -= 1
            raise MemoryError()
        return self.fn(*args)  # type: ignore[operator]


# a press whose save runs out of heap once: the heap is collected and the save retried, the press taken
ob = real.outbox
depth = ob.depth
save = ob.save
ob.save = Starving(save, 1)
r = real.on_key(1)
assert r["ok"] and ob.depth == depth + 1, r
assert real.err.startswith("MemoryError saving an event: retried"), real.err
# twice in a row: the press is refused (no feedback), reported, and the next press is taken
ob.save = Starving(save, 2)
r = real.on_key(1)
assert r == {"ok": False, "err": "memory"} and ob.depth == depth + 1, r
assert real.err.startswith("MemoryError on key 1: press not taken"), real.err
ob.save = save
assert real.on_key(2)["ok"] and ob.depth == depth + 2
ok("press path: a save out of heap retried; refused once when the heap stays short; the next press taken")

# packing out of heap: delayed (the journal keeps every event on flash), presses go on, packing resumes
real.outbox.seg_records = 4
pack_step = ob.pack_step
ob.pack_step = Starving(pack_step, 1)
for _ in range(6):
    assert real.on_key(1)["ok"]


async def ticker() -> None:
    task = asyncio.create_task(real.ticker())
    await asyncio.sleep_ms(300)
    assert real.err.startswith("MemoryError packing: delayed"), real.err
    assert real.pack_after is not None and ob.nseg == 0 and ob.jn == ob.depth, (ob.nseg, ob.jn)
    for _ in range(4):
        assert real.on_key(2)["ok"]
    real.pack_after = time.ticks_ms()  # the delay is over
    await asyncio.sleep_ms(300)
    assert ob.nseg >= 2 and ob.jn < 4, (ob.nseg, ob.jn)
    task.cancel()


asyncio.run(ticker())
ob.pack_step = pack_step
held = [(e["b"], e["s"]) for e in ob.pending()]
assert len(held) == ob.depth and len(set(held)) == len(held)
ok("packing out of heap: delayed and reported, presses kept on flash, packing resumes")

# the sender out of heap: reported, and the next walk sends


class Sink:
    online = True

    def __init__(self) -> None:
        self.sent = 0

    async def send_event(self, payload: bytes) -> bool:
        self.sent += 1
        return True


async def sender() -> None:
    real.link = Sink()
    real.inflight = {}
    walk = ob.pending
    ob.pending = Starving(walk, 1)
    real.wake.clear()  # (set by the presses above: the sender would walk again at once)
    task = asyncio.create_task(real.sender())
    await asyncio.sleep_ms(100)
    assert real.err.startswith("MemoryError sending: retried in 1 s"), real.err
    assert real.link.sent == 0
    real.wake.set()
    await asyncio.sleep_ms(100)
    assert real.link.sent > 0, (real.err, ob.depth, real.mem_errors)
    ob.pending = walk
    task.cancel()


asyncio.run(sender())
ok("sender out of heap: reported, the next walk sends")

# a repeat ack (ids already deleted) is counted, not reported as an error
real.err = None
b = ob.boot
real._on_ack({"r": [[b, 0, ob.seq - 1]], "now": 1761926399000, "bf": None})
for _ in real.apply_acks():  # the ticker's steps, all at once
    pass
assert ob.depth == 0
real._on_ack({"r": [[b, 0, 2]], "now": 1761926399000, "bf": None})
for _ in real.apply_acks():
    pass
assert real.dup_acked == 3 and real.err is None, (real.dup_acked, real.err)
del real.status_fields  # the heartbeat test's starved one: back to the App's
st = protocol.decode(real.status_message(), real.key, real.device)
assert st["da"] == 3 and st.get("err") is None, st
ok("repeat ack counted in status da, no error")

print("memerror: %d passed" % passed)
sys.exit(0)
