"""``evalbox device add`` writes the whole box file a real board needs, checked as the box checks it.

A box registered with ``--scale 3 --transport serial`` must run a 3-key panel on its UART from its first
boot, before any signed config reaches it; a wiring the chip cannot do is refused before anything is
written (no store row, no file), naming the key and the limit.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from collector.cli import main
from firmware import ports
from firmware.config import validate
from tests.collector.harness import stored


@pytest.fixture
def db(tmp_path: pathlib.Path) -> str:
    path = str(tmp_path / "s.db")
    assert main(["unit", "add", "U1", "--name", "城关派出所", "--db", path]) == 0
    assert main(["window", "add", "W1", "--unit", "U1", "--name", "户籍窗口1号", "--db", path]) == 0
    return path


def add(db: str, out: pathlib.Path, *extra: str) -> int:
    return main(["device", "add", "BOX-1", "--window", "W1", "-o", str(out), "--db", db, *extra])


@pytest.mark.parametrize("board", ["pico", "pico2", "picow", "esp32"])
def test_serial_box_file_holds_settings_wiring_and_uart(tmp_path: pathlib.Path, db: str, board: str) -> None:
    out = tmp_path / "box.json"
    extra = [
        "--transport",
        "serial",
        "--board",
        board,
        "--scale",
        "3",
        "--min-interval-s",
        "5",
        "--hours",
        "08:30-17:30",
    ]
    assert add(db, out, *extra) == 0
    box = json.loads(out.read_text())
    cfg = validate(box)  # the firmware's own check passes
    assert (cfg["scale"], cfg["min_interval_ms"], cfg["invite_ms"], cfg["gated"]) == (3, 5000, 10000, True)
    assert cfg["hours"] == [510, 1050]
    assert box["pins"] == ports.board_pins(board, None) and len(box["pins"]["keys"]) >= 3
    assert box["uart"] == ports.board_uart(board, None)
    assert "broker_password" not in box  # a serial box has no broker login
    # The store holds the same settings the box starts with.
    assert stored(pathlib.Path(db), "SELECT scale * 100000 + min_interval_ms FROM devices WHERE id = 'BOX-1'") == 305000


def test_wiring_override_is_laid_over_the_defaults(tmp_path: pathlib.Path, db: str) -> None:
    out = tmp_path / "box.json"
    assert add(db, out, "--board", "esp32", "--pins", '{"keys": [32, 33, 25], "buzzer": 4}') == 0
    pins = json.loads(out.read_text())["pins"]
    assert pins["keys"] == [32, 33, 25] and pins["buzzer"] == 4
    assert pins["invite"] == ports.board_pins("esp32", None)["invite"]


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--board", "esp32", "--pins", '{"keys": [34, 35]}'], "34"),  # input-only, no pull-up
        (["--board", "esp32", "--pins", '{"keys": [6, 7]}'], "6"),  # the flash's pins
        (["--board", "pico", "--pins", '{"keys": [2, 3, 40]}'], "40"),  # no such GPIO on the RP2040
        (["--board", "pico"], "mqtt"),  # a Pico without Wi-Fi cannot speak MQTT
        (
            ["--board", "pico", "--transport", "serial", "--uart", '{"id": 1, "tx": 4, "rx": 5}'],
            "pins.keys",
        ),  # UART on keys
    ],
)
def test_a_wiring_the_chip_cannot_do_is_refused_and_nothing_written(
    tmp_path: pathlib.Path, db: str, capsys: pytest.CaptureFixture[str], extra: list[str], names: str
) -> None:
    out = tmp_path / "box.json"
    assert add(db, out, *extra) == 2
    err = capsys.readouterr().err
    assert "would be refused by the box" in err and names in err, err
    assert not out.exists()
    assert stored(pathlib.Path(db), "SELECT COUNT(*) FROM devices") == 0


@pytest.mark.parametrize(
    "extra",
    [
        ["--pins", "{keys"],  # not JSON
        ["--pins", "[1, 2]"],  # not an object
        ["--board", "sim", "--pins", '{"keys": [1]}'],  # the simulator has no GPIO
        ["--uart", '{"id": 1}'],  # a UART on an MQTT box
        ["--board", "nope"],
    ],
)
def test_bad_arguments_are_one_clear_line(
    tmp_path: pathlib.Path, db: str, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    out = tmp_path / "box.json"
    with pytest.raises(SystemExit) as exc:
        code = add(db, out, *extra)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    assert not out.exists()
