"""Test double of MicroPython's ``machine`` for the rp2 and esp32 ports (unix port only).

Enforces what the real ports do (sources cited in firmware/ports.py):
- ``Pin``: a number the chip lacks raises ``ValueError("invalid pin")``; a pin
  the board wires to something else (the Pico W's CYW43, the ESP32's flash)
  raises; ESP32 GPIO34-39 refuse ``OUT`` ("pin can only be input") and
  silently ignore ``PULL_UP``: such an input floats and reads noise.
  Inputs follow the level the bench drives (idle: the pull-up's 1); outputs
  are reported to the bench; ``irq`` handlers run on the edges.
- ``WDT``: rp2040 refuses more than 8388 ms (``ValueError("timeout exceeds
  8388")``, rp2350 16777), esp32 less than 1 s. Every feed is reported; the
  bench "resets" a box not fed within the timeout (kills it and boots the
  same flash image again with ``reset_cause() == WDT_RESET``).
- ``UART``: rp2's pin rules (``bad TX pin``), rx buffer bounds, and a receive
  ring of ``rxbuf`` bytes that drops what overflows it, as the ports' IRQ
  ring buffer does; the line itself is a real pty. Writes never block: a
  UART transmits whether anyone listens or not.
- ``reset()`` asks the bench for a reset (rp2 reboots through the watchdog,
  so the next ``reset_cause()`` is WDT_RESET; esp32's is SOFT_RESET).
"""

import io
import random
import select
import time

import hwlink

CFG = hwlink.CFG
PORT = CFG["port"]
RP2 = PORT.startswith("rp2")

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_GPIO = {
    "rp2040": list(range(30)),
    "rp2350": list(range(30)),
    "esp32": list(range(20)) + [21, 22, 23, 25, 26, 27] + list(range(32, 40)),
}[PORT]
_INPUT_ONLY = list(range(34, 40)) if PORT == "esp32" else []
_BOARD_WIRED = {
    "picow": {23: "CYW43 WL_ON", 24: "CYW43 data", 25: "CYW43 CS", 29: "CYW43 clock"},
    "pico2w": {23: "CYW43 WL_ON", 24: "CYW43 data", 25: "CYW43 CS", 29: "CYW43 clock"},
    "esp32": {6: "SPI flash", 7: "SPI flash", 8: "SPI flash", 9: "SPI flash", 10: "SPI flash", 11: "SPI flash"},
}.get(CFG["board"], {})

_inputs = {int(k): v for k, v in CFG.get("inputs", {}).items()}  # pin -> level the bench drives (absent: released)
_pins = {}  # pin number -> Pin


def _on_pin(msg):
    n = msg["pin"]
    if msg.get("v") is None:
        _inputs.pop(n, None)
    else:
        _inputs[n] = msg["v"]
    p = _pins.get(n)
    if p is not None:
        p._edge()
    return {}


hwlink.handlers["pin"] = _on_pin


def _hang_pins(msg):
    hwlink.hang_forever("pins")


hwlink.handlers["hang_pins"] = _hang_pins


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id, mode=-1, pull=None, value=None):
        if type(id) is not int or id not in _GPIO:
            raise ValueError("invalid pin")
        if id in _BOARD_WIRED:
            raise ValueError("GPIO%d is wired to the %s on this board" % (id, _BOARD_WIRED[id]))
        if mode in (Pin.OUT, Pin.OPEN_DRAIN) and id in _INPUT_ONLY:
            raise ValueError("pin can only be input")
        self.id = id
        self.mode = mode
        self.pull = None if id in _INPUT_ONLY else pull  # esp32: gpio_pullup_en() fails there, silently
        self.out = 0
        self._irq = None
        self._trigger = 0
        self._hard = False
        self._level = self._read()
        _pins[id] = self
        if mode in (Pin.OUT, Pin.OPEN_DRAIN):
            self.value(0 if value is None else value)

    def _read(self):
        if self.id in _inputs:
            return _inputs[self.id]
        if self.pull == Pin.PULL_UP:
            return 1
        if self.pull == Pin.PULL_DOWN:
            return 0
        return random.getrandbits(1)  # a floating input

    def _edge(self):
        new = self._read()
        old = self._level
        self._level = new
        if self._irq is None or new == old:
            return
        if (new == 0 and self._trigger & Pin.IRQ_FALLING) or (new == 1 and self._trigger & Pin.IRQ_RISING):
            self._irq(self)

    def value(self, v=None):
        hwlink.pump()
        if v is None:
            if self.mode in (Pin.OUT, Pin.OPEN_DRAIN):
                return self.out
            return self._read()
        v = 1 if v else 0
        if v != self.out or self.mode not in (Pin.OUT, Pin.OPEN_DRAIN):
            self.out = v
            hwlink.send({"ev": "out", "pin": self.id, "v": v})
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, *, priority=1, wake=None, hard=False):
        # rp2 and esp32 both take ``hard``: a hard handler runs in the interrupt, at the edge
        # (here: when the level changes); a soft one would run only when Python code runs again
        self._irq = handler
        self._hard = hard
        self._trigger = trigger
        return None

    def __call__(self, v=None):
        return self.value(v)


class WDT:
    """The hardware watchdog: once started it cannot be stopped or reconfigured."""

    _started = None

    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(%d) doesn't exist" % id)
        if PORT == "rp2040" and timeout > 8388:
            raise ValueError("timeout exceeds 8388")
        if PORT == "rp2350" and timeout > 16777:
            raise ValueError("timeout exceeds 16777")
        if PORT == "esp32" and timeout < 1000:
            raise ValueError("WDT timeout too short")
        if WDT._started is None:
            WDT._started = timeout
            hwlink.send({"ev": "wdt", "timeout": timeout})
        self.timeout = WDT._started

    def feed(self):
        hwlink.pump()
        hwlink.send({"ev": "feed"})


def reset_cause():
    return CFG["reset_cause"]


def unique_id():
    return (CFG["board"] + "-0001").encode()[:8]


def freq(hz=None):
    return 125000000 if RP2 else 160000000


def idle():
    hwlink.pump()


def reset():
    hwlink.send({"ev": "reset"})
    hwlink.hang_forever("reset")


def soft_reset():
    reset()


def _rp2_uart_ok(uart_id, pin, role):
    return (pin & 3) == role and (((pin + 4) & 8) >> 3) == uart_id


MP_STREAM_POLL = 3
_uarts = []


def _hang_uart(msg):
    for u in _uarts:
        u.tx_stuck = True  # the transmitter never takes another byte (a stuck FIFO, flow control held)
    return {}


hwlink.handlers["hang_uart"] = _hang_uart
hwlink.stat_sources.append(
    lambda: {"uart_overrun": sum(u.overrun for u in _uarts), "uart_tx_lost": sum(u.tx_lost for u in _uarts)}
)


class UART(io.IOBase):  # io.IOBase: asyncio can poll it through ``ioctl`` like the port's UART
    """A UART whose wire is a pty; the receive side is the port's ring buffer of ``rxbuf`` bytes."""

    def __init__(self, id, baudrate=115200, tx=None, rx=None, rxbuf=256, txbuf=256, timeout=0, timeout_char=0, **kw):
        if RP2:
            if id not in (0, 1):
                raise ValueError("UART(%d) doesn't exist" % id)
            if tx is not None and not _rp2_uart_ok(id, tx, 0):
                raise ValueError("bad TX pin")
            if rx is not None and not _rp2_uart_ok(id, rx, 1):
                raise ValueError("bad RX pin")
            if rxbuf > 32766:
                raise ValueError("rxbuf too large")
            rxbuf = max(rxbuf, 32)
        else:
            if id not in (0, 1, 2):
                raise ValueError("UART(%d) does not exist" % id)
            if tx in _INPUT_ONLY:
                raise ValueError("pin can only be input")
        for p in (tx, rx):
            if p is not None and p in _pins:
                raise ValueError("GPIO%d is already a Pin" % p)
        path = CFG["uart"].get(str(id))
        if path is None:
            raise OSError(19)  # ENODEV: nothing wired to this UART on the bench
        self.f = open(hwlink.host + path, "r+b")  # noqa: SIM115 - the wire stays for the box's life
        self.ready = select.poll()
        self.ready.register(self.f, select.POLLIN)
        self.wready = select.poll()
        self.wready.register(self.f, select.POLLOUT)
        self.size = rxbuf
        self.ring = bytearray()
        self.overrun = 0  # bytes dropped because the ring was full
        self.tx_lost = 0
        self.tx_stuck = False
        _uarts.append(self)

    def _drain_wire(self):
        # everything that reached the pin since the last look goes into the ring; what does not fit is lost
        # (one byte per read: MicroPython's FileIO.read(n) waits for all n bytes)
        while self.ready.poll(0):
            b = self.f.read(1)
            if not b:
                break
            if len(self.ring) < self.size:
                self.ring.extend(b)
            else:
                self.overrun += 1

    def any(self):
        self._drain_wire()
        return len(self.ring)

    def ioctl(self, req, arg):
        if req == MP_STREAM_POLL:
            hwlink.pump()
            self._drain_wire()
            r = 0
            if arg & select.POLLIN and self.ring:
                r |= select.POLLIN
            if arg & select.POLLOUT and not self.tx_stuck:
                r |= select.POLLOUT
            return r
        return 0

    def _take(self, n):
        out = bytes(self.ring[:n])
        self.ring = self.ring[n:]
        return out

    def read(self, n=-1):
        self._drain_wire()
        if not self.ring:
            return None
        return self._take(len(self.ring) if n is None or n < 0 else n)

    def readinto(self, buf):
        got = self.read(len(buf))
        if got is None:
            return None
        buf[: len(got)] = got
        return len(got)

    def readline(self):
        self._drain_wire()
        if not self.ring:
            return None
        i = self.ring.find(b"\n")
        return self._take(len(self.ring) if i < 0 else i + 1)

    def write(self, data):
        hwlink.pump()
        if self.tx_stuck:
            return None  # would block: asyncio's drain waits for POLLOUT, which never comes
        if self.wready.poll(0):
            self.f.write(data)  # FileIO is unbuffered (and flush() on a tty raises EINVAL)
        else:
            self.tx_lost += len(data)  # nobody reading the line: the bits are gone
        return len(data)

    def deinit(self):
        self.f.close()


class RTC:
    def datetime(self, dt=None):
        return time.localtime()[:7] + (0,)
