"""The sim board contract: bad config, full outbox, unrated expiry, control channel."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest

from tests.conftest import ROOT, micropython_path
from tests.firmware.simbox import SimBox, box_config, wait_for
from tests.mosquitto import free_port


def _run_sim(cfg_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen")
    return subprocess.run(
        [micropython_path(), str(ROOT / "firmware" / "sim.py"), str(cfg_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"device_id": None}, "device_id: missing"),
        ({"key_hex": "abc"}, "key_hex: bad value"),
        ({"broker_host": None}, "broker_host: missing"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"scale": 7}, "scale: 7 outside 2..5"),
        ({"transport": "carrier-pigeon"}, "transport: bad value"),
    ],
)
def test_bad_config_is_one_clear_line_and_exit_2(tmp_path: pathlib.Path, change: dict, reason: str) -> None:
    cfg = box_config(tmp_path, port=1)
    for k, v in change.items():
        if v is None:
            cfg.pop(k)
        else:
            cfg[k] = v
    path = tmp_path / "box.json"
    path.write_text(json.dumps(cfg))
    proc = _run_sim(path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: ") and reason in lines[0], proc.stderr
    assert proc.stdout == ""


def test_config_file_not_json(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "box.json"
    path.write_text("{device_id: box-1")
    proc = _run_sim(path)
    assert proc.returncode == 2 and "is not JSON" in proc.stderr


def test_outbox_full_is_shown_reported_and_recovers_nothing_dropped(tmp_path: pathlib.Path) -> None:
    # no broker listening: nothing can be acked
    cfg = box_config(tmp_path, port=free_port(), outbox_capacity=6, min_interval_ms=0)
    with SimBox(tmp_path, cfg) as box:
        ids = [box.cmd("press 1")["id"] for _ in range(6)]
        assert len({tuple(i) for i in ids}) == 6
        r = box.cmd("press 2")
        assert r == {"ok": False, "err": "outbox_full"}
        st = box.state()
        assert st["full"] is True and st["q"] == 6
        assert "full" in st["display"] and "full" in (st["err"] or "")
        assert box.cmd("invite")["err"] == "outbox_full"
        assert box.cmd("state")["ok"]  # still answering
    with SimBox(tmp_path, cfg) as box:  # and the six are still there after a restart
        assert box.state()["q"] == 6 and box.state()["full"] is True


def test_unrated_expiry_and_control_errors(tmp_path: pathlib.Path) -> None:
    cfg = box_config(tmp_path, port=free_port(), invite_ms=300, officer="A1")
    with SimBox(tmp_path, cfg) as box:
        inv = box.cmd("invite T-1")
        assert inv["ok"] and inv["i"] == 1
        wait_for(lambda: box.state()["invite"] is None, 30, "invite window closes")
        st = box.state()
        assert st["q"] == 2  # the invite and its unrated event, each with its own identity
        r = box.cmd("press 1")
        assert r["f"] & 1 and r["i"] is None  # unsolicited
        assert box.cmd("press 9")["ok"] is False
        assert box.cmd("press x")["ok"] is False
        assert box.cmd("frobnicate")["ok"] is False
        assert box.cmd("clock -5")["ok"] is False and box.cmd("clock soon")["ok"] is False
        assert box.cmd("")["ok"] is False
        assert box.cmd("signout")["ok"] and box.state()["officer"] is None
        assert box.cmd("signin B2")["ok"] and box.state()["officer"] == "B2"
        bad = box.cmd("signin bad/id")
        assert bad["ok"] is False and "bad officer id" in bad["err"], bad
        bad = box.cmd("invite T:1")
        assert bad["ok"] is False and "bad ticket" in bad["err"], bad
        assert box.state()["officer"] == "B2"
        assert box.state()["q"] == 5
        assert box.cmd("quit") == {"ok": True}
        assert box.proc is not None and box.proc.wait(timeout=30) == 0


def test_example_config_is_valid() -> None:
    from firmware.config import load

    cfg = load(str(ROOT / "firmware" / "box.example.json"))
    assert cfg["board"] == "esp32" and cfg["seg_records"] == 32


def test_keys_stay_responsive_when_the_broker_never_answers(tmp_path: pathlib.Path) -> None:
    """A 'broker' that accepts TCP and then says nothing: presses are saved and lit at once."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        cfg = box_config(tmp_path, port=silent.getsockname()[1], min_interval_ms=0)
        with SimBox(tmp_path, cfg) as box:
            for n in range(20):
                r = box.cmd("press 1")
                assert r["ok"] and r["id"][2] == n, r
            st = box.state()
            assert st["online"] is False and st["q"] == 20
    finally:
        silent.close()


def test_unusable_flash_path_is_one_clear_line(tmp_path: pathlib.Path) -> None:
    cfg = box_config(tmp_path, port=1, flash=str(tmp_path / "no-such-dir" / "f.img"))
    path = tmp_path / "box.json"
    path.write_text(json.dumps(cfg))
    proc = _run_sim(path)
    assert proc.returncode == 2 and proc.stderr.startswith("flash error: "), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
