"""Test double of the rp2 port's ``rp2`` module (unix port only).

``Flash()`` is the board's flash: the image ``board_boot.py`` mounted at ``/``
(as ``rp2.Flash()`` is the block device the port's ``_boot.py`` mounts), with
the chip's rules (ports/rp2/rp2_flash.c over the pico-sdk's
``flash_range_program``): a program with an offset writes whole, aligned
256-byte pages (anything else raises ``OSError(EINVAL)`` here; the chip would
wrap inside the page), programming only clears bits (NOR: 0xFF leaves a byte
as it was), and ``writeblocks`` without an offset erases the blocks first.
"""

import hwlink

PAGE = 256


class _Flash:
    def __init__(self, dev):
        self.dev = dev
        self.readblocks = dev.readblocks
        self.ioctl = dev.ioctl
        self.bs = dev.ioctl(5, 0)

    def writeblocks(self, n, buf, off=None):
        if off is None:
            for i in range(len(buf) // self.bs):
                self.dev.ioctl(6, n + i)
            off = 0
        if off % PAGE or len(buf) % PAGE:
            raise OSError(22)
        cur = bytearray(len(buf))
        self.dev.readblocks(n, cur, off)
        for i in range(len(buf)):
            cur[i] &= buf[i]
        self.dev.writeblocks(n, cur, off)


_flash = None


def Flash():  # noqa: N802 - the port's name
    global _flash
    if hwlink.flash is None:
        raise OSError(19)  # ENODEV: no flash image mounted by board_boot.py
    if _flash is None or _flash.dev is not hwlink.flash:
        _flash = _Flash(hwlink.flash)
    return _flash
