"""One glossary: every report format and the ledger use the glossary's words, never an old variant."""

from __future__ import annotations

import pathlib

import openpyxl
import pytest

from collector.cli import main
from collector.report.glossary import TERMS, VARIANTS
from collector.report.render import LABELS
from tests.conftest import ROOT
from tests.report.store import Ev, build, local_ms, press, rated_presses

OCT = local_ms("2026-10-12 09:30:00")
ALL_VARIANTS = [v for vs in VARIANTS.values() for v in vs]


def _text(path: pathlib.Path) -> str:
    if path.suffix != ".xlsx":
        return path.read_text(encoding="utf-8-sig")
    wb = openpyxl.load_workbook(path)
    parts = [wb.properties.title or ""]
    for ws in wb.worksheets:
        parts.append(ws.title)
        parts += [str(v) for row in ws.iter_rows(values_only=True) for v in row if v is not None]
    return "\n".join(parts)


def test_report_labels_are_the_glossarys() -> None:
    pct = ("rate", "no_rating_rate", "wilson_low", "wilson_high", "revised_rate")
    for key, (zh, en) in TERMS.items():  # rate columns: the glossary's word and a % sign
        assert LABELS[key] == ((f"{zh}%", f"{en} %") if key in pct else (zh, en)), key
    for zh, en in LABELS.values():
        for v in ALL_VARIANTS:
            assert v not in zh and v not in en, (zh, en, v)


def test_every_format_and_the_ledger_use_the_glossary(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = (
        rated_presses(18, 2, OCT, officer="A1", start=0)  # 90%: below the floor
        + [press(100, OCT + 99_000, 1, flags=2), press(101, OCT + 99_500, 1, flags=1)]  # misuse, unsolicited
        + [Ev("D1", 102, "invite", OCT, "A1", "W1")]
    )
    db = build(store_url, events)
    policy = tmp_path / "policy.toml"
    policy.write_text("[rates]\nfloor = 95\n", encoding="utf-8")
    assert main(["month", "close", "--db", db, "--policy", str(policy), "2026-10"]) == 0
    policy.write_text("[rates]\nfloor = 80\n", encoding="utf-8")  # a revision: below target now
    capsys.readouterr()
    seen: dict[str, str] = {}
    for lang in ("zh", "en"):
        for fmt in ("table", "csv", "json", "xlsx", "html"):
            out = tmp_path / f"report-{lang}.{fmt}"
            args = ["report", "--db", db, "--policy", str(policy), "--month", "2026-10", "--format", fmt]
            assert main([*args, "--lang", lang, "-o", str(out)]) == 0
            seen[f"{fmt}-{lang}"] = _text(out)
        for fmt in ("table", "csv", "json"):
            args = ["report", "--db", db, "--policy", str(policy), "--year", "2026", "--format", fmt, "--lang", lang]
            assert main(args) == 0
            seen[f"ledger-{fmt}-{lang}"] = capsys.readouterr().out
    for name, text in seen.items():
        for v in ALL_VARIANTS:
            assert v not in text, (name, v)
    for fmt in ("table", "csv", "xlsx", "html"):  # the labelled formats say the glossary's words
        zh, en = seen[f"{fmt}-zh"], seen[f"{fmt}-en"]
        for key in ("rated", "band", "below_floor", "misuse", "unsolicited", "revised_band"):
            assert TERMS[key][0] in zh and TERMS[key][1] in en, (fmt, key)
    assert TERMS["reminder"][0] in seen["ledger-table-zh"] and TERMS["below_floor"][1] in seen["ledger-csv-en"]


def test_docs_use_no_old_name() -> None:
    """The docs speak the glossary's words (``docs/glossary.md`` lists the old ones, to say they are gone)."""
    glossary = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    for key, (zh, en) in TERMS.items():
        assert f"| `{key}` | {zh} | {en} |" in glossary, key
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if doc.name == "glossary.md":
            continue
        text = doc.read_text(encoding="utf-8")
        for v in ALL_VARIANTS:
            assert v not in text, (doc.name, v)
