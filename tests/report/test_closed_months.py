"""Closed months stay closed: a policy change, a new time zone and ``evalbox rebuild`` leave a closed
month's figures, band, sanctions and the year's ledger byte-identical; the difference is a revision."""

from __future__ import annotations

import csv
import io
import json
import pathlib
import re

import openpyxl
import pytest

from collector.cli import main
from collector.report.render import XLSX_HEADER_ROW
from tests.report.store import build, local_ms, press, rated_presses

OFFICERS = (("A1", "张三", "U1", "W1"), ("A2", "李四", "U1", "W2"), ("A3", "王五", "U2", "W3"))
WINDOWS = (("W1", "U1", "户籍1号窗"), ("W2", "U1", "户籍2号窗"), ("W3", "U2", "出入境窗"))
UNITS = (("U1", "城关派出所", None), ("U2", "出入境大厅", None))
SEP, OCT = local_ms("2026-09-15 10:00:00"), local_ms("2026-10-15 10:00:00")
# 23:30 on 30 September in Shanghai is 00:30 on 1 October in Tokyo: a rebuild there moves it to October.
EDGE = local_ms("2026-09-30 23:30:00")

POLICY_AT_CLOSE = 'timezone = "Asia/Shanghai"\n[rates]\nfloor = 95\n[ranking]\nmin_sample = 10\n'
POLICY_LATER = 'timezone = "Asia/Tokyo"\n[rates]\nfloor = 96\n[ranking]\nmin_sample = 10\n'
REVISION_COLUMNS = ("late_events", "revised_rate", "revised_band")
FORMATS = ("table", "csv", "json", "xlsx", "html")


def events() -> list:  # type: ignore[type-arg]
    return (
        rated_presses(18, 2, SEP, officer="A1", window="W1", start=0)  # 90%: below the floor in September
        + rated_presses(20, 0, SEP, officer="A2", window="W2", start=100)
        + [press(200, EDGE, 2, officer="A2", window="W2")]  # September in Shanghai, October in Tokyo
        + rated_presses(19, 1, OCT, officer="A1", window="W1", start=300)  # 95%: on the floor
        + rated_presses(19, 1, OCT, officer="A2", window="W2", start=400)
        + rated_presses(10, 0, OCT, officer="A3", window="W3", start=500)
    )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def outputs(capsys: pytest.CaptureFixture[str], cfg: str, tmp: pathlib.Path, month: str) -> dict[str, object]:
    """The month's report in every format (zh and en) and the year's ledger in every format."""
    got: dict[str, object] = {}
    tmp.mkdir(exist_ok=True)
    for lang in ("zh", "en"):
        for fmt in FORMATS:
            out = tmp / f"{month}-{lang}.{fmt}"
            # one date of issue: "today" in the zone before and after the change can be two dates (UTC 15:00–16:00)
            issued = ("--issued", "2026-11-05") if fmt == "html" else ()
            cli(
                capsys,
                "report",
                "--config",
                cfg,
                "--month",
                month,
                "--format",
                fmt,
                "--lang",
                lang,
                *issued,
                "-o",
                str(out),
            )
            got[f"{fmt}-{lang}"] = out.read_bytes()
        for fmt in ("table", "csv", "json"):
            got[f"ledger-{fmt}-{lang}"] = cli(
                capsys, "report", "--config", cfg, "--year", "2026", "--format", fmt, "--lang", lang
            )
    return got


def frozen_json(doc: bytes) -> dict[str, object]:
    """The JSON report without what a revision adds."""
    d = json.loads(doc)
    for key in ("late_events", "revisions"):
        d.pop(key)
    for key in ("officers", "windows", "units"):
        for line in d[key]:
            line.pop("revision")
    d["total"].pop("revision")
    return d


def frozen_csv(doc: bytes) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(doc.decode("utf-8-sig"))))
    keep = [i for i, h in enumerate(rows[0]) if h not in ("迟到数据", "修正满意率%", "修正档次", "Late events")]
    keep = [i for i in keep if not rows[0][i].startswith("Revised")]
    assert len(keep) == len(rows[0]) - 3
    return [[r[i] for i in keep] for r in rows]


def frozen_xlsx(path: pathlib.Path) -> list[list[list[object]]]:
    wb = openpyxl.load_workbook(path)
    sheets = []
    for ws in wb.worksheets:
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
        head = rows[XLSX_HEADER_ROW - 1]
        drop = {i for i, h in enumerate(head) if h in ("迟到数据", "修正满意率%", "修正档次")}
        drop |= {i for i, h in enumerate(head) if str(h).startswith("Revised") or h == "Late events"}
        sheets.append([[v for i, v in enumerate(r) if i not in drop] for r in rows])
    return sheets


def frozen_html(doc: bytes) -> str:
    text = doc.decode()
    text = re.sub(r'<t([hd])[^>]* data-col="(?:late_events|revised)">.*?</t\1>', "", text)
    return re.sub(r"<p><strong>[^<]*</strong></p>", "", text)


def revised(doc: bytes, officer: str) -> dict[str, object] | None:
    line = next(o for o in json.loads(doc)["officers"] if o["officer"] == officer)
    rev: dict[str, object] | None = line["revision"]
    return rev


def test_closed_months_survive_a_policy_change_and_a_rebuild_in_another_zone(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = build(store_url, events(), officers=OFFICERS, windows=WINDOWS, units=UNITS)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY_AT_CLOSE, encoding="utf-8")
    config = tmp_path / "evalbox.toml"
    db = url if "://" in url else f"sqlite:///{url}"
    config.write_text(f'policy = "{policy}"\n[store]\nurl = "{db}"\n', encoding="utf-8")
    cfg = str(config)
    assert main(["complaint", "add", "--config", cfg, "--officer", "A3", "--date", "2026-10-20", "--note", "态度"]) == 0
    for month in ("2026-09", "2026-10"):
        cli(capsys, "month", "close", "--config", cfg, month)

    before = {m: outputs(capsys, cfg, tmp_path / f"before-{m}", m) for m in ("2026-09", "2026-10")}
    oct_json = json.loads(before["2026-10"]["json-en"])  # type: ignore[arg-type]
    a1 = next(o for o in oct_json["officers"] if o["officer"] == "A1")
    assert (a1["rated"], a1["satisfied"], a1["band"], a1["penalty_points"], a1["revision"]) == (
        20, 19, "below_target", 0, None,
    )  # fmt: skip
    assert oct_json["revisions"] == 0 and oct_json["policy"]["floor"] == 95

    # The policy changes: a higher floor, another time zone; the events are re-placed in it.
    policy.write_text(POLICY_LATER, encoding="utf-8")
    out = cli(capsys, "rebuild", "--config", cfg)
    assert "1 events moved" in out and "Asia/Tokyo" in out
    after = {m: outputs(capsys, cfg, tmp_path / f"after-{m}", m) for m in ("2026-09", "2026-10")}

    for month in before:
        b, a = before[month], after[month]
        for lang in ("zh", "en"):
            for fmt in ("table", "csv", "json"):  # the ledger: byte for byte
                assert a[f"ledger-{fmt}-{lang}"] == b[f"ledger-{fmt}-{lang}"], (month, fmt, lang)
            assert frozen_json(a[f"json-{lang}"]) == frozen_json(b[f"json-{lang}"])  # type: ignore[arg-type]
            assert frozen_csv(a[f"csv-{lang}"]) == frozen_csv(b[f"csv-{lang}"])  # type: ignore[arg-type]
            assert frozen_html(a[f"html-{lang}"]) == frozen_html(b[f"html-{lang}"])  # type: ignore[arg-type]
            assert frozen_xlsx(tmp_path / f"after-{month}" / f"{month}-{lang}.xlsx") == frozen_xlsx(
                tmp_path / f"before-{month}" / f"{month}-{lang}.xlsx"
            )
            # The terminal table gains the revision columns at the end; every frozen column is as it was.
            old = b[f"table-{lang}"].decode().splitlines()  # type: ignore[union-attr]
            new = a[f"table-{lang}"].decode().splitlines()  # type: ignore[union-attr]
            assert len(new) == len(old) + 1
            assert all(n.startswith(o) for o, n in zip(old, new, strict=False))

    # The ledger: A1's September below the floor, A3's complaint; nothing from the new floor.
    ledger = json.loads(after["2026-10"]["ledger-json-en"])  # type: ignore[arg-type]
    assert [(x["officer"], x["month"], x["measure"], x["points"]) for x in ledger["actions"]] == [
        ("A1", "2026-09", "reminder", 10),
        ("A3", "2026-10", "talk", 0),
        ("A3", "2026-10", "no_honours", 0),
    ]

    # The difference shows as a revision, with its band, in every format.
    oct_after = after["2026-10"]
    assert revised(oct_after["json-en"], "A1") == {  # type: ignore[arg-type]
        "late_events": 0, "rated": 20, "satisfied": 19, "rate": 0.95, "rate_pct": "95.00", "band": "below_floor",
    }  # fmt: skip
    assert revised(oct_after["json-en"], "A2") == {  # type: ignore[arg-type]
        "late_events": 0, "rated": 21, "satisfied": 19, "rate": 19 / 21, "rate_pct": "90.47", "band": "below_floor",
    }  # fmt: skip
    assert revised(oct_after["json-en"], "A3") is None  # type: ignore[arg-type]
    sep_a2 = revised(after["2026-09"]["json-en"], "A2")  # type: ignore[arg-type]
    assert sep_a2 is not None and (sep_a2["rated"], sep_a2["band"]) == (20, "met")
    doc = json.loads(oct_after["json-en"])  # type: ignore[arg-type]
    assert doc["revisions"] == 2 and doc["timezone"] == "Asia/Shanghai" and doc["policy"]["floor"] == 95
    a1 = next(o for o in doc["officers"] if o["officer"] == "A1")
    assert (a1["band"], a1["penalty_points"]) == ("below_target", 0)  # frozen: no sanction from the new floor

    rows = {r[0]: r for r in csv.reader(io.StringIO(oct_after["csv-zh"].decode("utf-8-sig")))}  # type: ignore[union-attr]
    head = rows["警号"]
    assert rows["A2"][head.index("修正满意率%")] == "90.47" and rows["A2"][head.index("修正档次")] == "低于底线"
    assert rows["A2"][head.index("档次")] == "未达标"
    wb = openpyxl.load_workbook(tmp_path / "after-2026-10" / "2026-10-zh.xlsx")
    xl = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    a2row, head = next(r for r in xl if r[0] == "A2"), xl[XLSX_HEADER_ROW - 1]
    assert a2row[head.index("修正档次")] == "低于底线" and a2row[head.index("档次")] == "未达标"
    page = oct_after["html-zh"].decode()  # type: ignore[union-attr]
    assert 'data-col="revised">90.47 低于底线</td>' in page
    table = oct_after["table-en"].decode()  # type: ignore[union-attr]
    assert "Revision (changes since the close, not merged): officers revised 2" in table
    assert "Below floor" in table.split("== Windows ==")[0]
    # The months' digests survive the rebuild in another zone (the month's events are those of its zone at
    # closing), and the audit trail holds the policy change and the rebuild.
    assert json.loads(oct_after["json-en"])["digest"] == json.loads(before["2026-10"]["json-en"])["digest"]  # type: ignore[arg-type]
    out = cli(capsys, "audit", "verify", "--config", cfg)
    assert "verified" in out and "2 sealed months" in out


def test_months_closed_before_the_snapshots_keep_their_counts(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store closed under an older evalbox (no snapshot): migration 0007 freezes the counts it had."""
    import asyncio

    from collector.store import connect, database
    from collector.store.schema import MIGRATIONS
    from tests.report.store import create_store, ingest, seed_registry

    older = [m for m in MIGRATIONS if m[0] < "0007"]
    monkeypatch.setattr(database, "MIGRATIONS", older)

    async def old_store() -> None:
        db = await create_store(store_url, fresh=True)
        try:
            await seed_registry(db)
            await ingest(db, rated_presses(19, 1, OCT))
            await db.execute("INSERT INTO months (month, closed_ms, closed_by) VALUES ('2026-10', 1, 'admin')")
            await ingest(db, rated_presses(0, 3, OCT, start=100))  # arrived after the close: late = 1
        finally:
            await db.close()

    asyncio.run(old_store())
    monkeypatch.setattr(database, "MIGRATIONS", MIGRATIONS)
    url = store_url if "://" in store_url else f"sqlite:///{store_url}"

    async def upgraded() -> list[str]:
        async with connect(url) as db:  # migrates to 0007
            return [r[0] for r in await db.fetch("SELECT month FROM month_snapshots")]

    assert asyncio.run(upgraded()) == ["2026-10"]
    # After a rebuild the old close's counts stand; the late presses are a revision.
    cli(capsys, "rebuild", "--db", url)
    doc = json.loads(cli(capsys, "report", "--db", url, "--month", "2026-10", "--format", "json"))
    a1 = next(o for o in doc["officers"] if o["officer"] == "A1")
    assert (a1["rated"], a1["satisfied"], a1["band"]) == (20, 19, "below_target")
    assert (a1["revision"]["late_events"], a1["revision"]["rated"], a1["revision"]["band"]) == (3, 23, "below_floor")
