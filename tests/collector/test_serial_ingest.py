"""Serial ingest over a real pty pair: frames stored, acks returned, garbage counted, unplug and replug."""

from __future__ import annotations

import os
import pathlib
import select
import termios
import time
import tty

import protocol
from protocol.framing import FrameDecoder, encode_frame
from tests.collector.harness import Collector, key_of, make_store, stored, wait_for, write_config


class SerialBox:
    """The box end of a pty pair, reachable for the collector through a stable symlink (like /dev/serial/by-id)."""

    def __init__(self, link: pathlib.Path, device: str = "SER-1") -> None:
        self.link = link
        self.device = device
        self.key = key_of(device)
        self.decoder = FrameDecoder()
        self.acked: set[tuple[int, int]] = set()
        self.configs: list[dict[str, object]] = []
        self.plug()

    def plug(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(self.master)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.slave_name = os.ttyname(slave)
        os.close(slave)
        if self.link.is_symlink():
            self.link.unlink()
        self.link.symlink_to(self.slave_name)

    def unplug(self) -> None:
        self.link.unlink()
        os.close(self.master)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def frame(self, seq: int, **kw: object) -> bytes:
        fields = {"b": 1, "s": seq, "ts": 1_790_000_000_000 + seq, "up": seq, "o": "A1", "k": 1, "n": 2}
        fields.update({"i": None, "tk": None, "f": 0})
        fields.update(kw)
        return encode_frame(protocol.encode(protocol.make("press", self.device, **fields), self.key))

    def read_acks(self) -> None:
        while select.select([self.master], [], [], 0)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            for payload in self.decoder.feed(data):
                m = protocol.decode(payload, self.key, self.device)
                if m["t"] == "config":  # a serial box gets its config on the line it speaks on
                    self.configs.append(m)
                    continue
                for b, lo, hi in m["r"]:
                    self.acked.update((b, s) for s in range(lo, hi + 1))

    def wait_acked(self, n: int) -> None:
        def done() -> bool:
            self.read_acks()
            return len(self.acked) >= n

        wait_for(done, what=f"{n} serial acks")

    def send_until_acked(self, seqs: range) -> None:
        """As the box does: resend every unacked record now and then until all are acked."""
        last = [0.0]

        def done() -> bool:
            self.read_acks()
            todo = [s for s in seqs if (1, s) not in self.acked]
            if todo and time.monotonic() - last[0] > 1.0:
                last[0] = time.monotonic()
                for s in todo:
                    self.write(self.frame(s))
            return not todo

        wait_for(done, what=f"acks for {seqs}")


def test_serial_frames_garbage_and_replug(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, ["SER-1"])
    link = tmp_path / "ttyBOX"
    box = SerialBox(link)
    col = Collector(write_config(tmp_path, port=None, serial=[str(link)])).start()
    try:
        wait_for(lambda: "serial port" in col.stderr() and "open" in col.stderr(), what="port open")
        for s in range(20):
            box.write(box.frame(s))
            if s % 5 == 0:  # REPL chatter, noise and a torn frame between good ones
                box.write(b">>> import machine\r\n\x00\xff garbage\n" + box.frame(1000 + s)[:30] + b"\n")
        box.write(box.frame(7))  # a resend: stored once, acked again
        box.wait_acked(20)
        assert box.configs and box.configs[0]["cv"] >= 1  # its signed config came down the same line
        assert stored(db) == 20
        # Unplug mid-run, then plug in again (a new pty behind the same path).
        box.unplug()
        box.plug()
        box.send_until_acked(range(20, 40))
        assert col.terminate() == 0, col.stderr()
        assert stored(db) == 40
        assert stored(db, "SELECT COUNT(*) FROM events WHERE source = 'serial'") == 40
        skipped = stored(db, "SELECT COALESCE(SUM(n), 0) FROM rejected_counts WHERE reason LIKE 'frame_%'")
        assert skipped >= 8  # 4 rounds × (chatter + noise) at least, the torn frames too
    finally:
        col.kill()


def test_missing_serial_port_clear_message_then_retry(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, ["SER-1"])
    link = tmp_path / "ttyLATER"
    col = Collector(write_config(tmp_path, port=None, serial=[str(link)])).start()
    try:
        wait_for(lambda: "cannot be opened" in col.stderr(), what="a clear message")
        box = SerialBox(link)

        def resent_until_acked() -> bool:  # the box resends while unacked (bytes sent before the open are lost)
            box.read_acks()
            if not box.acked:
                box.write(box.frame(1))
            return bool(box.acked)

        wait_for(resent_until_acked, what="ack after the port appeared")
        assert col.terminate() == 0
        assert stored(db) == 1
    finally:
        col.kill()
