"""The silicon doubles behave as the ports do (MicroPython; run by tests/firmware/test_units.py).

Needs ``EVALBOX_HW`` (port, board, control port, a pty for UART 0/1) and
prints ``doubles: N passed`` last.
"""

import sys

import hwlink
import machine

PORT = hwlink.CFG["port"]
passed = 0


def ok(name):
    global passed
    passed += 1
    print("ok", name)


def raises(fn, text):
    try:
        fn()
    except ValueError as exc:
        assert text in str(exc), (text, str(exc))
        return
    raise AssertionError("no ValueError(%s)" % text)


if PORT == "rp2040":
    raises(lambda: machine.WDT(timeout=8389), "timeout exceeds 8388")
    ok("rp2040 WDT above 8388 ms raises ValueError")
    raises(lambda: machine.Pin(30, machine.Pin.IN), "invalid pin")
    raises(lambda: machine.Pin(23, machine.Pin.IN), "CYW43")
    ok("rp2040 pins: GPIO30 does not exist, GPIO23 drives the Pico W's radio")
    raises(lambda: machine.UART(1, tx=5, rx=9), "bad TX pin")
    raises(lambda: machine.UART(0, tx=0, rx=2), "bad RX pin")
    ok("rp2 UART pin rules")
    u = machine.UART(0, tx=0, rx=1, rxbuf=32)
    sys.stdin.buffer.read(1)  # the bench wrote 100 bytes to the line, then one byte to stdin
    got = u.read()
    assert len(got) == 32 and u.overrun == 68, (len(got), u.overrun)
    ok("UART ring of rxbuf bytes drops what overflows it")
    w = machine.WDT(timeout=8388)
    w.feed()
    ok("rp2040 WDT at 8388 ms starts")
    key = machine.Pin(2, machine.Pin.IN, machine.Pin.PULL_UP)
    edges = []
    key.irq(lambda p: edges.append(p.value()), machine.Pin.IRQ_FALLING)
    assert key.value() == 1  # released: the pull-up
    machine._on_pin({"pin": 2, "v": 0})  # what the bench's "pin" operation does
    machine._on_pin({"pin": 2, "v": None})
    assert edges == [0] and key.value() == 1, edges
    ok("Pin: pull-up level when released, IRQ on the falling edge only")
if PORT == "esp32":
    raises(lambda: machine.WDT(timeout=500), "WDT timeout too short")
    ok("esp32 WDT below 1 s raises")
    raises(lambda: machine.Pin(34, machine.Pin.OUT), "pin can only be input")
    raises(lambda: machine.Pin(20, machine.Pin.IN), "invalid pin")
    raises(lambda: machine.Pin(6, machine.Pin.IN), "SPI flash")
    ok("esp32 pins: 34-39 input-only, 20 missing, 6-11 flash")
    p = machine.Pin(35, machine.Pin.IN, machine.Pin.PULL_UP)
    seen = {p.value() for _ in range(64)}
    assert seen == {0, 1}, seen
    ok("esp32 GPIO35 ignores PULL_UP: the input floats")
    machine.WDT(timeout=30000).feed()
    ok("esp32 WDT of 30 s starts")
print("doubles: %d passed" % passed)
