"""Real pieces for collector tests: a provisioned store, a config file, the collector as a process, simulated boxes.

The box side is CPython with paho and ``protocol.encode`` (the firmware is
tested on MicroPython elsewhere): it publishes signed events on its own topic
with its own broker login and records the signed acks it receives.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from collector.ingest.provision import ACL
from collector.store import open_store
from protocol import topics
from tests.conftest import ROOT
from tests.mosquitto import Mosquitto, free_port  # noqa: F401 - re-exported for tests

COLLECTOR_USER = "collector"
COLLECTOR_PASSWORD = "collector-pw"
T0 = 1_790_000_000_000  # 2026-09-21


def key_of(device: str) -> bytes:
    return (device.encode() * 32)[:32]


def wait_for(cond: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def make_store(where: pathlib.Path | str, devices: list[str]) -> None:
    """Provision a store (an SQLite file or a PostgreSQL URL) with one unit, window, officer and ``devices``."""

    async def run() -> None:
        async with open_store(str(where)) as store:
            await store.import_registry(
                units=[("U1", "城关派出所", None, None)],
                windows=[("W1", "U1", "户籍1号窗")],
                officers=[("A1", "张三", "U1", "W1")],
            )
            for d in devices:
                await store.add_device(d, "W1", key_of(d).hex())

    asyncio.run(run())


def broker(tmp_path: pathlib.Path, devices: list[str]) -> Mosquitto:
    users = {COLLECTOR_USER: COLLECTOR_PASSWORD, **{d: f"pw-{d}" for d in devices}}
    return Mosquitto(tmp_path, users=users, acl=ACL.format(collector=COLLECTOR_USER))


def write_config(
    tmp_path: pathlib.Path,
    *,
    port: int | None,
    serial: list[str] = (),
    extra: str = "",
    max_ms: int = 20,  # type: ignore[assignment]
    store: pathlib.Path | str = "store.db",
) -> pathlib.Path:
    url = store if isinstance(store, str) and store.startswith("postgresql") else f"sqlite:///{store}"
    lines = [f'[store]\nurl = "{url}"\n', f"[batch]\nmax_events = 500\nmax_ms = {max_ms}\n"]
    if port is not None:
        lines.append(
            f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nusername = "{COLLECTOR_USER}"\n'
            f'password = "{COLLECTOR_PASSWORD}"\nclient_id = "collector-test"\nkeepalive = 5\n'
        )
    for s in serial:
        lines.append(f'[[serial]]\nport = "{s}"\nbaud = 115200\n')
    path = tmp_path / "evalbox.toml"
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return path


class Collector:
    """``evalbox serve`` as a child process (so a test can SIGTERM or crash it)."""

    def __init__(self, config: pathlib.Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = dict(os.environ, **(env or {}))
        self.proc: subprocess.Popen[str] | None = None
        self.out: list[str] = []
        self.log = config.parent / f"collector-{int(time.time() * 1000)}.log"

    def start(self, wait: bool = True, subscribed: bool = True) -> Collector:
        self._err = open(self.log, "w")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "serve", "--config", str(self.config)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if wait:
            wait_for(lambda: any("running" in line for line in self.out) or self.proc.poll() is not None, 30, "start")
            assert self.proc.poll() is None, self.stderr()
            if (
                subscribed and "[mqtt]" in self.config.read_text()
            ):  # boxes may publish once the subscription is in place
                wait_for(lambda: "MQTT subscribed" in self.stderr() or self.proc.poll() is not None, 30, "subscribe")
        return self

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.out.append(line)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc
        rc = self.proc.wait(timeout=timeout)
        self._err.close()
        return rc

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Box:
    """A simulated box: its own MQTT login, signed events on its own topic, acks recorded."""

    def __init__(self, device: str, port: int, *, boot: int = 1, password: str | None = None) -> None:
        self.device = device
        self.key = key_of(device)
        self.boot = boot
        self.acked: set[tuple[int, int]] = set()
        self.ack_count: dict[tuple[int, int], int] = {}
        self.ack_messages = 0
        self.bad_acks = 0
        self.connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"box-{device}", clean_session=True)
        c.username_pw_set(device, password or f"pw-{device}")
        c.will_set(topics.status(device), b"offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        self.client = c
        assert self.connected.wait(15), f"box {device} could not connect"

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        client.subscribe(topics.ack(self.device), qos=1)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.topic.endswith("/ack"):
            return
        try:
            m = protocol.decode(bytes(msg.payload), self.key, self.device)
        except protocol.ProtocolError:
            self.bad_acks += 1
            return
        self.ack_messages += 1
        for b, lo, hi in m["r"]:
            for s in range(lo, hi + 1):
                self.acked.add((b, s))
                self.ack_count[(b, s)] = self.ack_count.get((b, s), 0) + 1

    def press(self, seq: int, level: int = 1, *, ts: int | None = None, boot: int | None = None, **kw: object) -> bytes:
        fields = {"b": boot or self.boot, "s": seq, "ts": ts if ts is not None else T0 + seq * 1000, "up": 1000 + seq}
        fields.update({"o": "A1", "k": level, "n": 2, "i": None, "tk": None, "f": 0})
        fields.update(kw)
        return protocol.encode(protocol.make("press", self.device, **fields), self.key)

    def publish(self, payload: bytes, topic: str | None = None) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic or topics.uplink(self.device), payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored(db: pathlib.Path | str, sql: str = "SELECT COUNT(*) FROM events") -> int:
    """One number from the store: an SQLite file (0 while it does not exist) or a PostgreSQL URL."""
    if isinstance(db, str):
        return asyncio.run(_pg_number(db, sql))
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


async def _pg_number(url: str, sql: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval(sql)
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()
    return int(value or 0)


def store_of(tmp_path: pathlib.Path, store_url: str) -> pathlib.Path | str:
    """The ``store_url`` fixture's store as harness functions take it: a PostgreSQL URL or the SQLite file."""
    return store_url if store_url.startswith("postgresql") else pathlib.Path(store_url)
