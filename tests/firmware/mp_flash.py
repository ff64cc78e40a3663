"""The RP2040's flash model and littlefs with small commits on it, run under MicroPython.

Prints one ``ok <name>`` per check and ``flash: N passed`` last; a failed
assert ends the script with a traceback (non-zero exit).
"""

import gc
import os
import sys

import vfs

from firmware.app import App
from firmware.config import validate
from firmware.norflash import NorFlash, PageProgram, mount_small_commits
from firmware.outbox import PAD

passed = 0


def ok(name: str) -> None:
    global passed
    passed += 1
    print("ok", name)


def walk(p: str, out: dict) -> dict:
    for e in os.ilistdir(p):
        q = p + "/" + e[0]
        if e[1] == 0x4000:
            walk(q, out)
        else:
            with open(q, "rb") as f:
                out[q] = f.read()
    return out


# -- the chip's rules
nor = NorFlash(8)
try:
    nor.writeblocks(0, b"\x00" * 16, 0)
    raise AssertionError("a 16-byte program was accepted")
except OSError as exc:
    assert exc.args[0] == 22
try:
    nor.writeblocks(0, b"\x00" * 256, 128)
    raise AssertionError("a misaligned page program was accepted")
except OSError as exc:
    assert exc.args[0] == 22
page = bytearray(b"\xff" * 256)
page[0] = 0x0F
nor.writeblocks(1, page, 0)
page[0] = 0xF0
nor.writeblocks(1, page, 0)
buf = bytearray(1)
nor.readblocks(1, buf, 0)
assert buf[0] == 0x00, buf  # programming only clears bits
nor.writeblocks(1, b"\xff" * 4096)  # no offset: erase, then program, as rp2.Flash does
nor.readblocks(1, buf, 0)
assert buf[0] == 0xFF and nor.erases == 1 and nor.pages == 18
ok("NorFlash: whole aligned pages only, programs clear bits, writeblocks without offset erases")

# -- PageProgram: a part of a page is programmed as the whole page, 0xFF elsewhere
nor = NorFlash(8)
pp = PageProgram(nor)
pp.writeblocks(2, b"abc", 10)
pp.writeblocks(2, b"def", 13)
got = bytearray(8)
nor.readblocks(2, got, 8)
assert bytes(got) == b"\xff\xffabcdef", got
assert nor.pages == 2 and pp.last == 2 and pp.room(2) == 4096 - 16, (nor.pages, pp.last, pp.room(2))
pp.writeblocks(2, b"x" * 300, 250)  # bytes 250-549: three pages
assert nor.pages == 5, nor.pages
pp.ioctl(6, 2)
assert pp.room(2) == 4096 and pp.erases == 1
ok("PageProgram: partial programs become whole pages with the rest 0xFF; fill tracked per block")

# -- the same littlefs read by the port's own mount (progsize=256) and by the small-commit mount, both ways
del nor, pp
gc.collect()
nor = NorFlash(32)
vfs.VfsLfs2.mkfs(nor, progsize=256)
vfs.mount(vfs.VfsLfs2(nor, progsize=256), "/c")
os.mkdir("/c/firmware")
for i in range(12):
    with open("/c/firmware/m%d.mpy" % i, "wb") as f:
        f.write(bytes([i]) * (300 * i + 7))
vfs.umount("/c")
for rnd in range(3):
    mount_small_commits(nor, "/c")
    for i in range(40):
        with open("/c/r%d_%d" % (rnd, i), "wb") as f:
            f.write(b"%d" % i)
        if i % 3 == 0:
            os.remove("/c/r%d_%d" % (rnd, i))
    small = walk("/c", {})
    vfs.umount("/c")
    vfs.mount(vfs.VfsLfs2(nor, progsize=256), "/c")
    assert walk("/c", {}) == small
    with open("/c/firmware/new%d" % rnd, "wb") as f:
        f.write(b"y" * 5000)
    shipped = walk("/c", {})
    vfs.umount("/c")
    mount_small_commits(nor, "/c")
    assert walk("/c", {}) == shipped
    vfs.umount("/c")
del nor
gc.collect()
try:
    mount_small_commits(NorFlash(8), "/c")  # blank: never formatted unless asked (a board's firmware is on it)
    raise AssertionError("a blank flash mounted")
except OSError:
    pass
ok("one on-disk format: the port's mount and the small-commit mount read each other's files")


# -- the app keeps sector erases out of presses
def pairs(app: App, flash: NorFlash, n: int, maintain: bool) -> "tuple[int, int]":
    inside = 0
    e0 = flash.erases
    waiting = []
    for k in range(n):
        e = flash.erases
        r = app.on_invite(None)
        waiting.append(r["id"][1:])
        r = app.on_key(1 + k % 2)
        assert r["ok"], r
        waiting.append(r["id"][1:])
        inside += flash.erases - e
        if len(waiting) > 8:
            (b, lo), (_, hi) = waiting.pop(0), waiting.pop(0)
            app._on_ack({"r": [[b, lo, hi]], "now": 1761926399000, "bf": None})
            for _ in app.apply_acks():  # the ticker's steps, all at once
                pass
        app.outbox.maintain()
        while maintain and app.maintain_flash():
            pass
    return inside, flash.erases - e0


class Board:
    def __init__(self, flash: "PageProgram | None") -> None:
        self.flash = flash

    def feedback(self, kind: str, k: int) -> None:
        pass

    def show_full(self, full: bool) -> None:
        pass

    def self_test(self) -> str:
        return "ok"


CFG = validate(
    {
        "device_id": "flash-1",
        "key_hex": "00" * 32,
        "transport": "serial",
        "board": "pico",
        "officer": "A1",
        "min_interval_ms": 0,
        "outbox_capacity": 100000,
    }
)
results = {}
for maintain in (False, True):
    nor = dev = app = None
    gc.collect()
    nor = NorFlash(32)
    dev = mount_small_commits(nor, "/a", True)
    app = App(CFG, Board(dev), "/a")
    app.start()
    pairs(app, nor, 100, maintain)  # warm-up
    results[maintain] = pairs(app, nor, 400, maintain) + (app.compactions,)
    vfs.umount("/a")
print("erases inside presses, total per 400 pairs, compactions brought forward:", results)
assert results[False][0] > 0  # without the ticker's step littlefs compacts inside saves
assert results[True][0] == 0 and results[True][2] > 0
# bringing compactions forward wastes the room left in a block: a little more wear, bounded
assert results[True][1] <= 1.2 * results[False][1] and results[True][1] / 400 <= 0.12
ok("no sector erase inside a press; %.3f erases per invite+press pair" % (results[True][1] / 400))

# -- a power cut between the pad file's write and its removal leaves a pad the outbox drops
nor = dev = app = None
gc.collect()
nor = NorFlash(32)
dev = mount_small_commits(nor, "/p", True)
app = App(CFG, Board(dev), "/p")
app.start()
app.on_invite(None)
app.on_key(1)
with open("/p/ob/j/" + PAD, "wb") as f:
    f.write(bytes(300))  # as maintain_flash writes it
vfs.umount("/p")
mount_small_commits(nor, "/p")
app = App(CFG, Board(dev), "/p")
app.start()
assert app.outbox.depth == 2 and app.err is None and app.outbox.quarantined == 0, (app.outbox.depth, app.err)
ok("a pad file left by a power cut is dropped at boot, nothing reported")

print("flash: %d passed" % passed)
sys.exit(0)
