"""The wire between the silicon doubles (machine, network, ntptime) and the test bench.

Runs under MicroPython on the unix port, never on a box. ``EVALBOX_HW`` names a
JSON file written by ``tests/firmware/boardbox.py``::

    {"port": "rp2040", "board": "picow", "control": 40123, "reset_cause": 1,
     "uart": {"0": "/dev/pts/7"}, "wifi": true, "ssid": "station-net"}

At import the link connects to the bench's TCP control port. Both ways carry
one JSON object per line. The box side sends events (``out`` pin levels,
``wdt`` start, ``feed``, ``reset``, ``reply``); the bench sends operations
(``pin``, ``wifi``, ``rssi``, ``hang``, ``stats``). Operations are taken
whenever the firmware calls into a double (the key task reads the pins every
10 ms), as a real chip's inputs change between two reads; ``pump`` also
measures the longest gap between two such calls: the longest the asyncio loop
was held by anything (the loop-stall figure).
"""

import json
import os
import socket
import time

CFG = json.loads(open(os.getenv("EVALBOX_HW")).read())  # noqa: SIM115 - read once at import

_sock = socket.socket()
_sock.connect(socket.getaddrinfo("127.0.0.1", CFG["control"])[0][-1])
_sock.setblocking(False)
_inbuf = b""
_rx = bytearray(256)
flash = None  # the flash image's block device (board_boot.py), for the rp2 double's Flash()
host = ""  # where the host's files are: board_boot.py moves them to /host when it mounts the flash at /
handlers = {}  # op -> callable(msg) -> dict | None (a reply)
_last = None  # ticks of the previous pump
max_gap_ms = 0
stalls = []  # the 8 longest gaps as (ms, ticks at the end)


def send(msg):
    """One event line to the bench (blocking: the bench always reads)."""
    data = json.dumps(msg).encode() + b"\n"
    _sock.setblocking(True)
    try:
        _sock.write(data)
    finally:
        _sock.setblocking(False)


def _note_gap(now):
    global _last, max_gap_ms
    if _last is not None:
        gap = time.ticks_diff(now, _last)
        if gap > max_gap_ms:
            max_gap_ms = gap
    _last = now


def reset_stats():
    global max_gap_ms, _last
    max_gap_ms = 0
    _last = None


def pump():
    """Take the bench's pending operations (non-blocking)."""
    global _inbuf
    _note_gap(time.ticks_ms())
    while True:
        try:
            n = _sock.readinto(_rx)  # into one buffer: pump runs ~600 times a second and must not churn the heap
        except OSError:
            n = None
        if not n:
            break
        _inbuf += _rx[:n]
    while b"\n" in _inbuf:
        line, _inbuf = _inbuf.split(b"\n", 1)
        msg = json.loads(line)
        h = handlers.get(msg["op"])
        reply = h(msg) if h is not None else {"err": "unknown op %s" % msg["op"]}
        if "id" in msg:
            out = {"ev": "reply", "id": msg["id"]}
            out.update(reply or {})
            send(out)


def hang_forever(what):
    """A driver that never returns (a wedged radio bus, a stuck peripheral): only the watchdog ends it."""
    send({"ev": "hung", "what": what})
    while True:
        time.sleep_ms(1000)


stat_sources = []  # callables adding their figures to ``stats`` (UART overruns, ...)


def _stats(msg):
    out = {"max_gap_ms": max_gap_ms}
    for f in stat_sources:
        out.update(f())
    return out


handlers["stats"] = _stats


def _reset_stats(msg):
    reset_stats()
    return {}


handlers["reset_stats"] = _reset_stats
send({"ev": "hello", "port": CFG["port"], "board": CFG["board"]})
