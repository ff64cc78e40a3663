"""A whole evalbox installation on this machine: broker, collector, boxes — for the demo, e2e and chaos runs.

``Deployment`` lays out a working directory::

    WORKDIR/
      broker/        mosquitto.conf, passwd, acl, data/ (persistence) — from ``broker_files``
      boxes/BOX-001.json, BOX-001.flash, BOX-001.log …   box configs and littlefs images
      serial/BOX-004 → /dev/pts/N                        the collector's end of each serial cable
      evalbox.toml, evalbox.db, collector.log

and runs each part as its own process, so a test can kill any one of them:
``kill_broker()``/``start_broker()``, ``kill_collector()``/``start_collector()``
(SIGKILL, as a crash), ``boxes[d].power_cut()``, ``links[d].unplug()``.
Every box is the real firmware on the real ``micropython`` interpreter
(``collector.sim.boxes``); the collector is ``evalbox serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

from collector.errors import EvalboxError
from collector.ingest.provision import box_config, broker_files, new_key_hex, new_password, set_broker_password
from collector.sim.boxes import SerialLink, SimBox
from collector.sim.traffic import Bureau
from collector.store import open_store
from collector.store.base import BoxSettings as StoreBoxSettings
from collector.store.base import Officer as OfficerRow

COLLECTOR_USER = "collector"


@contextlib.contextmanager
def cancelled_by_sigterm() -> Any:
    """While inside, SIGTERM cancels the running task as Ctrl-C does: ``finally`` blocks stop every child.

    Without it, ``kill PID`` (systemd, a CI timeout) ends Python at once and leaves mosquitto, the collector
    and the boxes' interpreters running.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None:
        yield
        return
    try:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread: leave it as it is
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mosquitto_command() -> str:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/bin/mosquitto"):
        if cand and os.path.exists(cand):
            return cand
    raise EvalboxError("mosquitto not found: run ./dev setup (installs it with apt-get)")


def evalbox_command() -> list[str]:
    here = pathlib.Path(sys.executable).parent / "evalbox"
    return [str(here)] if here.exists() else [sys.executable, "-m", "collector.cli"]


@dataclasses.dataclass(frozen=True)
class BoxSettings:
    """Session settings every simulated box gets (real time on the box: keep them short for a compressed month)."""

    invite_ms: int = 1500
    min_interval_ms: int = 300
    gated: bool = True
    outbox_blocks: int = 256


class Deployment:
    """Broker + collector + boxes for ``bureau`` under ``workdir``; ``async with`` starts and stops them all."""

    def __init__(
        self,
        workdir: pathlib.Path,
        bureau: Bureau,
        *,
        web_listen: str | None = None,
        box_settings: BoxSettings = BoxSettings(),
        collector_env: dict[str, str] | None = None,
        store_url: str | None = None,
        batch_max_ms: int = 20,
        metrics_listen: str | None = None,
    ) -> None:
        self.dir = workdir.resolve()
        self.bureau = bureau
        self.web_listen = web_listen
        self.box_settings = box_settings
        self.collector_env = dict(collector_env or {})
        self.store_url = store_url or f"sqlite:///{self.dir / 'evalbox.db'}"
        self.batch_max_ms = batch_max_ms
        self.metrics_listen = metrics_listen
        self.broker_port = free_port()
        self.config_path = self.dir / "evalbox.toml"
        self.boxes: dict[str, SimBox] = {}
        self.links: dict[str, SerialLink] = {}
        self._broker: subprocess.Popen[bytes] | None = None
        self._collector: asyncio.subprocess.Process | None = None
        self.collector_starts = 0

    # -- setting up -----------------------------------------------------------------------------

    async def provision(self) -> None:
        """Registry, broker files, box keys and configs, the collector's config."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("broker", "boxes", "serial"):
            (self.dir / sub).mkdir(exist_ok=True)
        collector_password = new_password()
        broker_files(
            self.dir / "broker", collector_user=COLLECTOR_USER, collector_password=collector_password,
            port=self.broker_port, bind="127.0.0.1",
        )  # fmt: skip
        conf = self.dir / "broker" / "mosquitto.conf"
        text = conf.read_text(encoding="utf-8")
        text += f"log_dest file {self.dir / 'broker' / 'mosquitto.log'}\n"
        if os.geteuid() == 0:
            text += "user root\n"  # else mosquitto drops to 'mosquitto', who may not read this directory
        conf.write_text(text, encoding="utf-8")
        os.chmod(self.dir / "broker", 0o755)
        async with open_store(self.store_url, base=self.dir) as store:
            for unit in self.bureau.units:
                await store.add_unit(unit.id, unit.name)
            for window in self.bureau.windows:
                await store.add_window(window.id, window.unit_id, window.name)
            await store.add_officers(OfficerRow(o.id, o.name, o.unit_id, o.window_id) for o in self.bureau.officers)
            for window in self.bureau.windows:
                key = new_key_hex()
                settings = StoreBoxSettings(
                    scale=window.scale, invite_ms=self.box_settings.invite_ms,
                    min_interval_ms=self.box_settings.min_interval_ms, gated=self.box_settings.gated,
                )  # fmt: skip
                await store.add_device(
                    window.device_id, window.id, key, replace=True, settings=settings, transport=window.transport
                )
                password = new_password()
                set_broker_password(self.dir / "broker" / "passwd", window.device_id, password)
                cfg: dict[str, Any] = box_config(
                    window.device_id, key, window.id, window.transport, "127.0.0.1", self.broker_port, password, "sim"
                )
                cfg.update(
                    flash=str(self.dir / "boxes" / f"{window.device_id}.flash"),
                    flash_blocks=self.box_settings.outbox_blocks,
                    control_port=0,
                    scale=window.scale,
                    invite_ms=self.box_settings.invite_ms,
                    min_interval_ms=self.box_settings.min_interval_ms,
                    gated=self.box_settings.gated,
                )
                path = self.dir / "boxes" / f"{window.device_id}.json"
                path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        serial = [w.device_id for w in self.bureau.windows if w.transport == "serial"]
        lines = [
            "# evalbox demo deployment (generated)",
            "[store]",
            f'url = "{self.store_url}"',
            "",
            "[mqtt]",
            'host = "127.0.0.1"',
            f"port = {self.broker_port}",
            f'username = "{COLLECTOR_USER}"',
            f'password = "{collector_password}"',
            'client_id = "evalbox-collector"',
            "",
            "[batch]",
            "max_events = 1000",
            f"max_ms = {self.batch_max_ms}",
            "",
        ]
        for device_id in serial:
            lines += ["[[serial]]", f'port = "{self.dir / "serial" / device_id}"', f'device = "{device_id}"', ""]
        if self.web_listen:
            lines += ["[web]", f'listen = "{self.web_listen}"', ""]
        elif self.metrics_listen:
            lines += ["[metrics]", f'listen = "{self.metrics_listen}"', ""]
        self.config_path.write_text("\n".join(lines), encoding="utf-8")

    # -- the broker -----------------------------------------------------------------------------

    def start_broker(self, timeout: float = 10.0) -> None:
        conf = self.dir / "broker" / "mosquitto.conf"
        self._broker = subprocess.Popen(
            [mosquitto_command(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._broker.poll() is not None:
                err = self._broker.stderr.read().decode(errors="replace") if self._broker.stderr else ""
                raise EvalboxError(f"mosquitto exited: {err.strip()} (log: {self.dir / 'broker' / 'mosquitto.log'})")
            try:
                with socket.create_connection(("127.0.0.1", self.broker_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise EvalboxError(f"mosquitto did not listen on port {self.broker_port}")

    def kill_broker(self, sig: int = signal.SIGKILL) -> None:
        """Crash (SIGKILL) or stop (SIGTERM, saves persistence) the broker."""
        if self._broker is not None and self._broker.poll() is None:
            self._broker.send_signal(sig)
            self._broker.wait(timeout=15)
        self._broker = None

    # -- the collector --------------------------------------------------------------------------

    async def start_collector(self, env: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        """``evalbox serve``; returns once it says it is running."""
        log = (self.dir / "collector.log").open("ab")
        try:
            self._collector = await asyncio.create_subprocess_exec(
                *evalbox_command(), "serve", "--config", str(self.config_path),
                stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL,
                env=dict(os.environ, **self.collector_env, **(env or {})), start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        self.collector_starts += 1
        out = self._collector.stdout
        assert out is not None
        deadline = time.monotonic() + timeout
        with (self.dir / "collector.log").open("ab") as log:
            while time.monotonic() < deadline:
                try:
                    line = await asyncio.wait_for(out.readline(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if not line:
                    raise EvalboxError(f"the collector exited at start (see {self.dir / 'collector.log'})")
                log.write(line)
                if b"running" in line:
                    asyncio.get_running_loop().create_task(self._drain_collector(out))
                    if self.collector_starts == 1:
                        # First start: the broker holds nothing for a session that has never subscribed,
                        # so let the subscription land before the boxes speak (they would resend anyway).
                        await self._wait_log(b"MQTT subscribed", deadline)
                    return
        raise EvalboxError(f"the collector did not start (see {self.dir / 'collector.log'})")

    async def _wait_log(self, needle: bytes, deadline: float) -> None:
        path = self.dir / "collector.log"
        while time.monotonic() < deadline:
            if needle in path.read_bytes():
                return
            await asyncio.sleep(0.05)
        raise EvalboxError(f"the collector did not subscribe (see {path})")

    async def _drain_collector(self, out: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception), (self.dir / "collector.log").open("ab") as log:
            while line := await out.readline():
                log.write(line)
                log.flush()

    @property
    def collector_pid(self) -> int | None:
        return self._collector.pid if self.collector_running and self._collector is not None else None

    @property
    def collector_running(self) -> bool:
        return self._collector is not None and self._collector.returncode is None

    async def kill_collector(self) -> None:
        """SIGKILL the collector, as a crash or a power loss of its machine would."""
        if self._collector is not None and self._collector.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._collector.pid, signal.SIGKILL)
            await self._collector.wait()
        self._collector = None

    async def wait_collector_exit(self, timeout: float = 60.0) -> int | None:
        """Wait for the collector to exit on its own (e.g. an injected fault); its exit status."""
        if self._collector is None:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._collector.wait(), timeout)
        return self._collector.returncode

    async def stop_collector(self, timeout: float = 30.0) -> int | None:
        """SIGTERM: the collector drains (commit, ack) and exits 0."""
        if self._collector is None:
            return None
        if self._collector.returncode is None:
            self._collector.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._collector.wait(), timeout)
            except TimeoutError:
                await self.kill_collector()
                return None
        code = self._collector.returncode
        self._collector = None
        return code

    # -- the boxes ------------------------------------------------------------------------------

    async def start_boxes(self) -> None:
        for window in self.bureau.windows:
            path = self.dir / "boxes" / f"{window.device_id}.json"
            if window.transport == "serial":
                link = SerialLink(self.dir / "serial" / window.device_id)
                link.open()
                self.links[window.device_id] = link
                cfg = json.loads(path.read_text(encoding="utf-8"))
                cfg["serial_path"] = link.box_path
                path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            self.boxes[window.device_id] = SimBox(path)
        await asyncio.gather(*(box.start() for box in self.boxes.values()))

    async def stop_boxes(self) -> None:
        await asyncio.gather(*(box.stop() for box in self.boxes.values()), return_exceptions=True)
        for link in self.links.values():
            link.close()

    # -- all of it ------------------------------------------------------------------------------

    async def __aenter__(self) -> Deployment:
        await self.provision()
        self.start_broker()
        try:
            await self.start_collector()
            await self.start_boxes()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_boxes()
        await self.stop_collector()
        self.kill_broker(signal.SIGTERM)
