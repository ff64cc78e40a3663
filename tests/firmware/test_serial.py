"""Serial transport over a real pty pair: frames out, acks and PC commands in."""

from __future__ import annotations

import os
import pathlib
import time
import tty

import protocol
from tests.firmware.simbox import KEY, SimBox, box_config, wait_for
from tests.firmware.windowpc import WindowPC


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


def test_serial_sends_the_whole_window_at_once(tmp_path: pathlib.Path) -> None:
    """Every queued event goes out once, without waiting for acks (a send to a tty is not a failure)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    cfg = box_config(tmp_path, transport="serial", serial_path=os.ttyname(slave), resend_ms=60000, min_interval_ms=0)
    for k in ("broker_host", "broker_port", "broker_user", "broker_password"):
        cfg.pop(k)
    pc = WindowPC(master, ack=False)  # the PC reads but does not ack: nothing is resent for a minute
    try:
        with SimBox(tmp_path, cfg) as box:
            wait_for(lambda: pc.statuses, 30, "status frame")
            for _ in range(8):
                assert box.cmd("press 1")["ok"]
            wait_for(lambda: len(pc.events) == 8, 10, "all 8 events on the line, none acked")
            time.sleep(1.5)
            with pc.lock:
                assert pc.frames - len(pc.statuses) == 8, pc.frames  # each once
            assert "send failed" not in (box.state()["err"] or "")
    finally:
        pc.stop = True
        os.close(master)
        os.close(slave)
