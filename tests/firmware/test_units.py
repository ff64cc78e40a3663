"""Session rules, the outbox and power cuts, on the real MicroPython interpreter."""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import subprocess
import threading
import time
import tty

from tests.conftest import ROOT, micropython_path, run_micropython

HERE = "tests/firmware"


def _run(script: str) -> str:
    proc = run_micropython(f"{HERE}/{script}", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_session_rules() -> None:
    out = _run("mp_session.py")
    assert out.strip().splitlines()[-1] == "session: 10 passed", out


def test_outbox_on_littlefs() -> None:
    out = _run("mp_outbox.py")
    assert out.strip().splitlines()[-1] == "outbox: 12 passed", out
    assert "ok corrupt segment quarantined and reported" in out


def test_power_cut_at_every_write_step() -> None:
    out = _run("mp_powercut.py")
    m = re.search(r"cut points: (\d+) tried, (\d+) failures", out)
    assert m, out
    tried, failures = int(m[1]), int(m[2])
    print(f"power cuts: {tried} cut points tried (drop and tear at every write step), {failures} failures")
    assert failures == 0, out
    assert tried >= 200, out


def test_mqtt_packets_byte_for_byte() -> None:
    out = _run("mp_mqtt_packets.py")
    assert out.strip().splitlines()[-1] == "mqtt packets: 12 passed", out


def test_watchdog_fed_only_while_tasks_progress() -> None:
    out = _run("mp_watchdog.py")
    assert out.strip().splitlines()[-1] == "watchdog: 2 passed", out


def _run_doubles(tmp_path: pathlib.Path, port: str, board: str, script: str = "mp_doubles.py") -> str:
    """A script on the silicon doubles, against a bench that only listens (the doubles report to someone)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def drain() -> None:
        conn, _ = srv.accept()
        while conn.recv(4096):
            pass

    threading.Thread(target=drain, daemon=True).start()
    master, slave = os.openpty()
    tty.setraw(slave)
    hw = {"port": port, "board": board, "control": srv.getsockname()[1], "reset_cause": 1}
    hw["uart"] = {"0": os.ttyname(slave)}
    (tmp_path / "hw.json").write_text(json.dumps(hw))
    env = dict(os.environ, EVALBOX_HW=str(tmp_path / "hw.json"), MICROPYPATH=f"{ROOT}/{HERE}/doubles:{ROOT}:.frozen")
    proc = subprocess.Popen(
        [micropython_path(), f"{HERE}/{script}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        os.write(master, b"x" * 100)  # more than a 32-byte ring holds
        time.sleep(0.3)
        out, _ = proc.communicate(b"\n", timeout=60)
    finally:
        os.close(master)
        os.close(slave)
        srv.close()
    assert proc.returncode == 0, out.decode()
    return out.decode()


def test_doubles_enforce_the_rp2040_port(tmp_path: pathlib.Path) -> None:
    out = _run_doubles(tmp_path, "rp2040", "picow")
    assert out.strip().splitlines()[-1] == "doubles: 6 passed", out


def test_doubles_enforce_the_esp32_port(tmp_path: pathlib.Path) -> None:
    out = _run_doubles(tmp_path, "esp32", "esp32")
    assert out.strip().splitlines()[-1] == "doubles: 4 passed", out


def test_flash_model_small_commits_and_no_erase_inside_a_press() -> None:
    out = _run("mp_flash.py")
    assert out.strip().splitlines()[-1] == "flash: 5 passed", out


def test_presses_made_while_the_loop_is_held_are_kept(tmp_path: pathlib.Path) -> None:
    out = _run_doubles(tmp_path, "rp2040", "pico", "mp_keys.py")
    assert out.strip().splitlines()[-1] == "keys: 7 passed", out


def test_memory_error_in_keys_links_and_status_is_survived(tmp_path: pathlib.Path) -> None:
    out = _run_doubles(tmp_path, "rp2040", "pico", "mp_memerror.py")
    assert out.strip().splitlines()[-1] == "memerror: 8 passed", out
