"""Downloads of the monthly table: CSV, XLSX and a printable HTML notice.

``Renderer`` is the interface the download buttons call: rows in, bytes out.
The report module's renderers (when merged) replace ``RENDERERS`` entries;
until then CSV and a minimal XLSX are written with the standard library.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

from collector.web.data import OfficerMonth
from collector.web.i18n import label

COLUMNS = ("badge", "name", "unit", "window", "rated", "satisfied", "rate", "band", "invites", "unrated", "unsolicited")


def _cells(m: OfficerMonth, lang: str) -> list[str | int]:
    return [
        m.officer_id,
        m.name,
        m.unit_name,
        m.window_id,
        m.rated,
        m.satisfied,
        m.rate_percent,
        label(f"band_{m.band}", lang),
        m.invites,
        m.unrated,
        m.unsolicited,
    ]


def render_csv(rows: Sequence[OfficerMonth], month: str, lang: str) -> bytes:
    """UTF-8 with BOM so Excel on Chinese Windows opens it right."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([label(c, lang) for c in COLUMNS])
    for m in rows:
        w.writerow(_cells(m, lang))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _col(i: int) -> str:
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(65 + r) + name
    return name


def render_xlsx(rows: Sequence[OfficerMonth], month: str, lang: str) -> bytes:
    """A one-sheet Office Open XML workbook (inline strings, numbers as numbers)."""
    header: list[str | int] = [label(c, lang) for c in COLUMNS]
    table = [header] + [_cells(m, lang) for m in rows]
    xml_rows = []
    for r, cells in enumerate(table, start=1):
        out = []
        for c, v in enumerate(cells):
            ref = f"{_col(c)}{r}"
            if isinstance(v, int):
                out.append(f'<c r="{ref}"><v>{v}</v></c>')
            else:
                out.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(v))}</t></is></c>')
        xml_rows.append(f'<row r="{r}">{"".join(out)}</row>')
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel_ns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet {ns}><sheetData>{"".join(xml_rows)}</sheetData></worksheet>'
    )
    files = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8"?><workbook {ns} {rel_ns}><sheets>'
        f'<sheet name="{escape(month)}" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def render_html(rows: Sequence[OfficerMonth], month: str, lang: str) -> bytes:
    """A printable notice (月通报): one table, no scripts, no external assets."""
    head = "".join(f"<th>{escape(label(c, lang))}</th>" for c in COLUMNS)
    body = "".join(
        f'<tr class="{m.band}">' + "".join(f"<td>{escape(str(v))}</td>" for v in _cells(m, lang)) + "</tr>"
        for m in rows
    )
    title = f"{escape(label('notice', lang))} {escape(month)}"
    css = (
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
        ".below_floor{background:#fdd}.below_target{background:#ffe9c6}"
    )
    html = (
        f'<!doctype html><html lang="{"en" if lang == "en" else "zh-CN"}"><meta charset="utf-8"><title>{title}</title>'
        f"<style>{css}</style><h1>{title}</h1><table><tr>{head}</tr>{body}</table></html>"
    )
    return html.encode("utf-8")


Renderer = Callable[[Sequence[OfficerMonth], str, str], bytes]
RENDERERS: dict[str, tuple[Renderer, str]] = {
    "csv": (render_csv, "text/csv; charset=utf-8"),
    "xlsx": (render_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "html": (render_html, "text/html; charset=utf-8"),
}
