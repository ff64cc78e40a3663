"""The box application: keys -> session -> outbox (saved) -> feedback -> sender.

One asyncio loop runs the board's key task, the sender, the ticker (invite
expiry, outbox packing), the heartbeat, the transport and the watchdog
supervisor. A press is saved to flash *before* the LED lights; only the
collector's signed ack removes it. Board code (``boards/``) is the only code
that touches ``machine`` or ``network``.
"""

import asyncio
import gc
import os
import time
from binascii import unhexlify

import protocol
from firmware.outbox import PAD, Outbox, OutboxFull, message_fields, read_file, write_atomic
from firmware.ports import FEED_EVERY_MS
from firmware.session import Session

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

FW_VERSION = "evalbox-fw 0.1.0"
WINDOW = 16  # events in flight (sent, not yet acked) at a time
RECENT_CIDS = 32
PACK_DELAY_MS = 5000  # packing waits this long after a MemoryError
# Bytes of the journal's littlefs metadata block a press may need: a press saves at most two
# events (an unrated invite closed, then the press), each a create and a write commit of under
# 100 bytes. With less room left, the ticker has littlefs compact the block now (an erase, 45 ms
# on the RP2040) so that the next press never waits for one.
PRESS_ROOM = 448
# Right after a save (a key's light just went on: the next citizen is seconds away), the ticker
# brings the compaction forward already when less than PRESS_ROOM + EARLY_ROOM is left, so that
# the deletes acks and packing make until the next save seldom need one at a random moment.
EARLY_ROOM = 192
STATUS_HOLD_MS = 3000  # the heartbeat's status waits this long at most for an open invite's press
PAD_MAX = 448  # the pad's bytes at most: under littlefs's inline limit here (a 1 KiB cache: 512)
PAD_SLACK = 96  # room the pad's own commit takes besides its data (tags, CRC, padding to the program size)
ACK_QUEUE = 16  # acked ranges waiting for their deletes; an ack beyond is dropped (the collector acks the resend)


class Clock:
    """Uptime from monotonic ticks; wall time once synced (NTP, `clock`, or an ack)."""

    def __init__(self) -> None:
        self._t = time.ticks_ms()
        self.up = 0
        self.offset: "int | None" = None  # wall ms - uptime ms
        self.source: "str | None" = None

    def uptime(self) -> int:
        now = time.ticks_ms()
        self.up += time.ticks_diff(now, self._t)
        self._t = now
        return self.up

    def set_wall(self, wall_ms: int, source: str) -> None:
        self.offset = wall_ms - self.uptime()
        self.source = source

    def wall(self) -> "int | None":
        if self.offset is None:
            return None
        return int(self.uptime() + self.offset)


class App:
    """Everything the box does, independent of the board and the transport."""

    def __init__(self, cfg: "dict[str, Any]", board: "Any", root: str) -> None:
        self.cfg = cfg
        self.board = board
        self.device = cfg["device_id"]
        self.key = unhexlify(cfg["key_hex"])
        self.root = root
        self.outbox = Outbox(root + "/ob", cfg["outbox_capacity"], cfg["seg_records"])
        self.session = Session(
            cfg["scale"], cfg["invite_ms"], cfg["min_interval_ms"], cfg["gated"], cfg["hours"], cfg["officer"]
        )
        self.window_id = cfg["window_id"]
        self.clock = Clock()
        self.cv = 0
        self.link: "Any" = None
        self.inflight: "dict[tuple[int, int], Any]" = {}  # id -> ticks sent
        self.wake = asyncio.Event()
        self.acked = 0
        self.dup_acked = 0  # ids acked again (already deleted): status ``da``
        self.mem_errors = 0  # MemoryErrors caught and survived
        self.pack_after: "Any" = None  # ticks before which packing waits (after a MemoryError)
        # Signed acks are applied to the flash in steps by the ticker (``chores``), not in the
        # link's task: ranges [b, lo, hi] waiting for their deletes, oldest first.
        self.ackq: "list[list[int]]" = []
        self.chores = asyncio.Event()  # set after a press or an ack: the ticker's work is due now
        self.collect = False  # a press's light is on: the ticker collects garbage first
        self.err: "str | None" = None
        self.rejected: "dict[str, int]" = {}
        self.cids: "list[int]" = []
        self.beats: "dict[str, Any]" = {}  # task name -> ticks of its last beat
        self.stall_ms: int = cfg["watchdog_ms"]  # a task silent for a whole watchdog period is wedged
        self.ignored_keys = 0  # presses of keys beyond the configured scale
        self.self_test = "ok"
        self.boot = 0
        # the board's flash device when it reports how full its blocks are (firmware.norflash.PageProgram)
        dev = getattr(board, "flash", None)
        self.flash: "Any" = dev if hasattr(dev, "room") else None
        self._jblock = -1  # the flash block the journal's last commit went to
        self.compactions = 0  # compactions brought forward by maintain_flash
        self._saved_seq = -1  # the outbox's next seq at the ticker's last pass: a save since then is fresh
        self.fw: "dict[str, Any] | None" = None  # the boot pointer firmware/slots.py booted (None: no slots)
        self.ota: "Any" = None  # firmware.ota.Updater, imported only when an update needs it

    # ---- start-up ----

    def start(self) -> int:
        """Open the outbox (bumping the boot counter) and restore the last good config."""
        try:
            self.boot = self.outbox.open()
        except MemoryError:
            self.out_of_memory("opening the outbox: retried")
            self.boot = self.outbox.open()
        for p in self.outbox.problems:
            self.report(p)
        raw = read_file(self.root + "/config")
        if raw:
            self.on_downlink(raw, restoring=True)
        duty = read_file(self.root + "/duty")
        if duty is not None:
            # Who was signed in survives a power cut: nobody re-signs in after a blip.
            self.session.officer = duty.decode() or None
        self.self_test = self.board.self_test()
        return self.boot

    def out_of_memory(self, where: str) -> None:
        """A MemoryError was caught: free what can be freed, count it, say so in status ``err``."""
        gc.collect()
        self.mem_errors += 1
        self.report("MemoryError %s (%d so far)" % (where, self.mem_errors))

    def report(self, what: str) -> None:
        """Remember the last error (sent in every status: printable, at most 80 chars)."""
        out = []
        for ch in what[:80]:
            out.append(ch if 0x20 <= ord(ch) < 0x7F or ord(ch) > 0x9F else "?")
        self.err = "".join(out)

    # ---- events ----

    def _local_minute(self, wall: "int | None") -> "int | None":
        if wall is None:
            return None
        tz: int = self.cfg["tz_min"]
        return (wall // 60000 + tz) % 1440

    def _save(
        self, evs: "list[dict[str, Any]]", wall: "Any" = False, up: "int | None" = None, wake: bool = True
    ) -> "list[tuple[int, int]]":
        """Save ``evs`` durably (times and officer added); their identities.

        ``wall``/``up``: the times already read for a key press (``False``/None: read now).
        ``wake``: wake the sender now; a key's press leaves that to ``after_feedback``, after its light.
        """
        ids = []
        if wall is False:
            wall = self.clock.wall()
        if up is None:
            up = self.clock.uptime()
        for ev in evs:
            ev["ts"] = wall
            ev["up"] = up
            if "o" not in ev:
                ev["o"] = self.session.officer
            try:
                ids.append(self.outbox.save(ev))
            except MemoryError:
                # nothing was taken (the identity is assigned on success): free heap, try once more
                self.out_of_memory("saving an event: retried")
                ids.append(self.outbox.save(ev))
        if self.flash is not None:
            self._jblock = self.flash.last
        if ids and wake:
            self.wake.set()
        return ids

    def on_key(self, k: int) -> "dict[str, Any]":
        """A citizen key: save, then feedback. Returns what the sim reports."""
        t0 = time.ticks_ms()
        if not 1 <= k <= self.session.scale:
            # A key the panel has but the scale has not (a 3-key panel on a 2-level box): not a rating.
            self.ignored_keys += 1
            n = self.session.scale
            self.report("key %d beyond the scale 1..%d ignored (%d so far)" % (k, n, self.ignored_keys))
            return {"ok": False, "err": "beyond_scale"}
        if self.outbox.full:  # refuse before the session counts the press
            self.report("outbox full: %d unacked events" % self.outbox.depth)
            self.board.feedback("full", k)
            return {"ok": False, "err": "outbox_full"}
        up = self.clock.uptime()
        wall = self.clock.wall()
        evs = self.session.press(k, up, wall is not None, self._local_minute(wall))
        try:
            ids = self._save(evs, wall, up, wake=False)  # the light first, then the sender
        except OutboxFull as exc:
            self.report(str(exc))
            self.board.feedback("full", k)
            return {"ok": False, "err": "outbox_full"}
        except MemoryError:
            self.out_of_memory("on key %d: press not taken" % k)
            return {"ok": False, "err": "memory"}
        press = evs[-1]
        self.board.feedback("thanks" if press["f"] & 1 == 0 or not self.session.gated else "noted", k)
        fb = time.ticks_diff(time.ticks_ms(), t0)
        self.after_feedback()
        return {"ok": True, "id": [self.device, ids[-1][0], ids[-1][1]], "f": press["f"], "i": press["i"], "fb_ms": fb}

    def after_feedback(self) -> None:
        """Right after a key's light: the moment least likely to hold up the next key.

        Wake the sender for what was just saved (the press's step lit the light before
        that). Have the key task (its next step) or else the ticker collect garbage (a step of its
        own, so the press's step stays short), so that a collection the heap would force later does not fall inside
        the next press, then do its flash work (the next journal file, acks, packing, the
        journal block's compaction) now rather than at a random moment.
        """
        self.wake.set()
        self.collect = True
        self.chores.set()

    def collect_garbage(self) -> None:
        """The collection ``after_feedback`` asked for, if still to do (the key task's next step, or the ticker)."""
        if self.collect:
            self.collect = False
            gc.collect()

    def _saved(self, evs: "list[dict[str, Any]]", wake: bool = True) -> "dict[str, Any]":
        try:
            ids = self._save(evs, wake=wake)
        except OutboxFull as exc:
            self.report(str(exc))
            self.board.feedback("full", 0)
            return {"ok": False, "err": "outbox_full"}
        if not ids:
            return {"ok": True, "id": None}
        return {"ok": True, "id": [self.device, ids[-1][0], ids[-1][1]]}

    def _check(self, t: str, **fields: "Any") -> "str | None":
        """The protocol's reason a field would be refused, before anything is saved."""
        try:
            protocol.make(t, self.device, b=0, s=0, ts=None, up=0, **fields)
        except protocol.ProtocolError as exc:
            return str(exc)
        return None

    def on_invite(self, tk: "str | None" = None) -> "dict[str, Any]":
        """The officer's 请评价 key (or the window PC): open a rating window."""
        bad = self._check(protocol.INVITE, o=None, i=0, tk=tk) if tk is not None else None
        if bad:
            return {"ok": False, "err": "bad ticket: %s" % bad}
        if self.outbox.full:
            self.board.feedback("full", 0)
            return {"ok": False, "err": "outbox_full"}
        out = self._saved(self.session.invite(self.clock.uptime(), tk), wake=False)  # after_feedback wakes
        if out["ok"]:
            out["i"] = self.session.open_no
            self.board.feedback("invite", 0)
            self.after_feedback()
        return out

    def on_signin(self, officer: str) -> "dict[str, Any]":
        bad = self._check(protocol.SIGNIN, o=officer)
        if bad:
            return {"ok": False, "err": "bad officer id: %s" % bad}
        out = self._saved(self.session.signin(officer))
        self._persist_duty()
        return out

    def on_signout(self) -> "dict[str, Any]":
        out = self._saved(self.session.signout())
        self._persist_duty()
        return out

    def _persist_duty(self) -> None:
        """Keep the officer on duty on flash (a tiny inline file: no erase on littlefs)."""
        try:
            write_atomic(self.root + "/duty", (self.session.officer or "").encode())
        except OSError as exc:
            self.report("duty not persisted: %s" % exc)

    def set_clock(self, wall_ms: int) -> None:
        self.clock.set_wall(wall_ms, "set")

    # ---- downlink ----

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.report("downlink rejected: %s %s" % (reason, detail))

    def _decode(self, payload: bytes) -> "dict[str, Any] | None":
        """A downlink checked (signature, device, schema): the message, or None once counted as rejected."""
        try:
            msg: "dict[str, Any]" = protocol.decode(payload, self.key, self.device)
        except protocol.ProtocolError as exc:
            self._reject(exc.reason, exc.detail)
            return None
        return msg

    def on_downlink(self, payload: bytes, restoring: bool = False) -> None:
        """A signed ack, config or command from the collector (or the window PC)."""
        msg = self._decode(payload)
        if msg is None:
            return
        t = msg["t"]
        if t == protocol.ACK:
            self._on_ack(msg)
            if self.ota is not None:
                self.ota.on_ack()
        elif t == protocol.CONFIG:
            self._on_config(msg, payload, restoring)
        elif t == protocol.COMMAND:
            self._on_command(msg)
        else:
            self._reject("bad_type", "%s is not a downlink" % t)

    def _on_ack(self, msg: "dict[str, Any]") -> None:
        q = self.ackq
        for b, lo, hi in msg["r"]:
            for key in [k for k in self.inflight if k[0] == b and lo <= k[1] <= hi]:
                del self.inflight[key]
            if q and q[-1][0] == b and q[-1][2] + 1 == lo:
                q[-1][2] = hi  # the usual case: the next events in order
            elif len(q) < ACK_QUEUE:
                q.append([b, lo, hi])
            # else dropped: those events stay on flash, are sent again and acked again
        if self.clock.source in (None, "ack"):  # NTP or a set clock wins over the collector's
            self.clock.set_wall(msg["now"], "ack")
        if msg.get("bf") is not None:
            self._boot_floor(msg["bf"])
        self.chores.set()
        self.wake.set()

    def _acking(self, key: "tuple[int, int]") -> bool:
        """True when ``key`` is named by an ack whose deletes are still to come."""
        for b, lo, hi in self.ackq:
            if key[0] == b and lo <= key[1] <= hi:
                return True
        return False

    def apply_acks(self) -> "Any":
        """Apply the queued acks to the outbox, one flash operation per step (a generator)."""
        q = self.ackq
        while q:
            b, lo, hi = q[0]
            done = 0
            for done in self.outbox.ack_steps(b, lo, hi):  # noqa: B007 - its last value is the total
                yield
            if q and q[0][0] == b and q[0][1] == lo:
                if q[0][2] == hi:
                    q.pop(0)
                else:  # merged with a later ack meanwhile: the rest of it next
                    q[0][1] = hi + 1
            self.acked += done
            # ids the box no longer holds: a repeat ack after a resend (its first ack was
            # late, or lost and the event sent again). Normal: counted, not an error.
            self.dup_acked += hi - lo + 1 - done

    def _boot_floor(self, bf: int) -> None:
        if self.outbox.raise_floor(bf):
            self.boot = self.outbox.boot

    def _on_config(self, msg: "dict[str, Any]", payload: bytes, restoring: bool) -> None:
        if msg["cv"] <= self.cv:
            return
        self.session.apply(msg["n"], msg["iw"], msg["mi"], msg["g"], msg.get("hr"))
        # ``o`` null leaves the duty alone (officers sign in at the box or from the window PC);
        # a named officer signs in, replacing whoever was on duty.
        officer = msg.get("o")
        if officer is not None and restoring:
            self.session.officer = officer
        elif officer is not None and officer != self.session.officer:
            try:
                self._save(self.session.signin(officer))
                self._persist_duty()
            except OutboxFull as exc:
                self.report(str(exc))
        if msg.get("w") is not None:
            self.window_id = msg["w"]
        if msg.get("bf") is not None:
            self._boot_floor(msg["bf"])
        self.cv = msg["cv"]
        if not restoring:
            try:
                write_atomic(self.root + "/config", payload)
            except OSError as exc:
                self.report("config not persisted: %s" % exc)

    def _on_command(self, msg: "dict[str, Any]") -> None:
        cid = msg["cid"]
        if cid in self.cids:
            return
        self.cids.append(cid)
        if len(self.cids) > RECENT_CIDS:
            self.cids.pop(0)
        op = msg["op"]
        if op == "invite":
            self.on_invite(msg.get("tk"))
        elif op == "signin":
            if msg.get("o") is None:
                self._reject("missing_field", "cmd signin without o")
            else:
                self.on_signin(msg["o"])
        elif op == "signout":
            self.on_signout()

    def between_citizens(self) -> bool:
        """No invite open and no press within the minimum interval: a reset now cuts no citizen short."""
        s = self.session
        if s.open_no is not None:
            return False
        last = s.last_press_ms
        return last is None or self.clock.uptime() - last >= s.min_interval_ms

    def on_fw(self, payload: "bytes | None") -> None:
        """A firmware offer or chunk (firmware/ota.py, loaded now if it is not yet); None: just load it."""
        if self.ota is None:
            from firmware.ota import Updater

            self.ota = Updater(self)
        if payload is not None:
            self.ota.on_message(payload)

    # ---- uplink ----

    def status_message(self) -> bytes:
        return protocol.encode(self.status_fields(), self.key)

    def status_fields(self) -> "dict[str, Any]":
        """The status, checked but not yet signed (``status_message`` signs it; the heartbeat in a step of its own)."""
        msg: "dict[str, Any]" = protocol.make(
            protocol.STATUS,
            self.device,
            b=self.boot,
            up=self.clock.uptime(),
            ts=self.clock.wall(),
            fw=FW_VERSION,
            q=self.outbox.depth,
            full=self.outbox.full,
            mem=gc.mem_free(),
            rssi=self.board.rssi(),
            rst=self.board.reset_cause(),
            err=self.err,
            st=self.self_test,
            cv=self.cv,
            da=self.dup_acked,
        )
        return msg

    def event_message(self, ev: "dict[str, Any]") -> bytes:
        return protocol.encode(protocol.make(ev["t"], self.device, **message_fields(ev)), self.key)

    def on_connected(self) -> None:
        """The transport is (again) up: everything unacked is sent again."""
        self.inflight = {}
        self.wake.set()

    async def _wait_wake(self, ms: int) -> None:
        try:
            await asyncio.wait_for_ms(self.wake.wait(), ms)
        except asyncio.TimeoutError:
            pass
        self.wake.clear()

    def _forget_stale(self, now: "Any", age: int) -> None:
        # An ack can arrive while send_event is still awaiting, before the id
        # is marked in flight; such entries are never popped by an ack. Any
        # entry older than two resend intervals is one of those (live ones
        # are re-stamped when resent), so drop it: inflight stays bounded.
        stale = [k for k in self.inflight if time.ticks_diff(now, self.inflight[k]) > age]
        for k in stale:
            del self.inflight[k]

    async def _send_window(self, link: "Any", resend: int) -> None:
        """One walk of the outbox: send what is not in flight, up to ``WINDOW`` in flight at a time."""
        now = time.ticks_ms()
        self._forget_stale(now, 2 * resend)
        inflight = self.inflight
        flying = 0
        for key in inflight:
            if time.ticks_diff(now, inflight[key]) < resend:
                flying += 1

        def busy(key: "tuple[int, int]") -> bool:
            # in flight and not yet due for a resend: passed over without reading it from flash
            sent = inflight.get(key)
            return (sent is not None and time.ticks_diff(now, sent) < resend) or self._acking(key)

        if flying >= WINDOW:
            return
        for ev in self.outbox.pending(busy, True):
            if ev is None:  # a read from flash done: the next one, or the signing, is a step of its own
                await self.keys_first()
                continue
            key = (ev["b"], ev["s"])
            try:
                payload = self.event_message(ev)
            except protocol.ProtocolError as exc:
                # cannot be encoded (should not happen: inputs are checked); kept, reported, skipped
                self.report("unsendable event %d/%d: %s" % (key[0], key[1], exc))
                continue
            try:
                ok = await link.send_event(payload)
            except MemoryError:
                raise
            except Exception as exc:
                self.report("send failed: %r" % (exc,))
                ok = False
            if not ok:
                break
            if key not in inflight:
                flying += 1
            inflight[key] = now
            if flying >= WINDOW:
                break
            await self.keys_first()  # one event per step: a key going down waits for one, not sixteen

    async def sender(self) -> None:
        """Send unacked events, oldest first, at most ``WINDOW`` in flight; resend late ones."""
        resend = self.cfg["resend_ms"]
        while True:
            self.beats["sender"] = time.ticks_ms()
            link = self.link
            if link is not None and link.online:
                try:
                    await self._send_window(link, resend)
                except MemoryError:
                    self.out_of_memory("sending: retried in 1 s")
            await self._wait_wake(1000)

    def _journal_dir(self) -> str:
        d: str = getattr(self.outbox, "journal_dir", self.outbox.root + "/j")
        return d

    def maintain_flash(self, early: int = 0) -> bool:
        """One step of bringing the journal's next littlefs compaction forward, off the press path.

        When the metadata block the journal commits to has less than ``PRESS_ROOM`` bytes left,
        write and remove a pad file beside the journal: this fills the block and littlefs
        compacts it here (erasing its twin) rather than inside the next press's save. A pad
        left by a power cut is removed at boot by the outbox. ``early``: bytes of room more to keep (right
        after a save, see ``EARLY_ROOM``). True when it did a step (the next call may have none to do).
        """
        dev = self.flash
        if dev is None or self._jblock < 0 or dev.room(self._jblock) >= PRESS_ROOM + early:
            return False
        e0 = dev.erases
        path = self._journal_dir() + "/" + PAD
        # The pad holds about the room left (inline: stored in the metadata block itself), so the
        # block fills in one round and its removal is the commit that overflows: one compaction,
        # without the pad in it, instead of a dozen small rounds of a step each.
        fill = min(PAD_MAX, dev.room(self._jblock) - PAD_SLACK)
        try:
            with open(path, "wb") as f:
                if fill > 0:
                    f.write(bytes(fill))
            os.remove(path)
        except OSError as exc:
            self.report("flash maintenance failed: %s" % exc)
            return False
        except MemoryError:  # tried again at the next pass (a pad left meanwhile is rewritten, or dropped at boot)
            self.out_of_memory("in flash maintenance")
            return False
        self._jblock = dev.last
        if dev.erases != e0:
            self.compactions += 1
        return True  # a step done (a compaction is a long one): the next call says whether more is due

    async def ticker(self) -> None:
        """Close expired invites (unrated events); apply acks, keep the journal's block room, pack.

        All flash work off the press path happens here, in steps of about one flash operation
        with the loop yielded between two (a key going down waits for one step, not for a whole
        segment), and right after a press or an ack (``chores``) rather than at a random moment.
        """
        while True:
            self.beats["ticker"] = time.ticks_ms()
            if self.collect:  # a press's light is on and the key task has not collected yet
                await self.keys_first()
                self.collect_garbage()
                await self.keys_first()
            try:
                evs = self.session.tick(self.clock.uptime())
                if evs:
                    self._save(evs)
            except OutboxFull as exc:
                self.report(str(exc))
            except MemoryError:
                self.out_of_memory("closing an invite")
            await self.keys_first()
            seq = self.outbox.seq
            if seq != self._saved_seq:  # a save since the last pass: the moment least likely to hold up a key
                self._saved_seq = seq
                while self.maintain_flash(EARLY_ROOM):
                    await self._step()
            if self._prepare():
                await self._flash_step()
            try:
                for _ in self.apply_acks():
                    await self._flash_step()
            except MemoryError:
                self.out_of_memory("applying an ack: retried")  # the rest of the queue stays
            await self._flash_step()
            if self.pack_after is not None and time.ticks_diff(time.ticks_ms(), self.pack_after) >= 0:
                self.pack_after = None
            if self.pack_after is None:
                try:
                    # (Packing does not wait for an open invite's press: on the RP2040 model the
                    # journal then outgrew its RAM window, and walking its directory cost more.)
                    while self.outbox.pack_step():
                        await self._flash_step()
                except MemoryError:
                    # the journal keeps the events (on flash); packing is retried later
                    self.pack_after = time.ticks_add(time.ticks_ms(), PACK_DELAY_MS)
                    self.out_of_memory("packing: delayed")
            self.board.show_full(self.outbox.full)
            try:
                await asyncio.wait_for_ms(self.chores.wait(), 100)
            except asyncio.TimeoutError:
                pass
            self.chores.clear()

    async def _step(self) -> None:
        """Between two steps of the ticker's flash work: let every other task (a key) run."""
        self.beats["ticker"] = time.ticks_ms()
        await self.keys_first()

    def _prepare(self) -> bool:
        """Create the next event's journal file if it is not there yet (one step); True when it was."""
        try:
            if not self.outbox.prepare():
                return False
        except MemoryError:
            self.out_of_memory("creating the next journal file")
            return False
        if self.flash is not None:
            self._jblock = self.flash.last
        return True

    async def _flash_step(self) -> None:
        """After a step that may have used the journal block's room (a delete): restore it before a key needs it.

        And have the next event's journal file ready (``Outbox.prepare``) before a key needs it,
        also in the middle of a long packing.
        """
        await self._step()
        while self._prepare() or self.maintain_flash():
            await self._step()

    async def keys_first(self) -> None:
        """Between two steps of background work: yield the loop, and while a key is down wait for its press.

        The key's pin IRQ marks it down at the edge; its press is taken once the key has stayed
        down ``debounce_ms`` (10 ms by default). Work that starts meanwhile would make the
        citizen wait for it, so it waits instead (at most 100 ms, so a flapping key cannot
        starve it); a step already running when the key went down holds the press up by what
        it has left beyond the confirmation.
        """
        await asyncio.sleep_ms(0)
        pressing = getattr(self.board, "pressing", None)
        n = 0
        while pressing is not None and n < 20 and pressing():
            await asyncio.sleep_ms(5)
            n += 1

    async def heartbeat(self) -> None:
        """Publish the retained status every ``heartbeat_ms``."""
        while True:
            self.beats["heartbeat"] = time.ticks_ms()
            link = self.link
            if link is not None and link.online:
                waited = 0
                while self.session.open_no is not None and waited < STATUS_HOLD_MS:
                    # an invite is open, a citizen about to press: the status (a collection, its
                    # signing) waits for the press, a few seconds at most
                    await asyncio.sleep_ms(50)
                    waited += 50
                    self.beats["heartbeat"] = time.ticks_ms()
                await self.keys_first()
                if gc.mem_free() < gc.mem_alloc():
                    # Over half the heap used: a collection is due soon, here rather than inside a
                    # press (the key task collects after every press; this is for an idle box).
                    gc.collect()
                    await self.keys_first()
                try:
                    msg = self.status_fields()
                    await self.keys_first()  # building it and signing it: two steps
                    payload = protocol.encode(msg, self.key)
                    await self.keys_first()
                    await link.send_status(payload)
                except MemoryError:
                    self.out_of_memory("in a status: dropped")  # the next one comes in heartbeat_ms
                except Exception as exc:
                    self.report("status failed: %r" % (exc,))
            slept = 0
            while slept < self.cfg["heartbeat_ms"]:
                await asyncio.sleep_ms(500)
                slept += 500
                self.beats["heartbeat"] = time.ticks_ms()

    async def supervisor(self) -> None:
        """Feed the watchdog once a second, only while every task beat within ``stall_ms``.

        Every await a task makes (a connect, a send, the Wi-Fi join) is bounded
        below the watchdog by config validation, so a silent task is wedged.
        """
        while True:
            now = time.ticks_ms()
            alive = True
            for name in self.beats:
                if time.ticks_diff(now, self.beats[name]) > self.stall_ms:
                    alive = False
                    self.report("task stalled: %s" % name)
            if alive:
                self.board.feed_watchdog()
            await asyncio.sleep_ms(FEED_EVERY_MS)

    async def run(self, link: "Any") -> None:
        """Run every task until one of them fails (the board then resets)."""
        self.link = link
        fw = self.fw
        if fw is not None and (fw["trial"] or fw.get("news")):  # a trial to pass, or news (once) to report
            self.on_fw(None)
        tasks = [
            asyncio.create_task(self.sender()),
            asyncio.create_task(self.ticker()),
            asyncio.create_task(self.heartbeat()),
            asyncio.create_task(self.supervisor()),
            asyncio.create_task(link.run(self)),
            asyncio.create_task(self.board.run(self)),
        ]
        await asyncio.gather(*tasks)
