"""Downloads of what a list page shows: ``?format=csv`` or ``?format=xlsx`` on the page's own URL.

The page builds its tables once (``Table``: a title, column labels, rows of
cells as shown, numbers as numbers); the same rows go to the page and to the
download, so a filter in the URL filters both. CSV carries a BOM (Excel
opens UTF-8 correctly); with several tables each is preceded by its title
line and followed by a blank line. XLSX (openpyxl) has one sheet per table:
the title and period in the first row, bold column labels, widths fitted to
the text (CJK characters count double), a percentage format where asked.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import unicodedata
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from collector.timeplace import zone

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclasses.dataclass(frozen=True)
class Table:
    """One table as the page shows it. ``pct``: indexes of columns holding fractions shown as percentages."""

    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    pct: frozenset[int] = frozenset()


def wanted(request: web.Request) -> str | None:
    """The download format the URL asks for (``format=csv|xlsx``); None: the page; 400 for another."""
    fmt = request.query.get("format")
    if fmt is None or fmt == "":
        return None
    if fmt not in FORMATS:
        raise web.HTTPBadRequest(text=f"format {fmt!r}: csv or xlsx")
    return fmt


def today(timezone: str) -> str:
    """Today's date in ``timezone`` (a download of a list that is not of one month is named by it)."""
    return dt.datetime.now(tz=zone(timezone)).strftime("%Y-%m-%d")


def download_url(request: web.Request, fmt: str) -> str:
    """This page's URL with its filters and ``format=fmt``."""
    q = {k: v for k, v in request.query.items() if k != "format"}
    q["format"] = fmt
    return request.path + "?" + urlencode(q)


def _csv_value(v: Any) -> Any:
    return "" if v is None else v


def to_csv(tables: Sequence[Table]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for i, t in enumerate(tables):
        if len(tables) > 1:
            if i:
                w.writerow([])
            w.writerow([t.title])
        w.writerow(t.headers)
        for row in t.rows:
            w.writerow([_csv_value(v) if j not in t.pct else _pct_text(v) for j, v in enumerate(row)])
    return ("\ufeff" + buf.getvalue()).encode()


def _pct_text(v: Any) -> str:
    from collector.report import pct_text

    return "" if v is None else pct_text(v) + "%"


def _width(v: Any) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(v))


def _xlsx_pct(v: Any) -> float | None:
    """A rate as the fraction shown (cut to 0.01%, like the page), for a cell formatted 0.00%."""
    from collector.report.rates import pct_cut

    cut = pct_cut(v) if v is not None else None
    return None if cut is None else float(cut)


def to_xlsx(tables: Sequence[Table], period: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    for i, t in enumerate(tables):
        ws = wb.active if i == 0 else wb.create_sheet()
        assert ws is not None
        ws.title = t.title[:31]  # Excel's limit on a sheet name
        ws.append([t.title, period])
        ws["A1"].font = Font(bold=True, size=13)
        ws.append(list(t.headers))
        for c in ws[2]:
            c.font = Font(bold=True)
        for row in t.rows:
            ws.append([_xlsx_pct(v) if j in t.pct else v for j, v in enumerate(row)])
        for j in t.pct:
            for (cell,) in ws.iter_rows(min_row=3, min_col=j + 1, max_col=j + 1):
                cell.number_format = "0.00%"
        for j, header in enumerate(t.headers):
            longest = max([_width(header), *(_width(r[j]) for r in t.rows if r[j] is not None)])
            ws.column_dimensions[get_column_letter(j + 1)].width = min(60, longest + 2)
        ws.freeze_panes = "A3"
    wb.properties.title = " ".join(t.title for t in tables) + f" {period}"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def response(tables: Sequence[Table], fmt: str, name: str, period: str) -> web.Response:
    """The download of ``tables`` as ``name-period.fmt``."""
    body = to_csv(tables) if fmt == "csv" else to_xlsx(tables, period)
    filename = f"{name}-{period}.{fmt}" if period else f"{name}.{fmt}"
    return web.Response(
        body=body,
        content_type=FORMATS[fmt].split(";")[0],
        charset="utf-8" if fmt == "csv" else None,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}", "Cache-Control": "no-store"},
    )
