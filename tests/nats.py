"""A real NATS server with MQTT enabled, for tests: own process, free ports, its own JetStream directory.

    with NatsMqtt(tmp_path) as broker:
        broker.port ...   # the MQTT listener; broker.stop(); broker.start(); broker.kill()

NATS speaks MQTT 3.1.1 only with JetStream on (QoS 1 sessions, retained
messages) and a ``server_name``. ``users`` maps a login to its password; with
``permissions`` a login gets only the NATS subjects listed (MQTT topic
``evalbox/B/up`` is subject ``evalbox.B.up``).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

from tests.mosquitto import BrokerProcess, free_port


def nats_binary() -> str:
    for cand in (shutil.which("nats-server"), "/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if cand and os.path.exists(cand):
            return cand
    raise RuntimeError("nats-server not found: ./dev setup installs it (Debian package nats-server)")


class NatsMqtt(BrokerProcess):
    """One nats-server bound to 127.0.0.1: a NATS port and an MQTT port."""

    name = "nats-server"
    log_name = "nats.log"
    start_timeout = 15.0
    stop_timeout = 15.0

    def __init__(
        self,
        workdir: pathlib.Path,
        *,
        users: dict[str, str] | None = None,
        permissions: dict[str, dict[str, list[str]]] | None = None,
    ) -> None:
        self.dir = pathlib.Path(workdir) / f"nats-{id(self)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()  # MQTT
        self.nats_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [
            "server_name: evalbox_test",
            f"listen: 127.0.0.1:{self.nats_port}",
            f"jetstream {{ store_dir: {json.dumps(str(self.dir / 'js'))} }}",
            f"mqtt {{ listen: 127.0.0.1:{self.port} }}",
            f"log_file: {json.dumps(str(self.dir / 'nats.log'))}",
        ]
        if users is not None:
            entries = []
            for user, password in users.items():
                entry = {"user": user, "password": password}
                if permissions and user in permissions:
                    entry["permissions"] = permissions[user]  # type: ignore[assignment]
                entries.append(json.dumps(entry))
            lines.append("authorization { users: [\n  " + ",\n  ".join(entries) + "\n] }")
        self.conf = self.dir / "nats.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    @classmethod
    def from_files(cls, conf: pathlib.Path, port: int) -> NatsMqtt:
        """A server on the config ``evalbox broker-config --broker nats`` wrote (MQTT on ``port``)."""
        self = cls.__new__(cls)
        self.dir, self.conf, self.port, self.proc = conf.parent, conf, port, None
        self.nats_port = free_port()
        text = conf.read_text().replace(":4222", f":{self.nats_port}")  # the NATS client port: a free one
        conf.write_text(text + f"log_file: {json.dumps(str(self.dir / 'nats.log'))}\n")
        return self

    def reload(self) -> None:
        """SIGHUP: nats-server reads its config (and the users file) again."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)

    def command(self) -> list[str]:
        return [nats_binary(), "-c", str(self.conf)]
