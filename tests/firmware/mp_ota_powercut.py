"""Firmware updates under power cuts, on the real MicroPython (tests/firmware/test_ota.py).

    micropython mp_ota_powercut.py PUBKEY_HEX REL1 REL2 REL3

The RAM flash of mp_powercut.py fails (drops, or tears) its N-th program or
erase and every later one. The scripted run: an outbox with saved events,
then three updates one after another, each received in 256-byte chunks
(``firmware/ota.py`` ``begin``/``append``), checked (``firmware/release.py``),
installed into the idle slot (``install_steps``), switched to
(``slots.switch``), booted in trial (``slots.decide``) and committed, the
third one overwriting the slot of the first while the second runs. For every
N, remount what the flash holds and boot as the box would (``slots.decide``):
the filesystem mounts, the slot it boots is the base install or a complete
slot whose every file has the SHA-256 its release names, and the outbox
holds every saved event exactly once. Prints ``cut points: N tried, M
failures`` last.
"""

import hashlib
import os
import sys
from binascii import hexlify, unhexlify

import vfs

from firmware import install, ota, release, slots
from firmware.flashdev import RamFlash
from firmware.outbox import Outbox, OutboxError

sys.path.insert(0, "tests/firmware")
from mp_powercut import BLOCKS, BS, CutFlash, check_outbox, press  # noqa: E402

ROOT = "/pc"
PUB = unhexlify(sys.argv[1])
RELEASES = sys.argv[2:5]
CFG = {"board": "sim", "release_pubkey": sys.argv[1]}


def manifest(path: str) -> dict:
    return release.verify_release(path, PUB, release.BoxState("sim", mpy=None))


MANIFESTS = [manifest(p) for p in RELEASES]


def mount(dev: RamFlash) -> None:
    vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=16), ROOT)


def umount() -> None:
    try:
        vfs.umount(ROOT)
    except OSError:
        pass


def update(src: str, m: dict, dev: CutFlash) -> bool:
    """One whole update as the box does it; False when the power went."""
    rx = ota.begin(ROOT, "r" + m["version"].replace(".", ""), os.stat(src)[6])
    with open(src, "rb") as f:
        while True:
            data = f.read(256)
            if not data:
                break
            ota.append(rx, data)
            if dev.dead:
                return False
    os.rename(rx, ROOT + "/fw/new")  # the last byte is in: the box resets
    if dev.dead:
        return False
    os.rename(rx + ".id", ROOT + "/fw/new.id")
    if dev.dead:
        return False
    boot(dev)  # the boot checks and installs it, then boots it on trial
    if dev.dead:
        return False
    ptr = slots.read(ROOT)
    assert ptr["ver"] == m["version"] and ptr["trial"] == 1 and ptr["boots"] == 1, ptr
    slots.commit(ROOT, m["min_version"])
    return not dev.dead


def boot(dev: "RamFlash") -> dict:
    """What the box does at power-up before the app: install what waits (firmware/install.py), pick the slot."""
    if slots._waiting(ROOT):
        install.pending(ROOT, CFG)
        if getattr(dev, "dead", False):
            return {}
    return slots.decide(ROOT, "watchdog", False)  # rp2: the reset reads as a watchdog reset


def scenario(dev: CutFlash, saved: dict) -> None:
    ob = Outbox(ROOT + "/ob", 1000, 8)
    ob.open()
    for n in range(6):
        saved[ob.save(press(n))] = press(n)
        if dev.dead:
            return
    for n in range(len(RELEASES)):
        src, m = RELEASES[n], MANIFESTS[n]
        if not update(src, m, dev):
            return
        saved[ob.save(press(50))] = press(50)  # the outbox in use between updates
        if dev.dead:
            return


def slot_ok(ptr: dict) -> "str | None":
    """None if the slot ``ptr`` boots is whole: every file of its release with the right SHA-256."""
    slot = ptr["run"]
    if slot == slots.BASE:
        return None
    info = slots.installed(ROOT, slot)
    if info is None:
        return "boots incomplete slot %s" % slot
    m = [x for x in MANIFESTS if x["version"] == info["ver"]]
    if not m or ptr["ver"] != info["ver"]:
        return "slot %s holds %r, pointer says %r" % (slot, info.get("ver"), ptr["ver"])
    for entry in m[0]["files"]:
        try:
            with open(slots.slot_dir(ROOT, slot) + "/" + entry["path"], "rb") as f:
                digest = hexlify(hashlib.sha256(f.read()).digest()).decode()
        except OSError:
            return "slot %s lacks %s" % (slot, entry["path"])
        if digest != entry["sha256"]:
            return "slot %s: %s damaged" % (slot, entry["path"])
    return None


def run_once(base: bytearray, cut_at: int, tear: bool) -> "tuple[int, list[str], dict]":
    dev = CutFlash(bytearray(base), cut_at, tear)
    mount(dev)
    saved: dict = {}
    try:
        scenario(dev, saved)
    except (OSError, OutboxError):
        pass  # the cut surfaced as an I/O error
    umount()
    after = RamFlash(BLOCKS, BS, bytearray(dev.data))
    try:
        mount(after)
    except OSError as exc:
        return dev.step, ["mount failed: %r" % exc], {}
    errors = []
    boot(after)  # the next power-up: a release left waiting is installed (or not) now
    ptr = slots.decide(ROOT, "power_on", False)  # and the one after
    bad = slot_ok(ptr)
    if bad:
        errors.append(bad)
    errors += check_outbox(ROOT + "/ob", saved)[2]
    umount()
    return dev.step, errors, ptr


def main() -> int:
    base_dev = RamFlash(BLOCKS, BS)
    vfs.VfsLfs2.mkfs(base_dev, readsize=32, progsize=16)
    base = bytearray(base_dev.data)
    total, errors, ptr = run_once(base, 0, False)
    if errors or ptr["ver"] != MANIFESTS[-1]["version"] or ptr["trial"]:
        print("baseline failed:", errors, ptr)
        return 1
    print("baseline: runs %s in slot %s, floor %s" % (ptr["ver"], ptr["run"], ptr["floor"]))
    step = int(os.getenv("CUT_STEP") or "1")
    tried = failures = 0
    versions: dict = {}
    for cut_at in range(1, total + 1, step):
        for tear in (False, True):
            tried += 1
            _n, errors, ptr = run_once(base, cut_at, tear)
            versions[ptr.get("ver")] = versions.get(ptr.get("ver"), 0) + 1
            if errors:
                failures += 1
                print("cut %d tear=%s: %s" % (cut_at, tear, "; ".join(errors[:3])))
    print(
        "booted after a cut: %s" % ", ".join("%s x%d" % (v or "base", versions[v]) for v in sorted(versions, key=str))
    )
    print("write steps in the run: %d" % total)
    print("cut points: %d tried, %d failures" % (tried, failures))
    return 1 if failures else 0


sys.exit(main())
