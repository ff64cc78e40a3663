"""The workbook and the CSV as a bureau opens them: the month in a cell at the top, a frozen header, numbers as
numbers (rates as 0.00%), columns as wide as their text, and the windows', units' and total lines."""

from __future__ import annotations

import csv
import io
import json
import pathlib

import openpyxl
import pytest

from collector.cli import main
from collector.report.render import XLSX_HEADER_ROW
from tests.report.notice_store import MONTH, OFFICERS, WINDOWS, build_bureau


@pytest.fixture
def db(tmp_path: pathlib.Path) -> str:
    return build_bureau(tmp_path / "evalbox.db")


def report_json(db: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["report", "--db", db, "--month", MONTH, "--format", "json"]) == 0
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def test_workbook(db: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(db, capsys)
    total = doc["total"]
    assert isinstance(total, dict)
    out = tmp_path / "月报.xlsx"
    assert main(["report", "--db", db, "--month", MONTH, "-o", str(out)]) == 0  # the suffix says xlsx
    wb = openpyxl.load_workbook(out)
    assert [ws.title for ws in wb.worksheets] == ["民警", "窗口", "单位"]
    officers, windows, units = wb.worksheets
    for ws in wb.worksheets:
        assert ws["A1"].value == f"{MONTH} 窗口民警满意率月通报" and ws["A1"].font.b
        assert (ws["A2"].value, ws["B2"].value) == ("月份", MONTH)  # the month in a cell, not only the title
        assert ws["E2"].value == "未关账"
        assert ws.freeze_panes == ("C4" if ws is officers else "B4")  # the header (and the names) stay in view
        last = [c.value for c in ws[ws.max_row]]
        assert last[0] == "合计" and ws.cell(ws.max_row, 1).font.b
        header = [c.value for c in ws[XLSX_HEADER_ROW]]
        assert last[header.index("参评数")] == total["rated"] == 352
        assert last[header.index("满意数")] == total["satisfied"]
        assert last[header.index("满意率%")] == pytest.approx(0.9431)  # 332/352 cut to 94.31%
        assert ws.cell(ws.max_row, header.index("满意率%") + 1).number_format == "0.00%"

    header = [c.value for c in officers[XLSX_HEADER_ROW]]
    rows = {r[0]: r for r in officers.iter_rows(min_row=XLSX_HEADER_ROW + 1, values_only=True)}
    assert list(rows)[: len(OFFICERS)] == [o[0] for o in OFFICERS] and list(rows)[-2:] == ["未签到按键", "合计"]
    a03 = rows["A03"]
    assert a03[header.index("姓名")] == "欧阳明辉" and a03[header.index("参评数")] == 40
    assert a03[header.index("满意率%")] == 0.75 and a03[header.index("扣分")] == 10
    assert isinstance(a03[header.index("差评")], int) and a03[header.index("档次")] == "低于底线"
    for r in range(XLSX_HEADER_ROW + 1, officers.max_row + 1):
        for key in ("满意率%", "置信下限%", "未评价率%"):
            assert officers.cell(r, header.index(key) + 1).number_format == "0.00%"
    widths = {
        h: officers.column_dimensions[openpyxl.utils.get_column_letter(i + 1)].width for i, h in enumerate(header)
    }
    assert widths["姓名"] >= 2 * len("阿依古丽·买买提") - 1 and widths["单位"] >= 6 and widths["参评数"] >= 6

    wrows = {r[0]: r for r in windows.iter_rows(min_row=XLSX_HEADER_ROW + 1, values_only=True)}
    assert set(wrows) == {w[0] for w in WINDOWS} | {"合计"}
    assert wrows["W01"][1] == "户籍1号窗" and wrows["W01"][3] == 80  # 张伟's 40 and 欧阳明辉's 40
    urows = {r[0]: r for r in units.iter_rows(min_row=XLSX_HEADER_ROW + 1, values_only=True)}
    assert set(urows) == {"U0", "U1", "U2", "U3", "合计"} and urows["U1"][1] == "城关派出所"
    rated = {k: r[2] for k, r in urows.items()}
    assert sum(int(str(v)) for k, v in rated.items() if k != "合计") == rated["合计"] == 352


def test_csv_carries_windows_units_and_total(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(db, capsys)
    assert main(["report", "--db", db, "--month", MONTH, "--format", "csv", "--lang", "en"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out.lstrip("\ufeff"))))
    kinds = [r["Line"] for r in rows]
    assert kinds == ["Officers"] * 10 + ["Windows"] * 6 + ["Units"] * 4 + ["Presses with nobody signed in", "Total"]
    assert {r["Month"] for r in rows} == {MONTH}
    windows = {r["Window"]: r for r in rows if r["Line"] == "Windows"}
    assert windows["W05"]["Name"] == "出入境证件受理窗口" and windows["W05"]["Officer"] == ""
    assert windows["W05"]["Rated"] == "80" and windows["W05"]["Penalty points"] == ""
    units = {r["Unit"]: r for r in rows if r["Line"] == "Units"}
    assert units["U2"]["Name"] == "经济技术开发区派出所" and units["U2"]["Satisfaction rate %"] == "94.00"
    total = rows[-1]
    assert isinstance(doc["total"], dict)
    assert (total["Rated"], total["Satisfaction rate %"]) == (str(doc["total"]["rated"]), doc["total"]["rate_pct"])
