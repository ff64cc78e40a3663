"""Malformed input through the running collector (MQTT and serial), and the SIGTERM drain."""

from __future__ import annotations

import json
import os
import pathlib
import random
import urllib.request

import protocol
from protocol.framing import encode_frame
from protocol.messages import sign
from tests.collector.harness import Box, Collector, broker, free_port, make_store, stored, wait_for, write_config
from tests.collector.test_serial_ingest import SerialBox

N_MQTT = 10_000
N_SERIAL = 10_000


def junk_payloads(box: Box, rng: random.Random, n: int) -> list[bytes]:
    """``n`` messages that must each be rejected exactly once."""
    good = box.press(999_999)
    body = good[: good.index(b',"mac"')] + b"}"
    out: list[bytes] = []
    for i in range(n):
        kind = i % 8
        if kind == 0:
            out.append(rng.randbytes(rng.randint(1, 300)))
        elif kind == 1:  # one byte flipped in a good message: parse error or bad_mac
            b = bytearray(good)
            j = rng.randrange(len(b))
            b[j] = (b[j] + rng.randint(1, 255)) % 256
            out.append(bytes(b))
        elif kind == 2:
            out.append(good[: rng.randint(0, len(good) - 1)] or b"x")
        elif kind == 3:
            out.append(b"{" + b" " * 1100 + b"}")  # oversize
        elif kind == 4:  # a future version, correctly signed
            v2 = body.replace(b'"v":1', b'"v":2')
            out.append(v2[:-1] + b',"mac":"' + sign(v2, box.device, box.key).encode() + b'"}')
        elif kind == 5:  # signed with another key
            out.append(protocol.encode(protocol.make("press", box.device, **_fields(i)), os.urandom(32)))
        elif kind == 6:  # an unknown box
            out.append(protocol.encode(protocol.make("press", "NOBODY", **_fields(i)), os.urandom(32)))
        else:
            out.append(json.dumps({"v": 1, "t": "press", "d": box.device, "junk": i}).encode())
    return out


def _fields(i: int) -> dict[str, object]:
    return {"b": 1, "s": i, "ts": None, "up": 5, "o": None, "k": 1, "n": 2, "i": None, "tk": None, "f": 0}


def serial_junk(sbox: SerialBox, rng: random.Random, n: int) -> list[bytes]:
    """``n`` lines (each ending in one newline) that must each be skipped or rejected once."""
    good = sbox.frame(888_888)
    out: list[bytes] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            raw = rng.randbytes(rng.randint(1, 200)).replace(b"\n", b"").replace(b"\r", b"")
            out.append((raw or b"?") + b"\n")
        elif kind == 1:
            b = bytearray(good[:-1])
            j = rng.randrange(1, len(b) - 9)
            b[j] = (b[j] + rng.randint(1, 255)) % 256
            out.append(bytes(b).replace(b"\n", b"x").replace(b"\r", b"x") + b"\n")
        elif kind == 2:
            out.append(b"@" + b"A" * 1200 + b"\n")
        elif kind == 3:
            out.append(b">>> print('REPL chatter')\n")
        else:  # a good frame around a bad message
            out.append(encode_frame(b'{"v":1,"t":"press","d":"SER-1"}'))
    return out


def test_fuzz_mqtt_and_serial_through_the_running_pipeline(tmp_path: pathlib.Path) -> None:
    rng = random.Random(4)
    db = tmp_path / "store.db"
    make_store(db, ["BOX-1", "SER-1"])
    link = tmp_path / "ttyFUZZ"
    sbox = SerialBox(link, "SER-1")
    with broker(tmp_path, ["BOX-1"]) as mq:
        col = Collector(write_config(tmp_path, port=mq.port, serial=[str(link)])).start()
        box = Box("BOX-1", mq.port)
        try:
            wait_for(lambda: " open" in col.stderr(), what="serial open")
            junk = junk_payloads(box, rng, N_MQTT)
            good = 0
            for i, payload in enumerate(junk):
                box.publish(payload)
                if i % 100 == 0:
                    box.publish(box.press(good))
                    good += 1
            lines = serial_junk(sbox, rng, N_SERIAL)
            for i in range(0, len(lines), 50):
                sbox.write(b"".join(lines[i : i + 50]) + sbox.frame(i))
            sbox.send_until_acked(range(0, len(lines), 50))
            wait_for(lambda: len(box.acked) == good, what="good MQTT events acked")
            total = N_MQTT + N_SERIAL
            wait_for(lambda: stored(db, "SELECT SUM(n) FROM rejected_counts") >= total, what="every bad input counted")
            assert col.proc is not None and col.proc.poll() is None, "the collector crashed"
            assert col.terminate() == 0, col.stderr()
            assert stored(db, "SELECT COUNT(*) FROM events WHERE source = 'mqtt'") == good
            assert stored(db, "SELECT COUNT(*) FROM events WHERE source = 'serial'") == len(range(0, len(lines), 50))
            # Every MQTT payload counted once under a protocol reason; serial lines under frame_* or one of those.
            assert stored(db, "SELECT SUM(n) FROM rejected_counts") == total
            reasons = {r for r in _reasons(db)}
            assert {
                "bad_mac",
                "oversize",
                "bad_version",
                "unknown_device",
                "frame_bad_crc",
                "frame_no_start",
            } <= reasons
            assert stored(db, "SELECT COUNT(*) FROM rejected") <= 10_000  # bounded
            assert "Traceback" not in col.stderr()
        finally:
            box.close()
            col.kill()


def _reasons(db: pathlib.Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT reason FROM rejected_counts")]


def test_sigterm_drains_flush_commit_ack_exit_0(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, ["BOX-1"])
    port = free_port()
    extra = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
    with broker(tmp_path, ["BOX-1"]) as mq:
        # A long batch interval: the events wait in the batch when SIGTERM comes.
        col = Collector(write_config(tmp_path, port=mq.port, max_ms=10_000, extra=extra)).start()
        box = Box("BOX-1", mq.port)
        try:
            for s in range(30):
                box.publish(box.press(s))

            def received() -> bool:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                return "evalbox_queue_depth 30" in text and "evalbox_events_stored_total 0" in text

            wait_for(received, what="30 waiting in the batch, none committed")
            assert col.terminate() == 0, col.stderr()
            assert stored(db) == 30
            wait_for(lambda: len(box.acked) == 30, what="acks sent during the drain")
            assert "stored 30" in "".join(col.out)
        finally:
            box.close()
            col.kill()
