"""The boot pointer's decisions on the real MicroPython (tests/firmware/test_ota.py).

A fresh box boots the base install; a switched slot boots in trial and
counts its boots; a crash loop, a watchdog reset without a crash note and
an incomplete slot each roll back to the previous slot with the reason kept;
``activate`` makes ``import firmware...`` load from the slot.
"""

import json
import os

import vfs

from firmware import slots
from firmware.flashdev import RamFlash
from firmware.outbox import write_atomic

ROOT = "/sl"
passed = 0


def ok(what: str) -> None:
    global passed
    passed += 1
    print("ok", what)


def fresh() -> None:
    try:
        vfs.umount(ROOT)
    except OSError:
        pass
    dev = RamFlash(32, 4096)
    vfs.VfsLfs2.mkfs(dev)
    vfs.mount(vfs.VfsLfs2(dev), ROOT)


def put_slot(slot: str, ver: str, marker: str) -> None:
    d = slots.slot_dir(ROOT, slot)
    for p in (ROOT + "/fw", d, d + "/firmware"):
        try:
            os.mkdir(p)
        except OSError:
            pass
    with open(d + "/firmware/__init__.py", "w") as f:
        f.write("")
    with open(d + "/firmware/marker.py", "w") as f:
        f.write("WHO = %r\n" % marker)
    write_atomic(d + "/release.json", json.dumps({"ver": ver, "board": "sim", "floor": "0.0.0"}).encode())


fresh()
ptr = slots.decide(ROOT, "power_on", False)
assert ptr["run"] == "" and not ptr["trial"], ptr
ok("a fresh box boots the base install")

put_slot("a", "1.1.0", "slot a")
slots.switch(ROOT, "a", "1.1.0")
ptr = slots.decide(ROOT, "watchdog", False)  # rp2's machine.reset() reads as a watchdog reset
assert ptr["run"] == "a" and ptr["trial"] == 1 and ptr["boots"] == 1, ptr
slots.activate(ROOT, "a")
from firmware import marker  # noqa: E402

assert marker.WHO == "slot a", marker.WHO
slots.activate(ROOT, slots.BASE)  # back to this checkout's modules (the test slot holds only the marker)
ok("the switched slot boots in trial and its modules load from it")

slots.commit(ROOT, "1.1.0")
ptr = slots.decide(ROOT, "watchdog", False)
assert ptr["run"] == "a" and not ptr["trial"] and ptr["floor"] == "1.1.0", ptr
ok("after commit a watchdog reset is just a reset; the floor is the release's")

put_slot("b", "1.2.0", "slot b")
slots.switch(ROOT, "b", "1.2.0")
for n in range(slots.TRIAL_BOOTS):
    ptr = slots.decide(ROOT, "power_on", n > 0)
    assert ptr["run"] == "b" and ptr["boots"] == n + 1, ptr
ptr = slots.decide(ROOT, "power_on", True)
assert ptr["run"] == "a" and ptr["ver"] == "1.1.0" and not ptr["trial"], ptr
assert ptr["why"] == "rolled back from 1.2.0: crash loop: 3 resets during trial", ptr["why"]
ok("a crash loop in trial rolls back, reason kept")

slots.switch(ROOT, "b", "1.2.0")
slots.decide(ROOT, "watchdog", False)
ptr = slots.decide(ROOT, "watchdog", False)
assert ptr["run"] == "a" and ptr["why"] == "rolled back from 1.2.0: watchdog reset during trial", ptr
ok("a watchdog reset during trial rolls back")

slots.switch(ROOT, "b", "1.2.0")
slots.decide(ROOT, "watchdog", False)
ptr = slots.decide(ROOT, "watchdog", True)  # the crash note: a crash, counted, not a hang
assert ptr["run"] == "b" and ptr["boots"] == 2, ptr
ok("a crash in trial counts toward the loop, not as a hang")

os.remove(slots.slot_dir(ROOT, "b") + "/release.json")
ptr = slots.decide(ROOT, "power_on", False)
assert ptr["run"] == "a" and "slot b incomplete" in ptr["why"], ptr
ok("an incomplete slot is never booted")

with open(ROOT + "/fw/boot", "w") as f:
    f.write("{not json")
ptr = slots.decide(ROOT, "power_on", False)
assert ptr["run"] == "" and not ptr["trial"], ptr
ok("an unreadable pointer boots the base install")

print("slots: %d passed" % passed)
