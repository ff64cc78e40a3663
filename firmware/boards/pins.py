"""Shared code of the real boards: keys on GPIO with debounce, LEDs, buzzer, watchdog, data channel.

Pins come from the config's ``pins`` object laid over the board's defaults
(``firmware/ports.py``): ``keys`` (list, level 1 first), ``invite``,
``led_ok``, ``led_bad``, ``led_busy`` and ``buzzer`` (or null). Keys are
active-low with pull-ups. Nothing here imports ``network``: the radio lives
in ``WifiBoard`` (``wifi.py``), so a plain Pico never loads it.
"""

import asyncio
import gc
import time

import machine

from firmware import ports

_disable_irq = getattr(machine, "disable_irq", None)
_enable_irq = getattr(machine, "enable_irq", None)


def _irq_off() -> "Any":
    return _disable_irq() if _disable_irq is not None else None


def _irq_on(state: "Any") -> None:
    if _enable_irq is not None:
        _enable_irq(state)


try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

# A press is taken once the key has stayed down this long (box.json ``debounce_ms``, checked by
# firmware/config.py): tact switches bounce for at most 5 ms (Omron B3F/B3FS/B3S datasheets,
# "bounce time 5 ms max."), sealed ones 10 ms (Hokuriku KSM8W), so a contact held 10 ms is a press,
# and a glitch (ESD, a brush of the key) is far shorter. A bounce only delays the press: its next
# contact starts the confirmation again.
DEBOUNCE_MS = 10
RELEASE_MS = 30  # up this long after a press before the key's next press counts (its release bounces)
POLL_MS = 10
FEEDBACK_MS = 800
MAINT_HOLD_MS = 100  # the invite key held this long at power-up skips the app (maintenance)


def remount_small_commits() -> "Any":
    """Mount the rp2 port's flash at ``/`` through ``PageProgram``; None (and ``/`` as it was) if that fails."""
    import os

    import rp2
    import vfs

    from firmware.norflash import PageProgram, mount_small_commits

    flash = rp2.Flash()
    try:
        vfs.umount("/")
    except OSError:
        pass
    try:
        dev: "Any" = mount_small_commits(flash, "/")
    except OSError:
        dev = None
        vfs.mount(vfs.VfsLfs2(flash, progsize=PageProgram.PAGE), "/")  # type: ignore[abstract]
    os.chdir("/")
    return dev


class PinBoard:
    """GPIO keys and lights, the watchdog and the data channel; subclasses add the radio."""

    def __init__(self, cfg: "dict[str, Any]") -> None:
        self.cfg = cfg
        self.name = cfg["board"]
        self.pins = ports.board_pins(cfg["board"], cfg["pins"])
        pins = self.pins
        self.keys = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in pins["keys"]]
        self.invite_key = machine.Pin(pins["invite"], machine.Pin.IN, machine.Pin.PULL_UP)
        self.leds: "dict[str, Any]" = {}
        for name in ("led_ok", "led_bad", "led_busy"):
            if pins.get(name) is not None:
                self.leds[name] = machine.Pin(pins[name], machine.Pin.OUT, value=0)
        self.buzzer = machine.Pin(pins["buzzer"], machine.Pin.OUT, value=0) if pins.get("buzzer") is not None else None
        self.wdt: "Any" = None
        self.confirm_ms: int = cfg.get("debounce_ms", DEBOUNCE_MS)
        self.release_ms = max(RELEASE_MS, 2 * self.confirm_ms)
        self._off_at: "Any" = None
        self.full = False

    def mount_flash(self) -> str:
        """The internal littlefs at ``/``, which MicroPython mounts at boot.

        On the rp2 port ``_boot.py`` mounts it with ``progsize=256`` (the chip programs whole
        pages), so every littlefs commit takes a 256-byte page and a saved press costs about a
        sixth of a 4 KiB sector erase, often inside the press. Here it is mounted again on the
        same flash through ``norflash.PageProgram``: 8-byte commits, the same on-disk format
        (``mpremote`` and a plain ``_boot.py`` mount still read it). If that fails the port's own
        mount stays.
        """
        self.flash: "Any" = None
        if ports.BOARDS[self.name]["port"].startswith("rp2"):
            self.flash = remount_small_commits()
        return ""

    def maintenance_requested(self) -> bool:
        """The invite key held down at power-up: skip the app so mpremote can reach the REPL."""
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < MAINT_HOLD_MS:
            if self.invite_key.value() != 0:
                return False
            time.sleep_ms(POLL_MS)
        for led in self.leds.values():  # all lights on: the installer sees maintenance mode
            led.value(1)
        return True

    def self_test(self) -> str:
        stuck = [str(n + 1) for n, k in enumerate(self.keys) if k.value() == 0]
        if stuck:
            return "key %s stuck down" % ",".join(stuck)
        if self.invite_key.value() == 0:
            return "invite key stuck down"
        try:
            import os

            os.statvfs("/")
        except OSError as exc:
            return "flash: %s" % exc
        for led in self.leds.values():  # a blink the installer can see
            led.value(1)
        time.sleep_ms(200)
        for led in self.leds.values():
            led.value(0)
        return "ok"

    def _light(self, name: str) -> None:
        for n, led in self.leds.items():
            led.value(1 if n == name else 0)
        if self.buzzer is not None:
            self.buzzer.value(1)
        self._off_at = time.ticks_add(time.ticks_ms(), FEEDBACK_MS)

    def feedback(self, kind: str, k: int) -> None:
        if kind == "full":
            self._light("led_bad")
        elif kind == "invite":
            self._light("led_busy")
        else:
            self._light("led_ok")

    def show_full(self, full: bool) -> None:
        self.full = full

    def feed_watchdog(self) -> None:
        if self.wdt is None:
            # watchdog_ms was checked against the port's limit by config.validate (rp2040: 8388 ms)
            self.wdt = machine.WDT(timeout=self.cfg["watchdog_ms"])
        self.wdt.feed()

    def reset_cause(self) -> str:
        return ports.reset_cause_name(self.name, machine.reset_cause())

    def rssi(self) -> "int | None":
        return None

    def online(self) -> bool:
        """Whether the radio (if any) is up; a board without one is always 'up'."""
        return True

    async def network_up(self) -> None:
        return None

    def open_serial(self) -> "Any":
        """The data channel: the USB CDC port (plain Pico) or a UART of its own."""
        u = ports.board_uart(self.name, self.cfg["uart"])
        if u["id"] == "usb":
            return UsbStream()
        uart = machine.UART(u["id"], baudrate=u["baud"], tx=u["tx"], rx=u["rx"], rxbuf=u["rxbuf"])
        return UartStream(uart)

    def _press(self, app: "Any", n: int) -> None:
        try:
            if n == len(self.keys):
                app.on_invite(None)
            else:
                app.on_key(n + 1)
        except MemoryError:
            gc.collect()
            app.report("MemoryError on key %d: press not taken" % (n + 1))
        except Exception as exc:  # a bug must not leave the counter without keys
            app.report("key %d failed: %r" % (n + 1, exc))

    def _watch_edges(self, pins: "list[Any]") -> None:
        """Time each key's edges in a pin IRQ: a press made while a long step holds the loop still counts.

        A hard IRQ (``hard=True``: rp2, esp32) runs at the edge even inside a long C call (a
        littlefs compaction), so both edges of a press get their own time and level. A soft IRQ
        runs only after such a call returns: the two edges of a press made meanwhile would be
        handled together, at the same tick and reading the same level, and the press taken for
        a glitch. The handler allocates nothing (hard IRQs may not): no bound method, small ints.

        Per key: ``down_at`` the tick of the falling edge that began the key's present run down
        (None while up), ``up_at`` the tick of its last rising edge, ``latched`` once this
        physical press has been counted (until the key has stayed up ``release_ms``), ``pending``
        presses the handler saw end (down ``confirm_ms`` or more, then up) before the key task
        took them: made while the loop was held.
        """
        k = len(pins)
        down_at: "list[Any]" = [None] * k
        up_at: "list[Any]" = [None] * k
        latched = [False] * k
        pending = [0] * k
        self.down_at = down_at
        self.up_at = up_at
        self.latched = latched
        self.pending = pending
        confirm = self.confirm_ms
        release = self.release_ms
        trigger = machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING
        for n, pin in enumerate(pins):

            def edge(p: "Any", n: int = n) -> None:
                now = time.ticks_ms()
                if p.value() == 0:
                    u = up_at[n]
                    if latched[n] and u is not None and time.ticks_diff(now, u) >= release:
                        latched[n] = False  # up long enough since the last press: a new press may start
                    down_at[n] = now  # a bounce's next contact starts the confirmation again
                else:
                    d = down_at[n]
                    if d is not None and not latched[n] and time.ticks_diff(now, d) >= confirm:
                        latched[n] = True  # down long enough and up again before the key task ran
                        pending[n] += 1
                    down_at[n] = None  # up within the confirmation: a glitch or a bounce, not a press
                    up_at[n] = now

            try:
                try:
                    pin.irq(handler=edge, trigger=trigger, hard=True)
                except TypeError:  # a port without hard pin IRQs: a soft one
                    pin.irq(handler=edge, trigger=trigger)
            except (AttributeError, ValueError, OSError):
                pass  # no IRQ on this pin: polling alone still takes presses longer than a stall

    def pressing(self) -> bool:
        """A key went down (its IRQ said so) and its press is not taken yet: other work waits for it."""
        down_at = getattr(self, "down_at", ())
        for n in range(len(down_at)):
            if (down_at[n] is not None and not self.latched[n]) or self.pending[n]:
                return True
        return False

    def _poll(self, n: int, level: int, now: "Any") -> int:
        """The key task's look at key ``n``: the presses to take now, or -1 while one is being confirmed.

        Interrupts are off while it reads and updates the key's state, so an edge's handler
        cannot count the same press between the check and the update.
        """
        irq = _irq_off()
        d = self.down_at[n]
        u = self.up_at[n]
        taken = self.pending[n]
        self.pending[n] = 0
        if level == 0:
            if d is None:  # no IRQ saw the fall (a pin without one): polling alone
                d = self.down_at[n] = now
                if self.latched[n] and u is not None and time.ticks_diff(d, u) >= self.release_ms:
                    self.latched[n] = False  # as the handler does at a fall
            if not self.latched[n]:
                if time.ticks_diff(now, d) >= self.confirm_ms:
                    self.latched[n] = True
                    taken += 1
                elif not taken:
                    taken = -1
        else:
            if d is not None:  # no IRQ saw the rise
                self.down_at[n] = None
                self.up_at[n] = now
            elif u is None:
                self.up_at[n] = now
        _irq_on(irq)
        return taken

    async def run(self, app: "Any") -> None:
        """Poll the keys; a press counts once the key has stayed down ``confirm_ms`` (``debounce_ms``).

        The confirmation counts from the key's last falling edge (timed by the pin IRQ), not from
        the poll that first sees it, and the task wakes when it ends rather than on the next
        10 ms poll. A key that comes up within it was a glitch or a bounce (a bounce's next
        contact starts it again); once a press is taken the key must stay up ``release_ms``
        before the next one counts, so a release's bounces are not presses. A press that went
        down and up while another task held the loop (the IRQ timed both edges ``confirm_ms`` or
        more apart) is taken when the loop comes back.
        """
        pins = self.keys + [self.invite_key]
        self._watch_edges(pins)
        confirm = self.confirm_ms
        while True:
            app.beats["keys"] = time.ticks_ms()
            app.collect_garbage()  # after a press: its own step, the light already on
            wait = POLL_MS
            for n, pin in enumerate(pins):
                now = time.ticks_ms()
                taken = self._poll(n, pin.value(), now)
                if taken < 0:
                    d = self.down_at[n]
                    left = confirm - time.ticks_diff(now, now if d is None else d)
                    if left < wait:
                        wait = max(1, left)
                while taken > 0:
                    taken -= 1
                    self._press(app, n)
            now = time.ticks_ms()
            if self._off_at is not None and time.ticks_diff(now, self._off_at) >= 0:
                self._off_at = None
                for name, led in self.leds.items():
                    led.value(1 if name == "led_bad" and self.full else 0)
                if self.buzzer is not None:
                    self.buzzer.value(0)
            await asyncio.sleep_ms(wait)


class UartStream:
    """A UART of its own as the data channel (the USB REPL keeps Ctrl-C for maintenance)."""

    def __init__(self, uart: "Any") -> None:
        self.uart = uart
        self.reader = asyncio.StreamReader(uart)
        self.writer = asyncio.StreamWriter(uart, {})

    async def readline(self) -> bytes:
        line: bytes = await self.reader.readline()
        return line

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class UsbStream:
    """The USB CDC port (MicroPython's stdio) as the data channel of a plain Pico.

    The REPL shares it, so Ctrl-C is disabled: a 0x03 byte among the PC's data
    would otherwise stop the box. mpremote then cannot interrupt the app;
    hold the invite key at power-up to skip it (``maintenance_requested``).
    """

    def __init__(self) -> None:
        import sys

        import micropython

        from firmware.serial_link import BlockingLineReader

        micropython.kbd_intr(-1)
        self.lines = BlockingLineReader(sys.stdin.buffer)
        self.out = sys.stdout.buffer

    async def readline(self) -> bytes:
        return await self.lines.readline()

    async def write(self, data: bytes) -> None:
        self.out.write(data)
