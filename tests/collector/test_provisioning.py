"""Provisioning as an operator does it: ``evalbox init``, ``broker-config`` for mosquitto, EMQX and NATS,
``device add`` adding each box's login, and the files working with the real broker and the real sim box."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.cli import main
from collector.config import load_config
from collector.sim.boxes import SimBox
from firmware.config import load as load_box_config
from tests.mosquitto import free_port, mosquitto_binary
from tests.nats import NatsMqtt


def connects(port: int, user: str, password: str, timeout: float = 10.0) -> bool:
    """Whether the broker accepts this login (CONNACK success)."""
    result: list[bool] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{user}-{time.monotonic_ns()}")
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, u, f, rc, p: result.append(not rc.is_failure)
    try:
        c.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return False
    c.loop_start()
    deadline = time.monotonic() + timeout
    while not result and time.monotonic() < deadline:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    return bool(result and result[0])


@pytest.fixture
def shared_dir() -> Iterator[pathlib.Path]:
    """A directory the broker's own system user can reach (pytest's tmp dirs are root-only)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="evalbox-prov-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_init_password_goes_to_broker_config_placeholder_refused(tmp_path: pathlib.Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "evalbox.toml"
    assert main(["init", "-o", str(cfg)]) == 0
    said = capsys.readouterr().out
    assert "[mqtt] password" in said and str(cfg) in said and "0600" in said  # where the password went
    password = load_config(cfg).mqtt.password  # type: ignore[union-attr]
    assert main(["broker-config", "-o", str(tmp_path / "broker"), "--config", str(cfg)]) == 0
    assert "collector:" in (tmp_path / "broker" / "passwd").read_text()
    # the placeholder (an old config, or typed by hand) is refused, nothing written
    old = tmp_path / "old.toml"
    old.write_text(cfg.read_text().replace(password, "change-me"))  # type: ignore[arg-type]
    assert main(["broker-config", "-o", str(tmp_path / "b2"), "--config", str(old)]) == 2
    assert "change-me" in capsys.readouterr().err
    assert not (tmp_path / "b2").exists()
    args = ["broker-config", "-o", str(tmp_path / "b3"), "--collector-user", "c", "--collector-password", "short"]
    assert main(args) == 2


def test_mosquitto_started_as_documented_reads_the_files(shared_dir: pathlib.Path) -> None:
    """``mosquitto -c DIR/mosquitto.conf`` as the README says: as root it drops to 'mosquitto' and must still
    read passwd and acl and write data/."""
    port = free_port()
    out = shared_dir / "broker"
    args = ["broker-config", "-o", str(out), "--port", str(port), "--bind", "127.0.0.1"]
    assert main([*args, "--collector-user", "collector", "--collector-password", "a-strong-collector-pw"]) == 0
    if os.geteuid() == 0:
        mosq = pwd.getpwnam("mosquitto").pw_uid
        assert {(out / n).stat().st_uid for n in ("passwd", "acl", "data")} == {mosq}
        assert oct((out / "passwd").stat().st_mode & 0o777) == "0o600"
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(out / "mosquitto.conf")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert connects(port, "collector", "a-strong-collector-pw")
        assert not connects(port, "collector", "wrong-password")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _config(tmp_path: pathlib.Path, password_file: str, port: int = 1883) -> str:
    cfg = tmp_path / "evalbox.toml"
    cfg.write_text(
        '[store]\nurl = "sqlite:///s.db"\n[mqtt]\nusername = "collector"\npassword = "collector-secret-1"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\npassword_file = "{password_file}"\n',
        encoding="utf-8",
    )
    assert main(["unit", "add", "U1", "--name", "U", "--config", str(cfg)]) == 0
    assert main(["window", "add", "W1", "--unit", "U1", "--name", "W", "--config", str(cfg)]) == 0
    return str(cfg)


def test_emqx_files_and_device_add(tmp_path: pathlib.Path) -> None:
    """EMQX is not packaged for this machine: the files are checked for what EMQX 5 reads."""
    cfg = _config(tmp_path, "emqx/auth-built-in-db-bootstrap.csv")
    assert main(["broker-config", "--broker", "emqx", "-o", str(tmp_path / "emqx"), "--config", cfg]) == 0
    for n in (1, 2):
        out = tmp_path / f"b{n}.json"
        assert main(["device", "add", f"BOX-{n}", "--window", "W1", "-o", str(out), "--config", cfg]) == 0
    users = tmp_path / "emqx" / "auth-built-in-db-bootstrap.csv"
    rows = list(csv.DictReader(users.read_text().splitlines()))
    assert [r["user_id"] for r in rows] == ["collector", "BOX-1", "BOX-2"]
    assert rows[0]["password"] == "collector-secret-1" and all(r["is_superuser"] == "false" for r in rows)
    assert rows[1]["password"] == json.loads((tmp_path / "b1.json").read_text())["broker_password"]
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    acl = (tmp_path / "emqx" / "acl.conf").read_text()
    assert '{allow, {username, "collector"}, all, ["evalbox/#"]}.' in acl
    assert '{allow, all, all, ["evalbox/${username}/#"]}.' in acl and acl.rstrip().endswith("{deny, all}.")
    hocon = (tmp_path / "emqx" / "evalbox-emqx.hocon").read_text()
    assert f'bootstrap_file = "{users.resolve()}"' in hocon and "backend = built_in_database" in hocon
    assert "no_match = deny" in hocon and "type = file" in hocon
    api = (tmp_path / "emqx" / "emqx-api.sh").read_text()
    assert "/api/v5/authentication/password_based:built_in_database/users" in api
    assert subprocess.run(["sh", "-n", str(tmp_path / "emqx" / "emqx-api.sh")]).returncode == 0


def test_nats_files_device_add_and_reload(tmp_path: pathlib.Path) -> None:
    port = free_port()
    cfg = _config(tmp_path, "nats/nats-users.conf", port)
    args = ["broker-config", "--broker", "nats", "-o", str(tmp_path / "nats"), "--config", cfg]
    assert main([*args, "--port", str(port), "--bind", "127.0.0.1"]) == 0
    with NatsMqtt.from_files(tmp_path / "nats" / "nats-server.conf", port) as nb:
        assert connects(port, "collector", "collector-secret-1")
        assert main(["device", "add", "BOX-1", "--window", "W1", "-o", str(tmp_path / "b.json"), "--config", cfg]) == 0
        password = json.loads((tmp_path / "b.json").read_text())["broker_password"]
        assert not connects(port, "BOX-1", password, timeout=3)  # not yet: the server has not reloaded
        nb.reload()
        assert connects(port, "BOX-1", password)
        assert connects(port, "collector", "collector-secret-1")


def test_device_add_sim_box_boots(tmp_path: pathlib.Path) -> None:
    cfg = _config(tmp_path, "")
    out = tmp_path / "sim-box.json"
    assert main(["device", "add", "SIM-1", "--window", "W1", "--board", "sim", "-o", str(out), "--config", cfg]) == 0
    box = load_box_config(str(out))  # the firmware's own check
    assert box["flash"] == str(out.with_suffix(".flash"))

    async def boot() -> None:
        sim = SimBox(out)
        await sim.start()
        await sim.stop()

    asyncio.run(boot())
    assert out.with_suffix(".flash").exists()
    assert main(["device", "add", "SIM-2", "--window", "W1", "--board", "sim", "--transport", "serial",
                 "--config", cfg]) == 2  # fmt: skip
