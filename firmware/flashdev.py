"""Block devices for littlefs (MicroPython's extended block protocol).

``vfs.VfsLfs2`` calls ``readblocks(n, buf, off)``, ``writeblocks(n, buf,
off)`` (a program of part of an erased block) and ``ioctl(op, arg)``:
4 = block count, 5 = block size, 6 = erase block ``arg``. Erase sets a
block to 0xFF as NOR flash does. ``erases`` and ``writes`` count calls so
the bench and tests can measure flash wear.

``RamFlash`` keeps the image in RAM (tests, bench); ``FileFlash`` mirrors
every write straight into an image file so that killing the process (the
sim's power cut) keeps exactly what was written.
"""

IOCTL_INIT = 1
IOCTL_DEINIT = 2
IOCTL_SYNC = 3
IOCTL_BLOCK_COUNT = 4
IOCTL_BLOCK_SIZE = 5
IOCTL_ERASE = 6
_BLANK = b"\xff" * 256  # erased bytes, written in pieces: no block-sized buffer in a small heap


class RamFlash:
    """A NOR-like flash image in RAM."""

    def __init__(self, blocks: int = 64, block_size: int = 4096, image: "bytearray | None" = None) -> None:
        self.block_size = block_size
        self.blocks = blocks
        if image is None:
            image = bytearray(blocks * block_size)
            blank = b"\xff" * block_size
            for n in range(blocks):
                image[n * block_size : (n + 1) * block_size] = blank
        self.data = image
        self.erases = 0
        self.writes = 0

    def readblocks(self, n: int, buf: "bytearray", off: int = 0) -> None:
        a = n * self.block_size + off
        buf[:] = self.data[a : a + len(buf)]

    def writeblocks(self, n: int, buf: bytes, off: int = 0) -> None:
        self.writes += 1
        a = n * self.block_size + off
        self.data[a : a + len(buf)] = buf

    def ioctl(self, op: int, arg: int) -> "int | None":
        if op == IOCTL_BLOCK_COUNT:
            return self.blocks
        if op == IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == IOCTL_ERASE:
            self.erases += 1
            a = arg * self.block_size
            self.data[a : a + self.block_size] = b"\xff" * self.block_size
            return 0
        return 0


class FileFlash:
    """A flash image kept in a host file; every program/erase is written through."""

    def __init__(self, path: str, blocks: int = 256, block_size: int = 4096) -> None:
        self.block_size = block_size
        self.blocks = blocks
        self.erases = 0
        self.writes = 0
        self.created = False
        try:
            self.f = open(path, "r+b")  # noqa: SIM115 - the image stays open for the box's life
        except OSError:
            self.created = True
            self.f = open(path, "w+b")  # noqa: SIM115 - the image stays open for the box's life
            for _ in range(blocks * block_size // len(_BLANK)):
                self.f.write(_BLANK)
            self.f.flush()

    def readblocks(self, n: int, buf: "bytearray", off: int = 0) -> None:
        self.f.seek(n * self.block_size + off)
        self.f.readinto(buf)

    def writeblocks(self, n: int, buf: bytes, off: int = 0) -> None:
        self.writes += 1
        self.f.seek(n * self.block_size + off)
        self.f.write(buf)
        self.f.flush()

    def ioctl(self, op: int, arg: int) -> "int | None":
        if op == IOCTL_BLOCK_COUNT:
            return self.blocks
        if op == IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == IOCTL_ERASE:
            self.erases += 1
            self.f.seek(arg * self.block_size)
            for _ in range(self.block_size // len(_BLANK)):
                self.f.write(_BLANK)
            self.f.flush()
            return 0
        if op == IOCTL_SYNC:
            self.f.flush()
        return 0
