"""Session rules, the outbox and power cuts, on the real MicroPython interpreter."""

from __future__ import annotations

import re

from tests.conftest import run_micropython

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
    assert out.strip().splitlines()[-1] == "outbox: 8 passed", out
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
    assert out.strip().splitlines()[-1] == "mqtt packets: 11 passed", out


def test_watchdog_fed_only_while_tasks_progress() -> None:
    out = _run("mp_watchdog.py")
    assert out.strip().splitlines()[-1] == "watchdog: 2 passed", out
