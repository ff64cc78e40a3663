"""Boot a real board's deployed firmware on the unix port, as the chip's ROM and ``_boot.py`` do.

    EVALBOX_HW=<hw.json> MICROPYPATH=<repo>/tests/firmware/doubles:<repo>:.frozen \\
        micropython tests/firmware/board_boot.py

(``tests/firmware/boardbox.py`` does this.) The flash is an image file
(``firmware/flashdev.FileFlash``: every program/erase written through, so
SIGKILL is a power cut) mounted as littlefs at ``/`` with the port's own
options (rp2: ``progsize=256``, as ports/rp2/modules/_boot.py); the host's
files move to ``/host``. On a blank image the deploy tree is copied in first
(what ``tools/deploy_box.sh`` copies with mpremote: the mpy-cross output,
``/box.json``, ``/main.py``). Then ``/main.py`` runs from the flash exactly
as on the board; only ``machine``, ``network`` and ``ntptime`` (the silicon)
come from the doubles. When main returns (config error, maintenance mode)
the board sits in its REPL: the process stays up and says so.
"""

import os
import sys
import time

import hwlink  # connects to the bench first: the doubles report from the first instruction on
import vfs

HW = hwlink.CFG
MOUNT_OPTS = {"rp2040": {"progsize": 256}, "rp2350": {"progsize": 256}, "esp32": {}}[HW["port"]]


def _flash():
    from firmware.flashdev import FileFlash

    dev = FileFlash(HW["flash"], HW["blocks"], 4096)
    # the firmware package is imported again from the flash below, not from the host
    for name in [n for n in sys.modules if n == "firmware" or n.startswith("firmware.")]:
        del sys.modules[name]
    return dev


def _copy_tree(src, dst):
    for name, kind, *_ in os.ilistdir(src):
        s = src + "/" + name
        d = dst + "/" + name if dst != "/" else "/" + name
        if kind == 0x4000:
            try:
                os.mkdir(d)
            except OSError:
                pass
            _copy_tree(s, d)
        else:
            with open(s, "rb") as fi, open(d, "wb") as fo:
                fo.write(fi.read())


def boot():
    dev = _flash()
    host = vfs.VfsPosix("/")
    vfs.umount("/")
    try:
        fs = vfs.VfsLfs2(dev, **MOUNT_OPTS)
    except OSError:
        vfs.VfsLfs2.mkfs(dev, **MOUNT_OPTS)
        fs = vfs.VfsLfs2(dev, **MOUNT_OPTS)
    vfs.mount(fs, "/")
    hwlink.flash = dev  # rp2.Flash() (the rp2 double): the rp2 boards mount it again with small commits
    vfs.mount(host, "/host")
    hwlink.host = "/host"
    os.chdir("/")
    if HW.get("deploy") and "main.py" not in os.listdir("/"):
        _copy_tree("/host" + HW["deploy"], "/")
    # the board's sys.path, then the silicon doubles (nothing else of the host's)
    sys.path[:] = ["", ".frozen", "/lib", "/host" + HW["doubles"]]


boot()
try:
    import main  # noqa: F401 - the device's /main.py: ``import firmware.main``
except BaseException as exc:  # as the board's REPL would print it
    sys.print_exception(exc)
hwlink.send({"ev": "repl"})
while True:  # the REPL: idle, the bench's pin changes still arrive
    hwlink.pump()
    time.sleep_ms(50)
