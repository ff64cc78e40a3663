"""Policy files and bad input: clear one-line messages, exit 2, no traceback."""

from __future__ import annotations

import pathlib
import tomllib

import pytest

from collector.cli import main
from collector.report.policy import EXAMPLE_POLICY, Policy, policy_from_dict
from tests.report.store import build, local_ms, rated_presses

OCT = local_ms("2026-10-12 09:30:00")


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("evalbox: error")
    assert err.count("\n") == 1
    return err


@pytest.fixture
def db(store_url: str) -> str:
    return str(build(store_url, rated_presses(3, 0, OCT)))


def test_example_policy_is_the_default(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    assert policy_from_dict(tomllib.loads(EXAMPLE_POLICY)) == Policy()
    assert main(["policy", "init"]) == 0
    assert capsys.readouterr().out == EXAMPLE_POLICY
    path = tmp_path / "policy.toml"
    assert main(["policy", "init", "-o", str(path)]) == 0
    assert main(["policy", "check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out
    fails(capsys, "policy", "init", "-o", str(path))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[rates]\nflor = 95\n", "rates.flor: unknown key"),
        ("[rates]\nfloor = 'x'\n", "rates.floor: expected a number"),
        ("[rates]\nfloor = 101\n", "rates.floor"),
        ("[rates]\ntarget = 90\n", "rates.floor"),
        ("[rates.satisfied]\n3 = [1, 4]\n", "rates.satisfied.3"),
        ("[rates.satisfied]\n7 = [1]\n", "rates.satisfied.7: unknown scale"),
        ("[rates.satisfied]\n2 = [1, 2]\n", "rates.satisfied.2: every level"),
        ("timezone = 'Mars/Olympus'\n", "timezone: unknown time zone"),
        ("[sanctions]\npenalty_points = 1.5\n", "sanctions.penalty_points: expected a whole number"),
        ("[ranking]\ntop_share = 60\nbottom_share = 50\n", "ranking.top_share"),
        ("[rates]\ncount_misuse = 1\n", "rates.count_misuse: expected true or false"),
        ("colour = 'red'\n", "colour: unknown key"),
        ("[rates\n", "not valid TOML"),
    ],
)
def test_broken_policy_names_the_key(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], db: str, text: str, key: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    assert key in fails(capsys, "policy", "check", str(path))
    assert key in fails(capsys, "report", "--db", db, "--month", "2026-10", "--policy", str(path))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2026-13"], "no such month"),
        (["--month", "10/2026"], "expected YYYY-MM"),
        (["--month", "2026-09"], "no data for month 2026-09"),
        (["--month", "2026-10", "--unit", "NOPE"], "unknown unit 'NOPE'"),
        (["--year", "2025"], "no data for year 2025"),
        (["--month", "2026-10", "--year", "2026"], "exactly one of"),
        (["--month", "2026-10", "--format", "xlsx"], "-o FILE"),
    ],
)
def test_bad_report_input(capsys: pytest.CaptureFixture[str], db: str, args: list[str], message: str) -> None:
    assert message in fails(capsys, "report", "--db", db, *args)


def test_bad_store_and_complaint_input(capsys: pytest.CaptureFixture[str], db: str, tmp_path: pathlib.Path) -> None:
    assert "no such store" in fails(capsys, "report", "--db", str(tmp_path / "none.db"), "--month", "2026-10")
    base = ["complaint", "add", "--db", db, "--note", "x"]
    assert "unknown officer 'Z404'" in fails(capsys, *base, "--officer", "Z404", "--date", "2026-10-01")
    assert "expected YYYY-MM-DD" in fails(capsys, *base, "--officer", "A1", "--date", "2026-10-32")
    assert "expected YYYY-MM" in fails(capsys, "month", "close", "--db", db, "oct")
    no_store = tmp_path / "empty"
    no_store.mkdir()
    conf = no_store / "evalbox.toml"
    conf.write_text('[store]\nurl = "mysql://x/y"\n', encoding="utf-8")
    err = fails(capsys, "report", "--config", str(conf), "--month", "2026-10")
    assert "evalbox.toml: store.url: 'mysql://x/y'" in err


def test_config_file_gives_store_policy_and_zone(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: pathlib.Path
) -> None:
    conf = tmp_path / "evalbox.toml"
    url = db if "://" in db else f"sqlite:///{db}"
    conf.write_text(f'timezone = "Asia/Urumqi"\n[store]\nurl = "{url}"\n[mqtt]\nhost = "x"\n', encoding="utf-8")
    assert main(["report", "--config", str(conf), "--month", "2026-10", "--format", "json"]) == 0
    assert '"timezone": "Asia/Urumqi"' in capsys.readouterr().out
