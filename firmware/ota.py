"""Firmware updates on the box: receive a signed release, check it, install it in the idle slot, trial, commit.

Imported only when a firmware message arrives or the box boots in trial or
after a rollback (``App.on_fw``/``App.run``): a box that is not updating
carries none of this, nor the Ed25519 verifier, in its heap.

Transfer (protocol/SPEC.md section 8): the collector offers a release
(``fwo``: id, size, version) and sends it in ``fwc`` chunks of at most 256
bytes, each naming its offset. The box appends a chunk only at the offset it
expects, to ``fw/rx`` (one small littlefs write per chunk; the file's size
on flash is the resume point after a reset or a reconnect), and answers every
message with its state (``fws``: offset, state, version, slot, trial, last
error) so the sender resumes exactly where the box is. It refuses to take
chunks (state ``pause``) while the outbox is under pressure, never writes
under ``ob/``, and refuses a release the flash has no room for.

When the last byte is in, the box renames ``fw/rx`` to ``fw/new`` and
resets, at the first moment between two citizens (no invite open, no press
within the minimum interval: ``App.between_citizens``):
``firmware/install.py`` checks it at the next boot, before the app takes
the heap, installs it into the idle slot and points the boot pointer at it
(``firmware/slots.py``), or notes why it refused it. The new firmware
boots in trial; its self-test passes when the app is up (config loaded,
outbox open) and a signed ack has come back over the link after the box
announced its trial, then ``commit`` makes it the box's version. A failed
self-test or no ack within ``fw_trial_ms`` rolls back and resets. A key
rotation statement (``fwk``) goes the same way, as ``fw/key.new``.
"""

import asyncio
import gc
import json
import os
import time
from binascii import a2b_base64

import protocol
from firmware import slots
from firmware.outbox import _mkdir, _remove, read_file, write_atomic
from protocol import firmware as messages  # the firmware channel: registers its schemas

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

SIM_RESET = 75  # the sim board's process exits with this status to be started again (a reset)
PRESSURE = 4  # chunks pause while the outbox holds more than capacity // PRESSURE events
RESERVE = 8  # flash blocks kept free beyond the release and its installed copy
RESET_WAIT_MS = 600000  # a reset waits at most this long for a moment between two citizens


def begin(root: str, rid: str, size: int) -> str:
    """Start receiving release ``rid`` of ``size`` bytes: ``fw/rx`` emptied, ``fw/rx.id`` names it; its path."""
    rx = slots.fwdir(root) + "/rx"
    _mkdir(slots.fwdir(root))
    _remove(rx)
    write_atomic(rx + ".id", json.dumps([rid, size]).encode())
    return rx


def append(rx: str, data: bytes) -> None:
    """One chunk onto the release being received: littlefs commits it whole at close, or not at all."""
    with open(rx, "ab") as f:
        f.write(data)


class Updater:
    """The box's side of an update: one per boot, created lazily by the app."""

    def __init__(self, app: "Any") -> None:
        self.app = app
        self.root = app.root
        self.rx = slots.fwdir(self.root) + "/rx"
        ptr = app.fw if app.fw is not None else slots.read(self.root)
        self.trial = bool(ptr["trial"])
        self.why: "str | None" = ptr.get("why")
        self.st = "trial" if self.trial else ptr.get("st") or "idle"
        self.id: "str | None" = ptr.get("rid") if self.st in ("refused", "rolled_back") else None
        # the last release this box took to the end (installed, refused, rolled back): offered again
        # (a sender's resend crossing the box's reset), it is answered with the state, not taken twice
        self.done: "str | None" = ptr.get("rid")
        self.sz = 0
        self.off = 0
        self.acked = False  # a signed ack arrived after the trial state went out
        self.sent = False  # the state went out while the link was up
        self.dirty = True
        self.busy = False  # checking or installing
        self.news = asyncio.Event()  # the state changed: send it now
        # the rotation that set the release key this box trusts (0: as provisioned)
        self.key_seq = slots.trusted_key(self.root, app.cfg["release_pubkey"])[1]
        self._restore()
        self.task = asyncio.create_task(self.run())

    # ---- state ----

    def _restore(self) -> None:
        """A transfer interrupted by a reset or a lost link resumes at the size already on flash."""
        raw = read_file(self.rx + ".id")
        if not raw:
            return
        try:
            self.id, self.sz = json.loads(raw)
            self.off = os.stat(self.rx)[6]
        except (ValueError, TypeError, OSError):
            self.id, self.sz, self.off = None, 0, 0
            return
        if not self.trial:
            self.st = "recv"

    def state_message(self) -> bytes:
        app = self.app
        ptr = app.fw or {}
        slot = ptr.get("run") or "usb"
        return protocol.encode(
            protocol.make(
                messages.FW_STATE,
                app.device,
                ver=ptr.get("ver"),
                sl=slot,
                tr=self.trial,
                st=self.st,
                id=self.id,
                off=self.off,
                sz=self.sz,
                why=self.why,
                ks=self.key_seq,
            ),
            app.key,
        )

    def _set(self, st: str, why: "str | None" = None) -> None:
        self.st = st
        if why is not None:
            self.why = why[:80]
            self.app.report("firmware update: " + self.why)
        self.dirty = True
        self.news.set()

    # ---- messages ----

    def on_message(self, payload: bytes) -> None:
        app = self.app
        gc.collect()  # a chunk's message is ~0.8 KB in one piece: give it the heap's largest gap
        msg = app._decode(payload)
        if msg is None:
            return
        t = msg["t"]
        if t == messages.FW_OFFER:
            self._offer(msg)
        elif t == messages.FW_CHUNK:
            self._chunk(msg)
        elif t == messages.FW_KEY and not self.busy:
            self._key(msg)
        else:
            app._reject("bad_type", "%s is not a firmware downlink" % t)
        self.dirty = True  # every offer and chunk is answered with the state: the sender's ack and resume point
        self.news.set()

    def _offer(self, msg: "dict[str, Any]") -> None:
        if self.busy or self.trial or msg["id"] in (self.id, self.done):
            return  # the answer (our state) says where we are
        free = self._free()
        if free is not None and msg["sz"] * 2 > free:
            self.id, self.sz, self.off = msg["id"], msg["sz"], 0
            self._set("refused", "refused %s: no_space: %d bytes, %d free" % (msg["ver"], msg["sz"], free))
            return
        begin(self.root, msg["id"], msg["sz"])
        self.id, self.sz, self.off = msg["id"], msg["sz"], 0
        self._set("recv")

    def _free(self) -> "int | None":
        try:
            st = os.statvfs(self.root or "/")
        except (OSError, AttributeError):
            return None
        return int(st[0] * (st[3] - RESERVE))

    def pressure(self) -> bool:
        ob = self.app.outbox
        return bool(ob.full or ob.depth > self.app.cfg["outbox_capacity"] // PRESSURE)

    def _chunk(self, msg: "dict[str, Any]") -> None:
        if msg["id"] != self.id or self.st not in ("recv", "pause") or msg["off"] != self.off:
            return  # not ours, or not where we are: the state tells the sender where to resume
        if self.pressure():
            self.st = "pause"
            return
        try:
            data = a2b_base64(msg["x"])
        except ValueError:
            self.app._reject("bad_field", "fwc x: not base64")
            return
        if self.off + len(data) > self.sz:
            self._set("refused", "refused: chunk past the offered size %d" % self.sz)
            return
        try:
            append(self.rx, data)
        except OSError as exc:
            self._set("refused", "refused: flash write failed: %s" % exc)
            return
        self.off += len(data)
        self.st = "recv"
        if self.off == self.sz:
            # checked and installed at the next boot, before the app takes the heap (firmware/install.py)
            try:
                os.rename(self.rx, slots.fwdir(self.root) + "/new")
                os.rename(self.rx + ".id", slots.fwdir(self.root) + "/new.id")
            except OSError as exc:
                self._set("refused", "refused: flash rename failed: %s" % exc)
                return
            self.busy = True
            self._set("reboot")

    def _key(self, msg: "dict[str, Any]") -> None:
        """A key rotation statement: kept on flash, checked at the next boot (firmware/install.py)."""
        try:
            data = a2b_base64(msg["x"])
            _mkdir(slots.fwdir(self.root))
            write_atomic(slots.fwdir(self.root) + "/key.new", data)
        except (ValueError, OSError) as exc:
            self._set(self.st, "key rotation not kept: %s" % exc)
            return
        self.busy = True
        self._set("reboot")

    def on_ack(self) -> None:
        if self.trial and self.sent:
            self.acked = True

    # ---- the task ----

    async def run(self) -> None:
        """Send the state when it changed, reset when asked, run the trial: never ending the app's loop."""
        start = time.ticks_ms()
        while True:
            try:
                await self._turn(start)
            except MemoryError:  # the update waits for the heap; presses and acks come first
                gc.collect()
            except Exception as exc:
                try:
                    self.app.report("firmware update: %r" % (exc,))
                except MemoryError:
                    pass
            try:
                await asyncio.wait_for_ms(self.news.wait(), 200)
            except asyncio.TimeoutError:
                pass
            self.news.clear()

    async def _turn(self, start: "Any") -> None:
        app = self.app
        link = app.link
        if self.dirty and link is not None and link.online:
            self.dirty = False
            try:
                gc.collect()
                await link.send_fw(self.state_message())
                self.sent = True
                if (app.fw or {}).get("news"):  # reported: the next boot has nothing new to say
                    app.fw["news"] = 0
                    ptr = slots.read(self.root)
                    ptr["news"] = 0
                    slots.write(self.root, ptr)
            except MemoryError:
                self.dirty = True  # sent again on the next turn
                raise
            except Exception as exc:  # the link drops: sent again when it is back
                self.dirty = True
                app.report("firmware state not sent: %r" % (exc,))
        if self.st == "reboot":
            await self._reset()
        elif self.trial:
            await self._trial(time.ticks_diff(time.ticks_ms(), start))

    async def _trial(self, age: int) -> None:
        app = self.app
        why = None
        if app.self_test != "ok":
            why = "self-test: " + app.self_test
        elif self.acked:
            rel = slots.installed(self.root, (app.fw or {}).get("run", "")) or {}
            app.fw = slots.commit(self.root, rel.get("floor"))
            self.trial = False
            self._set("ok")
            return
        elif age > app.cfg["fw_trial_ms"]:
            why = "self-test: no signed ack within %d s" % (app.cfg["fw_trial_ms"] // 1000)
        if why:
            ptr = slots.rollback(slots.read(self.root), why)
            slots.write(self.root, ptr)
            self.trial = False
            self._set("rolled_back", ptr["why"])
            await self._reset()

    async def _reset(self) -> None:
        """Say so (the state goes out), then reset: the boot installs, or boots the slot the pointer names."""
        self.dirty = True
        link = self.app.link
        for _ in range(20):
            if not self.dirty or link is None or not link.online:
                break
            try:
                await link.send_fw(self.state_message())
                self.dirty = False
            except Exception:
                await asyncio.sleep_ms(100)
        await asyncio.sleep_ms(300)
        # Between two citizens: never inside an open invite or right after a press (the citizen's
        # rating and the "too fast" guard would be cut short). Invites expire, so this ends; nothing
        # below yields, so no press can slip in between the check and the reset.
        waited = 0
        while not self.app.between_citizens() and waited < RESET_WAIT_MS:
            await asyncio.sleep_ms(20)
            waited += 20
        if self.app.board.name == "sim":
            raise SystemExit(SIM_RESET)
        import machine

        machine.reset()
