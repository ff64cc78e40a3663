"""``evalbox report -o FILE``: the format follows the file's suffix; an unwritable path is one clear line, exit 2."""

from __future__ import annotations

import csv
import io
import json
import pathlib
import subprocess
import sys

import openpyxl
import pytest

from collector.cli import main
from tests.conftest import ROOT
from tests.report.store import build, local_ms, rated_presses

OCT = local_ms("2026-10-12 09:30:00")
OFFICERS = (("A1", "张三", "U1", "W1"),)
WINDOWS = (("W1", "U1", "户籍1号窗"),)
UNITS = (("U1", "城关派出所", None),)


@pytest.fixture
def db(tmp_path: pathlib.Path) -> str:
    """An SQLite store with 张三's October: 19 satisfied, 1 not (95.00%)."""
    events = rated_presses(19, 1, OCT, officer="A1", window="W1")
    return build(tmp_path / "s.db", events, officers=OFFICERS, windows=WINDOWS, units=UNITS)


def report(db: str, *args: str) -> list[str]:
    return ["report", "--db", db, "--month", "2026-10", *args]


def fails(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalbox: error") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_format_follows_the_suffix(tmp_path: pathlib.Path, db: str) -> None:
    """``-o r.xlsx`` without ``--format`` is a workbook, ``.csv`` a CSV, ``.json`` JSON, ``.html`` the notice."""
    for suffix in ("xlsx", "XLSX", "csv", "json", "html", "txt"):
        assert main(report(db, "-o", str(tmp_path / f"r.{suffix}"))) == 0
    sheet = openpyxl.load_workbook(tmp_path / "r.xlsx").worksheets[0]
    assert "张三" in [c for row in sheet.iter_rows(values_only=True) for c in row]
    assert (tmp_path / "r.XLSX").read_bytes()[:4] == b"PK\x03\x04"
    rows = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text(encoding="utf-8-sig"))))
    assert any("张三" in row and "95.00" in row for row in rows), rows
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert [o["officer"] for o in data["officers"]] == ["A1"]
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<html" in page.lower() and "张三" in page
    table = (tmp_path / "r.txt").read_text(encoding="utf-8")  # an unknown suffix: the terminal table
    assert "张三" in table and "95.00" in table and "<html" not in table.lower()


def test_year_ledger_follows_the_suffix(tmp_path: pathlib.Path, db: str) -> None:
    out = tmp_path / "ledger.json"
    assert main(["report", "--db", db, "--year", "2026", "-o", str(out)]) == 0
    assert isinstance(json.loads(out.read_text(encoding="utf-8")), dict)


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("missing/dir/r.csv", "the directory {tmp}/missing/dir does not exist"),
        (".", "is a directory"),
        ("file.txt/r.csv", "the directory {tmp}/file.txt is not a directory"),
    ],
)
def test_unwritable_output_is_one_line_exit_2(
    tmp_path: pathlib.Path, db: str, capsys: pytest.CaptureFixture[str], target: str, words: str
) -> None:
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    err = fails(capsys, report(db, "-o", str(tmp_path / target)))
    assert words.format(tmp=tmp_path) in err, err
    assert not (tmp_path / "missing").exists()


def test_format_contradicting_the_suffix_is_refused(
    tmp_path: pathlib.Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = fails(capsys, report(db, "--format", "csv", "-o", str(tmp_path / "r.xlsx")))
    assert "--format csv" in err and ".xlsx" in err
    assert not (tmp_path / "r.xlsx").exists()
    assert main(report(db, "--format", "table", "-o", str(tmp_path / "r.txt"))) == 0  # no known suffix: as asked
    fails(capsys, report(db, "--format", "xlsx"))  # a workbook needs a file


def test_the_command_end_to_end(tmp_path: pathlib.Path, db: str) -> None:
    """The real ``evalbox`` in a child process: a directory as -o, then a workbook by suffix."""

    def evalbox(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "collector.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin:/usr/sbin"},
        )  # fmt: skip

    proc = evalbox(*report(db, "-o", str(tmp_path)))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "is a directory" in proc.stderr
    proc = evalbox(*report(db, "-o", "月报.xlsx"))
    assert proc.returncode == 0, proc.stderr
    assert openpyxl.load_workbook(tmp_path / "月报.xlsx").worksheets[0].max_row > 1
