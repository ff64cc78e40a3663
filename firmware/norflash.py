"""The RP2040's flash and littlefs with small commits on it.

Apart from ``flashdev`` so that a box that does not need them (the sim board, an
ESP32) does not carry their bytecode in its heap: the unix port and a board
without frozen modules load a whole module into RAM.
"""

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

from firmware.flashdev import IOCTL_BLOCK_COUNT, IOCTL_BLOCK_SIZE, IOCTL_ERASE

RP2_PAGE = 256  # flash_range_program writes whole 256-byte pages (pico-sdk hardware/flash.h)
RP2_ERASE_US = 45000  # one 4 KiB sector erase (W25Q16JV: 45 ms typical)
RP2_PAGE_US = 800  # one page program (0.4-0.8 ms): the slow end, so latency figures stay honest


class NorFlash:
    """A model of a NOR flash with the RP2040's geometry, in RAM.

    Erases whole ``block_size`` sectors; programs only whole, aligned ``page``
    pages (the pico-sdk's ``flash_range_program`` asserts it, and a misaligned
    page program wraps inside the page), with NOR's rule: programming only
    clears bits, so 0xFF bytes leave a cell as it was. ``writeblocks(n, buf)``
    without an offset erases the block first, as ``rp2.Flash`` does. Counts
    ``erases`` and ``pages`` (page programs) and adds their modelled time to
    ``busy_us`` (the bench holds the CPU that long, as the chip does: XIP and
    interrupts are off while the flash is busy).
    """

    def __init__(
        self,
        blocks: int = 352,
        block_size: int = 4096,
        page: int = RP2_PAGE,
        erase_us: int = RP2_ERASE_US,
        page_us: int = RP2_PAGE_US,
    ) -> None:
        self.blocks = blocks
        self.block_size = block_size
        self.page = page
        self.erase_us = erase_us
        self.page_us = page_us
        self.data = bytearray(blocks * block_size)
        blank = b"\xff" * block_size
        for n in range(blocks):
            self.data[n * block_size : (n + 1) * block_size] = blank
        self.erases = 0
        self.pages = 0
        self.writes = 0
        self.busy_us = 0
        self._mv = memoryview(self.data)

    def readblocks(self, n: int, buf: "bytearray", off: int = 0) -> None:
        a = n * self.block_size + off
        buf[:] = self._mv[a : a + len(buf)]  # one copy, no temporary the size of the read

    def _busy(self, us: int) -> None:
        self.busy_us += us

    def _erase(self, n: int) -> None:
        self.erases += 1
        a = n * self.block_size
        self.data[a : a + self.block_size] = b"\xff" * self.block_size
        self._busy(self.erase_us)

    def writeblocks(self, n: int, buf: bytes, off: "int | None" = None) -> None:
        if off is None:
            for i in range(len(buf) // self.block_size):
                self._erase(n + i)
            off = 0
        if off % self.page or len(buf) % self.page:
            raise OSError(22)  # EINVAL: the chip programs whole aligned pages only
        self.writes += 1
        a = n * self.block_size + off
        d = self.data
        for i in range(len(buf)):
            d[a + i] &= buf[i]
        pages = len(buf) // self.page
        self.pages += pages
        self._busy(pages * self.page_us)

    def ioctl(self, op: int, arg: int) -> "int | None":
        if op == IOCTL_BLOCK_COUNT:
            return self.blocks
        if op == IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == IOCTL_ERASE:
            self._erase(arg)
            return 0
        return 0


class PageProgram:
    """littlefs with a program unit smaller than the flash's page.

    The rp2 port mounts its flash with ``progsize=256`` because the chip
    programs whole pages; littlefs then pads every metadata commit to 256
    bytes, so a 4 KiB metadata block holds about 14 commits and saving one
    event (two commits) costs about a sixth of a sector erase. This wrapper
    lets littlefs use ``PROG_SIZE`` (8) instead: a program of part of a page
    is written as the whole page with 0xFF everywhere else, and on NOR flash
    0xFF leaves the cells it covers untouched (littlefs only ever programs
    erased bytes, and its on-disk format does not depend on the program
    size). Reads and erases go straight to the chip.

    ``fill[n]`` is the end of the last program in block ``n`` in 16-byte
    units (0 after an erase) and ``last`` the block last programmed: how full the metadata
    block of the directory just written is, so the app can have littlefs
    compact it before it is full, off the press path.
    """

    PAGE = RP2_PAGE
    PROG_SIZE = 8
    # littlefs's caches are 4 x this: 1 KiB, so a lookup reads a 4 KiB metadata block in 4 calls
    # into the driver (each costs a call from C and, on the chip, a copy out of the XIP window).
    # 1024 (a 4 KiB cache, the whole block) halves a compaction's CPU but every open file then
    # allocates 4 KiB: on the RP2040 model the garbage collections it brings cost more.
    READ_SIZE = 256
    LOOKAHEAD = 32

    def __init__(self, flash: "Any", page: int = RP2_PAGE) -> None:
        self.flash = flash
        self.page = page
        self.block_size: int = flash.ioctl(IOCTL_BLOCK_SIZE, 0)
        self.readblocks = flash.readblocks  # reads straight from the chip
        self._page = bytearray(page)
        self._blank = b"\xff" * page
        self.fill = bytearray(flash.ioctl(IOCTL_BLOCK_COUNT, 0))  # in 16-byte units, 255 = full
        self.last = -1
        self.erases = 0

    def writeblocks(self, n: int, buf: bytes, off: int = 0) -> None:
        page = self.page
        end = off + len(buf)
        if off % page == 0 and len(buf) % page == 0:
            self.flash.writeblocks(n, buf, off)
        else:
            src = memoryview(buf)
            p = off - off % page
            b = self._page
            while p < end:
                lo = max(off, p)
                hi = min(end, p + page)
                b[:] = self._blank
                b[lo - p : hi - p] = src[lo - off : hi - off]
                self.flash.writeblocks(n, b, p)
                p += page
        f = min(255, (end + 15) >> 4)
        if f > self.fill[n]:
            self.fill[n] = f
        self.last = n

    def ioctl(self, op: int, arg: int) -> "int | None":
        if op == IOCTL_ERASE:
            self.fill[arg] = 0
            self.erases += 1
        r: "int | None" = self.flash.ioctl(op, arg)
        return r

    def room(self, n: int) -> int:
        """Bytes left unprogrammed at the end of block ``n`` (e.g. the block of the last commit, ``last``)."""
        return max(0, self.block_size - (self.fill[n] << 4))


def mount_small_commits(flash: "Any", path: str, mkfs: bool = False) -> PageProgram:
    """Mount littlefs on a whole-page flash with ``PageProgram``'s small commits.

    ``mkfs``: format the flash if it does not mount (never on a board: its firmware is on it).
    """
    import vfs

    dev = PageProgram(flash)
    opts = {"readsize": dev.READ_SIZE, "progsize": dev.PROG_SIZE, "lookahead": dev.LOOKAHEAD}
    # mtime=False: no modification-time attribute committed with every file written (one tag
    # and 8 bytes per journal event: its metadata block fills later and compacts faster); the
    # firmware never reads mtimes, and a mount with mtime reads these files as mtime 0.
    try:
        fs = vfs.VfsLfs2(dev, mtime=False, **opts)  # type: ignore[abstract, arg-type, call-arg]
    except OSError:
        if not mkfs:
            raise
        vfs.VfsLfs2.mkfs(dev, **opts)  # type: ignore[arg-type]
        fs = vfs.VfsLfs2(dev, mtime=False, **opts)  # type: ignore[abstract, arg-type, call-arg]
    vfs.mount(fs, path)
    return dev
