"""The one configuration loader, as every command sees it: same store, same policy, same errors.

Bad input — a key in the wrong table, an unknown key, a policy file that is not there, a broken policy
file, ``--config`` and ``--db`` naming different stores — is one line on stderr naming the file and the
key, exit 2, and nothing written (no store created, no file touched), for every command.
"""

from __future__ import annotations

import asyncio
import json
import pathlib

import pytest

from collector.cli import main
from collector.config import load
from collector.store import connect
from tests.report.store import build, local_ms, rated_presses

OCT = local_ms("2026-10-12 09:30:00")

# (config text, policy file text or None, what the one line must name)
BAD = {
    "policy_under_store": (
        '[store]\nurl = "sqlite:///s.db"\npolicy = "policy.toml"\n',
        "",
        ["evalbox.toml: store.policy: unknown key", "top level"],
    ),
    "unknown_key": ('[store]\nurl = "sqlite:///s.db"\n[web]\nsesion_idle_s = 60\n', None, ["web.sesion_idle_s"]),
    "floor_in_web": (
        '[store]\nurl = "sqlite:///s.db"\n[web]\nfloor_percent = 90\n',
        None,
        ["evalbox.toml: web.floor_percent: unknown key", "policy file"],
    ),
    "missing_policy": (
        'policy = "nope.toml"\n[store]\nurl = "sqlite:///s.db"\n',
        None,
        ["evalbox.toml: policy:", "nope.toml: no such policy file"],
    ),
    "broken_policy": (
        'policy = "policy.toml"\n[store]\nurl = "sqlite:///s.db"\n',
        "[rates]\nflor = 90\n",
        ["policy.toml: rates.flor: unknown key"],
    ),
    "config_and_db_disagree": (
        '[store]\nurl = "sqlite:///s.db"\n',
        None,
        ["evalbox.toml: store.url:", "--db", "other.db", "different stores"],
    ),
}

COMMANDS = {
    "report": ["report", "--month", "2026-10"],
    "status": ["status"],
    "serve": ["serve"],
    "web": ["web", "--listen", "127.0.0.1:1"],
    "user_add": ["user", "add", "chen", "--role", "admin", "--password-file", "pw.txt"],
    "complaint_add": ["complaint", "add", "--officer", "A1", "--date", "2026-10-01", "--note", "n"],
    "month_close": ["month", "close", "2026-10"],
    "rebuild": ["rebuild"],
    "store_copy": ["store", "copy", "--to", "copy.db", "--yes"],
    "unit_add": ["unit", "add", "U9", "--name", "新单位"],
    "device_add": ["device", "add", "BOX-9", "--window", "W1", "-o", "box.json"],
}


def _tree(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_config_is_one_line_exit_2_and_nothing_written(
    case: str, command: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, policy, names = BAD[case]
    (tmp_path / "evalbox.toml").write_text(config, encoding="utf-8")
    if policy is not None:
        (tmp_path / "policy.toml").write_text(policy, encoding="utf-8")
    (tmp_path / "pw.txt").write_text("correct horse battery\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the default ./evalbox.toml, as a user runs it
    before = _tree(tmp_path)
    argv = COMMANDS[command] + (["--db", "other.db"] if case == "config_and_db_disagree" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalbox: error") and err.count("\n") == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, (name, err)
    assert _tree(tmp_path) == before  # no store created, no box file, no copy


def test_every_store_command_takes_config_and_db() -> None:
    from collector.cli import build_parser

    parser = build_parser()
    for argv in COMMANDS.values():
        args = parser.parse_args([*argv, "--config", "x.toml", "--db", "y.db"])
        assert (args.config, args.db) == ("x.toml", "y.db")


def test_the_store_and_policy_are_found_the_same_way_by_every_command(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Relative paths: the store and policy from the config's directory; --db that agrees is fine."""
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    build(conf_dir / "s.db", rated_presses(18, 2, OCT))  # 90%: below the default floor, above 85
    (conf_dir / "policy.toml").write_text("[rates]\nfloor = 85\ntarget = 90\n", encoding="utf-8")
    (conf_dir / "evalbox.toml").write_text(
        'timezone = "Asia/Shanghai"\npolicy = "policy.toml"\n[store]\nurl = "sqlite:///s.db"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    config = load("etc/evalbox.toml", "etc/s.db")  # the same file, spelt from here: they agree
    assert config.store is not None and config.store.path.resolve() == (conf_dir / "s.db").resolve()
    assert (float(config.policy.floor), float(config.policy.target)) == (85.0, 90.0)
    assert main(["report", "--config", "etc/evalbox.toml", "--month", "2026-10", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"]["floor"] == 85 and doc["officers"][0]["band"] == "met"
    monkeypatch.chdir(conf_dir)  # the default ./evalbox.toml gives the same
    assert main(["report", "--month", "2026-10", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["officers"][0]["band"] == "met"


def test_config_timezone_and_policy_timezone_must_agree(tmp_path: pathlib.Path) -> None:
    (tmp_path / "policy.toml").write_text('timezone = "UTC"\n', encoding="utf-8")
    cfg = tmp_path / "evalbox.toml"
    cfg.write_text('timezone = "Asia/Urumqi"\npolicy = "policy.toml"\n', encoding="utf-8")
    with pytest.raises(Exception, match="evalbox.toml: timezone: 'Asia/Urumqi', but .*policy.toml says"):
        load(cfg)
    cfg.write_text('timezone = "UTC"\npolicy = "policy.toml"\n', encoding="utf-8")
    assert load(cfg).timezone == "UTC"


def test_user_add_on_postgresql_writes_to_postgresql(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, postgres_database: str
) -> None:
    """The deployment's evalbox.toml names PostgreSQL: ``evalbox user add`` writes there, no stray local file."""
    (tmp_path / "evalbox.toml").write_text(f'[store]\nurl = "{postgres_database}"\n', encoding="utf-8")
    (tmp_path / "pw.txt").write_text("correct horse battery\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["user", "add", "chen", "--role", "admin", "--password-file", "pw.txt"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evalbox.toml", "pw.txt"]

    async def users() -> list[str]:
        async with connect(postgres_database, migrate=False) as db:
            return [name for (name,) in await db.fetch("SELECT name FROM users")]

    assert asyncio.run(users()) == ["chen"]


def test_no_store_anywhere_is_a_clear_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pw.txt").write_text("correct horse battery\n", encoding="utf-8")
    for argv in (COMMANDS["user_add"], COMMANDS["report"], COMMANDS["serve"], COMMANDS["web"]):
        assert main(argv) == 2
        assert "no store given" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pw.txt"]
