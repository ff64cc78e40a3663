"""The ``sim`` board for the MicroPython unix port.

Flash is a littlefs image in a host file (every program/erase written
through, so SIGKILL is a power cut); keys, LEDs and the display are driven
and read over a TCP control channel on 127.0.0.1 (one JSON reply line per
command line; see firmware/README.md, "Sim contract").
"""

import asyncio
import json
import socket
import sys
import time

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

MOUNT = "/flash"


class SimSerial:
    """A tty (e.g. a pty slave) as the data channel: async readline, write."""

    def __init__(self, path: str) -> None:
        self.f = open(path, "r+b")  # noqa: SIM115 - the channel stays open for the box's life
        self.reader = asyncio.StreamReader(self.f)

    async def readline(self) -> bytes:
        # One byte per read: the fd is blocking, and read(n) would wait for n
        # bytes (a partial line from the PC must not stall the box).
        buf = bytearray()
        while True:
            b = await self.reader.read(1)
            if not b:
                return bytes(buf)
            buf.extend(b)
            if b == b"\n" or len(buf) > 2048:
                return bytes(buf)

    async def write(self, data: bytes) -> None:
        # MicroPython's file writes straight to the fd (no buffer): nothing to flush. Its flush()
        # is fsync(), which a tty refuses with EINVAL: every send would count as failed.
        view = memoryview(data)
        while view:
            n = self.f.write(view)
            if not n:
                await asyncio.sleep_ms(5)
                continue
            view = view[n:]


class SimBoard:
    """Keys and lights over a local socket; flash in a file."""

    name = "sim"

    def __init__(self, cfg: "dict[str, Any]") -> None:
        self.cfg = cfg
        self.led = "off"
        self.display = ""
        self.full = False
        self.wdt_feeds = 0
        self.port = 0
        self.flash: "Any" = None
        self._quit = False

    # ---- hardware ----

    def mount_flash(self) -> str:
        import vfs

        from firmware.flashdev import FileFlash

        self.flash = FileFlash(self.cfg["flash"], self.cfg["flash_blocks"])
        try:
            if self.flash.created:
                raise OSError("new image")
            fs = vfs.VfsLfs2(self.flash, readsize=32, progsize=16)  # type: ignore[abstract]
        except OSError:
            if not self.flash.created:
                self.reformatted = True  # reported by the self-test: whatever was on it is gone
            vfs.VfsLfs2.mkfs(self.flash, readsize=32, progsize=16)
            fs = vfs.VfsLfs2(self.flash, readsize=32, progsize=16)  # type: ignore[abstract]
        vfs.mount(fs, MOUNT)
        return MOUNT

    reformatted = False

    def self_test(self) -> str:
        return "flash reformatted: image did not mount" if self.reformatted else "ok"

    def feedback(self, kind: str, k: int) -> None:
        if kind == "full":
            self.led = "red-blink"
            self.display = "存储已满 outbox full"
        elif kind == "invite":
            self.led = "blue"
            self.display = "请评价"
        elif kind == "thanks":
            self.led = "green" if k == 1 else "red" if k >= 2 and k == self.scale() else "yellow"
            self.display = "谢谢"
        else:
            self.led = "white"
            self.display = "已记录"

    def scale(self) -> int:
        return self.app.session.scale if self.app is not None else 2

    app: "Any" = None

    def show_full(self, full: bool) -> None:
        if full and not self.full:
            self.feedback("full", 0)
        self.full = full

    def feed_watchdog(self) -> None:
        self.wdt_feeds += 1

    def rssi(self) -> "int | None":
        return None

    def reset_cause(self) -> str:
        return "power_on"

    async def network_up(self) -> None:
        return None

    def open_serial(self) -> SimSerial:
        return SimSerial(self.cfg["serial_path"])

    # ---- control channel ----

    def _listen(self) -> "Any":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = self.cfg["control_port"]
        tries = 0
        while True:
            p = port
            if not port:
                import random

                p = 20000 + random.getrandbits(15) % 40000
            try:
                s.bind(socket.getaddrinfo("127.0.0.1", p)[0][-1])
                break
            except OSError:
                tries += 1
                if port or tries > 200:
                    raise
        s.listen(8)
        s.setblocking(False)
        self.port = p
        return s

    def ready(self, boot: int) -> None:
        """Print the one READY line the fleet simulator waits for."""
        sys.stdout.write("EVALBOX-SIM READY control=%d boot=%d\n" % (self.port, boot))
        try:
            sys.stdout.flush()  # type: ignore[attr-defined]
        except AttributeError:
            pass

    async def run(self, app: "Any") -> None:
        self.app = app
        srv = self._server
        while not self._quit:
            app.beats["keys"] = time.ticks_ms()
            try:
                conn, _addr = srv.accept()
            except OSError:
                await asyncio.sleep_ms(20)
                continue
            conn.setblocking(False)
            asyncio.create_task(self._serve(app, conn))
        await asyncio.sleep_ms(50)
        sys.exit(0)

    def listen(self) -> None:
        self._server = self._listen()

    _server: "Any" = None

    async def _serve(self, app: "Any", conn: "Any") -> None:
        r = asyncio.StreamReader(conn)
        w = asyncio.StreamWriter(conn, {})
        try:
            while True:
                line = await r.readline()
                if not line:
                    break
                try:
                    reply = self.command(app, line.decode().strip())
                except Exception as exc:  # a bad command must never stop the box
                    reply = {"ok": False, "err": "%s: %s" % (type(exc).__name__, exc)}
                w.write(json.dumps(reply).encode() + b"\n")
                await w.drain()
                app.collect_garbage()  # after a press (its reply sent): the collection it asked for
                if self._quit:
                    break
        except OSError:
            pass
        try:
            conn.close()
        except OSError:
            pass

    def command(self, app: "Any", line: str) -> "dict[str, Any]":
        parts = line.split()
        if not parts:
            return {"ok": False, "err": "empty command"}
        op = parts[0]
        args = parts[1:]
        if op == "press" and len(args) == 1:
            try:
                k = int(args[0])
            except ValueError:
                return {"ok": False, "err": "press needs a key number"}
            if k < 1 or k > app.session.scale:
                return {"ok": False, "err": "key %d outside 1..%d" % (k, app.session.scale)}
            out: "dict[str, Any]" = app.on_key(k)
            return out
        if op == "invite" and len(args) <= 1:
            return app.on_invite(args[0] if args else None)  # type: ignore[no-any-return]
        if op == "signin" and len(args) == 1:
            return app.on_signin(args[0])  # type: ignore[no-any-return]
        if op == "signout" and not args:
            return app.on_signout()  # type: ignore[no-any-return]
        if op == "clock" and len(args) == 1:
            try:
                ms = int(args[0])
            except ValueError:
                ms = -1
            if not 0 <= ms <= 0x7FFFFFFFFFFF:
                return {"ok": False, "err": "clock needs Unix milliseconds (0..2**47-1)"}
            app.set_clock(ms)
            return {"ok": True}
        if op == "state" and not args:
            link = app.link
            return {
                "ok": True,
                "boot": app.boot,
                "q": app.outbox.depth,
                "full": app.outbox.full,
                "online": bool(link is not None and link.online),
                "officer": app.session.officer,
                "cv": app.cv,
                "led": self.led,
                "display": self.display,
                "acked": app.acked,
                "err": app.err,
                "rejected": app.rejected,
                "quarantined": app.outbox.quarantined,
                "invite": app.session.open_no,
                "wdt": self.wdt_feeds,
            }
        if op == "mem" and not args:
            import gc

            gc.collect()
            return {
                "ok": True,
                "alloc": gc.mem_alloc(),  # type: ignore[attr-defined]
                "free": gc.mem_free(),  # type: ignore[attr-defined]
                "errors": app.mem_errors,
                "dup_acked": app.dup_acked,
            }
        if op == "flush" and not args:
            app.wake.set()
            return {"ok": True, "q": app.outbox.depth}
        if op == "quit" and not args:
            self._quit = True
            return {"ok": True}
        return {"ok": False, "err": "unknown command: %s" % line[:60]}
