"""Rosters as bureaus keep them: Excel workbooks, CSV in GBK/GB18030, UTF-8 with BOM, UTF-16; Chinese headers.

Every test imports through the ``evalbox`` command into a real store and reads
back what a supervisor would see (the names), or checks the refusal names file,
line and column and that nothing was imported.
"""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
import subprocess
import sys

import openpyxl
import pytest

from collector.cli import main
from collector.ingest import rosters
from collector.store import open_store
from tests.conftest import ROOT

# Surnames whose GBK bytes are valid UTF-8 (卢 = C2 AC = "¬"): a GBK file of them decodes as UTF-8 without error.
TRAP_NAMES = ["卢鲁", "鲁", "陆路", "毛梅", "莫牟", "路梅"]


def run(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """The real ``evalbox`` command in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin:/usr/sbin"},
    )  # fmt: skip


def officers(db: pathlib.Path) -> list[tuple[str, str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT id, name, unit_id, window_id FROM officers ORDER BY id"))


def table(db: pathlib.Path, name: str) -> list[tuple[str, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(f"SELECT * FROM {name} ORDER BY id"))


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    """An SQLite store with unit U1 城关派出所 and its window W1 户籍1号窗."""
    path = tmp_path / "store.db"
    assert main(["unit", "add", "U1", "--name", "城关派出所", "--db", str(path)]) == 0
    assert main(["window", "add", "W1", "--unit", "U1", "--name", "户籍1号窗", "--db", str(path)]) == 0
    return path


def test_gbk_names_that_are_valid_utf8_import_intact(
    tmp_path: pathlib.Path, db: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trap: a GBK file whose bytes are valid UTF-8 is read as GB18030, not imported as ¬ ³ ë ÷."""
    raw = "id,name,unit_id\n" + "".join(f"A{i},{n},U1\n" for i, n in enumerate(TRAP_NAMES))
    path = tmp_path / "officers.csv"
    path.write_bytes(raw.encode("gbk"))
    garbled = path.read_bytes().decode("utf-8")  # no error: plain UTF-8 decoding would import this
    assert "¬" in garbled and "卢" not in garbled
    assert main(["officer", "import", str(path), "--db", str(db)]) == 0
    assert [o[1] for o in officers(db)] == TRAP_NAMES
    out = capsys.readouterr().out
    assert "GB18030" in out and "'¬" in out  # says which encoding, and why not UTF-8
    assert "6 officers imported / 已导入 6 名民警" in out


def test_gb18030_chinese_headers_crlf_and_excel_blank_rows(tmp_path: pathlib.Path, db: pathlib.Path) -> None:
    """What Chinese Windows Excel saves: GBK/GB18030, CRLF, 警号/姓名/单位/窗口, leftover ",,," rows."""
    text = crlf(
        "警号,姓名,单位,窗口\n"
        "10293,张伟,U1,W1\n"
        ",,,\n"
        "10294,王芳,城关派出所,户籍1号窗\n"  # the unit and window as the bureau writes them: by name
        "10295,卢䶮,U1,\n"  # 䶮 exists only in GB18030 (four bytes), not in GBK
        ",,,\n"
        ",,,\n"
    )
    path = tmp_path / "民警名册.csv"
    path.write_bytes(text.encode("gb18030"))
    proc = run("officer", "import", str(path), "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "GB18030" in proc.stdout and "3 officers imported" in proc.stdout
    assert officers(db) == [
        ("10293", "张伟", "U1", "W1"),
        ("10294", "王芳", "U1", "W1"),
        ("10295", "卢䶮", "U1", None),
    ]


def test_utf8_with_bom_and_plain_utf8_and_utf16(tmp_path: pathlib.Path, db: pathlib.Path) -> None:
    """Excel's "CSV UTF-8" (BOM), a UTF-8 file with the trap surnames, and "Unicode text" (UTF-16, tabs)."""
    bom = tmp_path / "bom.csv"
    bom.write_bytes(crlf("警号,姓名,单位\nB1,欧阳娜娜,U1\n,,\n").encode("utf-8-sig"))
    plain = tmp_path / "plain.csv"
    plain.write_text("id,name,unit_id\n" + "".join(f"C{i},{n},U1\n" for i, n in enumerate(TRAP_NAMES)), "utf-8")
    wide = tmp_path / "wide.txt"
    wide.write_bytes(crlf("警号\t姓名\t单位\nD1\t买买提·艾力\tU1\n").encode("utf-16"))
    sources = {}
    for path in (bom, plain, wide):
        roster = rosters.read_roster(path, "officers")
        sources[path.name] = roster.source
        assert main(["officer", "import", str(path), "--db", str(db)]) == 0
    assert sources["bom.csv"].startswith("UTF-8 (BOM)")
    assert sources["plain.csv"].startswith("UTF-8 (detected")
    assert sources["wide.txt"].startswith("UTF-16")
    names = {o[0]: o[1] for o in officers(db)}
    assert names["B1"] == "欧阳娜娜" and names["D1"] == "买买提·艾力"
    assert [names[f"C{i}"] for i in range(len(TRAP_NAMES))] == TRAP_NAMES


def test_excel_workbook_roster(tmp_path: pathlib.Path, db: pathlib.Path) -> None:
    """An .xlsx as a bureau keeps it: a title row, Chinese headers, numeric badge numbers, blank rows."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["城关派出所窗口民警名册"])
    sheet.append(["警号", "姓名", "单位", "窗口"])
    sheet.append([10293, "卢明", "城关派出所", "户籍1号窗"])
    sheet.append([None, None, None, None])
    sheet.append(["A-77", "毛梅", "U1", None])
    sheet.append([10295.0, "陆路", "U1", "W1"])
    sheet.append([None, None, None, None])
    path = tmp_path / "民警.xlsx"
    book.save(path)
    proc = run("registry", "import", "--officers", str(path), "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Excel" in proc.stdout and "3 officers" in proc.stdout
    assert officers(db) == [("10293", "卢明", "U1", "W1"), ("10295", "陆路", "U1", "W1"), ("A-77", "毛梅", "U1", None)]


def test_a_roster_placed_lower_right_in_its_sheet(tmp_path: pathlib.Path, db: pathlib.Path) -> None:
    """Data from C4 (dimension C2:E6): problems name Excel's row and column; padded names (王　芳) lose the padding."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["C2"] = "窗口民警名册"
    rows = (["警号", "姓名", "单位"], ["60001", "王　芳", "U1"], ["60002", "欧阳 娜娜", "U1"])
    for r, row in enumerate(rows, start=4):
        for c, value in enumerate(row, start=3):
            sheet.cell(r, c, value)
    path = tmp_path / "o.xlsx"
    book.save(path)
    assert main(["officer", "import", str(path), "--db", str(db)]) == 0
    assert [o[1] for o in officers(db)] == ["王芳", "欧阳娜娜"]
    sheet["E6"] = "U9"
    book.save(path)
    with pytest.raises(rosters.RosterError) as refused:
        asyncio.run(_import(db, {"officers": path}))
    assert [(p.line, p.column) for p in refused.value.problems] == [(6, "E (单位)")]


async def _import(db: pathlib.Path, files: dict[str, pathlib.Path | None]) -> None:
    read = rosters.read_rosters(files)
    async with open_store(str(db)) as store:
        await rosters.import_rosters(store, read)


def test_units_windows_officers_workbooks_in_one_import(tmp_path: pathlib.Path) -> None:
    """All three rosters from Excel, Chinese headers, references by name across the files."""
    path = tmp_path / "store.db"
    files: dict[str, list[list[str | None]]] = {
        "units": [["单位编号", "单位名称", "上级单位", "负责人"], ["X0", "某县公安局", None, "周强"],
                  ["X1", "城关派出所", "某县公安局", "吴敏"]],
        "windows": [["窗口编号", "所属单位", "窗口名称"], ["XW1", "城关派出所", "户籍1号窗"]],
        "officers": [["警号", "姓名", "单位", "窗口"], ["20001", "莫牟", "X1", "户籍1号窗"]],
    }  # fmt: skip
    args = ["registry", "import", "--db", str(path)]
    for name, rows in files.items():
        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        for row in rows:
            sheet.append(row)
        book.save(tmp_path / f"{name}.xlsx")
        args += [f"--{name}", str(tmp_path / f"{name}.xlsx")]
    assert main(args) == 0
    assert table(path, "units") == [("X0", "某县公安局", None, "周强"), ("X1", "城关派出所", "X0", "吴敏")]
    assert table(path, "windows") == [("XW1", "X1", "户籍1号窗")]
    assert officers(path) == [("20001", "莫牟", "X1", "XW1")]


def test_one_workbook_with_a_sheet_per_roster(tmp_path: pathlib.Path) -> None:
    """A bureau's one workbook: sheets 说明, 单位, 窗口, 民警名册; each roster reads its own sheet."""
    book = openpyxl.Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "说明"
    notes.append(["本表由政工科维护"])
    sheets: dict[str, list[list[str | None]]] = {
        "单位": [["单位编号", "单位名称"], ["Y1", "南关派出所"]],
        "窗口": [["窗口编号", "单位", "窗口名称"], ["YW1", "南关派出所", "出入境1号窗"]],
        "民警名册": [["警号", "姓名", "单位", "窗口"], ["40001", "梅莫", "南关派出所", "出入境1号窗"]],
    }
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    path = tmp_path / "名册.xlsx"
    book.save(path)
    db = tmp_path / "store.db"
    argv = ["registry", "import", "--units", str(path), "--windows", str(path), "--officers", str(path)]
    assert main([*argv, "--db", str(db)]) == 0
    assert officers(db) == [("40001", "梅莫", "Y1", "YW1")]
    assert table(db, "windows") == [("YW1", "Y1", "出入境1号窗")]


def test_every_bad_file_line_and_column_at_once_nothing_imported(tmp_path: pathlib.Path, db: pathlib.Path) -> None:
    """Three files, two bad: one refusal lists every problem with file, line and column; the good file waits too."""
    units = tmp_path / "units.csv"
    units.write_bytes(crlf("单位编号,单位名称\nU2,东城派出所\n,,\n").encode("gbk"))  # good
    windows = tmp_path / "windows.csv"  # GBK with a byte no encoding reads on line 3
    windows.write_bytes(crlf("窗口编号,单位,窗口名称\nW2,U2,户籍2号窗\n").encode("gbk") + b"W3,U2,\xff\xfe\r\n")
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (["警号", "姓名", "单位", "窗口"], ["E1", "卢明", "U1", None], [None] * 4, ["E2", None, "U1", None],
                ["E3", "毛梅", "西城派出所", None], ["E1", "鲁", "U1", None], ["E 5", "陆路", "U1", None],
                ["E6", "莫牟", "U1", "W9"]):  # fmt: skip
        sheet.append(row)
    officers_xlsx = tmp_path / "officers.xlsx"
    book.save(officers_xlsx)
    proc = run(
        "registry", "import", "--units", str(units), "--windows", str(windows), "--officers", str(officers_xlsx),
        "--db", str(db), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = proc.stderr
    assert "nothing imported / " in err and "未导入任何数据" in err
    expected = [
        f"{windows}:3: column 7: bytes ff fe cannot be read as UTF-8 or GB18030/GBK",
        f"{officers_xlsx}:4: column B (姓名): empty name / 姓名为空",
        f"{officers_xlsx}:5: column C (单位): unit '西城派出所' does not exist",
        f"{officers_xlsx}:6: column A (警号): id 'E1' also on line 2",
        f"{officers_xlsx}:7: column A (警号): id 'E 5': use 1-32 letters",
        f"{officers_xlsx}:8: column D (窗口): window 'W9' does not exist",
    ]
    for line in expected:
        assert line in err, err
    assert err.count("\n  ") == len(expected) + 2  # the problems, then how the two readable files were read
    assert officers(db) == [] and [u[0] for u in table(db, "units")] == ["U1"]


def test_encoding_option(tmp_path: pathlib.Path, db: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--encoding`` overrides detection; a wrong one is refused line by line, an unknown one in one line."""
    path = tmp_path / "o.csv"
    path.write_bytes(crlf("警号,姓名,单位\nF1,卢明,U1\nF2,张伟,U1\n").encode("gbk"))
    assert main(["officer", "import", str(path), "--encoding", "utf-8", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: column 1: bytes" in err and f"{path}:3: column 4: bytes" in err
    assert "cannot be read as UTF-8;" in err
    assert officers(db) == []
    for name in ("nonesuch", "base64"):
        assert main(["officer", "import", str(path), "--encoding", name, "--db", str(db)]) == 2
        assert "unknown encoding" in capsys.readouterr().err
    assert main(["officer", "import", str(path), "--encoding", "GBK", "--db", str(db)]) == 0
    assert "as given by --encoding" in capsys.readouterr().out
    assert [o[1] for o in officers(db)] == ["卢明", "张伟"]
    trap = tmp_path / "trap.csv"  # forced to UTF-8, which it is valid as: imported as asked, but the output warns
    trap.write_bytes("id,name,unit_id\nF3,毛梅,U1\n".encode("gbk"))
    assert main(["officer", "import", str(trap), "--encoding", "utf-8", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "warning: 'ë÷' does not look like Chinese text" in out and "疑似乱码" in out


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty file"),
        ("姓名,单位\n张伟,U1\n".encode(), "1: missing column(s) id (警号"),
        ("警号,姓名,单位,职务\nG1,张伟,U1,科员\n".encode(), "1: column 4 (职务): unknown column '职务'"),
        ("警号,姓名,单位,警号\n".encode(), "column 4 (警号): column id given twice"),
        ("窗口编号,单位,窗口名称\nW5,U1,2号窗\n".encode("gbk"), "this looks like the windows roster"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "old Excel .xls workbook"),
        (b"PK\x03\x04broken", "not a readable .xlsx workbook"),
    ],
)
def test_refused_rosters_say_why(
    tmp_path: pathlib.Path, db: pathlib.Path, capsys: pytest.CaptureFixture[str], content: bytes, words: str
) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(content)
    assert main(["officer", "import", str(path), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert words in err and str(path) in err, err
    assert officers(db) == []


def test_import_rosters_is_one_transaction_on_every_store(tmp_path: pathlib.Path, store_url: str) -> None:
    """SQLite and PostgreSQL: a roster that fails the references leaves the store as it was; then it imports."""
    units = tmp_path / "u.csv"
    units.write_bytes("单位编号,单位名称\nH0,县局\nH1,城关派出所\n".encode("gbk"))
    officers_csv = tmp_path / "o.csv"
    officers_csv.write_bytes("警号,姓名,单位\n30001,卢明,城关派出所\n30002,牟,南关派出所\n".encode("gbk"))

    async def count(table_name: str) -> int:
        async with open_store(store_url) as store:
            row = await store.db.fetchone(f"SELECT count(*) FROM {table_name}")
            assert row is not None
            return int(row[0])

    async def attempt() -> None:
        read = rosters.read_rosters({"units": units, "officers": officers_csv})
        async with open_store(store_url) as store:
            await rosters.import_rosters(store, read)

    with pytest.raises(rosters.RosterError) as refused:
        asyncio.run(attempt())
    assert [(p.line, p.column) for p in refused.value.problems] == [(3, "3 (单位)")]
    assert asyncio.run(count("units")) == 0 and asyncio.run(count("officers")) == 0
    officers_csv.write_bytes("警号,姓名,单位\n30001,卢明,城关派出所\n30002,牟,H0\n".encode("gbk"))
    asyncio.run(attempt())
    assert asyncio.run(count("units")) == 2 and asyncio.run(count("officers")) == 2


def test_the_doc_names_every_accepted_header() -> None:
    """docs/collector.md's header table lists exactly what the reader accepts."""
    doc = (ROOT / "docs" / "collector.md").read_text(encoding="utf-8")
    for table_name, columns in rosters.HEADERS.items():
        for column, names in columns.items():
            required = column in rosters.COLUMNS[table_name][0]
            row = f"| {table_name} | `{column}`{' (required)' if required else ''} | {', '.join(names)} |"
            assert row in doc, row


def test_names_resolve_within_the_officers_unit_or_are_refused_as_ambiguous(tmp_path: pathlib.Path) -> None:
    """Two units each with a 综合窗口: an officer of one gets that unit's; an officer of a third is asked for the id."""
    path = tmp_path / "store.db"
    units = tmp_path / "u.csv"
    units.write_text("单位编号,单位名称\nK1,东关派出所\nK2,西关派出所\nK3,北关派出所\n", encoding="utf-8")
    windows = tmp_path / "w.csv"
    windows.write_text("窗口编号,单位,窗口名称\nKW1,K1,综合窗口\nKW2,西关派出所,综合窗口\n", encoding="utf-8")
    staff = tmp_path / "o.csv"
    staff.write_text("警号,姓名,单位,窗口\n50001,路梅,西关派出所,综合窗口\n50002,卢鲁,北关派出所,综合窗口\n", "utf-8")
    argv = ["registry", "import", "--units", str(units), "--windows", str(windows), "--db", str(path)]
    assert main([*argv, "--officers", str(staff)]) == 2
    assert table(path, "units") == []  # nothing half-imported: not even the clean units and windows
    staff.write_text("警号,姓名,单位,窗口\n50001,路梅,西关派出所,综合窗口\n50002,卢鲁,北关派出所,KW1\n", "utf-8")
    assert main([*argv, "--officers", str(staff)]) == 0
    assert officers(path) == [("50001", "路梅", "K2", "KW2"), ("50002", "卢鲁", "K3", "KW1")]
    read = rosters.read_rosters({"officers": tmp_path / "o.csv"})
    read["officers"].rows[1] = ("50002", "卢鲁", "K3", "综合窗口")
    rosters.resolve(read, {"K1": "东关派出所", "K2": "西关派出所", "K3": "北关派出所"},
                    {"KW1": ("K1", "综合窗口"), "KW2": ("K2", "综合窗口")})  # fmt: skip
    (problem,) = read["officers"].problems
    assert (problem.line, problem.column) == (3, "4 (窗口)") and "ambiguous (KW1, KW2)" in problem.en
