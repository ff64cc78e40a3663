"""Every format renders the same numbers; zh and en labels; month close and revisions."""

from __future__ import annotations

import csv
import html.parser
import io
import json
import pathlib

import openpyxl
import pytest

from collector.cli import main
from collector.report.render import LABELS, ROW_KINDS, XLSX_HEADER_ROW
from tests.report.store import Ev, build, local_ms, press, rated_presses

OCT = local_ms("2026-10-12 09:30:00")
OFFICERS = (("A1", "张三", "U1", "W1"), ("A2", "李四", "U1", "W2"), ("A3", "王五", "U2", "W3"))
WINDOWS = (("W1", "U1", "户籍1号窗"), ("W2", "U1", "户籍2号窗"), ("W3", "U2", "出入境窗"))
UNITS = (("U1", "城关派出所", None), ("U2", "出入境大厅", None))
FIELDS = ("officer", "rated", "satisfied", "unsatisfied", "rate", "band", "invites", "unsolicited", "misuse")


def store(store_url: str) -> str:
    events = (
        rated_presses(2499, 1, OCT, officer="A1", window="W1", start=0)  # 99.96%: must not show 100
        + rated_presses(19, 1, OCT, officer="A2", window="W2", start=5000)
        + rated_presses(17, 3, OCT, officer="A3", window="W3", start=6000)
        + [press(7000, OCT, 2, flags=1, officer="A3", window="W3"), Ev("D1", 7001, "invite", OCT, "A2", "W2")]
    )
    return build(store_url, events, officers=OFFICERS, windows=WINDOWS, units=UNITS)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


class Cells(html.parser.HTMLParser):
    """Officer rows of the HTML notice's first table as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "br" and self.cell is not None:  # a heading set on two lines
            self.cell += " "

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append(self.cell)
            self.cell = None


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_all_formats_same_numbers(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], lang: str
) -> None:
    db = str(store(store_url))
    base = ["report", "--db", db, "--month", "2026-10", "--lang", lang]
    data = json.loads(run(capsys, *base, "--format", "json"))
    band_label = {b: LABELS[b][0 if lang == "zh" else 1] for b in ("met", "below_target", "below_floor", "no_ratings")}
    want = [
        [
            o["officer"],
            str(o["rated"]),
            str(o["satisfied"]),
            str(o["unsatisfied"]),
            o["rate_pct"],
            band_label[o["band"]],
            str(o["invites"]),
            str(o["unsolicited"]),
            str(o["misuse"]),
        ]
        for o in data["officers"]
    ]
    assert [w[4] for w in want] == ["99.96", "95.00", "85.00"]
    assert [o["band"] for o in data["officers"]] == ["below_target", "below_target", "below_floor"]

    def pick(header: list[str], rows: list[list[str]], fields: tuple[str, ...] | list[str] = FIELDS) -> list[list[str]]:
        idx = [header.index(LABELS[f][0 if lang == "zh" else 1]) for f in fields]
        return [[r[i] for i in idx] for r in rows]

    text = run(capsys, *base, "--format", "csv").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    col = {key: rows[0].index(LABELS[key][0 if lang == "zh" else 1]) for key in ("row_kind", "window", "name", "rated")}
    by_kind = {k: [r for r in rows[1:] if r[col["row_kind"]] == LABELS[k][0 if lang == "zh" else 1]] for k in ROW_KINDS}
    assert pick(rows[0], by_kind["officers"]) == want
    # the windows, the units and the total travel in the same CSV, each line named by its kind, with the month
    assert {r[col["window"]] for r in by_kind["windows"]} == {"W1", "W2", "W3"}
    assert [r[col["name"]] for r in by_kind["units"]] == ["城关派出所", "出入境大厅"]
    assert [r[col["rated"]] for r in by_kind["total"]] == [str(data["total"]["rated"])] == ["2540"]
    assert {r[-1] for r in rows[1:]} == {"2026-10"}

    page = run(capsys, *base, "--format", "html")
    assert "http://" not in page and "https://" not in page  # self-contained
    parser = Cells()
    parser.feed(page)
    table = parser.tables[0]
    # the notice leaves out a column that is zero on every line (misuse here), and says so under the table
    shown = [f for f in FIELDS if f != "misuse"]
    assert LABELS["misuse"][0 if lang == "zh" else 1] not in table[0]
    assert pick(table[0], table[1:], shown) == [w[:-1] for w in want]
    assert LABELS["misuse"][0 if lang == "zh" else 1] in page.split("</table>")[1].split("<h2")[0]

    out = tmp_path / "r.xlsx"
    assert main([*base, "--format", "xlsx", "-o", str(out)]) == 0
    sheet = openpyxl.load_workbook(out).worksheets[0]
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[1][:2] == [LABELS["month"][0 if lang == "zh" else 1], "2026-10"]  # the month in a cell at the top
    header = [str(h) for h in values[XLSX_HEADER_ROW - 1]]
    for row, w in zip(values[XLSX_HEADER_ROW:-2], want, strict=True):
        rated = row[header.index(LABELS["rated"][0 if lang == "zh" else 1])]
        rate = row[header.index(LABELS["rate"][0 if lang == "zh" else 1])]
        assert isinstance(rated, int) and str(rated) == w[1]
        assert isinstance(rate, float) and f"{rate * 100:.2f}" == w[4]
    assert (
        sheet.cell(XLSX_HEADER_ROW + 1, header.index(LABELS["rate"][0 if lang == "zh" else 1]) + 1).number_format
        == "0.00%"
    )

    table_text = run(capsys, *base, "--format", "table")
    assert "\x1b[" not in table_text  # not a TTY: no colour
    for w in want:
        assert w[4] in table_text and w[5] in table_text
    title = LABELS["title"][0 if lang == "zh" else 1]
    assert title in table_text and title in page


def test_unit_filter_and_windows(store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(store(store_url))
    data = json.loads(run(capsys, "report", "--db", db, "--month", "2026-10", "--unit", "U2", "--format", "json"))
    assert [o["officer"] for o in data["officers"]] == ["A3"]
    assert [w["window"] for w in data["windows"]] == ["W3"]
    assert data["units"][0]["unit"] == "U2" and data["units"][0]["rated"] == 20
    assert data["total"]["rated"] == 20 and data["total"]["unsolicited"] == 1


def test_month_close_freezes_and_late_events_are_a_revision(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from collector.store import connect
    from tests.report.store import ingest

    path = store(store_url)
    db = str(path)
    assert "2026-10" in run(capsys, "month", "close", "--db", db, "2026-10")
    assert main(["month", "close", "--db", db, "2026-10"]) == 2
    assert "already closed" in capsys.readouterr().err
    assert main(["month", "close", "--db", db, "2099-01"]) == 2
    assert "not over yet" in capsys.readouterr().err

    async def late() -> None:
        async with connect(path) as conn:
            await ingest(conn, rated_presses(0, 2, OCT, officer="A2", window="W2", start=9000))

    asyncio.run(late())
    data = json.loads(run(capsys, "report", "--db", db, "--month", "2026-10", "--format", "json"))
    assert data["closed"] is True and data["late_events"] == 2
    a2 = next(o for o in data["officers"] if o["officer"] == "A2")
    assert (a2["rated"], a2["satisfied"], a2["band"]) == (20, 19, "below_target")  # frozen
    assert a2["revision"] == {
        "late_events": 2,
        "rated": 22,
        "satisfied": 19,
        "rate": 19 / 22,
        "rate_pct": "86.36",
        "band": "below_floor",
    }
    a1 = next(o for o in data["officers"] if o["officer"] == "A1")
    assert a1["revision"] is None
    table = run(capsys, "report", "--db", db, "--month", "2026-10", "--lang", "en")
    assert "Revision (changes since the close, not merged): officers revised 1, Late events 2" in table
    assert "86.36" in table


def test_table_colours_bands_on_a_terminal(store_url: str, tmp_path: pathlib.Path) -> None:
    import asyncio

    from collector.report.monthly import monthly_report
    from collector.report.policy import Policy
    from collector.report.render import render
    from collector.store import connect

    path = store(store_url)

    async def report() -> bytes:
        async with connect(path) as db:
            r = await monthly_report(db, "2026-10", Policy())
        return render(r, Policy(), "table", "en", colour=True)

    text = asyncio.run(report()).decode()
    assert "\x1b[33m" in text and "\x1b[1;31m" in text  # below target yellow, below floor red
