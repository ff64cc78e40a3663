"""The bench for real-board firmware on the unix port: power, pins, watchdog, radio, serial line.

``BoardBox`` deploys the mpy-cross build (``tools/build_box.sh``, what
``tools/deploy_box.sh`` copies) and a box.json into a flash image, then boots
it with ``tests/firmware/board_boot.py`` on the real ``micropython``: the
firmware runs from ``/main.py`` unchanged; only ``machine``, ``network`` and
``ntptime`` are doubles (``tests/firmware/doubles/``). The bench talks to
the doubles over a TCP control channel: it drives input pins (key presses),
sees every output change (LEDs, buzzer), and keeps the watchdog honest: a box
not fed within its timeout is killed and booted again on the same flash
image with ``reset_cause() == WDT_RESET``, as the chip would be. ``kill()``
is a power cut. The data channel is a real pty: a UART of its own, or the
process's stdio for the plain Pico's USB CDC port.

``Radio`` stands between a Wi-Fi box and the real mosquitto: it passes the
traffic, or plays a broker that refuses, one that accepts and never answers,
or a session that freezes; pulling the Wi-Fi drops every connection.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import tty
from typing import Any

from firmware import ports
from tests.conftest import ROOT, micropython_path
from tests.firmware.simbox import wait_for

DOUBLES = ROOT / "tests" / "firmware" / "doubles"
# the real boards' filesystem sizes (MICROPY_HW_FLASH_STORAGE_BYTES, the ESP32 "vfs" partition), in 4 KiB blocks
FLASH_BLOCKS = {"esp32": 512, "picow": 212, "pico2w": 212, "pico": 352, "pico2": 352}
PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 5
# what machine.reset() reads back as (ports/rp2/modmachine.c reboots through the watchdog)
RESET_BY_SOFTWARE = {"rp2040": WDT_RESET, "rp2350": WDT_RESET, "esp32": SOFT_RESET}


def build_firmware(out: pathlib.Path) -> pathlib.Path:
    """The deployable tree, built exactly as tools/deploy_box.sh builds it.

    Beside it (``<out>/../bench``), the doubles and the boot script compiled by mpy-cross too:
    on a chip ``machine`` is C and costs no heap, so the bench should take as little as it can.
    """
    subprocess.run(["bash", str(ROOT / "tools" / "build_box.sh"), str(out)], cwd=ROOT, check=True, timeout=300)
    bench = out.parent / "bench"
    bench.mkdir(exist_ok=True)
    sources = [*DOUBLES.glob("*.py"), ROOT / "tests" / "firmware" / "board_boot.py"]
    for src in sources:
        subprocess.run([mpy_cross(), "-o", str(bench / f"{src.stem}.mpy"), str(src)], check=True, timeout=60)
    return out


def mpy_cross() -> str:
    here = pathlib.Path(micropython_path()).parent / "mpy-cross"
    return str(here) if here.exists() else (shutil.which("mpy-cross") or "mpy-cross")


class BoardBox:
    """One real-board box: its flash image, its pins, its power, its watchdog and its serial line."""

    def __init__(
        self,
        tmp: pathlib.Path,
        cfg: dict[str, Any],
        build: pathlib.Path,
        *,
        heap: str | None = None,
        nofile: int | None = None,
        ssid: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.board = cfg["board"]
        self.port = ports.BOARDS[self.board]["port"]
        self.pins = ports.board_pins(self.board, cfg.get("pins"))
        self.dir = tmp / f"board-{cfg['device_id']}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.image = self.dir / "flash.img"
        self.deploy = self.dir / "deploy"
        if not self.deploy.exists():  # deploy_box.sh: the build, the config, /main.py
            shutil.copytree(build, self.deploy)
            (self.deploy / "box.json").write_text(json.dumps(cfg))
        self.bench = build.parent / "bench"  # the compiled doubles and boot script
        self.heap = heap
        self.nofile = nofile
        self.ssid = ssid if ssid is not None else cfg.get("wifi_ssid")
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.uart = ports.board_uart(self.board, cfg.get("uart"))
        self.usb = self.uart.get("id") == "usb"
        self.lock = threading.Lock()
        self.outputs: dict[int, int] = {}
        self.events: list[dict[str, Any]] = []
        self.replies: dict[int, dict[str, Any]] = {}
        self.resets: list[str] = []  # "watchdog" / "software", in order
        self.wdt_timeout: int | None = None
        self.last_feed = 0.0
        self.feeds = 0
        self.in_repl = False
        self.hung: str | None = None
        self.boots = 0
        self._next_id = 0
        self._conn: socket.socket | None = None
        self._srv = socket.socket()
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(4)
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = False
        self._pending_reset: int | None = None
        self.console = self.dir / "console.log"
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    # ---- power ----

    def start(self, reset_cause: int = PWRON_RESET, held: tuple[int, ...] = ()) -> BoardBox:
        """Power on (or reset into) the box, with ``held`` pins pulled low, and wait for its first word."""
        hw = {
            "inputs": {str(p): 0 for p in held},
            "port": self.port,
            "board": self.board,
            "control": self._srv.getsockname()[1],
            "reset_cause": reset_cause,
            "uart": {} if self.usb else {str(self.uart["id"]): os.ttyname(self.slave)},
            "wifi": ports.BOARDS[self.board]["wifi"],
            "ssid": self.ssid,
            "flash": str(self.image),
            "blocks": FLASH_BLOCKS[self.board],
            "deploy": str(self.deploy),
            "doubles": str(self.bench),
        }
        path = self.dir / "hw.json"
        path.write_text(json.dumps(hw))
        env = dict(os.environ, EVALBOX_HW=str(path), MICROPYPATH=f"{self.bench}:{ROOT}:.frozen")
        cmd = [micropython_path()]
        if self.heap:
            cmd += ["-X", f"heapsize={self.heap}"]
        cmd += ["-c", "import board_boot"]
        log = open(self.console, "ab")  # noqa: SIM115 - handed to the child
        with self.lock:
            self.wdt_timeout = None
            self.in_repl = False
            self.hung = None
            self.outputs = {}
            self.boots += 1
            boots = self.boots
        nofile = self.nofile

        def limits() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            cmd,
            stdin=self.slave if self.usb else subprocess.DEVNULL,
            stdout=self.slave if self.usb else log,
            stderr=log,
            env=env,
            preexec_fn=limits,
        )
        log.close()
        wait_for(lambda: self._hello_count() >= boots, 60, f"{self.board} box boots")
        # the app runs once its supervisor armed the watchdog (or the box stopped in its REPL)
        wait_for(lambda: self.wdt_timeout is not None or self.in_repl, 60, f"{self.board} app running")
        return self

    def _hello_count(self) -> int:
        with self.lock:
            return sum(1 for e in self.events if e.get("ev") == "hello")

    def kill(self) -> None:
        """A power cut: the process dies wherever it is; the flash image keeps what was written."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        with self.lock:
            self.wdt_timeout = None

    def close(self) -> None:
        self._stop = True
        self.kill()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._srv.close()

    def __enter__(self) -> BoardBox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the control channel ----

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            self._conn = conn
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            for line in f:
                msg = json.loads(line)
                with self.lock:
                    self._event(msg)
        except OSError:
            pass  # the box was reset or lost power

    def _event(self, msg: dict[str, Any]) -> None:
        ev = msg["ev"]
        if ev == "feed":
            self.feeds += 1
            self.last_feed = time.monotonic()
            return
        self.events.append(msg)
        if ev == "out":
            self.outputs[msg["pin"]] = msg["v"]
        elif ev == "wdt":
            self.wdt_timeout = msg["timeout"]
            self.last_feed = time.monotonic()
        elif ev == "reply":
            self.replies[msg["id"]] = msg
        elif ev == "reset":
            self._pending_reset = RESET_BY_SOFTWARE[self.port]
        elif ev == "repl":
            self.in_repl = True
        elif ev == "hung":
            self.hung = msg["what"]

    def _watch(self) -> None:
        """The chip's watchdog and reset line: a box not fed in time is reset, as is one asking for it."""
        while not self._stop:
            time.sleep(0.05)
            cause = None
            with self.lock:
                if self._pending_reset is not None:
                    cause = self._pending_reset
                    self._pending_reset = None
                    self.resets.append("software")
                elif self.wdt_timeout is not None and time.monotonic() - self.last_feed > self.wdt_timeout / 1000:
                    cause = WDT_RESET
                    self.resets.append("watchdog")
            if cause is not None and not self._stop:
                self.kill()
                self.start(reset_cause=cause)

    def send(self, msg: dict[str, Any]) -> None:
        wait_for(lambda: self._conn is not None, 30, "control channel")
        assert self._conn is not None
        self._conn.sendall(json.dumps(msg).encode() + b"\n")

    def op(self, op: str, timeout: float = 30, **kw: Any) -> dict[str, Any]:
        """One operation with a reply (taken by the box at its next pin read)."""
        self._next_id += 1
        n = self._next_id
        self.send(dict(kw, op=op, id=n))
        reply: dict[str, Any] = wait_for(lambda: self.replies.get(n), timeout, f"reply to {op}")
        return reply

    # ---- the counter ----

    def _drive(self, pin: int, level: int | None) -> None:
        self.send({"op": "pin", "pin": pin, "v": level})

    def press(self, k: int, hold: float = 0.2) -> None:
        """Press citizen key ``k`` (1 = best) for ``hold`` seconds (it counts after ``debounce_ms``: 10 ms)."""
        self.hold(self.pins["keys"][k - 1], hold)

    def invite(self, hold: float = 0.2) -> None:
        self.hold(self.pins["invite"], hold)

    def hold(self, pin: int, seconds: float) -> None:
        self._drive(pin, 0)
        time.sleep(seconds)
        self._drive(pin, None)

    def level(self, name: str) -> int:
        with self.lock:
            return self.outputs.get(self.pins[name], 0)

    def lit(self) -> list[str]:
        return [n for n in ("led_ok", "led_bad", "led_busy") if self.pins.get(n) is not None and self.level(n)]

    def wifi(self, up: bool) -> None:
        self.op("wifi", up=up)

    def hang(self, what: str) -> None:
        """Wedge a driver: the next call into it never returns (``wlan``, ``pins``)."""
        self.send({"op": f"hang_{what}"})

    def stats(self) -> dict[str, Any]:
        return self.op("stats")

    def fds(self) -> int:
        """Open descriptors of the box process right now."""
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def log(self) -> str:
        return self.console.read_text(errors="replace")[-4000:] if self.console.exists() else ""

    # ---- the serial line (the window PC's end) ----

    def read_line(self, timeout: float = 5.0) -> bytes:
        """Whatever the box wrote on its data channel, up to one line."""
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.1)
            if r:
                b = os.read(self.master, 1)
                buf += b
                if b == b"\n":
                    break
        return buf


class Radio:
    """A TCP path between Wi-Fi boxes and the broker whose far end can misbehave on demand.

    Modes: ``pass`` (forward to the broker), ``refuse`` (nothing listens: connection
    refused), ``silent`` (accepts and never says a word), ``freeze`` (sessions stop
    moving in both directions; new ones are silent). ``down()`` is the Wi-Fi gone:
    every connection dropped, nothing accepted.
    """

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.mode = "pass"
        self.accepted = 0  # connections the far end accepted (any mode)
        self.forwarded = 0  # of them, those passed on to the broker
        self.lock = threading.Lock()
        self.conns: list[tuple[socket.socket, socket.socket | None]] = []
        self._srv: socket.socket | None = None
        self.port = 0
        self._listen()
        self._stop = False

    def _listen(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self._srv = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def set(self, mode: str) -> None:
        """Switch what the far end does; sessions of the previous mode are cut."""
        with self.lock:
            old = self.mode
            self.mode = mode
        if mode == "freeze":
            return  # the sessions stay open and go quiet
        self._drop_all()
        if mode == "refuse" and self._srv is not None:
            self._close_listener()
        elif old == "refuse" and mode != "refuse":
            self._listen()

    def _close_listener(self) -> None:
        srv, self._srv = self._srv, None
        if srv is not None:
            try:
                srv.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread; close() alone would not
            except OSError:
                pass
            srv.close()

    def _drop_all(self) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
        for a, b in conns:
            for s in (a, b):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                mode = self.mode
            if mode in ("silent", "freeze"):
                with self.lock:
                    self.conns.append((conn, None))
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.broker_port), timeout=5)
            except OSError:
                conn.close()
                continue
            with self.lock:
                self.conns.append((conn, up))
                self.forwarded += 1
            threading.Thread(target=self._pump, args=(conn, up), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while True:
                if self.mode == "freeze":
                    time.sleep(0.05)
                    if a.fileno() < 0 or b.fileno() < 0:
                        return
                    continue
                r, _, _ = select.select([a, b], [], [], 0.1)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    peer[s].sendall(data)
        except (OSError, ValueError):
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._drop_all()
        self._close_listener()
