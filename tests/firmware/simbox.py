"""Test helpers: a simulated box process (firmware/sim.py) and a CPython acker.

``SimBox`` starts the real MicroPython interpreter on a box.json, waits for the
READY line and talks to the control channel. ``Acker`` is a tiny collector:
it subscribes to every box's uplink with paho-mqtt, verifies each message
with ``protocol``, records each event identity once, and publishes a signed
ack (as the collector does after its commit).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

import protocol
from protocol import topics
from tests.conftest import ROOT, micropython_path

KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
KEY = bytes.fromhex(KEY_HEX)
ACL = "user collector\ntopic readwrite evalbox/#\n\npattern readwrite evalbox/%u/#\n"
USERS = {"box-1": "pw-box-1", "box-2": "pw-box-2", "collector": "pw-collector"}


def wait_for(cond: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def box_config(tmp: pathlib.Path, device: str = "box-1", port: int = 0, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "device_id": device,
        "key_hex": KEY_HEX,
        "window_id": "W-01",
        "transport": "mqtt",
        "broker_host": "127.0.0.1",
        "broker_port": port,
        "broker_user": device,
        "broker_password": USERS.get(device, "x"),
        "board": "sim",
        "flash": str(tmp / f"{device}.img"),
        "flash_blocks": 64,
        "backoff_max_ms": 1000,
        "resend_ms": 3000,
        "heartbeat_ms": 2000,
        "keepalive_s": 5,
    }
    cfg.update(extra)
    return cfg


class SimBox:
    """One `micropython firmware/sim.py box.json` process and its control channel."""

    def __init__(
        self, tmp: pathlib.Path, cfg: dict[str, Any], *, build: pathlib.Path | None = None, heap: str | None = None
    ) -> None:
        """``build``: run that mpy-cross tree (``tools/build_box.sh --sim``), not the source; ``heap``: -X heapsize."""
        self.build = build
        self.heap = heap
        self.cfg = cfg
        self.path = tmp / f"{cfg['device_id']}.json"
        self.path.write_text(json.dumps(cfg))
        self.proc: subprocess.Popen[str] | None = None
        self.sock: socket.socket | None = None
        self.file: Any = None
        self.boot = -1

    def start(self) -> SimBox:
        cmd = [micropython_path()]
        if self.heap:
            cmd += ["-X", f"heapsize={self.heap}"]
        if self.build is not None:
            # run from the build: `-m` puts the working directory first on the path, and the
            # repo's own firmware/ (source, compiled at import into the heap) must not be found
            env = dict(os.environ, MICROPYPATH=f"{self.build}:.frozen")
            cmd += ["-m", "firmware.sim", str(self.path)]
        else:
            env = dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen")
            cmd += [str(ROOT / "firmware" / "sim.py"), str(self.path)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.build or ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("EVALBOX-SIM READY "):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"no READY line: {line!r} {err}")
        fields = dict(part.split("=") for part in line.split()[2:])
        self.boot = int(fields["boot"])
        self.sock = socket.create_connection(("127.0.0.1", int(fields["control"])), timeout=30)
        self.file = self.sock.makefile("rwb")
        return self

    def cmd(self, line: str) -> dict[str, Any]:
        self.file.write(line.encode() + b"\n")
        self.file.flush()
        reply = self.file.readline()
        assert reply, f"box closed the control channel after {line!r}"
        out: dict[str, Any] = json.loads(reply)
        return out

    def state(self) -> dict[str, Any]:
        return self.cmd("state")

    def kill(self) -> None:
        """SIGKILL: a power cut as far as the flash image is concerned."""
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def quit(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.cmd("quit")
                self.proc.wait(timeout=10)
            except (OSError, AssertionError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def __enter__(self) -> SimBox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def build_sim_firmware(out: pathlib.Path) -> pathlib.Path:
    """The sim box as deployed: ``tools/build_box.sh --sim`` (every module compiled by mpy-cross)."""
    subprocess.run(["bash", str(ROOT / "tools" / "build_box.sh"), "--sim", str(out)], cwd=ROOT, check=True, timeout=300)
    return out


class Acker:
    """A minimal collector: verify uplinks, keep identities, ack after 'commit'."""

    def __init__(self, port: int, key: bytes = KEY, ack: bool = True) -> None:
        self.key = key
        self.ack = ack
        self.lock = threading.Lock()
        self.events: dict[tuple[str, int, int], dict[str, Any]] = {}  # the "store": one row per identity
        self.received = 0  # every uplink event, repeats included
        self.status: dict[str, Any] = {}  # device -> last status (dict, or the bare b"offline")
        self.rejected: list[str] = []
        self.conflicts: list[tuple[str, int, int]] = []  # one identity, two different events
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="acker", clean_session=True)
        self.client.username_pw_set("collector", USERS["collector"])
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        client.subscribe([(topics.all_uplinks(), 1), (topics.all_status(), 1)])

    def _on_message(self, client: Any, userdata: Any, m: Any) -> None:
        device = topics.device_of(m.topic)
        if topics.kind_of(m.topic) == "status":
            with self.lock:
                if m.payload == b"offline":
                    self.status[device or ""] = "offline"
                else:
                    try:
                        self.status[device or ""] = protocol.decode(m.payload, self.key, device)
                    except protocol.ProtocolError as exc:
                        self.rejected.append(exc.reason)
            return
        try:
            msg = protocol.decode(m.payload, self.key, device)
        except protocol.ProtocolError as exc:
            with self.lock:
                self.rejected.append(exc.reason)
            return
        ident = protocol.identity(msg)
        with self.lock:
            self.received += 1
            old = self.events.setdefault(ident, msg)  # insert-or-ignore on the identity
            if old != msg:
                self.conflicts.append(ident)
        if self.ack:
            self.send_ack(msg["d"], [(msg["b"], msg["s"])])

    def send_ack(self, device: str, ids: list[tuple[int, int]], bf: int | None = None) -> None:
        ack = protocol.make(protocol.ACK, device, r=protocol.ack_ranges(ids), now=int(time.time() * 1000), bf=bf)
        self.client.publish(topics.ack(device), protocol.encode(ack, self.key), qos=1)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def ids(self, device: str) -> set[tuple[int, int]]:
        with self.lock:
            return {(b, s) for (d, b, s) in self.events if d == device}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
