"""The window PC's end of a box's serial line: decode frames, keep events by identity, ack them."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import protocol
from protocol import FrameDecoder, encode_frame
from tests.firmware.simbox import KEY


class WindowPC:
    """The PC end of the serial line: decode frames, keep events by identity, ack them."""

    def __init__(self, fd: int, ack: bool = True, device: str = "box-1") -> None:
        self.fd = fd
        self.ack = ack
        self.device = device
        self.decoder = FrameDecoder()
        self.events: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.frames = 0
        self.statuses: list[dict[str, Any]] = []
        self.on_fw: Any = None  # called with each firmware state (fws) the box sends
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
                msg = protocol.decode(payload, KEY, self.device)
                with self.lock:
                    self.frames += 1
                    if msg["t"] == "status":
                        self.statuses.append(msg)
                        continue
                    if msg["t"] == "fws":
                        if self.on_fw is not None:
                            self.on_fw(msg)
                        continue
                    self.events.setdefault(protocol.identity(msg), msg)
                if self.ack:
                    self.send_ack([(msg["b"], msg["s"])])

    def send(self, payload: bytes) -> None:
        os.write(self.fd, encode_frame(payload))

    def send_ack(self, ids: list[tuple[int, int]]) -> None:
        ack = protocol.make(protocol.ACK, self.device, r=protocol.ack_ranges(ids), now=int(time.time() * 1000), bf=None)
        self.send(protocol.encode(ack, KEY))

    def send_command(self, cid: int, op: str, o: str | None = None, tk: str | None = None) -> None:
        """A signed ``cmd`` (sign-in, invite, sign-out) as the window PC sends it."""
        cmd = protocol.make(protocol.COMMAND, self.device, cid=cid, op=op, o=o, tk=tk)
        self.send(protocol.encode(cmd, KEY))

    def presses(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events.values() if e["t"] == "press"]
