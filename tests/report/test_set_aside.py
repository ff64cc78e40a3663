"""One bad stored row never blocks a month: it is named (box, boot, seq) and set aside, every officer reported.

The bad row is written straight into the store, as an old collector (before presses with ``k > n`` were
refused at decode) or a hand edit would have left it; ``evalbox rebuild`` rolls it up like any other.
"""

from __future__ import annotations

import json

import pytest

from collector.cli import main
from tests.report.store import build, local_ms, press, rated_presses

OCT = local_ms("2026-10-12 09:30:00")
OFFICERS = (("A1", "张三", "U1", "W1"), ("A2", "李四", "U1", "W2"), ("A3", "王五", "U1", "W2"))
WINDOWS = (("W1", "U1", "户籍1号窗"), ("W2", "U1", "户籍2号窗"))


@pytest.fixture
def db(store_url: str) -> str:
    events = [
        *rated_presses(19, 1, OCT, officer="A1", window="W1", device="D1"),
        *rated_presses(20, 0, OCT, officer="A2", window="W2", device="D2"),
        *rated_presses(10, 5, OCT, officer="A3", window="W2", device="D3"),
        press(77, OCT + 90_000, 3, 2, officer="A2", window="W2", device="D2", boot=4),  # level 3 on a 2-level box
    ]
    return build(store_url, events, windows=WINDOWS, officers=OFFICERS)


def _report(capsys: pytest.CaptureFixture[str], db: str, *more: str) -> tuple[dict[str, object], str]:
    assert main(["report", "--db", db, "--month", "2026-10", "--format", "json", *more]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_corrupt_row_is_named_and_set_aside(capsys: pytest.CaptureFixture[str], db: str) -> None:
    for _ in range(2):  # as stored, then after `evalbox rebuild` (which rolls the bad row up again)
        doc, err = _report(capsys, db)
        got = {o["officer"]: (o["rated"], o["satisfied"], o["band"]) for o in doc["officers"]}  # type: ignore[index]
        assert got == {"A1": (20, 19, "below_target"), "A2": (20, 20, "met"), "A3": (15, 10, "below_floor")}
        (bad,) = doc["set_aside"]  # type: ignore[misc]
        assert (bad["officer"], bad["level"], bad["scale"], bad["n"]) == ("A2", 3, 2, 1)
        assert bad["events"] == [{"box": "D2", "boot": 4, "seq": 77}]
        assert "D2 boot 4 seq 77" in err and "set aside" in err and "Traceback" not in err
        assert main(["rebuild", "--db", db]) == 0
        assert "D2 boot 4 seq 77: level 3 outside scale 2" in capsys.readouterr().err


def test_every_format_reports_the_month_beside_a_corrupt_row(capsys: pytest.CaptureFixture[str], db: str) -> None:
    assert main(["report", "--db", db, "--month", "2026-10"]) == 0
    out = capsys.readouterr()
    assert "D2 boot 4 seq 77" in out.out and "A3" in out.out
    assert main(["report", "--db", db, "--month", "2026-10", "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert out.out.count("\n") >= 4 and "D2 boot 4 seq 77" in out.err
    assert main(["report", "--db", db, "--year", "2026", "--format", "json"]) == 0
    ledger = json.loads(capsys.readouterr().out)
    assert [a["officer"] for a in ledger["actions"] if a["measure"] == "reminder"] == ["A3"]


def test_a_rollup_row_with_no_event_behind_it_is_set_aside(capsys: pytest.CaptureFixture[str], db: str) -> None:
    import asyncio

    from collector.store import connect

    async def corrupt() -> None:
        async with connect(db) as conn:
            await conn.execute(
                "INSERT INTO rollups (officer_id, month, window_id, kind, level, scale, late, n)"
                " VALUES ('A1', '2026-10', 'W1', 'bogus', 1, 2, 0, 5)"
            )

    asyncio.run(corrupt())
    doc, err = _report(capsys, db)
    assert {o["officer"]: o["rated"] for o in doc["officers"]} == {"A1": 20, "A2": 20, "A3": 15}  # type: ignore[union-attr]
    kinds = sorted((b["kind"], len(b["events"])) for b in doc["set_aside"])  # type: ignore[union-attr]
    assert kinds == [("bogus", 0), ("rated", 1)]
    assert "unknown kind 'bogus'" in err and "no event behind it" in err
