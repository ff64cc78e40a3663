"""Send a signed release to boxes over MQTT and follow each box until it runs it, refuses it or rolls back.

The collector only relays: the release is signed offline and the box checks
the signature itself. Per box (protocol/SPEC.md section 8):

1. ``fwo`` (offer: release id, size, version) on ``evalbox/<d>/fw``; the box
   answers on ``evalbox/<d>/fwst`` with its state (``fws``), including the
   offset it has (a transfer cut by a reconnect or a reset resumes there);
2. ``fwc`` chunks of 256 bytes from the box's offset, at most ``WINDOW``
   ahead of what it has confirmed; nothing confirmed for ``RESEND_S``: the
   offer again (the box answers with its offset) and the chunks from there;
   ``pause`` (its outbox is under pressure): wait and offer again;
3. ``reboot``: the box resets, checks and installs the release at boot;
4. ``trial`` with the new version: the box's self-test wants a signed ack
   back over the link: an empty ``ack`` is sent; ``ok`` with the new
   version: done. ``refused`` or ``rolled_back``: the box's reason is the outcome.

Every message is signed with the box's own key, like acks and configs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from protocol import firmware as messages  # the firmware channel: registers its schemas
from protocol import topics

CHUNK = messages.FW_CHUNK_MAX
WINDOW = 8  # chunks in flight beyond the box's confirmed offset
RESEND_S = 2.0  # no progress for this long: offer again, resend from the box's offset
PAUSE_S = 1.0  # a box that paused (outbox under pressure) is asked again after this


def release_id(data: bytes) -> str:
    """A release's id on the wire: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]


def release_version(data: bytes) -> str:
    import json

    n = int.from_bytes(data[4:8], "little")
    return str(json.loads(data[72 : 72 + n])["version"])


def wants_trial_ack(msg: dict[str, Any]) -> bool:
    """A box's ``fws`` announcing its trial: its self-test waits for a signed ack over the link."""
    return msg.get("st") == "trial" and bool(msg.get("tr"))


def trial_ack(device: str, key: bytes) -> bytes:
    """The signed empty ack that completes a box's trial self-test (it acks no event; sending it twice is harmless:
    a box out of trial ignores it)."""
    return protocol.encode(protocol.make(protocol.ACK, device, r=[], now=int(time.time() * 1000), bf=None), key)


@dataclass
class Outcome:
    """How one box's update ended: ``ok``, ``refused``, ``rolled_back`` or ``timeout``, and the box's words."""

    state: str
    why: str | None = None
    seconds: float = 0.0


@dataclass
class BoxTransfer:
    """One release to one box; ``on_state`` takes the box's ``fws`` messages, ``run`` drives the transfer."""

    device: str
    key: bytes
    data: bytes
    publish: Callable[[str, bytes], None]
    rid: str = ""
    version: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    sent_to: int = 0
    chunks_sent: int = 0

    def __post_init__(self) -> None:
        self.rid = release_id(self.data)
        self.version = release_version(self.data)

    def on_state(self, msg: dict[str, Any]) -> None:
        self.state = msg
        self.changed.set()

    def _send(self, t: str, **fields: Any) -> None:
        wire = protocol.encode(protocol.make(t, self.device, **fields), self.key)
        self.publish(topics.firmware(self.device), wire)

    def offer(self) -> None:
        self._send(messages.FW_OFFER, id=self.rid, sz=len(self.data), ver=self.version)

    def _chunks(self, off: int) -> None:
        start = max(off, self.sent_to)
        end = min(len(self.data), off + WINDOW * CHUNK)
        while start < end:
            piece = self.data[start : start + CHUNK]
            self._send(messages.FW_CHUNK, id=self.rid, off=start, x=base64.b64encode(piece).decode())
            self.chunks_sent += 1
            start += len(piece)
        self.sent_to = max(self.sent_to, start)

    def _verdict(self) -> Outcome | None:
        s = self.state
        st, ours = s.get("st"), s.get("id") == self.rid
        # "idle" on the new version: a box that committed it and has been reset since (its "ok" is not kept on flash)
        if st in ("ok", "idle") and s.get("ver") == self.version and not s.get("tr"):
            return Outcome("ok")
        if st == "refused" and ours:
            return Outcome("refused", s.get("why"))
        if st == "rolled_back" and self.version in (s.get("why") or ""):
            return Outcome("rolled_back", s.get("why"))
        return None

    async def run(self, timeout: float = 600.0) -> Outcome:
        t0 = time.monotonic()
        deadline = t0 + timeout
        self.offer()
        last_progress = time.monotonic()
        last_off = -1
        acked_trial = False
        while time.monotonic() < deadline:
            got = self._verdict()
            if got is not None:
                got.seconds = time.monotonic() - t0
                return got
            s = self.state
            st = s.get("st")
            if wants_trial_ack(s) and s.get("ver") == self.version:
                if not acked_trial:  # the self-test's signed round trip
                    self.publish(topics.ack(self.device), trial_ack(self.device, self.key))
                    acked_trial = True
            elif st in ("recv", "pause") and s.get("id") == self.rid:
                off = s["off"]
                if off != last_off:
                    last_off = off
                    last_progress = time.monotonic()
                if st == "recv" and off < len(self.data):
                    self._chunks(off)
            if time.monotonic() - last_progress > (PAUSE_S if st == "pause" else RESEND_S):
                self.sent_to = int(s.get("off") or 0) if s.get("id") == self.rid else 0
                acked_trial = False
                self.offer()  # elicits the box's state: resume from its offset
                last_progress = time.monotonic()
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.5)
            except TimeoutError:
                pass
        return Outcome("timeout", "no answer in %d s (last state: %s)" % (timeout, self.state.get("st")), timeout)


class FleetLink:
    """The collector's MQTT session for updates: publishes offers and chunks, hands ``fws`` to their transfers."""

    def __init__(self, host: str, port: int, user: str | None, password: str | None, keys: dict[str, bytes]) -> None:
        self.keys = keys
        self.transfers: dict[str, BoxTransfer] = {}
        self.states: dict[str, dict[str, Any]] = {}  # device -> last fws (retained: every box's, at connect)
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.rejected = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"evalbox-fleet-{time.time_ns()}")
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.host, self.port = host, port

    async def start(self, timeout: float = 10.0) -> None:
        self.loop = asyncio.get_running_loop()
        self.client.connect_async(self.host, self.port, keepalive=20)
        self.client.loop_start()
        if not await asyncio.to_thread(self._ready.wait, timeout):
            self.client.loop_stop()
            raise ConnectionError(f"no connection to the broker at {self.host}:{self.port}")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        client.subscribe(topics.all_firmware_state(), 1)
        self._ready.set()

    def _on_message(self, client: Any, userdata: Any, m: Any) -> None:
        device = topics.device_of(m.topic)
        key = self.keys.get(device) if device is not None else None
        if device is None or key is None:
            return
        try:
            msg = protocol.decode(m.payload, key, device)
        except protocol.ProtocolError:
            self.rejected += 1
            return
        if msg["t"] != messages.FW_STATE or self.loop is None:
            self.rejected += 1
            return
        self.loop.call_soon_threadsafe(self._deliver, device, msg)

    def _deliver(self, device: str, msg: dict[str, Any]) -> None:
        self.states[device] = msg
        tr = self.transfers.get(device)
        if tr is not None:
            tr.on_state(msg)
        for fn in self.listeners:
            fn(device, msg)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def transfer(self, device: str, data: bytes) -> BoxTransfer:
        tr = BoxTransfer(device, self.keys[device], data, self.publish)  # fresh: a retained state may be stale
        self.transfers[device] = tr
        return tr

    async def update(self, device: str, data: bytes, timeout: float = 600.0) -> Outcome:
        tr = self.transfer(device, data)
        try:
            return await tr.run(timeout)
        finally:
            self.transfers.pop(device, None)

    async def rotate(self, device: str, data: bytes, seq: int, timeout: float = 120.0) -> Outcome:
        """Send a key rotation statement until the box reports it trusts key ``seq`` (or refuses it)."""
        t0 = time.monotonic()
        got: asyncio.Event = asyncio.Event()
        seen: dict[str, Any] = {}

        def on(d: str, msg: dict[str, Any]) -> None:
            if d == device:
                seen.update(msg)
                got.set()

        self.listeners.append(on)
        wire = protocol.encode(
            protocol.make(messages.FW_KEY, device, x=base64.b64encode(data).decode()), self.keys[device]
        )
        rebooting = False  # the box took the statement and resets to check it
        try:
            while time.monotonic() - t0 < timeout:
                if not rebooting:
                    self.publish(topics.firmware(device), wire)
                got.clear()
                try:
                    await asyncio.wait_for(got.wait(), RESEND_S)
                except TimeoutError:
                    continue
                if seen.get("st") == "reboot":
                    rebooting = True
                    continue
                if not rebooting:
                    continue  # an answer from before it took this statement
                if (seen.get("ks") or 0) >= seq:
                    return Outcome("ok", None, time.monotonic() - t0)
                if "key rotation" in (seen.get("why") or ""):
                    return Outcome("refused", seen["why"], time.monotonic() - t0)
                rebooting = False  # it came back without it (a cut before it was kept): again
            return Outcome("timeout", f"no answer in {timeout:.0f} s", timeout)
        finally:
            self.listeners.remove(on)

    async def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
