"""Benchmark the box firmware on the MicroPython unix port.

    .venv/bin/python bench/firmware.py            # re-runs itself under `micropython`
    MICROPYPATH=.:.frozen micropython -X heapsize=8M bench/firmware.py [presses]

Drives the real ``App`` (session rules, outbox on littlefs, feedback) on a
littlefs RAM flash (256 x 4 KiB, erase calls counted: ioctl op 6). Each case
is an invite then a press, as on a gated counter; acks arrive 8 events late,
as signed messages through ``on_downlink``, from a live collector, and each
event is signed as the sender would. Measures press -> feedback latency (on-CPU time; the outbox
write included; packing the journal into segments runs between presses, as
the ticker does), heap after the presses vs after warm-up (``gc.mem_alloc()``
after ``gc.collect()``), and flash erases per press. Also prints erases per
press with the collector unreachable (every event packed into segments)
and with MicroPython's default littlefs mount.

On the RP2040's flash (``NorFlash``: 4 KiB erase sectors, whole 256-byte
page programs, 45 ms per erase and 0.8 ms per page): erases and page
programs per invite+press pair, and erases inside a press, with littlefs
mounted as the rp2 port ships it (``progsize=256``) and as the rp2 boards
mount it (``norflash.mount_small_commits``). Then (``--loop``, its own
process with as much free heap as the RP2040's: ``LOOP_HEAP``, 560 KB,
~380 KB of it free, for the rp2 port's ~190 KB free of 32-bit words; the
chip flash model's image kept in a file, out of the heap, so collections
come about as often as on the chip and sweep about as many blocks)
the whole app on one asyncio loop, the real key task polling pins (hard pin
IRQs timing the edges), slowed to the RP2040's speed: every step a task
takes holds the loop for scale times its on-CPU time (wall time less the
time the process waited for a CPU, from ``/proc/self/schedstat``; less the
clock reading's own ~6 us, which is bench work), scale = 0.33 s / this
machine's on-CPU time for a 100,000-iteration ``while i < n: i += 1``
(timed in the same run and every 3 s), and every flash read, erase and
page program holds it for the chip's time instead of the model's own work,
as does every pin read or write (``RP2_PIN_US``: the pin model is Python
here, C on the chip). Keys go down at random moments and stay down 150 ms
(clean edges); key-down -> feedback (the key's confirmation, box.json
``debounce_ms``, 10 ms by default, included) online and with the
collector unreachable, and the longest loop stall online, offline
(packing) and during the offline -> online flush. The feedback's moment is
the chip's: the start of the key task's step plus that step's CPU so far,
scaled, and its flash time (the bench before 2026-12-01 took the unix
port's clock inside that step, leaving the press's own save unscaled; that
figure is still printed, "feedback step unscaled"). ``--trace`` prints, for
each press slower than 80 ms, the steps that held the loop between its
key-down and its light, by task (``keys`` the key task, ``link`` the data
channel's, ``ticker``, ``sender``, ``heartbeat``, ``supervisor``), with the
firmware calls in each and their modelled time; ``autogc`` marks a step in
which the heap forced a collection (heap freed without an explicit
``gc.collect()``). What the model still overstates: the bench's own code
and figures are live heap the chip does not hold (a collection marks about
twice the chip's words), and the firmware is compiled from source here,
not loaded as .mpy.

Last line: JSON ``{"press_feedback_p50_ms", "press_feedback_p99_ms",
"heap_growth_bytes", "erases_per_press", "erases_per_press_rp2",
"erases_per_press_rp2_as_shipped", "page_programs_per_press_rp2",
"erases_on_press_path_rp2", "press_feedback_p99_rp2_ms",
"press_feedback_p50_rp2_ms", "press_feedback_p99_offline_ms",
"offline_online_p99_ratio", "max_loop_stall_ms", "keys_missed_rp2",
"rp2_cpu_scale"}``
(``*_rp2`` and the loop figures are modelled RP2040 time; "press" there is
one invite+press pair).
"""

import sys

# The loop part's heap: as much free as the RP2040's. The rp2 port's heap is ~230 KB of 16-byte
# blocks, ~190 KB free with the app loaded (issue 14): ~380 KB of this 64-bit port's words. The
# bench process holds ~170 KB (the firmware compiled from source, not .mpy; the bench's own code
# and figures), so 560 KB leaves the chip's free space: collections come as often as there and
# sweep ~20% more blocks (until 2026-12-01 the loop ran in 1 MB with the 384 KB flash image in the
# heap too, which every collection scanned: collections cost 2-3 times the chip's). --trace keeps
# its records in the heap too: 64 KB more then.
LOOP_HEAP = "560k"
TRACE_HEAP = "624k"

if sys.implementation.name != "micropython":  # CPython: run this file under the real interpreter
    import json
    import os
    import pathlib
    import subprocess

    root = pathlib.Path(__file__).resolve().parents[1]
    exe = pathlib.Path(sys.executable).parent / "micropython"
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % root)
    figures = {}
    for heap, extra in (("8M", []), (TRACE_HEAP if "--trace" in sys.argv else LOOP_HEAP, ["--loop"])):
        proc = subprocess.run(
            [str(exe), "-X", "heapsize=" + heap, __file__] + sys.argv[1:] + extra,
            env=env,
            cwd=str(root),
            stdout=subprocess.PIPE,
            text=True,
        )
        lines = proc.stdout.strip().splitlines()
        print("\n".join(lines[:-1]), flush=True)
        if proc.returncode != 0 or not lines:
            print(lines[-1] if lines else "", flush=True)
            sys.exit(proc.returncode or 1)
        figures.update(json.loads(lines[-1]))
    print(json.dumps(figures))
    sys.exit(0)

# this file is itself called "firmware": keep its directory off the path, put the repo root first
_bench = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path[:] = [p for p in sys.path if p not in (_bench, "bench")]
sys.path.insert(0, _bench.rsplit("/", 1)[0] if "/" in _bench else ".")
if "firmware" in sys.modules:
    del sys.modules["firmware"]

import asyncio  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402

import vfs  # noqa: E402

import protocol  # noqa: E402
from firmware.app import App  # noqa: E402
from firmware.config import validate  # noqa: E402
from firmware.flashdev import RamFlash  # noqa: E402
from firmware.norflash import RP2_ERASE_US, RP2_PAGE, RP2_PAGE_US, NorFlash, PageProgram, mount_small_commits  # noqa: E402

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

KEY_HEX = "00" * 32


class BenchBoard:
    """Feedback records the time it is given; nothing else."""

    def __init__(self, flash: "Any" = None) -> None:
        self.fb_us = 0
        self.flash = flash

    def feedback(self, kind: str, k: int) -> None:
        self.fb_us = CPU.us()

    def show_full(self, full: bool) -> None:
        pass

    def self_test(self) -> str:
        return "ok"


def bench_config() -> "dict[str, Any]":
    return validate(
        {
            "device_id": "bench-1",
            "key_hex": KEY_HEX,
            "transport": "serial",
            "board": "esp32",
            "officer": "A1",
            "min_interval_ms": 0,
            "outbox_capacity": 100000,
        }
    )


def make_app(dev: "Any", mount: str, prog: int = 16, board: "Any" = None) -> App:
    if prog:  # readsize 32 gives a 128-byte cache, so records up to 128 bytes stay inline
        vfs.VfsLfs2.mkfs(dev, readsize=32, progsize=prog)
        vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=prog), mount)
    app = App(bench_config(), board or BenchBoard(), mount)
    app.start()
    app.set_clock(1761926399000)
    return app


def signed_ack(app: App, b: int, lo: int, hi: int) -> bytes:
    msg = protocol.make(protocol.ACK, app.device, r=[[b, lo, hi]], now=1761926399000, bf=None)
    return protocol.encode(msg, app.key)


def sign_oldest(app: App, n: int) -> None:
    for ev in app.outbox.pending():
        app.event_message(ev)
        n -= 1
        if n == 0:
            break


def run(app: App, presses: int, lag: int, lat: "list[int] | None", signed: bool = False, on_path: "Any" = None) -> None:
    """``presses`` cases (invite + press); ack everything ``lag`` events late (0 = never).

    ``on_path``: a flash device whose erases during ``on_invite``/``on_key`` are counted in ``on_path.path_erases``.
    """
    ob = app.outbox
    board = app.board
    waiting = []
    for n in range(presses):
        e0 = on_path.erases if on_path is not None else 0
        r = app.on_invite(None)
        waiting.append((r["id"][1], r["id"][2]))
        t0 = CPU.us()  # on-CPU time: another process's time slice is not the box's latency
        r = app.on_key(1 + n % 2)
        if lat is not None:
            lat[n] = time.ticks_diff(board.fb_us, t0)
        if not r["ok"]:
            raise RuntimeError("press failed: %r" % r)
        if on_path is not None:
            on_path.path_erases += on_path.erases - e0
        waiting.append((r["id"][1], r["id"][2]))
        ob.maintain()
        if lag and len(waiting) > lag:
            b, s = waiting.pop(0)
            b2, s2 = waiting.pop(0)
            if signed:  # the sender's work (sign the events) and a signed ack through on_downlink
                sign_oldest(app, 2)
                app.on_downlink(signed_ack(app, b, s, s2))
            else:
                app._on_ack({"r": [[b, s, s2]], "now": 1761926399000, "bf": None})
            for _ in app.apply_acks():  # the ticker's steps, all at once
                pass
        while app.maintain_flash():  # the ticker's flash step, before the next press
            pass
    for b, s in waiting:
        app._on_ack({"r": [[b, s, s]], "now": 1761926399000, "bf": None})
        for _ in app.apply_acks():
            pass


def pct(sorted_us: "list[int]", p: float) -> float:
    i = min(len(sorted_us) - 1, int(p * len(sorted_us)))
    return sorted_us[i] / 1000


# ---- the RP2040's flash: geometry, wear, and the time a key waits ----

RP2_BLOCKS = 352  # the Pico's 1408 KiB littlefs (ports/rp2 boards/RPI_PICO: MICROPY_HW_FLASH_STORAGE_BYTES)
LOOP_BLOCKS = 96  # a smaller image for the loop part (it holds a few hundred events), so its heap stays near a board's
CALIB_N = 100000
CALIB_RP2_US = 330000  # the loop below on an RP2040 at 125 MHz under MicroPython 1.28
# a ``Pin.value()`` on the chip: a call into C, about as long as ten bytecodes there (the
# calibration loop's iteration, ~8 bytecodes, takes 3.3 us); the bench's pin model is Python and
# would cost 100-250 times its unix CPU instead, so its CPU is left out and this charged
RP2_PIN_US = 5
RP2_CALL_US = 3  # littlefs's call into rp2.Flash.readblocks (C there; this bench's driver is Python)
RP2_READ_US = 10  # 256 bytes copied out of the XIP window (QSPI at 62.5 MHz, cache missed: ~25 MB/s)


class CpuClock:
    """Microsecond on-CPU time of the steps and of the calibration loop.

    Wall time (``time.ticks_us``) less the time this process waited for a CPU while it was
    runnable (``run_delay``, the second field of ``/proc/self/schedstat``, which the kernel brings
    up to date each time the process gets a CPU back, so it is exact whenever this process reads
    it). On a shared, loaded machine a wall-time measure counts a preemption as the box's work and
    multiplies it by the scale; the calibration loop (a few ms) is preempted more often than the
    short steps, so a wall-time scale came out too small (x7-x63 over one run) and the modelled
    tail too short. Without ``/proc`` (another OS) it falls back to wall time.
    """

    def __init__(self) -> None:
        try:
            self.stat: "Any" = open("/proc/self/schedstat", "rb")  # noqa: SIM115 - open for the run
            self._delay()
        except (OSError, ValueError, IndexError):
            self.stat = None

    def _delay(self) -> int:
        self.stat.seek(0)
        return int(self.stat.read().split()[1]) // 1000

    def us(self) -> int:
        if self.stat is None:
            return int(time.ticks_us())
        d = self._delay()
        while True:
            # the clock read between two equal readings of the delay: a preemption between the
            # clock and the delay would count the time waited as CPU (times the scale)
            t: int = time.ticks_us()
            d1 = self._delay()
            if d1 == d:
                return int(time.ticks_add(t, -d))
            d = d1


CPU = CpuClock()


def clock_overhead(times: int = 301) -> int:
    """The CPU time one ``CPU.us()`` reading adds to what it times (the median of back-to-back readings).

    A step's CPU is the difference of two readings, and about one reading's own work (two reads of
    ``/proc/self/schedstat``: ~6 us here) falls inside it; scaled x100-x250, that would add 1-1.5 ms
    of bench work to every step of every task, which the chip does not do. Subtracted from each step.
    """
    ts = []
    for _ in range(times):
        a = CPU.us()
        ts.append(time.ticks_diff(CPU.us(), a))
    ts.sort()
    return int(ts[times // 2])


def calib_loop(n: int) -> int:
    """``while i < n: i += 1``, its CPU time in microseconds."""
    t0 = CPU.us()
    i = 0
    while i < n:
        i += 1
    return time.ticks_diff(CPU.us(), t0)


def calibrate(times: int = 7, n: int = CALIB_N) -> float:
    """The median of a few timings of the calibration loop on this machine, now, scaled to 100,000 iterations."""
    ts = sorted(calib_loop(n) for _ in range(times))
    return ts[len(ts) // 2] * CALIB_N / n


def mount_as_shipped(flash: NorFlash, mount: str) -> None:
    # ports/rp2/modules/_boot.py: progsize=256; readsize and lookahead keep extmod/vfs_lfs.c's default of 32
    vfs.VfsLfs2.mkfs(flash, progsize=256)
    vfs.mount(vfs.VfsLfs2(flash, progsize=256), mount)


def wear_rp2(pairs: int, tuned: bool, mount: str) -> "tuple[float, float, int]":
    """Erases and page programs per invite+press pair on the RP2040's flash; erases inside a press."""
    flash = NorFlash(RP2_BLOCKS)
    if tuned:
        # what the rp2 boards mount (firmware/boards/pins.py)
        board = BenchBoard(mount_small_commits(flash, mount, True))
    else:
        mount_as_shipped(flash, mount)
        board = BenchBoard()
    app = make_app(flash, mount, 0, board)
    run(app, 300, 8, None)  # warm-up: the journal's directory reaches its steady size
    e0 = flash.erases
    p0 = flash.pages
    flash.path_erases = 0  # type: ignore[attr-defined]
    run(app, pairs, 8, None, True, on_path=flash)
    out = ((flash.erases - e0) / pairs, (flash.pages - p0) / pairs, flash.path_erases)  # type: ignore[attr-defined]
    vfs.umount(mount)
    return out


class Dilation:
    """Run the unix port at the RP2040's speed: each step of a task holds the loop ``scale`` times its CPU time.

    A step is one ``send`` into the task's coroutine (from one ``await`` to the next): the time
    the task holds the loop. After the step the bench spins until the step has held the loop for
    ``scale`` x its on-CPU time plus the flash's modelled busy time (``ChipFlash``: the chip holds
    the CPU while it erases or programs); the chip model's own Python work (emulating the NOR
    program and erase) is not the box's and is left out. Key-down times, sleeps and timeouts
    stay real, so a key that goes down while another task holds the loop waits for it exactly as
    on the board.
    """

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.milli = int(scale * 1000)
        self.scales = [scale]  # every recalibration during the run
        self.flash_us = 0  # modelled flash busy time
        self.model_cpu = 0  # CPU time inside the chip model (its emulation and its busy spins)
        self.exempt: "list[Any]" = []  # coroutines of the bench itself (the collector, the key driver)
        self.longest: "dict[str, float]" = {}  # task -> its longest step, modelled microseconds
        self.step: "Any" = None  # the step running now: [wall start, CPU start, flash_us, model_cpu] at its start
        self.trace: "Any" = None  # --trace: the last steps (name, wall start, modelled us held, erases in it, calls)
        self.label: "list[str]" = []  # --trace: the calls made in the step running now
        self.overhead = clock_overhead()  # the clock's own CPU inside a step's reading (bench work)

    def spin(self, us: int) -> None:
        end = time.ticks_add(time.ticks_us(), us)
        while time.ticks_diff(end, time.ticks_us()) > 0:
            Machine.deliver()  # the chip takes pin IRQs while a step runs

    def chip(self, c0: int, busy_us: int) -> None:
        """A flash operation whose model work began at the CPU reading ``c0``; the chip is busy ``busy_us``.

        Everything from ``c0`` to the end is the model's (its work, the busy spin), and so is about
        one clock reading's own CPU outside that span (the first reading's half before its clock,
        the last one's half after): none of it is the box's.
        """
        model_us = time.ticks_diff(CPU.us(), c0)
        w0 = time.ticks_us()
        self.flash_us += busy_us
        end = time.ticks_add(w0, busy_us - model_us)
        while time.ticks_diff(end, time.ticks_us()) > 0:  # interrupts off: no pin handler meanwhile
            pass
        Machine.masked = (time.ticks_add(w0, -model_us), time.ticks_us())
        self.model_cpu += time.ticks_diff(CPU.us(), c0) + self.overhead

    def now(self) -> int:
        """ticks_us on the chip: inside a step, its start plus its CPU so far scaled and its flash time."""
        st = self.step
        if st is None:
            return int(time.ticks_us())
        w0, t0, f0, m0 = st
        cpu = max(0, time.ticks_diff(CPU.us(), t0) - (self.model_cpu - m0) - self.overhead)
        return int(time.ticks_add(w0, self.milli * cpu // 1000 + self.flash_us - f0))

    def recalibrate(self) -> None:
        """The machine's speed changes with its load: keep the scale current (median of the last 9)."""
        self.scales.append(CALIB_RP2_US / max(1.0, calibrate(3)))
        recent = sorted(self.scales[-9:])
        self.scale = recent[len(recent) // 2]
        self.milli = int(self.scale * 1000)

    def wrap(self, coro: "Any", name: "str | None" = None) -> "Any":
        if coro in self.exempt:
            return coro
        return _Slow(coro, self, name)


class ChipFlash(NorFlash):
    """``NorFlash`` whose reads, programs and erases hold the loop for the chip's time, not the model's.

    The model's own Python work (copying, the NOR rule) stands for what the chip does in
    hardware or in C, so it is left out of the box's CPU, and the chip's time is charged instead:
    ``RP2_ERASE_US`` per sector, ``RP2_PAGE_US`` per page, and for a read the copy out of the
    XIP window (``RP2_READ_US`` per 256 bytes) and the call into ``rp2.Flash.readblocks``, which is
    C on the chip (``RP2_CALL_US``; until 2026-12-01 this Python method's own CPU was charged,
    scaled: ~0.2 ms a read, and a press's save makes tens of reads).

    The flash's contents are kept in a file, not in the Python heap: on the chip they are not in
    RAM, and a 384 KiB bytearray in the heap is scanned by every garbage collection (MicroPython
    scans every reachable block for pointers), which more than doubled a collection's time.
    """

    reads = 0
    erased = 0

    def __init__(self, blocks: int, dil: Dilation, path: str = "/tmp/evalbox-bench-flash-%d") -> None:
        # NorFlash's state without its bytearray image
        self.blocks = blocks
        self.block_size = 4096
        self.page = RP2_PAGE
        self.erase_us = RP2_ERASE_US
        self.page_us = RP2_PAGE_US
        self.erases = 0
        self.pages = 0
        self.writes = 0
        self.busy_us = 0
        self.dil = dil
        self.path = path % time.ticks_us()  # no getpid on this port
        self.f: "Any" = open(self.path, "w+b")  # noqa: SIM115 - open for the run
        self._blank = b"\xff" * self.block_size
        self._cell = bytearray(self.page)
        for _ in range(blocks):
            self.f.write(self._blank)

    def close(self) -> None:
        import os

        self.f.close()
        os.remove(self.path)

    def _erase(self, n: int) -> None:
        self.erases += 1
        self.f.seek(n * self.block_size)
        self.f.write(self._blank)
        self._busy(self.erase_us)

    def _program(self, a: int, buf: "Any") -> None:
        """NOR: programming only clears bits (0xFF leaves a byte as it was)."""
        cell = self._cell
        f = self.f
        for p in range(0, len(buf), self.page):
            f.seek(a + p)
            f.readinto(cell)
            for i in range(self.page):
                cell[i] &= buf[p + i]
            f.seek(a + p)
            f.write(cell)

    def readblocks(self, n: int, buf: "bytearray", off: int = 0) -> None:
        t0 = time.ticks_us()  # wall time, not CPU: two clock reads of a syscall each would cost more than the copy
        self.f.seek(n * self.block_size + off)
        self.f.readinto(buf)
        ChipFlash.reads += 1
        d = self.dil
        d.flash_us += (len(buf) * RP2_READ_US + 255) // 256 + RP2_CALL_US
        d.model_cpu += time.ticks_diff(time.ticks_us(), t0)  # the last thing: all of this method is the model's

    def writeblocks(self, n: int, buf: bytes, off: "int | None" = None) -> None:
        c0 = CPU.us()
        b0 = self.busy_us
        if off is None:  # as NorFlash: whole blocks, erased first
            for i in range(len(buf) // self.block_size):
                self._erase(n + i)
            off = 0
        if off % self.page or len(buf) % self.page:
            raise OSError(22)
        self.writes += 1
        self._program(n * self.block_size + off, buf)
        pages = len(buf) // self.page
        self.pages += pages
        self._busy(pages * self.page_us)
        self.dil.chip(c0, self.busy_us - b0)

    def ioctl(self, op: int, arg: int) -> "int | None":
        if op != 6:  # no flash work (sync, geometry): a C call on the chip
            t0 = time.ticks_us()
            r0 = super().ioctl(op, arg)
            self.dil.flash_us += RP2_CALL_US
            self.dil.model_cpu += time.ticks_diff(time.ticks_us(), t0)
            return r0
        c0 = CPU.us()
        b0 = self.busy_us
        r = super().ioctl(op, arg)
        ChipFlash.erased += 1
        self.dil.chip(c0, self.busy_us - b0)
        return r


# the trace's names for the app's tasks whose coroutines are all called ``run``
TASK_NAMES = {"run": "keys", "_run": "link"}


class _Slow:
    def __init__(self, coro: "Any", d: Dilation, name: "str | None" = None) -> None:
        self.coro = coro
        self.d = d
        r = repr(coro)
        if name is None:
            name = r.split("'")[1] if "'" in r else r
            name = TASK_NAMES.get(name, name)
        self.name = name

    def _step(self, fn: "Any", arg: "Any") -> "Any":
        d = self.d
        f0 = d.flash_us
        m0 = d.model_cpu
        free0 = gc.mem_free() if d.trace is not None else 0  # --trace: a collection inside the step frees heap
        w0 = time.ticks_us()
        e0 = ChipFlash.erased
        t0 = CPU.us()
        d.step = (w0, t0, f0, m0)
        if d.trace is not None:
            d.label = []
        try:
            return fn(arg)
        finally:
            d.step = None
            cpu = max(0, time.ticks_diff(CPU.us(), t0) - (d.model_cpu - m0) - d.overhead)
            held = d.milli * cpu // 1000 + d.flash_us - f0  # integers: a float is garbage on this port
            d.spin(held - time.ticks_diff(time.ticks_us(), w0))
            if held > d.longest.get(self.name, 0):
                d.longest[self.name] = held
            if d.trace is not None:
                freed = gc.mem_free() - free0
                if freed > 4096 and not [c for c in d.label if c[0] == "gc"]:
                    d.label.append(("autogc(+%dk heap)" % (freed // 1024), 0))  # a collection the heap forced
                d.trace.append((self.name, w0, held, ChipFlash.erased - e0, d.label))
                if len(d.trace) > 150:
                    d.trace.pop(0)

    def send(self, v: "Any") -> "Any":
        return self._step(self.coro.send, v)

    def throw(self, exc: "Any") -> "Any":
        return self._step(self.coro.throw, exc)

    def close(self) -> None:
        self.coro.close()


def trace_calls(dil: Dilation) -> None:
    """--trace: note in each step the firmware calls it made and their modelled time."""
    from firmware import app as app_module
    from firmware import outbox as outbox_module

    def note(name: str, t: int, m: int, fl: int) -> None:
        # modelled time of a call: its CPU less the chip model's, scaled, plus the chip's busy time
        cpu = time.ticks_diff(CPU.us(), t) - (dil.model_cpu - m)
        dil.label.append((name, dil.milli * cpu // 1000 + dil.flash_us - fl))

    def wrap(owner: "Any", name: str) -> None:
        f = getattr(owner, name)

        def gen(g: "Any") -> "Any":
            while True:
                t = CPU.us()
                m = dil.model_cpu
                fl = dil.flash_us
                try:
                    v = next(g)
                except StopIteration:
                    return
                finally:
                    note(name, t, m, fl)
                yield v

        def w(*a: "Any", **k: "Any") -> "Any":
            t = CPU.us()
            m = dil.model_cpu
            fl = dil.flash_us
            r = f(*a, **k)
            note(name, t, m, fl)
            if type(r).__name__ == "generator":
                return gen(r)
            return r

        setattr(owner, name, w)

    class Files:
        """``open`` for the outbox: the file's write and close calls noted too."""

        def __init__(self, f: "Any") -> None:
            self.f = f

        def write(self, b: "Any") -> "Any":
            t, m, fl = CPU.us(), dil.model_cpu, dil.flash_us
            r = self.f.write(b)
            note("write", t, m, fl)
            return r

        def read(self, *a: "Any") -> "Any":
            t, m, fl = CPU.us(), dil.model_cpu, dil.flash_us
            r = self.f.read(*a)
            note("read", t, m, fl)
            return r

        def seek(self, *a: "Any") -> "Any":
            return self.f.seek(*a)

        def close(self) -> None:
            t, m, fl = CPU.us(), dil.model_cpu, dil.flash_us
            self.f.close()
            note("close", t, m, fl)

        def __enter__(self) -> "Any":
            return self

        def __exit__(self, *a: "Any") -> None:
            self.close()

    def opener(path: str, mode: str = "r") -> "Any":
        t, m, fl = CPU.us(), dil.model_cpu, dil.flash_us
        f = open(path, mode)  # noqa: SIM115 - wrapped
        note("open" + mode, t, m, fl)
        return Files(f)

    outbox_module.open = opener  # type: ignore[attr-defined]
    app_module.open = opener  # type: ignore[attr-defined]
    import os

    class Os:
        remove = os.remove
        rename = os.rename
        ilistdir = os.ilistdir
        mkdir = os.mkdir

    for n in ("remove", "rename", "ilistdir"):
        wrap(Os, n)
    outbox_module.os = Os  # type: ignore[assignment]
    for n in ("save", "pack_step", "pending", "ack_steps", "_journal_oldest"):
        wrap(outbox_module.Outbox, n)
    for n in ("maintain_flash", "status_message", "event_message", "on_downlink", "on_key", "on_invite"):
        wrap(app_module.App, n)

    class Gc:
        mem_free = gc.mem_free
        mem_alloc = gc.mem_alloc

        @staticmethod
        def collect() -> None:
            t = CPU.us()
            m = dil.model_cpu
            fl = dil.flash_us
            gc.collect()
            note("gc", t, m, fl)

    app_module.gc = Gc  # type: ignore[assignment]
    dil.trace = []


def blame(dil: Dilation, down: int, fb: int) -> str:
    """--trace: the steps that held the loop between a key-down and its feedback, with their calls."""
    out = []
    for name, w0, held, erased, calls in dil.trace:
        if time.ticks_diff(time.ticks_add(w0, held), down) <= 0 or time.ticks_diff(w0, fb) >= 0:
            continue
        sums: "dict[str, list[int]]" = {}
        for c, us in calls:
            v = sums.setdefault(c, [0, 0])
            v[0] += 1
            v[1] += us
        what = " ".join("%s%s %.1f" % (c, "x%d" % v[0] if v[0] > 1 else "", v[1] / 1000) for c, v in sums.items())
        out.append(
            "%s@%+d %.0fms%s [%s]"
            % (name, time.ticks_diff(w0, down) // 1000, held / 1000, " E%d" % erased if erased else "", what)
        )
    return "; ".join(out)


class Machine:
    """The pins of ``machine`` for the real key task: a key is down between two tick times the bench sets.

    The key task asks for hard pin IRQs: on the chip the handler runs in the interrupt, at the
    edge, reading the level and ``ticks_ms`` then, even while a long step (a littlefs call in C)
    holds the loop; only while the flash erases or programs are interrupts off, and an edge then
    is handled when the operation ends. Here the handlers run from the spins that stand for the
    chip's slower CPU and from a 1 ms bench task while the loop is idle, and see the time and
    level of the moment the chip would have run them (``at``; ``IrqTime`` gives the key code's
    ``time.ticks_ms`` that moment). A soft IRQ handler would run when the loop next runs
    Python code, seeing the time and level then; the bench models that too (``hard=False``).
    """

    pending: "list[Any]" = []  # pins with edges not yet delivered
    dil: "Any" = None  # the loop's Dilation: a pin read or write costs the chip RP2_PIN_US, not the model's CPU
    at: "Any" = None  # while an edge is delivered: the moment the chip runs the handler (ticks_us)
    masked: "tuple[int, int]" = (0, 0)  # the last flash operation (interrupts off), ticks_us

    @staticmethod
    def deliver() -> None:
        if not Machine.pending:
            return
        now = time.ticks_us()
        m0, m1 = Machine.masked
        pending = Machine.pending
        n = len(pending)
        while (
            n > 0
        ):  # allocates nothing: the spins call it in a loop, and garbage here would be collected in the box's steps
            n -= 1
            pin = pending[n]
            while pin.edges and time.ticks_diff(now, pin.edges[0]) >= 0:
                at = pin.edges.pop(0)
                if not pin.hard:
                    at = now
                elif time.ticks_diff(at, m0) >= 0 and time.ticks_diff(m1, at) > 0:
                    at = m1  # interrupts were off: the handler runs when the flash operation ends
                Machine.at = at
                pin.delivered.append(time.ticks_diff(at, pin.down[0]) if pin.down else 0)
                if CPU.stat is not None and len(pin.delivered) == 1:
                    pin.waited0 = CPU._delay()  # the process's wait for a CPU so far
                try:
                    if pin.handler is not None:
                        pin.handler(pin)
                finally:
                    Machine.at = None
            if not pin.edges:
                pending.pop(n)

    class Pin:
        IN = 0
        OUT = 1
        PULL_UP = 1
        IRQ_FALLING = 4
        IRQ_RISING = 8
        all: "dict[int, Any]" = {}

        def __init__(self, n: int, mode: int = 0, pull: "Any" = None, value: "Any" = None) -> None:
            self.n = n
            self.v = 1 if value is None else value
            self.down: "Any" = None  # (down_us, up_us)
            self.edges: "list[int]" = []
            self.handler: "Any" = None
            self.hard = False
            self.delivered: "list[int]" = []  # per edge: when its handler ran, us after key-down
            self.waited0 = 0
            Machine.Pin.all[n] = self

        def press(self, down_us: int, hold_us: int) -> None:
            self.down = (down_us, time.ticks_add(down_us, hold_us))
            self.edges = list(self.down)
            self.delivered = []
            Machine.pending.append(self)

        def irq(self, handler: "Any" = None, trigger: int = 12, hard: bool = False) -> None:
            self.handler = handler
            self.hard = hard

        def value(self, v: "Any" = None) -> int:
            t0 = time.ticks_us()
            r = self._value(v)
            d = Machine.dil
            if d is not None and d.step is not None:  # the model's Python is not the chip's work
                d.model_cpu += time.ticks_diff(time.ticks_us(), t0)
                d.flash_us += RP2_PIN_US
            return r

        def _value(self, v: "Any") -> int:
            if v is not None:
                self.v = v
                return int(v)
            if self.down is not None:
                if Machine.at is None:
                    Machine.deliver()  # an edge's hard IRQ has run before code can read the level it left
                now = Machine.at if Machine.at is not None else time.ticks_us()
                if time.ticks_diff(now, self.down[0]) >= 0 and time.ticks_diff(now, self.down[1]) < 0:
                    return 0
                return 1
            return int(self.v)

    class WDT:
        def __init__(self, timeout: int = 0) -> None:
            pass

        def feed(self) -> None:
            pass

    @staticmethod
    def reset_cause() -> int:
        return 1


class IrqTime:
    """``time`` for the key code: while a pin handler runs, ``ticks_ms`` is the moment the chip runs it."""

    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
    sleep_ms = time.sleep_ms
    ticks_us = time.ticks_us

    @staticmethod
    def ticks_ms() -> int:
        t: int = time.ticks_ms()
        if Machine.at is None:
            return t
        return time.ticks_add(t, -(time.ticks_diff(time.ticks_us(), Machine.at) // 1000))


class BenchLink:
    """The data channel, as the serial link: events out, the collector's signed acks in.

    The collector's side (``collector``) is bench work and not dilated; the box's side
    (``run``: verify each ack, delete what it names) is.
    """

    def __init__(self, app: App, dil: Dilation, ack_ms: int) -> None:
        self.app = app
        self.dil = dil
        self.ack_ms = ack_ms
        self.online = True
        self.sent: "list[Any]" = []  # (ticks, b, s)
        self.inbox: "list[bytes]" = []
        self.got = asyncio.Event()
        self.events = 0

    async def send_event(self, payload: bytes) -> bool:
        if not self.online:
            return False
        self.sent.append((time.ticks_ms(), payload))
        return True

    async def send_status(self, payload: bytes) -> None:
        pass

    def run(self, app: App) -> "Any":
        return self._run(app)

    async def _run(self, app: App) -> None:
        while True:
            await self.got.wait()
            self.got.clear()
            while self.inbox:
                await app.keys_first()  # as the serial link does
                app.on_downlink(self.inbox.pop(0))

    def collector(self) -> "Any":
        c = self._collector()
        self.dil.exempt.append(c)
        return c

    async def _collector(self) -> None:
        import json

        app = self.app
        while True:
            await asyncio.sleep_ms(50)
            now = time.ticks_ms()
            ids = []
            while self.sent and time.ticks_diff(now, self.sent[0][0]) >= self.ack_ms:
                m = json.loads(self.sent.pop(0)[1])
                ids.append((m["b"], m["s"]))
            if ids and self.online:
                self.events += len(ids)
                msg = protocol.make(protocol.ACK, app.device, r=protocol.ack_ranges(ids), now=1761926399000, bf=None)
                self.inbox.append(protocol.encode(msg, app.key))
                self.got.set()


def loop_bench(pairs_on: int, pairs_off: int, mount: str) -> "dict[str, Any]":
    """The whole app on one asyncio loop at the RP2040's speed: key-down -> feedback, loop stalls."""
    import random

    random.seed(14)
    calib = calibrate()
    dil = Dilation(CALIB_RP2_US / calib)
    flash = ChipFlash(LOOP_BLOCKS, dil)
    dev = mount_small_commits(flash, mount, True)
    sys.modules["machine"] = Machine  # type: ignore[assignment]
    Machine.dil = dil
    from firmware.boards import pins as pins_module
    from firmware.boards.pins import PinBoard

    pins_module.time = IrqTime  # type: ignore[assignment]
    if "--trace" in sys.argv:
        trace_calls(dil)

    class Board(PinBoard):
        def __init__(self, cfg: "dict[str, Any]") -> None:
            super().__init__(cfg)
            self.flash = dev
            self.fb: "list[int]" = []
            self.fb_raw: "list[int]" = []
            self.own: "list[int]" = []  # per light: its own step's modelled time from the step's start

        def feedback(self, kind: str, k: int) -> None:
            now = dil.now()  # the chip's time: this step's CPU so far scaled, its flash time
            self.fb.append(now)
            self.own.append(time.ticks_diff(now, dil.step[0]) if dil.step is not None else 0)
            self.fb_raw.append(time.ticks_us())
            super().feedback(kind, k)

        def self_test(self) -> str:
            return "ok"

    cfg = validate(
        {
            "device_id": "bench-1",
            "key_hex": KEY_HEX,
            "transport": "serial",
            "board": "pico",
            "officer": "A1",
            "min_interval_ms": 0,
            "heartbeat_ms": 5000,
            "outbox_capacity": 2000,
        }
    )
    board = Board(cfg)
    app = App(cfg, board, mount)
    app.start()
    app.set_clock(1761926399000)
    link = BenchLink(app, dil, 300)
    keys = [Machine.Pin.all[p] for p in board.pins["keys"][:2]]
    invite = Machine.Pin.all[board.pins["invite"]]
    pins = keys + [invite]
    lat: "dict[str, list[int]]" = {"online": [], "offline": []}
    raw: "dict[str, list[int]]" = {"online": [], "offline": []}
    own: "dict[str, list[int]]" = {
        "online": [],
        "offline": [],
    }  # the press's own step, start to light  # feedback at the unix port's speed inside its step
    hostwait: "dict[str, list[int]]" = {"online": [], "offline": []}  # ms this process waited for a CPU, per press
    stall = {"online": 0, "offline": 0, "flush": 0}
    state = {"phase": "online", "done": False}
    pages0 = [0, 0]

    async def recalibrate() -> None:
        while not state["done"]:
            await asyncio.sleep_ms(3000)
            dil.recalibrate()

    async def probe() -> None:
        last = time.ticks_ms()
        while not state["done"]:
            await asyncio.sleep_ms(5)
            now = time.ticks_ms()
            gap = time.ticks_diff(now, last) - 5
            last = now
            if gap > stall[state["phase"]]:
                stall[state["phase"]] = gap
            if app.outbox.jn > state.get("jn", 0):
                state["jn"] = app.outbox.jn

    async def edges() -> None:
        while not state["done"]:
            Machine.deliver()
            await asyncio.sleep_ms(1)

    async def driver() -> None:
        await asyncio.sleep_ms(1500)
        pages0[0] = flash.erases
        pages0[1] = flash.pages
        for phase, n in (("online", pairs_on), ("offline", pairs_off)):
            state["phase"] = phase
            link.online = phase == "online"
            for i in range(n):
                for pin in (invite, keys[i % 2]):
                    await asyncio.sleep_ms(100)
                    down = time.ticks_add(time.ticks_us(), random.randint(0, 400000))  # whatever the loop is doing then
                    n0 = len(board.fb)
                    pin.press(down, 150000)
                    waited = 0
                    while len(board.fb) == n0 and waited < 10000:
                        await asyncio.sleep_ms(5)
                        waited += 5
                    if len(board.fb) == n0:
                        state["missed"] = state.get("missed", 0) + 1  # no feedback: counted, reported
                        print(
                            "  no feedback: key %d, down 150 ms, its IRQ handlers ran %r us after key-down"
                            % (pins.index(pin), pin.delivered)
                        )
                        continue
                    lat[phase].append(time.ticks_diff(board.fb[n0], down))
                    if CPU.stat is not None:  # the host's share: this process runnable, waiting for a CPU
                        hostwait[phase].append((CPU._delay() - pin.waited0) // 1000)
                    raw[phase].append(time.ticks_diff(board.fb_raw[n0], down))
                    own[phase].append(board.own[n0])
                    if dil.trace is not None and lat[phase][-1] > 80000:
                        waited = (CPU._delay() - pin.waited0) / 1000 if CPU.stat is not None else 0
                        print(
                            "  slow %s %.0f ms (this process waited %.0f ms for a CPU since the key's edge): %s"
                            % (phase, lat[phase][-1] / 1000, waited, blame(dil, down, board.fb[n0]))
                        )
                    while time.ticks_diff(pin.down[1], time.ticks_us()) > 0:
                        await asyncio.sleep_ms(10)
        state["phase"] = "flush"
        link.online = True
        app.on_connected()
        t0 = time.ticks_ms()
        while app.outbox.depth and time.ticks_diff(time.ticks_ms(), t0) < 600000:
            await asyncio.sleep_ms(100)
        state["flush_s"] = time.ticks_diff(time.ticks_ms(), t0) / 1000
        state["done"] = True

    async def main() -> None:
        create = asyncio.create_task
        asyncio.create_task = lambda coro: create(dil.wrap(coro))  # type: ignore[assignment]
        try:
            run = create(dil.wrap(app.run(link), "app"))
            c = link.collector()
            create(c)
            for co in (recalibrate(), edges(), probe(), driver()):
                dil.exempt.append(co)
            await asyncio.gather(*[create(co) for co in dil.exempt[-4:]])
            run.cancel()
        finally:
            asyncio.create_task = create  # type: ignore[assignment]

    asyncio.run(main())
    gcs = []
    for _ in range(9):  # a collection with the app's heap as the run left it: its CPU here, and scaled
        t0 = CPU.us()
        gc.collect()
        gcs.append(time.ticks_diff(CPU.us(), t0) - dil.overhead)
    gcs.sort()
    vfs.umount(mount)
    flash.close()
    dil.trace = None  # the bench's own figures only, from here: the heap is the chip's size
    Machine.dil = None
    return {
        "gc_us": gcs[4],
        "confirm_ms": board.confirm_ms,
        "heap_kb": (gc.mem_alloc() // 1024, (gc.mem_alloc() + gc.mem_free()) // 1024),
        "calib_us": int(calib),
        "scale": sorted(dil.scales)[len(dil.scales) // 2],
        "scales": (min(dil.scales), max(dil.scales)),
        "lat": lat,
        "raw": raw,
        "own": own,
        "hostwait": hostwait,
        "stall": stall,
        "flush_s": state.get("flush_s"),
        "left": app.outbox.depth,
        "longest": dil.longest,
        "err": app.err,
        "compactions": app.compactions,
        "missed": state.get("missed", 0),
        "jn": state.get("jn", 0),
        "erases": flash.erases,
        "reads": ChipFlash.reads,
    }


def main() -> None:
    presses = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 10000
    dev = RamFlash(256, 4096)
    app = make_app(dev, "/bench")
    lat = [0] * presses  # allocated before the heap is measured
    run(app, 1000, 8, None, True)  # warm-up
    gc.collect()
    heap0 = gc.mem_alloc()
    e0 = dev.erases
    run(app, presses, 8, lat, True)
    erases = dev.erases - e0
    gc.collect()
    heap1 = gc.mem_alloc()
    lat.sort()
    p50 = pct(lat, 0.50)
    p99 = pct(lat, 0.99)
    print("presses: %d (each after an invite; acks 8 events late)" % presses)
    print("press -> feedback: p50 %.3f ms, p99 %.3f ms, max %.3f ms" % (p50, p99, lat[-1] / 1000))
    print("heap after warm-up %d B, after %d presses %d B: growth %d B" % (heap0, presses, heap1, heap1 - heap0))
    print("flash erases: %d (%.4f per press, %.4f per event)" % (erases, erases / presses, erases / (2 * presses)))
    del app, dev, lat
    vfs.umount("/bench")
    gc.collect()

    off = RamFlash(256, 4096)
    app2 = make_app(off, "/bench2")
    n_off = min(presses, 1000)
    e1 = off.erases
    run(app2, n_off, 0, None)  # collector unreachable: everything packed into segments, acked at the end
    print("collector unreachable, %d presses: %.4f erases per press" % (n_off, (off.erases - e1) / n_off))
    dflt = RamFlash(256, 4096)
    app3 = make_app(dflt, "/bench3", 32)
    n3 = min(presses, 2000)
    e2 = dflt.erases
    run(app3, n3, 8, None)
    print(
        "MicroPython's default mount (readsize=progsize=32), %d presses: %.4f erases per press"
        % (n3, (dflt.erases - e2) / n3)
    )
    del app2, off, app3, dflt
    vfs.umount("/bench2")
    vfs.umount("/bench3")
    gc.collect()

    n_rp2 = min(presses, 2000)
    shipped = wear_rp2(n_rp2, False, "/rp2a")
    gc.collect()
    tuned = wear_rp2(n_rp2, True, "/rp2b")
    print("RP2040 flash (4 KiB sectors, 256 B pages), %d invite+press pairs, acks 8 events late:" % n_rp2)
    print(
        "  as the rp2 port mounts it (progsize=256): %.4f erases, %.2f page programs per pair; %d erases inside a press"
        % shipped
    )
    print(
        "  as the rp2 boards mount it (PageProgram, progsize=%d): %.4f erases, %.2f page programs per pair; "
        "%d erases inside a press" % ((PageProgram.PROG_SIZE,) + tuned)
    )
    # formatted by hand: MicroPython prints floats with every binary digit
    print(
        '{"press_feedback_p50_ms": %.3f, "press_feedback_p99_ms": %.3f, "heap_growth_bytes": %d, '
        '"erases_per_press": %.4f, "erases_per_press_rp2": %.4f, "erases_per_press_rp2_as_shipped": %.4f, '
        '"page_programs_per_press_rp2": %.2f, "erases_on_press_path_rp2": %d}'
        % (p50, p99, heap1 - heap0, erases / presses, tuned[0], shipped[0], tuned[1], tuned[2])
    )


def main_loop() -> None:
    presses = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 10000
    pairs = max(20, min(100, presses // 10))
    r = loop_bench(pairs, pairs, "/loop")
    print(
        "RP2040 speed: calibration loop %d us of CPU here at the start, x%.1f (x%.1f-x%.1f over the run); "
        "%d pairs online, %d offline, keys down at random moments"
        % ((r["calib_us"], r["scale"]) + r["scales"] + (pairs, pairs))
    )
    fig = {}
    for phase in ("online", "offline"):
        lat = r["lat"][phase]
        lat.sort()  # in place: the heap is the chip's size
        fig[phase] = (pct(lat, 0.5), pct(lat, 0.99), lat[-1] / 1000)
        print(
            "  key-down -> feedback %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d ms confirmation included)"
            % ((phase,) + fig[phase] + (r["confirm_ms"],))
        )
    for phase in ("online", "offline"):
        lat = r["own"][phase]
        lat.sort()
        print(
            "  the press's own step, its start to the light (modelled): %s p50 %.1f ms, p99 %.1f ms"
            % (phase, pct(lat, 0.5), pct(lat, 0.99))
        )
    for phase in ("online", "offline"):
        lat = r["raw"][phase]
        lat.sort()
        print("  (feedback step unscaled, as before: %s p50 %.1f p99 %.1f ms)" % (phase, pct(lat, 0.5), pct(lat, 0.99)))
        # not a figure of the box: how much of the tail is this host's load (the process waiting for a CPU
        # between a key's edge and its light, counted in the wall time above)
        hw = r["hostwait"][phase]
        hw.sort()
        if hw:
            print(
                "  (host load: this process waited for a CPU between a key's edge and its light: p50 %d ms, p99 %d ms,"
                " max %d ms)" % (hw[len(hw) // 2], hw[min(len(hw) - 1, int(0.99 * len(hw)))], hw[-1])
            )
    st = r["stall"]
    print(
        "  longest loop stall: online %d ms, offline (packing) %d ms, offline -> online flush %d ms"
        " (flushed in %.1f s, %d left)" % (st["online"], st["offline"], st["flush"], r["flush_s"] or -1, r["left"])
    )
    print(
        "  heap: %d KB in use of %d KB at the end; gc.collect() %d us of CPU here, %.1f ms modelled"
        % (r["heap_kb"] + (r["gc_us"], r["gc_us"] * r["scale"] / 1000))
    )
    longest = r["longest"]
    print(
        "  longest single step per task (ms): " + ", ".join("%s %.1f" % (k, longest[k] / 1000) for k in sorted(longest))
    )
    print(
        "  keys without feedback: %d; compactions brought forward: %d; journal at most %d files; "
        "%d erases, %d reads; last error: %s"
        % (r["missed"], r["compactions"], r["jn"], r["erases"], r["reads"], r["err"])
    )
    ratio = fig["offline"][1] / fig["online"][1]
    print(
        '{"press_feedback_p99_rp2_ms": %.1f, "press_feedback_p50_rp2_ms": %.1f, "press_feedback_p99_offline_ms": %.1f, '
        '"offline_online_p99_ratio": %.2f, "max_loop_stall_ms": %d, "keys_missed_rp2": %d, "rp2_cpu_scale": %.1f}'
        % (fig["online"][1], fig["online"][0], fig["offline"][1], ratio, max(st.values()), r["missed"], r["scale"])
    )


if "--loop" in sys.argv:
    main_loop()
else:
    main()
