"""Serial transport over a real pty pair: frames out, acks and PC commands in."""

from __future__ import annotations

import os
import pathlib
import threading
import time
import tty
from typing import Any

import protocol
from protocol import FrameDecoder, encode_frame
from tests.firmware.simbox import KEY, SimBox, box_config, wait_for


class WindowPC:
    """The PC end of the serial line: decode frames, keep events by identity, ack them."""

    def __init__(self, fd: int, ack: bool = True) -> None:
        self.fd = fd
        self.ack = ack
        self.decoder = FrameDecoder()
        self.events: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.frames = 0
        self.statuses: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stop:
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            for payload in self.decoder.feed(data):
                msg = protocol.decode(payload, KEY, "box-1")
                with self.lock:
                    self.frames += 1
                    if msg["t"] == "status":
                        self.statuses.append(msg)
                        continue
                    self.events.setdefault(protocol.identity(msg), msg)
                if self.ack:
                    self.send_ack([(msg["b"], msg["s"])])

    def send(self, payload: bytes) -> None:
        os.write(self.fd, encode_frame(payload))

    def send_ack(self, ids: list[tuple[int, int]]) -> None:
        ack = protocol.make(protocol.ACK, "box-1", r=protocol.ack_ranges(ids), now=int(time.time() * 1000), bf=None)
        self.send(protocol.encode(ack, KEY))


def test_serial_frames_out_acks_and_pc_commands_in(tmp_path: pathlib.Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    cfg = box_config(tmp_path, transport="serial", serial_path=os.ttyname(slave), min_interval_ms=0)
    for k in ("broker_host", "broker_port", "broker_user", "broker_password"):
        cfg.pop(k)
    pc = WindowPC(master)
    try:
        with SimBox(tmp_path, cfg) as box:
            wait_for(lambda: pc.statuses, 30, "status frame")
            assert pc.statuses[0]["b"] == box.boot and pc.statuses[0]["st"] == "ok"
            # line noise and REPL chatter on the line are dropped; a Ctrl-C does not stop the box
            os.write(master, b"\x03\x03>>> garbage\r\n@{}#00000000\n")
            # the window PC's sign-in and invite arrive as signed framed commands
            for cid, op, o, tk in ((1, "signin", "A7", None), (2, "invite", None, "T-77")):
                cmd = protocol.make(protocol.COMMAND, "box-1", cid=cid, op=op, o=o, tk=tk)
                pc.send(protocol.encode(cmd, KEY))
            wait_for(lambda: box.state()["invite"] is not None, 30, "invite from the PC")
            assert box.state()["officer"] == "A7"
            r = box.cmd("press 1")
            assert r["ok"] and r["f"] & 1 == 0 and r["i"] == box.state()["invite"], r
            wait_for(lambda: box.state()["q"] == 0, 30, "acked over serial")
            with pc.lock:
                kinds = sorted(e["t"] for e in pc.events.values())
                press = [e for e in pc.events.values() if e["t"] == "press"][0]
            assert kinds == ["invite", "press", "signin"]
            assert press["o"] == "A7" and press["tk"] == "T-77"
            st = box.state()
            assert st["acked"] == 3
    finally:
        pc.stop = True
        os.close(master)
        os.close(slave)


def test_serial_retransmits_unacked_events(tmp_path: pathlib.Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    cfg = box_config(tmp_path, transport="serial", serial_path=os.ttyname(slave), resend_ms=300)
    for k in ("broker_host", "broker_port", "broker_user", "broker_password"):
        cfg.pop(k)
    pc = WindowPC(master, ack=False)  # the PC is not acking (collector down)
    try:
        with SimBox(tmp_path, cfg) as box:
            r = box.cmd("press 2")
            wait_for(lambda: pc.frames >= 4, 30, "the press sent again while unacked")
            assert box.state()["q"] == 1
            pc.send_ack([(r["id"][1], r["id"][2])])
            wait_for(lambda: box.state()["q"] == 0, 30, "acked")
    finally:
        pc.stop = True
        os.close(master)
        os.close(slave)
