"""A real mosquitto broker for tests: own process, free port, optional passwords and ACL.

    with Mosquitto(tmp_path, users={"box-1": "pw"}, acl=ACL_TEXT) as broker:
        broker.port ...; broker.stop(); broker.start(); broker.kill()

Persistence is on (``persistence_location`` in the broker's own directory),
so a restarted broker keeps retained messages and persistent sessions.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from types import TracebackType
from typing import Self


def mosquitto_binary(name: str = "mosquitto") -> str:
    for cand in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if cand and os.path.exists(cand):
            return cand
    raise RuntimeError(f"{name} not found: ./dev setup installs mosquitto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class BrokerProcess:
    """A broker as a child process: started and awaited until it listens on ``port``, stopped, killed.

    Subclasses write ``conf`` in ``dir`` and say how the broker is started (``command``), what it is
    called and where it logs.
    """

    name = "broker"
    log_name = "broker.log"
    start_timeout = 10.0
    stop_timeout = 10.0
    dir: pathlib.Path
    conf: pathlib.Path
    port: int
    proc: subprocess.Popen[bytes] | None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float | None = None) -> None:
        """Start the broker and wait until it accepts connections."""
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.name} exited: {err} {self.log()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {self.port}: {self.log()[-3000:]}")

    def stop(self) -> None:
        """Stop cleanly (SIGTERM): a broker with persistence saves it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=self.stop_timeout)
        self.proc = None

    def kill(self) -> None:
        """Kill -9: whatever was not saved is gone, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.dir / self.log_name
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()


class Mosquitto(BrokerProcess):
    """One mosquitto process bound to 127.0.0.1 on a free port."""

    name = "mosquitto"
    log_name = "mosquitto.log"

    def __init__(
        self,
        workdir: pathlib.Path,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        port: int | None = None,
    ) -> None:
        self.dir = pathlib.Path(workdir) / f"mosquitto-{id(self)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.users = dict(users or {})
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            f"log_dest file {self.dir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot read pytest's tmp dirs
        if users is not None:
            passwd = self.dir / "passwd"
            passwd.write_text("")
            for user, password in self.users.items():
                subprocess.run([mosquitto_binary("mosquitto_passwd"), "-b", str(passwd), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            (self.dir / "acl").write_text(acl)
            lines.append(f"acl_file {self.dir / 'acl'}")
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        os.chmod(self.dir, 0o755)

    def command(self) -> list[str]:
        return [mosquitto_binary(), "-c", str(self.conf)]
