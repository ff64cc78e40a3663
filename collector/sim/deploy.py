"""A whole evalbox installation on this machine: broker, collector, boxes — for the demo, e2e and chaos runs.

``Deployment`` lays out a working directory::

    WORKDIR/
      broker/        mosquitto.conf, passwd, acl, data/ (persistence) — from ``broker_files``
      boxes/BOX-001.json, BOX-001.flash, BOX-001.log …   box configs and littlefs images
      serial/BOX-004 → /dev/pts/N                        the collector's end of each serial cable
      evalbox.toml, evalbox.db, collector.log
      evalbox-1.toml, collector-1.log …                   with ``collectors=N``: collector 1 … N-1

and runs each part as its own process, so a test can kill any one of them:
``kill_broker()``/``start_broker()``, ``kill_collector(i)``/``start_collector(i)``
(SIGKILL, as a crash; no index: every collector), ``boxes[d].power_cut()``, ``links[d].unplug()``.

With ``collectors=N`` (N ≥ 2) the N collectors share the boxes' stream (MQTT shared
subscription, ``[mqtt] shared_group``, each its own ``client_id``) and write one store
(``store_url``: PostgreSQL); the serial lines and the web page or metrics belong to collector 0.
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
from collector.ingest.provision import (
    NATS_USERS,
    box_config,
    broker_files,
    new_key_hex,
    new_password,
    set_broker_password,
)
from collector.sim.boxes import SerialLink, SimBox
from collector.sim.traffic import Bureau
from collector.store import BoxSettings as StoreBoxSettings
from collector.store import Officer as OfficerRow
from collector.store import open_store

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


def nats_command() -> str:
    for cand in (shutil.which("nats-server"), "/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if cand and os.path.exists(cand):
            return cand
    raise EvalboxError("nats-server not found: run ./dev setup (installs it with apt-get)")


BROKERS = ("mosquitto", "nats")  # what a deployment can run here (EMQX is not packaged for Debian)


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
    release_pubkey: str | None = None  # the release key's public half (64 hex): the boxes take signed updates
    fw_trial_ms: int | None = None  # a new firmware's self-test deadline (None: the firmware's default)


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
        collectors: int = 1,
        broker: str = "mosquitto",
    ) -> None:
        if collectors < 1:
            raise EvalboxError(f"collectors: 1 or more, not {collectors}")
        if broker not in BROKERS:
            raise EvalboxError(f"broker {broker!r}: one of {', '.join(BROKERS)}")
        self.broker = broker
        self.dir = workdir.resolve()
        self.bureau = bureau
        self.web_listen = web_listen
        self.box_settings = box_settings
        self.collector_env = dict(collector_env or {})
        self.store_url = store_url or f"sqlite:///{self.dir / 'evalbox.db'}"
        self.batch_max_ms = batch_max_ms
        self.metrics_listen = metrics_listen
        self.broker_port = free_port()
        self.collectors = collectors
        self.config_path = self.config_path_of(0)
        self.boxes: dict[str, SimBox] = {}
        self.links: dict[str, SerialLink] = {}
        self._broker: subprocess.Popen[bytes] | None = None
        self._collectors: list[asyncio.subprocess.Process | None] = [None] * collectors
        self._starts = [0] * collectors
        self.collector_starts = 0

    def config_path_of(self, index: int) -> pathlib.Path:
        """Collector ``index``'s config file: ``evalbox.toml`` for collector 0, ``evalbox-I.toml`` for the others."""
        return self.dir / ("evalbox.toml" if index == 0 else f"evalbox-{index}.toml")

    def log_path_of(self, index: int) -> pathlib.Path:
        """Collector ``index``'s log: ``collector.log`` for collector 0, ``collector-I.log`` for the others."""
        return self.dir / ("collector.log" if index == 0 else f"collector-{index}.log")

    # -- setting up -----------------------------------------------------------------------------

    async def provision(self) -> None:
        """Registry, broker files, box keys and configs, the collector's config."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("broker", "boxes", "serial"):
            (self.dir / sub).mkdir(exist_ok=True)
        collector_password = new_password()
        broker_files(
            self.dir / "broker", collector_user=COLLECTOR_USER, collector_password=collector_password,
            port=self.broker_port, bind="127.0.0.1", broker=self.broker,
        )  # fmt: skip
        conf = self.broker_conf
        text = conf.read_text(encoding="utf-8")
        if self.broker == "nats":
            text = text.replace(":4222", f":{free_port()}")  # the NATS client port, unused here but bound
            text += f"log_file: {json.dumps(str(self.broker_log))}\n"
        else:
            text += f"log_dest file {self.broker_log}\n"
            if os.geteuid() == 0:
                text += "user root\n"  # else mosquitto drops to 'mosquitto', who may not read this directory
        conf.write_text(text, encoding="utf-8")
        os.chmod(self.dir / "broker", 0o755)
        async with open_store(self.store_url, base=self.dir) as store:
            if held := await store.count_events():  # the check compares every stored event with this run's truth
                raise EvalboxError(
                    f"the store already holds {held} events: a simulation needs a fresh one (a new database)"
                    " / 存储中已有事件，模拟须使用新的数据库"
                )
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
                set_broker_password(self.broker_logins, window.device_id, password)
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
                if self.box_settings.release_pubkey is not None:
                    cfg["release_pubkey"] = self.box_settings.release_pubkey
                if self.box_settings.fw_trial_ms is not None:
                    cfg["fw_trial_ms"] = self.box_settings.fw_trial_ms
                path = self.dir / "boxes" / f"{window.device_id}.json"
                path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        serial = [w.device_id for w in self.bureau.windows if w.transport == "serial"]
        for index in range(self.collectors):
            self._write_config(index, collector_password, serial)

    def _write_config(self, index: int, collector_password: str, serial: list[str]) -> None:
        """Collector ``index``'s ``evalbox.toml``; serial lines, web page and metrics only on collector 0."""
        shared = self.collectors > 1
        lines = [
            "# evalbox demo deployment (generated)" + (f", collector {index} of {self.collectors}" if shared else ""),
            "[store]",
            f'url = "{self.store_url}"',
            "",
            "[mqtt]",
            'host = "127.0.0.1"',
            f"port = {self.broker_port}",
            f'username = "{COLLECTOR_USER}"',
            f'password = "{collector_password}"',
            f'client_id = "evalbox-collector-{index}"' if shared else 'client_id = "evalbox-collector"',
            *(['shared_group = "collectors"'] if shared else []),
            "",
            "[batch]",
            "max_events = 1000",
            f"max_ms = {self.batch_max_ms}",
            "",
        ]
        if index == 0:
            for device_id in serial:
                lines += ["[[serial]]", f'port = "{self.dir / "serial" / device_id}"', f'device = "{device_id}"', ""]
            if self.web_listen:
                lines += ["[web]", f'listen = "{self.web_listen}"', ""]
            elif self.metrics_listen:
                lines += ["[metrics]", f'listen = "{self.metrics_listen}"', ""]
        self.config_path_of(index).write_text("\n".join(lines), encoding="utf-8")

    # -- the broker -----------------------------------------------------------------------------

    @property
    def broker_conf(self) -> pathlib.Path:
        return self.dir / "broker" / ("nats-server.conf" if self.broker == "nats" else "mosquitto.conf")

    @property
    def broker_logins(self) -> pathlib.Path:
        return self.dir / "broker" / (NATS_USERS if self.broker == "nats" else "passwd")

    @property
    def broker_log(self) -> pathlib.Path:
        return self.dir / "broker" / f"{self.broker}.log"

    def start_broker(self, timeout: float = 15.0) -> None:
        command = nats_command() if self.broker == "nats" else mosquitto_command()
        self._broker = subprocess.Popen(
            [command, "-c", str(self.broker_conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._broker.poll() is not None:
                err = self._broker.stderr.read().decode(errors="replace") if self._broker.stderr else ""
                raise EvalboxError(f"{self.broker} exited: {err.strip()} (log: {self.broker_log})")
            try:
                with socket.create_connection(("127.0.0.1", self.broker_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise EvalboxError(f"{self.broker} did not listen on port {self.broker_port}")

    def kill_broker(self, sig: int = signal.SIGKILL) -> None:
        """Crash (SIGKILL) or stop (SIGTERM, saves persistence) the broker."""
        if self._broker is not None and self._broker.poll() is None:
            self._broker.send_signal(sig)
            self._broker.wait(timeout=15)
        self._broker = None

    # -- the collector --------------------------------------------------------------------------

    def _indexes(self, index: int | None) -> list[int]:
        if index is None:
            return list(range(self.collectors))
        if not 0 <= index < self.collectors:
            raise EvalboxError(f"no collector {index}: this deployment runs {self.collectors}")
        return [index]

    async def start_collector(
        self, index: int | None = None, *, env: dict[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        """``evalbox serve`` (collector ``index``; None: every one not running); returns once each says it runs."""
        todo = [i for i in self._indexes(index) if index is not None or not self.is_collector_running(i)]
        await asyncio.gather(*(self._start_one(i, env, timeout) for i in todo))

    async def _start_one(self, index: int, env: dict[str, str] | None, timeout: float) -> None:
        path = self.log_path_of(index)
        log = path.open("ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                *evalbox_command(), "serve", "--config", str(self.config_path_of(index)),
                stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL,
                env=dict(os.environ, **self.collector_env, **(env or {})), start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        self._collectors[index] = proc
        self._starts[index] += 1
        self.collector_starts += 1
        out = proc.stdout
        assert out is not None
        deadline = time.monotonic() + timeout
        with path.open("ab") as log:
            while time.monotonic() < deadline:
                try:
                    line = await asyncio.wait_for(out.readline(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if not line:
                    raise EvalboxError(f"the collector exited at start (see {path})")
                log.write(line)
                if b"running" in line:
                    asyncio.get_running_loop().create_task(self._drain_collector(out, path))
                    if self._starts[index] == 1:
                        # First start: the broker holds nothing for a session that has never subscribed,
                        # so let the subscription land before the boxes speak (they would resend anyway).
                        await self._wait_log(path, b"MQTT subscribed", deadline)
                    return
        raise EvalboxError(f"the collector did not start (see {path})")

    async def _wait_log(self, path: pathlib.Path, needle: bytes, deadline: float) -> None:
        while time.monotonic() < deadline:
            if needle in path.read_bytes():
                return
            await asyncio.sleep(0.05)
        raise EvalboxError(f"the collector did not subscribe (see {path})")

    async def _drain_collector(self, out: asyncio.StreamReader, path: pathlib.Path) -> None:
        with contextlib.suppress(Exception), path.open("ab") as log:
            while line := await out.readline():
                log.write(line)
                log.flush()

    @property
    def collector_pid(self) -> int | None:
        """Collector 0's process id while it runs."""
        return self.collector_pid_of(0)

    def collector_pid_of(self, index: int) -> int | None:
        proc = self._collectors[index]
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def collector_running(self) -> bool:
        """Every collector runs."""
        return all(self.is_collector_running(i) for i in range(self.collectors))

    def is_collector_running(self, index: int) -> bool:
        proc = self._collectors[index]
        return proc is not None and proc.returncode is None

    async def kill_collector(self, index: int | None = None) -> None:
        """SIGKILL collector ``index`` (None: all), as a crash or a power loss of its machine would."""
        for i in self._indexes(index):
            proc = self._collectors[i]
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            self._collectors[i] = None

    async def stop_collector(self, timeout: float = 30.0, index: int | None = None) -> int | None:
        """SIGTERM: the collector drains (commit, ack) and exits 0; None: every one. Collector ``index``'s
        exit status (every one: the first nonzero, else collector 0's); None if it had to be killed."""
        codes = await asyncio.gather(*(self._stop_one(i, timeout) for i in self._indexes(index)))
        return next((c for c in codes if c != 0), codes[0])

    async def _stop_one(self, index: int, timeout: float) -> int | None:
        proc = self._collectors[index]
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                await self.kill_collector(index)
                return None
        self._collectors[index] = None
        return proc.returncode

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
