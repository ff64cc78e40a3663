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
import unicodedata
from collections.abc import Callable
from typing import Any

from collector.errors import UsageError
from collector.report.glossary import TERMS
from collector.report.ledger import Ledger, flag_words, year_rate_band
from collector.report.monthly import Line, MonthlyReport
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


def render_csv(report: MonthlyReport, policy: Policy, lang: str) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([label(c, lang) for c in OFFICER_COLUMNS])
    for ln in report.officers:
        w.writerow([cell(ln, c, lang) for c in OFFICER_COLUMNS])
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
    if col in ("rated", "satisfied", "unsatisfied", "bad", "invites", "unrated", "unsolicited", "misuse"):
        return int(getattr(line, col))
    if col in ("penalty_points", "reminders"):
        return int(getattr(line, col))
    return cell(line, col, lang)


PCT_COLUMNS = {"rate", "wilson_low", "wilson_high", "no_rating_rate", "revised_rate"}


def render_xlsx(report: MonthlyReport, policy: Policy, lang: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    first = True
    for key, lines, cols in (
        ("officers", report.officers, OFFICER_COLUMNS),
        ("windows", report.windows, ("window", *GROUP_COLUMNS)),
        ("units", report.units, ("unit", *[c for c in GROUP_COLUMNS if c != "unit"])),
    ):
        ws = wb.active if first else wb.create_sheet()
        assert ws is not None
        first = False
        ws.title = label(key, lang)
        ws.append([label(c, lang) for c in cols])
        for c in ws[1]:
            c.font = Font(bold=True)
        for ln in lines:
            row = []
            for c in cols:
                if c in ("window", "unit") and c == cols[0]:
                    row.append(ln.key)
                else:
                    row.append(_xlsx_value(ln, c, lang))
            ws.append(row)
        for idx, c in enumerate(cols, start=1):
            if c in PCT_COLUMNS:
                for (cl,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                    cl.number_format = "0.00%"
        ws.freeze_panes = "A2"
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
    parts = [head, ""]
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


# -- printable HTML notice (月通报) ------------------------------------------

CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",sans-serif;margin:2em;color:#111}
h1{text-align:center;font-size:1.5em} h2{font-size:1.15em;margin-top:1.5em}
table{border-collapse:collapse;width:100%;font-size:.85em} th,td{border:1px solid #999;padding:.2em .4em}
td.n{text-align:right;font-variant-numeric:tabular-nums} th{background:#eee}
tr.met td.b{color:#176b21} tr.below_target td.b{color:#8a5a00} tr.below_floor td.b{color:#b00020;font-weight:bold}
tr.no_ratings td{color:#777} .meta{text-align:center;color:#444}
@media print{body{margin:1cm} h2{page-break-after:avoid} tr{page-break-inside:avoid}}
"""


def _html_table(lines: list[Line], cols: tuple[str, ...], lang: str, first: str) -> str:
    head = "".join(f"<th>{html.escape(label(c, lang))}</th>" for c in cols)
    body = []
    for ln in lines:
        tds = []
        for c in cols:
            text = ln.key if c == first else cell(ln, c, lang)
            cls = "b" if c == "band" else "n" if c not in ("officer", "name", "unit", "window", "standing") else ""
            tds.append(f'<td class="{cls}" data-col="{c}">{html.escape(text)}</td>')
        body.append(f'<tr class="{ln.band}">{"".join(tds)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


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


def render_html(report: MonthlyReport, policy: Policy, lang: str) -> bytes:
    policy = report.policy  # a closed month's: the one in force at closing
    title = f"{report.month} {label('title', lang)}"
    state = label("closed", lang) if report.closed_ms is not None else label("open", lang)
    t = report.total
    pol = (
        f"{label('policy', lang)}: {pct_text(policy.target / 100, 0)}% / {pct_text(policy.floor / 100, 0)}%, "
        f"{label('penalty_points', lang)} {policy.penalty_points}"
    )
    summary = (
        f"{label('total', lang)}: {label('rated', lang)} {t.rated}, {label('satisfied', lang)} {t.satisfied}, "
        f"{label('rate', lang)} {pct_text(t.rate)}; {label('nobody', lang)}: {report.nobody.rated}"
    )
    sections = [
        f"<h2>{html.escape(label('officers', lang))}</h2>",
        _html_table(report.officers, OFFICER_COLUMNS, lang, "officer"),
        f"<h2>{html.escape(label('windows', lang))}</h2>",
        _html_table(report.windows, ("window", *GROUP_COLUMNS), lang, "window"),
        f"<h2>{html.escape(label('units', lang))}</h2>",
        _html_table(report.units, ("unit", *[c for c in GROUP_COLUMNS if c != "unit"]), lang, "unit"),
    ]
    if report.late_events or report.revisions:
        sections.insert(0, f"<p><strong>{html.escape(revision_text(report, lang))}</strong></p>")
    sections += _html_officer_flags(report, lang)
    for b in reversed(report.set_aside):
        sections.insert(0, f'<p class="set-aside"><strong>{html.escape(b.text())}</strong></p>')
    doc = f"""<!DOCTYPE html>
<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>{CSS}</style></head>
<body data-month="{report.month}">
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(label("timezone", lang))} {html.escape(report.timezone)} · {html.escape(state)}
{" · " + html.escape(label("unit", lang) + " " + report.unit) if report.unit else ""} · {html.escape(pol)}</p>
<p class="meta">{html.escape(summary)}</p>
{"".join(sections)}
</body></html>
"""
    return doc.encode()


Renderer = Callable[[MonthlyReport, Policy, str], bytes]
RENDERERS: dict[str, Renderer] = {
    "csv": render_csv,
    "json": render_json,
    "xlsx": render_xlsx,
    "html": render_html,
}


def render(report: MonthlyReport, policy: Policy, fmt: str, lang: str, *, colour: bool = False) -> bytes:
    """The report in ``fmt`` (one of ``FORMATS``) with ``lang`` labels."""
    if lang not in LANGS:
        raise UsageError(f"--lang {lang!r}: choose zh or en")
    if fmt == "table":
        return render_table(report, policy, lang, colour=colour)
    if fmt not in RENDERERS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
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
