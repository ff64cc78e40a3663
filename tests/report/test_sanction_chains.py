"""Both chains of the scheme's sanctions, step by step: the three measures on the officer (打招呼 → 谈话 → 告诫)
and the escalation to the officer's unit leader (谈话) and bureau leader (打招呼)."""

from __future__ import annotations

import asyncio
import json

import pytest

from collector.cli import main
from collector.store import connect
from tests.report.store import Ev, build
from tests.report.test_ledger import add_complaint, below_floor, met

UNITS = (("B1", "县公安局", None), ("U1", "城关派出所", "B1"), ("U2", "东城派出所", "B1"))
WINDOWS = (("W1", "U1", "户籍1号窗"), ("W2", "U2", "户籍2号窗"))
OFFICERS = (("A1", "张三", "U1", "W1"), ("A2", "李四", "U2", "W2"))


def store(store_url: str, events: list[Ev]) -> str:
    db = build(store_url, events, units=UNITS, windows=WINDOWS, officers=OFFICERS)

    async def leaders() -> None:
        async with connect(db) as conn:
            await conn.execute("UPDATE units SET leader = '王局长' WHERE id = 'B1'")
            await conn.execute("UPDATE units SET leader = '刘所长' WHERE id = 'U1'")  # U2 names no leader

    asyncio.run(leaders())
    return db


def actions(capsys: pytest.CaptureFixture[str], db: str, officer: str = "A1") -> list[tuple[str, ...]]:
    capsys.readouterr()
    assert main(["report", "--db", db, "--year", "2026", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    return [
        (a["month"], a["measure"], a["target"], a["reason"], a["who"])
        for a in out["actions"]
        if a["officer"] == officer
    ]


def officer_year(capsys: pytest.CaptureFixture[str], db: str, officer: str = "A1") -> tuple[int, int, int]:
    capsys.readouterr()
    assert main(["report", "--db", db, "--year", "2026", "--format", "json"]) == 0
    p = next(o for o in json.loads(capsys.readouterr().out)["officers"] if o["officer"] == officer)
    return p["reminders"], p["talks"], p["warnings"]


def test_two_reminders_stay_reminders(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = store(store_url, below_floor("A1", 1, 0) + below_floor("A1", 2, 100))
    assert actions(capsys, db) == [
        ("2026-01", "reminder", "officer", "below_floor", ""),
        ("2026-02", "reminder", "officer", "below_floor", ""),
    ]


def test_third_reminder_gives_a_talk_and_escalates_to_the_named_leaders(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = store(store_url, below_floor("A1", 1, 0) + below_floor("A1", 2, 100) + below_floor("A1", 4, 200))
    assert actions(capsys, db)[2:] == [
        ("2026-04", "reminder", "officer", "below_floor", ""),
        ("2026-04", "talk", "officer", "reminders", ""),
        ("2026-04", "escalation", "officer", "reminders", ""),
        ("2026-04", "talk", "unit_leader", "reminders", "刘所长"),
        ("2026-04", "reminder", "bureau_leader", "reminders", "王局长"),
    ]


def test_sixth_reminder_gives_a_second_talk_and_two_talks_a_warning_escalating_once(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [ev for m in range(1, 7) for ev in below_floor("A1", m, 100 * m)]
    db = store(store_url, events)
    acts = actions(capsys, db)
    assert [a for a in acts if a[0] == "2026-06"] == [
        ("2026-06", "reminder", "officer", "below_floor", ""),
        ("2026-06", "talk", "officer", "reminders", ""),
        ("2026-06", "warning", "officer", "talks", ""),  # talks_to_escalate (2) reached: the next measure
    ]
    assert [a[0] for a in acts if a[1] == "escalation"] == ["2026-03"]  # once a year
    assert officer_year(capsys, db) == (6, 2, 1)


def test_a_complaints_talk_and_three_reminders_make_a_warning(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = below_floor("A1", 1, 0) + below_floor("A1", 3, 100) + met("A1", 4, 200) + below_floor("A1", 5, 300)
    db = store(store_url, events)
    add_complaint(db, "A1", "2026-02-10")  # (str path or URL: the CLI takes either)
    acts = actions(capsys, db)
    assert acts == [
        ("2026-01", "reminder", "officer", "below_floor", ""),
        ("2026-02", "talk", "officer", "complaint", ""),
        ("2026-02", "no_honours", "officer", "complaint", ""),
        ("2026-03", "reminder", "officer", "below_floor", ""),
        ("2026-05", "reminder", "officer", "below_floor", ""),
        ("2026-05", "talk", "officer", "reminders", ""),
        ("2026-05", "warning", "officer", "talks", ""),
        ("2026-05", "escalation", "officer", "reminders", ""),
        ("2026-05", "talk", "unit_leader", "reminders", "刘所长"),
        ("2026-05", "reminder", "bureau_leader", "reminders", "王局长"),
    ]
    assert officer_year(capsys, db) == (3, 2, 1)


def test_second_complaint_warns_and_escalates_where_no_unit_leader_is_named(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = store(store_url, met("A2", 1, 0, n=40))
    add_complaint(db, "A2", "2026-03-01")
    add_complaint(db, "A2", "2026-07-09")
    assert actions(capsys, db, "A2")[2:] == [
        ("2026-07", "warning", "officer", "complaint", ""),
        ("2026-07", "escalation", "officer", "warnings", ""),
        ("2026-07", "talk", "unit_leader", "warnings", ""),  # U2 names no leader
        ("2026-07", "reminder", "bureau_leader", "warnings", "王局长"),
    ]


def test_the_ledger_table_says_who_each_measure_is_for(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = store(store_url, below_floor("A1", 1, 0) + below_floor("A1", 2, 100) + below_floor("A1", 3, 200))
    capsys.readouterr()
    assert main(["report", "--db", db, "--year", "2026"]) == 0
    zh = capsys.readouterr().out
    assert "单位领导 刘所长" in zh and "分管局领导 王局长" in zh and "民警本人" in zh
    assert main(["report", "--db", db, "--year", "2026", "--lang", "en"]) == 0
    assert "unit leader 刘所长" in capsys.readouterr().out
