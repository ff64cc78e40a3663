"""decode → verify → validate → batch → single writer → commit → ack.

Sources (MQTT, serial) call ``Pipeline.submit`` from the event loop with the
raw bytes and a settle token; nothing is decoded there. The writer task takes
up to ``max_events`` messages once ``max_ms`` has passed since the first (or
at once when full), decodes them all, stores them in one transaction, and
only after the commit settles every token (the MQTT PUBACK) and sends one
signed ack per box. Bad input becomes a ``Rejection`` in the same batch; the
writer never stops for it. While a batch commits (in the store's thread),
the loop keeps receiving the next one.

A box's firmware state (``fws``, protocol section 8) is checked the same way
and, after the commit, handed to the ``on_firmware`` callbacks (``evalbox
serve`` records it, acks a trial, alerts on a rollback); nothing else here
knows about updates.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import protocol
from collector.errors import ConfigError, StoreError
from collector.ingest.clockref import ClockRefs
from collector.ingest.metrics import Metrics
from collector.store import Device, Rejection, StatusUpdate, Store
from collector.store.records import ClockRef
from collector.timeplace import month_bounds, month_of
from protocol import firmware as fw_messages  # registers the firmware channel's schemas (fws)
from protocol import topics
from protocol.errors import ProtocolError

log = logging.getLogger("evalbox.ingest")

FLAG_CLOCK_SUSPECT = 64  # set by the collector: the box's wall time was far off; placed from receive time
CLOCK_FUTURE_MS = 10 * 60 * 1000  # a press more than 10 min after its arrival is a wrong clock
CLOCK_PAST_MS = 400 * 86400 * 1000  # a press more than 400 days before its arrival is a wrong clock
OFFLINE = b"offline"
COMMIT_ATTEMPTS = 5
# A box whose status still names an older config version gets its config again, at most this often:
# a serial box that was not listening when the port opened, an MQTT box whose broker lost the retained
# copy. The limit only spaces out a burst of queued statuses; boxes report status every minute or so.
CONFIG_RESEND_S = 5.0


class Source(Protocol):
    """Where messages come from and acks go back to."""

    name: str

    def settle(self, tokens: list[Any]) -> None:
        """The messages behind ``tokens`` are committed (or rejected and recorded): release them."""

    def send(self, device_id: str, kind: str, wire: bytes) -> None:
        """Deliver a signed downlink message (``ack``, ``config`` or ``cmd``) to the box."""


# source, origin (topic/port), payload, recv_ms, token, retained (MQTT: a message the broker kept and sent again)
Item = tuple[Source, str, bytes, int, Any, bool]


FirmwareHandler = Callable[["Source", Device, dict[str, Any]], Awaitable[None]]


def fault_from_env() -> int | None:
    """``EVALBOX_FAULT=crash_before_commit:N``: the commit number before which the process dies (tests)."""
    spec = os.environ.get("EVALBOX_FAULT", "")
    if not spec:
        return None
    name, _, n = spec.partition(":")
    if name != "crash_before_commit" or not n.isdigit():
        raise ConfigError(f"EVALBOX_FAULT={spec!r}: expected crash_before_commit:N")
    return int(n)


def _identity(d: Device | None) -> tuple[Any, ...] | None:
    return (d.key, d.window_id, d.boot_floor, d.settings_cv) if d else None


class Pipeline:
    """The single writer. ``submit`` from sources; ``run`` in the TaskGroup."""

    def __init__(self, store: Store, *, timezone: str, max_events: int = 1000, max_ms: int = 20) -> None:
        self.store = store
        self.tz = timezone
        self.max_events = max_events
        self.max_ms = max_ms
        self.metrics = Metrics()
        self.devices: dict[str, Device] = {}
        self._macs: dict[str, Any] = {}  # device → HMAC object keyed, copied per message
        self.clock = ClockRefs()  # (device, boot) → (received at ms, uptime ms): places unsynced events
        self._clock_loaded = False
        self._pending: list[Item] = []
        self._rejects: list[Rejection] = []  # found by a source itself (serial framing), written with the next batch
        self.routes: dict[str, Source] = {}  # device → the source it last spoke on
        self.default_route: Source | None = None  # MQTT, when configured: reaches every networked box
        self._config_sent: dict[str, tuple[int, float, str]] = {}  # device → (cv, monotonic s, source) last sent
        self._cv_ahead: dict[str, int] = {}  # device → the cv it runs, newer than the store's (a restored store)
        self._wake = asyncio.Event()
        self._month: tuple[int, int, str] = (0, 0, "")
        self._refreshed = 0.0
        self._crash_at = fault_from_env()
        self._commits = 0
        self.drained = asyncio.Event()
        self.on_new_devices: list[Callable[[list[Device]], None]] = []
        self.on_firmware: list[FirmwareHandler] = []  # a box's fws, after the batch it came in committed
        self._fw_states: list[tuple[Source, str, dict[str, Any]]] = []

    # ---- registry ----

    async def refresh(self) -> list[Device]:
        """Reload the boxes from the store; the ones that are new or changed."""
        devices = await self.store.devices()
        changed = [d for d in devices.values() if _identity(self.devices.get(d.id)) != _identity(d)]
        self.devices = devices
        self._macs = {d.id: hmac.new(d.key, digestmod="sha256") for d in devices.values()}
        if not self._clock_loaded:  # the references stored by the last run, never rebuilt from last_seen
            self.clock.load(await self.store.clock_refs())
            self._clock_loaded = True
        self._refreshed = time.monotonic()
        if changed:
            for cb in self.on_new_devices:
                cb(changed)
        return changed

    def route(self, dev: Device, source: Source, box_cv: int | None = None) -> None:
        """Remember the transport the box last spoke on, and see that its config reaches it there.

        A serial box gets its config the first time it is heard on a line (MQTT boxes get theirs retained
        on the broker). Either kind gets it again whenever its status (``box_cv``) shows an older version
        than the store's: a config that was sent but never applied is not taken as delivered.
        """
        self.routes[dev.id] = source
        if box_cv is not None and box_cv > dev.settings_cv:
            self._cv_ahead[dev.id] = box_cv  # raised in the store after this batch, then sent
        sent = self._config_sent.get(dev.id)
        first_on_line = source.name.startswith("serial") and (
            sent is None or sent[0] != dev.settings_cv or sent[2] != source.name
        )
        stale = box_cv is not None and box_cv < dev.settings_cv
        if stale and sent is not None and time.monotonic() - sent[1] < CONFIG_RESEND_S:
            stale = False  # sent moments ago: give the box time to apply it
        if not (first_on_line or stale):
            return
        if stale:
            self.metrics.configs_resent += 1
            log.info("%s: %s runs config v%d, sending v%d again", source.name, dev.id, box_cv, dev.settings_cv)
        self.send_config(dev, source)

    def send_config(self, dev: Device, source: Source) -> None:
        """Sign and send the box's config on ``source``; remember when (a failure is logged, retried later)."""
        try:
            source.send(dev.id, "config", self.config_message(dev))
        except Exception:
            log.exception("%s: sending the config to %s failed", source.name, dev.id)
            return
        self._config_sent[dev.id] = (dev.settings_cv, time.monotonic(), source.name)

    async def command_loop(self, stop: asyncio.Event, every_s: float = 0.3) -> None:
        """Relay queued box commands (``evalbox box-cmd``): signed ``cmd`` over the box's transport."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass
            try:
                pending = await self.store.pending_commands()
            except Exception:
                log.exception("reading box commands failed")
                continue
            for cid, device_id, op, officer, ticket in pending:
                if device_id not in self.devices:
                    await self.refresh()
                dev = self.devices.get(device_id)
                if dev is None:
                    continue
                # A serial box is reached only on its line (once known); a networked one over MQTT.
                source = self.routes.get(device_id) or (self.default_route if dev.transport == "mqtt" else None)
                if source is None:
                    continue  # not heard from yet: try again next round
                msg = protocol.make(protocol.COMMAND, device_id, cid=cid, op=op, o=officer, tk=ticket)
                try:
                    source.send(device_id, "cmd", self.signed(msg))
                    await self.store.mark_command_sent(cid, source.name)
                except Exception:
                    log.exception("%s: sending command %d to %s failed", source.name, cid, device_id)

    async def silence_loop(self, stop: asyncio.Event, silent_s: float) -> None:
        """Mark a box ``offline`` once it has been silent for ``silent_s`` (heartbeats stopped, no Last Will seen).

        Only silence heard while this collector listens counts: nothing is marked during its first ``silent_s``
        (after a restart the boxes' heartbeats have not had time to arrive yet).
        """
        every_s = max(0.05, min(silent_s / 4, 30.0))
        started = time.monotonic()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every_s)
                return
            except TimeoutError:
                pass
            if time.monotonic() - started < silent_s:
                continue
            try:
                gone = await self.store.mark_silent_offline(int((time.time() - silent_s) * 1000))
            except Exception:
                log.exception("marking silent boxes offline failed")
                continue
            if gone:
                log.warning(
                    "no heartbeat for %g s: %s marked offline / 超时未收到心跳，标记为离线", silent_s, ", ".join(gone)
                )

    async def refresh_loop(self, stop: asyncio.Event, every_s: float = 5.0) -> None:
        """Pick up boxes added while running (``evalbox device add``)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                try:
                    await self.refresh()
                except Exception:
                    log.exception("registry refresh failed")

    @property
    def queue_depth(self) -> int:
        """Messages received and waiting for the next batch."""
        return len(self._pending)

    # ---- intake ----

    def submit(
        self, source: Source, origin: str, payload: bytes, token: Any = None, recv_ms: int = 0, retained: bool = False
    ) -> None:
        """Queue one received message (called by sources in the loop; never blocks, never raises).

        ``retained``: the broker re-delivered a message it kept (MQTT retain flag); never a time reference.
        """
        self._pending.append((source, origin, payload, recv_ms or int(time.time() * 1000), token, retained))
        if len(self._pending) == 1 or len(self._pending) >= self.max_events:
            self._wake.set()

    def reject(self, rejection: Rejection) -> None:
        """Record input a source refused before the pipeline saw it (e.g. a serial line with a bad CRC)."""
        self.metrics.reject(rejection.reason)
        self._rejects.append(rejection)
        if len(self._rejects) == 1:
            self._wake.set()

    def signed(self, msg: dict[str, Any]) -> bytes:
        """Encode and sign a downlink message with its box's key."""
        return protocol.encode(msg, self.devices[msg["d"]].key)

    def config_message(self, device: Device) -> bytes:
        # ``cv`` moves only when the settings change (the box ignores a config it already has), so a
        # collector restart that republishes it changes nothing; ``o`` null leaves the duty as it is.
        s = device.settings
        msg = protocol.make(
            protocol.CONFIG,
            device.id,
            cv=device.settings_cv,
            o=None,
            w=device.window_id,
            n=s.scale,
            iw=s.invite_ms,
            mi=s.min_interval_ms,
            g=s.gated,
            hr=list(s.hours) if s.hours is not None else None,
            bf=device.boot_floor or None,
        )
        return self.signed(msg)

    # ---- the writer ----

    async def run(self, stop: asyncio.Event) -> None:
        """Batch and write until ``stop``; then flush what is queued, commit, ack, and set ``drained``."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                if not self._pending and not self._rejects:
                    if stop.is_set():
                        break
                    self._wake.clear()
                    waker = asyncio.create_task(self._wake.wait())
                    await asyncio.wait((waker, stopping), return_when=asyncio.FIRST_COMPLETED)
                    waker.cancel()
                    continue
                if len(self._pending) < self.max_events and not stop.is_set():
                    self._wake.clear()
                    first_ms = self._pending[0][3] if self._pending else int(time.time() * 1000)
                    delay = self.max_ms / 1000 - (time.time() * 1000 - first_ms) / 1000
                    if delay > 0:
                        waker = asyncio.create_task(self._wake.wait())
                        await asyncio.wait((waker, stopping), timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                        waker.cancel()
                take, self._pending = self._pending[: self.max_events], self._pending[self.max_events :]
                self.metrics.queue_depth = len(self._pending)
                await self.write(take)
        finally:
            stopping.cancel()
            self.drained.set()

    async def write(self, items: list[Item]) -> None:
        """Decode, store in one transaction, then settle and ack. Store errors propagate (the process stops)."""
        if any(self._unknown_topic_device(it[1]) for it in items) and time.monotonic() - self._refreshed > 1.0:
            await self.refresh()
        events, outcome, statuses, rejects, seen = self.prepare(items)
        clock_refs = self.clock.take_changed()
        if self._rejects:
            rejects, self._rejects = self._rejects + rejects, []
        self._commits += 1
        if self._crash_at is not None and self._commits >= self._crash_at:
            log.error("EVALBOX_FAULT: crashing before commit %d", self._commits)
            os._exit(137)
        t0 = time.perf_counter()
        stored = await self._commit(events, statuses, rejects, seen, clock_refs)
        commit_s = time.perf_counter() - t0
        n_new = sum(stored)
        now = int(time.time() * 1000)
        lag_s = (now - items[0][3]) / 1000 if items else 0.0
        self.metrics.batch_committed(len(items), n_new, len(stored) - n_new, commit_s, lag_s)
        self._settle(items)
        self._ack(outcome, now)
        if self._fw_states:
            await self._firmware()
        if self._cv_ahead:
            await self._catch_up_cv()

    async def _firmware(self) -> None:
        states, self._fw_states = self._fw_states, []
        # A transfer's progress (every chunk is answered with a state): only a box's last one in the batch.
        last = {device_id: i for i, (_s, device_id, _m) in enumerate(states)}
        for i, (source, device_id, msg) in enumerate(states):
            if last[device_id] != i and msg["st"] in ("recv", "pause"):
                continue
            dev = self.devices.get(device_id)
            if dev is None:  # removed from the registry since its message was checked
                continue
            for fn in self.on_firmware:
                try:
                    await fn(source, dev, msg)
                except Exception:
                    log.exception("%s: handling the firmware state of %s failed", source.name, device_id)

    async def _catch_up_cv(self) -> None:
        ahead, self._cv_ahead = self._cv_ahead, {}
        for device_id, cv in ahead.items():
            log.warning(
                "%s runs config v%d, newer than the store's: the store's settings go out as v%d", device_id, cv, cv + 1
            )
            try:
                await self.store.raise_settings_cv(device_id, cv)
            except Exception:
                log.exception("raising the config version of %s failed", device_id)
        await self.refresh()  # the changed boxes get their config (MQTT: republished; serial: at the next status)

    async def _commit(
        self,
        events: list[tuple[Any, ...]],
        statuses: list[StatusUpdate],
        rejects: list[Rejection],
        seen: dict[str, int],
        clock_refs: list[ClockRef],
    ) -> list[bool]:
        # A failed transaction rolled back whole: retrying is safe. A store that stays down stops the
        # process (nothing was acked, the broker keeps the messages).
        for attempt in range(COMMIT_ATTEMPTS):
            self.metrics.commit_begun()
            try:
                return await self.store.write_batch(
                    events, statuses=statuses, rejects=rejects, seen=seen, clock_refs=clock_refs
                )
            except StoreError as exc:
                self.metrics.commit_failed(str(exc))
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                log.warning("commit failed (%s); retrying / 写入失败，重试", exc)
                await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def _unknown_topic_device(self, origin: str) -> bool:
        d = topics.device_of(origin)
        return d is not None and d not in self.devices

    def _settle(self, items: list[Item]) -> None:
        by_source: dict[int, tuple[Source, list[Any]]] = {}
        for source, _o, _p, _r, token, _ret in items:
            if token is not None:
                by_source.setdefault(id(source), (source, []))[1].append(token)
        for source, tokens in by_source.values():
            try:
                source.settle(tokens)
            except Exception:
                log.exception("%s: settling failed", source.name)

    def _ack(self, outcome: dict[tuple[int, str], tuple[Source, list[tuple[int, int]]]], now: int) -> None:
        for (_sid, device_id), (source, ids) in outcome.items():
            dev = self.devices[device_id]
            self.route(dev, source)
            try:
                wires = self._signed_acks(device_id, protocol.ack_ranges(ids), now, dev.boot_floor or None)
            except Exception:
                log.exception("%s: signing the acks for %s failed", source.name, device_id)
                continue
            for wire in wires:
                try:
                    source.send(device_id, "ack", wire)
                    self.metrics.acks_sent += 1
                except Exception:
                    log.exception("%s: sending an ack to %s failed", source.name, device_id)

    def _signed_acks(self, device_id: str, ranges: list[list[int]], now: int, bf: int | None) -> list[bytes]:
        """Signed acks naming ``ranges``: at most 64 ranges each, and split further while one is too big.

        Scattered identities make many ranges (a box whose stream several collectors share, or one that
        resent a few old presses); long ids and big numbers make ranges long. Every message stays within
        the protocol's size limit, so the box hears of every commit.
        """
        parts = [ranges[i : i + 64] for i in range(0, len(ranges), 64)]
        wires: list[bytes] = []
        while parts:
            part = parts.pop(0)
            msg = {"v": 1, "t": "ack", "d": device_id, "r": part, "now": now, "bf": bf}
            try:
                wires.append(self.signed(msg))
            except ProtocolError as exc:
                if exc.reason != "oversize" or len(part) == 1:
                    raise
                half = len(part) // 2
                parts[0:0] = [part[:half], part[half:]]
        return wires

    def _month_of(self, ms: int) -> str:
        lo, hi, month = self._month
        if lo <= ms < hi:
            return month
        month = month_of(ms, self.tz)
        lo, hi = month_bounds(month, self.tz)
        self._month = (lo, hi, month)
        return month

    def prepare(
        self, items: list[Item]
    ) -> tuple[
        list[tuple[Any, ...]],
        dict[tuple[int, str], tuple[Source, list[tuple[int, int]]]],
        list[StatusUpdate],
        list[Rejection],
        dict[str, int],
    ]:
        """Decode and check every message: event rows, who to ack, statuses, rejections, last seen."""
        events: list[tuple[Any, ...]] = []
        outcome: dict[tuple[int, str], tuple[Source, list[tuple[int, int]]]] = {}
        statuses: list[StatusUpdate] = []
        rejects: list[Rejection] = []
        seen: dict[str, int] = {}
        m = self.metrics
        m.received += len(items)
        parse = protocol.parse
        compare = hmac.compare_digest
        for source, origin, payload, recv_ms, _token, retained in items:
            topic_device = topics.device_of(origin) if source.name == "mqtt" else None
            try:
                if topic_device is not None and payload == OFFLINE and origin.endswith("/status"):
                    if topic_device not in self.devices:
                        raise ProtocolError("unknown_device", topic_device)
                    statuses.append(StatusUpdate(topic_device, recv_ms, None))
                    m.statuses += 1
                    continue
                msg, body, mac = parse(payload)
                d = msg["d"]
                base = self._macs.get(d)
                if base is None:
                    raise ProtocolError("unknown_device", d)
                if topic_device is not None and topic_device != d:
                    raise ProtocolError("wrong_device", f"message for {d!r} on {origin!r}")
                h = base.copy()
                h.update(d.encode() + b"\n" + body)
                if not compare(h.hexdigest(), mac):
                    raise ProtocolError("bad_mac", f"signature does not match the key of {d!r}")
                t = msg["t"]
                if t == "status":
                    self.clock.status(d, msg["b"], msg["up"], recv_ms, retained=retained)
                    self.route(self.devices[d], source, msg.get("cv"))
                    statuses.append(StatusUpdate(d, recv_ms, msg))
                    seen[d] = recv_ms
                    m.statuses += 1
                    continue
                if t == fw_messages.FW_STATE:  # not "seen": a retained state may be old
                    self._fw_states.append((source, d, msg))
                    continue
                if t not in protocol.EVENT_TYPES:
                    raise ProtocolError("bad_type", f"{t!r} is not an uplink message")
                events.append(self._row(msg, d, recv_ms, "serial" if topic_device is None else "mqtt"))
                outcome.setdefault((id(source), d), (source, []))[1].append((msg["b"], msg["s"]))
                seen[d] = recv_ms
            except ProtocolError as exc:
                rejects.append(Rejection(recv_ms, exc.reason, source.name.split(":")[0], origin, str(exc), payload))
                m.reject(exc.reason)
        return events, outcome, statuses, rejects, seen

    def _row(self, msg: dict[str, Any], d: str, recv_ms: int, source: str) -> tuple[Any, ...]:
        t = msg["t"]
        ts: int | None = msg.get("ts")
        up = msg["up"]
        flags = msg.get("f") or 0
        if ts is not None and (ts > recv_ms + CLOCK_FUTURE_MS or ts < recv_ms - CLOCK_PAST_MS):
            flags |= FLAG_CLOCK_SUSPECT
            ts_ok = False
        else:
            ts_ok = ts is not None
        press_ms = ts if ts_ok and ts is not None else self.clock.place(d, msg["b"], up, recv_ms)
        if t == "press":
            kind = "misuse" if flags & 6 else "unsolicited" if flags & 1 else "rated"
            level, scale = msg["k"], msg["n"]
        else:
            kind, level, scale = t, None, None
        return (
            d,
            msg["b"],
            msg["s"],
            t,
            msg.get("o"),
            self.devices[d].window_id,
            press_ms,
            ts,
            up,
            recv_ms,
            self._month_of(press_ms),
            level,
            scale,
            msg.get("i"),
            msg.get("tk"),
            flags,
            kind,
            source,
        )
