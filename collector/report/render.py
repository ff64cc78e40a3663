"""Rendering a monthly report or a year's ledger: table, CSV, JSON, XLSX, HTML; zh-CN and en.

Every format shows the same numbers: percentages are cut to two decimals
(``pct_text``), never rounded up, so no output claims 100% for less.
JSON is the stable machine format (``docs/report-json.md``).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from collector.errors import UsageError
from collector.report.glossary import TERMS
from collector.report.ledger import Action, Ledger, flag_words, year_rate_band
from collector.report.monthly import Line, MonthlyReport
from collector.report.notice import Notice, bare_notice
from collector.report.officer_stats import REVIEW_WORDS
from collector.report.policy import Policy
from collector.report.rates import pct_cut, pct_text

FORMATS = ("table", "csv", "json", "xlsx", "html")
LANGS = ("zh", "en")
JSON_FORMAT = "evalbox.report.monthly/1"
LEDGER_JSON_FORMAT = "evalbox.report.ledger/1"


def _pct(key: str) -> tuple[str, str]:
    """A rate's column heading: the glossary's word with the percent sign."""
    zh, en = TERMS[key]
    return f"{zh}%", f"{en} %"


# The report's labels: the glossary's words (``collector.report.glossary``) for everything it
# names, and the headings and titles only the report uses.
LABELS: dict[str, tuple[str, str]] = {
    **TERMS,
    "officer": ("警号", "Officer"),
    "name": ("姓名", "Name"),
    "gname": ("名称", "Name"),
    "unit": ("单位", "Unit"),
    "window": ("窗口", "Window"),
    "rate": _pct("rate"),
    "wilson_low": _pct("wilson_low"),
    "wilson_high": _pct("wilson_high"),
    "no_rating_rate": _pct("no_rating_rate"),
    "revised_rate": _pct("revised_rate"),
    "ci": ("置信区间%", "95% CI %"),
    "revised": (
        f"{TERMS['revised_rate'][0]}% / {TERMS['revised_band'][0]}",
        f"{TERMS['revised_rate'][1]} % / {TERMS['revised_band'][1]}",
    ),
    "reminders": TERMS["reminder"],
    "levels": ("各级计数", "Level counts"),
    # standings
    "top": ("满意", "top"),
    "bottom": ("不满意", "bottom"),
    # titles
    "title": ("窗口民警满意率月通报", "Monthly satisfaction notice"),
    "officers": ("民警", "Officers"),
    "windows": ("窗口", "Windows"),
    "units": ("单位", "Units"),
    "total": ("合计", "Total"),
    "row_kind": ("类别", "Line"),
    "nobody": ("未签到按键", "Presses with nobody signed in"),
    "revised_lines": ("有修正的民警", "officers revised"),
    "timezone": ("时区", "Time zone"),
    "policy": ("标准", "Policy"),
    "ledger": ("年度奖惩台账", "Sanctions ledger"),
    "month": ("月份", "Month"),
    "measure": ("措施", "Measure"),
    "reason": ("原因", "Reason"),
    "detail": ("说明", "Detail"),
    "points": TERMS["penalty_points"],
    "candidates": ("年度优秀窗口民警候选", "Year-end excellent officer candidates"),
    "no_honours": ("取消评优", "No honours"),
    "escalation": ("上追责任: 单位领导谈话, 分管局领导打招呼", "Escalation: unit leader talk, bureau leader reminder"),
    "reminders_r": ("打招呼累计", "Reminders reached"),
    "talks": ("谈话累计", "Talks reached"),
    "warnings": ("告诫累计", "Warnings reached"),
    "complaints": TERMS["complaint"],
    "measure_for": ("对象", "For"),  # whom a ledger measure is for (not the policy's target rate)
    "officer_flag": ("民警月度核查标记", "Officer-month flag"),
    "target_officer": ("民警本人", "the officer"),
    "target_unit_leader": ("单位领导", "unit leader"),
    "target_bureau_leader": ("分管局领导", "bureau leader"),
}

OFFICER_COLUMNS = (
    "officer",
    "name",
    "unit",
    "window",
    "rated",
    "satisfied",
    "unsatisfied",
    "rate",
    "band",
    "wilson_low",
    "wilson_high",
    "bad",
    "invites",
    "unrated",
    "no_rating_rate",
    "unsolicited",
    "misuse",
    "penalty_points",
    "reminders",
    "rank",
    "standing",
    "late_events",
    "revised_rate",
    "revised_band",
    "levels",
)
GROUP_COLUMNS = tuple(
    "gname" if c == "name" else c
    for c in OFFICER_COLUMNS
    if c not in ("officer", "window", "penalty_points", "reminders")
)


def label(key: str, lang: str) -> str:
    zh, en = LABELS[key]
    return zh if lang == "zh" else en


def _float(x: float | None) -> str:
    """A proportion as a percentage cut (not rounded) to two decimals."""
    if x is None:
        return ""
    whole, part = divmod(math.floor(x * 10000), 100)
    return f"{whole}.{part:02d}"


def levels_text(levels: dict[int, tuple[int, ...]]) -> str:
    """``'5:10/3/1/0/0'`` per scale, best level first; scales joined by ``'; '``."""
    return "; ".join(f"{s}:" + "/".join(str(c) for c in counts) for s, counts in levels.items())


def cell(line: Line, col: str, lang: str) -> str:
    """The text of one column of one line (what table, CSV and HTML show)."""
    rev = line.revision
    values: dict[str, Any] = {
        "officer": line.key,
        "gname": line.name,
        "window": line.window,
        "rate": pct_text(line.rate),
        "band": label(line.band, lang),
        "wilson_low": _float(line.wilson[0]) if line.wilson else "",
        "wilson_high": _float(line.wilson[1]) if line.wilson else "",
        "no_rating_rate": pct_text(line.no_rating_rate) if line.no_rating_rate is not None else "",
        "rank": line.rank or "",
        "standing": label(line.standing, lang) if line.standing else "",
        "late_events": rev.late_events if rev else "",
        "revised_rate": pct_text(rev.rate) if rev else "",
        "revised_band": label(rev.band, lang) if rev else "",
        "levels": levels_text(line.levels),
    }
    if col in values:
        return str(values[col])
    return str(getattr(line, col))


def line_json(line: Line, id_key: str) -> dict[str, Any]:
    rev = line.revision
    out: dict[str, Any] = {id_key: line.key, "name": line.name}
    if id_key != "unit":
        out["unit"] = line.unit
    if id_key == "officer":
        out["window"] = line.window
    out |= {
        "rated": line.rated,
        "satisfied": line.satisfied,
        "unsatisfied": line.unsatisfied,
        "bad": line.bad,
        "levels": {str(s): list(c) for s, c in line.levels.items()},
        "rate": None if line.rate is None else float(line.rate),
        "rate_pct": None if line.rate is None else pct_text(line.rate),
        "wilson_low": line.wilson[0] if line.wilson else None,
        "wilson_high": line.wilson[1] if line.wilson else None,
        "band": line.band,
        "invites": line.invites,
        "unrated": line.unrated,
        "no_rating_rate": None if line.no_rating_rate is None else float(line.no_rating_rate),
        "unsolicited": line.unsolicited,
        "misuse": line.misuse,
        "penalty_points": line.penalty_points,
        "reminders": line.reminders,
        "rank": line.rank,
        "standing": line.standing,
        "revision": None
        if rev is None
        else {
            "late_events": rev.late_events,
            "rated": rev.rated,
            "satisfied": rev.satisfied,
            "rate": None if rev.rate is None else float(rev.rate),
            "rate_pct": None if rev.rate is None else pct_text(rev.rate),
            "band": rev.band,
        },
    }
    return out


def _with_checks(out: dict[str, Any], report: MonthlyReport) -> dict[str, Any]:
    """An officer's ``flags`` (officer-month checks, explained; never part of the rate) and ``check`` status."""
    check = report.officer_checks.get(out["officer"])
    out["flags"] = check["flags"] if check else []
    out["check"] = None if check is None else {k: v for k, v in check.items() if k != "flags"}
    return out


def report_json(report: MonthlyReport, policy: Policy | None = None) -> dict[str, Any]:
    """The JSON document; the policy shown is the report's own (a closed month's: the one at closing)."""
    policy = report.policy
    return {
        "format": JSON_FORMAT,
        "month": report.month,
        "timezone": report.timezone,
        "unit": report.unit,
        "closed": report.closed_ms is not None,
        "closed_ms": report.closed_ms,
        "digest": report.digest,
        "events_pruned": report.pruned,
        "late_events": report.late_events,
        "revisions": report.revisions,
        "policy": {
            "target": float(policy.target),
            "floor": float(policy.floor),
            "penalty_points": policy.penalty_points,
            "count_unsolicited": policy.count_unsolicited,
            "count_misuse": policy.count_misuse,
            "min_sample": policy.min_sample,
            "top_share": float(policy.top_share),
            "bottom_share": float(policy.bottom_share),
        },
        "officers": [_with_checks(line_json(ln, "officer"), report) for ln in report.officers],
        "windows": [line_json(ln, "window") for ln in report.windows],
        "units": [line_json(ln, "unit") for ln in report.units],
        "nobody_signed_in": line_json(report.nobody, "officer"),
        "total": line_json(report.total, "unit"),
        "set_aside": [
            {
                "officer": b.officer,
                "window": b.window,
                "kind": b.kind,
                "level": b.level,
                "scale": b.scale,
                "n": b.n,
                "why": b.why,
                "events": [{"box": d, "boot": bt, "seq": sq} for d, bt, sq in b.rows],
            }
            for b in report.set_aside
        ],
    }


def dumps_lines(doc: dict[str, Any]) -> str:
    """JSON with one key per line and one list item per line (fast: the C encoder does each piece)."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))

    parts = []
    for key, value in doc.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = ",\n".join(f"    {one(v)}" for v in value)
            parts.append(f"  {one(key)}: [\n{items}\n  ]")
        else:
            parts.append(f"  {one(key)}: {one(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def render_json(report: MonthlyReport, policy: Policy, lang: str) -> bytes:
    return dumps_lines(report_json(report, policy)).encode()


# Rows beside the officers' in the CSV and the workbook: what each line of the report is.
ROW_KINDS = ("officers", "windows", "units", "nobody", "total")
EXPORT_COLUMNS = (*OFFICER_COLUMNS, "row_kind", "month")
OFFICER_ONLY = ("officer", "penalty_points", "reminders")  # blank on a window's, a unit's or a total line


def export_lines(report: MonthlyReport) -> list[tuple[str, Line]]:
    """Every line of the report with its kind: officers, windows, units, nobody signed in, the total."""
    return [
        *(("officers", ln) for ln in report.officers),
        *(("windows", ln) for ln in report.windows),
        *(("units", ln) for ln in report.units),
        ("nobody", report.nobody),
        ("total", report.total),
    ]


def left_empty(kind: str, col: str) -> bool:
    """Whether a line of ``kind`` leaves ``col`` empty: the officer's own columns on a window's or unit's line,
    the names on the total lines."""
    return (kind != "officers" and col in OFFICER_ONLY) or (
        kind in ("nobody", "total") and col in ("name", "gname", "unit", "window")
    )


def export_cell(kind: str, line: Line, col: str, lang: str) -> str:
    """A CSV cell: the officer columns of any line (a window's id under 窗口, a unit's under 单位)."""
    if col == "row_kind":
        return label(kind, lang)
    if left_empty(kind, col):
        return ""
    if kind == "windows" and col == "window":
        return line.key
    return cell(line, "gname" if col == "name" else col, lang)


def render_csv(report: MonthlyReport, policy: Policy, lang: str) -> bytes:
    """One table: the officers, then the windows, the units, the presses with nobody signed in and the total,
    each line named by its kind (类别) and carrying the month."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([label(c, lang) for c in EXPORT_COLUMNS])
    for kind, ln in export_lines(report):
        w.writerow([report.month if c == "month" else export_cell(kind, ln, c, lang) for c in EXPORT_COLUMNS])
    return ("\ufeff" + buf.getvalue()).encode()  # BOM: Excel opens UTF-8 CSV correctly


def _xlsx_value(line: Line, col: str, lang: str) -> Any:
    """Numbers as numbers; rates as fractions cut like the text (cell format 0.00%)."""
    rev = line.revision
    numeric: dict[str, Any] = {
        "rate": pct_cut(line.rate),
        "wilson_low": line.wilson[0] if line.wilson else None,
        "wilson_high": line.wilson[1] if line.wilson else None,
        "no_rating_rate": pct_cut(line.no_rating_rate),
        "rank": line.rank,
        "late_events": rev.late_events if rev else None,
        "revised_rate": pct_cut(rev.rate) if rev else None,
    }
    if col in numeric:
        v = numeric[col]
        return None if v is None else float(v)
    if col in INT_COLUMNS:
        return int(getattr(line, col))
    return cell(line, col, lang)


PCT_COLUMNS = {"rate", "wilson_low", "wilson_high", "no_rating_rate", "revised_rate"}
INT_COLUMNS = {"rated", "satisfied", "unsatisfied", "bad", "invites", "unrated", "unsolicited", "misuse"}
INT_COLUMNS |= {"penalty_points", "reminders"}
XLSX_HEADER_ROW = 3  # rows 1-2: the title, the month and its state; then the header, frozen with them


def xlsx_sheets(report: MonthlyReport) -> list[tuple[str, list[tuple[str, Line]], tuple[str, ...]]]:
    """The workbook's sheets: (name key, (kind, line) rows, columns); each ends with its total line."""
    tail = [("nobody", report.nobody), ("total", report.total)]
    return [
        ("officers", [("officers", ln) for ln in report.officers] + tail, OFFICER_COLUMNS),
        ("windows", [("windows", ln) for ln in report.windows] + tail[1:], ("window", *GROUP_COLUMNS)),
        (
            "units",
            [("units", ln) for ln in report.units] + tail[1:],
            ("unit", *[c for c in GROUP_COLUMNS if c != "unit"]),
        ),
    ]


def _xlsx_row(kind: str, line: Line, cols: tuple[str, ...], lang: str) -> list[Any]:
    row: list[Any] = []
    for i, c in enumerate(cols):
        if i == 0 and kind in ("nobody", "total"):
            row.append(label(kind, lang))  # the total line says what it is in its first cell
        elif left_empty(kind, c):
            row.append(None)
        elif i == 0 and c in ("window", "unit"):
            row.append(line.key)
        else:
            row.append(_xlsx_value(line, c, lang))
    return row


def render_xlsx(report: MonthlyReport, policy: Policy, lang: str) -> bytes:
    """Three sheets (officers, windows, units); each: the title and the month at the top, a frozen header,
    numbers as numbers (rates 0.00%), the total line at the bottom, columns as wide as their text."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    state = label("closed", lang) if report.closed_ms is not None else label("open", lang)
    meta: list[Any] = [label("month", lang), report.month, label("timezone", lang), report.timezone, state]
    if report.unit:
        meta += [label("unit", lang), report.unit]
    for n, (key, rows, cols) in enumerate(xlsx_sheets(report)):
        ws = wb.active if n == 0 else wb.create_sheet()
        assert ws is not None
        ws.title = label(key, lang)
        ws.append([f"{report.month} {label('title', lang)}"])
        ws.append(meta)
        ws.append([label(c, lang) for c in cols])
        ws["A1"].font = Font(bold=True, size=14)
        for c in (*ws[2], *ws[XLSX_HEADER_ROW]):
            c.font = Font(bold=True)
        for kind, ln in rows:
            ws.append(_xlsx_row(kind, ln, cols, lang))
        for c in ws[ws.max_row]:
            c.font = Font(bold=True)
        for idx, c in enumerate(cols, start=1):
            letter = get_column_letter(idx)
            texts = [ws.cell(r, idx).value for r in range(XLSX_HEADER_ROW, ws.max_row + 1)]
            shown = [
                f"{v:.2%}" if c in PCT_COLUMNS and isinstance(v, float) else str(v) for v in texts if v is not None
            ]
            ws.column_dimensions[letter].width = min(40, max(6, *(_width(t) + 2 for t in shown)))
            if c in PCT_COLUMNS:
                for (cl,) in ws.iter_rows(min_row=XLSX_HEADER_ROW + 1, min_col=idx, max_col=idx):
                    cl.number_format = "0.00%"
        ws.freeze_panes = ws.cell(XLSX_HEADER_ROW + 1, 3 if key == "officers" else 2).coordinate
    wb.properties.title = f"{label('title', lang)} {report.month}"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# -- terminal table ---------------------------------------------------------

COLOURS = {"met": "32", "below_target": "33", "below_floor": "1;31", "no_ratings": "2"}
TABLE_COLUMNS = (
    "officer",
    "name",
    "unit",
    "window",
    "rated",
    "satisfied",
    "rate",
    "band",
    "wilson_low",
    "invites",
    "no_rating_rate",
    "unsolicited",
    "misuse",
    "penalty_points",
    "rank",
    "standing",
    "late_events",
    "revised_rate",
    "revised_band",
)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _is_number(text: str) -> bool:
    return text.replace(".", "").replace("-", "").isdigit() or text in ("", "—")


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


def text_table(header: list[str], rows: list[list[str]], colour: list[str | None] | None = None) -> str:
    widths = [max([_width(h)] + [_width(r[i]) for r in rows]) for i, h in enumerate(header)]
    numeric = [
        all(r[i].replace(".", "").replace("-", "").isdigit() or r[i] in ("", "—") for r in rows)
        for i in range(len(header))
    ]
    out = ["  ".join(_pad(h, widths[i], numeric[i]) for i, h in enumerate(header)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for n, r in enumerate(rows):
        text = "  ".join(_pad(v, widths[i], numeric[i]) for i, v in enumerate(r)).rstrip()
        code = colour[n] if colour else None
        out.append(f"\x1b[{code}m{text}\x1b[0m" if code else text)
    return "\n".join(out)


def revision_text(report: MonthlyReport, lang: str) -> str:
    """The closed month's revision line: how many lines would differ now, how many events arrived late."""
    return (
        f"{label('revision', lang)}: {label('revised_lines', lang)} {report.revisions}, "
        f"{label('late_events', lang)} {report.late_events}"
    )


def render_table(report: MonthlyReport, policy: Policy, lang: str, *, colour: bool = False) -> bytes:
    state = label("closed", lang) if report.closed_ms is not None else label("open", lang)
    head = f"{label('title', lang)} {report.month} ({label('timezone', lang)} {report.timezone}, {state})"
    if report.unit:
        head += f" — {label('unit', lang)} {report.unit}"
    parts = [head, *digest_lines(report, lang), ""]
    cols = list(TABLE_COLUMNS)
    if not (report.late_events or report.revisions):
        cols = [c for c in cols if c not in ("late_events", "revised_rate", "revised_band")]
    for key, lines, first in (
        ("officers", report.officers, "officer"),
        ("windows", report.windows, "window"),
        ("units", report.units, "unit"),
    ):
        use = [c for c in cols if key == "officers" or c not in ("officer", "window", "penalty_points")]
        if key != "officers":
            use = [first] + ["gname" if c == "name" else c for c in use if c not in (first, "unit")]
        rows = [[ln.key if c == first else cell(ln, c, lang) for c in use] for ln in lines]
        codes: list[str | None] = [COLOURS[ln.band] if colour else None for ln in lines]
        parts += [f"== {label(key, lang)} ==", text_table([label(c, lang) for c in use], rows, codes), ""]
    t = report.total
    parts.append(
        f"{label('total', lang)}: {label('rated', lang)} {t.rated}, {label('satisfied', lang)} {t.satisfied}, "
        f"{label('rate', lang)} {pct_text(t.rate)}, {label('band', lang)} {label(t.band, lang)}; "
        f"{label('nobody', lang)}: {report.nobody.rated}"
    )
    if report.late_events or report.revisions:
        parts.append(revision_text(report, lang))
    parts += [b.text() for b in report.set_aside]
    return ("\n".join(parts) + "\n").encode()


def digest_lines(report: MonthlyReport, lang: str) -> list[str]:
    """A closed month's digest (and whether its raw events were pruned), to check a printed copy against the store."""
    if report.digest is None:
        return []
    pruned = [label("pruned", lang)] if report.pruned else []
    return [*pruned, f"{label('digest', lang)} SHA-256: {report.digest}"]


# -- printable HTML notice (月通报) ------------------------------------------

CSS = """
@page{size:A4 landscape;margin:12mm 8mm 14mm;
@bottom-left{content:"%(title)s";font-size:7.5pt;color:#555}
@bottom-right{content:%(pages)s;font-size:7.5pt;color:#555}}
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif;
font-size:9pt;line-height:1.35;color:#111;margin:0}
@media screen{body{max-width:297mm;margin:1.5em auto;padding:0 1em}}
h1{text-align:center;font-size:17pt;margin:0 0 .3em} h2{font-size:11pt;margin:1.1em 0 .35em;break-after:avoid}
.head{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:.1em 1em;margin:0 0 .6em}
.head dt{color:#444} .head dd{margin:0}
table{border-collapse:collapse;width:100%%;font-size:8pt} thead{display:table-header-group}
th,td{border:1px solid #888;padding:.15em .2em} th{background:#eee;font-weight:600;white-space:nowrap}
table.dense{font-size:7.5pt} table.dense th{font-size:7pt}
td.t{white-space:nowrap} td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.b{white-space:nowrap} tr{break-inside:avoid} tfoot td{font-weight:600;background:#f6f6f6}
tr.met td.b{color:#176b21} tr.below_target td.b{color:#8a5a00} tr.below_floor td.b{color:#b00020;font-weight:bold}
tr.no_ratings td{color:#777} .note{color:#555;font-size:8pt;margin:.2em 0 0}
.sanctions td.m{white-space:normal}
.sign{break-inside:avoid;display:flex;justify-content:flex-end;gap:2.5em;margin-top:2em;align-items:center}
.sign p{margin:.5em 0} .sign .line{display:inline-block;min-width:10em;border-bottom:1px solid #111}
.seal{width:38mm;height:38mm;border:1px dashed #999;border-radius:50%%;display:flex;align-items:center;
justify-content:center;color:#999}
"""

# Every page's footer: the page's number and the count of pages (CSS generated content).
PAGE_NUMBERS = ('"第 " counter(page) " 页，共 " counter(pages) " 页"', '"Page " counter(page) " of " counter(pages)')

NOTICE_WORDS: dict[str, tuple[str, str]] = {
    "issuer": ("发文单位", "Issued by"),
    "period": ("统计期间", "Period"),
    "issued": ("签发日期", "Date of issue"),
    "scope": ("范围", "Scope"),
    "state": ("状态", "State"),
    "all_units": ("全部单位", "All units"),
    "sanctions": ("本月奖惩措施", "Sanctions this month"),
    "no_sanctions": (
        "本月无民警低于底线，亦无其他措施。",
        "No officer fell below the floor this month and no other measure applies.",
    ),
    "measures": ("本月措施", "Measures this month"),
    "year_so_far": ("本年累计", "Year so far"),
    "stage": ("所处阶段", "Stage"),
    "escalated": ("已上追（%s）", "Escalated to the leaders (%s)"),
    "to_talk": ("再 %d 次打招呼即谈话", "%d more reminder(s) bring a talk"),
    "signer": ("签发人", "Signed by"),
    "date": ("日期", "Date"),
    "seal": ("盖章", "Seal"),
    "omitted": ("各行全为零或空的列从略：", "Left out, zero or empty on every line: "),
    "sanctions_note": (
        "措施依据年度奖惩台账（evalbox report --year），规则见评价政策。",
        "Measures as the year's sanctions ledger gives them (evalbox report --year); rules in the rating policy.",
    ),
}


def word(key: str, lang: str) -> str:
    zh, en = NOTICE_WORDS[key]
    return en if lang == "en" else zh


def day_text(iso: str, lang: str) -> str:
    """``2026-10-31`` as a Chinese document writes it (2026年10月31日); ISO in English."""
    if not iso or lang == "en":
        return iso
    y, m, d = iso.split("-")
    return f"{int(y)}年{int(m)}月{int(d)}日"


# The notice's tables: names where the CSV has ids, the interval in one column, rank and standing in one;
# OPTIONAL columns are left out when zero or empty on every line (the revision ones unless a revision shows).
NOTICE_OFFICER_COLUMNS = (
    "officer", "name", "unit", "window", "rated", "satisfied", "unsatisfied", "rate", "band", "ci", "bad",
    "invites", "unrated", "no_rating_rate", "unsolicited", "misuse", "penalty_points", "rank",
    "late_events", "revised",
)  # fmt: skip
NOTICE_GROUP_COLUMNS = tuple(
    "gname" if c == "name" else c for c in NOTICE_OFFICER_COLUMNS if c not in ("officer", "window", "penalty_points")
)
DENSE_COLUMNS = 17  # more columns than this: the table's type a size smaller
OPTIONAL = ("unsolicited", "misuse", "penalty_points", "rank", "late_events", "revised")
REVISION_COLUMNS = ("late_events", "revised")
TEXT_COLUMNS = ("officer", "name", "gname", "unit", "window", "rank")


def th_text(text: str) -> str:
    """A heading on at most two lines: a long one with spaces is broken at the space nearest its middle."""
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if len(text) <= 8 or not spaces:
        return html.escape(text)
    cut = min(spaces, key=lambda i: abs(2 * i - len(text)))
    return f"{html.escape(text[:cut])}<br>{html.escape(text[cut + 1 :])}"


def notice_cell(line: Line, col: str, lang: str, names: dict[str, dict[str, str]]) -> str:
    """One cell of the notice: unit and window by name, the 95% interval as ``low–high``, rank with standing."""
    if col in ("unit", "window"):
        key = line.unit if col == "unit" else line.window
        return names[col].get(key) or key
    if col == "ci":
        return f"{_float(line.wilson[0])}–{_float(line.wilson[1])}" if line.wilson else ""
    if col == "revised":  # the revised rate and band in one column
        return " ".join(x for x in (cell(line, "revised_rate", lang), cell(line, "revised_band", lang)) if x)
    if col == "rank":
        return " ".join(x for x in (str(line.rank or ""), label(line.standing, lang) if line.standing else "") if x)
    return cell(line, col, lang)


def notice_columns(
    lines: list[Line], cols: tuple[str, ...], lang: str, names: dict[str, dict[str, str]]
) -> tuple[tuple[str, ...], list[str]]:
    """The columns a table of the notice keeps, and the optional ones it leaves out (all zero or empty)."""
    keep, left_out = [], []
    for c in cols:
        empty = c in OPTIONAL and all(notice_cell(ln, c, lang, names) in ("", "0") for ln in lines)
        if c == "unit" and len({ln.unit for ln in lines}) <= 1:
            empty = True  # one unit: the head and the units table name it
        if not empty:
            keep.append(c)
        elif c not in REVISION_COLUMNS and c != "unit":
            left_out.append(c)
    return tuple(keep), left_out


def _notice_table(
    lines: list[Line], cols: tuple[str, ...], lang: str, names: dict[str, dict[str, str]], total: Line | None = None
) -> str:
    cols, left_out = notice_columns(lines, cols, lang, names)
    head = "".join(f'<th data-col="{c}">{th_text(label(c, lang))}</th>' for c in cols)

    def row(ln: Line, first: str | None = None) -> str:
        tds = []
        for i, c in enumerate(cols):
            text = (
                first
                if first is not None and i == 0
                else ""
                if first is not None and c in TEXT_COLUMNS
                else notice_cell(ln, c, lang, names)
            )
            cls = "b" if c in ("band", "revised") else "t" if c in TEXT_COLUMNS else "n"
            tds.append(f'<td class="{cls}" data-col="{c}">{html.escape(text)}</td>')
        return f'<tr class="{ln.band}">{"".join(tds)}</tr>'

    foot = f"<tfoot>{row(total, label('total', lang))}</tfoot>" if total is not None else ""
    note = ""
    if left_out:
        note = f'<p class="note">{html.escape(word("omitted", lang) + "、".join(label(c, lang) for c in left_out))}</p>'
    dense = ' class="dense"' if len(cols) > DENSE_COLUMNS else ""  # a smaller type, so the widest table still fits
    body = "".join(row(ln) for ln in lines)
    return f"<table{dense}><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>{note}"


FLAG_WORDS = {
    "heading": ("民警月度核查（标记不改变满意率）", "Officer-month checks (a flag never changes a rate)"),
    **REVIEW_WORDS,
}


def _html_officer_flags(report: MonthlyReport, lang: str) -> list[str]:
    """The notice's section of flagged officers in scope: each flag in words, and the review if any."""
    en = lang == "en"
    names = {ln.key: ln.name for ln in report.officers}
    items = []
    for officer in sorted(names):
        check = report.officer_checks.get(officer)
        if not check or not check["flags"]:
            continue
        review = check.get("review")
        state = FLAG_WORDS[review["decision"] if review else "unreviewed"][en]
        if review:
            state += f" — {review['note']} ({review['by']})"
        flags = "".join(f"<li>{html.escape(f['explain_en' if en else 'explain_zh'])}</li>" for f in check["flags"])
        items.append(
            f'<li class="officer-flag" data-officer="{html.escape(officer)}">'
            f"<b>{html.escape(names[officer] or officer)} ({html.escape(officer)})</b> · {html.escape(state)}"
            f"<ul>{flags}</ul></li>"
        )
    if not items:
        return []
    return [f"<h2>{html.escape(FLAG_WORDS['heading'][en])}</h2>", f"<ul>{''.join(items)}</ul>"]


def notice_names(report: MonthlyReport) -> dict[str, dict[str, str]]:
    """Unit and window names by id, as the report's own lines give them."""
    return {"unit": {u.key: u.name for u in report.units}, "window": {w.key: w.name for w in report.windows}}


def notice_header(report: MonthlyReport, notice: Notice, lang: str) -> list[tuple[str, str]]:
    """The notice's head under the title, one (label, text) pair a line: issuer, period, date of issue,
    scope, state, policy and the month's total. Everything the head says is assembled here."""
    policy = report.policy  # a closed month's: the one in force at closing
    t = report.total
    names = notice_names(report)["unit"]
    first, last = notice.period
    scope = names.get(report.unit, report.unit) if report.unit else word("all_units", lang)
    state = label("closed", lang) if report.closed_ms is not None else label("open", lang)
    return [
        (word("issuer", lang), notice.issuer),
        (word("issued", lang), day_text(notice.issued, lang)),
        (word("period", lang), f"{day_text(first, lang)} – {day_text(last, lang)} ({report.timezone})"),
        (word("scope", lang), scope),
        (word("state", lang), state),
        (
            label("policy", lang),
            f"{label('target', lang)} {pct_text(policy.target / 100, 0)}%, {label('floor', lang)} "
            f"{pct_text(policy.floor / 100, 0)}%, {label('penalty_points', lang)} {policy.penalty_points}",
        ),
        (
            label("total", lang),
            f"{label('rated', lang)} {t.rated}, {label('satisfied', lang)} {t.satisfied}, {label('rate', lang)} "
            f"{pct_text(t.rate)}, {label('band', lang)} {label(t.band, lang)}; "
            f"{label('nobody', lang)} {report.nobody.rated}",
        ),
    ]


def measure_text(a: Action, lang: str) -> str:
    """One measure of the ledger in words: what, for whom, why."""
    what = label(a.measure, lang)
    if a.target != "officer":
        return f"{label('target_' + a.target, lang)} {a.who}: {what}".replace("  ", " ")
    why = {"below_floor": label("below_floor", lang), "complaint": f"{label('complaint', lang)} {a.detail}"}
    reached = a.detail.split(" ")[0]  # the ledger's "3 打招呼": how many the step up was reached at
    why |= {k: f"{label(k if k != 'reminders' else 'reminders_r', lang)} {reached}" for k in ("reminders", "talks")}
    why["warnings"] = f"{label('warnings', lang)} {reached}"
    text = f"{what} ({why.get(a.reason, a.reason)})"
    return text + (f", {label('penalty_points', lang)} {a.points}" if a.points else "")


def _sanctions(notice: Notice, report: MonthlyReport, lang: str) -> list[str]:
    """The month's sanctions: each officer below the floor (or with a complaint's measure), the measures, the
    year so far and where the officer stands in the chain."""
    out = [f"<h2>{html.escape(word('sanctions', lang))}</h2>"]
    if not notice.sanctions:
        return out + [f'<p class="no-sanctions">{html.escape(word("no_sanctions", lang))}</p>']
    units = notice_names(report)["unit"]
    cols = ("officer", "name", "unit", "rate", "measures", "year_so_far", "stage")
    heads = [label(c, lang) if c in LABELS else word(c, lang) for c in cols]
    rows = []
    for s in notice.sanctions:
        measures = "<br>".join(html.escape(measure_text(a, lang)) for a in s.measures if a.measure != "escalation")
        so_far = stage = "—"
        if s.reminders is not None:
            so_far = " · ".join(
                f"{label(k, lang)} {v}"
                for k, v in (
                    ("reminder", s.reminders),
                    ("talk", s.talks),
                    ("warning", s.warnings),
                    ("penalty_points", s.points),
                )
            )
            stage = word("escalated", lang) % s.escalated if s.escalated else word("to_talk", lang) % (s.to_talk or 0)
        ln = s.line
        rate = f"{pct_text(ln.rate)}% ({ln.satisfied}/{ln.rated})" if ln.rate is not None else label(ln.band, lang)
        cells = [ln.key, ln.name, units.get(ln.unit) or ln.unit, rate]
        tds = "".join(f'<td class="t" data-col="{c}">{html.escape(v)}</td>' for c, v in zip(cols, cells, strict=False))
        tds += f'<td class="m" data-col="measures">{measures}</td>'
        tds += f'<td class="m" data-col="year_so_far">{html.escape(so_far)}</td>'
        tds += f'<td class="m" data-col="stage">{html.escape(stage)}</td>'
        rows.append(f'<tr class="{ln.band}" data-sanction="{html.escape(ln.key)}">{tds}</tr>')
    head = "".join(f"<th>{th_text(h)}</th>" for h in heads)
    table = f'<table class="sanctions"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return out + [table, f'<p class="note">{html.escape(word("sanctions_note", lang))}</p>']


def _signature(notice: Notice, lang: str) -> str:
    """The signature and seal block: issuer, 签发人 (a line to sign on), date, and the area for the seal."""
    lines = [(word("signer", lang), notice.signer), (word("date", lang), day_text(notice.issued, lang))]
    fill = "".join(f'<p>{html.escape(k)}: <span class="line">{html.escape(v)}</span></p>' for k, v in lines)
    return (
        f'<div class="sign"><div class="seal">{html.escape(word("seal", lang))}</div><div>'
        f"<p><b>{html.escape(notice.issuer)}</b></p>{fill}</div></div>"
    )


def render_html(report: MonthlyReport, policy: Policy, lang: str, notice: Notice | None = None) -> bytes:
    """The printable notice (月通报): A4 landscape (the officers' table has 13 columns or more), the head, the
    officers', windows' and units' tables, the month's sanctions, the officer-month checks and the signature block.

    ``notice`` (``collector.report.notice.notice_facts``) brings the issuer, the date and the year's chain
    stage; without it the sanctions are this month's 打招呼 from the report alone."""
    notice = notice or bare_notice(report)
    names = notice_names(report)
    title = f"{report.month} {label('title', lang)}"
    style = CSS % {
        "title": re.sub(r'["\\<>]', "", f"{title} · {notice.issuer}".strip(" ·")),  # a CSS string, in a <style>
        "pages": PAGE_NUMBERS[lang == "en"],
    }
    head = "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in notice_header(report, notice, lang)
    )
    sections: list[str] = [
        f'<p class="set-aside"><strong>{html.escape(b.text())}</strong></p>' for b in report.set_aside
    ]
    if report.late_events or report.revisions:
        sections.append(f"<p><strong>{html.escape(revision_text(report, lang))}</strong></p>")
    sections += [
        f"<h2>{html.escape(label('officers', lang))}</h2>",
        _notice_table(report.officers, NOTICE_OFFICER_COLUMNS, lang, names),
        *_sanctions(notice, report, lang),
        f"<h2>{html.escape(label('windows', lang))}</h2>",
        _notice_table(report.windows, NOTICE_GROUP_COLUMNS, lang, names, report.total),
        f"<h2>{html.escape(label('units', lang))}</h2>",
        _notice_table(report.units, tuple(c for c in NOTICE_GROUP_COLUMNS if c != "unit"), lang, names, report.total),
        *_html_officer_flags(report, lang),
        _signature(notice, lang),
    ]
    doc = f"""<!DOCTYPE html>
<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>{style}</style></head>
<body data-month="{report.month}">
<h1>{html.escape(title)}</h1>
<dl class="head">{head}</dl>
{"".join(f'<p class="meta digest">{html.escape(x)}</p>' for x in digest_lines(report, lang))}
{"".join(sections)}
</body></html>
"""
    return doc.encode()


Renderer = Callable[..., bytes]
RENDERERS: dict[str, Renderer] = {
    "csv": render_csv,
    "json": render_json,
    "xlsx": render_xlsx,
    "html": render_html,
}


def render(
    report: MonthlyReport, policy: Policy, fmt: str, lang: str, *, colour: bool = False, notice: Notice | None = None
) -> bytes:
    """The report in ``fmt`` (one of ``FORMATS``) with ``lang`` labels; ``notice``: the printed notice's facts."""
    if lang not in LANGS:
        raise UsageError(f"--lang {lang!r}: choose zh or en")
    if fmt == "table":
        return render_table(report, policy, lang, colour=colour)
    if fmt not in RENDERERS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "html":
        return render_html(report, policy, lang, notice)
    return RENDERERS[fmt](report, policy, lang)


# -- the year's ledger ---------------------------------------------------------


def ledger_json(ledger: Ledger, policy: Policy) -> dict[str, Any]:
    return {
        "format": LEDGER_JSON_FORMAT,
        "year": ledger.year,
        "months": ledger.months,
        "actions": [
            {
                "officer": a.officer,
                "month": a.month,
                "measure": a.measure,
                "reason": a.reason,
                "detail": a.detail,
                "points": a.points,
                "target": a.target,
                "who": a.who,
            }
            for a in ledger.actions
        ],
        "officers": [
            {
                "officer": p.officer,
                "name": p.name,
                "unit": p.unit,
                "rated": p.rated,
                "satisfied": p.satisfied,
                "rate_pct": year_rate_band(p, policy)[0] if p.rated else None,
                "below_floor_months": p.below_floor_months,
                "complaints": p.complaints,
                "reminders": p.reminders,
                "talks": p.talks,
                "warnings": p.warnings,
                "points": p.points,
                "no_honours": p.no_honours,
                "escalated": p.escalated,
            }
            for p in ledger.officers
        ],
        "candidates": [p.officer for p in ledger.candidates],
        "officer_flags": [
            {
                "officer": f.officer,
                "month": f.month,
                "rules": list(f.rules),
                "review": f.decision and {"decision": f.decision, "note": f.note, "by": f.by, "at_ms": f.at_ms},
            }
            for f in ledger.flags
        ],
    }


def render_ledger(ledger: Ledger, policy: Policy, fmt: str, lang: str) -> bytes:
    if fmt == "json":
        return (json.dumps(ledger_json(ledger, policy), ensure_ascii=False, indent=2) + "\n").encode()
    cols = ["officer", "month", "measure", "measure_for", "reason", "points", "detail"]
    reason_key = {"reminders": "reminders_r", "below_floor": "below_floor"}
    rows = [
        [
            a.officer,
            a.month,
            label(a.measure, lang),
            " ".join(x for x in (label(f"target_{a.target}", lang), a.who) if x),
            label(reason_key.get(a.reason, a.reason), lang),
            str(a.points or ""),
            a.detail,
        ]
        for a in ledger.actions
    ]
    for f in ledger.flags:  # officer-month flags and their review (复核): beside the measures, never one
        state, detail = flag_words(f, lang, policy.timezone)
        rows.append([f.officer, f.month, label("officer_flag", lang), "", state, "", detail])
    header = [label(c, lang) for c in cols]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        return ("\ufeff" + buf.getvalue()).encode()
    if fmt != "table":
        raise UsageError(f"--format {fmt!r}: the ledger comes as table, csv or json")
    cand = ", ".join(f"{p.officer} {p.name} ({year_rate_band(p, policy)[0]}%)" for p in ledger.candidates) or "—"
    text = [
        f"{ledger.year} {label('ledger', lang)} ({len(ledger.months)} {label('month', lang)})",
        "",
        text_table(header, rows),
        "",
        f"{label('candidates', lang)}: {cand}",
    ]
    return ("\n".join(text) + "\n").encode()
