"""Outbox checks on a real littlefs RAM device, run under MicroPython.

Prints one ``ok <name>`` per check and ``outbox: N passed`` last; a failed
assert ends the script with a traceback (non-zero exit).
"""

import gc
import os
import random
import sys

import vfs

from firmware.flashdev import RamFlash
from firmware.outbox import Outbox, OutboxFull

passed = 0


def ok(name: str) -> None:
    global passed
    passed += 1
    print("ok", name)


def press(n: int) -> dict:
    return {"t": "press", "ts": None, "up": n, "o": None, "k": 1, "n": 2, "f": 16, "i": None, "tk": None}


def fresh() -> RamFlash:
    global dev
    dev = None  # the previous image (256 KB) freed first: two of them would not fit a fragmented heap
    try:
        vfs.umount("/t")
    except OSError:
        pass
    gc.collect()
    dev = RamFlash(64, 4096)
    vfs.VfsLfs2.mkfs(dev, readsize=32, progsize=16)
    try:
        vfs.umount("/t")
    except OSError:
        pass
    vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=16), "/t")
    return dev


def remount(dev: RamFlash) -> None:
    vfs.umount("/t")
    vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=16), "/t")


def ids(ob: Outbox) -> list:
    return [(e["b"], e["s"]) for e in ob.pending()]


# boot counter bumps at every open and respects the floor
dev = fresh()
ob = Outbox("/t/ob", 100, 4)
assert ob.open() == 1
ob = Outbox("/t/ob", 100, 4)
assert ob.open() == 2
assert ob.raise_floor(10) is True and ob.boot == 10
ob = Outbox("/t/ob", 100, 4)
assert ob.open() == 11
first = ob.save(press(0))
assert ob.raise_floor(11) is False and ob.raise_floor(5) is False  # at or below this boot
assert ob.save(press(1)) == (11, first[1] + 1)  # the seq runs on: no identity reused
assert ob.ack_range(11, 0, 1) == 2
ob = Outbox("/t/ob", 100, 4)
assert ob.open() == 12
ok("boot counter and floor")

# saves survive a remount, in order, packed into segments or not
for n in range(10):
    ob.save(press(n))
assert ob.maintain() and ob.maintain() and not ob.maintain()
assert ob.nseg == 2 and ob.jn == 2
want = ids(ob)
remount(dev)
ob = Outbox("/t/ob", 100, 4)
ob.open()
assert ids(ob) == want, (ids(ob), want)
assert ob.depth == 10
ok("records survive remount")

# acks: a segment goes when all its records are acked; unknown ids are refused
b = want[0][0]
assert ob.ack_range(b, 0, 3) == 4
assert ob.nseg == 1
assert ob.ack(b, 0) is False and ob.ack_range(b, 500, 600) == 0
assert ob.ack(b, 9) is True and ob.depth == 5
assert "%08x%08x" % (b, 0) not in os.listdir("/t/ob/s")
ok("acks delete records and empty segments; unknown ids refused")

# acks arriving while the sender walks pending() (it awaits between sends)
it_ob = Outbox("/t/ob2", 100, 4)
it_ob.open()
for n in range(10):
    it_ob.save(press(n))
it_ob.maintain()
it_ob.maintain()
walked = []
for ev in it_ob.pending():
    walked.append(ev["s"])
    if len(walked) == 2:
        it_ob.ack_range(it_ob.boot, 0, 9)  # everything acked mid-walk
assert walked == [0, 1] and it_ob.depth == 0 and it_ob.quarantined == 0, (walked, it_ob.problems)
ok("acks during a walk of pending() are safe")

# a corrupt segment is quarantined and reported; the box keeps working
seg = "/t/ob/s/" + [n for n in os.listdir("/t/ob/s")][0]
with open(seg, "rb") as f:
    raw = bytearray(f.read())
raw[20] ^= 0xFF
with open(seg, "wb") as f:
    f.write(raw)
ob = Outbox("/t/ob", 100, 4)
ob.open()
assert ob.quarantined == 1 and ob.nseg == 0
assert "quarantined" in ob.problems[-1] and "CRC" in ob.problems[-1], ob.problems
assert len(os.listdir("/t/ob/q")) == 1
ob.save(press(1))
ok("corrupt segment quarantined and reported")

# a corrupt journal record too
name = os.listdir("/t/ob/j")[0]
with open("/t/ob/j/" + name, "wb") as f:
    f.write(b"garbage that is long enough to be a record but is not one at all...")
ob = Outbox("/t/ob", 100, 4)
ob.open()
assert ob.quarantined == 1 and "quarantined" in ob.problems[-1]
ok("corrupt journal record quarantined")

# bounded: a full outbox refuses with a clear error and recovers after acks
dev = fresh()
ob = Outbox("/t/ob", 5, 4)
ob.open()
for n in range(5):
    ob.save(press(n))
assert ob.full
try:
    ob.save(press(6))
    raise AssertionError("saved past capacity")
except OutboxFull as exc:
    assert "full" in str(exc)
assert ob.depth == 5
ob.ack(ob.boot, 0)
assert not ob.full
ob.save(press(7))
ok("full outbox refuses, recovers after an ack")

# the flash filling up is the same clear state, never a silent drop
dev = RamFlash(8, 4096)
vfs.umount("/t")
vfs.VfsLfs2.mkfs(dev, readsize=32, progsize=16)
vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=16), "/t")
ob = Outbox("/t/ob", 100000, 32)
ob.open()
saved = 0
try:
    while saved < 100000:
        ob.save(press(saved))
        saved += 1
        ob.maintain()
except OutboxFull:
    pass
assert 0 < saved < 100000 and ob.depth == saved
ok("flash full reported as outbox full (%d saved)" % saved)

# segments with holes (acked before packing) and wide acks: identities read back from flash
dev = fresh()
ob = Outbox("/t/ob", 100, 4)
b = ob.open()
for n in range(12):
    ob.save(press(n))
assert ob.ack(b, 1) and ob.ack(b, 2)  # holes before packing
assert ob.maintain() and ob.maintain() and not ob.maintain()  # segments 0,3,4,5 and 6..9
assert ob.nseg == 2 and ob.jn == 2 and ob.depth == 10
assert ob.ack(b, 3) and not ob.ack(b, 3) and not ob.ack(b, 1)  # inside the holed segment; repeats refused
assert ob.ack_range(b, 0, 1000) == 9 and ob.depth == 0 and ob.nseg == 0 and ob.jn == 0  # one wide ack
assert os.listdir("/t/ob/s") == [] and os.listdir("/t/ob/j") == []
ok("holed segments and wide acks")

# packing in steps, interleaved with saves and acks (the ticker yields the loop between two steps):
# every event held is walked exactly once, the depth counts them, nothing acked comes back
random.seed(7)
dev = fresh()
ob = Outbox("/t/ob", 1000, 8)
b = ob.open()
held = set()
aborted = written = 0
for n in range(400):
    held.add(ob.save(press(n)))
    for _ in range(random.randint(0, 8)):  # a record's copy is two steps (read, write), its segment's name a third
        was = ob.pk
        more = ob.pack_step()
        if was == 1 and not more:
            aborted += 1
        if was == 1 and ob.pk == 2:
            written += 1
    if random.random() < 0.4 and held:
        keys = sorted(held)
        at = 0 if random.random() < 0.5 else random.randint(0, len(keys) - 1)  # the oldest: the ones being packed
        old = keys[at : at + random.randint(1, 6)]
        lo, hi = old[0][1], old[-1][1]
        done = 0
        for done in ob.ack_steps(b, lo, hi):  # noqa: B007 - its last value is the total
            if random.random() < 0.5:
                ob.pack_step()  # a packing step between two ack steps
        want = [k for k in held if lo <= k[1] <= hi]
        assert done == len(want), (n, done, want)
        held -= set(want)
    if n % 50 == 49 or ob.pk:
        got = ids(ob)
        assert len(got) == len(set(got)) and set(got) == held, (n, ob.pk, sorted(set(got) ^ held))
        assert ob.depth == len(held), (n, ob.depth, len(held))
assert written >= 5 and aborted >= 1, (written, aborted)
while ob.pack_step():
    pass
remount(dev)
ob = Outbox("/t/ob", 1000, 8)
ob.open()
assert set(ids(ob)) == held and ob.depth == len(held)
assert not [n for n in os.listdir("/t/ob/s") if n.endswith(".tmp")]
ok("packing in steps among saves and acks: %d segments, %d restarted, each event held once" % (written, aborted))

# RAM does not grow with the depth: 2,000 events queued, reopened, walked
vfs.umount("/t")
dev = ob = it_ob = None  # the earlier images: the default heap holds one big one at a time
gc.collect()
dev = RamFlash(96, 4096)
vfs.VfsLfs2.mkfs(dev, readsize=32, progsize=16)
vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=16), "/t")
ob = Outbox("/t/ob", 2000, 32)
ob.open()
gc.collect()
empty = gc.mem_alloc()
for n in range(2000):
    ob.save(press(n))
    ob.maintain()
assert ob.full and ob.nseg == 62 and ob.jn == 16, (ob.nseg, ob.jn)
gc.collect()
full = gc.mem_alloc()
assert abs(full - empty) < 4096, (empty, full)  # bounded windows only (the journal's identities)
ob = Outbox("/t/ob", 2000, 32)
ob.open()
assert ob.depth == 2000
seen = 0
last = None
for ev in ob.pending():  # oldest first: strictly increasing identities, so each once
    key = (ev["b"], ev["s"])
    assert last is None or key > last, (last, key)
    last = key
    seen += 1
assert seen == 2000
assert ob.ack_range(ob.boot - 1, 0, 1999) == 2000 and ob.depth == 0
ok("2,000 queued: heap %+d bytes, all walked and acked after a reopen" % (full - empty))

# the next journal file created ahead (prepare, off the press path): the save is one commit into it,
# a wide ack never takes it for an event, a new boot number drops it, a cut leaves nothing behind
dev = fresh()
ob = Outbox("/t/ob", 100, 8)
b = ob.open()
assert ob.prepare() and not ob.prepare()  # once per identity
assert os.listdir("/t/ob/j") == ["%x_0" % b] and ob.depth == 0 and ob.jn == 0
w0 = dev.writes
assert ob.save(press(0)) == (b, 0) and ob.spare is None
one = dev.writes - w0
w0 = dev.writes
assert ob.save(press(1)) == (b, 1)  # no file ready: created, then written
assert one < dev.writes - w0, (one, dev.writes - w0)
assert ob.prepare() and ob.spare_key == (b, 2)
assert ob.ack_range(b, 0, 50) == 2 and ob.depth == 0 and ob.jn == 0  # the ready file is not an event
assert [e for e in ob.pending()] == [] and os.listdir("/t/ob/j") == ["%x_2" % b]
assert ob.raise_floor(b + 5) and ob.boot == b + 5
assert ob.save(press(2)) == (b + 5, 0) and sorted(os.listdir("/t/ob/j")) == ["%x_0" % (b + 5)]
assert ob.prepare()
ob = Outbox("/t/ob", 100, 8)  # a cut with the ready file still empty: the boot removes it
assert ob.open() == b + 6 and ob.depth == 1 and ob.jn == 1 and os.listdir("/t/ob/j") == ["%x_0" % (b + 5)]
ok("next journal file created ahead: one commit per save, never taken for an event")

print("outbox: %d passed" % passed)
sys.exit(0)
