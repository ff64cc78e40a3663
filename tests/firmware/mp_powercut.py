"""Power cuts on littlefs, run under MicroPython (tests/firmware/test_powercut.py).

A RAM flash that fails (drops, or tears: half the bytes) the N-th program or
erase and every later one. For every N of a scripted run of saves, acks and
segment packing (in steps, interleaved with the saves and acks): remount the
image, reopen the outbox, and check that the filesystem mounts, every save that returned (feedback given) and was not
acked is there with the same content, no identity is there twice, and the
new boot number is above every saved one. Prints
``cut points: N tried, M failures`` last.
"""

import gc
import sys

import vfs

from firmware.flashdev import RamFlash
from firmware.outbox import Outbox, OutboxError

BLOCKS = 32
BS = 4096


class CutFlash(RamFlash):
    """Fails the ``cut_at``-th write step and all after it (power is gone)."""

    def __init__(self, image: bytearray, cut_at: int, tear: bool) -> None:
        super().__init__(BLOCKS, BS, image)
        self.step = 0
        self.cut_at = cut_at
        self.tear = tear
        self.dead = False

    def _cut(self) -> bool:
        self.step += 1
        if self.dead:
            return True
        if self.step == self.cut_at:
            self.dead = True
            return True
        return False

    def writeblocks(self, n: int, buf: bytes, off: int = 0) -> "int | None":  # type: ignore[override]
        if self._cut():
            if self.tear and self.step == self.cut_at:
                RamFlash.writeblocks(self, n, bytes(buf[: len(buf) // 2]), off)
            return -5  # EIO
        RamFlash.writeblocks(self, n, buf, off)
        return None

    def ioctl(self, op: int, arg: int) -> "int | None":
        if op == 6 and self._cut():
            if self.tear and self.step == self.cut_at:
                a = arg * BS
                self.data[a : a + BS // 2] = b"\xff" * (BS // 2)
            return -5
        return RamFlash.ioctl(self, op, arg)


def press(n: int) -> dict:
    return {
        "t": "press",
        "ts": 1761926399000 + n,
        "up": 1000 + n,
        "o": "A%d" % n,
        "k": 1 + n % 2,
        "n": 2,
        "f": 0,
        "i": n,
        "tk": "T-%d" % n,
    }


def scenario(ob: Outbox, dev: "CutFlash", saved: dict, acked: set) -> None:
    """Saves, acks (some out of order) and packing; stops when the power is cut."""
    ob.open()
    if dev.dead:
        return
    live = []
    for n in range(64):
        ev = press(n)
        try:
            key = ob.save(ev)
        except OutboxError:
            return
        saved[key] = dict(ev)
        live.append(key)
        if dev.dead:
            return
        if n % 3 == 2 and len(live) > 3:
            for key in (live.pop(1), live.pop(0)):
                for done in ob.ack_steps(key[0], key[1], key[1]):
                    if dev.dead:
                        return
                    if done:
                        acked.add(key)  # deleted (or marked acked in its segment)
                    ob.pack_step()  # a packing step between two ack steps
                    if dev.dead:
                        return
                acked.add(key)
        for _ in range(2):  # packing in steps, between saves and acks, as the ticker runs it
            ob.pack_step()
            if dev.dead:
                return
        if n == 20:
            ob.raise_floor(ob.boot + 2)
            if dev.dead:
                return


def mount(dev: "RamFlash") -> None:
    vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=16), "/pc")


def umount() -> None:
    try:
        vfs.umount("/pc")
    except OSError:
        pass


def check_outbox(path: str, saved: dict, acked: "set | tuple" = ()) -> "tuple[Outbox, int, list[str]]":
    """The outbox at ``path`` opened after a cut: every saved event not acked is there exactly once, unchanged.

    Returns the opened outbox, its new boot and the errors (duplicate, lost, changed field).
    """
    ob = Outbox(path, 1000, 8)
    boot = ob.open()
    errors = []
    seen: dict = {}
    for ev in ob.pending():
        key = (ev["b"], ev["s"])
        if key in seen:
            errors.append("duplicate %r" % (key,))
        seen[key] = ev
    for key in saved:
        if key in acked:
            continue
        if key not in seen:
            errors.append("lost %r" % (key,))
            continue
        got = seen[key]
        for f in saved[key]:
            if got.get(f) != saved[key][f]:
                errors.append("changed %r field %s" % (key, f))
    return ob, boot, errors


def run_once(base: bytearray, cut_at: int, tear: bool) -> "tuple[int, list[str]]":
    dev = CutFlash(bytearray(base), cut_at, tear)
    mount(dev)
    saved: dict = {}
    acked: set = set()
    box = Outbox("/pc/ob", 1000, 8)
    try:
        scenario(box, dev, saved, acked)
    except OSError:
        pass  # the cut surfaced as an I/O error: the box is off now
    if box.pk_file is not None:  # the segment being packed when the power went: closed if it can be
        try:
            box.pk_file.close()
        except OSError:
            pass  # it cannot: littlefs keeps it, and with it the dead device
    umount()
    after = RamFlash(BLOCKS, BS, dev.data)  # the image as the cut left it
    dev.data = bytearray(0)  # so a file left open on the dead device does not keep 128 KiB alive
    box = None
    gc.collect()
    try:
        mount(after)
    except OSError as exc:
        return dev.step, ["mount failed: %r" % exc]
    ob, boot, errors = check_outbox("/pc/ob", saved, acked)
    for key in saved:
        if boot <= key[0]:
            errors.append("boot %d not above saved %r" % (boot, key))
    try:
        ob.save(press(99))  # and the box keeps working
    except OutboxError as exc:
        errors.append("save after remount failed: %s" % exc)
    umount()
    return dev.step, errors


def main() -> int:
    base_dev = RamFlash(BLOCKS, BS)
    vfs.VfsLfs2.mkfs(base_dev, readsize=32, progsize=16)
    base = bytearray(base_dev.data)
    total, errors = run_once(base, 0, False)  # no cut: count the write steps
    if errors:
        print("baseline failed:", errors)
        return 1
    tried = 0
    failures = 0
    for cut_at in range(1, total + 1):
        for tear in (False, True):
            tried += 1
            _steps, errors = run_once(base, cut_at, tear)
            if errors:
                failures += 1
                print("cut %d tear=%s: %s" % (cut_at, tear, "; ".join(errors[:3])))
    print("write steps in the run: %d" % total)
    print("cut points: %d tried, %d failures" % (tried, failures))
    return 1 if failures else 0


if __name__ == "__main__":  # mp_ota_powercut.py imports the cutting flash
    sys.exit(main())
