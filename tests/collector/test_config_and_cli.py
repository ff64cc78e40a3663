"""Config validation, provisioning commands and bad command-line input: one clear line, exit 2."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from collector.cli import main
from collector.config import EXAMPLE, load_config
from tests.conftest import ROOT


def run(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin:/usr/sbin"},
    )  # fmt: skip


def test_init_writes_a_config_that_loads(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "evalbox.toml"
    assert main(["init", "-o", str(out)]) == 0
    cfg = load_config(out)
    assert cfg.mqtt is not None and cfg.mqtt.client_id == "evalbox-collector"
    # the example, with a new random collector password in place of the placeholder; owner-only
    assert cfg.mqtt.password and cfg.mqtt.password != "change-me" and len(cfg.mqtt.password) >= 20
    assert out.read_text(encoding="utf-8") == EXAMPLE.replace("change-me", cfg.mqtt.password, 1)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert main(["init", "-o", str(out)]) == 2  # exists: not overwritten without --force


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('[store]\nurl = "sqlite:///x.db"\n[mqtt]\nhostt = "a"\n', "mqtt.hostt: unknown key"),
        ('[store]\nurl = "sqlite:///x.db"\n[mqtt]\nport = "1883"\n', "mqtt.port: expected an integer"),
        ('[store]\nurl = "sqlite:///x.db"\n[[serial]]\nbaud = 9600\n', "serial[0].port: missing"),
        ('[store]\nurl = "sqlite:///x.db"\n[[serial]]\nport = "x"\nbogus = 1\n', "serial[0].bogus: unknown key"),
        ("[mqtt]\n", "store: missing"),
        ('[store]\nurl = "mysql://x"\n', "store.url"),
        ('[store]\nurl = "sqlite:///x.db"\n[batch]\nmax_ms = true\n', "batch.max_ms: expected an integer"),
        ('[store]\nurl = "sqlite:///x.db"\n[web]\nlisten = "nowhere"\n', "web.listen"),
        ('[store]\nurl = "sqlite:///x.db"\n[web]\nsesion_idle_s = 5\n', "web.sesion_idle_s: unknown key"),
        ('[store]\nurl = "sqlite:///x.db"\nextra = 1\n', "extra: unknown key"),
        ("[store\n", "not valid TOML"),
    ],
)
def test_bad_config_one_clear_line_exit_2(tmp_path: pathlib.Path, text: str, names: str) -> None:
    cfg = tmp_path / "evalbox.toml"
    cfg.write_text(text, encoding="utf-8")
    proc = run("serve", "--config", str(cfg), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert names in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_config_file(tmp_path: pathlib.Path) -> None:
    proc = run("serve", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert proc.returncode == 2 and "no such config file" in proc.stderr


def test_provisioning_commands(tmp_path: pathlib.Path, store_url: str) -> None:
    db = store_url  # an SQLite file, or a postgresql:// URL
    assert main(["unit", "add", "U1", "--name", "城关派出所", "--db", db]) == 0
    assert main(["window", "add", "W1", "--unit", "U1", "--name", "户籍1号窗", "--db", db]) == 0
    assert main(["officer", "add", "A1", "--name", "张三", "--unit", "U1", "--window", "W1", "--db", db]) == 0
    out = tmp_path / "box.json"
    assert main(["device", "add", "BOX-1", "--window", "W1", "--transport", "serial", "-o", str(out), "--db", db]) == 0
    box = json.loads(out.read_text())
    assert set(box) == {"device_id", "key_hex", "window_id", "transport", "board", "scale", "invite_ms",
                        "min_interval_ms", "gated", "hours", "pins", "uart"}  # fmt: skip
    assert len(bytes.fromhex(box["key_hex"])) == 32 and box["transport"] == "serial"
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert main(["device", "add", "BOX-1", "--window", "W1", "-o", str(out), "--db", db]) == 2  # exists
    assert main(["device", "add", "BOX-2", "--window", "NOPE", "-o", str(tmp_path / "b2.json"), "--db", db]) == 2
    assert main(["device", "add", "bad id!", "--window", "W1", "--db", db]) == 2
    assert main(["device", "list", "--db", db]) == 0
    assert main(["status", "--db", db]) == 0


def test_device_add_updates_the_broker_password_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "evalbox.toml").write_text(
        '[store]\nurl = "sqlite:///s.db"\n[mqtt]\nusername = "collector"\npassword = "collector-secret-1"\n'
        '[broker]\nhost = "10.1.2.3"\nport = 8883\npassword_file = "broker/passwd"\n',
        encoding="utf-8",
    )
    cfg = str(tmp_path / "evalbox.toml")
    assert main(["broker-config", "-o", str(tmp_path / "broker"), "--config", cfg]) == 0
    conf = (tmp_path / "broker" / "mosquitto.conf").read_text()
    assert "persistence true" in conf and "allow_anonymous false" in conf
    acl = (tmp_path / "broker" / "acl").read_text()
    assert "pattern readwrite evalbox/%u/#" in acl and "user collector" in acl
    assert main(["unit", "add", "U1", "--name", "U", "--config", cfg]) == 0
    assert main(["window", "add", "W1", "--unit", "U1", "--name", "W", "--config", cfg]) == 0
    out = tmp_path / "b.json"
    assert main(["device", "add", "BOX-9", "--window", "W1", "-o", str(out), "--config", cfg]) == 0
    box = json.loads(out.read_text())
    assert box["broker_host"] == "10.1.2.3" and box["broker_port"] == 8883
    users = [line.split(":")[0] for line in (tmp_path / "broker" / "passwd").read_text().splitlines()]
    assert users == ["collector", "BOX-9"]


def test_officer_csv_import_errors_and_nothing_half_imported(tmp_path: pathlib.Path) -> None:
    db = str(tmp_path / "s.db")
    assert main(["unit", "add", "U1", "--name", "城关派出所", "--db", db]) == 0
    good = tmp_path / "good.csv"
    good.write_text("id,name,unit_id\nA1,张三,U1\nA2,李四,U1\n", encoding="utf-8-sig")
    missing = tmp_path / "missing.csv"
    missing.write_text("id,name\nA3,王五\n", encoding="utf-8")
    gbk = tmp_path / "gbk.csv"  # GBK is read (tests/collector/test_rosters.py); a byte no encoding reads is not
    gbk.write_bytes("id,name,unit_id\nA4,赵六,U1\n".encode("gbk") + b"A8,\xff,U1\n")
    partly = tmp_path / "partly.csv"
    partly.write_text("id,name,unit_id\nA5,钱七,U1\nA6,,U1\nA7,孙八,NOUNIT\n", encoding="utf-8")
    cases = ((missing, "missing column"), (gbk, ":3: column 4: bytes ff"), (partly, ":3: column 2 (name): empty name"))
    for bad, words in cases:
        proc = run("officer", "import", str(bad), "--db", db, cwd=tmp_path)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("id,name,unit_id\nA5,钱七,U1\nA7,孙八,NOUNIT\n", encoding="utf-8")
    assert main(["officer", "import", str(fixed), "--db", db]) == 2  # unknown unit: nothing imported
    assert main(["officer", "import", str(good), "--db", db]) == 0
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM officers ORDER BY id")] == ["A1", "A2"]


def test_registry_import_units_windows_officers(tmp_path: pathlib.Path) -> None:
    db = str(tmp_path / "s.db")
    (tmp_path / "u.csv").write_text("id,name,parent_id\nU0,县局,\nU1,城关派出所,U0\n", encoding="utf-8")
    (tmp_path / "w.csv").write_text("id,unit_id,name\nW1,U1,户籍1号窗\n", encoding="utf-8")
    (tmp_path / "o.csv").write_text("id,name,unit_id,window_id\nA1,张三,U1,W1\n", encoding="utf-8")
    args = ["registry", "import", "--units", str(tmp_path / "u.csv"), "--windows", str(tmp_path / "w.csv")]
    assert main([*args, "--officers", str(tmp_path / "o.csv"), "--db", db]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["device", "add", "BOX-1"],  # --window missing
        ["device", "add", "BOX-1", "--window", "W1", "--transport", "pigeon"],
        ["serve", "--bogus"],
        ["unit", "add"],
    ],
)
def test_bad_arguments_exit_2(tmp_path: pathlib.Path, argv: list[str]) -> None:
    proc = run(*argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
