"""Benchmark the box firmware on the MicroPython unix port.

    .venv/bin/python bench/firmware.py            # re-runs itself under `micropython`
    MICROPYPATH=.:.frozen micropython -X heapsize=8M bench/firmware.py [presses]

Drives the real ``App`` (session rules, outbox on littlefs, feedback) on a
littlefs RAM flash (256 x 4 KiB, erase calls counted: ioctl op 6). Each case
is an invite then a press, as on a gated counter; acks arrive 8 events late,
as signed messages through ``on_downlink``, from a live collector, and each
event is signed as the sender would. Measures press -> feedback latency (the outbox
write included; packing the journal into segments runs between presses, as
the ticker does), heap after the presses vs after warm-up (``gc.mem_alloc()``
after ``gc.collect()``), and flash erases per press. Also prints erases per
press with the collector unreachable (every event packed into segments)
and with MicroPython's default littlefs mount.
Last line: JSON ``{"press_feedback_p50_ms", "press_feedback_p99_ms",
"heap_growth_bytes", "erases_per_press"}``.
"""

import sys

if sys.implementation.name != "micropython":  # CPython: run this file under the real interpreter
    import os
    import pathlib
    import subprocess

    root = pathlib.Path(__file__).resolve().parents[1]
    exe = pathlib.Path(sys.executable).parent / "micropython"
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % root)
    sys.exit(
        subprocess.run([str(exe), "-X", "heapsize=8M", __file__] + sys.argv[1:], env=env, cwd=str(root)).returncode
    )

# this file is itself called "firmware": keep its directory off the path, put the repo root first
_bench = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path[:] = [p for p in sys.path if p not in (_bench, "bench")]
sys.path.insert(0, _bench.rsplit("/", 1)[0] if "/" in _bench else ".")
if "firmware" in sys.modules:
    del sys.modules["firmware"]

import gc  # noqa: E402
import time  # noqa: E402

import vfs  # noqa: E402

import protocol  # noqa: E402
from firmware.app import App  # noqa: E402
from firmware.config import validate  # noqa: E402
from firmware.flashdev import RamFlash  # noqa: E402

KEY_HEX = "00" * 32


class BenchBoard:
    """Feedback records the time it is given; nothing else."""

    def __init__(self) -> None:
        self.fb_us = 0

    def feedback(self, kind: str, k: int) -> None:
        self.fb_us = time.ticks_us()

    def show_full(self, full: bool) -> None:
        pass

    def self_test(self) -> str:
        return "ok"


def make_app(dev: RamFlash, mount: str, prog: int = 16) -> App:
    # readsize 32 gives a 128-byte cache, so records up to 128 bytes stay inline; progsize 16 keeps commits small
    vfs.VfsLfs2.mkfs(dev, readsize=32, progsize=prog)
    vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=prog), mount)
    cfg = validate(
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
    app = App(cfg, BenchBoard(), mount)
    app.start()
    app.set_clock(1761926399000)
    return app


def signed_ack(app: App, b: int, lo: int, hi: int) -> bytes:
    msg = protocol.make(protocol.ACK, app.device, r=[[b, lo, hi]], now=1761926399000, bf=None)
    return protocol.encode(msg, app.key)


def run(app: App, presses: int, lag: int, lat: "list[int] | None", signed: bool = False) -> None:
    """``presses`` cases (invite + press); ack everything ``lag`` events late (0 = never)."""
    ob = app.outbox
    board = app.board
    waiting = []
    for n in range(presses):
        app.on_invite(None)
        waiting.append((ob.boot, ob.seq - 1))
        t0 = time.ticks_us()
        r = app.on_key(1 + n % 2)
        if lat is not None:
            lat[n] = time.ticks_diff(board.fb_us, t0)
        if not r["ok"]:
            raise RuntimeError("press failed: %r" % r)
        waiting.append((ob.boot, ob.seq - 1))
        ob.maintain()
        if lag and len(waiting) > lag:
            b, s = waiting.pop(0)
            b2, s2 = waiting.pop(0)
            if signed:  # the sender's work (sign the events) and a signed ack through on_downlink
                for n_signed, ev in enumerate(ob.pending()):  # the two oldest: the ones acked next
                    app.event_message(ev)
                    if n_signed == 1:
                        break
                app.on_downlink(signed_ack(app, b, s, s2))
            else:
                app._on_ack({"r": [[b, s, s2]], "now": 1761926399000, "bf": None})
    for b, s in waiting:
        app._on_ack({"r": [[b, s, s]], "now": 1761926399000, "bf": None})


def pct(sorted_us: "list[int]", p: float) -> float:
    i = min(len(sorted_us) - 1, int(p * len(sorted_us)))
    return sorted_us[i] / 1000


def main() -> None:
    presses = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
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
    # formatted by hand: MicroPython prints floats with every binary digit
    print(
        '{"press_feedback_p50_ms": %.3f, "press_feedback_p99_ms": %.3f, '
        '"heap_growth_bytes": %d, "erases_per_press": %.4f}' % (p50, p99, heap1 - heap0, erases / presses)
    )


main()
